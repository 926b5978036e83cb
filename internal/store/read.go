package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/taskerhq/tasker/internal/domain"
	"github.com/taskerhq/tasker/internal/store/dbgen"
)

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
	Status         domain.TaskStatus
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
	// ParentTaskID and ParentStep name the tasker.workflow step that
	// started the task, nil and "" otherwise; Children are the tasks its own
	// tasker.workflow steps started (docs/architecture.md, "Child
	// workflows"). Set by GetTask only.
	ParentTaskID *uuid.UUID
	ParentStep   string
	Children     []ChildView
}

// StepView is one step of a task as the API shows it.
type StepView struct {
	ID             uuid.UUID
	Name           string
	State          domain.StepState
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
	// WaitingUntil is, for a waiting step, when its timer is due or its
	// callback expires; WaitKind is "timer" or "callback" then.
	WaitingUntil *time.Time
	WaitKind     string
	// TriggerRule and When are the step's control flow as materialised
	// from its template (When "" when it has no condition); SkipKind and
	// SkipReason say why a skipped step was skipped ("" otherwise):
	// docs/architecture.md, "States".
	TriggerRule string
	When        string
	SkipKind    string
	SkipReason  string
	// MapCounts is, for a map step that ran, its instances by state
	// (docs/architecture.md, "Map"); nil otherwise.
	MapCounts map[string]int
	// BlockedReason says why a pending step whose parents are done is not
	// running, computed on read ("" when nothing holds it back):
	// docs/control-flow.md, "Flow control".
	BlockedReason string
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

func taskView(r dbgen.ReadTaskRow) TaskView {
	return TaskView{
		ID: r.ID, Namespace: r.Namespace, Name: r.Name, Version: r.Version, Status: domain.TaskStatus(r.Status),
		Context: r.Context, Initiator: r.Initiator, SourceSystem: r.SourceSystem, Reason: r.Reason,
		Tags: r.Tags, IdempotencyKey: r.IdempotencyKey, CorrelationID: r.CorrelationID,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, StartedAt: r.StartedAt, CompletedAt: r.CompletedAt,
	}
}

func stepView(r dbgen.ReadStepRow) StepView {
	deps := r.DependsOn
	if deps == nil {
		deps = []string{}
	}
	v := StepView{
		ID: r.ID, Name: r.Name, State: domain.StepState(r.State), Handler: r.Handler, DependsOn: deps,
		Attempts: int(r.Attempts), MaxAttempts: int(r.MaxAttempts), Result: r.Result, LastError: r.LastError,
		NextRetryAt: r.NextRetryAt, DeadlineAt: r.DeadlineAt, StartedAt: r.StartedAt, CompletedAt: r.CompletedAt,
		TimeoutSeconds: int(r.TimeoutSeconds), TriggerRule: r.TriggerRule, When: deref(r.WhenExpr),
		SkipKind: deref(r.SkipKind), SkipReason: deref(r.SkipReason), BlockedReason: r.BlockedReason,
	}
	if v.State == domain.StepWaiting {
		v.WaitingUntil, v.WaitKind = r.WakeAt, deref(r.WaitKind)
	}
	if len(r.MapCounts) > 0 {
		_ = json.Unmarshal(r.MapCounts, &v.MapCounts) // an object of counts, built by the query
	}
	return v
}

func transitionView(r dbgen.ReadStepTransitionsRow) TransitionView {
	tr := TransitionView{From: r.FromState, To: r.ToState, Reason: r.Reason, Actor: r.Actor, Metadata: r.Metadata, At: r.CreatedAt}
	if r.Attempt != nil {
		a := int(*r.Attempt)
		tr.Attempt = &a
	}
	return tr
}

// snapshot runs the reads queued by queue in one round trip inside one
// read-only repeatable-read transaction, so they see the same state, with
// the planner held to index paths (IndexPlans in sql/queries/read.sql).
func (s *Store) snapshot(ctx context.Context, queue func(p *pipeline)) error {
	var p pipeline
	p.queue(func(db dbgen.DBTX) error { return dbq.SnapshotBegin(ctx, db) })
	p.queue(func(db dbgen.DBTX) error { return dbq.IndexPlans(ctx, db) })
	queue(&p)
	p.queue(func(db dbgen.DBTX) error { return dbq.SnapshotEnd(ctx, db) })
	return p.send(ctx, s.pool)
}

// ChildView is a child task of a task.
type ChildView struct {
	ID     uuid.UUID
	Step   string
	Status domain.TaskStatus
}

// GetTask returns a task with its steps. A missing task is ErrNotFound.
func (s *Store) GetTask(ctx context.Context, id uuid.UUID) (TaskView, error) {
	var task dbgen.ReadTaskRow
	var steps []dbgen.ReadTaskStepsRow
	var parent []dbgen.ReadTaskParentRow
	var children []dbgen.ReadTaskChildrenRow
	found, now := false, s.now()
	err := s.snapshot(ctx, func(p *pipeline) {
		p.queue(func(db dbgen.DBTX) (err error) {
			task, err = dbq.ReadTask(ctx, db, id)
			found = err == nil
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			return err
		})
		p.queue(func(db dbgen.DBTX) (err error) {
			steps, err = dbq.ReadTaskSteps(ctx, db, dbgen.ReadTaskStepsParams{Now: now, TaskID: id})
			return err
		})
		p.queue(func(db dbgen.DBTX) (err error) {
			parent, err = dbq.ReadTaskParent(ctx, db, id)
			return err
		})
		p.queue(func(db dbgen.DBTX) (err error) {
			children, err = dbq.ReadTaskChildren(ctx, db, id)
			return err
		})
	})
	if err != nil {
		return TaskView{}, fmt.Errorf("get task: %w", err)
	}
	if !found {
		return TaskView{}, fmt.Errorf("task %s: %w", id, ErrNotFound)
	}
	t := taskView(task)
	t.Steps = make([]StepView, len(steps))
	for i, st := range steps {
		t.Steps[i] = stepView(dbgen.ReadStepRow(st))
	}
	for _, p := range parent {
		t.ParentTaskID, t.ParentStep = &p.ParentTaskID, p.ParentStep
	}
	t.Children = make([]ChildView, len(children))
	for i, c := range children {
		t.Children[i] = ChildView{ID: c.ID, Step: c.Step, Status: domain.TaskStatus(c.Status)}
	}
	return t, nil
}

// GetStep returns one step of a task with its transitions, oldest first.
// A missing task or step is ErrNotFound; taskFound tells which.
func (s *Store) GetStep(ctx context.Context, taskID uuid.UUID, name string) (step StepView, transitions []TransitionView, taskFound bool, err error) {
	var row dbgen.ReadStepRow
	var trs []dbgen.ReadStepTransitionsRow
	stepFound, now := false, s.now()
	err = s.snapshot(ctx, func(p *pipeline) {
		p.queue(func(db dbgen.DBTX) (err error) {
			taskFound, err = dbq.ReadTaskExists(ctx, db, taskID)
			return err
		})
		p.queue(func(db dbgen.DBTX) (err error) {
			row, err = dbq.ReadStep(ctx, db, dbgen.ReadStepParams{Now: now, TaskID: taskID, Name: name})
			stepFound = err == nil
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			return err
		})
		p.queue(func(db dbgen.DBTX) (err error) {
			trs, err = dbq.ReadStepTransitions(ctx, db, dbgen.ReadStepTransitionsParams{TaskID: taskID, Name: name})
			return err
		})
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
	transitions = make([]TransitionView, len(trs))
	for i, tr := range trs {
		transitions[i] = transitionView(tr)
	}
	return stepView(row), transitions, true, nil
}

// Cursor is a position in the task list: the last task of a page. A list
// filtered by update time (ListFilter.UpdatedFrom or UpdatedTo) is ordered
// by UpdatedAt, the others by CreatedAt.
type Cursor struct {
	CreatedAt time.Time
	ID        uuid.UUID
	// UpdatedAt is set in the cursors of a list ordered by update time.
	UpdatedAt *time.Time
}

// ListFilter selects and pages tasks. Empty fields do not filter.
type ListFilter struct {
	Namespace string
	Name      string
	Statuses  []string
	// Tags keeps tasks carrying every one of these tags ("k:v").
	Tags []string
	// CorrelationID keeps the tasks created under this correlation id.
	CorrelationID string
	// CreatedFrom and CreatedTo keep tasks created in [from, to); zero
	// times do not bound.
	CreatedFrom, CreatedTo time.Time
	// UpdatedFrom and UpdatedTo keep tasks last changed in [from, to);
	// either one orders the list by update time, newest first.
	UpdatedFrom, UpdatedTo time.Time
	// After continues after this task (exclusive); nil starts at the newest.
	After *Cursor
	// Limit is the page size, 1..1000.
	Limit int
	// MaxBytes bounds the page: tasks are added while the sum of their
	// sizes (TaskView.Size) stays within it, and always at least one, so a
	// page of large contexts stops early with a cursor. The rows are read
	// in small batches, so the store never holds much more than MaxBytes
	// (plus one batch) of a page. 0 means no bound.
	MaxBytes int
	// OmitContext leaves Context nil in the results, and out of MaxBytes.
	OmitContext bool
}

// firstListBatch is how many rows a budgeted ListTasks reads first, before
// it knows how large the rows are: a bound on what one batch holds.
const firstListBatch = 4

// Size estimates the bytes the task takes when encoded as JSON without its
// steps: its context and text, plus a fixed allowance for the rest.
func (t TaskView) Size() int {
	n := 400 + len(t.Context) + len(t.Namespace) + len(t.Name) + len(t.Version) + len(t.Initiator) +
		len(t.SourceSystem) + len(t.Reason) + len(t.CorrelationID)
	if t.IdempotencyKey != nil {
		n += len(*t.IdempotencyKey)
	}
	for _, tag := range t.Tags {
		n += len(tag) + 3
	}
	return n
}

// MaxListLimit bounds ListFilter.Limit.
const MaxListLimit = 1000

// ListTasks returns one page of tasks, newest first, ordered by
// (created_at DESC, id DESC), without their steps. next is the cursor of
// the following page, nil on the last page; a page cut short by
// f.MaxBytes has one too. The order is total, so walking the pages sees
// every task that existed at the first call exactly once.
func (s *Store) ListTasks(ctx context.Context, f ListFilter) (tasks []TaskView, next *Cursor, err error) {
	if f.Limit < 1 || f.Limit > MaxListLimit {
		return nil, nil, fmt.Errorf("list tasks: limit %d out of range 1..%d", f.Limit, MaxListLimit)
	}
	if f.MaxBytes < 0 {
		return nil, nil, fmt.Errorf("list tasks: negative byte budget %d", f.MaxBytes)
	}
	q := newListQuery(f)
	// Without a budget one query reads the page and one row more (which
	// says whether there is a next page). With one, the rows are read in
	// batches sized from the rows seen so far and the budget left, each
	// continuing after the last task taken.
	batch := f.Limit + 1
	if f.MaxBytes > 0 {
		batch = min(batch, firstListBatch)
	}
	used := 0
	for {
		rows, err := s.listBatch(ctx, q, batch)
		if err != nil {
			return nil, nil, fmt.Errorf("list tasks: %w", err)
		}
		for _, t := range rows {
			if f.OmitContext {
				t.Context = nil
			}
			size := t.Size()
			if len(tasks) == f.Limit || (f.MaxBytes > 0 && len(tasks) > 0 && used+size > f.MaxBytes) {
				c := q.cursor(tasks[len(tasks)-1])
				return tasks, &c, nil
			}
			tasks = append(tasks, t)
			used += size
		}
		if len(rows) < batch {
			return tasks, nil, nil
		}
		q.after(q.cursor(tasks[len(tasks)-1]))
		avg := used/len(tasks) + 1
		batch = min(f.Limit-len(tasks)+1, max(1, (f.MaxBytes-used)/avg+1))
	}
}

// SystemStatus is what the status endpoint reports from the database.
type SystemStatus struct {
	// Every count stops at StatusCountCap: a health read costs the same
	// whatever the history (docs/architecture.md, "Cost follows the work").
	//
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

// StatusCountCap is where the counts of Status stop.
const StatusCountCap = 10000

// Status counts tasks and live steps and the step outcomes recorded since
// since, in one round trip.
func (s *Store) Status(ctx context.Context, since time.Time) (SystemStatus, error) {
	var tasks []dbgen.StatusTaskCountsRow
	var steps []dbgen.StatusLiveStepCountsRow
	var recent dbgen.StatusRecentOutcomesRow
	st := SystemStatus{Tasks: map[string]int64{}, LiveSteps: map[string]int64{}, Since: since}
	err := s.snapshot(ctx, func(p *pipeline) {
		p.queue(func(db dbgen.DBTX) (err error) {
			tasks, err = dbq.StatusTaskCounts(ctx, db, StatusCountCap)
			return err
		})
		p.queue(func(db dbgen.DBTX) (err error) {
			steps, err = dbq.StatusLiveStepCounts(ctx, db, StatusCountCap)
			return err
		})
		p.queue(func(db dbgen.DBTX) (err error) {
			recent, err = dbq.StatusRecentOutcomes(ctx, db, dbgen.StatusRecentOutcomesParams{Since: since, CountCap: StatusCountCap})
			return err
		})
		p.queue(func(db dbgen.DBTX) (err error) {
			st.InFlight, err = dbq.StatusInFlight(ctx, db, StatusCountCap)
			return err
		})
	})
	if err != nil {
		return SystemStatus{}, fmt.Errorf("system status: %w", err)
	}
	for _, k := range domain.AllTaskStatuses {
		st.Tasks[string(k)] = 0
	}
	for _, r := range tasks {
		st.Tasks[r.Status] = r.N
	}
	for _, k := range domain.LiveStepStates {
		st.LiveSteps[string(k)] = 0
	}
	for _, r := range steps {
		st.LiveSteps[r.State] = r.N
	}
	st.RecentCompleted, st.RecentRetried, st.RecentFailed = recent.Completed, recent.Retried, recent.Failed
	return st, nil
}
