package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// readQueries are the queries of sql/queries/read.sql; CheckReadQueries
// verifies they are all present (the API calls it when it is built).
var readQueries = []string{
	"read_snapshot_begin", "read_snapshot_end", "read_task", "read_task_steps", "read_step",
	"read_step_transitions", "read_task_exists", "list_tasks",
	"status_task_counts", "status_live_step_counts", "status_recent_outcomes", "in_flight",
}

// CheckReadQueries reports a read-model query missing from sql/queries.
func (s *Store) CheckReadQueries() error {
	for _, name := range readQueries {
		if _, ok := s.q[name]; !ok {
			return fmt.Errorf("store: query %q missing from sql/queries", name)
		}
	}
	return nil
}

// rq returns a read-model query, or an error instead of a panic when the
// query set is incomplete.
func (s *Store) rq(name string) (string, error) {
	q, ok := s.q[name]
	if !ok {
		return "", fmt.Errorf("store: query %q missing from sql/queries", name)
	}
	return q, nil
}

func (s *Store) rqs(names ...string) ([]string, error) {
	out := make([]string, len(names))
	for i, n := range names {
		q, err := s.rq(n)
		if err != nil {
			return nil, err
		}
		out[i] = q
	}
	return out, nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return s.pool.Ping(ctx)
}

// TaskView is a task as the API shows it.
type TaskView struct {
	ID             uuid.UUID
	Namespace      string
	Name           string
	Version        string
	Status         string
	Context        json.RawMessage
	Initiator      string
	SourceSystem   string
	Reason         string
	Tags           []string
	IdempotencyKey *string
	CorrelationID  string
	CreatedAt      time.Time
	UpdatedAt      time.Time
	StartedAt      *time.Time
	CompletedAt    *time.Time
	// Steps in template order; nil in ListTasks results.
	Steps []StepView
}

// StepView is one step of a task as the API shows it.
type StepView struct {
	ID             uuid.UUID
	Name           string
	State          string
	Handler        string
	DependsOn      []string // parents, in template order
	Attempts       int
	MaxAttempts    int
	Result         json.RawMessage // nil when none
	LastError      json.RawMessage // nil when none
	NextRetryAt    *time.Time
	DeadlineAt     *time.Time
	StartedAt      *time.Time
	CompletedAt    *time.Time
	TimeoutSeconds int
}

// TransitionView is one recorded state change of a step.
type TransitionView struct {
	From     *string // nil for the first state
	To       string
	Attempt  *int
	Reason   string
	Actor    string
	Metadata json.RawMessage // nil when none
	At       time.Time
}

func scanTask(row pgx.Row) (TaskView, error) {
	var t TaskView
	err := row.Scan(&t.ID, &t.Namespace, &t.Name, &t.Version, &t.Status, &t.Context, &t.Initiator, &t.SourceSystem,
		&t.Reason, &t.Tags, &t.IdempotencyKey, &t.CorrelationID, &t.CreatedAt, &t.UpdatedAt, &t.StartedAt, &t.CompletedAt)
	return t, err
}

func scanStep(row pgx.Row) (StepView, error) {
	var s StepView
	var attempts, maxAttempts, timeout int32
	err := row.Scan(&s.ID, &s.Name, &s.State, &s.Handler, &s.DependsOn, &attempts, &maxAttempts, &s.Result,
		&s.LastError, &s.NextRetryAt, &s.DeadlineAt, &s.StartedAt, &s.CompletedAt, &timeout)
	s.Attempts, s.MaxAttempts, s.TimeoutSeconds = int(attempts), int(maxAttempts), int(timeout)
	if s.DependsOn == nil {
		s.DependsOn = []string{}
	}
	return s, err
}

// snapshot runs the queued reads in one pipeline inside one read-only
// repeatable-read transaction, so they see the same state.
func (s *Store) snapshot(ctx context.Context, queue func(b *pgx.Batch) error) error {
	qs, err := s.rqs("read_snapshot_begin", "read_snapshot_end")
	if err != nil {
		return err
	}
	b := &pgx.Batch{}
	b.Queue(qs[0])
	if err := queue(b); err != nil {
		return err
	}
	b.Queue(qs[1])
	// On an error the pipeline stops before COMMIT; the pool discards a
	// connection released inside a transaction, so nothing leaks.
	return s.pool.SendBatch(ctx, b).Close()
}

