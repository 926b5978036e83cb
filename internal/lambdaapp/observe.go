package lambdaapp

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/events"
	"github.com/taskerhq/tasker/internal/service"
	"github.com/taskerhq/tasker/internal/telemetry"
)

// flushTimeout bounds the work done after each invocation.
const flushTimeout = 2 * time.Second

// observer is a function's observability (docs/observability.md): lifecycle events to
// the log, to CloudWatch metrics as EMF log lines and, with
// TASKER_EVENT_BUS, to an EventBridge bus; OpenTelemetry tracing as the
// OTEL_* variables choose (none by default). The Lambda runtime freezes
// the process between invocations, so whatever is buffered is flushed
// before each one returns (wrap). The tracing provider and the
// EventBridge publisher are services (docs/architecture.md, "Services"),
// started here and stopped when the runtime shuts the function down
// (Main).
type observer struct {
	tp        trace.TracerProvider
	tracing   *telemetry.Tracing
	publisher engine.Publisher
	emf       *telemetry.EMF
	bus       *events.EventBridge
}

// observe sets up tracing and, when the function runs an engine
// (lifecycle), the lifecycle event publishers.
func (s *setup) observe(ctx context.Context, lifecycle bool) (*observer, error) {
	tracing, err := s.tracing(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.start(ctx, tracing); err != nil {
		return nil, err
	}
	o := &observer{tp: tracing.Provider(), tracing: tracing}
	if !lifecycle {
		return o, nil
	}
	reg := telemetry.NewRegistry()
	o.emf = &telemetry.EMF{Registry: reg, W: s.deps.Logs}
	pubs := events.Multi{events.Log{Logger: s.log}, events.NewMetrics(reg)}
	if bus := s.env(EnvEventBus); bus != "" {
		cfg, err := s.aws(ctx)
		if err != nil {
			return nil, err
		}
		o.bus = events.NewEventBridge(eventbridge.NewFromConfig(cfg), bus, events.EventBridgeOptions{Logger: s.log})
		if err := s.start(ctx, o.bus); err != nil {
			return nil, err
		}
		pubs = append(pubs, o.bus)
	}
	if s.deps.Publisher != nil {
		pubs = append(pubs, s.deps.Publisher)
	}
	o.publisher = pubs
	return o, nil
}

// tracing is the function's tracing service: to Deps.SpanExporter when
// set (tests), else as the OTEL_* variables say.
func (s *setup) tracing(ctx context.Context) (*telemetry.Tracing, error) {
	if s.deps.SpanExporter != nil {
		return telemetry.NewTracingExporter(s.deps.SpanExporter, nil), nil
	}
	return telemetry.NewTracing(ctx, "tasker-"+s.fn.Name)
}

// start starts svc for the life of the function (it outlives the setup's
// ctx) and records it so Stop stops it.
func (s *setup) start(ctx context.Context, svc service.Service) error {
	if err := svc.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	s.services = append(s.services, svc)
	return nil
}

// flush sends what the invocation left buffered: EventBridge entries, EMF
// metrics and spans, within flushTimeout.
func (o *observer) flush(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
	defer cancel()
	if o.bus != nil {
		_ = o.bus.Flush(ctx) // the publisher logs what it drops
	}
	if o.emf != nil {
		_ = o.emf.Flush(time.Now())
	}
	_ = o.tracing.Flush(ctx) // spans ended by the invocation

}

// wrap flushes the observer after each invocation of h, before the
// invocation returns to the runtime (which may then freeze the process).
func wrap[E, R any](o *observer, h func(context.Context, E) (R, error)) func(context.Context, E) (R, error) {
	return func(ctx context.Context, ev E) (R, error) {
		r, err := h(ctx, ev)
		o.flush(ctx)
		return r, err
	}
}
