package store_test

// Conformance tests of trigger rules, skips and the final status of a task
// with failure paths (docs/architecture.md, "States").

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/store"
)

// ruled is step with a trigger rule.
func ruled(rule, name string, deps ...string) store.NewStep {
	s := step(name, deps...)
	s.TriggerRule = rule
	return s
}

// skipState is the step's state, with the skip kind when skipped.
func skipState(t *testing.T, s *store.Store, id uuid.UUID, name string) string {
	t.Helper()
	st := stepView(t, s, id, name)
	if st.State == "skipped" {
		return "skipped/" + st.SkipKind
	}
	return string(st.State)
}

// TestTriggerRules: a child of two parents under each rule, for each way
// the parents end. One parent fails permanently while the other is still in
// flight, then the other ends.
func TestTriggerRules(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	type outcome int
	const (
		succeed outcome = iota
		failure
	)
	cases := []struct {
		rule   string
		p1, p2 outcome
		// early: the child after p1 ended and while p2 is in flight;
		// final: after both ended ("claimed" when it was claimed).
		early, final string
		status       string // the task's, once the child (if claimed) completed
	}{
		{"all_success", succeed, succeed, "pending", "claimed", "complete"},
		{"all_success", failure, succeed, "skipped/upstream_failed", "skipped/upstream_failed", "error"},
		{"all_success", succeed, failure, "pending", "skipped/upstream_failed", "error"},
		{"all_done", succeed, succeed, "pending", "claimed", "complete"},
		{"all_done", failure, succeed, "pending", "claimed", "error"},
		{"all_done", failure, failure, "pending", "claimed", "error"},
		{"one_failed", succeed, succeed, "pending", "skipped/no_failure", "complete"},
		// Fires as soon as one parent failed; it catches that failure.
		{"one_failed", failure, succeed, "claimed", "claimed", "complete"},
		{"one_failed", succeed, failure, "pending", "claimed", "complete"},
		// It catches both.
		{"one_failed", failure, failure, "claimed", "claimed", "complete"},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/%d%d", tc.rule, tc.p1, tc.p2), func(t *testing.T) {
			t.Parallel()
			tk := mk(t, s, retries(step("p1"), 1), retries(step("p2"), 1), ruled(tc.rule, "child", "p1", "p2"))
			if got := claimNames(tk, claim(t, s, t0, tk.ID)); !slices.Equal(got, []string{"p1", "p2"}) {
				t.Fatalf("claims = %v", got)
			}
			result := func(name string, o outcome) store.StepResult {
				if o == failure {
					return failResult(tk.Steps[name], 1, true)
				}
				return okResult(tk.Steps[name], 1, `{}`)
			}
			pass := func(now time.Time, r store.StepResult) (claimed bool) {
				out := process(t, s, store.ProcessInput{Now: now, TaskIDs: []uuid.UUID{tk.ID}, Results: []store.StepResult{r},
					ClaimLimit: 10, Grace: grace})
				return slices.Contains(claimNames(tk, out.Claims), "child")
			}
			state := func(claimed bool) string {
				if claimed {
					return "claimed"
				}
				return skipState(t, s, tk.ID, "child")
			}
			claimedEarly := pass(at(time.Second), result("p1", tc.p1))
			if got := state(claimedEarly); got != tc.early {
				t.Fatalf("after p1: child %s, want %s", got, tc.early)
			}
			claimed := pass(at(2*time.Second), result("p2", tc.p2))
			if got := state(claimed || claimedEarly); got != tc.final {
				t.Fatalf("after p2: child %s, want %s", got, tc.final)
			}
			if claimed || claimedEarly {
				record(t, s, at(3*time.Second), tk.ID, okResult(tk.Steps["child"], 1, `{}`))
			}
			wantStatus(t, s, tk.ID, tc.status)
		})
	}
}

