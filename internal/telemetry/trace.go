package telemetry

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"go.opentelemetry.io/contrib/propagators/aws/xray"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/taskerhq/tasker/internal/config"
	"github.com/taskerhq/tasker/internal/service"
)

// Propagator is Tasker's trace context propagation: W3C tracecontext
// ("traceparent") and the AWS X-Ray header ("X-Amzn-Trace-Id"), so traces
// continue across API Gateway, SQS (AWSTraceHeader) and Lambda.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, xray.Propagator{})
}

// NewTracerProvider returns an SDK tracer provider with X-Ray-compatible
// trace IDs (the first 4 bytes are the epoch seconds X-Ray requires),
// exporting to exp in batches. The sampler follows OTEL_TRACES_SAMPLER.
func NewTracerProvider(exp sdktrace.SpanExporter, res *resource.Resource, opts ...sdktrace.TracerProviderOption) *sdktrace.TracerProvider {
	base := []sdktrace.TracerProviderOption{sdktrace.WithIDGenerator(xray.NewIDGenerator())}
	if exp != nil {
		base = append(base, sdktrace.WithBatcher(exp))
	}
	if res != nil {
		base = append(base, sdktrace.WithResource(res))
	}
	return sdktrace.NewTracerProvider(append(base, opts...)...)
}

// Tracing is the tracing provider as a service (docs/architecture.md,
// "Services"). Constructing it starts nothing: Start attaches the batch
// span processor (and its export goroutine) to the provider, Stop detaches
// it after exporting what it buffered, so a composition stops tracing last
// and loses no span. Flush exports what is buffered now; a Lambda function
// calls it before each invocation returns, because the runtime freezes
// the process, export goroutine included, between invocations.
//
// Spans ended while the service is stopped are not exported.
type Tracing struct {
	service.Base
	tp  trace.TracerProvider
	sdk *sdktrace.TracerProvider // nil when tracing is off
	exp sdktrace.SpanExporter

	mu  sync.Mutex
	bsp sdktrace.SpanProcessor // while started
}

var _ service.Service = (*Tracing)(nil)

// EnvTracesExporter picks the span exporter: none (default), otlp or
// console.
const EnvTracesExporter = "OTEL_TRACES_EXPORTER"

// The sampler variables, read by the OpenTelemetry SDK, which replaces an
// invalid value by its default; checkSamplerEnv refuses it instead.
const (
	EnvTracesSampler    = "OTEL_TRACES_SAMPLER"
	EnvTracesSamplerArg = "OTEL_TRACES_SAMPLER_ARG"
)

// checkSamplerEnv checks OTEL_TRACES_SAMPLER (the SDK's samplers) and,
// for the ratio samplers, OTEL_TRACES_SAMPLER_ARG (0 to 1).
func checkSamplerEnv(getenv config.Getenv) error {
	sampler, err := config.Enum(getenv, EnvTracesSampler, "", "always_on", "always_off", "traceidratio",
		"parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio")
	if err != nil {
		return err
	}
	if sampler == "traceidratio" || sampler == "parentbased_traceidratio" {
		if _, err := config.Float(getenv, EnvTracesSamplerArg, 1, 0, 1); err != nil {
			return err
		}
	}
	return nil
}

// tracingStopTimeout bounds the export of buffered spans at Stop.
const tracingStopTimeout = 5 * time.Second

// NewTracing configures tracing from the standard environment:
//
//   - OTEL_TRACES_EXPORTER unset or "none": a no-op provider (the default,
//     and free: no span is recorded and nothing is propagated);
//   - "otlp": OTLP over HTTP (OTEL_EXPORTER_OTLP_ENDPOINT and the other
//     OTEL_EXPORTER_OTLP_* variables, e.g. the ADOT collector or Lambda layer);
//   - "console": spans as JSON on stderr, for debugging.
//
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES are honoured
// (serviceName is the default name); OTEL_TRACES_SAMPLER picks the sampler.
// NewTracing installs the provider and Propagator as the OpenTelemetry
// globals.
func NewTracing(ctx context.Context, serviceName string) (*Tracing, error) {
	otel.SetTextMapPropagator(Propagator())
	exporter, err := config.Enum(os.Getenv, EnvTracesExporter, "none", "none", "otlp", "console")
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	if err := checkSamplerEnv(os.Getenv); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	var exp sdktrace.SpanExporter
	switch exporter {
	case "none":
		tp := noop.NewTracerProvider()
		otel.SetTracerProvider(tp)
		return &Tracing{tp: tp}, nil
	case "otlp":
		e, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("telemetry: otlp exporter: %w", err)
		}
		exp = e
	case "console":
		e, err := stdouttrace.New(stdouttrace.WithWriter(os.Stderr))
		if err != nil {
			return nil, fmt.Errorf("telemetry: console exporter: %w", err)
		}
		exp = e
	}
	res, err := resource.Merge(
		resource.NewSchemaless(attribute.String("service.name", serviceName)),
		resource.Environment(), // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
	)
	if err != nil {
		res = resource.NewSchemaless(attribute.String("service.name", serviceName))
	}
	t := NewTracingExporter(exp, res)
	otel.SetTracerProvider(t.tp)
	return t, nil
}

