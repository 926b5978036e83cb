package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/taskerhq/tasker/sdk/contract"
)

var (
	testTaskID = uuid.MustParse("6f1c1d3e-8d8a-4a6e-9c55-0d7d0b1f0a01")
	testStepID = uuid.MustParse("0b6ad4f2-3c1e-4c51-8f0e-0b8a4c7d9e02")
)

// testPayload builds an invocation payload for handler with the given JSON
// context, config and parent results.
func testPayload(t *testing.T, handler, ctxJSON, cfgJSON string, results map[string]string) []byte {
	t.Helper()
	p := contract.Payload{
		Tasker: contract.Meta{
			Version: contract.PayloadVersion, TaskID: testTaskID, StepID: testStepID,
			Step: "process_payment", Handler: handler, Attempt: 2, MaxAttempts: 3,
			Namespace: "ecommerce", Workflow: "process_order", WorkflowVersion: "1.0.0",
			IdempotencyKey: contract.IdempotencyKey(testTaskID, "process_payment", 2),
			CorrelationID:  "corr-1",
		},
	}
	if ctxJSON != "" {
		p.Context = json.RawMessage(ctxJSON)
	}
	if cfgJSON != "" {
		p.Config = json.RawMessage(cfgJSON)
	}
	if results != nil {
		p.Results = map[string]json.RawMessage{}
		for k, v := range results {
			p.Results[k] = json.RawMessage(v)
		}
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestRunResponses(t *testing.T) {
	t.Parallel()
	errBoom := errors.New("boom")
	tests := []struct {
		name string
		h    Handler
		want string
	}{
		{"object result", func(context.Context, Input) (any, error) {
			return map[string]any{"ok": true, "n": 3}, nil
		}, `{"n":3,"ok":true}`},
		{"raw JSON result", func(context.Context, Input) (any, error) {
			return json.RawMessage(` [1, 2] `), nil
		}, `[1,2]`},
		{"nil result", func(context.Context, Input) (any, error) { return nil, nil }, `null`},
		{"plain error is retryable", func(context.Context, Input) (any, error) { return nil, errBoom },
			`{"tasker_error":{"message":"boom","permanent":false,"retry_after_seconds":0,"code":""}}`},
		{"permanent", func(context.Context, Input) (any, error) { return nil, Permanent(errBoom) },
			`{"tasker_error":{"message":"boom","permanent":true,"retry_after_seconds":0,"code":""}}`},
		{"retry after rounds up", func(context.Context, Input) (any, error) {
			return nil, RetryAfter(errBoom, 1500*time.Millisecond)
		}, `{"tasker_error":{"message":"boom","permanent":false,"retry_after_seconds":2,"code":""}}`},
		{"stacked helpers", func(context.Context, Input) (any, error) {
			return nil, Permanent(WithCode(RetryAfter(errBoom, 30*time.Second), "card_declined"))
		}, `{"tasker_error":{"message":"boom","permanent":true,"retry_after_seconds":30,"code":"card_declined"}}`},
		{"wrapped helper keeps outer message", func(context.Context, Input) (any, error) {
			return nil, fmt.Errorf("charge: %w", Permanent(WithCode(errBoom, "declined")))
		}, `{"tasker_error":{"message":"charge: boom","permanent":true,"retry_after_seconds":0,"code":"declined"}}`},
		{"deadline exceeded gets timeout code", func(context.Context, Input) (any, error) {
			return nil, fmt.Errorf("call upstream: %w", context.DeadlineExceeded)
		}, `{"tasker_error":{"message":"call upstream: context deadline exceeded","permanent":false,"retry_after_seconds":0,"code":"timeout"}}`},
		{"panic", func(context.Context, Input) (any, error) { panic("kaboom") },
			`{"tasker_error":{"message":"handler panicked: kaboom","permanent":false,"retry_after_seconds":0,"code":"panic"}}`},
		{"unencodable result", func(context.Context, Input) (any, error) { return make(chan int), nil },
			`{"tasker_error":{"message":"handler \"t.h\" returned a result that is not JSON-encodable: json: unsupported type: chan int","permanent":true,"retry_after_seconds":0,"code":"invalid_result"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			reg := NewRegistry()
			if err := reg.Register("t.h", tt.h); err != nil {
				t.Fatal(err)
			}
			got := string(Run(context.Background(), reg, testPayload(t, "t.h", "", "", nil), WithLogger(quietLogger())))
			if got != tt.want {
				t.Errorf("response\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestRunRejects(t *testing.T) {
	t.Parallel()
	reg := NewRegistry()
	tests := []struct {
		name    string
		payload []byte
		code    string
		msg     string
	}{
		{"unknown handler", testPayload(t, "nope.missing", "", "", nil), CodeUnknownHandler, `no handler registered under "nope.missing"`},
		{"not JSON", []byte(`{"tasker":`), CodeInvalidPayload, "invalid invocation payload"},
		{"no handler name", []byte(`{"tasker":{"step":"a"}}`), CodeInvalidPayload, "tasker.handler is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			he, ok := contract.AsHandlerError(Run(context.Background(), reg, tt.payload))
			if !ok {
				t.Fatal("not an error envelope")
			}
			if !he.Permanent || he.Code != tt.code || !strings.Contains(he.Message, tt.msg) {
				t.Errorf("got %+v, want permanent code %q message containing %q", he, tt.code, tt.msg)
			}
		})
	}
}

func TestRunResultLimit(t *testing.T) {
	t.Parallel()
	reg := NewRegistry()
	if err := reg.Register("t.big", func(context.Context, Input) (any, error) {
		return strings.Repeat("x", 20), nil // 22 bytes encoded
	}); err != nil {
		t.Fatal(err)
	}
	p := testPayload(t, "t.big", "", "", nil)
	want := `{"tasker_error":{"message":"result is 22 bytes, over the 10-byte limit","permanent":true,"retry_after_seconds":0,"code":"result_too_large"}}`
	if got := string(Run(context.Background(), reg, p, WithMaxResultBytes(10))); got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	if got := string(Run(context.Background(), reg, p, WithMaxResultBytes(22))); got != `"`+strings.Repeat("x", 20)+`"` {
		t.Errorf("at the limit: got %s", got)
	}
	if got := string(Run(context.Background(), reg, p)); !strings.HasPrefix(got, `"x`) {
		t.Errorf("default limit: got %s", got)
	}
}

func TestRunAppliesDeadline(t *testing.T) {
	t.Parallel()
	reg := NewRegistry()
	var sawDeadline time.Time
	if err := reg.Register("t.slow", func(ctx context.Context, in Input) (any, error) {
		sawDeadline, _ = ctx.Deadline()
		<-ctx.Done()
		return nil, ctx.Err()
	}); err != nil {
		t.Fatal(err)
	}
	var p contract.Payload
	if err := json.Unmarshal(testPayload(t, "t.slow", "", "", nil), &p); err != nil {
		t.Fatal(err)
	}
	p.Tasker.Deadline = time.Now().Add(50 * time.Millisecond).UTC()
	b, _ := json.Marshal(p)
	he, ok := contract.AsHandlerError(Run(context.Background(), reg, b))
	if !ok || he.Permanent || he.Code != CodeTimeout {
		t.Fatalf("got %+v, want retryable timeout", he)
	}
	if !sawDeadline.Equal(p.Tasker.Deadline) {
		t.Errorf("handler deadline %v, want %v", sawDeadline, p.Tasker.Deadline)
	}
}

func TestLambdaHandler(t *testing.T) {
	t.Parallel()
	reg := NewRegistry()
	fn := LambdaHandler(reg)
	out, err := fn(context.Background(), testPayload(t, BuiltinNoop, "", "", nil))
	if err != nil || string(out) != `{}` {
		t.Errorf("noop: %s, %v", out, err)
	}
	out, err = fn(context.Background(), testPayload(t, "x.unknown", "", "", nil))
	if err != nil {
		t.Fatalf("handled failures must not be Lambda errors: %v", err)
	}
	if he, ok := contract.AsHandlerError(out); !ok || !he.Permanent {
		t.Errorf("unknown handler: %s", out)
	}
}

func TestErrorHelpers(t *testing.T) {
	t.Parallel()
	base := errors.New("base")
	if Permanent(nil) != nil || RetryAfter(nil, time.Second) != nil || WithCode(nil, "c") != nil {
		t.Error("helpers must map nil to nil")
	}
	err := fmt.Errorf("outer: %w", RetryAfter(Permanent(base), 5*time.Second))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatal("errors.As found no *Error")
	}
	if !e.Permanent || e.RetryAfter != 5*time.Second {
		t.Errorf("got %+v", e)
	}
	if !errors.Is(err, base) {
		t.Error("the chain lost the base error")
	}
	he := HandlerError(err)
	if he.Message != "outer: base" || !he.Permanent || he.RetryAfterSeconds != 5 {
		t.Errorf("HandlerError = %+v", he)
	}
}

func TestInputAccessors(t *testing.T) {
	t.Parallel()
	raw := testPayload(t, "t.h",
		`{"customer":{"email":"a@example.com","tier":2},"items":[{"sku":"A"},{"sku":"B"}],"flag":true,"none":null}`,
		`{"url":"https://x","retries":3,"strict":false,"nested":{"a":1}}`,
		map[string]string{"validate_order": `{"total":12.5}`})
	var p contract.Payload
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	in := newInputRaw(&p, raw)

	if in.TaskID() != testTaskID || in.StepID() != testStepID || in.Step() != "process_payment" ||
		in.Attempt() != 2 || in.MaxAttempts() != 3 || in.Handler() != "t.h" || in.CorrelationID() != "corr-1" {
		t.Errorf("meta accessors wrong: %+v", in.Meta())
	}
	if want := testTaskID.String() + "/process_payment/2"; in.IdempotencyKey() != want {
		t.Errorf("IdempotencyKey = %q, want %q", in.IdempotencyKey(), want)
	}
	if !in.Deadline().IsZero() {
		t.Error("deadline should be zero")
	}
	if string(in.Raw()) != string(raw) {
		t.Error("Raw must return the received bytes")
	}

	var c struct {
		Customer struct{ Email string } `json:"customer"`
	}
	if err := in.Context(&c); err != nil || c.Customer.Email != "a@example.com" {
		t.Errorf("Context: %+v %v", c, err)
	}

	values := []struct {
		path string
		want any
		ok   bool
	}{
		{"customer.email", "a@example.com", true},
		{"customer.tier", float64(2), true},
		{"items.1.sku", "B", true},
		{"items.2.sku", nil, false},
		{"items.x", nil, false},
		{"flag", true, true},
		{"none", nil, true},
		{"missing", nil, false},
		{"customer.email.more", nil, false},
	}
	for _, v := range values {
		got, ok := in.ContextValue(v.path)
		if ok != v.ok || (ok && got != v.want) {
			t.Errorf("ContextValue(%q) = %v, %v; want %v, %v", v.path, got, ok, v.want, v.ok)
		}
	}

	strs := []struct{ key, def, want string }{
		{"url", "d", "https://x"},
		{"retries", "d", "3"},
		{"strict", "d", "false"},
		{"nested", "d", "d"},
		{"absent", "d", "d"},
		{"nested.a", "d", "1"},
	}
	for _, s := range strs {
		if got := in.ConfigString(s.key, s.def); got != s.want {
			t.Errorf("ConfigString(%q) = %q, want %q", s.key, got, s.want)
		}
	}
	var cfg struct{ Retries int }
	if err := in.Config(&cfg); err != nil || cfg.Retries != 3 {
		t.Errorf("Config: %+v %v", cfg, err)
	}

	var r struct{ Total float64 }
	if err := in.Result("validate_order", &r); err != nil || r.Total != 12.5 {
		t.Errorf("Result: %+v %v", r, err)
	}
	if err := in.Result("fraud_check", &r); err == nil || !strings.Contains(err.Error(), `"fraud_check"`) {
		t.Errorf("absent Result error should name the step: %v", err)
	}
	if len(in.Results()) != 1 {
		t.Errorf("Results = %v", in.Results())
	}

	var zero Input
	if zero.Step() != "" || len(zero.Results()) != 0 || zero.Context(&c) != nil {
		t.Error("the zero Input must behave as an empty payload")
	}
	if _, ok := zero.ContextValue("a"); ok {
		t.Error("zero Input has no context values")
	}
	if ni := NewInput(p); !strings.Contains(string(ni.Raw()), `"process_payment"`) {
		t.Errorf("NewInput Raw = %s", ni.Raw())
	}
}

func TestRegistry(t *testing.T) {
	t.Parallel()
	reg := NewRegistry()
	h := func(context.Context, Input) (any, error) { return nil, nil }
	for _, b := range []string{BuiltinNoop, BuiltinHTTP} {
		if !reg.Has(b) {
			t.Errorf("built-in %s missing", b)
		}
	}
	if err := reg.Register("ecommerce.validate_order", h); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name string
		h    Handler
	}{
		{"ecommerce.validate_order", h}, // duplicate
		{"", h},
		{"has space", h},
		{".leading_dot", h},
		{"tasker.custom", h},
		{"arn:aws:lambda:us-east-1:1:function:f", h},
		{"lambda:f", h},
		{strings.Repeat("a", 201), h},
		{"ok.name", nil},
	}
	for _, b := range bad {
		if err := reg.Register(b.name, b.h); err == nil {
			t.Errorf("Register(%q) succeeded, want error", b.name)
		}
	}
	for _, good := range []string{"Ecommerce::StepHandlers::ValidateCart", "a", "ns/step-1"} {
		if err := reg.Register(good, h); err != nil {
			t.Errorf("Register(%q): %v", good, err)
		}
	}
	if _, ok := reg.Lookup("ecommerce.validate_order"); !ok {
		t.Error("Lookup failed")
	}
	names := reg.Names()
	want := []string{"Ecommerce::StepHandlers::ValidateCart", "a", "ecommerce.validate_order", "ns/step-1", "tasker.callback", "tasker.http", "tasker.noop"}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("Names = %v, want %v", names, want)
	}
	var loader interface{ Has(string) bool } = reg
	_ = loader
}

func TestRegisterFunction(t *testing.T) {
	t.Parallel()
	h := func(context.Context, Input) (any, error) { return "ran", nil }
	tests := []struct {
		name    string
		handler Handler
		wantErr string
	}{
		{name: "lambda:tasker-shop-check", handler: h},
		{name: "lambda:billing_charge", handler: h},
		{name: "shop.check", handler: h, wantErr: `want "lambda:"`},
		{name: "lambda:", handler: h, wantErr: `want "lambda:"`},
		{name: "lambda:a.b", handler: h, wantErr: `want "lambda:"`},
		{name: "lambda:x", wantErr: "nil handler"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			reg := NewRegistry()
			err := reg.RegisterFunction(tt.name, tt.handler)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := reg.RegisterFunction(tt.name, tt.handler); err == nil {
				t.Fatal("duplicate registered")
			}
			if got := string(Run(context.Background(), reg, testPayload(t, tt.name, "", "", nil))); got != `"ran"` {
				t.Fatalf("run: %s", got)
			}
		})
	}
}
