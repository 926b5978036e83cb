package engine_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/enginetest"
)

const linearYAML = `
namespace: test
name: linear
version: 1.0.0
steps:
  - {name: a, handler: tasker.noop}
  - {name: b, handler: tasker.noop, depends_on: [a]}
  - {name: c, handler: tasker.noop, depends_on: [b]}
  - {name: d, handler: tasker.noop, depends_on: [c]}
`

const diamondYAML = `
namespace: test
name: diamond
version: 1.0.0
steps:
  - {name: a, handler: tasker.noop}
  - {name: b, handler: tasker.noop, depends_on: [a]}
  - {name: c, handler: tasker.noop, depends_on: [a]}
  - {name: d, handler: tasker.noop, depends_on: [b, c]}
`

const retryYAML = `
namespace: test
name: retry
version: 1.0.0
steps:
  - name: flaky
    handler: tasker.noop
    retry: {max_attempts: 3, backoff_base_seconds: 2, max_backoff_seconds: 300, jitter: 0.1}
  - {name: after, handler: tasker.noop, depends_on: [flaky]}
`

func fanoutYAML(n int) string {
	var b strings.Builder
	b.WriteString("namespace: test\nname: fanout\nversion: 1.0.0\nsteps:\n  - {name: start, handler: tasker.noop}\n")
	var deps []string
	for i := range n {
		fmt.Fprintf(&b, "  - {name: f%d, handler: tasker.noop, depends_on: [start]}\n", i)
		deps = append(deps, fmt.Sprintf("f%d", i))
	}
	fmt.Fprintf(&b, "  - {name: join, handler: tasker.noop, depends_on: [%s]}\n", strings.Join(deps, ", "))
	return b.String()
}

// echo returns the step name and the parents it saw.
func echo(p contract.Payload) outcome {
	parents := make([]string, 0, len(p.Results))
	for k := range p.Results {
		parents = append(parents, k)
	}
	return ok(map[string]any{"step": p.Tasker.Step, "parents": parents})
}

func TestWorkflowsComplete(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		yaml   string
		parent map[string][]string
	}{
		{"linear", linearYAML, map[string][]string{"b": {"a"}, "c": {"b"}, "d": {"c"}}},
		{"diamond", diamondYAML, map[string][]string{"b": {"a"}, "c": {"a"}, "d": {"b", "c"}}},
		{"fanout", fanoutYAML(500), map[string][]string{"f0": {"start"}, "f499": {"start"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, engine.Config{}, tc.yaml)
			id := h.create(tc.name, `{}`)
			ran := h.drain(echo)
			mustStatus(t, h, id, "complete")
			done := map[string]bool{}
			for _, p := range ran {
				for _, parent := range tc.parent[p.Tasker.Step] {
					if !done[parent] {
						t.Errorf("%s ran before its parent %s finished", p.Tasker.Step, parent)
					}
					if _, ok := p.Results[parent]; !ok {
						t.Errorf("%s did not receive the result of %s", p.Tasker.Step, parent)
					}
				}
				if done[p.Tasker.Step] {
					t.Errorf("%s ran twice", p.Tasker.Step)
				}
				done[p.Tasker.Step] = true
				if want := contract.IdempotencyKey(id, p.Tasker.Step, 0); p.Tasker.IdempotencyKey != want {
					t.Errorf("idempotency key = %s, want %s", p.Tasker.IdempotencyKey, want)
				}
			}
			tpl, _ := h.tpls.Get("test", tc.name, "")
			if len(done) != len(tpl.Steps) {
				t.Fatalf("%d steps ran, want %d", len(done), len(tpl.Steps))
			}
			if tc.name == "fanout" {
				// The join needs all 500 parents: it must be the last to run.
				if last := ran[len(ran)-1].Tasker.Step; last != "join" {
					t.Fatalf("last step = %s, want join", last)
				}
				if got := len(ran[len(ran)-1].Results); got != 500 {
					t.Fatalf("join saw %d parent results, want 500", got)
				}
			}
			if h.pub.Count(engine.TaskCompleted) != 1 || h.pub.Count(engine.TaskStarted) != 1 {
				t.Fatalf("task events: completed=%d started=%d", h.pub.Count(engine.TaskCompleted), h.pub.Count(engine.TaskStarted))
			}
		})
	}
}