// TestSkipCascade: a failure skips the all_success steps below it, level by
// level in one pass, up to a step that runs whatever happened (all_done).
func TestSkipCascade(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	tk := mk(t, s, retries(step("a"), 1), step("b", "a"), step("c", "b"), ruled("all_done", "d", "c"), step("e", "d"))
	claim(t, s, t0, tk.ID)
	out := process(t, s, store.ProcessInput{Now: at(time.Second), TaskIDs: []uuid.UUID{tk.ID},
		Results: []store.StepResult{failResult(tk.Steps["a"], 1, true)}, ClaimLimit: 10, Grace: grace})
	if got := claimNames(tk, out.Claims); !slices.Equal(got, []string{"d"}) {
		t.Fatalf("claims = %v, want d", got)
	}
	var skipped []string
	for _, r := range out.Recorded {
		if r.To == "skipped" {
			if r.From != "pending" || r.Attempt != 0 {
				t.Errorf("skip = %+v", r)
			}
			skipped = append(skipped, r.Step+": "+r.Reason)
		}
	}
	want := []string{
		"b: trigger rule all_success cannot hold: parent a failed",
		"c: trigger rule all_success cannot hold: parent b did not run after a failure",
	}
	if !slices.Equal(skipped, want) {
		t.Fatalf("skipped = %q, want %q", skipped, want)
	}
	if st := stepView(t, s, tk.ID, "c"); st.SkipReason != want[1][3:] || st.CompletedAt == nil || !st.CompletedAt.Equal(at(time.Second)) {
		t.Fatalf("c = %+v", st)
	}
	// d ran and completed: e (all_success on d) runs; the task still ends
	// in error, a's failure being caught by nothing.
	out = process(t, s, store.ProcessInput{Now: at(2 * time.Second), TaskIDs: []uuid.UUID{tk.ID},
		Results: []store.StepResult{okResult(tk.Steps["d"], 1, `{}`)}, ClaimLimit: 10, Grace: grace})
	if got := claimNames(tk, out.Claims); !slices.Equal(got, []string{"e"}) {
		t.Fatalf("claims = %v, want e", got)
	}
	out = record(t, s, at(3*time.Second), tk.ID, okResult(tk.Steps["e"], 1, `{}`))
	if len(out.Finalized) != 1 || out.Finalized[0].To != "error" {
		t.Fatalf("finalized = %+v", out.Finalized)
	}
}

// TestConditionSkipResult: a result with Skip records the claimed attempt
// as skipped by its condition, which satisfies the dependents; it is fenced
// like any result.
func TestConditionSkipResult(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	a := step("a")
	a.When = "context.order > 100"
	tk := mk(t, s, a, step("b", "a"))
	cs := claim(t, s, t0, tk.ID)
	if c := claimOf(t, tk, cs, "a"); c.When != "context.order > 100" {
		t.Fatalf("claim = %+v, want its condition", c)
	}
	skip := store.StepResult{StepID: tk.Steps["a"], Attempt: 1, Skip: true, Reason: "when was false: context.order > 100"}
	// A stale attempt changes nothing.
	stale := skip
	stale.Attempt = 2
	if out := record(t, s, at(time.Second), tk.ID, stale); len(out.Recorded) != 0 {
		t.Fatalf("stale skip recorded: %+v", out.Recorded)
	}
	out := process(t, s, store.ProcessInput{Now: at(time.Second), TaskIDs: []uuid.UUID{tk.ID},
		Results: []store.StepResult{skip}, ClaimLimit: 10, Grace: grace})
	if len(out.Recorded) != 1 || out.Recorded[0].From != "in_progress" || out.Recorded[0].To != "skipped" ||
		out.Recorded[0].Reason != skip.Reason {
		t.Fatalf("recorded = %+v", out.Recorded)
	}
	if got := claimNames(tk, out.Claims); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("claims = %v, want b", got)
	}
	wantJSON(t, "b's results", claimOf(t, tk, out.Claims, "b").Results, `{"a":null}`)
	st := stepView(t, s, tk.ID, "a")
	if st.State != "skipped" || st.SkipKind != "condition" || st.SkipReason != skip.Reason || st.When != "context.order > 100" ||
		st.Result != nil || st.LastError != nil {
		t.Fatalf("a = %+v", st)
	}
	out = record(t, s, at(2*time.Second), tk.ID, okResult(tk.Steps["b"], 1, `{}`))
	if len(out.Finalized) != 1 || out.Finalized[0].To != "complete" {
		t.Fatalf("finalized = %+v, want complete", out.Finalized)
	}
}

