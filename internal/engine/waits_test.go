package engine_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/telemetry"
)

const waitYAML = `
namespace: test
name: wait
version: 1.0.0
steps:
  - {name: pause, handler: tasker.wait, config: {seconds: 1800}}
  - {name: after, handler: tasker.noop, depends_on: [pause]}
`

const waitShortYAML = `
namespace: test
name: wait_short
version: 1.0.0
steps:
  - {name: pause, handler: tasker.wait, config: {seconds: 60}}
  - {name: after, handler: tasker.noop, depends_on: [pause]}
`

const waitUntilYAML = `
namespace: test
name: wait_until
version: 1.0.0
steps:
  - {name: pause, handler: tasker.wait, config: {until: "${context.renew_at}"}}
  - {name: after, handler: tasker.noop, depends_on: [pause]}
`

const approvalYAML = `
namespace: test
name: approval
version: 1.0.0
steps:
  - {name: approve, handler: tasker.callback, config: {timeout_seconds: 3600}}
  - {name: after, handler: tasker.noop, depends_on: [approve]}
`

// pendingYAML: job answers tasker_pending (see pendingHandler) and is
// completed by its callback token.
const pendingYAML = `
namespace: test
name: pending
version: 1.0.0
steps:
  - name: job
    handler: tasker.noop
    retry: {max_attempts: 2, backoff_base_seconds: 1, max_backoff_seconds: 1, jitter: 0}
  - {name: after, handler: tasker.noop, depends_on: [job]}
`

// pendingHandler answers tasker_pending (timeout 60 s) for step job and
// keeps its tokens; other steps succeed.
type pendingHandler struct {
	tokens []string
}

func (p *pendingHandler) handle(pl contract.Payload) outcome {
	if pl.Tasker.Step != "job" {
		return ok(map[string]any{})
	}
	p.tokens = append(p.tokens, pl.Tasker.CallbackToken)
	return ok(map[string]any{"tasker_pending": map[string]any{"timeout_seconds": 60}})
}

type waitRow struct {
	State    string
	Attempts int
	WakeAt   *time.Time
	Kind     *string
	Result   json.RawMessage
	Error    json.RawMessage
}

func (h *harness) wait(id uuid.UUID, name string) waitRow {
	h.t.Helper()
	var w waitRow
	err := h.pool.QueryRow(h.ctx, `SELECT state, attempts, wake_at, wait_kind, result, last_error FROM tasker_steps
		WHERE task_id = $1 AND name = $2`, id, name).Scan(&w.State, &w.Attempts, &w.WakeAt, &w.Kind, &w.Result, &w.Error)
	if err != nil {
		h.t.Fatal(err)
	}
	return w
}

func (h *harness) sweep() engine.SweepReport {
	h.t.Helper()
	rep, err := h.eng.Sweep(h.ctx)
	if err != nil {
		h.t.Fatalf("sweep: %v", err)
	}
	return rep
}

// deliverDelayed hands the delayed messages drain kept back to the engine
// (the test has advanced the clock past their delay).
func (h *harness) deliverDelayed() {
	h.t.Helper()
	var in []engine.InMessage
	for _, m := range h.delayed {
		in = append(in, engine.InMessage{ID: uuid.NewString(), Body: m.Body})
	}
	h.delayed = nil
	if _, err := h.eng.HandleMessages(h.ctx, in); err != nil {
		h.t.Fatal(err)
	}
}

func stepsRun(ps []contract.Payload) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Tasker.Step)
	}
	return out
}