func TestFanOutDispatchesInOnePass(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, fanoutYAML(500))
	h.create("fanout", `{}`)
	h.drain(func(p contract.Payload) outcome {
		if p.Tasker.Step == "start" {
			return ok(1)
		}
		return outcome{drop: true}
	})
	// All 500 independent steps were claimed together: they overlap in flight.
	var inFlight int
	if err := h.pool.QueryRow(h.ctx, "SELECT count(*) FROM tasker_steps WHERE state = 'in_progress'").Scan(&inFlight); err != nil {
		t.Fatal(err)
	}
	if inFlight != 500 {
		t.Fatalf("in flight = %d, want 500", inFlight)
	}
}

func TestRetryThenSuccess(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, retryYAML)
	id := h.create("retry", `{}`)
	failUntil := 2
	handler := func(p contract.Payload) outcome {
		if p.Tasker.Step == "flaky" && p.Tasker.Attempt <= failUntil {
			return fail(&contract.HandlerError{Message: fmt.Sprintf("attempt %d failed", p.Tasker.Attempt)})
		}
		return ok("done")
	}
	h.drain(handler)
	for attempt := 1; attempt <= failUntil; attempt++ {
		s := h.step(id, "flaky")
		if s.State != "waiting_for_retry" || s.Attempts != attempt {
			t.Fatalf("after failure %d: state=%s attempts=%d", attempt, s.State, s.Attempts)
		}
		// base 2 s × 2^(attempt-1), ±10 % jitter
		want := time.Duration(2<<(attempt-1)) * time.Second
		gap := s.NextRetryAt.Sub(h.clock.Now())
		if gap < want*9/10-time.Millisecond || gap > want*11/10+time.Millisecond {
			t.Fatalf("backoff after attempt %d = %s, want %s ±10%%", attempt, gap, want)
		}
		// Not due yet: a sweep does nothing.
		h.clock.Advance(gap / 2)
		if _, err := h.eng.Sweep(h.ctx); err != nil {
			t.Fatal(err)
		}
		if n := len(h.inv.Take()); n != 0 {
			t.Fatalf("retry dispatched %d invocations before it was due", n)
		}
		h.clock.Advance(gap)
		if _, err := h.eng.Sweep(h.ctx); err != nil {
			t.Fatal(err)
		}
		h.drain(handler)
	}
	s := h.step(id, "flaky")
	if s.State != "complete" || s.Attempts != 3 {
		t.Fatalf("flaky: state=%s attempts=%d, want complete after 3", s.State, s.Attempts)
	}
	mustStatus(t, h, id, "complete")
	if n := h.pub.Count(engine.StepRetryScheduled); n != 2 {
		t.Fatalf("retry_scheduled events = %d, want 2", n)
	}
}

func TestRetryAfterWins(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, retryYAML)
	id := h.create("retry", `{}`)
	h.drain(func(p contract.Payload) outcome {
		return fail(&contract.HandlerError{Message: "rate limited", RetryAfterSeconds: 45})
	})
	s := h.step(id, "flaky")
	if got := s.NextRetryAt.Sub(h.clock.Now()); got != 45*time.Second {
		t.Fatalf("retry_after 45 s gave a delay of %s", got)
	}
	// The wake-up was sent with the same delay.
	var delayed bool
	for _, m := range h.delayed {
		if m.Delay == 45*time.Second {
			delayed = true
		}
	}
	if !delayed {
		t.Fatal("no wake-up delayed by 45 s was sent")
	}
}

func TestTerminalFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		out      outcome
		attempts int
		event    engine.EventName
	}{
		{"permanent", fail(&contract.HandlerError{Message: "card declined", Permanent: true, Code: "declined"}), 1, engine.StepFailed},
		{"exhausted", fail(&contract.HandlerError{Message: "flaky"}), 3, engine.StepRetriesExhausted},
		{"unhandled crash exhausted", outcome{Outcome: enginetest.Outcome{Crash: true}}, 3, engine.StepRetriesExhausted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, engine.Config{}, retryYAML)
			id := h.create("retry", `{}`)
			var afterRan bool
			handler := func(p contract.Payload) outcome {
				if p.Tasker.Step == "after" {
					afterRan = true
					return ok(nil)
				}
				return tc.out
			}
			h.drain(handler)
			for range 5 {
				h.clock.Advance(10 * time.Minute)
				if _, err := h.eng.Sweep(h.ctx); err != nil {
					t.Fatal(err)
				}
				h.drain(handler)
			}
			s := h.step(id, "flaky")
			if s.State != "error" || s.Attempts != tc.attempts {
				t.Fatalf("flaky: state=%s attempts=%d, want error after %d", s.State, s.Attempts, tc.attempts)
			}
			if afterRan {
				t.Fatal("a dependent of a failed step ran")
			}
			if st := h.step(id, "after"); st.State != "skipped" || st.SkipKind != "upstream_failed" ||
				st.SkipReason != "trigger rule all_success cannot hold: parent flaky failed" {
				t.Fatalf("dependent = %s (%s: %s), want skipped because flaky failed", st.State, st.SkipKind, st.SkipReason)
			}
			if h.pub.Count(engine.StepSkipped) != 1 {
				t.Fatalf("step.skipped events = %d, want 1", h.pub.Count(engine.StepSkipped))
			}
			mustStatus(t, h, id, "error")
			if h.pub.Count(tc.event) != 1 || h.pub.Count(engine.TaskFailed) != 1 {
				t.Fatalf("events: %s=%d task.failed=%d", tc.event, h.pub.Count(tc.event), h.pub.Count(engine.TaskFailed))
			}
		})
	}
}

