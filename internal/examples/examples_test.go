package examples

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/sdk"
)

// flow runs handlers of one task through sdk.Run, as the engine
// would, keeping results for the dependants.
type flow struct {
	t       *testing.T
	reg     *sdk.Registry
	taskID  uuid.UUID
	context string
	results map[string]json.RawMessage
}

func newFlow(t *testing.T, ctxJSON string) *flow {
	t.Helper()
	reg := sdk.NewRegistry()
	if err := Register(reg); err != nil {
		t.Fatal(err)
	}
	return &flow{t: t, reg: reg, taskID: uuid.New(), context: ctxJSON, results: map[string]json.RawMessage{}}
}

// step runs handler as step with the named parents at attempt and returns
// the raw response.
func (f *flow) step(step, handler string, attempt int, config string, parents ...string) []byte {
	f.t.Helper()
	res := map[string]json.RawMessage{}
	for _, p := range parents {
		r, ok := f.results[p]
		if !ok {
			f.t.Fatalf("parent %s has no result", p)
		}
		res[p] = r
	}
	if config == "" {
		config = "{}"
	}
	p := contract.Payload{
		Tasker: contract.Meta{
			Version: 1, TaskID: f.taskID, StepID: uuid.New(), Step: step, Handler: handler,
			Attempt: attempt, MaxAttempts: 3, IdempotencyKey: contract.IdempotencyKey(f.taskID, step, 0),
		},
		Context: json.RawMessage(f.context),
		Config:  json.RawMessage(config),
		Results: res,
	}
	b, err := json.Marshal(p)
	if err != nil {
		f.t.Fatal(err)
	}
	return sdk.Run(context.Background(), f.reg, b)
}

// ok runs a step that must succeed and records its result.
func (f *flow) ok(step, handler string, parents ...string) map[string]any {
	f.t.Helper()
	out := f.step(step, handler, 1, "", parents...)
	if he, isErr := contract.AsHandlerError(out); isErr {
		f.t.Fatalf("%s failed: %+v", handler, he)
	}
	f.results[step] = out
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		f.t.Fatalf("%s result is not an object: %s", handler, out)
	}
	return m
}

// fail runs a step that must fail and returns the error.
func (f *flow) fail(step, handler string, attempt int, parents ...string) *contract.HandlerError {
	f.t.Helper()
	out := f.step(step, handler, attempt, "", parents...)
	he, isErr := contract.AsHandlerError(out)
	if !isErr {
		f.t.Fatalf("%s succeeded with %s, want an error", handler, out)
	}
	return he
}

func TestRegister(t *testing.T) {
	t.Parallel()
	reg := sdk.NewRegistry()
	if err := Register(reg); err != nil {
		t.Fatalf("first Register: %v", err)
	}
	names := Names()
	if len(names) != 35 {
		t.Errorf("%d handlers, want 35", len(names))
	}
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			t.Errorf("duplicate name %s", n)
		}
		seen[n] = true
		if !reg.Has(n) {
			t.Errorf("%s not registered", n)
		}
		if ns := n[:strings.IndexByte(n, '.')]; !strings.Contains(" ecommerce onboarding data payments travel media ", " "+ns+" ") {
			t.Errorf("%s: unexpected namespace", n)
		}
	}
	if err := Register(reg); err == nil {
		t.Error("second Register on the same registry succeeded")
	}
}

const orderContext = `{
	"customer": {"email": "Ada@Example.com", "name": "Ada"},
	"items": [{"sku": "BOOK-1", "quantity": 2, "price": 12.5}, {"sku": "PEN-9", "quantity": 1, "price": 3.99}],
	"payment": {"method": "card", "token": "tok_visa"},
	"shipping_method": "express",
	"shipping_address": {"line1": "1 Main St", "city": "Springfield"}
}`

