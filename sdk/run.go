package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskerhq/tasker/sdk/contract"
)

// DefaultMaxResultBytes is the default limit on an encoded step result. A
// destination record carries the result and the request payload, and SQS
// and Lambda bound their sizes, so results are kept small; store large
// data elsewhere and return a reference. It is the payload limit,
// contract.MaxPayloadBytes.
const DefaultMaxResultBytes = contract.MaxPayloadBytes

// Option configures Run and LambdaHandler.
type Option func(*runConfig)

type runConfig struct {
	maxResult int
	logger    *slog.Logger
	tracer    trace.TracerProvider
	observer  Observer
	after     func(context.Context)
}

// Outcomes of an execution, as Observer sees them.
const (
	OutcomeOK             = "ok"
	OutcomeError          = "error"
	OutcomePermanentError = "permanent_error"
)

// Observer is told of every handler execution Run makes: the handler
// name, the outcome (OutcomeOK, OutcomeError, OutcomePermanentError) and
// how long the handler ran. Tasker's own functions count them as metrics
// (docs/observability.md); an implementation must be safe for concurrent
// use.
type Observer interface {
	ObserveExecution(ctx context.Context, handler, outcome string, d time.Duration)
}

// WithObserver makes Run report each execution to o.
func WithObserver(o Observer) Option { return func(c *runConfig) { c.observer = o } }

// WithAfterInvoke makes LambdaHandler call fn at the end of each
// invocation, after the response is built and before it is returned: the
// place to flush buffered telemetry while the Lambda environment still
// runs.
func WithAfterInvoke(fn func(ctx context.Context)) Option {
	return func(c *runConfig) { c.after = fn }
}

// WithMaxResultBytes sets the limit on an encoded result (default
// DefaultMaxResultBytes); n <= 0 means no limit.
func WithMaxResultBytes(n int) Option { return func(c *runConfig) { c.maxResult = n } }

// WithLogger sets where Run logs (default slog.Default()): handler panics
// at error level and handled failures at info level, each line with the
// task's correlation_id, task_id, step and attempt. Handlers get the same
// logger from Logger(ctx).
func WithLogger(l *slog.Logger) Option { return func(c *runConfig) { c.logger = l } }

// WithTracerProvider sets the provider of the step.execute span (default:
// the OpenTelemetry global provider). The span is a child of the dispatch
// span whose context the payload carries in tasker.traceparent; with no
// trace context in the payload or ctx, no span is started.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *runConfig) { c.tracer = tp }
}

// SpanStepExecute is the name of the handler's span.
const SpanStepExecute = "step.execute"

type loggerKey struct{}

// Logger returns the logger of the invocation in ctx, carrying its
// correlation_id, task_id, step and attempt; outside Run it returns
// slog.Default().
func Logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}

