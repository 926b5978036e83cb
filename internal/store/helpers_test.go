package store_test

// Helpers of the store conformance tests (store_test.go, caps_test.go,
// sweep_test.go, operator_test.go). The tests use only the exported API of
// package store, plus direct reads of tasker_transitions to assert the audit
// rows, so they specify behaviour, not SQL: any rewrite of the SQL behind the
// store must pass them unchanged.

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/taskerhq/tasker/internal/domain"
	"github.com/taskerhq/tasker/internal/store"
)

// checkTransitions fails t if tasker_transitions records a state change
// internal/domain does not allow: every test's scenario checks the
// transition map against what the SQL really does.
func checkTransitions(t *testing.T, s *store.Store) {
	t.Helper()
	if t.Failed() {
		return
	}
	rows, err := s.Pool().Query(context.Background(),
		`SELECT DISTINCT step_id IS NOT NULL, from_state, to_state FROM tasker_transitions WHERE from_state IS NOT NULL`)
	if err != nil {
		t.Errorf("read transitions: %v", err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var step bool
		var from, to string
		if err := rows.Scan(&step, &from, &to); err != nil {
			t.Errorf("read transitions: %v", err)
			return
		}
		if step && !domain.StepState(from).CanTransition(domain.StepState(to)) {
			t.Errorf("recorded step transition %s → %s is not in domain.StepTransitions", from, to)
		}
		if !step && !domain.TaskStatus(from).CanTransition(domain.TaskStatus(to)) {
			t.Errorf("recorded task transition %s → %s is not in domain.TaskTransitions", from, to)
		}
	}
	if err := rows.Err(); err != nil {
		t.Errorf("read transitions: %v", err)
	}
}

const (
	sched = "sched-1" // the scheduler instance of most passes
	grace = 30 * time.Second
)

// step is a NewStep with the tests' defaults: 3 attempts, backoff 1 s..1 min
// without jitter (so retry times are exact), 30 s timeout.
func step(name string, deps ...string) store.NewStep {
	return store.NewStep{ID: uuid.Must(uuid.NewV7()), Name: name, Handler: "h." + name, RetryLimit: 3,
		BackoffBase: time.Second, MaxBackoff: time.Minute, TimeoutSeconds: 30, DependsOn: deps}
}

// task is a created task and its steps' ids by name.
type task struct {
	ID    uuid.UUID
	Steps map[string]uuid.UUID
	names map[uuid.UUID]string
}

// newTaskSpec is a NewTask with the tests' defaults.
func newTaskSpec(at time.Time, steps ...store.NewStep) store.NewTask {
	id := uuid.Must(uuid.NewV7())
	return store.NewTask{ID: id, Namespace: "shop", Name: "order", Version: "1.2.0",
		Context: json.RawMessage(`{"order":42}`), Initiator: "tester", SourceSystem: "test", Reason: "because",
		Tags: []string{"t1"}, CorrelationID: "corr-" + id.String(), Actor: "api", Now: at, Steps: steps}
}

// create creates nt and fails the test unless it was created.
func create(t *testing.T, s *store.Store, nt store.NewTask) task {
	t.Helper()
	id, created, err := s.CreateTask(t.Context(), nt)
	if err != nil || !created || id != nt.ID {
		t.Fatalf("create task: id=%v created=%v err=%v", id, created, err)
	}
	tk := task{ID: id, Steps: map[string]uuid.UUID{}, names: map[uuid.UUID]string{}}
	for _, st := range nt.Steps {
		tk.Steps[st.Name] = st.ID
		tk.names[st.ID] = st.Name
	}
	return tk
}

// mk creates a task at t0 with the given steps.
func mk(t *testing.T, s *store.Store, steps ...store.NewStep) task {
	t.Helper()
	return create(t, s, newTaskSpec(t0, steps...))
}

// diamond is a -> (b, c) -> d.
func diamond() []store.NewStep {
	return []store.NewStep{step("a"), step("b", "a"), step("c", "a"), step("d", "b", "c")}
}

// process runs one pass and fails the test on error.
func process(t *testing.T, s *store.Store, in store.ProcessInput) store.ProcessOutput {
	t.Helper()
	if in.Actor == "" {
		in.Actor = sched
	}
	out, err := s.Process(t.Context(), in)
	if err != nil {
		t.Fatalf("process: %v", err)
	}
	return out
}

// claim runs a pass over tasks at now that claims up to 100 steps.
func claim(t *testing.T, s *store.Store, now time.Time, ids ...uuid.UUID) []store.Claim {
	t.Helper()
	return process(t, s, store.ProcessInput{Now: now, TaskIDs: ids, ClaimLimit: 100, Grace: grace}).Claims
}

// record runs a pass at now that records results (and claims nothing).
func record(t *testing.T, s *store.Store, now time.Time, id uuid.UUID, rs ...store.StepResult) store.ProcessOutput {
	t.Helper()
	return process(t, s, store.ProcessInput{Now: now, TaskIDs: []uuid.UUID{id}, Results: rs})
}

func okResult(stepID uuid.UUID, attempt int, result string) store.StepResult {
	return store.StepResult{StepID: stepID, Attempt: attempt, OK: true, Result: json.RawMessage(result), Reason: "completed"}
}

func failResult(stepID uuid.UUID, attempt int, permanent bool) store.StepResult {
	return store.StepResult{StepID: stepID, Attempt: attempt, Error: json.RawMessage(`{"message":"boom"}`),
		Permanent: permanent, Reason: "failed"}
}

// claimNames is the set of step names claimed, sorted.
func claimNames(tk task, cs []store.Claim) []string {
	var out []string
	for _, c := range cs {
		if c.TaskID == tk.ID {
			out = append(out, tk.names[c.StepID])
		}
	}
	slices.Sort(out)
	return out
}

// claimOf returns the claim of the named step, failing if absent.
func claimOf(t *testing.T, tk task, cs []store.Claim, name string) store.Claim {
	t.Helper()
	for _, c := range cs {
		if c.StepID == tk.Steps[name] {
			return c
		}
	}
	t.Fatalf("step %s not claimed (claims: %v)", name, claimNames(tk, cs))
	return store.Claim{}
}

// getTask reads a task through the store's read API.
func getTask(t *testing.T, s *store.Store, id uuid.UUID) store.TaskView {
	t.Helper()
	v, err := s.GetTask(t.Context(), id)
	if err != nil {
		t.Fatalf("get task: %v", err)
	}
	return v
}

// states maps step name to state.
func states(t *testing.T, s *store.Store, id uuid.UUID) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, st := range getTask(t, s, id).Steps {
		out[st.Name] = string(st.State)
	}
	return out
}