func TestEcommerceFlow(t *testing.T) {
	t.Parallel()
	f := newFlow(t, orderContext)
	o := f.ok("validate_order", "ecommerce.validate_order")
	if o["subtotal"] != 28.99 || o["shipping"] != 5.99 || o["total"] != 34.98 || o["total_cents"] != float64(3498) ||
		o["item_count"] != float64(3) || o["customer_email"] != "ada@example.com" || o["currency"] != "USD" {
		t.Errorf("validate_order = %v", o)
	}
	orderID, _ := o["order_id"].(string)
	if !strings.HasPrefix(orderID, "ord_") {
		t.Errorf("order_id %q", orderID)
	}
	if fr := f.ok("fraud_check", "ecommerce.fraud_check", "validate_order"); fr["decision"] != "approve" || fr["order_id"] != orderID {
		t.Errorf("fraud_check = %v", fr)
	}
	pay := f.ok("process_payment", "ecommerce.process_payment", "validate_order", "fraud_check")
	if pay["amount"] != 34.98 || pay["status"] != "captured" || pay["order_id"] != orderID {
		t.Errorf("process_payment = %v", pay)
	}
	// A retried attempt charges the same payment id.
	again := f.step("process_payment", "ecommerce.process_payment", 2, "", "validate_order", "fraud_check")
	var again2 map[string]any
	_ = json.Unmarshal(again, &again2)
	if again2["payment_id"] != pay["payment_id"] {
		t.Errorf("payment id changed across attempts: %v vs %v", again2["payment_id"], pay["payment_id"])
	}
	inv := f.ok("update_inventory", "ecommerce.update_inventory", "process_payment")
	if rs, _ := inv["reservations"].([]any); len(rs) != 2 {
		t.Errorf("update_inventory = %v", inv)
	}
	sh := f.ok("create_shipment", "ecommerce.create_shipment", "update_inventory", "process_payment")
	if sh["carrier"] != "FedEx Express Saver" || sh["payment_id"] != pay["payment_id"] || sh["address"] == nil ||
		!strings.HasPrefix(sh["tracking_number"].(string), "1Z") {
		t.Errorf("create_shipment = %v", sh)
	}
	c := f.ok("send_confirmation", "ecommerce.send_confirmation", "create_shipment", "process_payment")
	sum, _ := c["summary"].(map[string]any)
	if c["to"] != "ada@example.com" || sum["tracking_number"] != sh["tracking_number"] || sum["payment_id"] != pay["payment_id"] {
		t.Errorf("send_confirmation = %v", c)
	}
}

func TestEcommerceFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		ctx       string
		handler   string
		attempt   int
		permanent bool
		code      string
	}{
		{"empty items", `{"items": []}`, "ecommerce.validate_order", 1, true, "empty_order"},
		{"no items", `{}`, "ecommerce.validate_order", 1, true, "empty_order"},
		{"zero quantity", `{"items": [{"sku": "A", "quantity": 0, "price": 1}]}`, "ecommerce.validate_order", 1, true, "invalid_item"},
		{"bad email", `{"customer_email": "nope", "items": [{"sku": "A", "price": 1}]}`, "ecommerce.validate_order", 1, true, "invalid_email"},
		{"simulated fraud", `{"simulate_fraud": true, "items": [{"sku": "A", "price": 1}]}`, "ecommerce.fraud_check", 1, true, "fraud_suspected"},
		{"declined card", `{"payment": {"token": "tok_declined"}, "items": [{"sku": "A", "price": 1}]}`, "ecommerce.process_payment", 1, true, "card_declined"},
		{"simulated failure 1 of 2", `{"simulate_payment_failures": 2, "items": [{"sku": "A", "price": 1}]}`, "ecommerce.process_payment", 1, false, "gateway_timeout"},
		{"simulated failure 2 of 2", `{"simulate_payment_failures": 2, "items": [{"sku": "A", "price": 1}]}`, "ecommerce.process_payment", 2, false, "gateway_timeout"},
		{"unknown shipping method", `{"shipping_method": "teleport", "items": [{"sku": "A", "price": 1}]}`, "ecommerce.create_shipment", 1, true, "invalid_shipping_method"},
		{"nobody to confirm to", `{"items": [{"sku": "A", "price": 1}]}`, "ecommerce.send_confirmation", 1, true, "no_recipient"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			he := newFlow(t, tt.ctx).fail("s", tt.handler, tt.attempt)
			if he.Permanent != tt.permanent || he.Code != tt.code {
				t.Errorf("got %+v, want permanent=%v code=%s", he, tt.permanent, tt.code)
			}
		})
	}
}

