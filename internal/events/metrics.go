package events

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/telemetry"
)

// Metric names (Prometheus; the same names in EMF).
const (
	MetricTasksCreated     = "tasker_tasks_created_total"
	MetricTasksCompleted   = "tasker_tasks_completed_total"
	MetricTasksFailed      = "tasker_tasks_failed_total"
	MetricStepAttempts     = "tasker_step_attempts_total"
	MetricStepDuration     = "tasker_step_duration_seconds"
	MetricDispatchLatency  = "tasker_dispatch_latency_seconds"
	MetricDispatchFailures = "tasker_dispatch_failures_total"
	MetricQueueLag         = "tasker_queue_lag_seconds"
	MetricBatchDuration    = "tasker_scheduler_batch_duration_seconds"
	MetricStepsInFlight    = "tasker_steps_in_flight"
	MetricStepsSkipped     = "tasker_steps_skipped_total"
	MetricSchedulesFired   = "tasker_schedules_fired_total"
)

// maxTracked bounds the attempts Metrics remembers between dispatch and
// outcome (for step duration and in-flight steps).
const maxTracked = 100_000

// Metrics is a publisher that turns lifecycle events into metrics:
//
//   - tasks created, completed and failed by namespace and workflow;
//   - step attempts by handler and outcome (completed, failed,
//     retry_scheduled, retries_exhausted), and their duration from
//     dispatch to result, by handler;
//   - dispatch latency (how long the invoker took to accept an attempt)
//     and dispatch failures, by handler;
//   - queue lag (age of the oldest message of each scheduler batch) and
//     scheduler batch duration;
//   - steps in flight (dispatched without a result yet);
//   - steps skipped, by cause: condition (its when was false) or
//     trigger_rule (its trigger rule cannot hold).
//
// Durations and in-flight steps are measured between the events one
// process sees: exact in local mode; on AWS, where results may reach
// another scheduler instance, use the EMF counts and the step duration the
// handler SDK reports instead.
type Metrics struct {
	created, completed, failed *telemetry.Counter
	attempts, dispatchFailures *telemetry.Counter
	skipped                    *telemetry.Counter
	fired                      *telemetry.Counter
	duration, latency          *telemetry.Histogram
	queueLag, batch            *telemetry.Histogram
	inFlight                   *telemetry.Gauge

	mu      sync.Mutex
	started map[attemptKey]dispatched
}

type attemptKey struct {
	step    uuid.UUID
	attempt int
}

type dispatched struct {
	handler string
	at      time.Time
}

// NewMetrics registers Tasker's metrics in reg and returns the publisher.
func NewMetrics(reg *telemetry.Registry) *Metrics {
	return &Metrics{
		created:          reg.NewCounter(MetricTasksCreated, "Tasks created.", "namespace", "workflow"),
		completed:        reg.NewCounter(MetricTasksCompleted, "Tasks completed (including resolved by an operator).", "namespace", "workflow"),
		failed:           reg.NewCounter(MetricTasksFailed, "Tasks that failed.", "namespace", "workflow"),
		attempts:         reg.NewCounter(MetricStepAttempts, "Step attempts by outcome.", "handler", "outcome"),
		dispatchFailures: reg.NewCounter(MetricDispatchFailures, "Step attempts the invoker refused.", "handler"),
		duration:         reg.NewHistogram(MetricStepDuration, "Step attempt duration from dispatch to result.", "Seconds", nil, "handler"),
		latency: reg.NewHistogram(MetricDispatchLatency, "Time the invoker took to accept a step attempt.", "Seconds",
			[]float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}, "handler"),
		queueLag: reg.NewHistogram(MetricQueueLag, "Age of the oldest message of each scheduler batch.", "Seconds", nil),
		batch:    reg.NewHistogram(MetricBatchDuration, "Scheduler pass duration.", "Seconds", nil),
		inFlight: reg.NewGauge(MetricStepsInFlight, "Step attempts dispatched and not yet finished."),
		skipped:  reg.NewCounter(MetricStepsSkipped, "Steps skipped without running, by cause (condition or trigger_rule).", "cause"),
		fired:    reg.NewCounter(MetricSchedulesFired, "Schedule fire times that started a task.", "namespace", "workflow"),
		started:  map[attemptKey]dispatched{},
	}
}

// Publish implements engine.Publisher.
func (m *Metrics) Publish(_ context.Context, evs []engine.Event) {
	for _, e := range evs {
		switch e.Name {
		case engine.TaskCreated:
			m.created.Inc(e.Namespace, e.Workflow)
		case engine.TaskCompleted, engine.TaskResolved:
			m.completed.Inc(e.Namespace, e.Workflow)
		case engine.TaskFailed:
			m.failed.Inc(e.Namespace, e.Workflow)
		case engine.StepDispatched:
			m.latency.Observe(e.DurationMS/1000, e.Handler)
			m.mu.Lock()
			if len(m.started) < maxTracked {
				k := attemptKey{e.StepID, e.Attempt}
				if _, dup := m.started[k]; !dup {
					m.started[k] = dispatched{handler: e.Handler, at: e.Time}
					m.inFlight.Add(1)
				}
			}
			m.mu.Unlock()
		case engine.StepDispatchFailed:
			m.dispatchFailures.Inc(e.Handler)
		case engine.StepCompleted, engine.StepFailed, engine.StepRetryScheduled, engine.StepRetriesExhausted:
			d, ok := m.finish(e)
			handler := "unknown"
			if ok {
				handler = d.handler
				m.duration.Observe(e.Time.Sub(d.at).Seconds(), handler)
			}
			m.attempts.Inc(handler, outcome(e.Name))
		case engine.StepCancelled, engine.StepWaiting:
			// A waiting step is no longer in flight.
			m.finish(e)
		case engine.StepSkipped:
			// A condition is evaluated on a claim (from in_progress); a
			// trigger rule skips a pending step.
			cause := "trigger_rule"
			if e.From == "in_progress" {
				cause = "condition"
			}
			m.skipped.Inc(cause)
		case engine.ScheduleFired:
			var data engine.ScheduleFiredData
			if json.Unmarshal(e.Data, &data) == nil && data.Created {
				m.fired.Inc(e.Namespace, e.Workflow)
			}
		case engine.BatchProcessed:
			m.batch.Observe(e.DurationMS / 1000)
			var data engine.BatchData
			if json.Unmarshal(e.Data, &data) == nil && data.QueueLagMS > 0 {
				m.queueLag.Observe(data.QueueLagMS / 1000)
			}
		}
	}
}

func (m *Metrics) finish(e engine.Event) (dispatched, bool) {
	k := attemptKey{e.StepID, e.Attempt}
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.started[k]
	if ok {
		delete(m.started, k)
		m.inFlight.Add(-1)
	}
	return d, ok
}

func outcome(n engine.EventName) string {
	switch n {
	case engine.StepCompleted:
		return "completed"
	case engine.StepFailed:
		return "failed"
	case engine.StepRetryScheduled:
		return "retry_scheduled"
	default:
		return "retries_exhausted"
	}
}
