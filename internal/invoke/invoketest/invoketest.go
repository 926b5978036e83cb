// Package invoketest is the conformance suite for engine.Invoker adapters:
// the in-process invoker runs it with a capturing destination queue, the
// Lambda invoker with a fake Lambda endpoint that captures requests.
package invoketest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/domain"
	"github.com/taskerhq/tasker/internal/engine"
)

// DefaultMaxPayloadBytes is the asynchronous invocation payload limit the
// suite assumes unless the harness says otherwise.
const DefaultMaxPayloadBytes = domain.MaxPayloadBytes

// Delivery is one invocation as it reached the handler side.
type Delivery struct {
	// Payload is the invocation payload the handler received.
	Payload []byte
	// Record is the Lambda destination record produced for it, when the
	// adapter produces one (nil otherwise, e.g. a fake Lambda endpoint).
	Record []byte
}

// Harness is an invoker under test.
type Harness struct {
	Invoker engine.Invoker
	// Handler names a handler that succeeds for any payload; it is used as
	// Invocation.Handler and tasker.handler (default "tasker.noop").
	Handler string
	// Delivered waits until at least n invocations have been delivered
	// and returns all deliveries so far, in any order.
	Delivered func(ctx context.Context, n int) ([]Delivery, error)
	// MaxPayloadBytes is the adapter's payload limit (default
	// DefaultMaxPayloadBytes).
	MaxPayloadBytes int
	// Throttle, when set, makes the backend refuse invocations as
	// throttled until restore is called.
	Throttle func(t *testing.T) (restore func())
}

// Run runs the suite; each subtest gets a fresh harness from newHarness
// and subtests run in parallel.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	t.Helper()
	cases := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"Accepted", testAccepted},
		{"ConcurrentInvocationsEachDeliveredOnce", testConcurrent},
		{"PayloadAtLimitAccepted", testAtLimit},
		{"OversizedPayload", testOversized},
		{"Throttled", testThrottled},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			if h.Handler == "" {
				h.Handler = "tasker.noop"
			}
			if h.MaxPayloadBytes == 0 {
				h.MaxPayloadBytes = DefaultMaxPayloadBytes
			}
			c.fn(t, h)
		})
	}
}

