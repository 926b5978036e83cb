package store_test

// Conformance tests of the operator actions: cancel, retry, resolve.

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/store"
)

func sortChanges(cs []store.StepChange) []store.StepChange {
	sort.Slice(cs, func(i, j int) bool { return cs[i].Step < cs[j].Step })
	return cs
}

func TestCancelTask(t *testing.T) {
	t.Parallel()
	t.Run("running", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		tk := mk(t, s, diamond()...)
		claim(t, s, t0, tk.ID)
		process(t, s, store.ProcessInput{Now: at(time.Second), TaskIDs: []uuid.UUID{tk.ID}, ClaimLimit: 10, Grace: grace,
			Results: []store.StepResult{okResult(tk.Steps["a"], 1, `{}`)}})
		record(t, s, at(2*time.Second), tk.ID, failResult(tk.Steps["c"], 1, false))
		wantStates(t, s, tk.ID, map[string]string{"a": "complete", "b": "in_progress", "c": "waiting_for_retry", "d": "pending"})
		n := len(audit(t, s, tk))

		now := at(3 * time.Second)
		res, err := s.CancelTask(t.Context(), tk.ID, now, "alice", "customer asked")
		if err != nil {
			t.Fatal(err)
		}
		v := getTask(t, s, tk.ID)
		if res.From != "in_progress" || res.Task.ID != tk.ID || res.Task.Status != "cancelled" || res.Task.Namespace != "shop" ||
			res.Task.Workflow != "order" || res.Task.CorrelationID != v.CorrelationID {
			t.Fatalf("result = %+v", res)
		}
		want := []store.StepChange{
			{StepID: tk.Steps["b"], Step: "b", Attempt: 1, From: "in_progress", To: "cancelled"},
			{StepID: tk.Steps["c"], Step: "c", Attempt: 1, From: "waiting_for_retry", To: "cancelled"},
			{StepID: tk.Steps["d"], Step: "d", Attempt: 0, From: "pending", To: "cancelled"},
		}
		if got := sortChanges(res.Steps); !reflect.DeepEqual(got, want) {
			t.Fatalf("steps = %+v, want %+v", got, want)
		}
		if v.Status != "cancelled" || !timePtrEqual(v.CompletedAt, now) {
			t.Fatalf("task = %+v", v)
		}
		wantStates(t, s, tk.ID, map[string]string{"a": "complete", "b": "cancelled", "c": "cancelled", "d": "cancelled"})
		for _, st := range v.Steps {
			if st.NextRetryAt != nil || st.DeadlineAt != nil {
				t.Fatalf("cancelled step keeps a timer: %+v", st)
			}
		}
		if n := inFlight(t, s); n != 0 {
			t.Fatalf("in flight = %d after cancel", n)
		}
		rows := audit(t, s, tk)[n:]
		if len(rows) != 4 {
			t.Fatalf("cancel wrote %d transitions, want 3 steps and the task: %+v", len(rows), rows)
		}
		for _, r := range rows {
			if r.To != "cancelled" || r.Actor != "alice" || r.Reason != "customer asked" || !r.At.Equal(now) {
				t.Fatalf("transition = %+v", r)
			}
			if r.Step == "" && r.From != "in_progress" || r.Step == "b" && (r.From != "in_progress" || r.Attempt != 1) ||
				r.Step == "c" && r.From != "waiting_for_retry" || r.Step == "d" && r.From != "pending" || r.Step == "a" {
				t.Fatalf("transition = %+v", r)
			}
		}
		// The cancelled attempt's late result changes nothing.
		if out := record(t, s, at(4*time.Second), tk.ID, okResult(tk.Steps["b"], 1, `{}`)); len(out.Recorded)+len(out.Finalized) != 0 {
			t.Fatalf("late result after cancel: %+v", out)
		}
	})
	t.Run("pending", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		tk := mk(t, s, diamond()...)
		res, err := s.CancelTask(t.Context(), tk.ID, t0, "op", "")
		if err != nil || res.From != "pending" || len(res.Steps) != 4 {
			t.Fatalf("cancel = %+v, %v", res, err)
		}
		rows := audit(t, s, tk)
		if len(rows) != 6 || rows[5].Step != "" || rows[5].From != "pending" || rows[5].To != "cancelled" || rows[5].Reason == "" {
			t.Fatalf("transitions = %+v, want creation, 4 steps, task", rows)
		}
	})
	t.Run("error", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		tk := mk(t, s, diamond()...)
		claim(t, s, t0, tk.ID)
		record(t, s, at(time.Second), tk.ID, failResult(tk.Steps["a"], 1, true))
		// a's dependents were skipped when it failed: nothing is live.
		wantStates(t, s, tk.ID, map[string]string{"a": "error", "b": "skipped", "c": "skipped", "d": "skipped"})
		res, err := s.CancelTask(t.Context(), tk.ID, at(2*time.Second), "op", "")
		if err != nil || res.From != "error" || len(res.Steps) != 0 {
			t.Fatalf("cancel = %+v, %v", res, err)
		}
		wantStates(t, s, tk.ID, map[string]string{"a": "error", "b": "skipped", "c": "skipped", "d": "skipped"})
		wantStatus(t, s, tk.ID, "cancelled")
	})
}