// GetTask returns a task with its steps. A missing task is ErrNotFound.
func (s *Store) GetTask(ctx context.Context, id uuid.UUID) (TaskView, error) {
	qs, err := s.rqs("read_task", "read_task_steps")
	if err != nil {
		return TaskView{}, err
	}
	var t TaskView
	found := false
	err = s.snapshot(ctx, func(b *pgx.Batch) error {
		b.Queue(qs[0], id).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var err error
				if t, err = scanTask(rows); err != nil {
					return err
				}
				found = true
			}
			return rows.Err()
		})
		b.Queue(qs[1], id).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				st, err := scanStep(rows)
				if err != nil {
					return err
				}
				t.Steps = append(t.Steps, st)
			}
			return rows.Err()
		})
		return nil
	})
	if err != nil {
		return TaskView{}, fmt.Errorf("get task: %w", err)
	}
	if !found {
		return TaskView{}, fmt.Errorf("task %s: %w", id, ErrNotFound)
	}
	if t.Steps == nil {
		t.Steps = []StepView{}
	}
	return t, nil
}

// GetStep returns one step of a task with its transitions, oldest first.
// A missing task or step is ErrNotFound; taskFound tells which.
func (s *Store) GetStep(ctx context.Context, taskID uuid.UUID, name string) (step StepView, transitions []TransitionView, taskFound bool, err error) {
	qs, err := s.rqs("read_task_exists", "read_step", "read_step_transitions")
	if err != nil {
		return StepView{}, nil, false, err
	}
	stepFound := false
	err = s.snapshot(ctx, func(b *pgx.Batch) error {
		b.Queue(qs[0], taskID).QueryRow(func(row pgx.Row) error { return row.Scan(&taskFound) })
		b.Queue(qs[1], taskID, name).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var err error
				if step, err = scanStep(rows); err != nil {
					return err
				}
				stepFound = true
			}
			return rows.Err()
		})
		b.Queue(qs[2], taskID, name).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var tr TransitionView
				var attempt *int32
				if err := rows.Scan(&tr.From, &tr.To, &attempt, &tr.Reason, &tr.Actor, &tr.Metadata, &tr.At); err != nil {
					return err
				}
				if attempt != nil {
					a := int(*attempt)
					tr.Attempt = &a
				}
				transitions = append(transitions, tr)
			}
			return rows.Err()
		})
		return nil
	})
	if err != nil {
		return StepView{}, nil, false, fmt.Errorf("get step: %w", err)
	}
	if !taskFound {
		return StepView{}, nil, false, fmt.Errorf("task %s: %w", taskID, ErrNotFound)
	}
	if !stepFound {
		return StepView{}, nil, true, fmt.Errorf("step %q of task %s: %w", name, taskID, ErrNotFound)
	}
	if transitions == nil {
		transitions = []TransitionView{}
	}
	return step, transitions, true, nil
}

// Cursor is a position in the task list: the last task of a page.
type Cursor struct {
	CreatedAt time.Time
	ID        uuid.UUID
}

// ListFilter selects and pages tasks. Empty fields do not filter.
type ListFilter struct {
	Namespace string
	Name      string
	Statuses  []string
	// After continues after this task (exclusive); nil starts at the newest.
	After *Cursor
	// Limit is the page size, 1..1000.
	Limit int
}

// MaxListLimit bounds ListFilter.Limit.
const MaxListLimit = 1000