// NewInvocation builds an invocation of handler whose JSON payload is
// padded to size bytes (size 0: unpadded).
func NewInvocation(t testing.TB, handler string, size int) engine.Invocation {
	t.Helper()
	taskID, stepID := uuid.New(), uuid.New()
	const step = "conformance_step"
	p := contract.Payload{
		Tasker: contract.Meta{
			Version: contract.PayloadVersion, TaskID: taskID, StepID: stepID, Step: step,
			Handler: handler, Attempt: 1, MaxAttempts: 3, Namespace: "invoketest", Workflow: "suite",
			WorkflowVersion: "1.0.0", IdempotencyKey: contract.IdempotencyKey(taskID, step, 0),
			CorrelationID: "invoketest-" + stepID.String()[:8],
			Deadline:      time.Now().Add(time.Minute).UTC().Truncate(time.Second),
		},
		Config:  json.RawMessage(`{}`),
		Results: map[string]json.RawMessage{},
	}
	encode := func(pad string) []byte {
		p.Context = json.RawMessage(`{"pad":"` + pad + `"}`)
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := encode("")
	if size > 0 {
		if size < len(b) {
			t.Fatalf("cannot build a %d-byte payload: the minimum is %d", size, len(b))
		}
		b = encode(strings.Repeat("x", size-len(b)))
	}
	return engine.Invocation{TaskID: taskID, StepID: stepID, Step: step, Attempt: 1, Handler: handler, Payload: b}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// checkDelivery verifies that d is the delivery of inv.
func checkDelivery(t *testing.T, inv engine.Invocation, d Delivery) {
	t.Helper()
	if !jsonEqual(d.Payload, inv.Payload) {
		t.Errorf("delivered payload differs from the invocation payload (%d vs %d bytes)", len(d.Payload), len(inv.Payload))
	}
	if d.Record == nil {
		return
	}
	res, err := contract.ParseDestinationRecord(d.Record)
	if err != nil {
		t.Fatalf("destination record does not parse: %v", err)
	}
	if res.TaskID != inv.TaskID || res.StepID != inv.StepID || res.Attempt != inv.Attempt || res.Step != inv.Step {
		t.Errorf("record is for %v/%v/%s/%d, want %v/%v/%s/%d", res.TaskID, res.StepID, res.Step, res.Attempt,
			inv.TaskID, inv.StepID, inv.Step, inv.Attempt)
	}
	if res.Err != nil {
		t.Errorf("the succeeding handler %q failed: %+v", inv.Handler, res.Err)
	}
}

func stepOf(t *testing.T, payload []byte) uuid.UUID {
	t.Helper()
	var p contract.Payload
	if err := json.Unmarshal(payload, &p); err != nil {
		t.Fatalf("delivered payload is not a payload: %v", err)
	}
	return p.Tasker.StepID
}

func testAccepted(t *testing.T, h Harness) {
	ctx := ctxFor(t, 30*time.Second)
	inv := NewInvocation(t, h.Handler, 0)
	if err := h.Invoker.Invoke(ctx, inv); err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	ds, err := h.Delivered(ctx, 1)
	if err != nil {
		t.Fatalf("Delivered: %v", err)
	}
	if len(ds) != 1 {
		t.Fatalf("%d deliveries, want 1", len(ds))
	}
	checkDelivery(t, inv, ds[0])
}

func testConcurrent(t *testing.T, h Harness) {
	ctx := ctxFor(t, 60*time.Second)
	const n = 20
	invs := make(map[uuid.UUID]engine.Invocation, n)
	var wg sync.WaitGroup
	for range n {
		inv := NewInvocation(t, h.Handler, 0)
		invs[inv.StepID] = inv
		wg.Go(func() {
			// A backend may throttle a burst; callers retry, so does the suite.
			for {
				err := h.Invoker.Invoke(ctx, inv)
				if err == nil {
					return
				}
				if errors.Is(err, engine.ErrPayloadTooLarge) || ctx.Err() != nil {
					t.Errorf("Invoke: %v", err)
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	ds, err := h.Delivered(ctx, n)
	if err != nil {
		t.Fatalf("Delivered: %v", err)
	}
	time.Sleep(100 * time.Millisecond) // give duplicates a chance to show up
	if ds, err = h.Delivered(ctx, n); err != nil {
		t.Fatalf("Delivered: %v", err)
	}
	seen := map[uuid.UUID]int{}
	for _, d := range ds {
		id := stepOf(t, d.Payload)
		seen[id]++
		if inv, ok := invs[id]; ok && seen[id] == 1 {
			checkDelivery(t, inv, d)
		}
	}
	for id := range invs {
		if seen[id] != 1 {
			t.Errorf("step %v delivered %d times, want once", id, seen[id])
		}
	}
	if len(ds) != n {
		t.Errorf("%d deliveries, want %d", len(ds), n)
	}
}

func testAtLimit(t *testing.T, h Harness) {
	ctx := ctxFor(t, 30*time.Second)
	inv := NewInvocation(t, h.Handler, h.MaxPayloadBytes)
	if len(inv.Payload) != h.MaxPayloadBytes {
		t.Fatalf("built a %d-byte payload, want %d", len(inv.Payload), h.MaxPayloadBytes)
	}
	if err := h.Invoker.Invoke(ctx, inv); err != nil {
		t.Fatalf("Invoke with a payload of exactly the limit: %v", err)
	}
	ds, err := h.Delivered(ctx, 1)
	if err != nil {
		t.Fatalf("Delivered: %v", err)
	}
	checkDelivery(t, inv, ds[0])
}

func testOversized(t *testing.T, h Harness) {
	ctx := ctxFor(t, 30*time.Second)
	for _, size := range []int{h.MaxPayloadBytes + 1, 2 * h.MaxPayloadBytes} {
		inv := NewInvocation(t, h.Handler, size)
		err := h.Invoker.Invoke(ctx, inv)
		if !errors.Is(err, engine.ErrPayloadTooLarge) {
			t.Errorf("Invoke(%d bytes) = %v, want an error wrapping engine.ErrPayloadTooLarge", size, err)
		}
		if err != nil && !strings.Contains(err.Error(), fmt.Sprint(size)) {
			t.Errorf("the error should state the size %d: %v", size, err)
		}
	}
}

func testThrottled(t *testing.T, h Harness) {
	if h.Throttle == nil {
		t.Skip("the harness cannot throttle")
	}
	ctx := ctxFor(t, 30*time.Second)
	restore := h.Throttle(t)
	err := h.Invoker.Invoke(ctx, NewInvocation(t, h.Handler, 0))
	if err == nil {
		restore()
		t.Fatal("Invoke succeeded while throttled")
	}
	if errors.Is(err, engine.ErrPayloadTooLarge) {
		t.Errorf("throttling must not look like ErrPayloadTooLarge (which fails the step for good): %v", err)
	}
	restore()
	for {
		err := h.Invoker.Invoke(ctx, NewInvocation(t, h.Handler, 0))
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("Invoke still failing after the throttle was lifted: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