func TestWaitThirtyMinutesWithTestClock(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, waitYAML)
	start := h.clock.Now()
	id := h.create("wait", `{}`)
	if ran := h.drain(echo); len(ran) != 0 {
		t.Fatalf("a wait invoked handlers: %v", stepsRun(ran))
	}
	w := h.wait(id, "pause")
	if w.State != "waiting" || w.Kind == nil || *w.Kind != "timer" || w.WakeAt == nil || !w.WakeAt.Equal(start.Add(30*time.Minute)) {
		t.Fatalf("pause = %+v, want waiting on a timer until %s", w, start.Add(30*time.Minute))
	}
	if n := h.pub.Count(engine.StepWaiting); n != 1 {
		t.Fatalf("step.waiting events = %d, want 1", n)
	}
	// 30 minutes is beyond a delayed message's reach: the sweep finds it.
	if len(h.delayed) != 0 {
		t.Fatalf("delayed messages = %d, want none for a wait over 15 minutes", len(h.delayed))
	}
	h.clock.Advance(29 * time.Minute)
	if rep := h.sweep(); rep.Waits != 0 {
		t.Fatalf("sweep at 29 min moved %d waits", rep.Waits)
	}
	if w := h.wait(id, "pause"); w.State != "waiting" {
		t.Fatalf("pause at 29 min = %s, want waiting", w.State)
	}
	h.clock.Advance(time.Minute)
	if rep := h.sweep(); rep.Waits != 1 {
		t.Fatalf("sweep at 30 min moved %d waits, want 1", rep.Waits)
	}
	w = h.wait(id, "pause")
	if w.State != "complete" || !strings.Contains(string(w.Result), "waited_until") {
		t.Fatalf("pause = %s %s, want complete with waited_until", w.State, w.Result)
	}
	if ran := h.drain(echo); len(ran) != 1 || ran[0].Tasker.Step != "after" {
		t.Fatalf("ran %v, want [after]", stepsRun(ran))
	}
	mustStatus(t, h, id, "complete")
}

func TestShortWaitUsesADelayedWakeUp(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, waitShortYAML)
	id := h.create("wait_short", `{}`)
	h.drain(echo)
	if len(h.delayed) != 1 || h.delayed[0].Delay != time.Minute {
		t.Fatalf("delayed = %+v, want one wake-up delayed 1 min", h.delayed)
	}
	// A wake-up that arrives early changes nothing and is sent again.
	early := h.delayed
	h.deliverDelayed()
	if w := h.wait(id, "pause"); w.State != "waiting" {
		t.Fatalf("pause after an early wake-up = %s", w.State)
	}
	h.queue.Take()
	h.delayed = early
	h.clock.Advance(time.Minute)
	h.deliverDelayed() // no sweep needed
	if w := h.wait(id, "pause"); w.State != "complete" {
		t.Fatalf("pause = %s, want complete", w.State)
	}
	h.drain(echo)
	mustStatus(t, h, id, "complete")
}

func TestWaitMonthsAheadCompletedBySweep(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, waitUntilYAML)
	due := h.clock.Now().Add(90 * 24 * time.Hour).Truncate(time.Second)
	id := h.create("wait_until", `{"renew_at":"`+due.Format(time.RFC3339)+`"}`)
	h.drain(echo)
	if w := h.wait(id, "pause"); w.State != "waiting" || !w.WakeAt.Equal(due) {
		t.Fatalf("pause = %+v, want waiting until %s", w, due)
	}
	h.clock.Advance(89 * 24 * time.Hour)
	h.sweep()
	if w := h.wait(id, "pause"); w.State != "waiting" {
		t.Fatalf("pause after 89 days = %s", w.State)
	}
	h.clock.Advance(24 * time.Hour)
	h.sweep()
	h.drain(echo)
	mustStatus(t, h, id, "complete")
}

func TestWaitWithABadPlaceholderFailsItsStep(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, waitUntilYAML)
	id := h.create("wait_until", `{"renew_at":"next tuesday"}`)
	h.drain(echo)
	w := h.wait(id, "pause")
	if w.State != "error" || !strings.Contains(string(w.Error), "RFC 3339") || !strings.Contains(string(w.Error), "invalid_config") {
		t.Fatalf("pause = %s %s, want error naming RFC 3339", w.State, w.Error)
	}
	mustStatus(t, h, id, "error")
}

