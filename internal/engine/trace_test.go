package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/telemetry"
	"github.com/taskerhq/tasker/sdk"
)

const tracedYAML = `
namespace: test
name: traced
version: 1.0.0
steps:
  - {name: a, handler: test.step}
  - name: b
    handler: test.step
    depends_on: [a]
    retry: {max_attempts: 2, backoff_base_seconds: 1, max_backoff_seconds: 1, jitter: 0.1}
  - {name: c, handler: test.step, depends_on: [b]}
`

func attr(s tracetest.SpanStub, k attribute.Key) attribute.Value {
	for _, kv := range s.Attributes {
		if kv.Key == k {
			return kv.Value
		}
	}
	return attribute.Value{}
}

func hasEvent(s tracetest.SpanStub, name engine.EventName) bool {
	for _, e := range s.Events {
		if e.Name == string(name) {
			return true
		}
	}
	return false
}

// TestTraceFollowsTask runs a 3-step workflow (b fails once and is retried
// after a sweep) and checks that one trace, rooted at the creating request,
// holds task.create → task.evaluate → step.dispatch → step.execute.
func TestTraceFollowsTask(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := telemetry.NewTracerProvider(nil, nil, sdktrace.WithSyncer(exp))
	h := newHarness(t, engine.Config{TracerProvider: tp}, tracedYAML)

	reg := sdk.NewRegistry()
	if err := reg.Register("test.step", func(ctx context.Context, in sdk.Input) (any, error) {
		if in.Step() == "b" && in.Attempt() == 1 {
			return nil, errors.New("flaky")
		}
		return map[string]string{"step": in.Step()}, nil
	}); err != nil {
		t.Fatal(err)
	}
	run := func(p contract.Payload) outcome {
		body, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		resp := sdk.Run(context.Background(), reg, body, sdk.WithTracerProvider(tp), sdk.WithLogger(quietLog()))
		if he, ok := contract.AsHandlerError(resp); ok {
			return fail(he)
		}
		return ok(json.RawMessage(resp))
	}

	rootCtx, root := tp.Tracer("test").Start(context.Background(), "POST /v1/tasks", trace.WithSpanKind(trace.SpanKindServer))
	created, err := h.eng.CreateTask(rootCtx, engine.CreateRequest{Namespace: "test", Name: "traced", CorrelationID: "corr-1"})
	if err != nil {
		t.Fatal(err)
	}
	root.End()
	id := created.TaskID
	// The wake-up carries the trace across the queue.
	wake := h.queue.Peek()[0]
	if sc := telemetry.ExtractMessage(wake.Attributes); sc.TraceID() != root.SpanContext().TraceID() {
		t.Fatalf("wake-up attributes %v carry no trace context of the task", wake.Attributes)
	}

	ran := h.drain(run)
	for _, p := range ran {
		if p.Tasker.TraceParent == "" || p.Tasker.CorrelationID != "corr-1" {
			t.Fatalf("payload meta: %+v", p.Tasker)
		}
	}
	h.clock.Advance(10 * time.Second)
	if _, err := h.eng.Sweep(h.ctx); err != nil {
		t.Fatal(err)
	}
	h.drain(run)
	mustStatus(t, h, id, "complete")

	spans := exp.GetSpans()
	byID := map[trace.SpanID]tracetest.SpanStub{}
	count := map[string]int{}
	for _, s := range spans {
		byID[s.SpanContext.SpanID()] = s
		count[s.Name]++
	}
	traceID := root.SpanContext().TraceID()
	parentName := func(s tracetest.SpanStub) string { return byID[s.Parent.SpanID()].Name }
	var sawCompleted, sawRetry bool
	for _, s := range spans {
		switch s.Name {
		case engine.SpanSchedulerBatch, engine.SpanSchedulerSweep:
			continue // scheduler spans stand alone; task spans link to them
		case "POST /v1/tasks":
			continue
		}
		if s.SpanContext.TraceID() != traceID {
			t.Errorf("span %s is in trace %s, want the task's trace %s", s.Name, s.SpanContext.TraceID(), traceID)
		}
		if s.Name != sdk.SpanStepExecute && attr(s, engine.AttrTaskID).AsString() != id.String() {
			t.Errorf("span %s has task id %q", s.Name, attr(s, engine.AttrTaskID).AsString())
		}
		switch s.Name {
		case engine.SpanTaskCreate:
			if s.Parent.SpanID() != root.SpanContext().SpanID() {
				t.Errorf("task.create parent = %v, want the request span", s.Parent.SpanID())
			}
			if !hasEvent(s, engine.TaskCreated) || attr(s, engine.AttrCorrelationID).AsString() != "corr-1" {
				t.Errorf("task.create: events %v attributes %v", s.Events, s.Attributes)
			}
		case engine.SpanTaskEvaluate:
			if parentName(s) != engine.SpanTaskCreate {
				t.Errorf("task.evaluate parent = %q, want task.create", parentName(s))
			}
			if len(s.Links) != 1 || !isScheduler(byID[s.Links[0].SpanContext.SpanID()].Name) {
				t.Errorf("task.evaluate links = %v, want its scheduler span", s.Links)
			}
			sawCompleted = sawCompleted || hasEvent(s, engine.TaskCompleted)
			sawRetry = sawRetry || hasEvent(s, engine.StepRetryScheduled)
		case engine.SpanStepDispatch:
			if parentName(s) != engine.SpanTaskEvaluate {
				t.Errorf("step.dispatch parent = %q", parentName(s))
			}
			if attr(s, engine.AttrHandler).AsString() != "test.step" || attr(s, engine.AttrStep).AsString() == "" ||
				attr(s, engine.AttrAttempt).AsInt64() < 1 || !hasEvent(s, engine.StepDispatched) {
				t.Errorf("step.dispatch attributes %v events %v", s.Attributes, s.Events)
			}
		case sdk.SpanStepExecute:
			p := byID[s.Parent.SpanID()]
			if p.Name != engine.SpanStepDispatch || attr(p, engine.AttrStep) != attr(s, "tasker.step") ||
				attr(p, engine.AttrAttempt) != attr(s, "tasker.attempt") {
				t.Errorf("step.execute %v/%v parent = %q %v", attr(s, "tasker.step"), attr(s, "tasker.attempt"), p.Name, p.Attributes)
			}
			if attr(s, "tasker.step").AsString() == "b" && attr(s, "tasker.attempt").AsInt64() == 1 && s.Status.Code.String() != "Error" {
				t.Errorf("failed attempt's span status = %v", s.Status)
			}
		default:
			t.Errorf("unexpected span %q", s.Name)
		}
	}
	t.Logf("spans: %v", count)
	// a, b (twice), c.
	if count[engine.SpanTaskCreate] != 1 || count[engine.SpanStepDispatch] != 4 || count[sdk.SpanStepExecute] != 4 ||
		count[engine.SpanSchedulerSweep] != 1 || count[engine.SpanSchedulerBatch] == 0 || count[engine.SpanTaskEvaluate] == 0 {
		t.Errorf("span counts: %v", count)
	}
	if !sawCompleted || !sawRetry {
		t.Errorf("task.evaluate events: completed %v, retry scheduled %v", sawCompleted, sawRetry)
	}
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

func isScheduler(name string) bool {
	return name == engine.SpanSchedulerBatch || name == engine.SpanSchedulerSweep
}

// TestTracingOffStoresNothing: with the default (no-op) provider, nothing
// is propagated or stored.
func TestTracingOffStoresNothing(t *testing.T) {
	h := newHarness(t, engine.Config{}, linearYAML)
	id := h.create("linear", `{}`)
	attrs := h.queue.Peek()[0].Attributes
	if len(attrs) != 0 {
		t.Fatalf("wake-up attributes %v", attrs)
	}
	for _, p := range h.drain(func(contract.Payload) outcome { return ok(1) }) {
		if p.Tasker.TraceParent != "" {
			t.Fatalf("payload traceparent %q", p.Tasker.TraceParent)
		}
	}
	var tp *string
	if err := h.pool.QueryRow(h.ctx, "SELECT trace_parent FROM tasker_tasks WHERE id = $1", id).Scan(&tp); err != nil {
		t.Fatal(err)
	}
	if tp != nil {
		t.Fatalf("trace_parent = %q", *tp)
	}
}

// A repeated idempotency key returns the existing task, which keeps the
// trace of the request that created it.
func TestTraceKeptOnIdempotentCreate(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := telemetry.NewTracerProvider(nil, nil, sdktrace.WithSyncer(exp))
	h := newHarness(t, engine.Config{TracerProvider: tp}, linearYAML)
	var stored []string
	for range 2 {
		ctx, span := tp.Tracer("test").Start(context.Background(), "request")
		c, err := h.eng.CreateTask(ctx, engine.CreateRequest{Namespace: "test", Name: "linear", IdempotencyKey: "k-1"})
		span.End()
		if err != nil {
			t.Fatal(err)
		}
		var tpar string
		if err := h.pool.QueryRow(h.ctx, "SELECT trace_parent FROM tasker_tasks WHERE id = $1", c.TaskID).Scan(&tpar); err != nil {
			t.Fatal(err)
		}
		if sc := trace.SpanContextFromContext(telemetry.WithTraceParent(context.Background(), tpar)); sc.TraceID() != span.SpanContext().TraceID() && len(stored) == 0 {
			t.Fatalf("stored trace_parent %q is not the creating request's trace", tpar)
		}
		stored = append(stored, tpar)
	}
	if stored[0] != stored[1] {
		t.Fatalf("trace_parent changed on a repeated create: %q then %q", stored[0], stored[1])
	}
}
