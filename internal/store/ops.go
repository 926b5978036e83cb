package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/taskerhq/tasker/internal/domain"
	"github.com/taskerhq/tasker/internal/store/dbgen"
)

// listQuery is one of the three listing walks (docs/operating.md,
// "Searching tasks"): by tag (tasker_task_tags), by update time
// (tasker_tasks_updated), or by creation time through whichever of the
// creation-ordered indexes the filters lead with.
type listQuery struct {
	kind    int // listCreated, listTag, listUpdated
	created dbgen.ListTasksParams
	tag     dbgen.ListTasksByTagParams
	updated dbgen.ListTasksByUpdatedParams
}

const (
	listCreated = iota
	listTag
	listUpdated
)

func optStr(v string) *string {
	if v == "" {
		return nil
	}
	return &v
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func newListQuery(f ListFilter) *listQuery {
	var statuses []string
	if len(f.Statuses) > 0 {
		statuses = f.Statuses
	}
	q := &listQuery{}
	switch {
	case len(f.Tags) > 0:
		q.kind = listTag
		q.tag = dbgen.ListTasksByTagParams{Tag: f.Tags[0], Namespace: optStr(f.Namespace), Name: optStr(f.Name),
			Statuses: statuses, CorrelationID: optStr(f.CorrelationID),
			CreatedFrom: optTime(f.CreatedFrom), CreatedTo: optTime(f.CreatedTo)}
		if len(f.Tags) > 1 {
			q.tag.AllTags = f.Tags[1:]
		}
	case !f.UpdatedFrom.IsZero() || !f.UpdatedTo.IsZero():
		q.kind = listUpdated
		q.updated = dbgen.ListTasksByUpdatedParams{UpdatedFrom: optTime(f.UpdatedFrom), UpdatedTo: optTime(f.UpdatedTo),
			Namespace: optStr(f.Namespace), Name: optStr(f.Name), Statuses: statuses, CorrelationID: optStr(f.CorrelationID),
			CreatedFrom: optTime(f.CreatedFrom), CreatedTo: optTime(f.CreatedTo)}
	default:
		q.created = dbgen.ListTasksParams{Namespace: optStr(f.Namespace), Name: optStr(f.Name),
			CorrelationID: optStr(f.CorrelationID), CreatedFrom: optTime(f.CreatedFrom), CreatedTo: optTime(f.CreatedTo)}
		// One status is an equality the status index can walk in order.
		switch len(f.Statuses) {
		case 0:
		case 1:
			q.created.Status = &f.Statuses[0]
		default:
			q.created.Statuses = f.Statuses
		}
	}
	if f.After != nil {
		q.after(*f.After)
	}
	return q
}

// after moves the walk past c.
func (q *listQuery) after(c Cursor) {
	switch q.kind {
	case listTag:
		q.tag.AfterCreatedAt, q.tag.AfterID = &c.CreatedAt, &c.ID
	case listUpdated:
		at := c.UpdatedAt
		if at == nil {
			at = &c.CreatedAt
		}
		q.updated.AfterUpdatedAt, q.updated.AfterID = at, &c.ID
	default:
		q.created.AfterCreatedAt, q.created.AfterID = &c.CreatedAt, &c.ID
	}
}

// cursor is the position of t in this walk.
func (q *listQuery) cursor(t TaskView) Cursor {
	c := Cursor{CreatedAt: t.CreatedAt, ID: t.ID}
	if q.kind == listUpdated {
		at := t.UpdatedAt
		c.UpdatedAt = &at
	}
	return c
}

// listBatch reads the next n rows of the walk in one round trip: a
// read-only snapshot held to index paths (IndexPlans) and planned for these
// very parameters (CustomPlans), so the "no filter" branches fold away and
// the index the filters lead with is chosen.
func (s *Store) listBatch(ctx context.Context, q *listQuery, n int) ([]TaskView, error) {
	var created []dbgen.ListTasksRow
	var tagged []dbgen.ListTasksByTagRow
	var updated []dbgen.ListTasksByUpdatedRow
	err := s.snapshot(ctx, func(p *pipeline) {
		p.queue(func(db dbgen.DBTX) error { return dbq.CustomPlans(ctx, db) })
		p.queue(func(db dbgen.DBTX) (err error) {
			switch q.kind {
			case listTag:
				q.tag.MaxRows = int32(n)
				tagged, err = dbq.ListTasksByTag(ctx, db, q.tag)
			case listUpdated:
				q.updated.MaxRows = int32(n)
				updated, err = dbq.ListTasksByUpdated(ctx, db, q.updated)
			default:
				q.created.MaxRows = int32(n)
				created, err = dbq.ListTasks(ctx, db, q.created)
			}
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	out := make([]TaskView, 0, len(created)+len(tagged)+len(updated))
	for _, r := range created {
		out = append(out, taskView(dbgen.ReadTaskRow(r)))
	}
	for _, r := range tagged {
		out = append(out, taskView(dbgen.ReadTaskRow(r)))
	}
	for _, r := range updated {
		out = append(out, taskView(dbgen.ReadTaskRow(r)))
	}
	return out, s.blockedReasons(ctx, out)
}

// blockedReasons sets the BlockedReason of the pending tasks of a listed
// page (docs/control-flow.md, "Task concurrency"): one more read, only when
// the page holds a pending task.
func (s *Store) blockedReasons(ctx context.Context, tasks []TaskView) error {
	var pending []uuid.UUID
	for _, t := range tasks {
		if t.Status == domain.TaskPending {
			pending = append(pending, t.ID)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	var rows []dbgen.TaskBlockedReasonsRow
	err := s.snapshot(ctx, func(p *pipeline) {
		p.queue(func(db dbgen.DBTX) (err error) {
			rows, err = dbq.TaskBlockedReasons(ctx, db, pending)
			return err
		})
	})
	if err != nil {
		return err
	}
	reason := make(map[uuid.UUID]string, len(rows))
	for _, r := range rows {
		reason[r.TaskID] = r.Reason
	}
	for i := range tasks {
		tasks[i].BlockedReason = reason[tasks[i].ID]
	}
	return nil
}

// TaskTransition is one row of a task's audit: a change of the task's
// status (Step empty) or of one of its steps.
type TaskTransition struct {
	Seq    int64 // the row's id: increasing in the order recorded
	StepID *uuid.UUID
	Step   string
	TransitionView
}

// MaxTransitionsPage bounds TaskTransitions' limit.
const MaxTransitionsPage = 1000

// TaskTransitions returns up to limit rows of the task's audit recorded
// after the row numbered after (0: from the start), oldest first, and
// whether more follow. A missing task is ErrNotFound.
func (s *Store) TaskTransitions(ctx context.Context, id uuid.UUID, after int64, limit int) (trs []TaskTransition, more bool, err error) {
	if limit < 1 || limit > MaxTransitionsPage {
		return nil, false, fmt.Errorf("task transitions: limit %d out of range 1..%d", limit, MaxTransitionsPage)
	}
	var rows []dbgen.ReadTaskTransitionsRow
	found := false
	err = s.snapshot(ctx, func(p *pipeline) {
		p.queue(func(db dbgen.DBTX) (err error) {
			found, err = dbq.ReadTaskExists(ctx, db, id)
			return err
		})
		p.queue(func(db dbgen.DBTX) (err error) {
			rows, err = dbq.ReadTaskTransitions(ctx, db, dbgen.ReadTaskTransitionsParams{TaskID: id, AfterID: after, MaxRows: int32(limit + 1)})
			return err
		})
	})
	if err != nil {
		return nil, false, fmt.Errorf("task transitions: %w", err)
	}
	if !found {
		return nil, false, fmt.Errorf("task %s: %w", id, ErrNotFound)
	}
	if len(rows) > limit {
		rows, more = rows[:limit], true
	}
	trs = make([]TaskTransition, len(rows))
	for i, r := range rows {
		trs[i] = TaskTransition{Seq: r.ID, StepID: r.StepID, Step: deref(r.StepName), TransitionView: transitionView(dbgen.ReadStepTransitionsRow{
			FromState: r.FromState, ToState: r.ToState, Attempt: r.Attempt, Reason: r.Reason, Actor: r.Actor,
			Metadata: r.Metadata, CreatedAt: r.CreatedAt,
		})}
	}
	return trs, more, nil
}

// BulkOutcome is what a bulk operator action did to one batch.
type BulkOutcome struct {
	Changed []OperatorResult
	// Skipped are the tasks whose status no longer allowed the action when
	// their lock was taken (a scheduler pass or another operator got there
	// first), and tasks deleted since they were selected.
	Skipped []uuid.UUID
}

// CancelTasks cancels each task of ids as CancelTask does, all in one
// transaction: a batch. The tasks are locked one by one in id order, the
// order of the scheduler pass's locks, so the two never deadlock; a task
// that can no longer be cancelled is skipped, not an error. Callers keep
// batches small (docs/operating.md, "Bulk actions") so no transaction holds
// many locks for long.
func (s *Store) CancelTasks(ctx context.Context, ids []uuid.UUID, now time.Time, actor, reason string) (BulkOutcome, error) {
	if reason == "" {
		reason = "cancelled"
	}
	return s.bulk(ctx, ids, "cancel tasks", func(tx pgx.Tx, h *TaskHeader) (*OperatorResult, error) {
		if !h.Status.CanTransition(domain.TaskCancelled) {
			return nil, nil
		}
		return cancelLocked(ctx, tx, h, now, actor, reason)
	})
}

// RetryTasks retries each task of ids in error as RetryTask does, in one
// transaction, like CancelTasks.
func (s *Store) RetryTasks(ctx context.Context, ids []uuid.UUID, now time.Time, actor, reason string) (BulkOutcome, error) {
	if reason == "" {
		reason = "operator retry"
	}
	return s.bulk(ctx, ids, "retry tasks", func(tx pgx.Tx, h *TaskHeader) (*OperatorResult, error) {
		if h.Status != domain.TaskError {
			return nil, nil
		}
		return retryLocked(ctx, tx, h, now, actor, reason)
	})
}

// MaxBulkBatch bounds the tasks of one CancelTasks or RetryTasks call.
const MaxBulkBatch = 1000

func (s *Store) bulk(ctx context.Context, ids []uuid.UUID, what string, apply func(pgx.Tx, *TaskHeader) (*OperatorResult, error)) (BulkOutcome, error) {
	if len(ids) > MaxBulkBatch {
		return BulkOutcome{}, fmt.Errorf("%s: %d tasks in one batch, at most %d", what, len(ids), MaxBulkBatch)
	}
	sorted := slices.Clone(ids)
	slices.SortFunc(sorted, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	sorted = slices.Compact(sorted)
	var out BulkOutcome
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		out = BulkOutcome{}
		if err := dbq.IndexPlans(ctx, tx); err != nil {
			return err
		}
		for _, id := range sorted {
			r, err := dbq.LockTask(ctx, tx, id)
			if errors.Is(err, pgx.ErrNoRows) {
				out.Skipped = append(out.Skipped, id)
				continue
			}
			if err != nil {
				return err
			}
			h := TaskHeader{ID: id, Status: domain.TaskStatus(r.Status), Namespace: r.Namespace, Workflow: r.Name, CorrelationID: r.CorrelationID}
			res, err := apply(tx, &h)
			if err != nil {
				return err
			}
			if res == nil {
				out.Skipped = append(out.Skipped, id)
				continue
			}
			out.Changed = append(out.Changed, *res)
		}
		return nil
	})
	if err != nil {
		return BulkOutcome{}, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

const (
	// MaxPruneBatch bounds the tasks one Prune call deletes.
	MaxPruneBatch = 1000
	// PruneCountCap is where PruneCount stops counting.
	PruneCountCap = 1_000_000
)

// Prune deletes up to limit finished tasks (complete, error, cancelled,
// resolved_manually) completed before before, oldest first, with their
// steps, edges, transitions and tags, in one transaction. When export is
// not nil it is given one JSON document per task (the task, its steps and
// transitions) before anything is deleted; an export error deletes nothing.
// A task another transaction holds is left for the next call. It returns
// the ids deleted.
func (s *Store) Prune(ctx context.Context, before time.Time, limit int, export func(ctx context.Context, docs []json.RawMessage) error) ([]uuid.UUID, error) {
	if limit < 1 || limit > MaxPruneBatch {
		return nil, fmt.Errorf("prune: limit %d out of range 1..%d", limit, MaxPruneBatch)
	}
	var deleted []uuid.UUID
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := dbq.IndexPlans(ctx, tx); err != nil {
			return err
		}
		ids, err := dbq.PruneCandidates(ctx, tx, dbgen.PruneCandidatesParams{Before: before, MaxRows: int32(limit)})
		if err != nil || len(ids) == 0 {
			return err
		}
		if export != nil {
			rows, err := dbq.ExportTasks(ctx, tx, ids)
			if err != nil {
				return err
			}
			docs := make([]json.RawMessage, len(rows))
			for i, r := range rows {
				docs[i] = r.Doc
			}
			if err := export(ctx, docs); err != nil {
				return fmt.Errorf("export: %w", err)
			}
		}
		deleted, err = dbq.DeleteTasks(ctx, tx, dbgen.DeleteTasksParams{Ids: ids, Before: before})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	return deleted, nil
}

// PruneCount counts the tasks Prune would delete for before, up to
// PruneCountCap.
func (s *Store) PruneCount(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.snapshot(ctx, func(p *pipeline) {
		p.queue(func(db dbgen.DBTX) (err error) {
			n, err = dbq.PruneCount(ctx, db, dbgen.PruneCountParams{Before: before, CountCap: PruneCountCap})
			return err
		})
	})
	if err != nil {
		return 0, fmt.Errorf("prune count: %w", err)
	}
	return n, nil
}
