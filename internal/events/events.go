// Package events publishes the engine's lifecycle events (docs/observability.md,
// "Lifecycle events") to
// structured logs (Log), an EventBridge bus (EventBridge) and metrics
// (Metrics); Multi fans out to several. The catalogue of event names is
// engine.Catalogue; Catalogue here documents the payload fields.
//
// Every publisher follows the engine.Publisher contract: it never blocks
// for long and never fails the state change the event describes.
//
// Import rules: events imports engine (for the event type), telemetry and
// the AWS SDK; devserver, lambdaapp and the binaries wire it.
package events

import (
	"context"
	"log/slog"

	"github.com/taskerhq/tasker/internal/engine"
)

// Fields documents the JSON fields of an event (the EventBridge detail and
// the log line's attributes), all omitted when empty.
var Fields = []struct{ Name, Description string }{
	{"name", "the event name from engine.Catalogue, e.g. step.completed (the EventBridge detail-type)"},
	{"time", "when the state change committed (RFC 3339)"},
	{"task_id", "the task's id"},
	{"namespace", "the workflow's namespace (task events and step claims/dispatches)"},
	{"workflow", "the workflow name (task events and step claims/dispatches)"},
	{"correlation_id", "the task's correlation id: the creating request's X-Correlation-ID, or generated"},
	{"step", "the step name (step events)"},
	{"step_id", "the step's id (step events)"},
	{"attempt", "the attempt number, from 1 (step events)"},
	{"handler", "the step's handler (step.claimed, step.dispatched, step.dispatch_failed)"},
	{"from", "the state before the change"},
	{"to", "the state after the change"},
	{"reason", "why: the error message of a failure, an operator's reason, …"},
	{"duration_ms", "step.dispatched/dispatch_failed: how long the invoker took; scheduler.batch_processed: how long the pass took"},
	{"data", "event-specific extras: scheduler.batch_processed {messages, malformed, queue_lag_ms}; scheduler.sweep_completed {tasks, timed_out, interrupted}; a custom event's data"},
	{"custom", "true on a custom event a handler published"},
}

// Multi publishes to each publisher in turn.
type Multi []engine.Publisher

// Publish implements engine.Publisher.
func (m Multi) Publish(ctx context.Context, evs []engine.Event) {
	for _, p := range m {
		if p != nil {
			p.Publish(ctx, evs)
		}
	}
}

// Log writes lifecycle events as structured log lines ("lifecycle event"):
// task events at info, step and scheduler events at debug. A line about a
// task carries correlation_id and task_id; about a step, also step and
// attempt.
type Log struct{ Logger *slog.Logger }

// Publish implements engine.Publisher.
func (p Log) Publish(ctx context.Context, evs []engine.Event) {
	if p.Logger == nil {
		return
	}
	for _, e := range evs {
		level := slog.LevelDebug
		if e.Step == "" && e.TaskID != [16]byte{} {
			level = slog.LevelInfo
		}
		if !p.Logger.Enabled(ctx, level) {
			continue
		}
		p.Logger.LogAttrs(ctx, level, "lifecycle event", Attrs(e)...)
	}
}

// Attrs returns the log attributes of an event.
func Attrs(e engine.Event) []slog.Attr {
	attrs := make([]slog.Attr, 0, 12)
	attrs = append(attrs, slog.String("event", string(e.Name)))
	if e.CorrelationID != "" {
		attrs = append(attrs, slog.String("correlation_id", e.CorrelationID))
	}
	if e.TaskID != [16]byte{} {
		attrs = append(attrs, slog.String("task_id", e.TaskID.String()))
	}
	if e.Step != "" {
		attrs = append(attrs, slog.String("step", e.Step), slog.Int("attempt", e.Attempt))
	}
	if e.Workflow != "" {
		attrs = append(attrs, slog.String("namespace", e.Namespace), slog.String("workflow", e.Workflow))
	}
	if e.Handler != "" {
		attrs = append(attrs, slog.String("handler", e.Handler))
	}
	if e.To != "" {
		attrs = append(attrs, slog.String("from", e.From), slog.String("to", e.To))
	}
	if e.Reason != "" {
		attrs = append(attrs, slog.String("reason", e.Reason))
	}
	if e.DurationMS > 0 {
		attrs = append(attrs, slog.Float64("duration_ms", e.DurationMS))
	}
	if len(e.Data) > 0 {
		attrs = append(attrs, slog.Any("data", e.Data))
	}
	if e.Custom {
		attrs = append(attrs, slog.Bool("custom", true))
	}
	return attrs
}