func TestStaleDuplicateAndLateResultsChangeNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, retryYAML)
	id := h.create("retry", `{}`)
	// Attempt 1 fails; keep its invocation to replay later.
	var first engine.Invocation
	h.queue.Take()
	if _, err := h.eng.HandleMessages(h.ctx, []engine.InMessage{{ID: "w", Body: contract.NewWake(id)}}); err != nil {
		t.Fatal(err)
	}
	invs := h.inv.Take()
	if len(invs) != 1 {
		t.Fatalf("dispatched %d, want 1", len(invs))
	}
	first = invs[0]
	failRec := record(t, first, fail(&contract.HandlerError{Message: "x"}))
	okRec := record(t, first, ok("stale success"))
	// The failure and a duplicate of it in one batch, and again in a later batch.
	if _, err := h.eng.HandleMessages(h.ctx, []engine.InMessage{{ID: "1", Body: failRec}, {ID: "2", Body: failRec}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.eng.HandleMessages(h.ctx, []engine.InMessage{{ID: "3", Body: failRec}}); err != nil {
		t.Fatal(err)
	}
	s := h.step(id, "flaky")
	if s.State != "waiting_for_retry" || s.Attempts != 1 {
		t.Fatalf("after duplicate failures: %s attempts=%d", s.State, s.Attempts)
	}
	before := h.transitions(id)
	// Attempt 2 is claimed.
	h.clock.Advance(time.Hour)
	if _, err := h.eng.Sweep(h.ctx); err != nil {
		t.Fatal(err)
	}
	second := h.inv.Take()
	if len(second) != 1 || payloadOf(t, second[0]).Tasker.Attempt != 2 {
		t.Fatalf("second dispatch: %v", second)
	}
	afterClaim := h.transitions(id)
	// A late success of attempt 1 (stale) arrives out of order: ignored.
	if _, err := h.eng.HandleMessages(h.ctx, []engine.InMessage{{ID: "4", Body: okRec}}); err != nil {
		t.Fatal(err)
	}
	if s := h.step(id, "flaky"); s.State != "in_progress" || s.Attempts != 2 {
		t.Fatalf("stale result changed the step: %+v", s)
	}
	if h.transitions(id) != afterClaim {
		t.Fatal("stale result wrote a transition")
	}
	if afterClaim <= before {
		t.Fatal("claim wrote no transition")
	}
	// Duplicate wake-ups dispatch nothing more while attempt 2 is in flight.
	for i := range 3 {
		if _, err := h.eng.HandleMessages(h.ctx, []engine.InMessage{{ID: fmt.Sprint("w", i), Body: contract.NewWake(id)}}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(h.inv.Take()); n != 0 {
		t.Fatalf("duplicate wake-ups dispatched %d invocations", n)
	}
	// Attempt 2 succeeds, twice; then everything finishes once.
	okRec2 := record(t, second[0], ok("good"))
	if _, err := h.eng.HandleMessages(h.ctx, []engine.InMessage{{ID: "5", Body: okRec2}, {ID: "6", Body: okRec2}}); err != nil {
		t.Fatal(err)
	}
	h.drain(echo)
	mustStatus(t, h, id, "complete")
	if got := string(h.step(id, "flaky").Result); got != `"good"` {
		t.Fatalf("result = %s, want the attempt-2 result", got)
	}
	if h.pub.Count(engine.StepCompleted) != 2 {
		t.Fatalf("step.completed = %d, want 2", h.pub.Count(engine.StepCompleted))
	}
}

func TestMalformedMessagesAreReportedAlone(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, linearYAML)
	id := h.create("linear", `{}`)
	h.queue.Take()
	failed, err := h.eng.HandleMessages(h.ctx, []engine.InMessage{
		{ID: "bad-json", Body: []byte("not json")},
		{ID: "bad-kind", Body: []byte(`{"kind":"explode"}`)},
		{ID: "good", Body: contract.NewWake(id)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(failed, ",") != "bad-json,bad-kind" {
		t.Fatalf("failed = %v", failed)
	}
	if n := len(h.inv.Take()); n != 1 {
		t.Fatalf("the good message dispatched %d", n)
	}
}

func TestSweepRecoversLostMessages(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{DeadlineGrace: time.Second}, linearYAML)
	id := h.create("linear", `{}`)
	// The wake-up is lost.
	h.queue.Take()
	if _, err := h.eng.Sweep(h.ctx); err != nil {
		t.Fatal(err)
	}
	invs := h.inv.Take()
	if len(invs) != 1 {
		t.Fatalf("sweep dispatched %d, want 1", len(invs))
	}
	// The result is lost: the attempt times out after its deadline (300 s + grace) and is retried.
	h.clock.Advance(200 * time.Second)
	if r, _ := h.eng.Sweep(h.ctx); r.TimedOut != 0 {
		t.Fatal("timed out before the deadline")
	}
	h.clock.Advance(102 * time.Second)
	r, err := h.eng.Sweep(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.TimedOut != 1 {
		t.Fatalf("timed out = %d, want 1", r.TimedOut)
	}
	if s := h.step(id, "a"); s.State != "waiting_for_retry" || s.Attempts != 1 {
		t.Fatalf("after timeout: %+v", s)
	}
	if h.pub.Count(engine.StepTimedOut) != 1 {
		t.Fatal("no step.timed_out event")
	}
	h.clock.Advance(time.Minute)
	if _, err := h.eng.Sweep(h.ctx); err != nil {
		t.Fatal(err)
	}
	h.drain(echo)
	mustStatus(t, h, id, "complete")
	if a := h.step(id, "a").Attempts; a != 2 {
		t.Fatalf("a attempts = %d, want 2", a)
	}
}

func TestDispatchFailureNeverBurnsAnAttempt(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, retryYAML)
	failures := 5
	h.inv.Fail = func(engine.Invocation) error {
		if failures > 0 {
			failures--
			return errThrottled
		}
		return nil
	}
	id := h.create("retry", `{}`)
	h.drain(echo)
	for range 10 {
		if s := h.step(id, "flaky"); s.State == "in_progress" || s.State == "complete" {
			break
		}
		h.clock.Advance(2 * time.Second)
		if _, err := h.eng.Sweep(h.ctx); err != nil {
			t.Fatal(err)
		}
		h.drain(func(p contract.Payload) outcome { return fail(&contract.HandlerError{Message: "real failure"}) })
	}
	// Five throttled dispatches and one real failure: the step still has 2 attempts left.
	s := h.step(id, "flaky")
	var maxAttempts int
	if err := h.pool.QueryRow(h.ctx, "SELECT max_attempts FROM tasker_steps WHERE task_id=$1 AND name='flaky'", id).Scan(&maxAttempts); err != nil {
		t.Fatal(err)
	}
	if s.State != "waiting_for_retry" || maxAttempts-s.Attempts != 2 {
		t.Fatalf("after throttling: state=%s attempts=%d max=%d", s.State, s.Attempts, maxAttempts)
	}
	if h.pub.Count(engine.StepDispatchFailed) != 5 {
		t.Fatalf("dispatch_failed events = %d", h.pub.Count(engine.StepDispatchFailed))
	}
}

func TestPayloadTooLargeFailsThestep(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, linearYAML)
	h.inv.Fail = func(engine.Invocation) error { return fmt.Errorf("invoke: %w", engine.ErrPayloadTooLarge) }
	id := h.create("linear", `{}`)
	h.drain(echo)
	if s := h.step(id, "a"); s.State != "error" {
		t.Fatalf("state = %s, want error", s.State)
	}
	mustStatus(t, h, id, "error")
}

func TestCancelIgnoresInFlightResults(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, diamondYAML)
	id := h.create("diamond", `{}`)
	h.drain(func(p contract.Payload) outcome {
		if p.Tasker.Step == "a" {
			return ok(1)
		}
		return outcome{drop: true}
	})
	inflight := h.inv.Take()
	_ = inflight
	if err := h.eng.CancelTask(h.ctx, id, "tester", "changed my mind"); err != nil {
		t.Fatal(err)
	}
	mustStatus(t, h, id, "cancelled")
	// Replay results for b and c (as if in flight when cancelled).
	var recs []engine.InMessage
	rows, err := h.pool.Query(h.ctx, "SELECT id, name, attempts FROM tasker_steps WHERE task_id = $1 AND name IN ('b','c')", id)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var sid uuid.UUID
		var name string
		var attempts int
		if err := rows.Scan(&sid, &name, &attempts); err != nil {
			t.Fatal(err)
		}
		payload, _ := json.Marshal(contract.Payload{Tasker: contract.Meta{TaskID: id, StepID: sid, Step: name, Attempt: attempts}})
		recs = append(recs, engine.InMessage{ID: name, Body: record(t, engine.Invocation{Payload: payload}, ok("late"))})
	}
	rows.Close()
	if len(recs) != 2 {
		t.Fatalf("found %d in-flight steps", len(recs))
	}
	if _, err := h.eng.HandleMessages(h.ctx, recs); err != nil {
		t.Fatal(err)
	}
	h.drain(echo)
	mustStatus(t, h, id, "cancelled")
	for _, n := range []string{"b", "c", "d"} {
		if s := h.step(id, n); s.State != "cancelled" {
			t.Fatalf("%s = %s, want cancelled", n, s.State)
		}
	}
	if err := h.eng.CancelTask(h.ctx, id, "tester", ""); err == nil {
		t.Fatal("cancelling a cancelled task succeeded")
	}
}

func TestRetryTaskRerunsOnlyFailedSteps(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, diamondYAML)
	id := h.create("diamond", `{}`)
	runs := map[string]int{}
	broken := true
	handler := func(p contract.Payload) outcome {
		runs[p.Tasker.Step]++
		if p.Tasker.Step == "c" && broken {
			return fail(&contract.HandlerError{Message: "bug", Permanent: true})
		}
		return echo(p)
	}
	h.drain(handler)
	mustStatus(t, h, id, "error")
	broken = false
	if err := h.eng.RetryTask(h.ctx, id, "tester", "fixed the bug"); err != nil {
		t.Fatal(err)
	}
	h.drain(handler)
	mustStatus(t, h, id, "complete")
	want := map[string]int{"a": 1, "b": 1, "c": 2, "d": 1}
	for k, v := range want {
		if runs[k] != v {
			t.Fatalf("runs = %v, want %v", runs, want)
		}
	}
	if s := h.step(id, "c"); s.Attempts != 2 {
		t.Fatalf("c attempts = %d, want 2 (attempt numbers never repeat)", s.Attempts)
	}
}

