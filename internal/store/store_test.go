package store_test

// Conformance tests of the store's write path (issue 13): creation, claims,
// fencing, retry policy, finalisation and release, each against a real
// PostgreSQL. They use the exported API only; see helpers_test.go.

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/domain"
	"github.com/taskerhq/tasker/internal/store"
)

func TestCreateTaskMaterialisesStepsAndEdges(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	steps := diamond()
	steps[1].RetryLimit = 5
	steps[2].TimeoutSeconds = 90
	nt := newTaskSpec(t0, steps...)
	tk := create(t, s, nt)

	v := getTask(t, s, tk.ID)
	if v.Namespace != "shop" || v.Name != "order" || v.Version != "1.2.0" || v.Status != "pending" ||
		v.Initiator != "tester" || v.SourceSystem != "test" || v.Reason != "because" || fmt.Sprint(v.Tags) != "[t1]" ||
		v.IdempotencyKey != nil || v.CorrelationID != nt.CorrelationID || !v.CreatedAt.Equal(t0) || !v.UpdatedAt.Equal(t0) ||
		v.StartedAt != nil || v.CompletedAt != nil {
		t.Fatalf("task = %+v", v)
	}
	wantJSON(t, "context", v.Context, `{"order":42}`)
	want := []struct {
		name, deps   string
		max, timeout int
		handler      string
	}{{"a", "[]", 3, 30, "h.a"}, {"b", "[a]", 5, 30, "h.b"}, {"c", "[a]", 3, 90, "h.c"}, {"d", "[b c]", 3, 30, "h.d"}}
	if len(v.Steps) != len(want) {
		t.Fatalf("steps = %d, want %d", len(v.Steps), len(want))
	}
	for i, w := range want {
		st := v.Steps[i]
		if st.ID != tk.Steps[w.name] || st.Name != w.name || fmt.Sprint(st.DependsOn) != w.deps || st.State != "pending" ||
			st.Handler != w.handler || st.Attempts != 0 || st.MaxAttempts != w.max || st.TimeoutSeconds != w.timeout ||
			st.Result != nil || st.LastError != nil || st.NextRetryAt != nil || st.DeadlineAt != nil || st.StartedAt != nil ||
			st.CompletedAt != nil {
			t.Errorf("step %d = %+v, want %+v", i, st, w)
		}
	}
	rows := audit(t, s, tk)
	if len(rows) != 1 || rows[0].Step != "" || rows[0].From != "" || rows[0].To != "pending" || rows[0].Actor != "api" ||
		!rows[0].At.Equal(t0) {
		t.Fatalf("transitions = %+v, want the task's creation only", rows)
	}

	// An unknown dependency creates nothing.
	bad := newTaskSpec(t0, step("x"), step("y", "nope"))
	if _, _, err := s.CreateTask(t.Context(), bad); err == nil {
		t.Fatal("unknown dependency accepted")
	}
	if _, err := s.GetTask(t.Context(), bad.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("task with unknown dependency exists: %v", err)
	}
	if n := auditCount(t, s); n != 1 {
		t.Fatalf("transitions = %d after a rejected create, want 1", n)
	}
}

func TestCreateTaskIdempotencyKey(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	first := newTaskSpec(t0, diamond()...)
	first.IdempotencyKey = "order-42"
	tk := create(t, s, first)

	for _, traceParent := range []string{"", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"} {
		again := newTaskSpec(t0.Add(time.Minute), step("other"))
		again.IdempotencyKey = "order-42"
		again.TraceParent = traceParent
		id, created, err := s.CreateTask(ctx, again)
		if err != nil || created || id != tk.ID {
			t.Fatalf("repeat (trace %q): id=%v created=%v err=%v, want %v false nil", traceParent, id, created, err, tk.ID)
		}
		if _, err := s.GetTask(ctx, again.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("repeat created a second task: %v", err)
		}
	}
	v := getTask(t, s, tk.ID)
	if len(v.Steps) != 4 || v.IdempotencyKey == nil || *v.IdempotencyKey != "order-42" || !v.CreatedAt.Equal(t0) {
		t.Fatalf("existing task changed: %+v", v)
	}
	if n := auditCount(t, s); n != 1 {
		t.Fatalf("transitions = %d, want 1", n)
	}
	// Another key is another task.
	other := newTaskSpec(t0, step("a"))
	other.IdempotencyKey = "order-43"
	create(t, s, other)
	list, _, err := s.ListTasks(ctx, store.ListFilter{Limit: 10})
	if err != nil || len(list) != 2 {
		t.Fatalf("tasks = %d %v, want 2", len(list), err)
	}
}

