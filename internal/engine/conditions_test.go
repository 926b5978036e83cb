package engine_test

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/engine"
)

// sagaYAML is testdata/saga.yaml: reserve -> charge -> ship with the
// compensations refund (one_failed on ship) and release (one_failed on
// charge and ship), a conditional notify and a finally (audit).
func sagaYAML(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("testdata/saga.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sagaHandler succeeds everywhere except in the steps of fail, which fail
// every attempt (retryably: ship, with two attempts, fails for good once its
// retry failed too); ship returns a tracking number.
func sagaHandler(fail ...string) handlerFunc {
	return func(p contract.Payload) outcome {
		if slices.Contains(fail, p.Tasker.Step) {
			return outcomeFail(p.Tasker.Step + " failed")
		}
		if p.Tasker.Step == "ship" {
			return ok(map[string]any{"tracking": "T1"})
		}
		return ok(map[string]any{"step": p.Tasker.Step})
	}
}

func outcomeFail(msg string) outcome {
	return fail(&contract.HandlerError{Message: msg})
}

// settle runs the saga until nothing is left to do, retries included.
func settle(t *testing.T, h *harness, fn handlerFunc) []contract.Payload {
	t.Helper()
	ran := h.drain(fn)
	for range 4 {
		h.clock.Advance(10 * time.Minute)
		if _, err := h.eng.Sweep(h.ctx); err != nil {
			t.Fatal(err)
		}
		ran = append(ran, h.drain(fn)...)
	}
	return ran
}

func ranSteps(ps []contract.Payload) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Tasker.Step)
	}
	slices.Sort(out)
	return out
}

// wantSteps checks each named step's state and, for skipped ones, the
// skip kind.
func wantSteps(t *testing.T, h *harness, id uuid.UUID, want map[string]string) {
	t.Helper()
	for name, w := range want {
		st := h.step(id, name)
		got := st.State
		if st.State == "skipped" {
			got += "/" + st.SkipKind
		}
		if got != w {
			t.Errorf("step %s = %s (%s), want %s", name, got, st.SkipReason, w)
		}
	}
}

func TestSaga(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		context string
		fail    []string
		ran     []string
		steps   map[string]string
		status  string
		skipped int // step.skipped events
	}{
		{
			name: "all succeed", context: `{"notify": true}`,
			ran: []string{"audit", "charge", "notify", "reserve", "ship"},
			steps: map[string]string{"reserve": "complete", "charge": "complete", "ship": "complete",
				"refund": "skipped/no_failure", "release": "skipped/no_failure", "notify": "complete", "audit": "complete"},
			status: "complete", skipped: 2,
		},
		{
			// Caught: ship's failure has completed one_failed dependents.
			name: "ship fails for good", context: `{"notify": true}`, fail: []string{"ship"},
			ran: []string{"audit", "charge", "refund", "release", "reserve", "ship", "ship"},
			steps: map[string]string{"ship": "error", "refund": "complete", "release": "complete",
				"notify": "skipped/upstream_failed", "audit": "complete"},
			status: "complete", skipped: 1,
		},
		{
			// ship never runs; nothing was charged, so refund is skipped.
			name: "charge fails", context: `{"notify": true}`, fail: []string{"charge"},
			ran: []string{"audit", "charge", "release", "reserve"},
			steps: map[string]string{"charge": "error", "ship": "skipped/upstream_failed", "refund": "skipped/no_failure",
				"release": "complete", "notify": "skipped/upstream_failed", "audit": "complete"},
			status: "complete", skipped: 3,
		},
		{
			// A failed compensation has no one_failed dependent: the
			// task fails, after the finally ran.
			name: "compensation fails", context: `{"notify": true}`, fail: []string{"ship", "refund"},
			ran: []string{"audit", "charge", "refund", "release", "reserve", "ship", "ship"},
			steps: map[string]string{"ship": "error", "refund": "error", "release": "complete",
				"notify": "skipped/upstream_failed", "audit": "complete"},
			status: "error", skipped: 1,
		},
		{
			name: "when false", context: `{"notify": false}`,
			ran: []string{"audit", "charge", "reserve", "ship"},
			steps: map[string]string{"ship": "complete", "notify": "skipped/condition", "refund": "skipped/no_failure",
				"release": "skipped/no_failure", "audit": "complete"},
			status: "complete", skipped: 3,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, engine.Config{}, sagaYAML(t))
			id := h.create("saga", tc.context)
			ran := settle(t, h, sagaHandler(tc.fail...))
			if got := ranSteps(ran); !slices.Equal(got, tc.ran) {
				t.Errorf("handlers ran for %v, want %v", got, tc.ran)
			}
			wantSteps(t, h, id, tc.steps)
			mustStatus(t, h, id, tc.status)
			if n := h.pub.Count(engine.StepSkipped); n != tc.skipped {
				t.Errorf("step.skipped events = %d, want %d", n, tc.skipped)
			}
		})
	}
}

// TestSagaPayloads: a compensation receives its failed parent's result
// (null) and a finally receives every parent's result, skipped ones as null.
func TestSagaPayloads(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, sagaYAML(t))
	h.create("saga", `{"notify": false}`)
	ran := h.drain(sagaHandler())
	for _, p := range ran {
		if p.Tasker.Step != "audit" {
			continue
		}
		b, _ := json.Marshal(p.Results)
		if string(b) != `{"notify":null,"refund":null,"release":null}` {
			t.Fatalf("audit's results = %s", b)
		}
		return
	}
	t.Fatal("audit did not run")
}

