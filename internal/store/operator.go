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

// TaskHeader identifies a task for events.
type TaskHeader struct {
	ID            uuid.UUID
	Status        domain.TaskStatus
	Namespace     string
	Workflow      string
	CorrelationID string
}

// StepChange is a step state change made by an operator action.
type StepChange struct {
	StepID  uuid.UUID
	Step    string
	Attempt int
	From    domain.StepState
	To      domain.StepState
}

// OperatorResult is what an operator action changed.
type OperatorResult struct {
	Task  TaskHeader
	From  domain.TaskStatus // task status before
	Steps []StepChange
}

func (s *Store) inTaskTx(ctx context.Context, id uuid.UUID, fn func(tx pgx.Tx, h *TaskHeader) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := dbq.IndexPlans(ctx, tx); err != nil {
			return err
		}
		r, err := dbq.LockTask(ctx, tx, id)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("task %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		h := TaskHeader{ID: id, Status: domain.TaskStatus(r.Status), Namespace: r.Namespace, Workflow: r.Name, CorrelationID: r.CorrelationID}
		return fn(tx, &h)
	})
}

func setTaskStatus(ctx context.Context, tx pgx.Tx, id uuid.UUID, status domain.TaskStatus, now time.Time, reason, actor string) error {
	return dbq.SetTaskStatus(ctx, tx, dbgen.SetTaskStatusParams{TaskID: id, Status: string(status), Now: now, Reason: reason, Actor: actor})
}

// CancelTask cancels a live task and its unfinished steps. Results of
// in-flight attempts arriving later match no in-progress step and are ignored.
func (s *Store) CancelTask(ctx context.Context, id uuid.UUID, now time.Time, actor, reason string) (OperatorResult, error) {
	var res OperatorResult
	if reason == "" {
		reason = "cancelled"
	}
	err := s.inTaskTx(ctx, id, func(tx pgx.Tx, h *TaskHeader) error {
		res.Task, res.From = *h, h.Status
		if !h.Status.CanTransition(domain.TaskCancelled) {
			return fmt.Errorf("task %s is %s and cannot be cancelled: %w", id, h.Status, ErrConflict)
		}
		r, err := cancelLocked(ctx, tx, h, now, actor, reason)
		if err == nil {
			res = *r
		}
		return err
	})
	if err != nil {
		return OperatorResult{}, fmt.Errorf("cancel task: %w", err)
	}
	return res, nil
}

// RetryTask moves a task in error back to in_progress and its failed steps
// back to pending with a fresh attempt budget; completed steps are kept.
func (s *Store) RetryTask(ctx context.Context, id uuid.UUID, now time.Time, actor, reason string) (OperatorResult, error) {
	var res OperatorResult
	if reason == "" {
		reason = "operator retry"
	}
	err := s.inTaskTx(ctx, id, func(tx pgx.Tx, h *TaskHeader) error {
		res.Task, res.From = *h, h.Status
		if h.Status != domain.TaskError {
			return fmt.Errorf("task %s is %s; only a task in error can be retried: %w", id, h.Status, ErrConflict)
		}
		r, err := retryLocked(ctx, tx, h, now, actor, reason)
		if err == nil {
			res = *r
		}
		return err
	})
	if err != nil {
		return OperatorResult{}, fmt.Errorf("retry task: %w", err)
	}
	return res, nil
}

