package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/store/dbgen"
)

// ChildStart is one claimed tasker.workflow step and the child task the
// engine created for its attempt (docs/architecture.md, "Child workflows").
type ChildStart struct {
	StepID  uuid.UUID
	Attempt int
	ChildID uuid.UUID
}

// ParkChildren moves claimed tasker.workflow steps to waiting (wait_kind
// child) and links each child to its parent step and task
// (tasker_park_children); fenced on (step, attempt), so a stale or
// duplicate claim changes nothing. ended lists the children it linked that
// had already ended, whose parent steps no pass has settled.
func (s *Store) ParkChildren(ctx context.Context, now time.Time, actor string, cs []ChildStart) (parked []WaitChange, ended []uuid.UUID, err error) {
	ids := make([]uuid.UUID, len(cs))
	attempts := make([]int32, len(cs))
	children := make([]uuid.UUID, len(cs))
	for i, c := range cs {
		ids[i], attempts[i], children[i] = c.StepID, int32(c.Attempt), c.ChildID
	}
	rows, err := dbq.ParkChildren(ctx, s.pool, dbgen.ParkChildrenParams{Now: now, Actor: actor, StepIds: ids,
		Attempts: attempts, ChildIds: children})
	if err != nil {
		return nil, nil, fmt.Errorf("park children: %w", err)
	}
	for _, w := range waitChanges(rows) {
		if w.Kind == "child_ended" {
			ended = append(ended, w.TaskID)
			continue
		}
		parked = append(parked, w)
	}
	return parked, ended, nil
}

// SettleChildren completes or fails the parent steps still waiting on the
// ended tasks among taskIDs (tasker_settle_children), one call for all of
// them; tasks that are not such children are ignored.
func (s *Store) SettleChildren(ctx context.Context, now time.Time, actor string, taskIDs []uuid.UUID) ([]WaitChange, error) {
	rows, err := dbq.SettleChildren(ctx, s.pool, dbgen.SettleChildrenParams{Now: now, Actor: actor, TaskIds: taskIDs})
	if err != nil {
		return nil, fmt.Errorf("settle children: %w", err)
	}
	return waitChanges(rows), nil
}

// EndedChildren returns up to limit ended child tasks whose parent step
// still waits on them: the sweep's backstop for a lost settle.
func (s *Store) EndedChildren(ctx context.Context, limit int) ([]uuid.UUID, error) {
	ids, err := dbq.EndedChildren(ctx, s.pool, int32(limit))
	if err != nil {
		return nil, fmt.Errorf("ended children: %w", err)
	}
	return ids, nil
}

// LiveChildren returns the children of taskIDs that have not ended, for a
// cancel to cascade to.
func (s *Store) LiveChildren(ctx context.Context, taskIDs []uuid.UUID) ([]uuid.UUID, error) {
	ids, err := dbq.LiveChildren(ctx, s.pool, taskIDs)
	if err != nil {
		return nil, fmt.Errorf("live children: %w", err)
	}
	return ids, nil
}