// stepView reads one step.
func stepView(t *testing.T, s *store.Store, id uuid.UUID, name string) store.StepView {
	t.Helper()
	for _, st := range getTask(t, s, id).Steps {
		if st.Name == name {
			return st
		}
	}
	t.Fatalf("step %s missing", name)
	return store.StepView{}
}

func wantStates(t *testing.T, s *store.Store, id uuid.UUID, want map[string]string) {
	t.Helper()
	if got := states(t, s, id); !reflect.DeepEqual(got, want) {
		t.Fatalf("step states = %v, want %v", got, want)
	}
}

func wantStatus(t *testing.T, s *store.Store, id uuid.UUID, want string) {
	t.Helper()
	if got := getTask(t, s, id).Status; string(got) != want {
		t.Fatalf("task status = %s, want %s", got, want)
	}
}

// auditRow is one row of tasker_transitions; Step is "" for a task row.
type auditRow struct {
	Step     string
	From, To string
	Attempt  int // 0 when null
	Reason   string
	Actor    string
	At       time.Time
	Metadata json.RawMessage
}

// audit returns the task's transition rows, oldest first.
func audit(t *testing.T, s *store.Store, tk task) []auditRow {
	t.Helper()
	rows, err := s.Pool().Query(t.Context(),
		`SELECT step_id, coalesce(from_state, ''), to_state, coalesce(attempt, 0), reason, actor, created_at, metadata
		 FROM tasker_transitions WHERE task_id = $1 ORDER BY id`, tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (auditRow, error) {
		var a auditRow
		var stepID *uuid.UUID
		err := r.Scan(&stepID, &a.From, &a.To, &a.Attempt, &a.Reason, &a.Actor, &a.At, &a.Metadata)
		if stepID != nil {
			a.Step = tk.names[*stepID]
			if a.Step == "" {
				a.Step = stepID.String()
			}
		}
		return a, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// auditCount counts every transition row in the database.
func auditCount(t *testing.T, s *store.Store) int {
	t.Helper()
	var n int
	if err := s.Pool().QueryRow(t.Context(), `SELECT count(*) FROM tasker_transitions`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// sameJSON reports whether a and b are equal JSON values.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("bad JSON %q: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("bad JSON %q: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}

func wantJSON(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	if !sameJSON(t, got, []byte(want)) {
		t.Fatalf("%s = %s, want %s", what, bytes.TrimSpace(got), want)
	}
}

func at(d time.Duration) time.Time { return t0.Add(d) }

func timePtrEqual(p *time.Time, want time.Time) bool { return p != nil && p.Equal(want) }