func TestResolveLetsDependentsProceed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, linearYAML)
	id := h.create("linear", `{}`)
	var sawB json.RawMessage
	handler := func(p contract.Payload) outcome {
		if p.Tasker.Step == "b" {
			return fail(&contract.HandlerError{Message: "needs a human", Permanent: true})
		}
		if p.Tasker.Step == "c" {
			sawB = p.Results["b"]
		}
		return ok("ok")
	}
	h.drain(handler)
	mustStatus(t, h, id, "error")
	if err := h.eng.ResolveStep(h.ctx, id, "a", nil, "op", ""); err == nil {
		t.Fatal("resolving a complete step succeeded")
	}
	if err := h.eng.ResolveStep(h.ctx, id, "b", json.RawMessage(`{"manual":true}`), "op", "fixed by hand"); err != nil {
		t.Fatal(err)
	}
	h.drain(handler)
	mustStatus(t, h, id, "resolved_manually")
	if string(sawB) != `{"manual":true}` {
		t.Fatalf("c saw b's result %s", sawB)
	}
}

func TestConcurrencyCapsHold(t *testing.T) {
	t.Parallel()
	capped := `
namespace: test
name: capped
version: 1.0.0
steps:
  - {name: s, handler: tasker.noop, concurrency: 3}
`
	tests := []struct {
		name string
		cfg  engine.Config
		yaml string
		cap  int
	}{
		{"global", engine.Config{MaxInFlight: 4, Adaptive: engine.AdaptiveConfig{Disabled: true}}, fanoutYAML(20), 4},
		{"per step", engine.Config{}, capped, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, tc.cfg, tc.yaml)
			name := "fanout"
			tasks := 1
			if tc.name == "per step" {
				name, tasks = "capped", 10
			}
			var ids []uuid.UUID
			for range tasks {
				ids = append(ids, h.create(name, `{}`))
			}
			maxSeen := 0
			for round := 0; round < 200; round++ {
				// Deliver everything, then complete one in-flight step at a time.
				var in []engine.InMessage
				for _, m := range h.queue.Take() {
					in = append(in, engine.InMessage{ID: uuid.NewString(), Body: m.Body})
				}
				if len(in) > 0 {
					if _, err := h.eng.HandleMessages(h.ctx, in); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := h.eng.Sweep(h.ctx); err != nil {
					t.Fatal(err)
				}
				n, err := h.store.InFlight(h.ctx)
				if err != nil {
					t.Fatal(err)
				}
				maxSeen = max(maxSeen, n)
				invs := h.inv.Take()
				if len(invs) == 0 && n == 0 {
					break
				}
				var recs []engine.InMessage
				for _, inv := range invs {
					recs = append(recs, engine.InMessage{ID: uuid.NewString(), Body: record(t, inv, ok(1))})
				}
				if _, err := h.eng.HandleMessages(h.ctx, recs); err != nil {
					t.Fatal(err)
				}
			}
			for _, id := range ids {
				mustStatus(t, h, id, "complete")
			}
			if maxSeen > tc.cap {
				t.Fatalf("max in flight = %d, cap %d", maxSeen, tc.cap)
			}
			if maxSeen < tc.cap {
				t.Fatalf("max in flight = %d: the cap %d was never reached, test proves nothing", maxSeen, tc.cap)
			}
		})
	}
}

