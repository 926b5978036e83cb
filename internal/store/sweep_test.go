package store_test

// Conformance tests of the sweep's scan and of instance heartbeats.

import (
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/store"
)

func sweep(t *testing.T, s *store.Store, now time.Time, self string, staleBefore time.Time, limit int) (tasks []uuid.UUID, expired, interrupted []store.Overdue) {
	t.Helper()
	tasks, expired, interrupted, err := s.SweepScan(t.Context(), now, self, staleBefore, limit)
	if err != nil {
		t.Fatalf("sweep scan: %v", err)
	}
	return tasks, expired, interrupted
}

func heartbeat(t *testing.T, s *store.Store, instance string, local bool, now, forgetBefore time.Time) {
	t.Helper()
	if err := s.Heartbeat(t.Context(), instance, local, now, forgetBefore); err != nil {
		t.Fatal(err)
	}
}

// The sweep finds the tasks a lost message would strand: due retries, ready
// steps nobody claimed, live tasks with nothing left to run; and no others.
func TestSweepScanTasks(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	now := at(20 * time.Second)
	want := map[string]uuid.UUID{}
	dont := map[string]uuid.UUID{}

	want["never processed"] = mk(t, s, diamond()...).ID

	tk := mk(t, s, step("a"))
	claim(t, s, t0, tk.ID)
	record(t, s, at(time.Second), tk.ID, failResult(tk.Steps["a"], 1, false)) // retry at +2s
	want["retry due"] = tk.ID

	tk = mk(t, s, diamond()...)
	claim(t, s, t0, tk.ID)
	record(t, s, at(time.Second), tk.ID, okResult(tk.Steps["a"], 1, `{}`)) // b and c ready, not claimed
	want["ready steps unclaimed"] = tk.ID

	tk = mk(t, s, retries(step("a"), 1))
	claim(t, s, t0, tk.ID)
	record(t, s, at(time.Second), tk.ID, failResult(tk.Steps["a"], 1, false))
	if _, err := s.ResolveStep(t.Context(), tk.ID, "a", nil, at(2*time.Second), "op", ""); err != nil {
		t.Fatal(err)
	}
	want["nothing left to run"] = tk.ID

	tk = mk(t, s, step("a"))
	claim(t, s, t0, tk.ID)
	r := failResult(tk.Steps["a"], 1, false)
	d := 30 * time.Second
	r.RetryAfter = &d
	record(t, s, at(time.Second), tk.ID, r) // retry at +31s
	dont["retry not due"] = tk.ID

	tk = mk(t, s, diamond()...)
	claim(t, s, t0, tk.ID)
	dont["step in flight, rest blocked"] = tk.ID

	tk = mk(t, s, diamond()...)
	completeAll(t, s, tk)
	dont["complete"] = tk.ID

	tk = mk(t, s, diamond()...)
	claim(t, s, t0, tk.ID)
	record(t, s, at(time.Second), tk.ID, failResult(tk.Steps["a"], 1, true))
	wantStatus(t, s, tk.ID, "error")
	dont["error"] = tk.ID

	tk = mk(t, s, diamond()...)
	if _, err := s.CancelTask(t.Context(), tk.ID, t0, "op", ""); err != nil {
		t.Fatal(err)
	}
	dont["cancelled"] = tk.ID

	tasks, expired, interrupted := sweep(t, s, now, sched, now.Add(-time.Minute), 100)
	for what, id := range want {
		if !slices.Contains(tasks, id) {
			t.Errorf("sweep misses the task with %s", what)
		}
	}
	for what, id := range dont {
		if slices.Contains(tasks, id) {
			t.Errorf("sweep finds the task with %s", what)
		}
	}
	if len(tasks) != len(want) || len(expired) != 0 || len(interrupted) != 0 {
		t.Fatalf("sweep = %d tasks (want %d), expired %+v, interrupted %+v", len(tasks), len(want), expired, interrupted)
	}

	// A pass over what the sweep found moves every one of them on.
	var ids []uuid.UUID
	for _, id := range want {
		ids = append(ids, id)
	}
	process(t, s, store.ProcessInput{Now: now, TaskIDs: ids, ClaimLimit: 100, Grace: grace})
	if tasks, _, _ := sweep(t, s, now, sched, now.Add(-time.Minute), 100); len(tasks) != 0 {
		t.Fatalf("sweep after the pass = %v, want none", tasks)
	}
	wantStatus(t, s, want["nothing left to run"], "resolved_manually")
}

