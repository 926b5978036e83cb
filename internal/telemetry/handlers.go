package telemetry

import (
	"context"
	"time"
)

// Handler metrics, recorded by HandlerMetrics.
const (
	MetricExecutions = "tasker_handler_executions_total"
	MetricDuration   = "tasker_handler_duration_seconds"
)

// HandlerMetrics counts step handler executions in a registry: it is the
// Observer the handler SDK reports to (sdk.WithObserver), recording
// MetricExecutions by handler and outcome and MetricDuration by handler.
type HandlerMetrics struct {
	executions *Counter
	duration   *Histogram
}

// NewHandlerMetrics registers the handler metrics in reg.
func NewHandlerMetrics(reg *Registry) *HandlerMetrics {
	return &HandlerMetrics{
		executions: reg.NewCounter(MetricExecutions, "Step handler executions by outcome.", "handler", "outcome"),
		duration:   reg.NewHistogram(MetricDuration, "Step handler execution time.", "Seconds", nil, "handler"),
	}
}

// ObserveExecution records one execution.
func (m *HandlerMetrics) ObserveExecution(_ context.Context, handler, outcome string, d time.Duration) {
	m.duration.Observe(d.Seconds(), handler)
	m.executions.Inc(handler, outcome)
}