// NewTracingExporter returns tracing to exp (an in-memory exporter in
// tests), with X-Ray-compatible trace IDs, without touching the globals.
func NewTracingExporter(exp sdktrace.SpanExporter, res *resource.Resource, opts ...sdktrace.TracerProviderOption) *Tracing {
	// No WithBatcher here: the batcher's goroutine belongs to Start.
	sdk := NewTracerProvider(nil, res, opts...)
	return &Tracing{tp: sdk, sdk: sdk, exp: keepOpen{exp}}
}

// Provider is the tracer provider to hand to the components.
func (t *Tracing) Provider() trace.TracerProvider { return t.tp }

// Start attaches the span processor exporting in batches.
func (t *Tracing) Start(ctx context.Context) error {
	ctx, ok, started, stopped := t.StartInit(ctx)
	if !ok {
		return nil
	}
	if t.sdk != nil {
		bsp := sdktrace.NewBatchSpanProcessor(t.exp)
		t.mu.Lock()
		t.bsp = bsp
		t.mu.Unlock()
		t.sdk.RegisterSpanProcessor(bsp)
	}
	started()
	go func() {
		defer stopped()
		<-ctx.Done()
		t.detach()
	}()
	return nil
}

// detach exports what the processor buffered and removes it.
func (t *Tracing) detach() {
	t.mu.Lock()
	bsp := t.bsp
	t.bsp = nil
	t.mu.Unlock()
	if bsp == nil {
		return
	}
	t.sdk.UnregisterSpanProcessor(bsp)
	ctx, cancel := context.WithTimeout(context.Background(), tracingStopTimeout)
	defer cancel()
	_ = bsp.Shutdown(ctx) // exports what is buffered; the exporter stays open (keepOpen)
}

// Flush exports the spans buffered so far, bounded by ctx.
func (t *Tracing) Flush(ctx context.Context) error {
	t.mu.Lock()
	bsp := t.bsp
	t.mu.Unlock()
	if bsp == nil {
		return nil
	}
	return bsp.ForceFlush(ctx)
}

// keepOpen keeps the exporter usable across Stop and Start: the batch
// processor shuts its exporter down when it is itself shut down.
type keepOpen struct{ sdktrace.SpanExporter }

func (keepOpen) Shutdown(context.Context) error { return nil }

// TraceParent returns the W3C traceparent of the span in ctx, or "" when
// ctx holds no valid (recording or remote) span context.
func TraceParent(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c["traceparent"]
}

// WithTraceParent returns ctx carrying the remote span context of a W3C
// traceparent; an empty or malformed value returns ctx unchanged.
func WithTraceParent(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}

// Queue message attribute names carrying trace context across SQS.
const (
	// AttrTraceParent is the W3C traceparent message attribute.
	AttrTraceParent = "traceparent"
	// AttrAWSTraceHeader is sent as the AWSTraceHeader system attribute
	// (X-Ray format) by the SQS adapter.
	AttrAWSTraceHeader = "AWSTraceHeader"
	xrayHeader         = "X-Amzn-Trace-Id"
)

// InjectMessage adds the trace context of ctx to queue message attributes
// (traceparent and AWSTraceHeader), allocating attrs when needed. With no
// valid span context it returns attrs unchanged.
func InjectMessage(ctx context.Context, attrs map[string]string) map[string]string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return attrs
	}
	c := propagation.MapCarrier{}
	Propagator().Inject(ctx, c)
	if len(c) == 0 {
		return attrs
	}
	if attrs == nil {
		attrs = make(map[string]string, 2)
	}
	if v := c["traceparent"]; v != "" {
		attrs[AttrTraceParent] = v
	}
	if v := c[xrayHeader]; v != "" {
		attrs[AttrAWSTraceHeader] = v
	}
	return attrs
}

// ExtractMessage returns the span context carried by queue message
// attributes: traceparent if present, else AWSTraceHeader. The result is
// invalid when the message carries none.
func ExtractMessage(attrs map[string]string) trace.SpanContext {
	if len(attrs) == 0 {
		return trace.SpanContext{}
	}
	c := propagation.MapCarrier{}
	if v := attrs[AttrTraceParent]; v != "" {
		c["traceparent"] = v
	}
	if v := attrs[AttrAWSTraceHeader]; v != "" {
		c[xrayHeader] = v
	}
	if len(c) == 0 {
		return trace.SpanContext{}
	}
	return trace.SpanContextFromContext(Propagator().Extract(context.Background(), c))
}