func TestRetryTask(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	tk := mk(t, s, retries(step("a"), 2), step("b"), step("c", "a"), retries(step("x"), 1))
	var attempts []int // of step a, over the task's life
	pass := func(now time.Time, rs ...store.StepResult) store.ProcessOutput {
		t.Helper()
		out := process(t, s, store.ProcessInput{Now: now, TaskIDs: []uuid.UUID{tk.ID}, Results: rs, ClaimLimit: 10, Grace: grace})
		for _, c := range out.Claims {
			if c.StepID == tk.Steps["a"] {
				attempts = append(attempts, c.Attempt)
			}
		}
		return out
	}
	pass(t0)
	pass(at(time.Second), failResult(tk.Steps["a"], 1, false), okResult(tk.Steps["b"], 1, `{}`), failResult(tk.Steps["x"], 1, false))
	if out := pass(at(30 * time.Second)); fmt.Sprint(claimNames(tk, out.Claims)) != "[a]" {
		t.Fatalf("retry claims = %v", claimNames(tk, out.Claims))
	}
	out := pass(at(time.Minute), failResult(tk.Steps["a"], 2, false))
	if len(out.Finalized) != 1 || out.Finalized[0].To != "error" {
		t.Fatalf("finalized = %+v", out.Finalized)
	}
	// c can never run while a is in error: skipped.
	wantStates(t, s, tk.ID, map[string]string{"a": "error", "b": "complete", "c": "skipped", "x": "error"})
	n := len(audit(t, s, tk))

	now := at(2 * time.Minute)
	res, err := s.RetryTask(ctx, tk.ID, now, "bob", "")
	if err != nil {
		t.Fatal(err)
	}
	// The failed steps and the step skipped below them go back to pending.
	want := []store.StepChange{
		{StepID: tk.Steps["a"], Step: "a", Attempt: 2, From: "error", To: "pending"},
		{StepID: tk.Steps["c"], Step: "c", Attempt: 0, From: "skipped", To: "pending"},
		{StepID: tk.Steps["x"], Step: "x", Attempt: 1, From: "error", To: "pending"},
	}
	if got := sortChanges(res.Steps); res.From != "error" || res.Task.Status != "in_progress" || res.Task.ID != tk.ID ||
		!reflect.DeepEqual(got, want) {
		t.Fatalf("retry = %+v", res)
	}
	wantStates(t, s, tk.ID, map[string]string{"a": "pending", "b": "complete", "c": "pending", "x": "pending"})
	v := getTask(t, s, tk.ID)
	if v.Status != "in_progress" || v.CompletedAt != nil {
		t.Fatalf("task = %+v", v)
	}
	for _, st := range v.Steps {
		if (st.Name == "a" && (st.Attempts != 2 || st.MaxAttempts != 4)) || (st.Name == "x" && (st.Attempts != 1 || st.MaxAttempts != 2)) ||
			(st.Name == "a" || st.Name == "x") && (st.NextRetryAt != nil || st.CompletedAt != nil) {
			t.Fatalf("step after retry = %+v, want max_attempts = attempts + retry limit", st)
		}
	}
	rows := audit(t, s, tk)[n:]
	if len(rows) != 4 {
		t.Fatalf("retry wrote %d transitions, want 3 steps and the task: %+v", len(rows), rows)
	}
	for _, r := range rows {
		if r.Actor != "bob" || r.Reason == "" || !r.At.Equal(now) ||
			r.Step == "" && (r.From != "error" || r.To != "in_progress") ||
			r.Step == "c" && (r.From != "skipped" || r.To != "pending") ||
			r.Step != "" && r.Step != "c" && (r.From != "error" || r.To != "pending") ||
			r.Step == "a" && r.Attempt != 2 {
			t.Fatalf("transition = %+v", r)
		}
	}

	// The retried steps run with fresh attempt numbers; c follows a.
	out = pass(now.Add(time.Second))
	if got := fmt.Sprint(claimNames(tk, out.Claims)); got != "[a x]" {
		t.Fatalf("claims after retry = %s", got)
	}
	if c := claimOf(t, tk, out.Claims, "a"); c.Attempt != 3 || c.MaxAttempts != 4 || c.From != "pending" || c.TaskStarted {
		t.Fatalf("claim = %+v", c)
	}
	pass(now.Add(2*time.Second), failResult(tk.Steps["a"], 3, true), okResult(tk.Steps["x"], 2, `{}`))
	wantStatus(t, s, tk.ID, "error")
	// A second retry: still no attempt number repeats.
	if _, err := s.RetryTask(ctx, tk.ID, now.Add(3*time.Second), "bob", "again"); err != nil {
		t.Fatal(err)
	}
	if st := stepView(t, s, tk.ID, "a"); st.Attempts != 3 || st.MaxAttempts != 5 {
		t.Fatalf("step after second retry = %+v", st)
	}
	pass(now.Add(4 * time.Second))
	out = pass(now.Add(5*time.Second), okResult(tk.Steps["a"], 4, `{}`))
	if fmt.Sprint(claimNames(tk, out.Claims)) != "[c]" {
		t.Fatalf("claims = %v, want c", claimNames(tk, out.Claims))
	}
	if fmt.Sprint(attempts) != "[1 2 3 4]" {
		t.Fatalf("attempts of a = %v, want [1 2 3 4]", attempts)
	}
	out = pass(now.Add(6*time.Second), okResult(tk.Steps["c"], 1, `{}`))
	if len(out.Finalized) != 1 || out.Finalized[0].To != "complete" {
		t.Fatalf("finalized = %+v, want complete", out.Finalized)
	}
}

