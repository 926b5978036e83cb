package engine_test

import (
	"context"
	"testing"
	"time"

	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/queue/sqs"
	"github.com/taskerhq/tasker/internal/telemetry"
	"github.com/taskerhq/tasker/internal/testenv"
)

// TestTraceCrossesSQS sends the engine's wake-up through SQS (moto) and
// feeds the received message back: its trace context survives the round
// trip, links the scheduler.batch span to the task's trace, and the step
// dispatched from it joins that trace.
func TestTraceCrossesSQS(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := telemetry.NewTracerProvider(nil, nil, sdktrace.WithSyncer(exp))
	h := newHarness(t, engine.Config{TracerProvider: tp}, linearYAML)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	endpoint := testenv.Moto(t)
	q := sqs.New(awssqs.NewFromConfig(testenv.AWSConfig(endpoint)), testenv.CreateQueue(t, endpoint, "tasker-trace-test", nil).URL)

	rootCtx, root := tp.Tracer("test").Start(ctx, "request")
	if _, err := h.eng.CreateTask(rootCtx, engine.CreateRequest{Namespace: "test", Name: "linear"}); err != nil {
		t.Fatal(err)
	}
	root.End()
	sent := h.queue.Take()
	if len(sent) != 1 || sent[0].Attributes[telemetry.AttrTraceParent] == "" || sent[0].Attributes[telemetry.AttrAWSTraceHeader] == "" {
		t.Fatalf("wake-up: %+v", sent)
	}
	if err := q.Send(ctx, sent); err != nil {
		t.Fatal(err)
	}
	ds, err := q.Receive(ctx, 10, 5*time.Second)
	if err != nil || len(ds) != 1 {
		t.Fatalf("receive: %d messages, %v", len(ds), err)
	}
	got := telemetry.ExtractMessage(ds[0].Attributes)
	if got.TraceID() != root.SpanContext().TraceID() || !got.IsRemote() {
		t.Fatalf("received attributes %v: trace context %v, want trace %s", ds[0].Attributes, got, root.SpanContext().TraceID())
	}
	// The AWSTraceHeader system attribute arrives too and names the same
	// trace.
	th := ds[0].Attributes[telemetry.AttrAWSTraceHeader]
	if sc := telemetry.ExtractMessage(map[string]string{telemetry.AttrAWSTraceHeader: th}); sc.TraceID() != root.SpanContext().TraceID() {
		t.Fatalf("AWSTraceHeader %q names another trace, want %s", th, root.SpanContext().TraceID())
	}

	failed, err := h.eng.HandleMessages(ctx, []engine.InMessage{{ID: ds[0].ID, Body: ds[0].Body, Attributes: ds[0].Attributes}})
	if err != nil || len(failed) > 0 {
		t.Fatalf("handle: %v %v", failed, err)
	}
	invs := h.inv.Take()
	if len(invs) != 1 {
		t.Fatalf("invocations: %d", len(invs))
	}
	var batch, dispatch *tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		switch s.Name {
		case engine.SpanSchedulerBatch:
			batch = &s
		case engine.SpanStepDispatch:
			dispatch = &s
		}
	}
	if batch == nil || len(batch.Links) != 1 || batch.Links[0].SpanContext.TraceID() != root.SpanContext().TraceID() {
		t.Fatalf("scheduler.batch span %+v is not linked to the task's trace", batch)
	}
	if dispatch == nil || dispatch.SpanContext.TraceID() != root.SpanContext().TraceID() {
		t.Fatalf("step.dispatch span %+v is not in the task's trace", dispatch)
	}
	if p := payloadOf(t, invs[0]); p.Tasker.TraceParent != telemetry.TraceParent(trace.ContextWithSpanContext(ctx, dispatch.SpanContext)) {
		t.Fatalf("payload traceparent %q, want the dispatch span's", p.Tasker.TraceParent)
	}
}
