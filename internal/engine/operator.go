package engine

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskerhq/tasker/internal/domain"
	"github.com/taskerhq/tasker/internal/store"
)

// CancelTask cancels a task: no step of it is dispatched again, and results
// of attempts in flight are ignored when they arrive. Errors: ErrNotFound,
// ErrConflict (already finished).
func (e *Engine) CancelTask(ctx context.Context, id uuid.UUID, actor, reason string) error {
	now := e.clock.Now()
	res, err := e.store.CancelTask(ctx, id, now, actor, reason)
	if err != nil {
		return fromStore(err)
	}
	e.publishOperator(ctx, now, res, TaskCancelled, StepCancelled, reason)
	e.wakeFreed(ctx, now, []store.OperatorResult{res})
	// Cancelling a task cancels its children (docs/architecture.md, "Child
	// workflows"); a failure leaves them to run to their end, which settles
	// nothing since the parent step is cancelled.
	if err := e.cancelChildren(ctx, []uuid.UUID{id}, actor, reason); err != nil {
		e.log.WarnContext(ctx, "cancelling the children of a cancelled task failed", "task_id", id, "error", err)
	}
	return nil
}

// RetryTask re-runs the failed steps of a task in error; completed steps are
// kept and their results reused. Errors: ErrNotFound, ErrConflict (the task
// is not in error).
func (e *Engine) RetryTask(ctx context.Context, id uuid.UUID, actor, reason string) error {
	now := e.clock.Now()
	res, err := e.store.RetryTask(ctx, id, now, actor, reason)
	if err != nil {
		return fromStore(err)
	}
	e.publishOperator(ctx, now, res, TaskRetryRequested, StepRetryRequested, reason)
	e.wake(ctx, map[uuid.UUID]time.Duration{id: 0}, nil)
	return nil
}

// ResolveStep marks a failed step resolved with an optional result, so its
// dependents can proceed. Errors: ErrNotFound, ErrConflict (the step is not
// in error, or its task is finished).
func (e *Engine) ResolveStep(ctx context.Context, id uuid.UUID, step string, result json.RawMessage, actor, reason string) error {
	now := e.clock.Now()
	res, err := e.store.ResolveStep(ctx, id, step, result, now, actor, reason)
	if err != nil {
		return fromStore(err)
	}
	e.publishOperator(ctx, now, res, "", StepResolved, reason)
	e.wake(ctx, map[uuid.UUID]time.Duration{id: 0}, nil)
	return nil
}

func (e *Engine) publishOperator(ctx context.Context, now time.Time, res store.OperatorResult, taskEvent, stepEvent EventName, reason string) {
	base := Event{Time: now, TaskID: res.Task.ID, Namespace: res.Task.Namespace, Workflow: res.Task.Workflow,
		CorrelationID: res.Task.CorrelationID, Reason: reason}
	events := make([]Event, 0, len(res.Steps)+1)
	if taskEvent != "" {
		ev := base
		ev.Name, ev.From, ev.To = taskEvent, string(res.From), string(res.Task.Status)
		events = append(events, ev)
	}
	for _, s := range res.Steps {
		ev := base
		name := stepEvent
		if s.From == domain.StepSkipped {
			// Skipped below a retried or resolved step: to be decided again.
			name = StepRetryRequested
		}
		ev.Name, ev.StepID, ev.Step, ev.Attempt, ev.From, ev.To = name, s.StepID, s.Step, s.Attempt, string(s.From), string(s.To)
		events = append(events, ev)
	}
	e.pub.Publish(ctx, events)
	// The operator's request span (if any) records what it changed.
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		for _, ev := range events {
			addSpanEvent(span, ev, time.Now())
		}
	}
}