// ListTasks returns one page of tasks, newest first, ordered by
// (created_at DESC, id DESC), without their steps. next is the cursor of
// the following page, nil on the last page. The order is total, so walking
// the pages sees every task that existed at the first call exactly once.
func (s *Store) ListTasks(ctx context.Context, f ListFilter) (tasks []TaskView, next *Cursor, err error) {
	if f.Limit < 1 || f.Limit > MaxListLimit {
		return nil, nil, fmt.Errorf("list tasks: limit %d out of range 1..%d", f.Limit, MaxListLimit)
	}
	q, err := s.rq("list_tasks")
	if err != nil {
		return nil, nil, err
	}
	var ns, name *string
	if f.Namespace != "" {
		ns = &f.Namespace
	}
	if f.Name != "" {
		name = &f.Name
	}
	var status *string
	var statuses []string
	switch len(f.Statuses) {
	case 0:
	case 1:
		status = &f.Statuses[0]
	default:
		statuses = f.Statuses
	}
	var afterAt *time.Time
	var afterID *uuid.UUID
	if f.After != nil {
		at, id := f.After.CreatedAt, f.After.ID
		afterAt, afterID = &at, &id
	}
	// CacheDescribe: an unnamed statement planned for these very
	// parameters, so "no filter" branches fold away and the right index is
	// chosen instead of one generic plan for every filter combination.
	rows, err := s.pool.Query(ctx, q, pgx.QueryExecModeCacheDescribe, ns, name, status, statuses, afterAt, afterID, int32(f.Limit+1))
	if err != nil {
		return nil, nil, fmt.Errorf("list tasks: %w", err)
	}
	tasks, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (TaskView, error) { return scanTask(r) })
	if err != nil {
		return nil, nil, fmt.Errorf("list tasks: %w", err)
	}
	if len(tasks) > f.Limit {
		tasks = tasks[:f.Limit]
		last := tasks[len(tasks)-1]
		next = &Cursor{CreatedAt: last.CreatedAt, ID: last.ID}
	}
	if tasks == nil {
		tasks = []TaskView{}
	}
	return tasks, next, nil
}

// SystemStatus is what the status endpoint reports from the database.
type SystemStatus struct {
	// Tasks counts every task by status (all statuses present, zeros included).
	Tasks map[string]int64
	// LiveSteps counts steps in pending, waiting_for_retry and in_progress.
	LiveSteps map[string]int64
	// InFlight is the number of step attempts in progress.
	InFlight int64
	// Since is the start of the window of the recent outcome counts.
	Since time.Time
	// Step attempt outcomes since Since, system-wide.
	RecentCompleted, RecentRetried, RecentFailed int64
}

// TaskStatuses and StepStates are every status and state, in lifecycle order.
var (
	TaskStatuses = []string{"pending", "in_progress", "complete", "error", "cancelled", "resolved_manually"}
	StepStates   = []string{"pending", "in_progress", "waiting_for_retry", "complete", "error", "cancelled", "resolved_manually"}
	// LiveStepStates are the states of steps that may still run.
	LiveStepStates = []string{"pending", "in_progress", "waiting_for_retry"}
)

// Status counts tasks and live steps and the step outcomes recorded since
// since, in one round trip.
func (s *Store) Status(ctx context.Context, since time.Time) (SystemStatus, error) {
	qs, err := s.rqs("status_task_counts", "status_live_step_counts", "status_recent_outcomes", "in_flight")
	if err != nil {
		return SystemStatus{}, err
	}
	st := SystemStatus{Tasks: map[string]int64{}, LiveSteps: map[string]int64{}, Since: since}
	for _, k := range TaskStatuses {
		st.Tasks[k] = 0
	}
	for _, k := range LiveStepStates {
		st.LiveSteps[k] = 0
	}
	counts := func(into map[string]int64) func(rows pgx.Rows) error {
		return func(rows pgx.Rows) error {
			for rows.Next() {
				var k string
				var n int64
				if err := rows.Scan(&k, &n); err != nil {
					return err
				}
				into[k] = n
			}
			return rows.Err()
		}
	}
	b := &pgx.Batch{}
	b.Queue(qs[0]).Query(counts(st.Tasks))
	b.Queue(qs[1]).Query(counts(st.LiveSteps))
	b.Queue(qs[2], since).QueryRow(func(row pgx.Row) error {
		return row.Scan(&st.RecentCompleted, &st.RecentRetried, &st.RecentFailed)
	})
	b.Queue(qs[3]).QueryRow(func(row pgx.Row) error { return row.Scan(&st.InFlight) })
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return SystemStatus{}, fmt.Errorf("system status: %w", err)
	}
	return st, nil
}
