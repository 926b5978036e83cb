package sdktest_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/taskerhq/tasker/sdk"
	"github.com/taskerhq/tasker/sdk/sdktest"
)

// charge is a handler as a user would write one.
func charge(ctx context.Context, in sdk.Input) (any, error) {
	var order struct {
		Amount int `json:"amount"`
	}
	if err := in.Context(&order); err != nil {
		return nil, sdk.Permanent(err)
	}
	var prev struct {
		OK bool `json:"ok"`
	}
	if err := in.Result("validate", &prev); err != nil {
		return nil, sdk.Permanent(err)
	}
	switch {
	case order.Amount <= 0:
		return nil, sdk.Permanent(sdk.WithCode(errors.New("nothing to charge"), "empty_order"))
	case order.Amount > 1000:
		return sdk.Pending(time.Hour), nil // a human approves it
	case in.Attempt() == 1:
		return nil, sdk.RetryAfter(errors.New("gateway busy"), 5*time.Second)
	}
	return map[string]any{"charged": order.Amount, "key": in.IdempotencyKey()}, nil
}

func TestRun(t *testing.T) {
	t.Parallel()
	validated := map[string]any{"validate": map[string]any{"ok": true}}
	t.Run("result", func(t *testing.T) {
		t.Parallel()
		resp := sdktest.Run(t, charge, sdktest.Invocation{Step: "charge", Attempt: 2,
			Context: map[string]any{"amount": 42}, Results: validated})
		var got struct {
			Charged int    `json:"charged"`
			Key     string `json:"key"`
		}
		resp.AssertOK(t, &got)
		if got.Charged != 42 || got.Key != sdktest.DefaultTaskID+"/charge" {
			t.Fatalf("result %+v", got)
		}
	})
	t.Run("operator retry changes the key", func(t *testing.T) {
		t.Parallel()
		resp := sdktest.Run(t, charge, sdktest.Invocation{Step: "charge", Attempt: 4, OperatorRetries: 1,
			Context: map[string]any{"amount": 42}, Results: validated})
		var got struct{ Key string }
		resp.AssertOK(t, &got)
		if got.Key != sdktest.DefaultTaskID+"/charge/1" {
			t.Fatalf("key %q", got.Key)
		}
	})
	t.Run("retryable failure", func(t *testing.T) {
		t.Parallel()
		resp := sdktest.Run(t, charge, sdktest.Invocation{Context: map[string]any{"amount": 42}, Results: validated})
		if he := resp.AssertFailure(t, false, ""); he.RetryAfterSeconds != 5 || he.Message != "gateway busy" {
			t.Fatalf("failure %+v", he)
		}
	})
	t.Run("permanent failure", func(t *testing.T) {
		t.Parallel()
		resp := sdktest.Run(t, charge, sdktest.Invocation{Context: map[string]any{"amount": 0}, Results: validated})
		resp.AssertFailure(t, true, "empty_order")
	})
	t.Run("missing parent result", func(t *testing.T) {
		t.Parallel()
		resp := sdktest.Run(t, charge, sdktest.Invocation{Context: map[string]any{"amount": 1}})
		resp.AssertFailure(t, true, "")
	})
	t.Run("pending", func(t *testing.T) {
		t.Parallel()
		resp := sdktest.Run(t, charge, sdktest.Invocation{Context: map[string]any{"amount": 5000}, Results: validated})
		if d := resp.AssertPending(t); d != time.Hour {
			t.Fatalf("pending for %s", d)
		}
	})
	t.Run("panic", func(t *testing.T) {
		t.Parallel()
		resp := sdktest.Run(t, func(context.Context, sdk.Input) (any, error) { panic("bug") }, sdktest.Invocation{})
		resp.AssertFailure(t, false, sdk.CodePanic)
	})
	t.Run("registry", func(t *testing.T) {
		t.Parallel()
		resp := sdktest.RunRegistry(t, sdk.NewRegistry(), sdktest.Invocation{Handler: "billing.unknown"})
		resp.AssertFailure(t, true, sdk.CodeUnknownHandler)
	})
}

// The assertions fail the test they are given.
func TestAssertionsFail(t *testing.T) {
	t.Parallel()
	ok := sdktest.Run(t, func(context.Context, sdk.Input) (any, error) { return "done", nil }, sdktest.Invocation{})
	failed := sdktest.Run(t, func(context.Context, sdk.Input) (any, error) { return nil, errors.New("x") }, sdktest.Invocation{})
	tests := []struct {
		name   string
		assert func(testing.TB)
	}{
		{"AssertOK on a failure", func(tb testing.TB) { failed.AssertOK(tb, nil) }},
		{"AssertFailure on a result", func(tb testing.TB) { ok.AssertFailure(tb, false, "") }},
		{"AssertFailure with the wrong permanence", func(tb testing.TB) { failed.AssertFailure(tb, true, "") }},
		{"AssertPending on a result", func(tb testing.TB) { ok.AssertPending(tb) }},
		{"unencodable context", func(tb testing.TB) { sdktest.Invocation{Context: func() {}}.Payload(tb) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := &recorder{TB: t}
			done := make(chan struct{})
			go func() { // Fatalf ends the goroutine through runtime.Goexit
				defer close(done)
				tt.assert(rec)
			}()
			<-done
			if !rec.failed {
				t.Fatal("assertion passed")
			}
		})
	}
}

type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = true
	_ = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
