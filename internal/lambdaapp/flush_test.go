package lambdaapp_test

import (
	"context"
	"encoding/json"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/examples"
	"github.com/taskerhq/tasker/internal/lambdaapp"
	"github.com/taskerhq/tasker/sdk"
)

// The Lambda runtime may freeze the process as soon as an invocation
// returns, export goroutine included, so the spans of an invocation must
// be exported before it returns (docs/architecture.md, "Services"). The
// batch processor would otherwise hold them for seconds.
func TestSpansExportedBeforeInvocationReturns(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	h := handlerOf[func(context.Context, json.RawMessage) (json.RawMessage, error)](t, lambdaapp.Handlers(examples.Register),
		lambdaapp.Deps{Getenv: env{}.get, Logs: &logBuffer{}, SpanExporter: exp})
	payload, err := json.Marshal(contract.Payload{
		// A dispatched attempt carries its trace context; the handler's
		// span continues it.
		Tasker: contract.Meta{Version: 1, Step: "s", Handler: "tasker.noop", Attempt: 1, MaxAttempts: 3,
			TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		Context: json.RawMessage(`{}`), Config: json.RawMessage(`{}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		if _, err := h(context.Background(), payload); err != nil {
			t.Fatal(err)
		}
		var n int
		for _, s := range exp.GetSpans() {
			if s.Name == sdk.SpanStepExecute {
				n++
			}
		}
		if n != i {
			t.Fatalf("after invocation %d, %d %s spans exported, want %d", i, n, sdk.SpanStepExecute, i)
		}
	}
}
