package domain_test

import (
	"context"
	"regexp"
	"slices"
	"testing"

	"github.com/taskerhq/tasker/internal/domain"
	"github.com/taskerhq/tasker/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// checkValues returns the values of the CHECK constraint conname on a
// migrated database, as pg_get_constraintdef spells them.
func checkValues(t *testing.T, conname string) []string {
	t.Helper()
	var def string
	err := pgtest.Pool(t).QueryRow(context.Background(),
		`SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = $1 AND contype = 'c'`, conname).Scan(&def)
	if err != nil {
		t.Fatalf("constraint %s: %v", conname, err)
	}
	// CHECK ((state = ANY (ARRAY['pending'::text, ...])))
	var vals []string
	for _, m := range regexp.MustCompile(`'([a-z_]+)'`).FindAllStringSubmatch(def, -1) {
		vals = append(vals, m[1])
	}
	if len(vals) == 0 {
		t.Fatalf("constraint %s: no values in %q", conname, def)
	}
	slices.Sort(vals)
	return vals
}

func sorted[S ~string](xs []S) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = string(x)
	}
	slices.Sort(out)
	return out
}

func TestStatesMatchSchema(t *testing.T) {
	if got, want := sorted(domain.AllTaskStatuses), checkValues(t, "tasker_tasks_status_check"); !slices.Equal(got, want) {
		t.Errorf("AllTaskStatuses = %v, schema CHECK allows %v", got, want)
	}
	if got, want := sorted(domain.AllStepStates), checkValues(t, "tasker_steps_state_check"); !slices.Equal(got, want) {
		t.Errorf("AllStepStates = %v, schema CHECK allows %v", got, want)
	}
}

func TestTransitionMapsCoverEveryState(t *testing.T) {
	for _, s := range domain.AllTaskStatuses {
		next, ok := domain.TaskTransitions[s]
		if !ok {
			t.Errorf("TaskTransitions has no entry for %s", s)
		}
		// Every live status leads somewhere; only error among the finished
		// ones does (an operator's retry or cancel).
		if s.Live() != (len(next) > 0) && s != domain.TaskError {
			t.Errorf("task %s: live=%v but transitions %v", s, s.Live(), next)
		}
		for _, n := range next {
			if !n.Valid() || n == s {
				t.Errorf("task %s → %s: not a valid change", s, n)
			}
		}
	}
	if len(domain.TaskTransitions) != len(domain.AllTaskStatuses) {
		t.Errorf("TaskTransitions has %d entries, want %d", len(domain.TaskTransitions), len(domain.AllTaskStatuses))
	}
	for _, s := range domain.AllStepStates {
		next, ok := domain.StepTransitions[s]
		if !ok {
			t.Errorf("StepTransitions has no entry for %s", s)
		}
		// Every live state leads somewhere; among the finished states only
		// error (an operator's retry or resolve) and skipped (decided again
		// after an operator's retry or resolve upstream) do.
		if s.Live() != (len(next) > 0) && s != domain.StepError && s != domain.StepSkipped {
			t.Errorf("step %s: live=%v but transitions %v", s, s.Live(), next)
		}
		for _, n := range next {
			if !n.Valid() || n == s {
				t.Errorf("step %s → %s: not a valid change", s, n)
			}
		}
	}
	if len(domain.StepTransitions) != len(domain.AllStepStates) {
		t.Errorf("StepTransitions has %d entries, want %d", len(domain.StepTransitions), len(domain.AllStepStates))
	}
}