func TestResolveStep(t *testing.T) {
	t.Parallel()
	s := newStore(t) // shared by the subtests, each with its own task
	tests := []struct {
		name        string
		result      json.RawMessage
		wantResults string // what the dependent receives
	}{
		{"with result", json.RawMessage(`{"manual":true}`), `{"a":{"manual":true}}`},
		{"without result", nil, `{"a":null}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tk := mk(t, s, retries(step("a"), 1), step("b", "a"))
			claim(t, s, t0, tk.ID)
			record(t, s, at(time.Second), tk.ID, failResult(tk.Steps["a"], 1, false))
			wantStatus(t, s, tk.ID, "error")
			n := len(audit(t, s, tk))

			now := at(2 * time.Second)
			res, err := s.ResolveStep(t.Context(), tk.ID, "a", tc.result, now, "carol", "fixed by hand")
			if err != nil {
				t.Fatal(err)
			}
			// b, skipped when a failed, goes back to pending.
			want := []store.StepChange{
				{StepID: tk.Steps["a"], Step: "a", Attempt: 1, From: "error", To: "resolved_manually"},
				{StepID: tk.Steps["b"], Step: "b", Attempt: 0, From: "skipped", To: "pending"},
			}
			if res.From != "error" || res.Task.Status != "in_progress" || res.Task.ID != tk.ID || !reflect.DeepEqual(res.Steps, want) {
				t.Fatalf("resolve = %+v", res)
			}
			st := stepView(t, s, tk.ID, "a")
			if st.State != "resolved_manually" || !timePtrEqual(st.CompletedAt, now) || st.NextRetryAt != nil {
				t.Fatalf("step = %+v", st)
			}
			if tc.result != nil {
				wantJSON(t, "result", st.Result, string(tc.result))
			}
			wantStatus(t, s, tk.ID, "in_progress")
			rows := audit(t, s, tk)[n:]
			if len(rows) != 3 {
				t.Fatalf("resolve wrote %d transitions, want the step, its dependent and the task: %+v", len(rows), rows)
			}
			for _, r := range rows {
				if r.Actor != "carol" || !r.At.Equal(now) ||
					r.Step == "a" && (r.From != "error" || r.To != "resolved_manually" || r.Attempt != 1 || r.Reason != "fixed by hand") ||
					r.Step == "" && (r.From != "error" || r.To != "in_progress") ||
					r.Step == "b" && (r.From != "skipped" || r.To != "pending" || r.Reason != "step a resolved") {
					t.Fatalf("transition = %+v", r)
				}
			}

			// The dependent runs and receives the resolved result.
			cs := claim(t, s, at(3*time.Second), tk.ID)
			if len(cs) != 1 || cs[0].StepID != tk.Steps["b"] {
				t.Fatalf("claims after resolve = %+v", cs)
			}
			wantJSON(t, "dependent's results", cs[0].Results, tc.wantResults)
			out := record(t, s, at(4*time.Second), tk.ID, okResult(tk.Steps["b"], 1, `{}`))
			if len(out.Finalized) != 1 || out.Finalized[0].To != "resolved_manually" {
				t.Fatalf("finalized = %+v, want resolved_manually", out.Finalized)
			}
		})
	}
	t.Run("task still running", func(t *testing.T) {
		t.Parallel()
		tk := mk(t, s, step("a"), step("b"), step("c", "a"))
		claim(t, s, t0, tk.ID)
		record(t, s, at(time.Second), tk.ID, failResult(tk.Steps["a"], 1, true))
		wantStatus(t, s, tk.ID, "in_progress")
		n := len(audit(t, s, tk))
		res, err := s.ResolveStep(t.Context(), tk.ID, "a", json.RawMessage(`1`), at(2*time.Second), "carol", "")
		if err != nil || res.From != "in_progress" || res.Task.Status != "in_progress" || len(res.Steps) != 2 {
			t.Fatalf("resolve = %+v, %v", res, err)
		}
		rows := audit(t, s, tk)[n:]
		if len(rows) != 2 || rows[0].Step != "a" || rows[0].To != "resolved_manually" || rows[0].Reason == "" ||
			rows[1].Step != "c" || rows[1].From != "skipped" || rows[1].To != "pending" {
			t.Fatalf("transitions = %+v, want the step's and its skipped dependent's", rows)
		}
		cs := claim(t, s, at(3*time.Second), tk.ID)
		if len(cs) != 1 || cs[0].StepID != tk.Steps["c"] {
			t.Fatalf("claims = %+v, want c", cs)
		}
		wantJSON(t, "results", cs[0].Results, `{"a":1}`)
	})
}

// Every refused operator action returns ErrConflict or ErrNotFound and
// changes nothing.
func TestOperatorConflicts(t *testing.T) {
	t.Parallel()
	s := newStore(t) // shared by the subtests, each with its own task
	cancel := func(t *testing.T, s *store.Store, id uuid.UUID) error {
		_, err := s.CancelTask(t.Context(), id, at(time.Hour), "op", "")
		return err
	}
	retry := func(t *testing.T, s *store.Store, id uuid.UUID) error {
		_, err := s.RetryTask(t.Context(), id, at(time.Hour), "op", "")
		return err
	}
	resolve := func(step string) func(t *testing.T, s *store.Store, id uuid.UUID) error {
		return func(t *testing.T, s *store.Store, id uuid.UUID) error {
			_, err := s.ResolveStep(t.Context(), id, step, json.RawMessage(`{}`), at(time.Hour), "op", "")
			return err
		}
	}
	// Task situations; each has steps a, b (roots) and c <- a.
	pending := func(t *testing.T, s *store.Store, tk task) {}
	running := func(t *testing.T, s *store.Store, tk task) { // a in flight, b waiting for retry
		claim(t, s, t0, tk.ID)
		record(t, s, at(time.Second), tk.ID, failResult(tk.Steps["b"], 1, false))
	}
	runningWithDone := func(t *testing.T, s *store.Store, tk task) { // a complete, c in flight, b in flight
		claim(t, s, t0, tk.ID)
		process(t, s, store.ProcessInput{Now: at(time.Second), TaskIDs: []uuid.UUID{tk.ID}, ClaimLimit: 10, Grace: grace,
			Results: []store.StepResult{okResult(tk.Steps["a"], 1, `{}`)}})
	}
	complete := func(t *testing.T, s *store.Store, tk task) { completeAll(t, s, tk) }
	cancelled := func(t *testing.T, s *store.Store, tk task) {
		claim(t, s, t0, tk.ID)
		if err := cancel(t, s, tk.ID); err != nil {
			t.Fatal(err)
		}
	}
	failed := func(t *testing.T, s *store.Store, tk task) { // a error, b complete, c pending
		claim(t, s, t0, tk.ID)
		record(t, s, at(time.Second), tk.ID, failResult(tk.Steps["a"], 1, true), okResult(tk.Steps["b"], 1, `{}`))
	}
	resolved := func(t *testing.T, s *store.Store, tk task) { // a resolved, all complete
		failed(t, s, tk)
		if err := resolve("a")(t, s, tk.ID); err != nil {
			t.Fatal(err)
		}
		claim(t, s, at(2*time.Hour), tk.ID)
		record(t, s, at(3*time.Hour), tk.ID, okResult(tk.Steps["c"], 1, `{}`))
		wantStatus(t, s, tk.ID, "resolved_manually")
	}
	type op = func(t *testing.T, s *store.Store, id uuid.UUID) error
	tests := []struct {
		name    string
		setup   func(t *testing.T, s *store.Store, tk task)
		op      op
		missing bool // act on a task that does not exist
		want    error
	}{
		{"cancel complete task", complete, cancel, false, store.ErrConflict},
		{"cancel cancelled task", cancelled, cancel, false, store.ErrConflict},
		{"cancel resolved task", resolved, cancel, false, store.ErrConflict},
		{"cancel missing task", pending, cancel, true, store.ErrNotFound},
		{"retry pending task", pending, retry, false, store.ErrConflict},
		{"retry running task", running, retry, false, store.ErrConflict},
		{"retry complete task", complete, retry, false, store.ErrConflict},
		{"retry cancelled task", cancelled, retry, false, store.ErrConflict},
		{"retry resolved task", resolved, retry, false, store.ErrConflict},
		{"retry missing task", pending, retry, true, store.ErrNotFound},
		{"resolve pending step", pending, resolve("a"), false, store.ErrConflict},
		{"resolve step in flight", running, resolve("a"), false, store.ErrConflict},
		{"resolve step waiting for retry", running, resolve("b"), false, store.ErrConflict},
		{"resolve complete step", runningWithDone, resolve("a"), false, store.ErrConflict},
		{"resolve blocked step of failed task", failed, resolve("c"), false, store.ErrConflict},
		{"resolve complete step of failed task", failed, resolve("b"), false, store.ErrConflict},
		{"resolve step of complete task", complete, resolve("a"), false, store.ErrConflict},
		{"resolve step of cancelled task", cancelled, resolve("a"), false, store.ErrConflict},
		{"resolve resolved step", resolved, resolve("a"), false, store.ErrConflict},
		{"resolve missing step", failed, resolve("nope"), false, store.ErrNotFound},
		{"resolve step of missing task", pending, resolve("a"), true, store.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tk := mk(t, s, step("a"), step("b"), step("c", "a"))
			tc.setup(t, s, tk)
			before, n := getTask(t, s, tk.ID), len(audit(t, s, tk))
			id := tk.ID
			if tc.missing {
				id = uuid.New()
			}
			err := tc.op(t, s, id)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			other := store.ErrNotFound
			if tc.want == store.ErrNotFound {
				other = store.ErrConflict
			}
			if errors.Is(err, other) {
				t.Fatalf("err = %v is both %v and %v", err, tc.want, other)
			}
			if after := getTask(t, s, tk.ID); !reflect.DeepEqual(before, after) {
				t.Fatalf("refused action changed the task:\n%+v\n%+v", before, after)
			}
			if got := len(audit(t, s, tk)); got != n {
				t.Fatalf("refused action wrote %d transitions", got-n)
			}
		})
	}
}
