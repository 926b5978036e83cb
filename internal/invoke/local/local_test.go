package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/invoke/invoketest"
	"github.com/taskerhq/tasker/sdk"
)

// capture is a destination queue that keeps what it is sent.
type capture struct {
	mu      sync.Mutex
	bodies  [][]byte
	changed chan struct{}
}

func newCapture() *capture { return &capture{changed: make(chan struct{})} }

func (c *capture) Send(_ context.Context, msgs []engine.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range msgs {
		c.bodies = append(c.bodies, m.Body)
	}
	close(c.changed)
	c.changed = make(chan struct{})
	return nil
}

// wait returns the records once at least n arrived.
func (c *capture) wait(ctx context.Context, n int) ([][]byte, error) {
	for {
		c.mu.Lock()
		if len(c.bodies) >= n {
			out := append([][]byte(nil), c.bodies...)
			c.mu.Unlock()
			return out, nil
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for %d records: %w", n, ctx.Err())
		}
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newInvoker returns an invoker over a registry with test handlers.
func newInvoker(t *testing.T, opts ...Option) (*Invoker, *capture, *sdk.Registry) {
	t.Helper()
	reg := sdk.NewRegistry()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(reg.Register("test.ok", func(_ context.Context, in sdk.Input) (any, error) {
		return map[string]any{"step": in.Step(), "attempt": in.Attempt()}, nil
	}))
	must(reg.Register("test.permanent", func(context.Context, sdk.Input) (any, error) {
		return nil, sdk.Permanent(sdk.WithCode(errors.New("card declined"), "declined"))
	}))
	must(reg.Register("test.retry_after", func(context.Context, sdk.Input) (any, error) {
		return nil, sdk.RetryAfter(errors.New("busy"), 42*time.Second)
	}))
	must(reg.Register("test.panic", func(context.Context, sdk.Input) (any, error) { panic("kaboom") }))
	// A Go handler deployed as its own function runs locally too.
	must(reg.RegisterFunction("lambda:go-function", func(context.Context, sdk.Input) (any, error) { return "own function", nil }))
	dest := newCapture()
	inv := New(reg, dest, append([]Option{WithLogger(quiet()), WithRunOptions(sdk.WithLogger(quiet()))}, opts...)...)
	if err := inv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = inv.Close(ctx)
	})
	return inv, dest, reg
}

