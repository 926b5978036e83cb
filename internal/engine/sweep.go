package engine

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/service"
	"github.com/taskerhq/tasker/internal/store"
)

// SweepReport says what one sweep moved on.
type SweepReport struct {
	Tasks       int // tasks evaluated (due retries, ready steps, finalisation)
	TimedOut    int // attempts past their deadline, failed as retryable
	Waits       int // due waits moved on: timers completed, callbacks timed out
	Interrupted int // attempts of dead local instances, failed as retryable
	Scheduled   int // tasks started by schedules (FireSchedules)
	Pruned      int // finished tasks past the retention deleted
	Webhooks    WebhookReport
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
	// Due waits beyond the reach of a delayed wake-up (or whose wake-up
	// was lost), soonest first.
	waited, err := e.fireWaits(ctx, nil, sweepLimit)
	if err != nil {
		return SweepReport{}, err
	}
	for _, id := range waited {
		set[id] = struct{}{}
	}
	// Ended children whose parent step still waits (a settle lost to a
	// crash): settled here (docs/architecture.md, "Child workflows").
	ended, err := e.store.EndedChildren(ctx, sweepLimit)
	if err != nil {
		return SweepReport{}, err
	}
	if err := e.settleChildren(ctx, ended); err != nil {
		return SweepReport{}, err
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
	report := SweepReport{Tasks: len(set), TimedOut: len(expired), Interrupted: len(interrupted), Waits: len(waited)}
	if err := e.pass(ctx, keys(set), results); err != nil {
		return report, err
	}
	// Retention after the pass, so live work never waits on a prune; a
	// failed prune (say, an unreachable export bucket) is logged and tried
	// again by the next sweep, and never stops the sweep's own work.
	if n, err := e.pruneOnce(ctx, now); err != nil {
		e.log.WarnContext(ctx, "retention prune failed", "error", err)
	} else {
		report.Pruned = n
	}
	// Full token buckets are dropped (a missing one is full); a failure
	// only leaves them for the next sweep.
	if _, err := e.store.PruneRateBuckets(ctx, now, sweepLimit); err != nil {
		e.log.WarnContext(ctx, "rate bucket prune failed", "error", err)
	}
	// Webhook deliveries ride on the sweep; a failure to reach the outbox
	// is logged, and the next sweep tries again.
	if wr, err := e.DeliverWebhooks(ctx); err != nil {
		e.log.WarnContext(ctx, "webhook deliveries", "error", err)
	} else {
		report.Webhooks = wr
	}
	// Schedules fire from the sweep, on AWS (every minute) and locally
	// alike (docs/control-flow.md, "Schedules"). A schedule that cannot
	// start its task stays due; the rest of the sweep is done.
	report.Scheduled, err = e.FireSchedules(ctx)
	if report.Tasks > 0 || report.Scheduled > 0 {
		e.pub.Publish(ctx, []Event{{Name: SweepCompleted, Time: now,
			Data: mustJSON(map[string]int{"tasks": report.Tasks, "timed_out": report.TimedOut, "interrupted": report.Interrupted,
				"waits": report.Waits, "scheduled": report.Scheduled})}})
	}
	if err != nil {
		return report, err
	}
	return report, nil
}

// Heartbeat records this instance as alive.
func (e *Engine) Heartbeat(ctx context.Context) error {
	now := e.clock.Now()
	return e.store.Heartbeat(ctx, e.cfg.InstanceID, e.cfg.Local, now, now.Add(-24*time.Hour))
}

// Sweeper is the service that heartbeats and sweeps every interval in
// local mode; on AWS the EventBridge schedule calls Sweep instead
// (docs/architecture.md, "Sweep" and "Services").
type Sweeper struct {
	service.Base
	eng      sweeper
	interval time.Duration
	log      *slog.Logger
}

// sweeper is what the Sweeper runs (an *Engine; tests fake it).
type sweeper interface {
	Heartbeat(ctx context.Context) error
	Sweep(ctx context.Context) (SweepReport, error)
}

var _ service.Service = (*Sweeper)(nil)

// NewSweeper returns the sweeper of e, sweeping every interval (default
// 2 s). It starts nothing.
func NewSweeper(e *Engine, interval time.Duration) *Sweeper {
	return newSweeper(e, interval, e.log)
}

func newSweeper(e sweeper, interval time.Duration, log *slog.Logger) *Sweeper {
	if interval <= 0 {
		interval = 2 * time.Second
	}
	return &Sweeper{eng: e, interval: interval, log: log}
}

// Start starts the loop: a heartbeat and a sweep at once, then every
// interval, until Stop or until ctx ends. A failed heartbeat or sweep is
// logged and tried again at the next tick: an unreachable database at
// start-up is an outage to ride out, not a reason to stop sweeping.
func (s *Sweeper) Start(ctx context.Context) error {
	ctx, ok, started, stopped := s.StartInit(ctx)
	if !ok {
		return nil
	}
	go func() {
		defer stopped()
		started()
		t := time.NewTicker(s.interval)
		defer t.Stop()
		for {
			if err := s.eng.Heartbeat(ctx); err != nil && ctx.Err() == nil {
				s.log.WarnContext(ctx, "heartbeat failed", "error", err)
			}
			if _, err := s.eng.Sweep(ctx); err != nil && ctx.Err() == nil {
				s.log.WarnContext(ctx, "sweep failed", "error", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return nil
}
