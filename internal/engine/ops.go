package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/store"
)

// Exporter receives finished tasks before retention deletes them
// (docs/operating.md, "Retention"): one JSON document per task with its
// steps and transitions. Export must be durable when it returns; an error
// leaves the tasks in place for the next sweep, so a document may be
// exported twice but never lost.
type Exporter interface {
	Export(ctx context.Context, docs []json.RawMessage) error
}

// pruneOnce runs one bounded retention batch, if retention is on.
func (e *Engine) pruneOnce(ctx context.Context, now time.Time) (int, error) {
	if e.cfg.Retention <= 0 {
		return 0, nil
	}
	ids, err := e.Prune(ctx, now.Add(-e.cfg.Retention), e.cfg.RetentionBatch)
	return len(ids), err
}

// Prune deletes up to limit tasks that finished before before, oldest
// first, exporting them first through the configured Exporter; it returns
// the ids deleted. The sweep calls it with the retention setting; `tasker
// prune` calls it in a loop.
func (e *Engine) Prune(ctx context.Context, before time.Time, limit int) ([]uuid.UUID, error) {
	var export func(context.Context, []json.RawMessage) error
	if e.cfg.Exporter != nil {
		export = e.cfg.Exporter.Export
	}
	ids, err := e.store.Prune(ctx, before, limit, export)
	if err != nil {
		return nil, err
	}
	if len(ids) > 0 {
		e.log.InfoContext(ctx, "pruned finished tasks", "tasks", len(ids), "finished_before", before)
	}
	return ids, nil
}

// PruneCount counts the tasks a prune before before would delete, up to
// store.PruneCountCap.
func (e *Engine) PruneCount(ctx context.Context, before time.Time) (int64, error) {
	return e.store.PruneCount(ctx, before)
}

// BulkAction names a bulk operator action.
type BulkAction string

// The bulk actions.
const (
	BulkCancel BulkAction = "cancel"
	BulkRetry  BulkAction = "retry"
)

// Bulk limits (docs/operating.md, "Bulk actions").
const (
	// BulkBatch is how many tasks one transaction of a bulk action locks.
	BulkBatch = 100
	// DefaultBulkTasks is one call's work unless BulkRequest.MaxTasks
	// says otherwise: about a second or two of batches, well within an
	// HTTP timeout (API Gateway's is 29 s).
	DefaultBulkTasks = 1000
	// MaxBulkTasks bounds BulkRequest.MaxTasks.
	MaxBulkTasks = 10_000
	// BulkCountCap is where a dry run stops counting.
	BulkCountCap = 100_000
)

// BulkRequest selects the tasks of a bulk action by the list filters.
type BulkRequest struct {
	Action BulkAction
	// Filter selects the tasks; its Limit, MaxBytes and OmitContext are
	// ignored. After continues a previous call (BulkResult.Next).
	Filter store.ListFilter
	// DryRun counts the matching tasks (up to BulkCountCap) and changes
	// nothing.
	DryRun bool
	// MaxTasks bounds the tasks this call examines (default
	// DefaultBulkTasks, at most MaxBulkTasks); the rest are left to the
	// next call, from Next.
	MaxTasks      int
	Actor, Reason string
	// Progress, if set, is called after each batch.
	Progress func(BulkResult)
}

// BulkResult sums up a bulk action.
type BulkResult struct {
	DryRun  bool
	Matched int // tasks selected by the filter (in a dry run: counted)
	Changed int // tasks cancelled or retried
	Skipped int // selected tasks whose status no longer allowed the action
	Batches int // transactions committed
	// Capped says a dry run stopped counting at BulkCountCap.
	Capped bool
	// Next continues the selection where MaxTasks stopped this call; nil
	// when every matching task was handled.
	Next *store.Cursor
}