func TestPendingHandlerCompletedByCallback(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, pendingYAML)
	ph := &pendingHandler{}
	id := h.create("pending", `{}`)
	h.drain(ph.handle)
	if len(ph.tokens) != 1 || ph.tokens[0] == "" {
		t.Fatalf("tokens = %q, want one", ph.tokens)
	}
	w := h.wait(id, "job")
	if w.State != "waiting" || *w.Kind != "callback" || !w.WakeAt.Equal(h.clock.Now().Add(time.Minute)) {
		t.Fatalf("job = %+v, want waiting on its callback for 60 s", w)
	}
	// The raw token is never stored.
	var stored int
	if err := h.pool.QueryRow(h.ctx, `SELECT count(*) FROM tasker_steps WHERE callback_token_hash = convert_to($1, 'UTF8')`, ph.tokens[0]).Scan(&stored); err != nil || stored != 0 {
		t.Fatalf("raw token stored: %d %v", stored, err)
	}
	out, err := h.eng.Callback(h.ctx, ph.tokens[0], engine.CallbackRequest{Action: engine.CallbackSuccess, Result: json.RawMessage(`{"job":"done"}`)})
	if err != nil {
		t.Fatalf("callback: %v", err)
	}
	if out.TaskID != id || out.Step != "job" || out.Attempt != 1 || out.State != "complete" {
		t.Fatalf("outcome = %+v", out)
	}
	if w := h.wait(id, "job"); w.State != "complete" || string(w.Result) != `{"job": "done"}` {
		t.Fatalf("job = %s %s", w.State, w.Result)
	}
	if h.pub.Count(engine.StepCallbackReceived) != 1 {
		t.Fatal("no step.callback_received event")
	}
	h.drain(ph.handle)
	mustStatus(t, h, id, "complete")

	// Reuse: 409; unknown and malformed tokens: 404. Nothing changes.
	before := h.transitions(id)
	_, err = h.eng.Callback(h.ctx, ph.tokens[0], engine.CallbackRequest{Action: engine.CallbackSuccess, Result: json.RawMessage(`1`)})
	if !errors.Is(err, engine.ErrConflict) {
		t.Fatalf("reused token: %v, want ErrConflict", err)
	}
	forged := []byte(ph.tokens[0])
	if forged[len(forged)-2] == 'A' {
		forged[len(forged)-2] = 'B'
	} else {
		forged[len(forged)-2] = 'A'
	}
	for _, tok := range []string{"nope", "", strings.Repeat("A", 70), string(forged)} {
		if _, err := h.eng.Callback(h.ctx, tok, engine.CallbackRequest{Action: engine.CallbackHeartbeat}); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("token %q: %v, want ErrNotFound", tok, err)
		}
	}
	if after := h.transitions(id); after != before {
		t.Fatalf("refused callbacks wrote %d transitions", after-before)
	}
}