func TestTwoEnginesNeverRunAnAttemptTwice(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{InstanceID: "one"}, fanoutYAML(100))
	e2 := h.peer(engine.Config{InstanceID: "two"})
	engines := []*engine.Engine{h.eng, e2}
	var ids []uuid.UUID
	for range 20 {
		ids = append(ids, h.create("fanout", `{}`))
	}
	seen := map[string]int{}
	var mu sync.Mutex
	for round := 0; round < 100; round++ {
		var in []engine.InMessage
		for _, m := range h.queue.Take() {
			in = append(in, engine.InMessage{ID: uuid.NewString(), Body: m.Body})
		}
		for _, inv := range h.inv.Take() {
			p := payloadOf(t, inv)
			mu.Lock()
			seen[p.Tasker.IdempotencyKey]++
			mu.Unlock()
			in = append(in, engine.InMessage{ID: uuid.NewString(), Body: record(t, inv, ok(1))})
		}
		if len(in) == 0 {
			break
		}
		// Both engines get every message (as if delivered twice), concurrently.
		var wg sync.WaitGroup
		for _, e := range engines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := e.HandleMessages(h.ctx, in); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	for _, id := range ids {
		mustStatus(t, h, id, "complete")
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("attempt %s ran %d times", k, n)
		}
	}
	if len(seen) != 20*102 {
		t.Fatalf("ran %d attempts, want %d", len(seen), 20*102)
	}
}