// The limit bounds the tasks of one scan, whatever the reasons they are
// found for (the sweep processes them all in one pass).
func TestSweepScanTaskLimit(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	for range 3 { // due retries
		tk := mk(t, s, step("a"))
		claim(t, s, t0, tk.ID)
		record(t, s, at(time.Second), tk.ID, failResult(tk.Steps["a"], 1, false))
	}
	for range 3 { // ready steps
		mk(t, s, step("a"))
	}
	now := at(time.Minute)
	if tasks, _, _ := sweep(t, s, now, sched, now, 100); len(tasks) != 6 {
		t.Fatalf("sweep = %d tasks, want 6", len(tasks))
	}
	for limit := 1; limit <= 6; limit++ {
		if tasks, _, _ := sweep(t, s, now, sched, now, limit); len(tasks) == 0 || len(tasks) > limit {
			t.Errorf("sweep with limit %d = %d tasks, want 1..%d", limit, len(tasks), limit)
		}
	}
}

// In-flight attempts past their deadline (timeout + grace) are expired.
func TestSweepScanExpired(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	a := step("a")
	a.TimeoutSeconds = 40
	tk := mk(t, s, a, step("b"))
	claim(t, s, t0, tk.ID) // deadlines: a +70s, b +60s
	deadlineB, deadlineA := at(60*time.Second), at(70*time.Second)

	if _, expired, _ := sweep(t, s, deadlineB.Add(-time.Millisecond), sched, t0, 100); len(expired) != 0 {
		t.Fatalf("expired before the deadline: %+v", expired)
	}
	_, expired, interrupted := sweep(t, s, deadlineB.Add(time.Millisecond), sched, t0, 100)
	if len(expired) != 1 || len(interrupted) != 0 {
		t.Fatalf("expired = %+v, interrupted = %+v; want b", expired, interrupted)
	}
	if e := expired[0]; e.StepID != tk.Steps["b"] || e.TaskID != tk.ID || e.Attempt != 1 || e.TimeoutSeconds != 30 {
		t.Fatalf("expired = %+v", e)
	}
	_, expired, _ = sweep(t, s, deadlineA.Add(time.Second), sched, t0, 100)
	if len(expired) != 2 {
		t.Fatalf("expired = %+v, want a and b", expired)
	}
	if _, expired, _ := sweep(t, s, deadlineA.Add(time.Second), sched, t0, 1); len(expired) != 1 {
		t.Fatalf("expired with limit 1 = %+v", expired)
	}
	for _, e := range expired {
		if e.StepID == tk.Steps["a"] && (e.Attempt != 1 || e.TimeoutSeconds != 40) {
			t.Fatalf("expired a = %+v", e)
		}
	}

	// Once the timeout is recorded the attempt is no longer in flight; the
	// retry's attempt expires in its turn, with its own number.
	now := deadlineA.Add(time.Second)
	out := record(t, s, now, tk.ID, failResult(tk.Steps["a"], 1, false), failResult(tk.Steps["b"], 1, true))
	if len(out.Recorded) != 2 {
		t.Fatalf("recorded = %+v", out.Recorded)
	}
	if _, expired, _ := sweep(t, s, now.Add(time.Hour), sched, t0, 100); len(expired) != 0 {
		t.Fatalf("expired after recording = %+v", expired)
	}
	now = now.Add(time.Minute)
	if cs := claim(t, s, now, tk.ID); len(cs) != 1 || cs[0].Attempt != 2 {
		t.Fatalf("retry claims = %+v", cs)
	}
	_, expired, _ = sweep(t, s, now.Add(71*time.Second), sched, t0, 100)
	if len(expired) != 1 || expired[0].StepID != tk.Steps["a"] || expired[0].Attempt != 2 {
		t.Fatalf("expired = %+v, want a's attempt 2", expired)
	}
}

