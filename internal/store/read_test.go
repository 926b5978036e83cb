package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/taskerhq/tasker/internal/pgtest"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/store/dbgen"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)

func newStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.New(pgtest.Pool(t))
	if err != nil {
		t.Fatal(err)
	}
	// Runs before the pool closes (cleanups run last first).
	t.Cleanup(func() { checkTransitions(t, s) })
	return s
}

// diamond: a -> (b, c) -> d
func newTask(t *testing.T, s *store.Store, ns, name string, at time.Time) uuid.UUID {
	t.Helper()
	id := uuid.Must(uuid.NewV7())
	nt := store.NewTask{ID: id, Namespace: ns, Name: name, Version: "1.0.0", Context: json.RawMessage(`{"n":1}`),
		Initiator: "tester", Tags: []string{"x"}, CorrelationID: "corr-" + id.String()[:8], Actor: "test", Now: at}
	for _, st := range []struct {
		name string
		deps []string
	}{{"a", nil}, {"b", []string{"a"}}, {"c", []string{"a"}}, {"d", []string{"c", "b"}}} {
		nt.Steps = append(nt.Steps, store.NewStep{ID: uuid.Must(uuid.NewV7()), Name: st.name, Handler: "tasker.noop",
			RetryLimit: 3, BackoffBase: time.Second, MaxBackoff: time.Minute, Jitter: 0.1, TimeoutSeconds: 30, DependsOn: st.deps})
	}
	got, created, err := s.CreateTask(context.Background(), nt)
	if err != nil || !created || got != id {
		t.Fatalf("create task: %v %v %v", got, created, err)
	}
	return id
}

func TestGetTask(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	id := newTask(t, s, "shop", "order", t0)

	got, err := s.GetTask(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != id || got.Namespace != "shop" || got.Name != "order" || got.Status != "pending" ||
		!got.CreatedAt.Equal(t0) || got.IdempotencyKey != nil || got.CompletedAt != nil || string(got.Context) != `{"n": 1}` {
		t.Fatalf("task = %+v", got)
	}
	if len(got.Steps) != 4 {
		t.Fatalf("steps = %d", len(got.Steps))
	}
	d := got.Steps[3]
	if d.Name != "d" || fmt.Sprint(d.DependsOn) != "[b c]" || d.State != "pending" || d.MaxAttempts != 3 || d.Result != nil {
		t.Fatalf("step d = %+v (parents must be in template order)", d)
	}
	if a := got.Steps[0]; len(a.DependsOn) != 0 || a.DependsOn == nil {
		t.Fatalf("root step parents = %#v, want empty non-nil", a.DependsOn)
	}

	_, err = s.GetTask(ctx, uuid.New())
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing task: %v", err)
	}
}

func TestGetStep(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	id := newTask(t, s, "shop", "order", t0)
	if _, err := s.CancelTask(ctx, id, t0.Add(time.Second), "alice", "no longer needed"); err != nil {
		t.Fatal(err)
	}
	st, trs, found, err := s.GetStep(ctx, id, "b")
	if err != nil || !found {
		t.Fatal(err, found)
	}
	if st.Name != "b" || st.State != "cancelled" || fmt.Sprint(st.DependsOn) != "[a]" {
		t.Fatalf("step = %+v", st)
	}
	if len(trs) != 1 || *trs[0].From != "pending" || trs[0].To != "cancelled" || trs[0].Actor != "alice" ||
		trs[0].Reason != "no longer needed" || !trs[0].At.Equal(t0.Add(time.Second)) {
		t.Fatalf("transitions = %+v", trs)
	}

	_, _, found, err = s.GetStep(ctx, id, "nope")
	if !errors.Is(err, store.ErrNotFound) || !found {
		t.Fatalf("missing step: found=%v err=%v", found, err)
	}
	_, _, found, err = s.GetStep(ctx, uuid.New(), "a")
	if !errors.Is(err, store.ErrNotFound) || found {
		t.Fatalf("missing task: found=%v err=%v", found, err)
	}
}

