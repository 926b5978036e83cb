package local

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/invoke/invoketest"
)

// fakeLambdas answers by function name, as lambdalocal.Runner would.
type fakeLambdas map[string]func() (json.RawMessage, *contract.LambdaError, error)

func (f fakeLambdas) RunHandler(_ context.Context, handler string, _ []byte, _ time.Time) (json.RawMessage, *contract.LambdaError, bool, error) {
	fn, ok := f[handler]
	if !ok {
		return nil, nil, false, nil
	}
	resp, le, err := fn()
	return resp, le, true, err
}

// A Lambda function run locally yields the record Lambda sends: its
// result on success, an Unhandled function error otherwise.
func TestLambdaRecords(t *testing.T) {
	t.Parallel()
	fakes := fakeLambdas{
		"lambda:ok": func() (json.RawMessage, *contract.LambdaError, error) {
			return json.RawMessage(`{"total":3}`), nil, nil
		},
		"lambda:throw": func() (json.RawMessage, *contract.LambdaError, error) {
			return nil, &contract.LambdaError{ErrorType: "ValueError", ErrorMessage: "bad"}, nil
		},
	}
	one := func(handler string) (contract.DestinationRecord, contract.Result) {
		inv, dest, _ := newInvoker(t, WithLambdas(fakes))
		rec, res, _ := invokeOne(t, inv, dest, handler)
		return rec, res
	}
	rec, res := one("lambda:ok")
	if res.Err != nil || string(res.Output) != `{"total":3}` || rec.ResponseContext.FunctionError != "" {
		t.Fatalf("ok: %+v %s", res.Err, res.Output)
	}
	rec, res = one("lambda:throw")
	if rec.ResponseContext.FunctionError != "Unhandled" || rec.RequestContext.Condition != contract.ConditionRetriesExhausted ||
		res.Err == nil || res.Err.Code != "unhandled" || res.Err.Message != "ValueError: bad" || res.Err.Permanent {
		t.Fatalf("throw: %+v %+v", rec.ResponseContext, res.Err)
	}
	_, res = one("lambda:unmapped")
	if res.Err == nil || res.Err.Code != CodeNotLocal || !res.Err.Permanent {
		t.Fatalf("unmapped: %+v", res.Err)
	}
}

// A function stopped without an outcome sends no record: the step is
// recovered as interrupted, like a crashed local process.
func TestLambdaStoppedSendsNoRecord(t *testing.T) {
	t.Parallel()
	inv, dest, _ := newInvoker(t, WithLambdas(fakeLambdas{
		"lambda:stopped": func() (json.RawMessage, *contract.LambdaError, error) { return nil, nil, context.Canceled },
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := inv.Invoke(ctx, invoketest.NewInvocation(t, "lambda:stopped", 0)); err != nil {
		t.Fatal(err)
	}
	for inv.InFlight() > 0 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	short, cancelShort := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancelShort()
	if recs, err := dest.wait(short, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("records %d, err %v; want none", len(recs), err)
	}
}
