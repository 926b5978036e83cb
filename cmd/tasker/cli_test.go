package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/taskerhq/tasker/internal/auth"
	"github.com/taskerhq/tasker/internal/devserver"
	"github.com/taskerhq/tasker/internal/examples"
	"github.com/taskerhq/tasker/internal/pgtest"
	"github.com/taskerhq/tasker/internal/wire"
	"github.com/taskerhq/tasker/sdk"
	"github.com/taskerhq/tasker/templates"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// startAPI runs a local server on a free port and returns its URL.
func startAPI(t *testing.T, verifier *auth.Verifier) string {
	t.Helper()
	reg := sdk.NewRegistry()
	if err := examples.Register(reg); err != nil {
		t.Fatal(err)
	}
	srv, err := devserver.Start(context.Background(), devserver.Options{
		DatabaseURL: pgtest.URL(t), Templates: templates.FS, Registry: reg, Addr: "127.0.0.1:0",
		Auth: verifier, SweepInterval: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return "http://" + srv.Addr
}

type result struct {
	code           int
	stdout, stderr string
}

// tasker runs `tasker args...` against base (nil: no --url).
func tasker(t *testing.T, base string, args ...string) result {
	t.Helper()
	if base != "" {
		args = append(args, "--url", base)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

func (r result) want(t *testing.T, code int, stdout, stderr []string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	for _, s := range stdout {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("stdout lacks %q:\n%s", s, r.stdout)
		}
	}
	for _, s := range stderr {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
		}
	}
}

var uuidRe = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// A refund larger than the original payment passes the context schema but
// fails validate_refund permanently.
const failingRefund = `{"payment_id":"pay_1","refund_amount":5000,"original_amount":100,"customer_email":"ada@example.com"}`

func TestRunWatchCompletes(t *testing.T) {
	t.Parallel()
	base := startAPI(t, nil)
	r := tasker(t, base, "run", "ecommerce/process_order", "--context", "@../../examples/order.json", "--watch")
	r.want(t, 0, []string{"ecommerce/process_order@1.0.0", "validate_order", "fraud_check", "process_payment",
		"update_inventory", "create_shipment", "send_confirmation", "complete", "Result:"}, nil)
	if r.stderr != "" {
		t.Errorf("stderr: %s", r.stderr)
	}
	// Not a terminal: appended lines, no escape sequences.
	if strings.Contains(r.stdout, "\x1b[") {
		t.Errorf("escape sequences in non-terminal output:\n%q", r.stdout)
	}
	if !strings.Contains(r.stdout, "[6/6] ✓ send_confirmation") {
		t.Errorf("no final step line:\n%s", r.stdout)
	}
	id := uuidRe.FindString(r.stdout)

	// Without --watch: the id alone; the same idempotency key twice is the same task.
	r1 := tasker(t, base, "run", "ecommerce/process_order", "--context", "@../../examples/order.json", "--idempotency-key", "k-1")
	r1.want(t, 0, nil, nil)
	r2 := tasker(t, base, "run", "--idempotency-key", "k-1", "ecommerce/process_order", "--context", "@../../examples/order.json")
	r2.want(t, 0, nil, []string{"used before"})
	if !uuidRe.MatchString(r1.stdout) || r1.stdout != r2.stdout || strings.Count(r1.stdout, "\n") != 1 {
		t.Errorf("ids %q and %q", r1.stdout, r2.stdout)
	}

	// show, graph.
	tasker(t, base, "show", id).want(t, 0, []string{"Status", "complete", "STEP", "ATTEMPTS", "validate_order", "1/3"}, nil)
	g := tasker(t, base, "graph", id)
	g.want(t, 0, []string{"validate_order", "send_confirmation"}, nil)
	if !strings.Contains(g.stdout, "flowchart") && !strings.Contains(g.stdout, "graph ") {
		t.Errorf("not mermaid:\n%s", g.stdout)
	}
	tasker(t, base, "graph", id, "--format", "dot").want(t, 0, []string{"digraph"}, nil)
	tasker(t, base, "graph", id, "--format", "svg").want(t, 0, []string{"<svg"}, nil)
	var gj struct {
		Nodes []struct{ ID, State string } `json:"nodes"`
	}
	r = tasker(t, base, "graph", "--json", id)
	r.want(t, 0, nil, nil)
	if err := json.Unmarshal([]byte(r.stdout), &gj); err != nil || len(gj.Nodes) != 6 {
		t.Errorf("graph --json: %v %s", err, r.stdout)
	}
	tasker(t, base, "graph", id, "--format", "png").want(t, 2, nil, []string{"--format"})

	// A context that does not fit the schema: each field error is listed.
	tasker(t, base, "run", "ecommerce/process_order", "--context", `{"order_id":""}`).
		want(t, 1, nil, []string{"Validation failed", "/context"})
	tasker(t, base, "run", "nope/nothing").want(t, 1, nil, []string{"/name", "no workflow nope/nothing"})
	// --json prints the problem document.
	r = tasker(t, base, "run", "nope/nothing", "--json")
	r.want(t, 1, nil, []string{`"type":"https://tasker.dev/problems/validation"`})
}

func TestRunWatchFailsAndOperatorCommands(t *testing.T) {
	t.Parallel()
	base := startAPI(t, nil)
	r := tasker(t, base, "run", "payments/process_refund", "--context", failingRefund, "--watch")
	r.want(t, 1, []string{"validate_refund", "error"},
		[]string{"ended error", "step validate_refund failed after 1/1 attempts", "[exceeds_original]", "exceeds the original payment", "(permanent)"})
	id := uuidRe.FindString(r.stdout)
	if id == "" {
		t.Fatalf("no task id in %q", r.stdout)
	}

	tasker(t, base, "show", id).want(t, 0, []string{"error", "validate_refund", "exceeds the original payment", "process_gateway_refund"}, nil)

	// retry: the task runs again and fails the same way.
	tasker(t, base, "retry", id, "--reason", "try again", "--watch").want(t, 1, nil, []string{"step validate_refund failed after 2/2 attempts", "not run: process_gateway_refund, restock_items"})
	// Without --watch, retry prints the task as it is right after the request;
	// the engine may already have failed it again, so only the id is certain.
	tasker(t, base, "retry", id).want(t, 0, []string{id}, nil)
	waitStatus(t, base, id, "error")

	// resolve with a result the dependents can use; the task carries on.
	result := `{"payment_id":"pay_1","refund_amount":100,"original_amount":100,"refund_reason":"customer_request","eligible":true,"currency":"USD","customer_email":"ada@example.com"}`
	tasker(t, base, "resolve", id, "validate_refund", "--result", result, "--reason", "checked by hand").
		want(t, 0, []string{"validate_refund", "resolved_manually"}, nil)
	waitStatus(t, base, id, "resolved_manually")
	// Resolving it again is a conflict.
	tasker(t, base, "resolve", id, "validate_refund").want(t, 1, nil, []string{"Conflict", "resolved_manually"})

	// cancel a failed task; cancelling it twice is a conflict.
	r = tasker(t, base, "run", "payments/process_refund", "--context", failingRefund, "--watch", "--json")
	r.want(t, 1, nil, []string{"validate_refund"})
	var task wire.Task
	if err := json.Unmarshal([]byte(r.stdout), &task); err != nil || task.Status != "error" {
		t.Fatalf("run --watch --json: %v %s", err, r.stdout)
	}
	tasker(t, base, "cancel", task.ID, "--reason", "not needed").want(t, 0, []string{"cancelled"}, nil)
	tasker(t, base, "cancel", task.ID).want(t, 1, nil, []string{"Conflict", "is cancelled"})

	// tasks: filters, --all across pages, JSON.
	r = tasker(t, base, "tasks", "--namespace", "payments")
	r.want(t, 0, []string{"ID", "WORKFLOW", "STATUS", id, task.ID, "cancelled", "resolved_manually"}, nil)
	tasker(t, base, "tasks", "--status", "cancelled").want(t, 0, []string{task.ID}, nil)
	r = tasker(t, base, "tasks", "--limit", "1", "--all", "--json")
	r.want(t, 0, nil, nil)
	var list wire.TaskList
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list.Tasks) != 2 || list.NextCursor != nil {
		t.Errorf("tasks --all --json: %v %s", err, r.stdout)
	}
	r = tasker(t, base, "tasks", "--limit", "1")
	r.want(t, 0, []string{"(more: add --all, or --cursor "}, nil)
	cur := strings.TrimSuffix(strings.TrimSpace(r.stdout[strings.LastIndex(r.stdout, "--cursor ")+len("--cursor "):]), ")")
	r2 := tasker(t, base, "tasks", "--limit", "1", "--cursor", cur)
	r2.want(t, 0, nil, nil)
	if ids1, ids2 := uuidRe.FindAllString(r.stdout, -1), uuidRe.FindAllString(r2.stdout, -1); len(ids1) != 1 || len(ids2) != 1 || ids1[0] == ids2[0] {
		t.Errorf("pages %v then %v", ids1, ids2)
	}
	tasker(t, base, "tasks", "--status", "bogus").want(t, 1, nil, []string{"Invalid parameter", `unknown status "bogus"`})
	tasker(t, base, "tasks", "--namespace", "nothing_here").want(t, 0, []string{"no tasks"}, nil)

	// Unknown task: each command fails with the problem detail.
	unknown := "00000000-0000-4000-8000-000000000000"
	for _, args := range [][]string{
		{"show", unknown}, {"graph", unknown}, {"cancel", unknown}, {"retry", unknown},
		{"resolve", unknown, "validate_refund"},
	} {
		tasker(t, base, args...).want(t, 1, nil, []string{"tasker " + args[0] + ": Not found: no task " + unknown})
	}
	tasker(t, base, "show", "not-a-uuid").want(t, 1, nil, []string{"Invalid parameter", "UUID"})
	tasker(t, base, "resolve", id, "no_such_step").want(t, 1, nil, []string{"Not found", `no step "no_such_step"`})
}

func waitStatus(t *testing.T, base, id, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := tasker(t, base, "show", id, "--json")
		var task wire.Task
		if err := json.Unmarshal([]byte(r.stdout), &task); err == nil && task.Status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s not %s: %s", id, want, r.stdout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestTokenAndAuth(t *testing.T) {
	t.Parallel()
	secret := strings.Repeat("s", 32)
	v, err := auth.New(context.Background(), auth.Config{HS256Secret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	base := startAPI(t, v)

	tasker(t, base, "tasks").want(t, 1, nil, []string{"Unauthorized", "--token"})

	r := tasker(t, "", "token", "--secret", secret, "--sub", "ops", "--scope", "tasks:read")
	r.want(t, 0, nil, nil)
	tok := strings.TrimSpace(r.stdout)
	p, err := v.Verify(context.Background(), tok)
	if err != nil || p.Subject != "ops" || !p.Allows("tasks:read") || p.Allows("tasks:list") {
		t.Fatalf("token %q: %v %+v", tok, err, p)
	}
	tasker(t, base, "tasks", "--token", tok).want(t, 1, nil, []string{"Forbidden", "tasks:list", `tasker token --scope "tasks:list"`})

	r = tasker(t, "", "token", "--secret", secret, "--json")
	r.want(t, 0, []string{`"scope":"tasks:* steps:*"`, `"expires_at"`}, nil)
	var out struct{ Token string }
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatal(err)
	}
	tasker(t, base, "tasks", "--token", out.Token).want(t, 0, []string{"no tasks"}, nil)
	tasker(t, base, "run", "payments/process_refund", "--token", out.Token, "--context", "@../../examples/refund.json", "--watch").
		want(t, 0, []string{"complete"}, nil)

	r = tasker(t, "", "token", "--secret", secret, "--all", "--ttl", "5m")
	r.want(t, 0, nil, nil)
	if p, err := v.Verify(context.Background(), strings.TrimSpace(r.stdout)); err != nil || !p.Allows("system:read") {
		t.Errorf("--all token: %v %+v", err, p)
	}
	tasker(t, "", "token", "--secret", "short").want(t, 2, nil, []string{"at least 32 bytes"})
	if os.Getenv(auth.EnvHS256Secret) == "" {
		tasker(t, "", "token").want(t, 2, nil, []string{"no secret"})
	}
}

func TestCLIUsageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"run"}, "want exactly one workflow"},
		{[]string{"run", "justaname"}, "is not NAMESPACE/NAME"},
		{[]string{"run", "a/b", "--context", "{bad"}, "--context: not valid JSON"},
		{[]string{"run", "a/b", "--context", "@/nonexistent/ctx.json"}, "--context"},
		{[]string{"show"}, "want exactly one task ID"},
		{[]string{"show", "a", "b"}, "want exactly one task ID"},
		{[]string{"resolve", "a"}, "want a task ID and a STEP"},
		{[]string{"resolve", "a", "b", "--result", "nope"}, "--result: not valid JSON"},
		{[]string{"tasks", "--limit", "500"}, "--limit"},
		{[]string{"tasks", "--nope"}, "flag provided but not defined"},
		{[]string{"show", "x", "--url", "ftp://h"}, "not an http(s) URL"},
		{[]string{"new"}, "want exactly one workflow"},
		{[]string{"new", "shop/x"}, "--steps is required"},
	} {
		r := tasker(t, "", tc.args...)
		r.want(t, 2, nil, []string{tc.stderr})
	}
	// Help is not an error.
	tasker(t, "", "run", "--help").want(t, 0, nil, []string{"usage: tasker run"})
	// No server: a clear connection error.
	tasker(t, "", "show", "x", "--url", "http://127.0.0.1:1").want(t, 1, nil, []string{"cannot reach the Tasker API at http://127.0.0.1:1"})
}