// Attempts held by a local instance that stopped heartbeating are
// interrupted; those of live, remote, unknown instances and of the sweeping
// instance itself are not.
func TestSweepScanInterrupted(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	forget := t0.Add(-24 * time.Hour)
	heartbeat(t, s, "dead", true, t0, forget)
	heartbeat(t, s, "alive", true, t0, forget)
	heartbeat(t, s, "alive", true, at(50*time.Second), forget) // a heartbeat moves on
	heartbeat(t, s, "remote", false, t0, forget)
	heartbeat(t, s, "self", true, t0, forget)
	held := map[string]task{}
	for _, inst := range []string{"dead", "alive", "remote", "self", "ghost"} {
		tk := mk(t, s, step("a"), step("b", "a"))
		out := process(t, s, store.ProcessInput{Now: at(time.Second), Actor: inst, TaskIDs: []uuid.UUID{tk.ID}, ClaimLimit: 10, Grace: grace})
		if len(out.Claims) != 1 {
			t.Fatalf("claims = %+v", out.Claims)
		}
		held[inst] = tk
	}
	now, stale := at(55*time.Second), at(40*time.Second)
	tasks, expired, interrupted := sweep(t, s, now, "self", stale, 100)
	dead := held["dead"]
	if len(interrupted) != 1 || len(expired) != 0 || len(tasks) != 0 {
		t.Fatalf("tasks %v, expired %+v, interrupted %+v; want dead's step interrupted", tasks, expired, interrupted)
	}
	if i := interrupted[0]; i.StepID != dead.Steps["a"] || i.TaskID != dead.ID || i.Attempt != 1 || i.ClaimedBy != "dead" {
		t.Fatalf("interrupted = %+v", i)
	}
	// Seen from another instance, the stale "self" is interrupted as well.
	if _, _, interrupted := sweep(t, s, now, "alive", stale, 100); len(interrupted) != 2 {
		t.Fatalf("interrupted seen by alive = %+v, want dead's and self's", interrupted)
	}
	if _, _, interrupted := sweep(t, s, now, "alive", stale, 1); len(interrupted) != 1 {
		t.Fatalf("interrupted with limit 1 = %+v", interrupted)
	}
	// Recording the interruption ends it.
	out := record(t, s, now, dead.ID, failResult(dead.Steps["a"], 1, false))
	if len(out.Recorded) != 1 || out.Recorded[0].To != "waiting_for_retry" {
		t.Fatalf("recorded = %+v", out.Recorded)
	}
	if _, _, interrupted := sweep(t, s, now, "self", stale, 100); len(interrupted) != 0 {
		t.Fatalf("interrupted after recording = %+v", interrupted)
	}
	// A step the dead instance claims after it comes back is not interrupted.
	heartbeat(t, s, "dead", true, at(3*time.Minute), forget)
	if cs := process(t, s, store.ProcessInput{Now: at(3 * time.Minute), Actor: "dead", TaskIDs: []uuid.UUID{dead.ID}, ClaimLimit: 10, Grace: grace}).Claims; len(cs) != 1 {
		t.Fatalf("claims = %+v", cs)
	}
	_, _, interrupted = sweep(t, s, at(3*time.Minute+time.Second), "self", at(2*time.Minute), 100)
	for _, i := range interrupted {
		if i.ClaimedBy == "dead" {
			t.Fatalf("interrupted = %+v, want none of dead's (it is alive again)", interrupted)
		}
	}
	if len(interrupted) != 1 || interrupted[0].ClaimedBy != "alive" {
		t.Fatalf("interrupted = %+v, want alive's (silent since +50s)", interrupted)
	}
}

// Heartbeats forget instances silent since forgetBefore, unless they still
// hold in-flight work (which the sweep must still see as interrupted).
func TestHeartbeatForgetsIdleInstances(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	heartbeat(t, s, "idle", true, t0, t0.Add(-time.Hour))
	heartbeat(t, s, "busy", true, t0, t0.Add(-time.Hour))
	busy := mk(t, s, step("a"))
	process(t, s, store.ProcessInput{Now: t0, Actor: "busy", TaskIDs: []uuid.UUID{busy.ID}, ClaimLimit: 10, Grace: grace})

	later := at(2 * time.Hour)
	heartbeat(t, s, "self", true, later, at(time.Hour))

	// busy was kept: its attempt is interrupted.
	_, _, interrupted := sweep(t, s, later, "self", at(time.Hour), 100)
	if len(interrupted) != 1 || interrupted[0].ClaimedBy != "busy" {
		t.Fatalf("interrupted = %+v, want busy's attempt", interrupted)
	}
	// idle was forgotten: an instance nobody knows is not a local instance
	// that stopped, so its claims are left to their deadlines.
	idle := mk(t, s, step("a"))
	process(t, s, store.ProcessInput{Now: later, Actor: "idle", TaskIDs: []uuid.UUID{idle.ID}, ClaimLimit: 10, Grace: grace})
	_, _, interrupted = sweep(t, s, later.Add(time.Second), "self", at(time.Hour), 100)
	for _, i := range interrupted {
		if i.ClaimedBy == "idle" {
			t.Fatalf("idle instance still known: %+v", interrupted)
		}
	}
}
