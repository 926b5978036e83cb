package lambdaapp

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/events"
	"github.com/taskerhq/tasker/internal/telemetry"
)

// flushTimeout bounds the work done after each invocation.
const flushTimeout = 2 * time.Second

// observer is a function's observability (docs/observability.md): lifecycle events to
// the log, to CloudWatch metrics as EMF log lines and, with
// TASKER_EVENT_BUS, to an EventBridge bus; OpenTelemetry tracing as the
// OTEL_* variables choose (none by default). The Lambda runtime freezes
// the process between invocations, so whatever is buffered is flushed
// after each one (wrap).
type observer struct {
	tp        trace.TracerProvider
	publisher engine.Publisher
	emf       *telemetry.EMF
	bus       *events.EventBridge
}

// observe sets up tracing and, when the function runs an engine
// (lifecycle), the lifecycle event publishers.
func (s *setup) observe(ctx context.Context, lifecycle bool) (*observer, error) {
	tp, _, err := telemetry.Setup(ctx, "tasker-"+s.fn.Name)
	if err != nil {
		return nil, err
	}
	o := &observer{tp: tp}
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
		pubs = append(pubs, o.bus)
	}
	if s.deps.Publisher != nil {
		pubs = append(pubs, s.deps.Publisher)
	}
	o.publisher = pubs
	return o, nil
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
	if f, ok := o.tp.(interface{ ForceFlush(context.Context) error }); ok {
		_ = f.ForceFlush(ctx)
	}
}

// wrap flushes the observer after each invocation of h.
func wrap[E, R any](o *observer, h func(context.Context, E) (R, error)) func(context.Context, E) (R, error) {
	return func(ctx context.Context, ev E) (R, error) {
		r, err := h(ctx, ev)
		o.flush(ctx)
		return r, err
	}
}