// ResolveStep marks a failed step resolved by an operator, optionally with a
// result its dependents receive. A task in error goes back to in_progress so
// the dependents can run.
func (s *Store) ResolveStep(ctx context.Context, id uuid.UUID, step string, result json.RawMessage, now time.Time, actor, reason string) (OperatorResult, error) {
	var res OperatorResult
	if reason == "" {
		reason = "resolved by operator"
	}
	if len(result) == 0 {
		result = nil // NULL: keep the step's result
	}
	err := s.inTaskTx(ctx, id, func(tx pgx.Tx, h *TaskHeader) error {
		res.Task, res.From = *h, h.Status
		if h.Status != domain.TaskInProgress && h.Status != domain.TaskError && h.Status != domain.TaskPending {
			return fmt.Errorf("task %s is %s: %w", id, h.Status, ErrConflict)
		}
		r, err := dbq.ResolveStep(ctx, tx, dbgen.ResolveStepParams{
			TaskID: id, Step: step, Result: result, Now: now, Reason: reason, Actor: actor,
		})
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("step %q of task %s: %w", step, id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if !r.Resolved {
			return fmt.Errorf("step %q is %s; only a step in error can be resolved: %w", step, r.State, ErrConflict)
		}
		res.Steps = []StepChange{{StepID: r.ID, Step: step, Attempt: int(r.Attempts), From: domain.StepError, To: domain.StepResolvedManually}}
		reset, err := resetSkipped(ctx, tx, id, []uuid.UUID{r.ID}, now, "step "+step+" resolved", actor)
		if err != nil {
			return err
		}
		res.Steps = append(res.Steps, reset...)
		if h.Status == domain.TaskError {
			res.Task.Status = domain.TaskInProgress
			return setTaskStatus(ctx, tx, id, domain.TaskInProgress, now, "step "+step+" resolved", actor)
		}
		return nil
	})
	if err != nil {
		return OperatorResult{}, fmt.Errorf("resolve step: %w", err)
	}
	return res, nil
}

// cancelLocked cancels the task h, locked by the caller and cancellable:
// its unfinished steps, then the task. Shared by CancelTask and CancelTasks.
func cancelLocked(ctx context.Context, tx pgx.Tx, h *TaskHeader, now time.Time, actor, reason string) (*OperatorResult, error) {
	res := &OperatorResult{Task: *h, From: h.Status}
	rows, err := dbq.CancelSteps(ctx, tx, dbgen.CancelStepsParams{TaskID: h.ID, Now: now, Reason: reason, Actor: actor})
	if err != nil {
		return nil, err
	}
	res.Steps = make([]StepChange, len(rows))
	for i, r := range rows {
		res.Steps[i] = StepChange{StepID: r.ID, Step: r.Name, Attempt: int(r.Attempts), From: domain.StepState(r.FromState), To: domain.StepCancelled}
	}
	res.Task.Status = domain.TaskCancelled
	return res, setTaskStatus(ctx, tx, h.ID, domain.TaskCancelled, now, reason, actor)
}

// retryLocked retries the task h, locked by the caller and in error. Shared
// by RetryTask and RetryTasks.
func retryLocked(ctx context.Context, tx pgx.Tx, h *TaskHeader, now time.Time, actor, reason string) (*OperatorResult, error) {
	res := &OperatorResult{Task: *h, From: h.Status}
	rows, err := dbq.RetryFailedSteps(ctx, tx, dbgen.RetryFailedStepsParams{TaskID: h.ID, Now: now, Reason: reason, Actor: actor})
	if err != nil {
		return nil, err
	}
	res.Steps = make([]StepChange, len(rows))
	roots := make([]uuid.UUID, len(rows))
	for i, r := range rows {
		res.Steps[i] = StepChange{StepID: r.ID, Step: r.Name, Attempt: int(r.Attempts), From: domain.StepError, To: domain.StepPending}
		roots[i] = r.ID
	}
	reset, err := resetSkipped(ctx, tx, h.ID, roots, now, reason, actor)
	if err != nil {
		return nil, err
	}
	res.Steps = append(res.Steps, reset...)
	res.Task.Status = domain.TaskInProgress
	return res, setTaskStatus(ctx, tx, h.ID, domain.TaskInProgress, now, reason, actor)
}

// resetSkipped puts the steps skipped below roots (through skipped steps
// only) back to pending: they were skipped on their parents' old outcome,
// and the next scheduler pass decides them again.
func resetSkipped(ctx context.Context, tx pgx.Tx, task uuid.UUID, roots []uuid.UUID, now time.Time, reason, actor string) ([]StepChange, error) {
	if len(roots) == 0 {
		return nil, nil
	}
	rows, err := dbq.ResetSkippedDescendants(ctx, tx, dbgen.ResetSkippedDescendantsParams{
		Roots: roots, TaskID: task, Now: now, Reason: reason, Actor: actor,
	})
	if err != nil {
		return nil, err
	}
	out := make([]StepChange, len(rows))
	for i, r := range rows {
		out[i] = StepChange{StepID: r.ID, Step: r.Name, Attempt: int(r.Attempts), From: domain.StepSkipped, To: domain.StepPending}
	}
	return out, nil
}