func TestSimulatedPaymentFailuresRecover(t *testing.T) {
	t.Parallel()
	f := newFlow(t, `{"simulate_payment_failures": 2, "cart_items": [{"product_id": 7, "quantity": 3, "price": 20}]}`)
	out := f.step("process_payment", "ecommerce.process_payment", 3, "")
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil || m["status"] != "captured" || m["amount"] != 60.0 || m["attempt"] != 3.0 {
		t.Errorf("attempt 3 = %s", out)
	}
}

func TestOnboardingFlow(t *testing.T) {
	t.Parallel()
	f := newFlow(t, `{"email": "Grace@Example.org", "name": "Grace Hopper", "plan": "team", "company": "Navy Labs"}`)
	a := f.ok("create_account", "onboarding.create_account")
	if a["email"] != "grace@example.org" || !strings.HasPrefix(a["user_id"].(string), "usr_") {
		t.Errorf("create_account = %v", a)
	}
	w := f.ok("send_welcome_email", "onboarding.send_welcome_email", "create_account")
	ws := f.ok("provision_workspace", "onboarding.provision_workspace", "create_account")
	if ws["seats"] != 25.0 || !strings.HasPrefix(ws["slug"].(string), "navy-labs-") || ws["owner_id"] != a["user_id"] {
		t.Errorf("provision_workspace = %v", ws)
	}
	b := f.ok("setup_billing", "onboarding.setup_billing", "create_account")
	if b["monthly_price"] != 99.0 || b["status"] != "trialing" {
		t.Errorf("setup_billing = %v", b)
	}
	act := f.ok("activate", "onboarding.activate", "send_welcome_email", "provision_workspace", "setup_billing")
	if act["status"] != "active" || act["user_id"] != a["user_id"] || act["workspace_id"] != ws["workspace_id"] ||
		act["billing_account_id"] != b["billing_account_id"] || len(act["checklist"].([]any)) != 4 {
		t.Errorf("activate = %v (welcome %v)", act, w)
	}

	if he := newFlow(t, `{"email": "not-an-email"}`).fail("create_account", "onboarding.create_account", 1); !he.Permanent || he.Code != "invalid_email" {
		t.Errorf("bad email: %+v", he)
	}
	if he := newFlow(t, `{"email": "a@b.co", "plan": "platinum"}`).fail("create_account", "onboarding.create_account", 1); !he.Permanent || he.Code != "invalid_plan" {
		t.Errorf("bad plan: %+v", he)
	}
}