// Bulk cancels or retries every task the filter selects, BulkBatch tasks
// per transaction: the tasks are walked by keyset (the listing order), and
// each batch runs the same locked actions as CancelTask and RetryTask, so
// a huge selection never holds a long lock and races the scheduler pass as
// a single action does. Each change is a transition row with the actor and
// the usual events. Errors: ErrConflict for an action that is neither
// cancel nor retry; a failed batch stops the call with the summary so far.
func (e *Engine) Bulk(ctx context.Context, req BulkRequest) (BulkResult, error) {
	if req.Action != BulkCancel && req.Action != BulkRetry {
		return BulkResult{}, fmt.Errorf("bulk action %q: %w", req.Action, ErrConflict)
	}
	if req.MaxTasks <= 0 {
		req.MaxTasks = DefaultBulkTasks
	}
	req.MaxTasks = min(req.MaxTasks, MaxBulkTasks)
	f := req.Filter
	f.MaxBytes, f.OmitContext = 0, true
	res := BulkResult{DryRun: req.DryRun}
	if req.DryRun {
		f.Limit = store.MaxListLimit
		for {
			page, next, err := e.store.ListTasks(ctx, f)
			if err != nil {
				return res, err
			}
			res.Matched += len(page)
			if next == nil {
				return res, nil
			}
			if res.Matched >= BulkCountCap {
				res.Capped = true
				return res, nil
			}
			f.After = next
		}
	}
	for res.Matched < req.MaxTasks {
		f.Limit = min(BulkBatch, req.MaxTasks-res.Matched)
		page, next, err := e.store.ListTasks(ctx, f)
		if err != nil {
			return res, err
		}
		if len(page) == 0 {
			return res, nil
		}
		ids := make([]uuid.UUID, len(page))
		for i, t := range page {
			ids[i] = t.ID
		}
		if err := e.bulkBatch(ctx, req, ids, &res); err != nil {
			return res, err
		}
		res.Matched += len(page)
		if req.Progress != nil {
			req.Progress(res)
		}
		if next == nil {
			res.Next = nil
			return res, nil
		}
		f.After, res.Next = next, next
	}
	return res, nil
}

func (e *Engine) bulkBatch(ctx context.Context, req BulkRequest, ids []uuid.UUID, res *BulkResult) error {
	now := e.clock.Now()
	var out store.BulkOutcome
	var err error
	if req.Action == BulkCancel {
		out, err = e.store.CancelTasks(ctx, ids, now, req.Actor, req.Reason)
	} else {
		out, err = e.store.RetryTasks(ctx, ids, now, req.Actor, req.Reason)
	}
	if err != nil {
		return fromStore(err)
	}
	res.Batches++
	res.Changed += len(out.Changed)
	res.Skipped += len(out.Skipped)
	wake := map[uuid.UUID]time.Duration{}
	for _, r := range out.Changed {
		if req.Action == BulkCancel {
			e.publishOperator(ctx, now, r, TaskCancelled, StepCancelled, req.Reason)
		} else {
			e.publishOperator(ctx, now, r, TaskRetryRequested, StepRetryRequested, req.Reason)
			wake[r.Task.ID] = 0
		}
	}
	if len(wake) > 0 {
		e.wake(ctx, wake, nil)
	}
	if req.Action == BulkCancel && len(out.Changed) > 0 {
		e.wakeFreed(ctx, now, out.Changed)
		// A cancel cascades to children (docs/architecture.md, "Child workflows").
		cancelled := make([]uuid.UUID, len(out.Changed))
		for i, r := range out.Changed {
			cancelled[i] = r.Task.ID
		}
		if err := e.cancelChildren(ctx, cancelled, req.Actor, req.Reason); err != nil {
			e.log.WarnContext(ctx, "cancelling the children of cancelled tasks failed", "error", err)
		}
	}
	e.log.InfoContext(ctx, "bulk batch", "action", string(req.Action), "actor", req.Actor,
		"changed", len(out.Changed), "skipped", len(out.Skipped))
	return nil
}
