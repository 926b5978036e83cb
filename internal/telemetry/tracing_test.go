package telemetry_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/taskerhq/tasker/internal/service"
	"github.com/taskerhq/tasker/internal/service/servicetest"
	"github.com/taskerhq/tasker/internal/telemetry"
)

func TestTracingService(t *testing.T) {
	t.Parallel()
	servicetest.Run(t, func(*testing.T) service.Service {
		return telemetry.NewTracingExporter(tracetest.NewInMemoryExporter(), nil)
	}, servicetest.Options{})
}

func TestTracingFlushAndStop(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tr := telemetry.NewTracingExporter(exp, nil)
	if err := tr.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, span := tr.Provider().Tracer("t").Start(context.Background(), "flushed")
	span.End()
	if err := tr.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(exp.GetSpans()); n != 1 {
		t.Fatalf("%d spans exported after Flush, want 1", n)
	}
	_, span = tr.Provider().Tracer("t").Start(context.Background(), "at stop")
	span.End()
	tr.Stop()
	if n := len(exp.GetSpans()); n != 2 {
		t.Fatalf("%d spans exported after Stop, want 2", n)
	}
	// The exporter survives Stop: a restarted service exports again.
	if err := tr.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, span = tr.Provider().Tracer("t").Start(context.Background(), "after restart")
	span.End()
	tr.Stop()
	if n := len(exp.GetSpans()); n != 3 {
		t.Fatalf("%d spans exported after a restart, want 3", n)
	}
}