func TestCallbackFailureRetriesWithANewToken(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, pendingYAML)
	ph := &pendingHandler{}
	id := h.create("pending", `{}`)
	h.drain(ph.handle)
	_, err := h.eng.Callback(h.ctx, ph.tokens[0], engine.CallbackRequest{Action: engine.CallbackFailure,
		Failure: &contract.HandlerError{Message: "job crashed", Code: "oom"}})
	if err != nil {
		t.Fatal(err)
	}
	w := h.wait(id, "job")
	if w.State != "waiting_for_retry" || !strings.Contains(string(w.Error), "oom") {
		t.Fatalf("job = %s %s, want waiting_for_retry with code oom", w.State, w.Error)
	}
	h.clock.Advance(2 * time.Second)
	h.sweep()
	h.drain(ph.handle)
	if len(ph.tokens) != 2 || ph.tokens[1] == ph.tokens[0] {
		t.Fatalf("tokens = %q, want a new one for attempt 2", ph.tokens)
	}
	// The first attempt's token is stale.
	if _, err := h.eng.Callback(h.ctx, ph.tokens[0], engine.CallbackRequest{Action: engine.CallbackSuccess}); !errors.Is(err, engine.ErrConflict) {
		t.Fatalf("stale token: %v, want ErrConflict", err)
	}
	// Permanent failure on the last attempt: error.
	if _, err := h.eng.Callback(h.ctx, ph.tokens[1], engine.CallbackRequest{Action: engine.CallbackFailure,
		Failure: &contract.HandlerError{Message: "bad input", Permanent: true}}); err != nil {
		t.Fatal(err)
	}
	h.drain(ph.handle)
	if w := h.wait(id, "job"); w.State != "error" || w.Attempts != 2 {
		t.Fatalf("job = %+v, want error after 2 attempts", w)
	}
	mustStatus(t, h, id, "error")
	if h.pub.Count(engine.StepFailed) != 1 {
		t.Fatalf("step.failed = %d, want 1", h.pub.Count(engine.StepFailed))
	}
}

func TestCallbackHeartbeatAndTimeout(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, pendingYAML)
	ph := &pendingHandler{}
	id := h.create("pending", `{}`)
	h.drain(ph.handle)
	h.clock.Advance(50 * time.Second)
	out, err := h.eng.Callback(h.ctx, ph.tokens[0], engine.CallbackRequest{Action: engine.CallbackHeartbeat})
	if err != nil {
		t.Fatal(err)
	}
	if want := h.clock.Now().Add(time.Minute); out.WaitingUntil == nil || !out.WaitingUntil.Equal(want) || out.State != "waiting" {
		t.Fatalf("heartbeat outcome = %+v, want waiting until %s", out, want)
	}
	h.clock.Advance(50 * time.Second) // 100 s after parking: past the first expiry
	h.sweep()
	if w := h.wait(id, "job"); w.State != "waiting" {
		t.Fatalf("job after heartbeat = %s, want waiting", w.State)
	}
	h.clock.Advance(11 * time.Second)
	if rep := h.sweep(); rep.Waits != 1 {
		t.Fatalf("sweep moved %d waits, want the timeout", rep.Waits)
	}
	w := h.wait(id, "job")
	if w.State != "waiting_for_retry" || !strings.Contains(string(w.Error), engine.CodeCallbackTimeout) {
		t.Fatalf("job = %s %s, want waiting_for_retry with callback_timeout", w.State, w.Error)
	}
	if h.pub.Count(engine.StepCallbackTimedOut) != 1 {
		t.Fatal("no step.callback_timed_out event")
	}
	// The expired token: 410.
	if _, err := h.eng.Callback(h.ctx, ph.tokens[0], engine.CallbackRequest{Action: engine.CallbackSuccess}); !errors.Is(err, engine.ErrCallbackExpired) {
		t.Fatalf("expired token: %v, want ErrCallbackExpired", err)
	}
}

func TestCallbackBeforeTheHandlersAnswer(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, pendingYAML)
	id := h.create("pending", `{}`)
	var token string
	h.drain(func(p contract.Payload) outcome {
		if p.Tasker.Step == "job" {
			token = p.Tasker.CallbackToken
			o := ok(map[string]any{"tasker_pending": map[string]any{}})
			o.drop = true
			return o
		}
		return ok(1)
	})
	if w := h.wait(id, "job"); w.State != "in_progress" {
		t.Fatalf("job = %s, want in_progress", w.State)
	}
	if _, err := h.eng.Callback(h.ctx, token, engine.CallbackRequest{Action: engine.CallbackSuccess, Result: json.RawMessage(`"early"`)}); err != nil {
		t.Fatal(err)
	}
	if w := h.wait(id, "job"); w.State != "complete" {
		t.Fatalf("job = %s, want complete", w.State)
	}
	h.drain(echo)
	mustStatus(t, h, id, "complete")
}

func TestLateTaskerPendingChangesNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, pendingYAML)
	ph := &pendingHandler{}
	id := h.create("pending", `{}`)
	invs := h.inv.Take()
	if len(invs) != 0 {
		t.Fatal("claimed before the first pass")
	}
	if err := h.eng.ProcessTasks(h.ctx, id); err != nil {
		t.Fatal(err)
	}
	inv := h.inv.Take()[0]
	rec := record(t, inv, ph.handle(payloadOf(t, inv)))
	for range 2 { // the duplicate changes nothing
		if _, err := h.eng.HandleMessages(h.ctx, []engine.InMessage{{ID: "1", Body: rec}}); err != nil {
			t.Fatal(err)
		}
	}
	if n := h.pub.Count(engine.StepWaiting); n != 1 {
		t.Fatalf("step.waiting = %d, want 1", n)
	}
	if _, err := h.eng.Callback(h.ctx, ph.tokens[0], engine.CallbackRequest{Action: engine.CallbackSuccess}); err != nil {
		t.Fatal(err)
	}
	before := h.transitions(id)
	if _, err := h.eng.HandleMessages(h.ctx, []engine.InMessage{{ID: "2", Body: rec}}); err != nil {
		t.Fatal(err)
	}
	if w := h.wait(id, "job"); w.State != "complete" || h.transitions(id) != before {
		t.Fatalf("late tasker_pending changed the step: %s", w.State)
	}
}

func TestMalformedTaskerPendingIsARetryableFailure(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, pendingYAML)
	id := h.create("pending", `{}`)
	h.drain(func(p contract.Payload) outcome {
		if p.Tasker.Attempt == 1 {
			return ok(map[string]any{"tasker_pending": map[string]any{"timeout_seconds": -5}})
		}
		return ok(1)
	})
	if w := h.wait(id, "job"); w.State != "waiting_for_retry" || !strings.Contains(string(w.Error), "malformed_pending") {
		t.Fatalf("job = %s %s, want a retry with malformed_pending", w.State, w.Error)
	}
}

func TestCompleteStepByOperator(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, approvalYAML)
	id := h.create("approval", `{}`)
	if ran := h.drain(echo); len(ran) != 0 {
		t.Fatalf("tasker.callback without notify invoked %v", stepsRun(ran))
	}
	if w := h.wait(id, "approve"); w.State != "waiting" || !w.WakeAt.Equal(h.clock.Now().Add(time.Hour)) {
		t.Fatalf("approve = %+v", w)
	}
	if _, err := h.eng.CompleteStep(h.ctx, id, "after", json.RawMessage(`{}`), "alice"); !errors.Is(err, engine.ErrConflict) {
		t.Fatalf("complete a pending step: %v, want ErrConflict", err)
	}
	if _, err := h.eng.CompleteStep(h.ctx, id, "nope", json.RawMessage(`{}`), "alice"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("complete an unknown step: %v, want ErrNotFound", err)
	}
	if _, err := h.eng.CompleteStep(h.ctx, uuid.New(), "approve", json.RawMessage(`{}`), "alice"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("complete in an unknown task: %v, want ErrNotFound", err)
	}
	big := json.RawMessage(`"` + strings.Repeat("x", 300<<10) + `"`)
	if _, err := h.eng.CompleteStep(h.ctx, id, "approve", big, "alice"); !errors.Is(err, engine.ErrInvalidResult) {
		t.Fatalf("oversized result: %v, want ErrInvalidResult", err)
	}
	if _, err := h.eng.CompleteStep(h.ctx, id, "approve", json.RawMessage(`{"approved":true}`), "alice"); err != nil {
		t.Fatal(err)
	}
	var actor string
	if err := h.pool.QueryRow(h.ctx, `SELECT actor FROM tasker_transitions WHERE task_id = $1 AND to_state = 'complete'`, id).Scan(&actor); err != nil || actor != "alice" {
		t.Fatalf("transition actor = %q %v", actor, err)
	}
	if _, err := h.eng.CompleteStep(h.ctx, id, "approve", json.RawMessage(`{}`), "alice"); !errors.Is(err, engine.ErrConflict) {
		t.Fatalf("complete twice: %v, want ErrConflict", err)
	}
	h.drain(echo)
	mustStatus(t, h, id, "complete")
}