func newRunConfig(opts []Option) *runConfig {
	c := &runConfig{maxResult: DefaultMaxResultBytes}
	for _, o := range opts {
		o(c)
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	return c
}

// Run executes one invocation: it decodes payload (docs/architecture.md, "Handler contract"), calls the
// handler named by tasker.handler with the payload's deadline applied to
// ctx, and returns the response: the result as JSON, or the envelope
// {"tasker_error":{"message","permanent","retry_after_seconds","code"}}.
// A panicking handler yields a retryable error with code "panic"; an
// unknown handler, an undecodable payload, a result that cannot be encoded
// or is over the size limit yield permanent errors. Run never fails.
func Run(ctx context.Context, reg *Registry, payload []byte, opts ...Option) []byte {
	return run(ctx, reg.Lookup, payload, newRunConfig(opts))
}

// LambdaHandler adapts a registry to lambda.Start: the handler Lambda
// returns the response of Run as its (successful) result, so handled
// failures reach the OnSuccess destination as error envelopes, exactly as
// for handlers written in any other runtime. It never returns an error.
func LambdaHandler(reg *Registry, opts ...Option) func(ctx context.Context, payload json.RawMessage) (json.RawMessage, error) {
	return lambdaHandler(reg.Lookup, newRunConfig(opts))
}

// HandlerFunction adapts one handler to lambda.Start, for a Go handler
// deployed as a Lambda function of its own, which template steps name as
// "lambda:<function name>" or by ARN (docs/handlers.md): it runs h
// whatever handler name the payload carries, and answers exactly as
// LambdaHandler does.
//
//	func main() { lambda.Start(sdk.HandlerFunction(charge)) }
func HandlerFunction(h Handler, opts ...Option) func(ctx context.Context, payload json.RawMessage) (json.RawMessage, error) {
	lookup := func(string) (Handler, bool) { return h, h != nil }
	return lambdaHandler(lookup, newRunConfig(opts))
}

func lambdaHandler(lookup func(string) (Handler, bool), cfg *runConfig) func(ctx context.Context, payload json.RawMessage) (json.RawMessage, error) {
	return func(ctx context.Context, payload json.RawMessage) (json.RawMessage, error) {
		out := run(ctx, lookup, payload, cfg)
		if cfg.after != nil {
			cfg.after(ctx)
		}
		return out, nil
	}
}

func run(ctx context.Context, lookup func(string) (Handler, bool), payload []byte, cfg *runConfig) []byte {
	p := new(contract.Payload)
	if err := json.Unmarshal(payload, p); err != nil {
		return ErrorResponse(Permanent(WithCode(fmt.Errorf("invalid invocation payload: %v", err), CodeInvalidPayload)))
	}
	name := p.Tasker.Handler
	if name == "" {
		return ErrorResponse(Permanent(WithCode(errors.New("invalid invocation payload: tasker.handler is empty"), CodeInvalidPayload)))
	}
	h, ok := lookup(name)
	if !ok {
		return ErrorResponse(Permanent(WithCode(fmt.Errorf("no handler registered under %q", name), CodeUnknownHandler)))
	}
	if d := p.Tasker.Deadline; !d.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d)
		defer cancel()
	}
	m := &p.Tasker
	log := cfg.logger.With("correlation_id", m.CorrelationID, "task_id", m.TaskID, "step", m.Step, "attempt", m.Attempt)
	ctx = context.WithValue(ctx, loggerKey{}, log)
	var span trace.Span
	if m.TraceParent != "" || trace.SpanContextFromContext(ctx).IsValid() {
		ctx, span = startSpan(ctx, cfg, m)
		defer span.End()
	}
	start := time.Now()
	var res any
	err := resolvePayload(ctx, p)
	if err == nil {
		res, err = call(ctx, h, newInputRaw(p, resolvedRaw(payload)), log)
	}
	if cfg.observer != nil {
		outcome := OutcomeOK
		if err != nil {
			outcome = OutcomeError
			if HandlerError(err).Permanent {
				outcome = OutcomePermanentError
			}
		}
		cfg.observer.ObserveExecution(ctx, name, outcome, time.Since(start))
	}
	if err != nil {
		he := HandlerError(err)
		log.InfoContext(ctx, "step handler failed", "handler", name, "error", he.Message, "code", he.Code,
			"permanent", he.Permanent)
		if span != nil {
			span.SetStatus(codes.Error, he.Message)
			span.SetAttributes(attribute.String("tasker.error_code", he.Code), attribute.Bool("tasker.permanent", he.Permanent))
		}
		return ErrorResponse(err)
	}
	out, err := json.Marshal(res)
	if err != nil {
		return ErrorResponse(Permanent(WithCode(fmt.Errorf("handler %q returned a result that is not JSON-encodable: %v", name, err), CodeInvalidResult)))
	}
	if out, err = offloadResult(ctx, m.ResultUpload, out); err != nil {
		log.InfoContext(ctx, "step result not stored", "handler", name, "error", err)
		return ErrorResponse(err)
	}
	if cfg.maxResult > 0 && len(out) > cfg.maxResult {
		return ErrorResponse(Permanent(WithCode(fmt.Errorf("result is %d bytes, over the %d-byte limit", len(out), cfg.maxResult), CodeResultTooLarge)))
	}
	return out
}

// startSpan starts step.execute under the payload's trace context (or the
// span in ctx, e.g. one the Lambda runtime instrumentation started).
func startSpan(ctx context.Context, cfg *runConfig, m *contract.Meta) (context.Context, trace.Span) {
	tp := cfg.tracer
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
		attribute.String("tasker.task_id", m.TaskID.String()), attribute.String("tasker.step_id", m.StepID.String()),
		attribute.String("tasker.step", m.Step), attribute.Int("tasker.attempt", m.Attempt),
		attribute.String("tasker.handler", m.Handler), attribute.String("tasker.correlation_id", m.CorrelationID),
		attribute.String("tasker.workflow", m.Workflow), attribute.String("tasker.namespace", m.Namespace))}
	if m.TraceParent != "" {
		parent := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": m.TraceParent})
		if psc := trace.SpanContextFromContext(parent); psc.IsValid() {
			// The dispatch span is the parent; a span already in ctx (the
			// runtime's invocation span) is linked.
			if l := trace.LinkFromContext(ctx); l.SpanContext.IsValid() {
				opts = append(opts, trace.WithLinks(l))
			}
			ctx = trace.ContextWithRemoteSpanContext(ctx, psc)
		}
	}
	return tp.Tracer("github.com/taskerhq/tasker/sdk").Start(ctx, SpanStepExecute, opts...)
}

func call(ctx context.Context, h Handler, in Input, log *slog.Logger) (res any, err error) {
	defer func() {
		if r := recover(); r != nil {
			m := in.Meta()
			log.ErrorContext(ctx, "step handler panicked",
				"handler", m.Handler, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			res, err = nil, WithCode(fmt.Errorf("handler panicked: %v", r), CodePanic)
		}
	}()
	return h(ctx, in)
}
