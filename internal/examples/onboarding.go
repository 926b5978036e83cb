package examples

import (
	"context"
	"regexp"
	"strings"
	"time"

	"github.com/taskerhq/tasker/sdk"
)

// Onboarding context:
//
//	{"email" | "user.email", "name" | "full_name" | "user.name",
//	 "plan": "free|pro|team|enterprise", "company" | "workspace_name",
//	 "trial_days": 14, "region": "us-east-1"}

type planInfo struct {
	monthlyCents int64
	seats        int
}

var plans = map[string]planInfo{
	"free":       {0, 1},
	"pro":        {2900, 10},
	"team":       {9900, 25},
	"enterprise": {49900, 100},
}

func onboardingInput(in sdk.Input) (d doc, email, name, plan string, err error) {
	if d, err = contextDoc(in); err != nil {
		return nil, "", "", "", err
	}
	email = strings.ToLower(d.str("email", "customer.email", "user.email", "user_info.email"))
	name = d.str("name", "full_name", "customer.name", "user.name", "user_info.name")
	plan = strings.ToLower(d.str("plan", "user.plan", "subscription.plan"))
	if plan == "" {
		plan = "free"
	}
	return d, email, name, plan, nil
}

func createAccount(ctx context.Context, in sdk.Input) (any, error) {
	_, email, name, plan, err := onboardingInput(in)
	if err != nil {
		return nil, err
	}
	if !validEmail(email) {
		return nil, permanent("invalid_email", "cannot create an account: email %q is not valid", email)
	}
	if _, ok := plans[plan]; !ok {
		return nil, permanent("invalid_plan", "unknown plan %q (want free, pro, team or enterprise)", plan)
	}
	if name == "" {
		name = email[:strings.IndexByte(email, '@')]
	}
	return map[string]any{
		"user_id":    stableID("usr_", in, "account"),
		"email":      email,
		"name":       name,
		"plan":       plan,
		"status":     "pending_activation",
		"created_at": now(),
	}, nil
}

// account returns the created account from a parent result, or an error
// naming what is missing.
func account(in sdk.Input) (doc, error) {
	if a, ok := parentWith(in, "user_id", "email"); ok {
		return a, nil
	}
	return nil, permanent("missing_input", "no parent result carries the account (user_id, email); does step %q depend on create_account?", in.Step())
}

func sendWelcomeEmail(ctx context.Context, in sdk.Input) (any, error) {
	a, err := account(in)
	if err != nil {
		return nil, err
	}
	to := a.str("email")
	return map[string]any{
		"message_id": stableID("msg_", in, "welcome"),
		"to":         to,
		"user_id":    a.str("user_id"),
		"template":   in.ConfigString("template", "welcome"),
		"subject":    "Welcome aboard, " + a.str("name") + "!",
		"sent_at":    now(),
	}, nil
}

var nonSlug = regexp.MustCompile(`[^a-z0-9]+`)

func provisionWorkspace(ctx context.Context, in sdk.Input) (any, error) {
	d, _, name, plan, err := onboardingInput(in)
	if err != nil {
		return nil, err
	}
	a, err := account(in)
	if err != nil {
		return nil, err
	}
	if p := a.str("plan"); p != "" {
		plan = p
	}
	ws := d.str("workspace_name", "company", "customer.company", "company_name", "organization")
	if ws == "" {
		if name == "" {
			name = a.str("name")
		}
		ws = name + "'s workspace"
	}
	slug := strings.Trim(nonSlug.ReplaceAllString(strings.ToLower(ws), "-"), "-")
	if slug == "" {
		slug = "workspace"
	}
	region := d.str("region")
	if region == "" {
		region = in.ConfigString("region", "us-east-1")
	}
	return map[string]any{
		"workspace_id": stableID("ws_", in, "workspace"),
		"name":         ws,
		"slug":         slug + "-" + stableID("", in, "slug")[:6],
		"owner_id":     a.str("user_id"),
		"region":       region,
		"seats":        plans[plan].seats,
		"created_at":   now(),
	}, nil
}

func setupBilling(ctx context.Context, in sdk.Input) (any, error) {
	d, _, _, plan, err := onboardingInput(in)
	if err != nil {
		return nil, err
	}
	a, err := account(in)
	if err != nil {
		return nil, err
	}
	if p := a.str("plan"); p != "" {
		plan = p
	}
	info, ok := plans[plan]
	if !ok {
		return nil, permanent("invalid_plan", "unknown plan %q", plan)
	}
	out := map[string]any{
		"billing_account_id": stableID("ba_", in, "billing"),
		"user_id":            a.str("user_id"),
		"plan":               plan,
		"monthly_price":      dollars(info.monthlyCents),
		"currency":           "USD",
		"status":             "active",
	}
	if info.monthlyCents > 0 {
		trial := d.integer(14, "trial_days")
		if trial > 0 {
			out["status"] = "trialing"
			out["trial_ends_at"] = time.Now().UTC().AddDate(0, 0, trial).Format(time.RFC3339)
		}
	}
	return out, nil
}

func activate(ctx context.Context, in sdk.Input) (any, error) {
	// The account may be a grandparent: take the user id from any parent.
	a, ok := parentWith(in, "user_id")
	if !ok {
		if w, wok := parentWith(in, "owner_id"); wok {
			a, ok = doc{"user_id": w["owner_id"]}, true
		}
	}
	if !ok {
		return nil, permanent("missing_input", "no parent result carries a user_id; does step %q depend on the onboarding steps?", in.Step())
	}
	checklist := []map[string]any{{"item": "account", "done": true}}
	out := map[string]any{
		"user_id":      a.str("user_id"),
		"status":       "active",
		"activated_at": now(),
	}
	if w, ok := parentWith(in, "workspace_id"); ok {
		out["workspace_id"] = w["workspace_id"]
		checklist = append(checklist, map[string]any{"item": "workspace", "done": true})
	}
	if b, ok := parentWith(in, "billing_account_id"); ok {
		out["billing_account_id"] = b["billing_account_id"]
		out["plan"] = b["plan"]
		checklist = append(checklist, map[string]any{"item": "billing", "done": true})
	}
	if _, ok := parentWith(in, "message_id", "user_id"); ok {
		checklist = append(checklist, map[string]any{"item": "welcome_email", "done": true})
	}
	out["checklist"] = checklist
	return out, nil
}