func TestCancelTaskWithAWaitingStep(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, pendingYAML)
	ph := &pendingHandler{}
	id := h.create("pending", `{}`)
	h.drain(ph.handle)
	if err := h.eng.CancelTask(h.ctx, id, "alice", "no longer needed"); err != nil {
		t.Fatal(err)
	}
	if w := h.wait(id, "job"); w.State != "cancelled" {
		t.Fatalf("job = %s, want cancelled", w.State)
	}
	if _, err := h.eng.Callback(h.ctx, ph.tokens[0], engine.CallbackRequest{Action: engine.CallbackSuccess}); !errors.Is(err, engine.ErrConflict) {
		t.Fatalf("callback after cancel: %v, want ErrConflict", err)
	}
	h.clock.Advance(time.Hour)
	if rep := h.sweep(); rep.Waits != 0 {
		t.Fatalf("sweep moved %d waits of a cancelled task", rep.Waits)
	}
	mustStatus(t, h, id, "cancelled")
}

func TestWaitingStepsHoldNoInFlightSlot(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{MaxInFlight: 1, Adaptive: engine.AdaptiveConfig{Disabled: true}}, pendingYAML)
	ph := &pendingHandler{}
	a := h.create("pending", `{}`)
	b := h.create("pending", `{}`)
	for range 3 {
		h.drain(ph.handle)
		h.sweep()
	}
	for _, id := range []uuid.UUID{a, b} {
		if w := h.wait(id, "job"); w.State != "waiting" {
			t.Fatalf("job of %s = %s, want both waiting under a cap of 1", id, w.State)
		}
	}
}

// A wait's transitions are span events in the task's trace, like other
// step transitions.
func TestWaitTransitionsAreTraced(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := telemetry.NewTracerProvider(nil, nil, sdktrace.WithSyncer(exp))
	h := newHarness(t, engine.Config{TracerProvider: tp}, pendingYAML)
	rootCtx, root := tp.Tracer("test").Start(t.Context(), "POST /v1/tasks")
	created, err := h.eng.CreateTask(rootCtx, engine.CreateRequest{Namespace: "test", Name: "pending"})
	if err != nil {
		t.Fatal(err)
	}
	root.End()
	ph := &pendingHandler{}
	h.drain(ph.handle)
	if _, err := h.eng.Callback(h.ctx, ph.tokens[0], engine.CallbackRequest{Action: engine.CallbackSuccess}); err != nil {
		t.Fatal(err)
	}
	h.drain(ph.handle)
	mustStatus(t, h, created.TaskID, "complete")
	seen := map[engine.EventName]bool{}
	for _, s := range exp.GetSpans() {
		if s.Name != engine.SpanTaskEvaluate {
			continue
		}
		if s.SpanContext.TraceID() != root.SpanContext().TraceID() {
			t.Errorf("task.evaluate in trace %s, want the task's", s.SpanContext.TraceID())
		}
		for _, ev := range []engine.EventName{engine.StepWaiting, engine.StepCallbackReceived, engine.StepCompleted} {
			if hasEvent(s, ev) {
				seen[ev] = true
			}
		}
	}
	for _, ev := range []engine.EventName{engine.StepWaiting, engine.StepCallbackReceived, engine.StepCompleted} {
		if !seen[ev] {
			t.Errorf("no task.evaluate span records %s", ev)
		}
	}
}
