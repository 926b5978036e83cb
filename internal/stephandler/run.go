package stephandler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/taskerhq/tasker/internal/contract"
)

// DefaultMaxResultBytes is the default limit on an encoded step result. A
// destination record carries the result and the request payload, and SQS
// and Lambda bound their sizes, so results are kept small; store large
// data elsewhere and return a reference.
const DefaultMaxResultBytes = 256 << 10

// Option configures Run and LambdaHandler.
type Option func(*runConfig)

type runConfig struct {
	maxResult int
	logger    *slog.Logger
}

// WithMaxResultBytes sets the limit on an encoded result (default
// DefaultMaxResultBytes); n <= 0 means no limit.
func WithMaxResultBytes(n int) Option { return func(c *runConfig) { c.maxResult = n } }

// WithLogger sets where handler panics are logged (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *runConfig) { c.logger = l } }

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

// Run executes one invocation: it decodes payload (DESIGN §5), calls the
// handler named by tasker.handler with the payload's deadline applied to
// ctx, and returns the response: the result as JSON, or the envelope
// {"tasker_error":{"message","permanent","retry_after_seconds","code"}}.
// A panicking handler yields a retryable error with code "panic"; an
// unknown handler, an undecodable payload, a result that cannot be encoded
// or is over the size limit yield permanent errors. Run never fails.
func Run(ctx context.Context, reg *Registry, payload []byte, opts ...Option) []byte {
	return run(ctx, reg, payload, newRunConfig(opts))
}

// LambdaHandler adapts a registry to lambda.Start: the handler Lambda
// returns the response of Run as its (successful) result, so handled
// failures reach the OnSuccess destination as error envelopes, exactly as
// for handlers written in any other runtime. It never returns an error.
func LambdaHandler(reg *Registry, opts ...Option) func(ctx context.Context, payload json.RawMessage) (json.RawMessage, error) {
	cfg := newRunConfig(opts)
	return func(ctx context.Context, payload json.RawMessage) (json.RawMessage, error) {
		return run(ctx, reg, payload, cfg), nil
	}
}

func run(ctx context.Context, reg *Registry, payload []byte, cfg *runConfig) []byte {
	p := new(contract.Payload)
	if err := json.Unmarshal(payload, p); err != nil {
		return ErrorResponse(Permanent(WithCode(fmt.Errorf("invalid invocation payload: %v", err), CodeInvalidPayload)))
	}
	name := p.Tasker.Handler
	if name == "" {
		return ErrorResponse(Permanent(WithCode(errors.New("invalid invocation payload: tasker.handler is empty"), CodeInvalidPayload)))
	}
	h, ok := reg.Lookup(name)
	if !ok {
		return ErrorResponse(Permanent(WithCode(fmt.Errorf("no handler registered under %q", name), CodeUnknownHandler)))
	}
	if d := p.Tasker.Deadline; !d.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d)
		defer cancel()
	}
	in := newInputRaw(p, payload)
	res, err := call(ctx, h, in, cfg)
	if err != nil {
		return ErrorResponse(err)
	}
	out, err := json.Marshal(res)
	if err != nil {
		return ErrorResponse(Permanent(WithCode(fmt.Errorf("handler %q returned a result that is not JSON-encodable: %v", name, err), CodeInvalidResult)))
	}
	if cfg.maxResult > 0 && len(out) > cfg.maxResult {
		return ErrorResponse(Permanent(WithCode(fmt.Errorf("result is %d bytes, over the %d-byte limit", len(out), cfg.maxResult), CodeResultTooLarge)))
	}
	return out
}

func call(ctx context.Context, h Handler, in Input, cfg *runConfig) (res any, err error) {
	defer func() {
		if r := recover(); r != nil {
			m := in.Meta()
			cfg.logger.ErrorContext(ctx, "step handler panicked",
				"handler", m.Handler, "task_id", m.TaskID, "step", m.Step, "attempt", m.Attempt,
				"correlation_id", m.CorrelationID, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			res, err = nil, WithCode(fmt.Errorf("handler panicked: %v", r), CodePanic)
		}
	}()
	return h(ctx, in)
}