func TestTransitions(t *testing.T) {
	steps := []struct {
		from, to domain.StepState
		ok       bool
	}{
		{domain.StepPending, domain.StepInProgress, true},         // claimed
		{domain.StepPending, domain.StepSkipped, true},            // condition false
		{domain.StepPending, domain.StepCancelled, true},          // task cancelled
		{domain.StepPending, domain.StepComplete, false},          // must run first
		{domain.StepInProgress, domain.StepComplete, true},        // result
		{domain.StepInProgress, domain.StepWaitingForRetry, true}, // retryable failure, dispatch failure
		{domain.StepInProgress, domain.StepError, true},           // permanent failure
		{domain.StepInProgress, domain.StepWaiting, true},         // parked on a timer or callback
		{domain.StepInProgress, domain.StepCancelled, true},
		{domain.StepInProgress, domain.StepPending, false},
		{domain.StepWaitingForRetry, domain.StepInProgress, true}, // due retry claimed
		{domain.StepWaitingForRetry, domain.StepCancelled, true},
		{domain.StepWaitingForRetry, domain.StepComplete, false},
		{domain.StepWaiting, domain.StepComplete, true},
		{domain.StepWaiting, domain.StepCancelled, true},
		{domain.StepError, domain.StepResolvedManually, true}, // operator resolve
		{domain.StepError, domain.StepPending, true},          // operator retry
		{domain.StepError, domain.StepInProgress, false},
		{domain.StepComplete, domain.StepPending, false},
		{domain.StepSkipped, domain.StepInProgress, false},
		{domain.StepCancelled, domain.StepPending, false},
		{domain.StepResolvedManually, domain.StepPending, false},
	}
	for _, c := range steps {
		if got := c.from.CanTransition(c.to); got != c.ok {
			t.Errorf("step %s → %s allowed = %v, want %v", c.from, c.to, got, c.ok)
		}
	}
	tasks := []struct {
		from, to domain.TaskStatus
		ok       bool
	}{
		{domain.TaskPending, domain.TaskInProgress, true}, // first step claimed
		{domain.TaskPending, domain.TaskComplete, true},   // nothing to run
		{domain.TaskPending, domain.TaskCancelled, true},
		{domain.TaskInProgress, domain.TaskComplete, true},
		{domain.TaskInProgress, domain.TaskError, true},
		{domain.TaskInProgress, domain.TaskResolvedManually, true},
		{domain.TaskInProgress, domain.TaskCancelled, true},
		{domain.TaskInProgress, domain.TaskPending, false},
		{domain.TaskError, domain.TaskInProgress, true}, // operator retry or resolve
		{domain.TaskError, domain.TaskCancelled, true},
		{domain.TaskError, domain.TaskComplete, false},
		{domain.TaskComplete, domain.TaskInProgress, false},
		{domain.TaskCancelled, domain.TaskInProgress, false},
		{domain.TaskResolvedManually, domain.TaskError, false},
	}
	for _, c := range tasks {
		if got := c.from.CanTransition(c.to); got != c.ok {
			t.Errorf("task %s → %s allowed = %v, want %v", c.from, c.to, got, c.ok)
		}
	}
}

func TestHelpers(t *testing.T) {
	for _, s := range domain.AllStepStates {
		if s.Live() == s.Terminal() {
			t.Errorf("step %s: Live and Terminal both %v", s, s.Live())
		}
	}
	for _, s := range domain.AllTaskStatuses {
		if s.Live() == s.Terminal() {
			t.Errorf("task %s: Live and Terminal both %v", s, s.Live())
		}
	}
	if domain.StepState("bogus").Valid() || domain.StepState("bogus").Terminal() || domain.TaskStatus("bogus").Terminal() {
		t.Error("an unknown state is valid or terminal")
	}
	if !domain.StepSkipped.Satisfies() || domain.StepError.Satisfies() {
		t.Error("Satisfies: skipped must satisfy dependents, error must not")
	}
}

func TestPrintable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want bool
	}{
		{"order-42", true},
		{"über key ✓", true},
		{"", false},
		{"   ", false},
		{"tab\tinside", false},
		{"bell\a", false},
		{"\xff\xfe", false},
	}
	for _, tc := range tests {
		if got := domain.Printable(tc.in); got != tc.want {
			t.Errorf("Printable(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
