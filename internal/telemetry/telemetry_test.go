package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskerhq/tasker/internal/telemetry"
)

func TestPrometheusText(t *testing.T) {
	r := telemetry.NewRegistry()
	c := r.NewCounter("tasker_tasks_created_total", "Tasks created.", "workflow")
	h := r.NewHistogram("tasker_step_duration_seconds", "Step attempt duration.", "Seconds", []float64{0.1, 1}, "handler")
	g := r.NewGauge("tasker_steps_in_flight", "Steps in flight.")
	c.Inc(`a"b`)
	c.Add(2, "x")
	h.Observe(0.05, "h")
	h.Observe(0.5, "h")
	g.Set(3)
	var b bytes.Buffer
	if err := r.WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	want := `# HELP tasker_tasks_created_total Tasks created.
# TYPE tasker_tasks_created_total counter
tasker_tasks_created_total{workflow="a\"b"} 1
tasker_tasks_created_total{workflow="x"} 2
# HELP tasker_step_duration_seconds Step attempt duration.
# TYPE tasker_step_duration_seconds histogram
tasker_step_duration_seconds_bucket{handler="h",le="0.1"} 1
tasker_step_duration_seconds_bucket{handler="h",le="1"} 2
tasker_step_duration_seconds_bucket{handler="h",le="+Inf"} 2
tasker_step_duration_seconds_sum{handler="h"} 0.55
tasker_step_duration_seconds_count{handler="h"} 2
# HELP tasker_steps_in_flight Steps in flight.
# TYPE tasker_steps_in_flight gauge
tasker_steps_in_flight 3
`
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestEMF(t *testing.T) {
	r := telemetry.NewRegistry()
	c := r.NewCounter("tasks_created", "Tasks created.", "workflow")
	h := r.NewHistogram("step_duration", "Step duration.", "Seconds", nil, "handler")
	c.Add(2, "wf")
	h.Observe(0.25, "h1")
	var b bytes.Buffer
	e := &telemetry.EMF{Registry: r, W: &b}
	now := time.UnixMilli(1700000000000)
	if err := e.Flush(now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("lines = %d:\n%s", len(lines), b.String())
	}
	var got []map[string]any
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		aws := m["_aws"].(map[string]any)
		if aws["Timestamp"].(float64) != 1700000000000 {
			t.Fatalf("timestamp: %v", aws["Timestamp"])
		}
		d := aws["CloudWatchMetrics"].([]any)[0].(map[string]any)
		if d["Namespace"] != "Tasker" {
			t.Fatalf("namespace: %v", d["Namespace"])
		}
		got = append(got, m)
	}
	if got[0]["step_duration"].([]any)[0].(float64) != 0.25 || got[0]["handler"] != "h1" {
		t.Fatalf("histogram line: %v", got[0])
	}
	if got[1]["tasks_created"].(float64) != 2 || got[1]["workflow"] != "wf" {
		t.Fatalf("counter line: %v", got[1])
	}
	// A second flush writes only what changed: the counter delta.
	b.Reset()
	c.Inc("wf")
	if err := e.Flush(now); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"tasks_created":1`) || strings.Contains(b.String(), "step_duration") {
		t.Fatalf("second flush: %s", b.String())
	}
}

func TestNewTracingFromEnvironment(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "")
	tr, err := telemetry.NewTracing(context.Background(), "tasker-test")
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.Provider().Tracer("x").Start(context.Background(), "s")
	if span.IsRecording() || span.SpanContext().IsValid() {
		t.Fatal("default provider records spans")
	}
	for _, exp := range []string{"console", "otlp"} {
		t.Setenv("OTEL_TRACES_EXPORTER", exp)
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
		tr, err := telemetry.NewTracing(context.Background(), "tasker-test")
		if err != nil {
			t.Fatalf("%s: %v", exp, err)
		}
		if err := tr.Start(context.Background()); err != nil {
			t.Fatalf("%s: %v", exp, err)
		}
		_, span := tr.Provider().Tracer("x").Start(context.Background(), "s")
		secs, _ := strconv.ParseInt(span.SpanContext().TraceID().String()[:8], 16, 64)
		if !span.IsRecording() || time.Since(time.Unix(secs, 0)).Abs() > time.Minute {
			t.Fatalf("%s: span not recording or trace id %s not X-Ray style", exp, span.SpanContext().TraceID())
		}
		if exp == "otlp" {
			continue // nothing listens; do not export
		}
		span.End()
		tr.Stop()
	}
	t.Setenv("OTEL_TRACES_EXPORTER", "bogus")
	if _, err := telemetry.NewTracing(context.Background(), "x"); err == nil {
		t.Fatal("unknown exporter accepted")
	}
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	if _, err := telemetry.NewTracing(context.Background(), "x"); err != nil { // restore the no-op globals
		t.Fatal(err)
	}
}

func TestMessagePropagation(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := telemetry.NewTracerProvider(exp, nil)
	ctx, span := tp.Tracer("x").Start(context.Background(), "send")
	defer span.End()
	attrs := telemetry.InjectMessage(ctx, nil)
	if attrs[telemetry.AttrTraceParent] == "" || !strings.HasPrefix(attrs[telemetry.AttrAWSTraceHeader], "Root=1-") {
		t.Fatalf("attributes: %v", attrs)
	}
	for _, only := range []string{telemetry.AttrTraceParent, telemetry.AttrAWSTraceHeader} {
		sc := telemetry.ExtractMessage(map[string]string{only: attrs[only]})
		if sc.TraceID() != span.SpanContext().TraceID() || sc.SpanID() != span.SpanContext().SpanID() {
			t.Fatalf("%s: extracted %v, want %v", only, sc, span.SpanContext())
		}
	}
	if telemetry.InjectMessage(context.Background(), nil) != nil {
		t.Fatal("no span: attributes allocated")
	}
	tp2 := telemetry.TraceParent(ctx)
	if sc := trace.SpanContextFromContext(telemetry.WithTraceParent(context.Background(), tp2)); sc.SpanID() != span.SpanContext().SpanID() {
		t.Fatal("traceparent round trip")
	}
}

// TestNewTracingRefusesInvalidSampler: an invalid sampler or ratio is an
// error naming the variable, not the SDK's silent default (issue 14).
func TestNewTracingRefusesInvalidSampler(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	for _, tc := range []struct{ sampler, arg, want string }{
		{"sometimes", "", `OTEL_TRACES_SAMPLER="sometimes": want one of always_on`},
		{"traceidratio", "2", `OTEL_TRACES_SAMPLER_ARG="2": want a number from 0 to 1`},
		{"parentbased_traceidratio", "half", `OTEL_TRACES_SAMPLER_ARG="half": want a number from 0 to 1`},
	} {
		t.Setenv("OTEL_TRACES_SAMPLER", tc.sampler)
		t.Setenv("OTEL_TRACES_SAMPLER_ARG", tc.arg)
		if _, err := telemetry.NewTracing(context.Background(), "test"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %s: err = %v; want it to contain %q", tc.sampler, tc.arg, err, tc.want)
		}
	}
	t.Setenv("OTEL_TRACES_SAMPLER", "ParentBased_TraceIDRatio")
	t.Setenv("OTEL_TRACES_SAMPLER_ARG", "0.5")
	if _, err := telemetry.NewTracing(context.Background(), "test"); err != nil {
		t.Errorf("valid sampler: %v", err)
	}
}
