package engine

import (
	"context"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskerhq/tasker/internal/telemetry"
)

// TracerName names the engine's tracer.
const TracerName = "github.com/taskerhq/tasker/internal/engine"

// Span names and attribute keys (docs/observability.md, "Traces"). A task's trace is rooted at the
// span that created it (usually the API request): task.create, then one
// task.evaluate per scheduler pass that changed the task, each with one
// step.dispatch per attempt it dispatched, whose context travels in the
// payload (tasker.traceparent) to the handler's step.execute span; for a
// tasker.workflow step, to the child task's task.create span, so the child
// task's spans join the parent's trace.
// scheduler.batch and scheduler.sweep spans stand alone and are linked
// from the task.evaluate spans they caused.
const (
	SpanTaskCreate     = "task.create"
	SpanTaskEvaluate   = "task.evaluate"
	SpanStepDispatch   = "step.dispatch"
	SpanSchedulerBatch = "scheduler.batch"
	SpanSchedulerSweep = "scheduler.sweep"

	AttrTaskID        = attribute.Key("tasker.task_id")
	AttrNamespace     = attribute.Key("tasker.namespace")
	AttrWorkflow      = attribute.Key("tasker.workflow")
	AttrCorrelationID = attribute.Key("tasker.correlation_id")
	AttrStep          = attribute.Key("tasker.step")
	AttrStepID        = attribute.Key("tasker.step_id")
	AttrAttempt       = attribute.Key("tasker.attempt")
	AttrHandler       = attribute.Key("tasker.handler")
	AttrChildTaskID   = attribute.Key("tasker.child_task_id")
	AttrMessages      = attribute.Key("messaging.batch.message_count")
)

// taskSpans holds the task.evaluate span of each task a pass changed; nil
// when tracing is off or no task has a stored trace context.
type taskSpans map[uuid.UUID]*taskSpan

type taskSpan struct {
	ctx  context.Context
	span trace.Span
}

func (ts taskSpans) ctx(id uuid.UUID) (context.Context, bool) {
	if s, ok := ts[id]; ok {
		return s.ctx, true
	}
	return nil, false
}

// startTaskSpan opens the task.evaluate span of a task under its stored
// trace context, linked to the scheduler span in ctx; once per task.
func (e *Engine) startTaskSpan(ts *taskSpans, ctx context.Context, start time.Time, id uuid.UUID, traceParent, correlationID string) {
	if traceParent == "" {
		return
	}
	if _, ok := (*ts)[id]; ok {
		return
	}
	if *ts == nil {
		*ts = taskSpans{}
	}
	parent := telemetry.WithTraceParent(ctx, traceParent)
	opts := []trace.SpanStartOption{trace.WithTimestamp(start), trace.WithAttributes(AttrTaskID.String(id.String()))}
	if correlationID != "" {
		opts = append(opts, trace.WithAttributes(AttrCorrelationID.String(correlationID)))
	}
	if l := trace.LinkFromContext(ctx); l.SpanContext.IsValid() {
		opts = append(opts, trace.WithLinks(l))
	}
	sctx, span := e.tracer.Start(parent, SpanTaskEvaluate, opts...)
	(*ts)[id] = &taskSpan{ctx: sctx, span: span}
}

func (ts taskSpans) end() {
	for _, s := range ts {
		s.span.End()
	}
}

// annotate records lifecycle events as span events on their task's span.
func (ts taskSpans) annotate(events []Event) {
	if len(ts) == 0 {
		return
	}
	for _, ev := range events {
		if s, ok := ts[ev.TaskID]; ok {
			addSpanEvent(s.span, ev, time.Now())
		}
	}
}

func addSpanEvent(span trace.Span, ev Event, at time.Time) {
	if !span.IsRecording() {
		return
	}
	attrs := make([]attribute.KeyValue, 0, 6)
	if ev.Step != "" {
		attrs = append(attrs, AttrStep.String(ev.Step), AttrAttempt.Int(ev.Attempt))
	}
	if ev.From != "" {
		attrs = append(attrs, attribute.String("tasker.from", ev.From))
	}
	if ev.To != "" {
		attrs = append(attrs, attribute.String("tasker.to", ev.To))
	}
	if ev.Reason != "" {
		attrs = append(attrs, attribute.String("tasker.reason", ev.Reason))
	}
	span.AddEvent(string(ev.Name), trace.WithTimestamp(at), trace.WithAttributes(attrs...))
}
