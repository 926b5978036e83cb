package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// TaskHeader identifies a task for events.
type TaskHeader struct {
	ID            uuid.UUID
	Status        string
	Namespace     string
	Workflow      string
	CorrelationID string
}

// StepChange is a step state change made by an operator action.
type StepChange struct {
	StepID  uuid.UUID
	Step    string
	Attempt int
	From    string
	To      string
}

// OperatorResult is what an operator action changed.
type OperatorResult struct {
	Task  TaskHeader
	From  string // task status before
	Steps []StepChange
}

func (s *Store) inTaskTx(ctx context.Context, id uuid.UUID, fn func(tx pgx.Tx, h *TaskHeader) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		h := TaskHeader{ID: id}
		err := tx.QueryRow(ctx, s.q.get("lock_task"), id).Scan(&h.Status, &h.Namespace, &h.Workflow, &h.CorrelationID)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("task %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		return fn(tx, &h)
	})
}

func (s *Store) setTaskStatus(ctx context.Context, tx pgx.Tx, id uuid.UUID, status string, now time.Time, reason, actor string) error {
	_, err := tx.Exec(ctx, s.q.get("set_task_status"), id, status, now, reason, actor)
	return err
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
		if h.Status != "pending" && h.Status != "in_progress" && h.Status != "error" {
			return fmt.Errorf("task %s is %s and cannot be cancelled: %w", id, h.Status, ErrConflict)
		}
		rows, err := tx.Query(ctx, s.q.get("cancel_steps"), id, now, reason, actor)
		if err != nil {
			return err
		}
		res.Steps, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (StepChange, error) {
			c := StepChange{To: "cancelled"}
			return c, r.Scan(&c.StepID, &c.Step, &c.Attempt, &c.From)
		})
		if err != nil {
			return err
		}
		res.Task.Status = "cancelled"
		return s.setTaskStatus(ctx, tx, id, "cancelled", now, reason, actor)
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
		if h.Status != "error" {
			return fmt.Errorf("task %s is %s; only a task in error can be retried: %w", id, h.Status, ErrConflict)
		}
		rows, err := tx.Query(ctx, s.q.get("retry_failed_steps"), id, now, reason, actor)
		if err != nil {
			return err
		}
		res.Steps, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (StepChange, error) {
			c := StepChange{From: "error", To: "pending"}
			return c, r.Scan(&c.StepID, &c.Step, &c.Attempt)
		})
		if err != nil {
			return err
		}
		res.Task.Status = "in_progress"
		return s.setTaskStatus(ctx, tx, id, "in_progress", now, reason, actor)
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
	var resultArg any
	if len(result) > 0 {
		resultArg = result
	}
	err := s.inTaskTx(ctx, id, func(tx pgx.Tx, h *TaskHeader) error {
		res.Task, res.From = *h, h.Status
		if h.Status != "in_progress" && h.Status != "error" && h.Status != "pending" {
			return fmt.Errorf("task %s is %s: %w", id, h.Status, ErrConflict)
		}
		var c StepChange
		var changed bool
		err := tx.QueryRow(ctx, s.q.get("resolve_step"), id, step, resultArg, now, reason, actor).
			Scan(&c.StepID, &c.From, &c.Attempt, &changed)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("step %q of task %s: %w", step, id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if !changed {
			return fmt.Errorf("step %q is %s; only a step in error can be resolved: %w", step, c.From, ErrConflict)
		}
		c.Step, c.From, c.To = step, "error", "resolved_manually"
		res.Steps = []StepChange{c}
		if h.Status == "error" {
			res.Task.Status = "in_progress"
			return s.setTaskStatus(ctx, tx, id, "in_progress", now, "step "+step+" resolved", actor)
		}
		return nil
	})
	if err != nil {
		return OperatorResult{}, fmt.Errorf("resolve step: %w", err)
	}
	return res, nil
}
