package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/store"
)

// SweepReport says what one sweep moved on.
type SweepReport struct {
	Tasks       int // tasks evaluated (due retries, ready steps, finalisation)
	TimedOut    int // attempts past their deadline, failed as retryable
	Interrupted int // attempts of dead local instances, failed as retryable
}

// sweepLimit bounds the work of one sweep; the next sweep takes the rest.
const sweepLimit = 1000

// Sweep finds work that no message will announce (docs/architecture.md,
// "Invariants" 2, "Sweep"): retries that
// are due, tasks with ready steps and no wake-up, attempts past their
// deadline, and attempts held by crashed local instances. It moves them on
// in one scheduler pass.
func (e *Engine) Sweep(ctx context.Context) (rep SweepReport, err error) {
	ctx, span := e.tracer.Start(ctx, SpanSchedulerSweep)
	defer func() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		} else if span.IsRecording() {
			span.SetAttributes(attribute.Int("tasker.sweep.tasks", rep.Tasks),
				attribute.Int("tasker.sweep.timed_out", rep.TimedOut), attribute.Int("tasker.sweep.interrupted", rep.Interrupted))
		}
		span.End()
	}()
	now := e.clock.Now()
	tasks, expired, interrupted, err := e.store.SweepScan(ctx, now, e.cfg.InstanceID, now.Add(-e.cfg.HeartbeatStale), sweepLimit)
	if err != nil {
		return SweepReport{}, err
	}
	set := map[uuid.UUID]struct{}{}
	for _, id := range tasks {
		set[id] = struct{}{}
	}
	var results []store.StepResult
	for _, o := range expired {
		set[o.TaskID] = struct{}{}
		results = append(results, failure(o.StepID, o.Attempt, &contract.HandlerError{
			Message: fmt.Sprintf("no result within the step's %d s timeout (plus %s grace)", o.TimeoutSeconds, e.cfg.DeadlineGrace),
			Code:    "timeout",
		}, reasonTimedOut))
	}
	for _, o := range interrupted {
		set[o.TaskID] = struct{}{}
		results = append(results, failure(o.StepID, o.Attempt, &contract.HandlerError{
			Message: fmt.Sprintf("interrupted: local instance %s stopped while the step ran", o.ClaimedBy),
			Code:    "interrupted",
		}, reasonInterrupted))
	}
	report := SweepReport{Tasks: len(set), TimedOut: len(expired), Interrupted: len(interrupted)}
	if err := e.pass(ctx, keys(set), results); err != nil {
		return report, err
	}
	if report.Tasks > 0 {
		e.pub.Publish(ctx, []Event{{Name: SweepCompleted, Time: now,
			Data: mustJSON(map[string]int{"tasks": report.Tasks, "timed_out": report.TimedOut, "interrupted": report.Interrupted})}})
	}
	return report, nil
}

// Heartbeat records this instance as alive.
func (e *Engine) Heartbeat(ctx context.Context) error {
	now := e.clock.Now()
	return e.store.Heartbeat(ctx, e.cfg.InstanceID, e.cfg.Local, now, now.Add(-24*time.Hour))
}

// Run heartbeats and sweeps every interval until ctx is done. Local mode
// runs it in-process; on AWS the EventBridge schedule calls Sweep instead.
func (e *Engine) Run(ctx context.Context, interval time.Duration) error {
	if err := e.Heartbeat(ctx); err != nil {
		return err
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := e.Sweep(ctx); err != nil && ctx.Err() == nil {
			e.log.WarnContext(ctx, "sweep failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := e.Heartbeat(ctx); err != nil && ctx.Err() == nil {
			e.log.WarnContext(ctx, "heartbeat failed", "error", err)
		}
	}
}
