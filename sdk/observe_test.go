package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/taskerhq/tasker/internal/telemetry"
	"github.com/taskerhq/tasker/sdk/contract"
)

func TestRunObservability(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := telemetry.NewTracerProvider(nil, nil, sdktrace.WithSyncer(exp))
	parentCtx, parent := tp.Tracer("test").Start(context.Background(), "step.dispatch")
	parent.End()

	reg := NewRegistry()
	if err := reg.Register("t.fail", func(ctx context.Context, in Input) (any, error) {
		Logger(ctx).InfoContext(ctx, "handler says hi")
		return nil, errors.New("nope")
	}); err != nil {
		t.Fatal(err)
	}
	var p contract.Payload
	if err := json.Unmarshal(testPayload(t, "t.fail", "", "", nil), &p); err != nil {
		t.Fatal(err)
	}
	p.Tasker.TraceParent = telemetry.TraceParent(parentCtx)
	payload, _ := json.Marshal(p)

	var logs, emf bytes.Buffer
	metrics := telemetry.NewRegistry()
	flusher := &telemetry.EMF{Registry: metrics, W: &emf}
	h := LambdaHandler(reg, WithTracerProvider(tp), WithObserver(telemetry.NewHandlerMetrics(metrics)),
		WithAfterInvoke(func(context.Context) {
			if err := flusher.Flush(time.Now()); err != nil {
				t.Error(err)
			}
		}),
		WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	resp, err := h(context.Background(), payload)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := contract.AsHandlerError(resp); !ok {
		t.Fatalf("response %s", resp)
	}

	spans := exp.GetSpans()
	var exec *tracetest.SpanStub
	for i := range spans {
		if spans[i].Name == SpanStepExecute {
			exec = &spans[i]
		}
	}
	if exec == nil || exec.Parent.SpanID() != parent.SpanContext().SpanID() ||
		exec.SpanContext.TraceID() != parent.SpanContext().TraceID() || exec.Status.Code != codes.Error {
		t.Fatalf("step.execute span: %+v", exec)
	}

	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("log lines: %s", logs.String())
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		if m["correlation_id"] != "corr-1" || m["task_id"] != testTaskID.String() || m["step"] != "process_payment" || m["attempt"] != 2.0 {
			t.Fatalf("log line lacks task fields: %s", l)
		}
	}

	if !strings.Contains(emf.String(), `"tasker_handler_executions_total":1`) || !strings.Contains(emf.String(), `"outcome":"error"`) ||
		!strings.Contains(emf.String(), `"tasker_handler_duration_seconds":[`) || !strings.Contains(emf.String(), `"_aws"`) {
		t.Fatalf("EMF output: %s", emf.String())
	}
}

// Without trace context in the payload or ctx, Run starts no span.
func TestRunWithoutTraceContext(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := telemetry.NewTracerProvider(nil, nil, sdktrace.WithSyncer(exp))
	reg := NewRegistry()
	Run(context.Background(), reg, testPayload(t, "tasker.noop", "", "", nil), WithTracerProvider(tp), WithLogger(quietLogger()))
	if n := len(exp.GetSpans()); n != 0 {
		t.Fatalf("%d spans", n)
	}
}