func TestContextValidatedAndIdempotentCreate(t *testing.T) {
	t.Parallel()
	schemaYAML := `
namespace: test
name: typed
version: 1.0.0
context_schema:
  type: object
  required: [order_id]
  properties: {order_id: {type: integer}}
steps:
  - {name: a, handler: tasker.noop}
`
	h := newHarness(t, engine.Config{}, schemaYAML)
	if _, err := h.eng.CreateTask(h.ctx, engine.CreateRequest{Namespace: "test", Name: "typed", Context: json.RawMessage(`{"order_id":"x"}`)}); err == nil {
		t.Fatal("invalid context accepted")
	}
	var n int
	if err := h.pool.QueryRow(h.ctx, "SELECT count(*) FROM tasker_tasks").Scan(&n); err != nil || n != 0 {
		t.Fatalf("invalid create left %d tasks (%v)", n, err)
	}
	req := engine.CreateRequest{Namespace: "test", Name: "typed", Context: json.RawMessage(`{"order_id":7}`), IdempotencyKey: "order-7"}
	var wg sync.WaitGroup
	results := make([]engine.Created, 10)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := h.eng.CreateTask(h.ctx, req)
			if err != nil {
				t.Error(err)
			}
			results[i] = c
		}()
	}
	wg.Wait()
	created := 0
	for _, r := range results {
		if r.TaskID != results[0].TaskID {
			t.Fatal("same idempotency key gave different tasks")
		}
		if r.Created {
			created++
		}
	}
	if created != 1 {
		t.Fatalf("created = %d, want 1", created)
	}
}

func TestLocalCrashRecoversInterruptedSteps(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{InstanceID: "crashed", Local: true, HeartbeatStale: 10 * time.Second}, diamondYAML)
	if err := h.eng.Heartbeat(h.ctx); err != nil {
		t.Fatal(err)
	}
	id := h.create("diamond", `{}`)
	// The first process claims a, then b and c, and dies with them in flight.
	h.drain(func(p contract.Payload) outcome {
		if p.Tasker.Step == "a" {
			return ok(1)
		}
		return outcome{drop: true}
	})
	if s := h.step(id, "b"); s.State != "in_progress" {
		t.Fatalf("b = %s", s.State)
	}
	live := h.peer(engine.Config{InstanceID: "restarted", Local: true, HeartbeatStale: 10 * time.Second})
	if err := live.Heartbeat(h.ctx); err != nil {
		t.Fatal(err)
	}
	// While the first instance's heartbeat is fresh its work is left alone.
	h.clock.Advance(5 * time.Second)
	if r, err := live.Sweep(h.ctx); err != nil || r.Interrupted != 0 {
		t.Fatalf("sweep took live work: %+v %v", r, err)
	}
	// Once it is stale (well before the 300 s step deadline), its attempts fail as interrupted.
	h.clock.Advance(6 * time.Second)
	r, err := live.Sweep(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Interrupted != 2 || r.TimedOut != 0 {
		t.Fatalf("sweep: %+v, want 2 interrupted", r)
	}
	if s := h.step(id, "b"); s.State != "waiting_for_retry" || s.Attempts != 1 {
		t.Fatalf("b after recovery: %+v", s)
	}
	h.clock.Advance(time.Minute)
	if _, err := live.Sweep(h.ctx); err != nil {
		t.Fatal(err)
	}
	h.drain(echo)
	mustStatus(t, h, id, "complete")
	if a := h.step(id, "b").Attempts; a != 2 {
		t.Fatalf("b attempts = %d, want 2", a)
	}
}