func TestConformance(t *testing.T) {
	t.Parallel()
	invoketest.Run(t, func(t *testing.T) invoketest.Harness {
		gate := make(chan struct{})
		inv, dest, reg := newInvoker(t, WithWorkers(4), WithBacklog(8))
		if err := reg.Register("test.block", func(ctx context.Context, _ sdk.Input) (any, error) {
			select {
			case <-gate:
			case <-ctx.Done():
			}
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
		return invoketest.Harness{
			Invoker: inv,
			Delivered: func(ctx context.Context, n int) ([]invoketest.Delivery, error) {
				recs, err := dest.wait(ctx, n)
				out := make([]invoketest.Delivery, len(recs))
				for i, r := range recs {
					var rec contract.DestinationRecord
					if err := json.Unmarshal(r, &rec); err != nil {
						return nil, err
					}
					out[i] = invoketest.Delivery{Payload: rec.RequestPayload, Record: r}
				}
				return out, err
			},
			Throttle: func(t *testing.T) func() {
				// Throttling is stable only once every worker holds a blocked
				// job and the backlog is full: 4 running + 8 queued.
				for range 1000 {
					err := inv.Invoke(context.Background(), invoketest.NewInvocation(t, "test.block", 0))
					if errors.Is(err, ErrThrottled) {
						if inv.InFlight() < 12 {
							time.Sleep(time.Millisecond)
							continue
						}
						return func() { close(gate) }
					}
					if err != nil {
						t.Fatalf("filling the pool: %v", err)
					}
				}
				t.Fatal("the pool never filled up")
				return nil
			},
		}
	})
}

// invokeOne runs handler once and returns its record and parsed result.
func invokeOne(t *testing.T, inv *Invoker, dest *capture, handler string) (contract.DestinationRecord, contract.Result, engine.Invocation) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	in := invoketest.NewInvocation(t, handler, 0)
	if err := inv.Invoke(ctx, in); err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	recs, err := dest.wait(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	var rec contract.DestinationRecord
	if err := json.Unmarshal(recs[0], &rec); err != nil {
		t.Fatal(err)
	}
	res, err := contract.ParseDestinationRecord(recs[0])
	if err != nil {
		t.Fatalf("ParseDestinationRecord: %v", err)
	}
	// The generic message parser must see a result too.
	if m, err := contract.ParseMessage(recs[0]); err != nil || m.Result == nil {
		t.Errorf("ParseMessage: %+v %v", m, err)
	}
	if res.TaskID != in.TaskID || res.StepID != in.StepID || res.Attempt != 1 || res.Step != in.Step {
		t.Errorf("result for the wrong step: %+v", res)
	}
	return rec, res, in
}

func TestRecords(t *testing.T) {
	t.Parallel()
	tests := []struct {
		handler   string
		output    string // success output, exact
		condition string
		fnError   string
		permanent bool
		retry     int
		code      string
		msg       string
	}{
		{handler: "test.ok", output: `{"attempt":1,"step":"conformance_step"}`, condition: "Success"},
		{handler: "tasker.noop", output: `{}`, condition: "Success"},
		{handler: "test.permanent", condition: "Success", permanent: true, code: "declined", msg: "card declined"},
		{handler: "test.retry_after", condition: "Success", retry: 42, msg: "busy"},
		{handler: "test.panic", condition: "Success", code: "panic", msg: "handler panicked: kaboom"},
		{handler: "nope.unknown", condition: "Success", permanent: true, code: sdk.CodeUnknownHandler, msg: `"nope.unknown"`},
		{handler: "arn:aws:lambda:us-east-1:123456789012:function:charge", condition: "Success", permanent: true, code: CodeNotLocal,
			msg: "handler arn:aws:lambda:us-east-1:123456789012:function:charge is a Lambda function that local mode cannot run: map its name in lambdas.local.yaml"},
		{handler: "lambda:charge", condition: "Success", permanent: true, code: CodeNotLocal, msg: "is a Lambda function"},
		{handler: "lambda:go-function", output: `"own function"`, condition: "Success"},
	}
	for _, tt := range tests {
		t.Run(tt.handler, func(t *testing.T) {
			t.Parallel()
			inv, dest, _ := newInvoker(t)
			start := time.Now().Add(-time.Second)
			rec, res, in := invokeOne(t, inv, dest, tt.handler)
			if rec.Version != "1.0" || rec.RequestContext.FunctionArn != FunctionArn ||
				rec.RequestContext.Condition != tt.condition || rec.RequestContext.ApproximateInvokeCount != 1 ||
				rec.ResponseContext.StatusCode != 200 || rec.ResponseContext.ExecutedVersion != "$LATEST" ||
				rec.ResponseContext.FunctionError != tt.fnError {
				t.Errorf("record envelope %+v %+v", rec.RequestContext, rec.ResponseContext)
			}
			if _, err := uuid.Parse(rec.RequestContext.RequestID); err != nil {
				t.Errorf("requestId %q is not a UUID", rec.RequestContext.RequestID)
			}
			if rec.Timestamp.Before(start) || rec.Timestamp.After(time.Now()) || rec.Timestamp.Location() != time.UTC {
				t.Errorf("timestamp %v", rec.Timestamp)
			}
			if string(rec.RequestPayload) != string(in.Payload) {
				t.Error("requestPayload is not the invocation payload")
			}
			if tt.output != "" {
				if res.Err != nil || string(res.Output) != tt.output {
					t.Errorf("got output %s err %+v, want %s", res.Output, res.Err, tt.output)
				}
				return
			}
			if res.Err == nil {
				t.Fatalf("got output %s, want an error", res.Output)
			}
			if res.Err.Permanent != tt.permanent || res.Err.RetryAfterSeconds != tt.retry || res.Err.Code != tt.code ||
				!strings.Contains(res.Err.Message, tt.msg) {
				t.Errorf("got %+v, want permanent=%v retry=%d code=%q message containing %q", res.Err, tt.permanent, tt.retry, tt.code, tt.msg)
			}
		})
	}
}

func TestUnhandledPanicIsRetriesExhausted(t *testing.T) {
	t.Parallel()
	inv, dest, _ := newInvoker(t)
	inv.run = func(context.Context, *sdk.Registry, []byte, ...sdk.Option) []byte {
		panic("runtime exploded")
	}
	rec, res, _ := invokeOne(t, inv, dest, "test.ok")
	if rec.RequestContext.Condition != contract.ConditionRetriesExhausted || rec.ResponseContext.FunctionError != "Unhandled" {
		t.Errorf("record %+v %+v", rec.RequestContext, rec.ResponseContext)
	}
	var le contract.LambdaError
	if err := json.Unmarshal(rec.ResponsePayload, &le); err != nil || le.ErrorMessage != "runtime exploded" || le.ErrorType == "" {
		t.Errorf("responsePayload %s", rec.ResponsePayload)
	}
	if res.Err == nil || res.Err.Permanent || !strings.Contains(res.Err.Message, "runtime exploded") {
		t.Errorf("want a retryable error, got %+v", res.Err)
	}
}

func TestThrottleAndLimits(t *testing.T) {
	t.Parallel()
	inv, dest, reg := newInvoker(t, WithWorkers(1), WithBacklog(1), WithMaxPayloadBytes(2048))
	gate := make(chan struct{})
	started := make(chan struct{}, 10)
	if err := reg.Register("test.block", func(ctx context.Context, _ sdk.Input) (any, error) {
		started <- struct{}{}
		<-gate
		return "done", nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	big := invoketest.NewInvocation(t, "test.ok", 2049)
	if err := inv.Invoke(ctx, big); !errors.Is(err, engine.ErrPayloadTooLarge) {
		t.Errorf("oversized: %v", err)
	}
	bad := invoketest.NewInvocation(t, "test.ok", 0)
	bad.Payload = []byte(`{"tasker":`)
	if err := inv.Invoke(ctx, bad); err == nil || errors.Is(err, engine.ErrPayloadTooLarge) {
		t.Errorf("invalid JSON: %v", err)
	}

	// One running, one waiting, then the pool is full.
	if err := inv.Invoke(ctx, invoketest.NewInvocation(t, "test.block", 0)); err != nil {
		t.Fatal(err)
	}
	<-started
	if err := inv.Invoke(ctx, invoketest.NewInvocation(t, "test.block", 0)); err != nil {
		t.Fatalf("the backlog should take one: %v", err)
	}
	err := inv.Invoke(ctx, invoketest.NewInvocation(t, "test.block", 0))
	if !errors.Is(err, ErrThrottled) || errors.Is(err, engine.ErrPayloadTooLarge) {
		t.Fatalf("full pool: %v", err)
	}
	if n := inv.InFlight(); n != 2 {
		t.Errorf("InFlight = %d, want 2", n)
	}
	close(gate)
	if _, err := dest.wait(ctx, 2); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for inv.InFlight() != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := inv.InFlight(); n != 0 {
		t.Errorf("InFlight = %d after all records, want 0", n)
	}
}

func TestCloseDrains(t *testing.T) {
	t.Parallel()
	inv, dest, reg := newInvoker(t, WithWorkers(2))
	if err := reg.Register("test.slow", func(ctx context.Context, _ sdk.Input) (any, error) {
		time.Sleep(20 * time.Millisecond)
		return "ok", nil
	}); err != nil {
		t.Fatal(err)
	}
	const n = 10
	for range n {
		if err := inv.Invoke(context.Background(), invoketest.NewInvocation(t, "test.slow", 0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := inv.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if recs, _ := dest.wait(context.Background(), 0); len(recs) != n {
		t.Errorf("%d records after Close, want %d", len(recs), n)
	}
	if err := inv.Invoke(context.Background(), invoketest.NewInvocation(t, "test.ok", 0)); !errors.Is(err, ErrClosed) {
		t.Errorf("Invoke after Close: %v", err)
	}
	if err := inv.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestCloseGivesUp(t *testing.T) {
	t.Parallel()
	inv, dest, reg := newInvoker(t, WithWorkers(1))
	started := make(chan struct{})
	if err := reg.Register("test.wait", func(ctx context.Context, _ sdk.Input) (any, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	}); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register("test.never", func(context.Context, sdk.Input) (any, error) {
		t.Error("a queued invocation ran after Close gave up")
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"test.wait", "test.never"} {
		if err := inv.Invoke(context.Background(), invoketest.NewInvocation(t, h, 0)); err != nil {
			t.Fatal(err)
		}
	}
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := inv.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want deadline exceeded", err)
	}
	// The running handler saw the cancellation; its record still arrives.
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer wcancel()
	recs, err := dest.wait(wctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	res, err := contract.ParseDestinationRecord(recs[0])
	if err != nil || res.Err == nil || res.Err.Permanent {
		t.Errorf("interrupted handler: %+v %v", res.Err, err)
	}
	if err := inv.Close(context.Background()); err != nil {
		t.Errorf("Close after workers finished: %v", err)
	}
	if n := inv.InFlight(); n != 0 {
		t.Errorf("InFlight = %d", n)
	}
}

func BenchmarkInvokeNoop(b *testing.B) {
	reg := sdk.NewRegistry()
	dest := newCapture()
	inv := New(reg, dest, WithBacklog(b.N+1))
	if err := inv.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	payload := invoketest.NewInvocation(b, "tasker.noop", 0)
	b.ResetTimer()
	for range b.N {
		if err := inv.Invoke(context.Background(), payload); err != nil {
			b.Fatal(err)
		}
	}
	if err := inv.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
}

// withDeadline returns in with its payload's tasker.deadline set to d.
func withDeadline(t *testing.T, in engine.Invocation, d time.Time) engine.Invocation {
	t.Helper()
	var p contract.Payload
	if err := json.Unmarshal(in.Payload, &p); err != nil {
		t.Fatal(err)
	}
	p.Tasker.Deadline = d
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	in.Payload = b
	return in
}

// A handler that ignores its context and never returns does not hold its
// worker past the deadline: the attempt gets a retryable timeout, the
// worker runs the next invocation, and while WithMaxAbandoned handlers are
// abandoned Invoke refuses with a retryable ErrAbandoned.
func TestHandlerIgnoringItsDeadlineIsAbandoned(t *testing.T) {
	t.Parallel()
	inv, dest, reg := newInvoker(t, WithWorkers(1), WithAbandonGrace(50*time.Millisecond), WithMaxAbandoned(1))
	release := make(chan struct{})
	defer close(release)
	if err := reg.Register("test.stuck", func(context.Context, sdk.Input) (any, error) {
		<-release // ignores ctx
		return "late", nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stuck := withDeadline(t, invoketest.NewInvocation(t, "test.stuck", 0), time.Now().Add(100*time.Millisecond))
	start := time.Now()
	if err := inv.Invoke(ctx, stuck); err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	recs, err := dest.wait(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("timeout reported after %s", took)
	}
	res, err := contract.ParseDestinationRecord(recs[0])
	if err != nil {
		t.Fatal(err)
	}
	if res.Err == nil || res.Err.Permanent || res.Err.Code != sdk.CodeTimeout || !strings.Contains(res.Err.Message, "abandoned") {
		t.Fatalf("result %+v, want a retryable timeout", res.Err)
	}
	if inv.Abandoned() != 1 || inv.AbandonedTotal() != 1 {
		t.Errorf("Abandoned() = %d, AbandonedTotal() = %d, want 1, 1", inv.Abandoned(), inv.AbandonedTotal())
	}
	// The abandoned limit is reached: new invocations are refused, retryably.
	if err := inv.Invoke(ctx, invoketest.NewInvocation(t, "test.ok", 0)); !errors.Is(err, ErrAbandoned) {
		t.Fatalf("Invoke with the abandoned limit reached = %v, want ErrAbandoned", err)
	}
	// Once the handler returns, the slot is back, and the single worker
	// (freed at the deadline) runs the next invocation.
	release <- struct{}{}
	deadline := time.Now().Add(5 * time.Second)
	for inv.Abandoned() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if inv.Abandoned() != 0 {
		t.Fatalf("Abandoned() = %d after the handler returned", inv.Abandoned())
	}
	if err := inv.Invoke(ctx, invoketest.NewInvocation(t, "test.ok", 0)); err != nil {
		t.Fatalf("Invoke after the abandoned handler returned: %v", err)
	}
	recs, err = dest.wait(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := contract.ParseDestinationRecord(recs[1]); err != nil || res.Err != nil {
		t.Fatalf("second record: %+v %v", res, err)
	}
	if len(recs) != 2 {
		t.Errorf("%d records, want 2 (the abandoned handler's late result is dropped)", len(recs))
	}
}

// The freed worker does not wait for the stuck handler: with one worker, a
// second invocation runs while the first handler is still blocked.
func TestAbandonedHandlerFreesItsWorker(t *testing.T) {
	t.Parallel()
	inv, dest, reg := newInvoker(t, WithWorkers(1), WithAbandonGrace(0), WithMaxAbandoned(4))
	release := make(chan struct{})
	defer close(release)
	if err := reg.Register("test.stuck", func(context.Context, sdk.Input) (any, error) {
		<-release
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := inv.Invoke(ctx, withDeadline(t, invoketest.NewInvocation(t, "test.stuck", 0), time.Now().Add(50*time.Millisecond))); err != nil {
		t.Fatal(err)
	}
	if err := inv.Invoke(ctx, invoketest.NewInvocation(t, "test.ok", 0)); err != nil {
		t.Fatal(err)
	}
	recs, err := dest.wait(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := contract.ParseDestinationRecord(recs[1]); err != nil || res.Err != nil {
		t.Fatalf("second record: %+v %v", res, err)
	}
	if inv.Abandoned() != 1 {
		t.Errorf("Abandoned() = %d, want 1", inv.Abandoned())
	}
}