func TestCreateTaskConcurrentIdempotencyKey(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	const rounds, racers = 5, 8
	for r := range rounds {
		key := fmt.Sprintf("key-%d", r)
		type res struct {
			id      uuid.UUID
			created bool
			err     error
		}
		out := make([]res, racers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range racers {
			wg.Go(func() {
				nt := newTaskSpec(t0, diamond()...)
				nt.IdempotencyKey = key
				<-start
				id, created, err := s.CreateTask(t.Context(), nt)
				out[i] = res{id, created, err}
			})
		}
		close(start)
		wg.Wait()
		created := 0
		for _, o := range out {
			if o.err != nil {
				t.Fatalf("round %d: %v", r, o.err)
			}
			if o.id != out[0].id {
				t.Fatalf("round %d: ids differ: %v vs %v", r, o.id, out[0].id)
			}
			if o.created {
				created++
			}
		}
		if created != 1 {
			t.Fatalf("round %d: %d creates reported created, want 1", r, created)
		}
	}
	list, _, err := s.ListTasks(t.Context(), store.ListFilter{Limit: 100})
	if err != nil || len(list) != rounds {
		t.Fatalf("tasks = %d %v, want %d", len(list), err, rounds)
	}
	if n := auditCount(t, s); n != rounds {
		t.Fatalf("transitions = %d, want %d (one creation each)", n, rounds)
	}
}

// Only steps whose parents are complete or resolved are claimed; dependents
// receive their parents' results keyed by parent name.
func TestClaimFollowsDependencies(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	tk := mk(t, s, diamond()...)
	pass := func(now time.Time, rs ...store.StepResult) store.ProcessOutput {
		t.Helper()
		return process(t, s, store.ProcessInput{Now: now, TaskIDs: []uuid.UUID{tk.ID}, Results: rs, ClaimLimit: 100, Grace: grace})
	}
	out := pass(at(time.Second))
	if got := claimNames(tk, out.Claims); fmt.Sprint(got) != "[a]" {
		t.Fatalf("first pass claimed %v, want [a]", got)
	}
	wantJSON(t, "root results", out.Claims[0].Results, `{}`)

	out = pass(at(2*time.Second), okResult(tk.Steps["a"], 1, `{"paid":true}`))
	if got := claimNames(tk, out.Claims); fmt.Sprint(got) != "[b c]" {
		t.Fatalf("after a claimed %v, want [b c]", got)
	}
	for _, n := range []string{"b", "c"} {
		wantJSON(t, n+" results", claimOf(t, tk, out.Claims, n).Results, `{"a":{"paid":true}}`)
	}

	out = pass(at(3*time.Second), okResult(tk.Steps["b"], 1, `"B"`))
	if len(out.Claims) != 0 {
		t.Fatalf("d claimed while c in flight: %v", claimNames(tk, out.Claims))
	}
	out = pass(at(4 * time.Second))
	if len(out.Claims) != 0 {
		t.Fatalf("d claimed while c in flight: %v", claimNames(tk, out.Claims))
	}

	out = pass(at(5*time.Second), okResult(tk.Steps["c"], 1, `[1,2]`))
	if got := claimNames(tk, out.Claims); fmt.Sprint(got) != "[d]" {
		t.Fatalf("after b and c claimed %v, want [d]", got)
	}
	wantJSON(t, "d results", out.Claims[0].Results, `{"b":"B","c":[1,2]}`)
	if len(out.Finalized) != 0 {
		t.Fatalf("finalised with d in flight: %+v", out.Finalized)
	}
	wantStates(t, s, tk.ID, map[string]string{"a": "complete", "b": "complete", "c": "complete", "d": "in_progress"})
}

// A claim carries everything the payload needs and is stamped on the step.
func TestClaimFields(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	a := step("a")
	a.Config = json.RawMessage(`{"url":"https://example.test"}`)
	a.TimeoutSeconds = 45
	b := step("b")
	b.RetryLimit = 7
	nt := newTaskSpec(t0, a, b)
	nt.TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	tk := create(t, s, nt)

	now := at(5 * time.Second)
	out := process(t, s, store.ProcessInput{Now: now, Actor: "sched-9", TaskIDs: []uuid.UUID{tk.ID}, ClaimLimit: 10, Grace: 20 * time.Second})
	if len(out.Claims) != 2 || len(out.Recorded) != 0 || len(out.Finalized) != 0 {
		t.Fatalf("out = %+v, want two claims", out)
	}
	ca, cb := claimOf(t, tk, out.Claims, "a"), claimOf(t, tk, out.Claims, "b")
	if ca.TaskID != tk.ID || ca.Step != "a" || ca.Handler != "h.a" || ca.Attempt != 1 || ca.MaxAttempts != 3 ||
		!ca.Deadline.Equal(now.Add(45*time.Second+20*time.Second)) || ca.Namespace != "shop" || ca.Workflow != "order" ||
		ca.Version != "1.2.0" || ca.CorrelationID != nt.CorrelationID || ca.From != "pending" || ca.TraceParent != nt.TraceParent {
		t.Fatalf("claim a = %+v", ca)
	}
	wantJSON(t, "config a", ca.Config, `{"url":"https://example.test"}`)
	wantJSON(t, "config b (default)", cb.Config, `{}`)
	wantJSON(t, "context", ca.Context, `{"order":42}`)
	wantJSON(t, "context", cb.Context, `{"order":42}`)
	if cb.MaxAttempts != 7 || cb.Attempt != 1 || !cb.Deadline.Equal(now.Add(50*time.Second)) {
		t.Fatalf("claim b = %+v", cb)
	}

	v := getTask(t, s, tk.ID)
	if v.Status != "in_progress" || !timePtrEqual(v.StartedAt, now) || v.CompletedAt != nil {
		t.Fatalf("task = %+v, want in_progress started at %v", v, now)
	}
	sa := stepView(t, s, tk.ID, "a")
	if sa.State != "in_progress" || sa.Attempts != 1 || !timePtrEqual(sa.DeadlineAt, ca.Deadline) ||
		!timePtrEqual(sa.StartedAt, now) || sa.NextRetryAt != nil {
		t.Fatalf("step a = %+v", sa)
	}

	// The claim is recorded as the actor's: transitions and claimed_by (seen
	// by the sweep once that instance stops heartbeating).
	rows := audit(t, s, tk)
	var task, steps int
	for _, r := range rows[1:] {
		switch {
		case r.Step == "" && r.From == "pending" && r.To == "in_progress" && r.Actor == "sched-9" && r.At.Equal(now):
			task++
		case r.Step != "" && r.From == "pending" && r.To == "in_progress" && r.Attempt == 1 && r.Actor == "sched-9" && r.At.Equal(now):
			steps++
		default:
			t.Errorf("unexpected transition %+v", r)
		}
	}
	if len(rows) != 4 || task != 1 || steps != 2 {
		t.Fatalf("transitions = %+v, want creation, task start and two claims", rows)
	}
	if err := s.Heartbeat(t.Context(), "sched-9", true, now, t0.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	_, _, interrupted, err := s.SweepScan(t.Context(), now.Add(time.Second), "other", now.Add(time.Second), 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(interrupted) != 2 || interrupted[0].ClaimedBy != "sched-9" || interrupted[1].ClaimedBy != "sched-9" {
		t.Fatalf("interrupted = %+v, want both steps claimed by sched-9", interrupted)
	}
}

// The task goes pending -> in_progress once, and exactly one claim in the
// task's life says so (the engine publishes task.started for each claim
// with TaskStarted set).
func TestClaimStartsTaskOnce(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	tk := mk(t, s, step("a"), step("b"), step("c", "a"))
	var started int
	count := func(cs []store.Claim) {
		for _, c := range cs {
			if c.TaskStarted {
				started++
			}
		}
	}
	cs := claim(t, s, at(time.Second), tk.ID)
	if len(cs) != 2 {
		t.Fatalf("claims = %v, want a and b", claimNames(tk, cs))
	}
	count(cs)
	out := process(t, s, store.ProcessInput{Now: at(2 * time.Second), TaskIDs: []uuid.UUID{tk.ID}, ClaimLimit: 10, Grace: grace,
		Results: []store.StepResult{okResult(tk.Steps["a"], 1, `{}`)}})
	if fmt.Sprint(claimNames(tk, out.Claims)) != "[c]" {
		t.Fatalf("claims = %v, want c", claimNames(tk, out.Claims))
	}
	count(out.Claims)
	var taskRows int
	for _, r := range audit(t, s, tk) {
		if r.Step == "" && r.To == "in_progress" {
			taskRows++
		}
	}
	if taskRows != 1 {
		t.Fatalf("task pending->in_progress rows = %d, want 1", taskRows)
	}
	if started != 1 {
		t.Fatalf("%d claims have TaskStarted set, want exactly 1 per task", started)
	}
}

func TestClaimLimitAndOrder(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	tk := mk(t, s, step("s1"), step("s2"), step("s3"), step("s4"), step("s5"))
	pass := func(now time.Time, limit int) []string {
		t.Helper()
		out := process(t, s, store.ProcessInput{Now: now, TaskIDs: []uuid.UUID{tk.ID}, ClaimLimit: limit, Grace: grace})
		return claimNames(tk, out.Claims)
	}
	if got := pass(at(time.Second), 0); len(got) != 0 {
		t.Fatalf("ClaimLimit 0 claimed %v", got)
	}
	// Template order: the lowest positions first.
	for i, want := range []string{"[s1 s2]", "[s3 s4]", "[s5]", "[]"} {
		if got := fmt.Sprint(pass(at(time.Duration(i+2)*time.Second), 2)); got != want {
			t.Fatalf("pass %d claimed %s, want %s", i, got, want)
		}
	}
	if n, err := s.InFlight(t.Context()); err != nil || n != 5 {
		t.Fatalf("in flight = %d %v, want 5", n, err)
	}

	// Across tasks the limit is for the whole pass, and each task's claims
	// follow its template order.
	x, y := mk(t, s, step("p"), step("q"), step("r")), mk(t, s, step("p"), step("q"), step("r"))
	out := process(t, s, store.ProcessInput{Now: at(time.Minute), TaskIDs: []uuid.UUID{x.ID, y.ID}, ClaimLimit: 4, Grace: grace})
	if len(out.Claims) != 4 {
		t.Fatalf("claims = %d, want 4", len(out.Claims))
	}
	for _, tk := range []task{x, y} {
		got := claimNames(tk, out.Claims)
		if want := []string{"p", "q", "r"}[:len(got)]; !slices.Equal(got, want) {
			t.Fatalf("task claims %v are not a prefix of the template order", got)
		}
	}
}

// Steps that are not ready are not claimed: a retry not yet due, steps of
// cancelled and finished tasks.
func TestClaimSkipsStepsNotReady(t *testing.T) {
	t.Parallel()
	s := newStore(t) // shared by the subtests, each with its own tasks
	t.Run("retry not due", func(t *testing.T) {
		t.Parallel()
		tk := mk(t, s, step("a"))
		claim(t, s, t0, tk.ID)
		out := record(t, s, at(time.Second), tk.ID, failResult(tk.Steps["a"], 1, false))
		if len(out.Recorded) != 1 || !timePtrEqual(out.Recorded[0].NextRetryAt, at(2*time.Second)) {
			t.Fatalf("recorded = %+v, want retry at +2s", out.Recorded)
		}
		if cs := claim(t, s, at(2*time.Second-time.Millisecond), tk.ID); len(cs) != 0 {
			t.Fatalf("claimed before next_retry_at: %+v", cs)
		}
		cs := claim(t, s, at(2*time.Second), tk.ID)
		if len(cs) != 1 || cs[0].Attempt != 2 || cs[0].From != "waiting_for_retry" || cs[0].TaskStarted {
			t.Fatalf("claims at next_retry_at = %+v, want attempt 2 from waiting_for_retry", cs)
		}
		if st := stepView(t, s, tk.ID, "a"); st.Attempts != 2 || st.NextRetryAt != nil || st.State != "in_progress" {
			t.Fatalf("step = %+v", st)
		}
	})
	finished := []struct {
		name   string
		finish func(t *testing.T, s *store.Store, tk task)
		status string
	}{
		{"cancelled pending task", func(t *testing.T, s *store.Store, tk task) {
			if _, err := s.CancelTask(t.Context(), tk.ID, t0, "op", ""); err != nil {
				t.Fatal(err)
			}
		}, "cancelled"},
		{"cancelled running task", func(t *testing.T, s *store.Store, tk task) {
			claim(t, s, t0, tk.ID)
			if _, err := s.CancelTask(t.Context(), tk.ID, at(time.Second), "op", ""); err != nil {
				t.Fatal(err)
			}
		}, "cancelled"},
		{"complete task", func(t *testing.T, s *store.Store, tk task) {
			completeAll(t, s, tk)
		}, "complete"},
		{"error task", func(t *testing.T, s *store.Store, tk task) {
			claim(t, s, t0, tk.ID)
			record(t, s, at(time.Second), tk.ID, failResult(tk.Steps["a"], 1, true), okResult(tk.Steps["b"], 1, `{}`))
		}, "error"},
	}
	for _, tc := range finished {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tk := mk(t, s, step("a"), step("b"), step("c", "a"))
			tc.finish(t, s, tk)
			wantStatus(t, s, tk.ID, tc.status)
			before, n := getTask(t, s, tk.ID), len(audit(t, s, tk))
			out := process(t, s, store.ProcessInput{Now: at(time.Hour), TaskIDs: []uuid.UUID{tk.ID}, ClaimLimit: 10, Grace: grace})
			if len(out.Claims)+len(out.Recorded)+len(out.Finalized) != 0 {
				t.Fatalf("pass over a %s task did %+v", tc.status, out)
			}
			if after := getTask(t, s, tk.ID); !reflect.DeepEqual(before, after) || len(audit(t, s, tk)) != n {
				t.Fatalf("pass changed the task:\n%+v\n%+v", before, after)
			}
		})
	}
}

// A result is recorded only for the in-flight (step, attempt); anything else
// changes nothing: no state, no output, no transition row.
func TestResultFencing(t *testing.T) {
	t.Parallel()
	s := newStore(t) // shared by the subtests, each with its own tasks
	tests := []struct {
		name string
		// stale drives the task (a, b <- a; a has 2 attempts) and returns
		// the results that must be ignored.
		stale func(t *testing.T, s *store.Store, tk task) []store.StepResult
	}{
		{"wrong attempt", func(t *testing.T, s *store.Store, tk task) []store.StepResult {
			claim(t, s, t0, tk.ID)
			return []store.StepResult{okResult(tk.Steps["a"], 2, `{}`), failResult(tk.Steps["a"], 0, true)}
		}},
		{"step still pending", func(t *testing.T, s *store.Store, tk task) []store.StepResult {
			claim(t, s, t0, tk.ID)
			return []store.StepResult{okResult(tk.Steps["b"], 1, `{}`), okResult(tk.Steps["b"], 0, `{}`)}
		}},
		{"unknown step", func(t *testing.T, s *store.Store, tk task) []store.StepResult {
			claim(t, s, t0, tk.ID)
			return []store.StepResult{okResult(uuid.New(), 1, `{}`)}
		}},
		{"duplicate of a recorded result", func(t *testing.T, s *store.Store, tk task) []store.StepResult {
			claim(t, s, t0, tk.ID)
			record(t, s, at(time.Second), tk.ID, okResult(tk.Steps["a"], 1, `{"v":1}`))
			return []store.StepResult{okResult(tk.Steps["a"], 1, `{"v":2}`), failResult(tk.Steps["a"], 1, false)}
		}},
		{"late result of an earlier attempt", func(t *testing.T, s *store.Store, tk task) []store.StepResult {
			claim(t, s, t0, tk.ID)
			record(t, s, at(time.Second), tk.ID, failResult(tk.Steps["a"], 1, false))
			if cs := claim(t, s, at(time.Minute), tk.ID); len(cs) != 1 || cs[0].Attempt != 2 {
				t.Fatalf("retry claims = %+v", cs)
			}
			return []store.StepResult{okResult(tk.Steps["a"], 1, `{}`), failResult(tk.Steps["a"], 1, true)}
		}},
		{"result while waiting for retry", func(t *testing.T, s *store.Store, tk task) []store.StepResult {
			claim(t, s, t0, tk.ID)
			record(t, s, at(time.Second), tk.ID, failResult(tk.Steps["a"], 1, false))
			return []store.StepResult{okResult(tk.Steps["a"], 1, `{}`), okResult(tk.Steps["a"], 2, `{}`)}
		}},
		{"result for a failed step", func(t *testing.T, s *store.Store, tk task) []store.StepResult {
			claim(t, s, t0, tk.ID)
			record(t, s, at(time.Second), tk.ID, failResult(tk.Steps["a"], 1, true))
			return []store.StepResult{okResult(tk.Steps["a"], 1, `{}`)}
		}},
		{"result after cancel", func(t *testing.T, s *store.Store, tk task) []store.StepResult {
			claim(t, s, t0, tk.ID)
			if _, err := s.CancelTask(t.Context(), tk.ID, at(time.Second), "op", ""); err != nil {
				t.Fatal(err)
			}
			return []store.StepResult{okResult(tk.Steps["a"], 1, `{}`), failResult(tk.Steps["a"], 1, false)}
		}},
		{"result after release", func(t *testing.T, s *store.Store, tk task) []store.StepResult {
			claim(t, s, t0, tk.ID)
			if _, err := s.ReleaseClaims(t.Context(), at(time.Second), sched, time.Second,
				[]store.Release{{StepID: tk.Steps["a"], Attempt: 1, Reason: "dispatch failed"}}); err != nil {
				t.Fatal(err)
			}
			return []store.StepResult{okResult(tk.Steps["a"], 1, `{}`)}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := step("a")
			a.RetryLimit = 2
			tk := mk(t, s, a, step("b", "a"))
			stale := tc.stale(t, s, tk)
			before, n := getTask(t, s, tk.ID), len(audit(t, s, tk))
			for _, r := range stale {
				out := record(t, s, at(2*time.Minute), tk.ID, r)
				if len(out.Recorded) != 0 || len(out.Finalized) != 0 {
					t.Fatalf("stale result %+v recorded: %+v", r, out)
				}
			}
			out := record(t, s, at(3*time.Minute), tk.ID, stale...)
			if len(out.Recorded) != 0 || len(out.Finalized) != 0 {
				t.Fatalf("stale results recorded: %+v", out)
			}
			if after := getTask(t, s, tk.ID); !reflect.DeepEqual(before, after) {
				t.Fatalf("stale results changed the task:\n%+v\n%+v", before, after)
			}
			if got := len(audit(t, s, tk)); got != n {
				t.Fatalf("transitions = %d, want %d", got, n)
			}
		})
	}
}

// The right (step, attempt) records once, however often it is delivered,
// in one pass or in concurrent passes.
func TestResultRecordedOnce(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	nt := newTaskSpec(t0, step("a"), step("b", "a"))
	nt.TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	tk := create(t, s, nt)
	claim(t, s, t0, tk.ID)
	now := at(time.Second)
	out := record(t, s, now, tk.ID, okResult(tk.Steps["a"], 1, `{"v":1}`), okResult(tk.Steps["a"], 1, `{"v":1}`))
	if len(out.Recorded) != 1 {
		t.Fatalf("recorded = %+v, want one transition", out.Recorded)
	}
	r := out.Recorded[0]
	if r.TaskID != tk.ID || r.StepID != tk.Steps["a"] || r.Step != "a" || r.Attempt != 1 || r.From != "in_progress" ||
		r.To != "complete" || r.NextRetryAt != nil || r.Reason != "completed" || r.CorrelationID != nt.CorrelationID ||
		r.TraceParent != nt.TraceParent {
		t.Fatalf("recorded = %+v", r)
	}
	st := stepView(t, s, tk.ID, "a")
	if st.State != "complete" || !timePtrEqual(st.CompletedAt, now) || st.DeadlineAt != nil || st.LastError != nil {
		t.Fatalf("step = %+v", st)
	}
	wantJSON(t, "result", st.Result, `{"v":1}`)
	rows := audit(t, s, tk)
	last := rows[len(rows)-1]
	if len(rows) != 4 || last.Step != "a" || last.From != "in_progress" || last.To != "complete" || last.Attempt != 1 ||
		last.Actor != sched || last.Reason != "completed" || !last.At.Equal(now) {
		t.Fatalf("transitions = %+v", rows)
	}
	if out := record(t, s, at(2*time.Second), tk.ID, okResult(tk.Steps["a"], 1, `{"v":2}`)); len(out.Recorded) != 0 {
		t.Fatalf("duplicate recorded: %+v", out.Recorded)
	}

	// Concurrent deliveries of one result: exactly one records.
	for i := range 10 {
		tk := mk(t, s, step("a"))
		claim(t, s, t0, tk.ID)
		var wg sync.WaitGroup
		var mu sync.Mutex
		recorded := 0
		start := make(chan struct{})
		for range 4 {
			wg.Go(func() {
				<-start
				out, err := s.Process(t.Context(), store.ProcessInput{Now: at(time.Second), Actor: sched, TaskIDs: []uuid.UUID{tk.ID},
					Results: []store.StepResult{okResult(tk.Steps["a"], 1, `{}`)}})
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				recorded += len(out.Recorded)
				mu.Unlock()
			})
		}
		close(start)
		wg.Wait()
		if recorded != 1 {
			t.Fatalf("round %d: %d concurrent deliveries recorded, want 1", i, recorded)
		}
		if n := len(audit(t, s, tk)); n != 5 { // created, started, claimed, completed, task complete
			t.Fatalf("round %d: transitions = %d, want 5", i, n)
		}
	}
}

// Retry (docs/retries.md, "The retry policy"): attempts < max_attempts and a retryable error wait
// min(max_backoff, base*2^(attempt-1)) (retry_after instead when given,
// capped by max_backoff); permanent or exhausted failures are errors.
func TestRetryPolicy(t *testing.T) {
	t.Parallel()
	s := newStore(t) // shared by the subtests, each with its own tasks
	sec := func(n int) *time.Duration { d := time.Duration(n) * time.Second; return &d }
	type outcome struct {
		permanent  bool
		retryAfter *time.Duration
		state      domain.StepState // step state after the result
		delay      time.Duration    // next_retry_at - now when waiting
	}
	tests := []struct {
		name       string
		retryLimit int
		base, max  time.Duration
		seq        []outcome
	}{
		{"backoff doubles then exhausts", 4, 2 * time.Second, time.Minute, []outcome{
			{state: "waiting_for_retry", delay: 2 * time.Second},
			{state: "waiting_for_retry", delay: 4 * time.Second},
			{state: "waiting_for_retry", delay: 8 * time.Second},
			{state: "error"},
		}},
		{"backoff capped by max backoff", 5, time.Second, 3 * time.Second, []outcome{
			{state: "waiting_for_retry", delay: time.Second},
			{state: "waiting_for_retry", delay: 2 * time.Second},
			{state: "waiting_for_retry", delay: 3 * time.Second},
			{state: "waiting_for_retry", delay: 3 * time.Second},
			{state: "error"},
		}},
		{"sub-second base", 3, 250 * time.Millisecond, time.Minute, []outcome{
			{state: "waiting_for_retry", delay: 250 * time.Millisecond},
			{state: "waiting_for_retry", delay: 500 * time.Millisecond},
			{state: "error"},
		}},
		{"retry_after honoured", 3, time.Second, time.Minute, []outcome{
			{retryAfter: sec(10), state: "waiting_for_retry", delay: 10 * time.Second},
			{state: "waiting_for_retry", delay: 2 * time.Second},
			{retryAfter: sec(0), state: "error"},
		}},
		{"retry_after capped by max backoff", 3, time.Second, time.Minute, []outcome{
			{retryAfter: sec(300), state: "waiting_for_retry", delay: time.Minute},
		}},
		{"permanent failure with attempts left", 3, time.Second, time.Minute, []outcome{
			{permanent: true, state: "error"},
		}},
		{"permanent failure after a retry", 3, time.Second, time.Minute, []outcome{
			{state: "waiting_for_retry", delay: time.Second},
			{permanent: true, retryAfter: sec(5), state: "error"},
		}},
		{"single attempt", 1, time.Second, time.Minute, []outcome{
			{state: "error"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := step("a")
			a.RetryLimit, a.BackoffBase, a.MaxBackoff = tc.retryLimit, tc.base, tc.max
			tk := mk(t, s, a)
			now := t0
			for i, o := range tc.seq {
				cs := claim(t, s, now, tk.ID)
				if len(cs) != 1 || cs[0].Attempt != i+1 || cs[0].MaxAttempts != tc.retryLimit {
					t.Fatalf("attempt %d: claims = %+v", i+1, cs)
				}
				now = now.Add(1500 * time.Millisecond)
				r := failResult(tk.Steps["a"], i+1, o.permanent)
				r.RetryAfter = o.retryAfter
				r.Error = json.RawMessage(fmt.Sprintf(`{"message":"boom %d"}`, i+1))
				out := record(t, s, now, tk.ID, r)
				if len(out.Recorded) != 1 || out.Recorded[0].To != o.state || out.Recorded[0].Attempt != i+1 {
					t.Fatalf("attempt %d: recorded = %+v, want -> %s", i+1, out.Recorded, o.state)
				}
				st := stepView(t, s, tk.ID, "a")
				if st.State != o.state || st.Attempts != i+1 || st.DeadlineAt != nil {
					t.Fatalf("attempt %d: step = %+v", i+1, st)
				}
				wantJSON(t, "last error", st.LastError, fmt.Sprintf(`{"message":"boom %d"}`, i+1))
				if o.state == "waiting_for_retry" {
					want := now.Add(o.delay)
					if !timePtrEqual(out.Recorded[0].NextRetryAt, want) || !timePtrEqual(st.NextRetryAt, want) {
						t.Fatalf("attempt %d: next retry at %v / %v, want %v", i+1, out.Recorded[0].NextRetryAt, st.NextRetryAt, want)
					}
					if st.CompletedAt != nil {
						t.Fatalf("attempt %d: waiting step has completed_at", i+1)
					}
					now = want
				} else {
					if out.Recorded[0].NextRetryAt != nil || st.NextRetryAt != nil || !timePtrEqual(st.CompletedAt, now) {
						t.Fatalf("attempt %d: failed step = %+v", i+1, st)
					}
					if len(out.Finalized) != 1 || out.Finalized[0].To != "error" {
						t.Fatalf("finalized = %+v, want the task in error", out.Finalized)
					}
				}
			}
			// Every claim and every result is a transition row.
			var claims, results int
			for _, r := range audit(t, s, tk) {
				switch {
				case r.Step == "a" && r.To == "in_progress":
					claims++
				case r.Step == "a" && r.From == "in_progress":
					results++
					if r.To != "complete" && r.Metadata == nil {
						t.Errorf("failure transition without error metadata: %+v", r)
					}
				}
			}
			if claims != len(tc.seq) || results != len(tc.seq) {
				t.Fatalf("transitions: %d claims and %d results, want %d each", claims, results, len(tc.seq))
			}
		})
	}
}

// Jitter spreads the delay by ±jitter around the backoff.
func TestRetryJitter(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	var ids []uuid.UUID
	var results []store.StepResult
	for range 20 {
		a := step("a")
		a.BackoffBase, a.Jitter = 10*time.Second, 0.5
		tk := mk(t, s, a)
		ids = append(ids, tk.ID)
		results = append(results, failResult(tk.Steps["a"], 1, false))
	}
	if cs := process(t, s, store.ProcessInput{Now: t0, TaskIDs: ids, ClaimLimit: 100, Grace: grace}).Claims; len(cs) != 20 {
		t.Fatalf("claims = %d", len(cs))
	}
	now := at(time.Second)
	out := process(t, s, store.ProcessInput{Now: now, TaskIDs: ids, Results: results})
	if len(out.Recorded) != 20 {
		t.Fatalf("recorded = %d", len(out.Recorded))
	}
	distinct := map[time.Duration]bool{}
	for _, r := range out.Recorded {
		if r.NextRetryAt == nil {
			t.Fatalf("no next retry: %+v", r)
		}
		d := r.NextRetryAt.Sub(now)
		if d < 5*time.Second || d > 15*time.Second {
			t.Fatalf("delay %v outside 10s ± 50%%", d)
		}
		distinct[d] = true
	}
	if len(distinct) < 2 {
		t.Fatalf("20 jittered delays are all %v", out.Recorded[0].NextRetryAt.Sub(now))
	}
}

func TestFinalisation(t *testing.T) {
	t.Parallel()
	s := newStore(t) // shared by the subtests, each with its own tasks
	two := func() []store.NewStep { return []store.NewStep{step("a"), step("b")} }
	tests := []struct {
		name  string
		steps func() []store.NewStep
		// run drives the task and returns the output of its last pass.
		run func(t *testing.T, s *store.Store, tk task) store.ProcessOutput
		// want is the task status after run; the last pass finalised the
		// task iff it is not in_progress.
		want domain.TaskStatus
	}{
		{"all complete", diamond, completeAll, "complete"},
		{"a step resolved by an operator", func() []store.NewStep { return []store.NewStep{retries(step("a"), 1), step("b"), step("c", "a")} },
			func(t *testing.T, s *store.Store, tk task) store.ProcessOutput {
				claim(t, s, t0, tk.ID)
				out := record(t, s, at(time.Second), tk.ID, failResult(tk.Steps["a"], 1, false), okResult(tk.Steps["b"], 1, `{}`))
				if len(out.Finalized) != 1 || out.Finalized[0].To != "error" {
					t.Fatalf("finalized = %+v, want error", out.Finalized)
				}
				if _, err := s.ResolveStep(t.Context(), tk.ID, "a", nil, at(2*time.Second), "op", ""); err != nil {
					t.Fatal(err)
				}
				cs := claim(t, s, at(3*time.Second), tk.ID)
				if len(cs) != 1 {
					t.Fatalf("claims after resolve = %+v, want c", cs)
				}
				return record(t, s, at(4*time.Second), tk.ID, okResult(tk.Steps["c"], 1, `{}`))
			}, "resolved_manually"},
		{"failed step blocks the rest", diamond, func(t *testing.T, s *store.Store, tk task) store.ProcessOutput {
			claim(t, s, t0, tk.ID)
			return record(t, s, at(4*time.Second), tk.ID, failResult(tk.Steps["a"], 1, true))
		}, "error"},
		{"failed step, then the sibling in flight completes", two, func(t *testing.T, s *store.Store, tk task) store.ProcessOutput {
			claim(t, s, t0, tk.ID)
			if out := record(t, s, at(time.Second), tk.ID, failResult(tk.Steps["a"], 1, true)); len(out.Finalized) != 0 {
				t.Fatalf("finalised with b in flight: %+v", out.Finalized)
			}
			return record(t, s, at(4*time.Second), tk.ID, okResult(tk.Steps["b"], 1, `{}`))
		}, "error"},
		{"failed step, sibling in flight", two, func(t *testing.T, s *store.Store, tk task) store.ProcessOutput {
			claim(t, s, t0, tk.ID)
			return record(t, s, at(time.Second), tk.ID, failResult(tk.Steps["a"], 1, true))
		}, "in_progress"},
		{"failed step, sibling waiting for retry", two, func(t *testing.T, s *store.Store, tk task) store.ProcessOutput {
			claim(t, s, t0, tk.ID)
			return record(t, s, at(time.Second), tk.ID, failResult(tk.Steps["a"], 1, true), failResult(tk.Steps["b"], 1, false))
		}, "in_progress"},
		{"failed step, another step ready", func() []store.NewStep { return []store.NewStep{step("a"), step("b"), step("c", "b")} },
			func(t *testing.T, s *store.Store, tk task) store.ProcessOutput {
				claim(t, s, t0, tk.ID)
				return record(t, s, at(time.Second), tk.ID, failResult(tk.Steps["a"], 1, true), okResult(tk.Steps["b"], 1, `{}`))
			}, "in_progress"},
		{"ready steps left", diamond, func(t *testing.T, s *store.Store, tk task) store.ProcessOutput {
			claim(t, s, t0, tk.ID)
			return record(t, s, at(time.Second), tk.ID, okResult(tk.Steps["a"], 1, `{}`))
		}, "in_progress"},
		{"step in flight", diamond, func(t *testing.T, s *store.Store, tk task) store.ProcessOutput {
			return process(t, s, store.ProcessInput{Now: t0, TaskIDs: []uuid.UUID{tk.ID}, ClaimLimit: 10, Grace: grace})
		}, "in_progress"},
		{"step waiting for retry", diamond, func(t *testing.T, s *store.Store, tk task) store.ProcessOutput {
			claim(t, s, t0, tk.ID)
			return record(t, s, at(time.Second), tk.ID, failResult(tk.Steps["a"], 1, false))
		}, "in_progress"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			nt := newTaskSpec(t0, tc.steps()...)
			nt.TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
			tk := create(t, s, nt)
			out := tc.run(t, s, tk)
			if tc.want == "in_progress" {
				if len(out.Finalized) != 0 {
					t.Fatalf("finalised: %+v", out.Finalized)
				}
				wantStatus(t, s, tk.ID, "in_progress")
				// A later pass that changes nothing does not finalise either.
				if out := record(t, s, at(1500*time.Millisecond), tk.ID); len(out.Finalized) != 0 {
					t.Fatalf("finalised later: %+v", out.Finalized)
				}
				wantStatus(t, s, tk.ID, "in_progress")
				return
			}
			if len(out.Finalized) != 1 {
				t.Fatalf("finalized = %+v, want the task", out.Finalized)
			}
			f := out.Finalized[0]
			if f.TaskID != tk.ID || f.From != "in_progress" || f.To != tc.want || f.Namespace != "shop" || f.Workflow != "order" ||
				f.CorrelationID != nt.CorrelationID || f.TraceParent != nt.TraceParent {
				t.Fatalf("finalized = %+v", f)
			}
			v := getTask(t, s, tk.ID)
			if v.Status != tc.want || !timePtrEqual(v.CompletedAt, at(4*time.Second)) {
				t.Fatalf("task = %s completed_at=%v, want %s at +4s", v.Status, v.CompletedAt, tc.want)
			}
			var taskRows []auditRow
			for _, r := range audit(t, s, tk) {
				if r.Step == "" && r.To == string(tc.want) {
					taskRows = append(taskRows, r)
				}
			}
			if len(taskRows) != 1 || taskRows[0].From != "in_progress" || !taskRows[0].At.Equal(at(4*time.Second)) || taskRows[0].Actor != sched {
				t.Fatalf("finalisation transitions = %+v", taskRows)
			}
			// Finalised once.
			n := len(audit(t, s, tk))
			if out := process(t, s, store.ProcessInput{Now: at(time.Hour), TaskIDs: []uuid.UUID{tk.ID}, ClaimLimit: 10}); len(out.Finalized)+len(out.Claims) != 0 {
				t.Fatalf("finalised twice: %+v", out)
			}
			if len(audit(t, s, tk)) != n {
				t.Fatal("a pass over a finished task wrote transitions")
			}
		})
	}
}

// retries sets a step's retry limit.
func retries(st store.NewStep, n int) store.NewStep {
	st.RetryLimit = n
	return st
}

// completeAll runs the task to completion in passes one second apart from
// t0, answering every claim with {"step": name}, and returns the output of
// the pass that finalised it (the fourth for the diamond: +4s).
func completeAll(t *testing.T, s *store.Store, tk task) store.ProcessOutput {
	t.Helper()
	now := t0
	var rs []store.StepResult
	for range len(tk.Steps) + 1 {
		now = now.Add(time.Second)
		out := process(t, s, store.ProcessInput{Now: now, TaskIDs: []uuid.UUID{tk.ID}, Results: rs, ClaimLimit: 100, Grace: grace})
		if len(out.Finalized) > 0 {
			return out
		}
		rs = nil
		for _, c := range out.Claims {
			rs = append(rs, okResult(c.StepID, c.Attempt, fmt.Sprintf(`{"step":%q}`, c.Step)))
		}
	}
	t.Fatal("task not finalised")
	return store.ProcessOutput{}
}

// A release undoes a claim whose dispatch failed: fenced on the attempt, the
// step waits for retry, and the attempt number is not reused (max_attempts
// grows by one so no real attempt is lost).
func TestReleaseClaims(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	tk := mk(t, s, step("a"), step("b"))
	claim(t, s, t0, tk.ID)
	n := auditCount(t, s)

	rel := func(now time.Time, rs ...store.Release) []store.Transition {
		t.Helper()
		trs, err := s.ReleaseClaims(ctx, now, sched, 5*time.Second, rs)
		if err != nil {
			t.Fatal(err)
		}
		return trs
	}
	// Wrong attempts release nothing.
	if trs := rel(at(time.Second), store.Release{StepID: tk.Steps["a"], Attempt: 2, Reason: "x"},
		store.Release{StepID: tk.Steps["a"], Attempt: 0, Reason: "x"}, store.Release{StepID: uuid.New(), Attempt: 1}); len(trs) != 0 {
		t.Fatalf("stale releases = %+v", trs)
	}
	if auditCount(t, s) != n {
		t.Fatal("stale release wrote transitions")
	}
	now := at(time.Second)
	trs := rel(now, store.Release{StepID: tk.Steps["a"], Attempt: 1, Reason: "invoke throttled"})
	if len(trs) != 1 {
		t.Fatalf("released = %+v", trs)
	}
	tr := trs[0]
	if tr.TaskID != tk.ID || tr.StepID != tk.Steps["a"] || tr.Step != "a" || tr.Attempt != 1 || tr.From != "in_progress" ||
		tr.To != "waiting_for_retry" || !timePtrEqual(tr.NextRetryAt, now.Add(5*time.Second)) {
		t.Fatalf("released = %+v", tr)
	}
	st := stepView(t, s, tk.ID, "a")
	if st.State != "waiting_for_retry" || st.Attempts != 1 || st.MaxAttempts != 4 || !timePtrEqual(st.NextRetryAt, now.Add(5*time.Second)) ||
		st.DeadlineAt != nil {
		t.Fatalf("released step = %+v", st)
	}
	rows := audit(t, s, tk)
	if last := rows[len(rows)-1]; len(rows) != n+1 || last.Step != "a" || last.From != "in_progress" || last.To != "waiting_for_retry" ||
		last.Attempt != 1 || last.Reason != "invoke throttled" || last.Actor != sched || !last.At.Equal(now) {
		t.Fatalf("transitions = %+v", rows)
	}
	wantStates(t, s, tk.ID, map[string]string{"a": "waiting_for_retry", "b": "in_progress"})
	// Released once.
	if trs := rel(at(2*time.Second), store.Release{StepID: tk.Steps["a"], Attempt: 1}); len(trs) != 0 {
		t.Fatalf("released twice: %+v", trs)
	}

	// Not claimable before the delay; then the next attempt number.
	if cs := claim(t, s, now.Add(5*time.Second-time.Millisecond), tk.ID); len(cs) != 0 {
		t.Fatalf("claimed before the release delay: %+v", cs)
	}
	now = now.Add(5 * time.Second)
	cs := claim(t, s, now, tk.ID)
	if len(cs) != 1 || cs[0].Attempt != 2 || cs[0].MaxAttempts != 4 || cs[0].From != "waiting_for_retry" {
		t.Fatalf("claims after release = %+v, want attempt 2 of 4", cs)
	}
	// Three real attempts remain: 2 and 3 retry, 4 exhausts.
	for attempt := 2; attempt <= 4; attempt++ {
		now = now.Add(time.Minute)
		if attempt > 2 {
			if cs := claim(t, s, now, tk.ID); len(cs) != 1 || cs[0].Attempt != attempt {
				t.Fatalf("claims = %+v, want attempt %d", cs, attempt)
			}
		}
		out := record(t, s, now.Add(time.Second), tk.ID, failResult(tk.Steps["a"], attempt, false))
		want := domain.StepWaitingForRetry
		if attempt == 4 {
			want = "error"
		}
		if len(out.Recorded) != 1 || out.Recorded[0].To != want {
			t.Fatalf("attempt %d recorded %+v, want %s", attempt, out.Recorded, want)
		}
	}
}

// Every state change writes exactly one transition row, stamped with the
// call's time and actor; calls that change nothing write none.
func TestTransitionsForEveryChange(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	tk := mk(t, s, step("a"), step("b", "a"))
	seen := 0
	// want checks the rows written since the last call, in any order, as
	// "step:from>to#attempt" ("task" for the task's own rows).
	want := func(now time.Time, actor string, rows ...string) {
		t.Helper()
		all := audit(t, s, tk)
		var got []string
		for _, r := range all[seen:] {
			name := r.Step
			if name == "" {
				name = "task"
			}
			got = append(got, fmt.Sprintf("%s:%s>%s#%d", name, r.From, r.To, r.Attempt))
			if !r.At.Equal(now) || r.Actor != actor {
				t.Fatalf("row %+v, want at %v by %s", r, now, actor)
			}
		}
		seen = len(all)
		slices.Sort(got)
		slices.Sort(rows)
		if !slices.Equal(got, rows) {
			t.Fatalf("rows = %v, want %v", got, rows)
		}
	}
	want(t0, "api", "task:>pending#0")
	claim(t, s, at(time.Second), tk.ID)
	want(at(time.Second), sched, "task:pending>in_progress#0", "a:pending>in_progress#1")
	if _, err := s.ReleaseClaims(ctx, at(2*time.Second), sched, time.Second,
		[]store.Release{{StepID: tk.Steps["a"], Attempt: 1, Reason: "dispatch failed"}}); err != nil {
		t.Fatal(err)
	}
	want(at(2*time.Second), sched, "a:in_progress>waiting_for_retry#1")
	claim(t, s, at(3*time.Second), tk.ID)
	want(at(3*time.Second), sched, "a:waiting_for_retry>in_progress#2")
	record(t, s, at(4*time.Second), tk.ID, failResult(tk.Steps["a"], 2, false))
	want(at(4*time.Second), sched, "a:in_progress>waiting_for_retry#2")
	claim(t, s, at(5*time.Second), tk.ID) // not due (+6s): nothing
	want(at(5*time.Second), sched)
	claim(t, s, at(6*time.Second), tk.ID)
	want(at(6*time.Second), sched, "a:waiting_for_retry>in_progress#3")
	process(t, s, store.ProcessInput{Now: at(7 * time.Second), Actor: "sched-2", TaskIDs: []uuid.UUID{tk.ID}, ClaimLimit: 10, Grace: grace,
		Results: []store.StepResult{okResult(tk.Steps["a"], 3, `{}`), okResult(tk.Steps["a"], 2, `{}`)}})
	want(at(7*time.Second), "sched-2", "a:in_progress>complete#3", "b:pending>in_progress#1")
	record(t, s, at(8*time.Second), tk.ID, okResult(tk.Steps["b"], 1, `{}`), okResult(tk.Steps["b"], 1, `{}`))
	want(at(8*time.Second), sched, "b:in_progress>complete#1", "task:in_progress>complete#0")
	record(t, s, at(9*time.Second), tk.ID, okResult(tk.Steps["b"], 1, `{}`))
	claim(t, s, at(9*time.Second), tk.ID)
	want(at(9*time.Second), sched)
	if seen != 11 {
		t.Fatalf("rows = %d, want 11", seen)
	}
}

// Results of sibling steps recorded by concurrent passes: neither pass may
// miss the other's result, so the join step is claimed exactly once and the
// task is finalised exactly once.
func TestConcurrentSiblingResults(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	race := func(now time.Time, ids []uuid.UUID, rs ...store.StepResult) (claims []store.Claim, finalized []store.TaskChange) {
		t.Helper()
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := make(chan struct{})
		for _, r := range rs {
			wg.Go(func() {
				<-start
				out, err := s.Process(t.Context(), store.ProcessInput{Now: now, Actor: sched, TaskIDs: ids,
					Results: []store.StepResult{r}, ClaimLimit: 10, Grace: grace})
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				claims, finalized = append(claims, out.Claims...), append(finalized, out.Finalized...)
				mu.Unlock()
			})
		}
		close(start)
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		return claims, finalized
	}
	for round := range 10 {
		tk := mk(t, s, diamond()...)
		ids := []uuid.UUID{tk.ID}
		claim(t, s, t0, tk.ID)
		if cs := process(t, s, store.ProcessInput{Now: at(time.Second), TaskIDs: ids, ClaimLimit: 10, Grace: grace,
			Results: []store.StepResult{okResult(tk.Steps["a"], 1, `{}`)}}).Claims; len(cs) != 2 {
			t.Fatalf("claims = %v", claimNames(tk, cs))
		}
		claims, _ := race(at(2*time.Second), ids, okResult(tk.Steps["b"], 1, `"b"`), okResult(tk.Steps["c"], 1, `"c"`))
		if got := fmt.Sprint(claimNames(tk, claims)); got != "[d]" {
			t.Fatalf("round %d: concurrent sibling results claimed %s, want [d] once", round, got)
		}
		wantJSON(t, "d results", claims[0].Results, `{"b":"b","c":"c"}`)

		// Two roots finishing together: one finalisation.
		two := mk(t, s, step("x"), step("y"))
		claim(t, s, t0, two.ID)
		_, finalized := race(at(2*time.Second), []uuid.UUID{two.ID}, okResult(two.Steps["x"], 1, `{}`), failResult(two.Steps["y"], 1, true))
		if len(finalized) != 1 || finalized[0].To != "error" {
			t.Fatalf("round %d: finalized = %+v, want one finalisation to error", round, finalized)
		}
		wantStatus(t, s, two.ID, "error")
	}
}

// An idempotency key is unique within its scope and bound to its request
// hash: another hash in the scope is ErrIdempotencyConflict (no id),
// another scope is a new key.
func TestCreateTaskIdempotencyScope(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	spec := func(scope, hash string) store.NewTask {
		nt := newTaskSpec(t0, step("a"))
		nt.IdempotencyScope, nt.IdempotencyKey, nt.RequestHash = scope, "k", hash
		return nt
	}
	alice := create(t, s, spec("sub:alice", "h1"))
	if id, created, err := s.CreateTask(ctx, spec("sub:alice", "h1")); err != nil || created || id != alice.ID {
		t.Fatalf("same hash: %v %v %v, want %v false nil", id, created, err, alice.ID)
	}
	if id, created, err := s.CreateTask(ctx, spec("sub:alice", "h2")); !errors.Is(err, store.ErrIdempotencyConflict) || created || id != uuid.Nil {
		t.Fatalf("other hash: %v %v %v, want a conflict and no id", id, created, err)
	}
	bob := create(t, s, spec("sub:bob", "h2"))
	open := create(t, s, spec("", "h1"))
	if bob.ID == alice.ID || open.ID == alice.ID {
		t.Fatal("scopes share a key")
	}
	// A key recorded before requests were hashed (migration 0010) replays
	// as the same request, as it did then.
	if _, err := s.Pool().Exec(ctx, `UPDATE tasker_tasks SET request_hash = NULL WHERE id = $1`, open.ID); err != nil {
		t.Fatal(err)
	}
	if id, created, err := s.CreateTask(ctx, spec("", "h9")); err != nil || created || id != open.ID {
		t.Fatalf("legacy key: %v %v %v, want %v false nil", id, created, err, open.ID)
	}
}