func TestDataPipeline(t *testing.T) {
	t.Parallel()
	shapes := []struct {
		name                 string
		enrichAfter          string // parent of transform_enrich
		aggregateParents     []string
		wantCleanedAggregate bool
	}{
		{"linear", "transform_clean", []string{"transform_enrich"}, true},
		{"diamond", "extract", []string{"transform_clean", "transform_enrich"}, true},
	}
	for _, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			t.Parallel()
			f := newFlow(t, `{"source": "orders_db", "record_count": 100, "date": "2025-01-31", "notification_channels": ["#ops"]}`)
			ex := f.ok("extract", "data.extract")
			if ex["record_count"] != 100.0 || len(ex["records"].([]any)) != 100 {
				t.Fatalf("extract = %v", ex["record_count"])
			}
			cl := f.ok("transform_clean", "data.transform_clean", "extract")
			dropped := cl["dropped"].(map[string]any)
			if cl["output_count"].(float64)+dropped["missing_region"].(float64)+dropped["negative_amount"].(float64)+dropped["duplicate_id"].(float64) != 100 ||
				dropped["missing_region"] == 0.0 || dropped["negative_amount"] == 0.0 || dropped["duplicate_id"] == 0.0 {
				t.Errorf("transform_clean = %v / %v", cl["output_count"], dropped)
			}
			f.ok("transform_enrich", "data.transform_enrich", sh.enrichAfter)
			agg := f.ok("transform_aggregate", "data.transform_aggregate", sh.aggregateParents...)
			if agg["total_records"] != cl["output_count"] || agg["cleaned_input"] != sh.wantCleanedAggregate {
				t.Errorf("transform_aggregate = %v records, cleaned %v", agg["total_records"], agg["cleaned_input"])
			}
			v := f.ok("validate", "data.validate", "transform_aggregate")
			if v["valid"] != true {
				t.Errorf("validate = %v", v)
			}
			l := f.ok("load", "data.load", "validate", "transform_aggregate")
			if l["rows_written"] != 4.0 {
				t.Errorf("load = %v", l)
			}
			n := f.ok("notify", "data.notify", "load")
			if ch := n["channels"].([]any); len(ch) != 1 || ch[0] != "#ops" || !strings.Contains(n["message"].(string), "Loaded 4 rows") {
				t.Errorf("notify = %v", n)
			}
		})
	}
	t.Run("dirty data fails validation", func(t *testing.T) {
		t.Parallel()
		f := newFlow(t, `{"record_count": 40}`)
		f.ok("extract", "data.extract")
		f.ok("transform_aggregate", "data.transform_aggregate", "extract")
		if he := f.fail("validate", "data.validate", 1, "transform_aggregate"); !he.Permanent || he.Code != "data_quality" {
			t.Errorf("validate of dirty data: %+v", he)
		}
	})
	t.Run("too many records", func(t *testing.T) {
		t.Parallel()
		if he := newFlow(t, `{"record_count": 5000}`).fail("extract", "data.extract", 1); !he.Permanent {
			t.Errorf("got %+v", he)
		}
	})
}

func TestRefundFlow(t *testing.T) {
	t.Parallel()
	f := newFlow(t, `{"payment_id": "pay_123", "refund_amount": 2500, "original_amount": 10000, "refund_reason": "customer_request", "customer_email": "bob@example.com"}`)
	v := f.ok("validate_refund", "payments.validate_refund")
	if v["eligible"] != true || v["partial"] != true || v["refund_amount"] != 2500.0 {
		t.Errorf("validate_refund = %v", v)
	}
	p := f.ok("process_refund", "payments.process_refund", "validate_refund")
	if p["status"] != "succeeded" || p["amount"] != 2500.0 || p["payment_id"] != "pay_123" {
		t.Errorf("process_refund = %v", p)
	}
	u := f.ok("update_records", "payments.update_records", "process_refund")
	if u["refund_id"] != p["refund_id"] || u["payment_status"] != "partially_refunded" {
		t.Errorf("update_records = %v", u)
	}
	n := f.ok("notify_customer", "payments.notify_customer", "update_records")
	if n["notified"] != true || n["to"] != "bob@example.com" {
		t.Errorf("notify_customer = %v", n)
	}

	bad := []struct {
		ctx, code string
	}{
		{`{"refund_amount": 100}`, "missing_payment_id"},
		{`{"payment_id": "p", "refund_amount": -1}`, "invalid_amount"},
		{`{"payment_id": "p", "refund_amount": 100, "refund_reason": "whim"}`, "invalid_reason"},
		{`{"payment_id": "p", "refund_amount": 100, "original_amount": 50}`, "exceeds_original"},
	}
	for _, b := range bad {
		if he := newFlow(t, b.ctx).fail("validate_refund", "payments.validate_refund", 1); !he.Permanent || he.Code != b.code {
			t.Errorf("%s: got %+v, want %s", b.ctx, he, b.code)
		}
	}
}
