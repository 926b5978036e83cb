// Package sdktest runs step handlers in tests: build an invocation payload
// with Invocation, run a handler exactly as the handlers Lambda and `tasker
// dev` would (sdk.Run: decoding, deadline, panic recovery, the result size
// limit, the error envelope), and assert on the response.
//
//	resp := sdktest.Run(t, billing.Charge, sdktest.Invocation{
//		Context: map[string]any{"amount": 42},
//	})
//	resp.AssertFailure(t, true, "card_declined")
package sdktest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/sdk"
	"github.com/taskerhq/tasker/sdk/contract"
)

// DefaultHandler is the name Run registers a handler under when the
// Invocation names none.
const DefaultHandler = "sdktest.handler"

// DefaultTaskID is the task id of an Invocation that sets none.
const DefaultTaskID = "00000000-0000-4000-8000-000000000001"

// Invocation describes one invocation payload; zero fields get defaults.
type Invocation struct {
	Handler string // default DefaultHandler
	Step    string // default "step"
	// Context, Config and Results[step] are encoded as JSON; a
	// json.RawMessage is used as it is.
	Context any
	Config  any
	Results map[string]any
	TaskID  uuid.UUID // default DefaultTaskID
	// Attempt defaults to 1, MaxAttempts to 3.
	Attempt, MaxAttempts int
	// OperatorRetries is how many times an operator retried the task: it
	// is part of the idempotency key.
	OperatorRetries int
	// Timeout sets the payload's deadline from now (default none).
	Timeout       time.Duration
	CorrelationID string // default "sdktest"
	CallbackToken string
}

// Payload builds the invocation payload; it fails t when a value cannot
// be encoded.
func (inv Invocation) Payload(t testing.TB) contract.Payload {
	t.Helper()
	if inv.Handler == "" {
		inv.Handler = DefaultHandler
	}
	if inv.Step == "" {
		inv.Step = "step"
	}
	if inv.TaskID == uuid.Nil {
		inv.TaskID = uuid.MustParse(DefaultTaskID)
	}
	if inv.Attempt == 0 {
		inv.Attempt = 1
	}
	if inv.MaxAttempts == 0 {
		inv.MaxAttempts = 3
	}
	if inv.CorrelationID == "" {
		inv.CorrelationID = "sdktest"
	}
	p := contract.Payload{
		Tasker: contract.Meta{
			Version: contract.PayloadVersion, TaskID: inv.TaskID, StepID: uuid.NewSHA1(inv.TaskID, []byte(inv.Step)),
			Step: inv.Step, Handler: inv.Handler, Attempt: inv.Attempt, MaxAttempts: inv.MaxAttempts,
			Namespace: "sdktest", Workflow: "sdktest", WorkflowVersion: "1.0.0",
			IdempotencyKey: contract.IdempotencyKey(inv.TaskID, inv.Step, inv.OperatorRetries),
			CorrelationID:  inv.CorrelationID, CallbackToken: inv.CallbackToken,
		},
		Context: encode(t, "Context", inv.Context),
		Config:  encode(t, "Config", inv.Config),
		Results: map[string]json.RawMessage{},
	}
	if inv.Timeout > 0 {
		p.Tasker.Deadline = time.Now().Add(inv.Timeout).UTC()
	}
	for step, r := range inv.Results {
		p.Results[step] = encode(t, "Results["+step+"]", r)
	}
	return p
}

func encode(t testing.TB, what string, v any) json.RawMessage {
	t.Helper()
	if v == nil {
		return json.RawMessage(`{}`)
	}
	if raw, ok := v.(json.RawMessage); ok {
		return raw
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("sdktest: encode Invocation.%s: %v", what, err)
	}
	return b
}

// Run registers h under inv.Handler in a fresh registry (which also holds
// the built-ins) and runs the invocation through sdk.Run.
func Run(t testing.TB, h sdk.Handler, inv Invocation, opts ...sdk.Option) Response {
	t.Helper()
	if inv.Handler == "" {
		inv.Handler = DefaultHandler
	}
	reg := sdk.NewRegistry()
	if err := reg.Register(inv.Handler, h); err != nil {
		t.Fatalf("sdktest: %v", err)
	}
	return RunRegistry(t, reg, inv, opts...)
}

// RunRegistry runs the invocation against reg, e.g. one your package's
// Register function filled.
func RunRegistry(t testing.TB, reg *sdk.Registry, inv Invocation, opts ...sdk.Option) Response {
	t.Helper()
	payload, err := json.Marshal(inv.Payload(t))
	if err != nil {
		t.Fatalf("sdktest: encode payload: %v", err)
	}
	return Response{Raw: sdk.Run(context.Background(), reg, payload, opts...)}
}

// Response is what a handler invocation answered: a result, an error
// envelope or a tasker_pending answer.
type Response struct {
	Raw json.RawMessage
}

// Failure returns the handled failure the response reports, if any.
func (r Response) Failure() (contract.HandlerError, bool) {
	he, ok := contract.AsHandlerError(r.Raw)
	if !ok {
		return contract.HandlerError{}, false
	}
	return *he, true
}

// AssertOK fails t unless the response is a result (neither a failure nor
// a tasker_pending answer) and decodes it into dst when dst is not nil.
func (r Response) AssertOK(t testing.TB, dst any) {
	t.Helper()
	if he, ok := r.Failure(); ok {
		t.Fatalf("handler failed: %s (permanent %v, code %q)", he.Message, he.Permanent, he.Code)
	}
	if _, _, ok := contract.AsPending(r.Raw); ok {
		t.Fatalf("handler answered tasker_pending: %s", r.Raw)
	}
	if dst != nil {
		if err := json.Unmarshal(r.Raw, dst); err != nil {
			t.Fatalf("decode result %s: %v", r.Raw, err)
		}
	}
}

// AssertFailure fails t unless the response is an error envelope with the
// given permanence and code, and returns it.
func (r Response) AssertFailure(t testing.TB, permanent bool, code string) contract.HandlerError {
	t.Helper()
	he, ok := r.Failure()
	if !ok {
		t.Fatalf("handler succeeded with %s, want a failure", r.Raw)
	}
	if he.Permanent != permanent || he.Code != code {
		t.Fatalf("failure %q has permanent %v and code %q, want %v and %q", he.Message, he.Permanent, he.Code, permanent, code)
	}
	return he
}

// AssertPending fails t unless the response is a well-formed
// tasker_pending answer, and returns its timeout.
func (r Response) AssertPending(t testing.TB) time.Duration {
	t.Helper()
	secs, failure, ok := contract.AsPending(r.Raw)
	if !ok {
		t.Fatalf("response %s is not tasker_pending", r.Raw)
	}
	if failure != nil {
		t.Fatalf("malformed tasker_pending: %s", failure.Message)
	}
	return time.Duration(secs) * time.Second
}