// TestCaughtFailure: the final status follows the catches: a failed step
// whose one_failed dependent completed does not fail the task; a failed
// catch does.
func TestCaughtFailure(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	for _, catchOK := range []bool{true, false} {
		t.Run(fmt.Sprint("catch ok ", catchOK), func(t *testing.T) {
			t.Parallel()
			tk := mk(t, s, retries(step("a"), 1), retries(ruled("one_failed", "catch", "a"), 1), step("after", "a"),
				ruled("all_done", "finally", "catch", "after"))
			claim(t, s, t0, tk.ID)
			out := process(t, s, store.ProcessInput{Now: at(time.Second), TaskIDs: []uuid.UUID{tk.ID},
				Results: []store.StepResult{failResult(tk.Steps["a"], 1, true)}, ClaimLimit: 10, Grace: grace})
			if got := claimNames(tk, out.Claims); !slices.Equal(got, []string{"catch"}) {
				t.Fatalf("claims = %v", got)
			}
			wantStates(t, s, tk.ID, map[string]string{"a": "error", "catch": "in_progress", "after": "skipped", "finally": "pending"})
			r := okResult(tk.Steps["catch"], 1, `{"refunded":true}`)
			if !catchOK {
				r = failResult(tk.Steps["catch"], 1, true)
			}
			out = process(t, s, store.ProcessInput{Now: at(2 * time.Second), TaskIDs: []uuid.UUID{tk.ID},
				Results: []store.StepResult{r}, ClaimLimit: 10, Grace: grace})
			if got := claimNames(tk, out.Claims); !slices.Equal(got, []string{"finally"}) {
				t.Fatalf("claims = %v", got)
			}
			out = record(t, s, at(3*time.Second), tk.ID, okResult(tk.Steps["finally"], 1, `{}`))
			want := "complete"
			if !catchOK {
				want = "error"
			}
			if len(out.Finalized) != 1 || string(out.Finalized[0].To) != want {
				t.Fatalf("finalized = %+v, want %s", out.Finalized, want)
			}
		})
	}
}

// TestSweepFindsBlockedTask: a live task with a pending step whose parent
// failed (as a database from before migration 0012 may hold) is found by
// the sweep, and its pass skips the step and finishes the task.
func TestSweepFindsBlockedTask(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	tk := mk(t, s, step("a"), step("b", "a"))
	claim(t, s, t0, tk.ID)
	if _, err := s.Pool().Exec(t.Context(), `UPDATE tasker_steps SET state = 'error', deadline_at = NULL, claimed_by = NULL WHERE id = $1`,
		tk.Steps["a"]); err != nil {
		t.Fatal(err)
	}
	tasks, _, _, err := s.SweepScan(t.Context(), at(time.Second), "sweeper", at(-time.Hour), 10)
	if err != nil || !slices.Contains(tasks, tk.ID) {
		t.Fatalf("sweep = %v, %v; want the task", tasks, err)
	}
	out := claim(t, s, at(2*time.Second), tk.ID)
	if len(out) != 0 {
		t.Fatalf("claims = %+v", out)
	}
	wantStates(t, s, tk.ID, map[string]string{"a": "error", "b": "skipped"})
	wantStatus(t, s, tk.ID, "error")
}

// TestResolveRedecidesSkipped: a catch skipped by its condition goes back
// to pending when the failure it could have caught is resolved; the next
// pass (a wake-up, no results) finds nothing left to catch and skips it.
func TestResolveRedecidesSkipped(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	c := retries(ruled("one_failed", "c", "a"), 1)
	c.When = "context.order > 100"
	tk := mk(t, s, retries(step("a"), 1), c)
	claim(t, s, t0, tk.ID)
	out := process(t, s, store.ProcessInput{Now: at(time.Second), TaskIDs: []uuid.UUID{tk.ID},
		Results: []store.StepResult{failResult(tk.Steps["a"], 1, true)}, ClaimLimit: 10, Grace: grace})
	if got := claimNames(tk, out.Claims); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("claims = %v", got)
	}
	record(t, s, at(2*time.Second), tk.ID, store.StepResult{StepID: tk.Steps["c"], Attempt: 1, Skip: true, Reason: "when was false"})
	// A catch that did not run catches nothing.
	wantStatus(t, s, tk.ID, "error")
	res, err := s.ResolveStep(t.Context(), tk.ID, "a", nil, at(3*time.Second), "op", "")
	if err != nil || len(res.Steps) != 2 || res.Steps[1].Step != "c" || res.Steps[1].From != "skipped" {
		t.Fatalf("resolve = %+v, %v", res, err)
	}
	if cs := claim(t, s, at(4*time.Second), tk.ID); len(cs) != 0 {
		t.Fatalf("claims = %+v", cs)
	}
	if got := skipState(t, s, tk.ID, "c"); got != "skipped/no_failure" {
		t.Fatalf("c = %s", got)
	}
	wantStatus(t, s, tk.ID, "resolved_manually")
}