func TestListTasksPagination(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	// 23 tasks, many sharing a creation time: the id breaks ties.
	want := map[uuid.UUID]bool{}
	for i := range 23 {
		at := t0.Add(time.Duration(i/4) * time.Millisecond)
		ns, name := "shop", "order"
		if i%3 == 0 {
			name = "refund"
		}
		want[newTask(t, s, ns, name, at)] = true
	}
	seen := map[uuid.UUID]bool{}
	var after *store.Cursor
	var prev *store.TaskView
	pages := 0
	for {
		page, next, err := s.ListTasks(ctx, store.ListFilter{Limit: 5, After: after})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for i := range page {
			tk := page[i]
			if seen[tk.ID] {
				t.Fatalf("task %s seen twice", tk.ID)
			}
			seen[tk.ID] = true
			if tk.Steps != nil {
				t.Fatal("list items carry no steps")
			}
			if prev != nil && (tk.CreatedAt.After(prev.CreatedAt) ||
				tk.CreatedAt.Equal(prev.CreatedAt) && strings.Compare(tk.ID.String(), prev.ID.String()) >= 0) {
				t.Fatalf("order broken: %s after %s", tk.ID, prev.ID)
			}
			prev = &tk
		}
		if next == nil {
			break
		}
		after = next
	}
	if pages != 5 || len(seen) != len(want) {
		t.Fatalf("pages = %d, seen = %d, want 5 pages and %d tasks", pages, len(seen), len(want))
	}

	refunds, next, err := s.ListTasks(ctx, store.ListFilter{Namespace: "shop", Name: "refund", Limit: 100})
	if err != nil || next != nil || len(refunds) != 8 {
		t.Fatalf("refunds = %d next=%v err=%v", len(refunds), next, err)
	}
	none, _, err := s.ListTasks(ctx, store.ListFilter{Statuses: []string{"complete", "x' OR '1'='1"}, Limit: 10})
	if err != nil || len(none) != 0 {
		t.Fatalf("statuses filter = %d %v", len(none), err)
	}
	if _, _, err := s.ListTasks(ctx, store.ListFilter{Limit: 0}); err == nil {
		t.Fatal("limit 0 accepted")
	}
}

// The list's filters and keyset are served by the indexes of 0001: with
// sorting and sequential scans priced out, the plan still needs neither.
func TestListTasksUsesIndexes(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	for i := range 30 {
		newTask(t, s, "shop", fmt.Sprintf("w%d", i%5), t0.Add(time.Duration(i)*time.Second))
	}
	if _, err := s.Pool().Exec(ctx, "ANALYZE tasker_tasks"); err != nil {
		t.Fatal(err)
	}
	at, id := t0.Add(20*time.Second), uuid.New()
	tests := []struct {
		name  string
		args  []any
		index string
	}{
		{"none", []any{nil, nil, nil, nil, nil, nil, nil, nil, nil, 11}, "tasker_tasks_created"},
		{"cursor", []any{nil, nil, nil, nil, nil, nil, nil, at, id, 11}, "tasker_tasks_created"},
		{"workflow", []any{"shop", "w1", nil, nil, nil, nil, nil, nil, nil, 11}, "tasker_tasks_workflow"},
		{"workflow+cursor", []any{"shop", "w1", nil, nil, nil, nil, nil, at, id, 11}, "tasker_tasks_workflow"},
		{"status", []any{nil, nil, "error", nil, nil, nil, nil, nil, nil, 11}, "tasker_tasks_status"},
		{"status+cursor", []any{nil, nil, "error", nil, nil, nil, nil, at, id, 11}, "tasker_tasks_status"},
		{"correlation id", []any{nil, nil, nil, nil, "corr-x", nil, nil, nil, nil, 11}, "tasker_tasks_correlation"},
		{"created range", []any{nil, nil, nil, nil, nil, t0, at, nil, nil, 11}, "tasker_tasks_created"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := pgx.BeginFunc(ctx, s.Pool(), func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, "SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off"); err != nil {
					return err
				}
				rows, err := tx.Query(ctx, "EXPLAIN "+dbgen.ListTasks, append([]any{pgx.QueryExecModeDescribeExec}, tc.args...)...)
				if err != nil {
					return err
				}
				lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
				if err != nil {
					return err
				}
				plan := strings.Join(lines, "\n")
				if strings.Contains(plan, "Sort") || !strings.Contains(plan, tc.index) {
					t.Errorf("plan does not use %s without sorting:\n%s", tc.index, plan)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	newTask(t, s, "shop", "order", t0)
	id := newTask(t, s, "shop", "order", t0)
	if _, err := s.CancelTask(ctx, id, t0, "op", ""); err != nil {
		t.Fatal(err)
	}
	st, err := s.Status(ctx, t0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if st.Tasks["pending"] != 1 || st.Tasks["cancelled"] != 1 || st.Tasks["complete"] != 0 || len(st.Tasks) != 6 {
		t.Fatalf("tasks = %v", st.Tasks)
	}
	if st.LiveSteps["pending"] != 4 || st.LiveSteps["in_progress"] != 0 || len(st.LiveSteps) != 4 || st.InFlight != 0 {
		t.Fatalf("steps = %v in flight %d", st.LiveSteps, st.InFlight)
	}
	if st.RecentCompleted+st.RecentRetried+st.RecentFailed != 0 {
		t.Fatalf("recent = %+v", st)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}
