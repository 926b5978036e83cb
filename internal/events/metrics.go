package events

import (
	"context"
	"encoding/json"
	"strings"
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
	MetricInFlightLimit    = "tasker_in_flight_limit"
	MetricInFlightReason   = "tasker_in_flight_limit_reason"
	MetricStepsSkipped     = "tasker_steps_skipped_total"
	MetricSchedulesFired   = "tasker_schedules_fired_total"
	MetricMapInstances     = "tasker_map_instances_total"
	MetricFlowControlHeld  = "tasker_flow_control_held_total"
)

// maxTracked bounds the attempts Metrics remembers between dispatch and
// outcome (for step duration and in-flight steps).
const maxTracked = 100_000

// Metrics is a publisher that turns lifecycle events into metrics:
//
//   - tasks created, completed and failed by namespace and workflow;
//   - step attempts by handler and outcome (completed, failed,
//     retry_scheduled, retries_exhausted), and their duration from
//     claim to result (never negative), by handler;
//   - dispatch latency (how long the invoker took to accept an attempt)
//     and dispatch failures, by handler;
//   - queue lag (age of the oldest message of each scheduler batch) and
//     scheduler batch duration;
//   - steps in flight (claimed without a result yet);
//   - steps skipped, by cause: condition (its when was false) or
//     trigger_rule (its trigger rule cannot hold);
//   - map instances finished, by outcome (completed, failed, cancelled;
//     docs/control-flow.md, "Map"): their attempts also count above,
//     under the map step's handler;
//   - ready steps a scheduler pass held back, by limit (rate_limit,
//     concurrency), once
//     per pass that held them (docs/control-flow.md, "Flow control");
//   - the adaptive in-flight limit and its reason.
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
	mapInstances               *telemetry.Counter
	held                       *telemetry.Counter
	duration, latency          *telemetry.Histogram
	queueLag, batch            *telemetry.Histogram
	inFlight                   *telemetry.Gauge
	limit, limitReason         *telemetry.Gauge

	mu      sync.Mutex
	started map[attemptKey]dispatched
	// done remembers attempts whose outcome came before their
	// step.dispatched event (a fast handler's result is recorded while
	// its siblings are still being dispatched), so the late event does
	// not count them in flight again.
	done map[attemptKey]struct{}
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
		duration:         reg.NewHistogram(MetricStepDuration, "Step attempt duration from claim to result.", "Seconds", nil, "handler"),
		latency: reg.NewHistogram(MetricDispatchLatency, "Time the invoker took to accept a step attempt.", "Seconds",
			[]float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}, "handler"),
		queueLag: reg.NewHistogram(MetricQueueLag, "Age of the oldest message of each scheduler batch.", "Seconds", nil),
		batch:    reg.NewHistogram(MetricBatchDuration, "Scheduler pass duration.", "Seconds", nil),
		inFlight: reg.NewGauge(MetricStepsInFlight, "Step attempts claimed and not yet finished."),
		skipped:  reg.NewCounter(MetricStepsSkipped, "Steps skipped without running, by cause (condition or trigger_rule).", "cause"),
		fired:    reg.NewCounter(MetricSchedulesFired, "Schedule fire times that started a task.", "namespace", "workflow"),
		mapInstances: reg.NewCounter(MetricMapInstances,
			"Map step instances finished, by outcome (completed, failed or cancelled).", "outcome"),
		held: reg.NewCounter(MetricFlowControlHeld,
			"Ready steps a scheduler pass held back under their flow control, by limit (rate_limit, concurrency).", "limit"),
		limit: reg.NewGauge(MetricInFlightLimit, "The adaptive in-flight limit of this instance."),
		limitReason: reg.NewGauge(MetricInFlightReason,
			"1 for the reason of the current in-flight limit (healthy, recovering, pressure), 0 for the others.", "reason"),
		started: map[attemptKey]dispatched{},
		done:    map[attemptKey]struct{}{},
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
		case engine.StepClaimed:
			// An attempt's time starts at its claim: the claim event is
			// published before the attempt is handed to the invoker, so
			// it always precedes the outcome, even when a sibling's
			// dispatch is still running when this attempt's result is
			// recorded (a dispatch event can come after the outcome).
			m.start(e)
		case engine.StepDispatched:
			m.latency.Observe(e.DurationMS/1000, e.Handler)
			m.start(e)
		case engine.StepDispatchFailed:
			m.dispatchFailures.Inc(e.Handler)
			// The claim was released; the attempt is claimed again later.
			m.finish(e, false)
		case engine.StepCompleted, engine.StepFailed, engine.StepRetryScheduled, engine.StepRetriesExhausted:
			d, ok := m.finish(e, true)
			handler := "unknown"
			if ok {
				handler = d.handler
				// Never negative: event times come from the clocks of
				// separate passes.
				m.duration.Observe(max(0, e.Time.Sub(d.at).Seconds()), handler)
			}
			m.attempts.Inc(handler, outcome(e.Name))
			if e.Name != engine.StepRetryScheduled && isMapInstance(e.Step) {
				o := "failed"
				if e.Name == engine.StepCompleted {
					o = "completed"
				}
				m.mapInstances.Inc(o)
			}
		case engine.StepCancelled, engine.StepWaiting:
			// A waiting step is no longer in flight.
			m.finish(e, true)
			if e.Name == engine.StepCancelled && isMapInstance(e.Step) {
				m.mapInstances.Inc("cancelled")
			}
		case engine.StepSkipped:
			// A condition is evaluated on a claim (from in_progress); a
			// trigger rule skips a pending step. A claimed step skipped is
			// no longer in flight.
			cause := "trigger_rule"
			if e.From == "in_progress" {
				cause = "condition"
				m.finish(e, true)
			}
			m.skipped.Inc(cause)
		case engine.ScheduleFired:
			var data engine.ScheduleFiredData
			if json.Unmarshal(e.Data, &data) == nil && data.Created {
				m.fired.Inc(e.Namespace, e.Workflow)
			}
		case engine.ConcurrencyChanged:
			var d struct {
				Limit  int    `json:"limit"`
				Reason string `json:"reason"`
			}
			if json.Unmarshal(e.Data, &d) == nil {
				m.limit.Set(float64(d.Limit))
				for _, r := range []string{engine.ReasonHealthy, engine.ReasonRecovering, engine.ReasonPressure} {
					v := 0.0
					if r == d.Reason {
						v = 1
					}
					m.limitReason.Set(v, r)
				}
			}
		case engine.StepsHeld:
			var data engine.HeldData
			if json.Unmarshal(e.Data, &data) == nil {
				if data.RateLimit > 0 {
					m.held.Add(float64(data.RateLimit), engine.HeldRateLimit)
				}
				if data.Concurrency > 0 {
					m.held.Add(float64(data.Concurrency), engine.HeldConcurrency)
				}
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

// start tracks an attempt from its first claim or dispatch event.
func (m *Metrics) start(e engine.Event) {
	k := attemptKey{e.StepID, e.Attempt}
	m.mu.Lock()
	defer m.mu.Unlock()
	if d, ok := m.started[k]; ok {
		if d.handler == "" {
			d.handler = e.Handler
			m.started[k] = d
		}
		return
	}
	if _, finished := m.done[k]; finished || len(m.started) >= maxTracked {
		return
	}
	m.started[k] = dispatched{handler: e.Handler, at: e.Time}
	m.inFlight.Add(1)
}

// finish stops tracking an attempt; final marks an outcome (not a
// released claim), remembered so a late dispatch event is ignored.
func (m *Metrics) finish(e engine.Event, final bool) (dispatched, bool) {
	k := attemptKey{e.StepID, e.Attempt}
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.started[k]
	if ok {
		delete(m.started, k)
		m.inFlight.Add(-1)
	}
	if final {
		if len(m.done) >= maxTracked {
			clear(m.done)
		}
		m.done[k] = struct{}{}
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

// isMapInstance reports whether step names an instance of a map step:
// "<step>[<index>]" (step names themselves cannot hold brackets).
func isMapInstance(step string) bool {
	base, idx, ok := strings.Cut(step, "[")
	if !ok || base == "" || len(idx) < 2 || !strings.HasSuffix(idx, "]") {
		return false
	}
	for _, c := range idx[:len(idx)-1] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