// With the in-flight cap full, tasks whose wake-up found no capacity are
// claimed as soon as results free slots, without waiting for a sweep.
func TestCappedTasksRunWhenCapacityFrees(t *testing.T) {
	t.Parallel()
	single := `
namespace: test
name: single
version: 1.0.0
steps:
  - {name: s, handler: tasker.noop}
`
	h := newHarness(t, engine.Config{MaxInFlight: 2, Adaptive: engine.AdaptiveConfig{Disabled: true}}, single)
	var ids []uuid.UUID
	for range 6 {
		ids = append(ids, h.create("single", `{}`))
	}
	maxSeen := 0
	ran := 0
	for round := 0; round < 50; round++ {
		var in []engine.InMessage
		for _, m := range h.queue.Take() {
			in = append(in, engine.InMessage{ID: uuid.NewString(), Body: m.Body})
		}
		n, err := h.store.InFlight(h.ctx)
		if err != nil {
			t.Fatal(err)
		}
		maxSeen = max(maxSeen, n)
		for _, inv := range h.inv.Take() {
			ran++
			in = append(in, engine.InMessage{ID: uuid.NewString(), Body: record(t, inv, ok(1))})
		}
		if len(in) == 0 {
			break
		}
		if _, err := h.eng.HandleMessages(h.ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		mustStatus(t, h, id, "complete")
	}
	if ran != 6 || maxSeen > 2 {
		t.Fatalf("ran %d steps with at most %d in flight; want 6 with at most 2", ran, maxSeen)
	}
}

// The idempotency key is "<task_id>/<step>" for every automatic retry and
// gains "/<n>" after the n-th operator retry; the attempt number keeps
// counting in the payload (docs/architecture.md, "Handler contract").
func TestIdempotencyKeyStableAcrossAutomaticRetries(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, retryYAML)
	id := h.create("retry", `{}`)
	type seen struct {
		attempt int
		key     string
	}
	var keys []seen
	fails := 0
	handler := func(p contract.Payload) outcome {
		if p.Tasker.Step != "flaky" {
			return ok("done")
		}
		keys = append(keys, seen{p.Tasker.Attempt, p.Tasker.IdempotencyKey})
		if fails > 0 {
			fails--
			return fail(&contract.HandlerError{Message: "transient"})
		}
		return fail(&contract.HandlerError{Message: "bug", Permanent: true})
	}
	// Attempt 1 fails and is retried automatically; attempt 2 fails for good.
	fails = 1
	h.drain(handler)
	s := h.step(id, "flaky")
	h.clock.Advance(s.NextRetryAt.Sub(h.clock.Now()) + time.Second)
	if _, err := h.eng.Sweep(h.ctx); err != nil {
		t.Fatal(err)
	}
	h.drain(handler)
	mustStatus(t, h, id, "error")
	// Two operator retries, each failing permanently at once.
	for range 2 {
		if err := h.eng.RetryTask(h.ctx, id, "tester", "again"); err != nil {
			t.Fatal(err)
		}
		h.drain(handler)
		mustStatus(t, h, id, "error")
	}
	base := id.String() + "/flaky"
	want := []seen{{1, base}, {2, base}, {3, base + "/1"}, {4, base + "/2"}}
	if !slices.Equal(keys, want) {
		t.Fatalf("attempts and keys = %v, want %v", keys, want)
	}
}