// TestConditionSkipRecorded: the skip reason names the expression, in the
// step, its transition and the step.skipped event, and the handler is never
// invoked.
func TestConditionSkipRecorded(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, sagaYAML(t))
	id := h.create("saga", `{"notify": false}`)
	h.drain(sagaHandler())
	const reason = "when was false: context.notify && results.ship.tracking != ''"
	st := h.step(id, "notify")
	if st.State != "skipped" || st.SkipKind != "condition" || st.SkipReason != reason || st.Attempts != 1 {
		t.Fatalf("notify = %+v", st)
	}
	var from, to, got string
	err := h.pool.QueryRow(h.ctx, `SELECT tr.from_state, tr.to_state, tr.reason FROM tasker_transitions tr
		JOIN tasker_steps s ON s.id = tr.step_id WHERE s.task_id = $1 AND s.name = 'notify' ORDER BY tr.id DESC LIMIT 1`, id).
		Scan(&from, &to, &got)
	if err != nil || from != "in_progress" || to != "skipped" || got != reason {
		t.Fatalf("last transition %s -> %s %q (%v)", from, to, got, err)
	}
	found := false
	for _, ev := range h.pub.Events() {
		if ev.Name == engine.StepSkipped && ev.Step == "notify" {
			found = ev.Reason == reason && ev.From == "in_progress" && ev.To == "skipped"
		}
	}
	if !found {
		t.Fatal("no step.skipped event for notify with its reason")
	}
	v, err := h.store.GetTask(h.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range v.Steps {
		if s.Name == "notify" && (s.SkipReason != reason || s.When == "" || s.TriggerRule != "all_success") {
			t.Fatalf("step view = %+v", s)
		}
		if s.Name == "refund" && (s.SkipReason != "trigger rule one_failed: no parent failed" || s.TriggerRule != "one_failed") {
			t.Fatalf("step view = %+v", s)
		}
	}
}

// TestConditionError: a condition that cannot be evaluated fails its own
// step permanently, naming the expression; a task evaluated in the same
// batch is not affected.
func TestConditionError(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, sagaYAML(t))
	bad := h.create("saga", `{}`) // context.notify is missing
	good := h.create("saga", `{"notify": true}`)
	ran := h.drain(sagaHandler())
	for _, p := range ran {
		if p.Tasker.Step == "notify" && p.Tasker.TaskID == bad {
			t.Fatal("the handler ran for a step whose condition failed")
		}
	}
	st := h.step(bad, "notify")
	var le struct {
		Message   string `json:"message"`
		Code      string `json:"code"`
		Permanent bool   `json:"permanent"`
	}
	if err := json.Unmarshal(st.LastError, &le); err != nil {
		t.Fatal(err)
	}
	if st.State != "error" || le.Code != "condition_error" || !le.Permanent ||
		!strings.Contains(le.Message, `"context.notify && results.ship.tracking != ''"`) || !strings.Contains(le.Message, "no such key: notify") {
		t.Fatalf("notify = %s %s", st.State, st.LastError)
	}
	// audit (all_done) still ran; nothing caught notify's failure.
	wantSteps(t, h, bad, map[string]string{"audit": "complete"})
	mustStatus(t, h, bad, "error")
	mustStatus(t, h, good, "complete")
	wantSteps(t, h, good, map[string]string{"notify": "complete"})
}

// TestSagaRetry: an operator retry of a task whose compensation failed
// resets the failed steps and the steps skipped below them; the saga then
// runs to completion and the compensation is skipped.
func TestSagaRetry(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, sagaYAML(t))
	id := h.create("saga", `{"notify": true}`)
	settle(t, h, sagaHandler("ship", "refund"))
	mustStatus(t, h, id, "error")

	if err := h.eng.RetryTask(h.ctx, id, "op", "carrier is back"); err != nil {
		t.Fatal(err)
	}
	wantSteps(t, h, id, map[string]string{"ship": "pending", "refund": "pending", "notify": "pending",
		"release": "complete", "audit": "complete"})
	ran := h.drain(sagaHandler())
	if got := ranSteps(ran); !slices.Equal(got, []string{"notify", "ship"}) {
		t.Fatalf("after retry ran %v", got)
	}
	wantSteps(t, h, id, map[string]string{"ship": "complete", "refund": "skipped/no_failure", "notify": "complete"})
	mustStatus(t, h, id, "complete")
}

// TestSagaResolve: resolving the failed step puts the steps skipped below it
// back to pending; its one_failed dependents that already ran stay done.
func TestSagaResolve(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, sagaYAML(t))
	id := h.create("saga", `{"notify": true}`)
	settle(t, h, sagaHandler("charge", "release"))
	mustStatus(t, h, id, "error")
	wantSteps(t, h, id, map[string]string{"charge": "error", "release": "error", "ship": "skipped/upstream_failed",
		"notify": "skipped/upstream_failed", "refund": "skipped/no_failure", "audit": "complete"})

	if err := h.eng.ResolveStep(h.ctx, id, "charge", json.RawMessage(`{"manual":true}`), "op", "charged by phone"); err != nil {
		t.Fatal(err)
	}
	ran := settle(t, h, sagaHandler())
	if got := ranSteps(ran); !slices.Equal(got, []string{"notify", "ship"}) {
		t.Fatalf("after resolve ran %v", got)
	}
	// release (a compensation that failed) is still in error: the task
	// ends in error until it is resolved too.
	mustStatus(t, h, id, "error")
	if err := h.eng.ResolveStep(h.ctx, id, "release", nil, "op", "released by hand"); err != nil {
		t.Fatal(err)
	}
	settle(t, h, sagaHandler())
	mustStatus(t, h, id, "resolved_manually")
}
