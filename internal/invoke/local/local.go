// Package local is the in-process asynchronous invoker of local mode
// (docs/architecture.md, "Handler contract", "Local mode"). It runs registered Go handlers on a bounded worker pool
// and, for every invocation, sends to the destination queue the Lambda
// destination record that AWS would have sent, so results follow the same
// code path as on AWS.
//
// The invoker is a service (docs/architecture.md, "Services"): New only
// builds it; Start runs the workers, Stop ends them.
package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/domain"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/service"
	"github.com/taskerhq/tasker/sdk"
)

// Defaults and limits.
const (
	DefaultWorkers = 64
	DefaultBacklog = 1024
	// MaxPayloadBytes is the Lambda limit on an asynchronous invocation
	// payload that local mode mirrors (domain.MaxPayloadBytes).
	MaxPayloadBytes = domain.MaxPayloadBytes
	// DefaultAbandonGrace is how long past its deadline a handler may run
	// before its worker reports a timeout and moves on without it.
	DefaultAbandonGrace = 2 * time.Second
	// DefaultMaxAbandoned bounds the abandoned handlers (still running past
	// their deadline) at once; beyond it Invoke refuses with ErrAbandoned.
	DefaultMaxAbandoned = 64
	// MaxRun is the deadline of a payload without one (Lambda's longest
	// timeout).
	MaxRun = 15 * time.Minute
	// FunctionArn is the requestContext.functionArn of local records.
	FunctionArn = "arn:aws:lambda:local:000000000000:function:tasker-handlers:$LATEST"
)

// CodeNotLocal is the error code of an invocation of a Lambda function
// (a handler named by ARN or "lambda:"), which local mode cannot run.
const CodeNotLocal = "not_runnable_locally"

var (
	// ErrThrottled is returned (wrapped) by Invoke when the backlog is
	// full; like Lambda throttling, the caller should try again later. It
	// is engine.ErrThrottled.
	ErrThrottled = engine.ErrThrottled
	// ErrAbandoned is returned (wrapped) by Invoke while
	// WithMaxAbandoned handlers ignore their deadline and still run; like
	// throttling, the caller should try again later.
	ErrAbandoned = errors.New("invoker throttled: too many handlers still running past their deadline")
	// ErrClosed is returned (wrapped) by Invoke before Start and after
	// Close or Stop.
	ErrClosed = errors.New("invoker closed")
)

// Option configures New.
type Option func(*Invoker)

// WithWorkers sets how many invocations run concurrently (default 64).
func WithWorkers(n int) Option {
	return func(i *Invoker) {
		if n > 0 {
			i.workers = n
		}
	}
}

// WithBacklog sets how many accepted invocations may wait for a worker
// before Invoke reports ErrThrottled (default 1024; 0 means none may wait).
func WithBacklog(n int) Option {
	return func(i *Invoker) {
		if n >= 0 {
			i.backlog = n
		}
	}
}

// WithMaxPayloadBytes overrides the payload limit (default MaxPayloadBytes).
func WithMaxPayloadBytes(n int) Option {
	return func(i *Invoker) {
		if n > 0 {
			i.maxPayload = n
		}
	}
}

// WithAbandonGrace sets how long past the payload's deadline a handler may
// run before its worker reports a timeout for the attempt and abandons it
// (default DefaultAbandonGrace). A Go goroutine cannot be killed, so an
// abandoned handler keeps running until it returns; its result is dropped.
func WithAbandonGrace(d time.Duration) Option {
	return func(i *Invoker) {
		if d >= 0 {
			i.abandonGrace = d
		}
	}
}

// WithMaxAbandoned bounds how many abandoned handlers may still be running
// (default DefaultMaxAbandoned); beyond it Invoke fails with ErrAbandoned.
func WithMaxAbandoned(n int) Option {
	return func(i *Invoker) {
		if n > 0 {
			i.maxAbandoned = n
		}
	}
}

// WithRunOptions passes options to sdk.Run (e.g. the result limit).
func WithRunOptions(opts ...sdk.Option) Option {
	return func(i *Invoker) { i.runOpts = append(i.runOpts, opts...) }
}

// LambdaRunner runs Lambda functions of other runtimes on this machine
// (lambdalocal.Runner, configured by lambdas.local.yaml). RunHandler
// reports found false for a function it does not know; err only when the
// invocation never reached an outcome (ctx ended: no record is sent).
type LambdaRunner interface {
	RunHandler(ctx context.Context, handler string, payload []byte, deadline time.Time) (resp json.RawMessage, unhandled *contract.LambdaError, found bool, err error)
}

// WithLambdas runs "lambda:NAME" handlers with r (docs/handlers.md,
// "Python" and "Node.js"); without it, or for a function r does not know,
// such a step fails permanently with CodeNotLocal.
func WithLambdas(r LambdaRunner) Option {
	return func(i *Invoker) { i.lambdas = r }
}

// WithLogger sets where failures to deliver records are logged.
func WithLogger(l *slog.Logger) Option {
	return func(i *Invoker) {
		if l != nil {
			i.logger = l
		}
	}
}

// Invoker implements engine.Invoker in process.
type Invoker struct {
	service.Base

	reg        *sdk.Registry
	dest       engine.Queue
	workers    int
	backlog    int
	maxPayload int
	// abandonGrace and maxAbandoned: see WithAbandonGrace, WithMaxAbandoned.
	abandonGrace   time.Duration
	maxAbandoned   int
	abandoned      atomic.Int64 // abandoned handlers still running
	abandonedTotal atomic.Int64
	runOpts        []sdk.Option
	lambdas        LambdaRunner
	logger         *slog.Logger
	// run is sdk.Run; tests replace it.
	run func(ctx context.Context, reg *sdk.Registry, payload []byte, opts ...sdk.Option) []byte

	// mu guards accepting: Invoke holds it shared while it enqueues, so
	// once Stop or Close has set accepting to false no job is added.
	mu        sync.RWMutex
	accepting bool
	jobs      chan engine.Invocation
	inFlight  atomic.Int64
}

var (
	_ engine.Invoker  = (*Invoker)(nil)
	_ service.Service = (*Invoker)(nil)
)

// New returns an invoker running handlers from reg and sending destination
// records to dest. It starts nothing: Invoke refuses with ErrClosed until
// Start.
func New(reg *sdk.Registry, dest engine.Queue, opts ...Option) *Invoker {
	i := &Invoker{
		reg:        reg,
		dest:       dest,
		workers:    DefaultWorkers,
		backlog:    DefaultBacklog,
		maxPayload: MaxPayloadBytes,

		abandonGrace: DefaultAbandonGrace,
		maxAbandoned: DefaultMaxAbandoned,
		logger:       slog.Default(),
		run:          sdk.Run,
	}
	for _, o := range opts {
		o(i)
	}
	// A worker that is idle takes a job straight from the channel, so the
	// channel's buffer is the backlog.
	i.jobs = make(chan engine.Invocation, i.backlog)
	return i
}

// Start runs the worker pool. Handlers run with a context derived from
// ctx, cancelled by Stop. Starting a running invoker does nothing.
func (i *Invoker) Start(ctx context.Context) error {
	ctx, ok, started, stopped := i.StartInit(ctx)
	if !ok {
		return nil
	}
	var wg sync.WaitGroup
	wg.Add(i.workers)
	for range i.workers {
		go i.worker(ctx, &wg)
	}
	i.mu.Lock()
	i.accepting = true
	i.mu.Unlock()
	started()
	go func() {
		wg.Wait()
		i.refuse() // also when the workers ended with the start context
		// Invocations that never started are dropped without a record:
		// local mode recovers them as interrupted (docs/architecture.md,
		// "Invariants" 2).
	drain:
		for {
			select {
			case <-i.jobs:
				i.inFlight.Add(-1)
			default:
				break drain
			}
		}
		stopped()
	}()
	return nil
}

// Stop stops accepting invocations, cancels the handlers' context and
// waits for the workers. A running handler that returns within the
// abandon grace still has its record sent; queued invocations are dropped
// (no record; local mode recovers them as interrupted). Use Close to let
// accepted invocations finish first.
func (i *Invoker) Stop() {
	i.refuse()
	i.Base.Stop()
}

func (i *Invoker) refuse() {
	i.mu.Lock()
	i.accepting = false
	i.mu.Unlock()
}

// Invoke accepts an invocation for asynchronous execution. It fails with
// engine.ErrPayloadTooLarge for payloads over the limit, ErrThrottled when
// all workers are busy and the backlog is full, and ErrClosed when the
// invoker is not running.
func (i *Invoker) Invoke(ctx context.Context, inv engine.Invocation) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if n := len(inv.Payload); n > i.maxPayload {
		return fmt.Errorf("invoke %s for step %q: %w: %d bytes, over the %d-byte limit of asynchronous invocations",
			inv.Handler, inv.Step, engine.ErrPayloadTooLarge, n, i.maxPayload)
	}
	if !json.Valid(inv.Payload) {
		return fmt.Errorf("invoke %s for step %q: payload is not valid JSON", inv.Handler, inv.Step)
	}
	inv.Payload = append([]byte(nil), inv.Payload...) // the caller may reuse its buffer
	i.mu.RLock()
	defer i.mu.RUnlock()
	if !i.accepting {
		return fmt.Errorf("invoke %s for step %q: %w", inv.Handler, inv.Step, ErrClosed)
	}
	if n := i.abandoned.Load(); n >= int64(i.maxAbandoned) {
		return fmt.Errorf("invoke %s for step %q: %w (%d abandoned, limit %d)", inv.Handler, inv.Step, ErrAbandoned, n, i.maxAbandoned)
	}
	i.inFlight.Add(1)
	select {
	case i.jobs <- inv:
		return nil
	default:
		i.inFlight.Add(-1)
		return fmt.Errorf("invoke %s for step %q: %w: backlog full (%d workers, backlog %d)", inv.Handler, inv.Step, ErrThrottled, i.workers, i.backlog)
	}
}

// InFlight counts accepted invocations whose record has not been sent yet
// (queued or running).
func (i *Invoker) InFlight() int { return int(i.inFlight.Load()) }

// Abandoned counts handlers that ran past their deadline, had a timeout
// reported for their attempt and still run (see WithAbandonGrace).
func (i *Invoker) Abandoned() int { return int(i.abandoned.Load()) }

// AbandonedTotal counts handlers ever abandoned.
func (i *Invoker) AbandonedTotal() int { return int(i.abandonedTotal.Load()) }

// Close stops accepting invocations and waits until the accepted ones have
// run and their records were sent, then stops the workers. If ctx ends
// first, it stops them anyway (see Stop) and returns ctx.Err(). Close may
// be called more than once, and before Start.
func (i *Invoker) Close(ctx context.Context) error {
	i.refuse()
	defer i.Stop()
	if i.Stopping() == nil {
		return nil // never started: nothing accepted
	}
	// Close runs once at shutdown; polling the counter is simpler than
	// signalling every decrement and costs nothing on the hot path.
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for i.inFlight.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

func (i *Invoker) worker(ctx context.Context, wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case inv := <-i.jobs:
			if ctx.Err() == nil {
				i.execute(ctx, inv)
			}
			i.inFlight.Add(-1)
		}
	}
}

// execute runs one invocation and sends its destination record.
func (i *Invoker) execute(ctx context.Context, inv engine.Invocation) {
	rec := contract.DestinationRecord{
		Version: "1.0",
		RequestContext: contract.RequestContext{
			RequestID:              uuid.NewString(),
			FunctionArn:            FunctionArn,
			Condition:              contract.ConditionSuccess,
			ApproximateInvokeCount: 1,
		},
		RequestPayload:  inv.Payload,
		ResponseContext: contract.ResponseContext{StatusCode: 200, ExecutedVersion: "$LATEST"},
	}
	// A Go handler deployed as its own function (sdk.RegisterFunction)
	// runs in process like any registered handler.
	if sdk.IsLambdaName(inv.Handler) && !i.reg.Has(inv.Handler) {
		resp, unhandled, found, err := i.runLambda(ctx, inv)
		switch {
		case err != nil:
			i.logger.Warn("local invoker: Lambda function stopped without an outcome; the step is recovered as interrupted",
				"correlation_id", inv.CorrelationID, "task_id", inv.TaskID, "step", inv.Step, "attempt", inv.Attempt,
				"handler", inv.Handler, "error", err)
			return
		case !found:
			rec.ResponsePayload = sdk.ErrorResponse(sdk.Permanent(sdk.WithCode(
				fmt.Errorf("handler %s is a Lambda function that local mode cannot run: map its name in lambdas.local.yaml (runtime, path, handler)", inv.Handler),
				CodeNotLocal)))
		case unhandled != nil:
			// As Lambda reports an unhandled error (docs/handlers.md, "Failures").
			rec.RequestContext.Condition = contract.ConditionRetriesExhausted
			rec.ResponseContext.FunctionError = "Unhandled"
			rec.ResponsePayload, _ = json.Marshal(unhandled)
		default:
			rec.ResponsePayload = resp
		}
	} else {
		resp, unhandled, stopped := i.runSafely(ctx, inv)
		if stopped {
			return // no record: recovered as interrupted, like a crash
		}
		if unhandled != nil {
			rec.RequestContext.Condition = contract.ConditionRetriesExhausted
			rec.ResponseContext.FunctionError = "Unhandled"
			resp, _ = json.Marshal(unhandled)
		}
		rec.ResponsePayload = resp
	}
	rec.Timestamp = time.Now().UTC().Truncate(time.Millisecond)
	body, err := encodeRecord(&rec)
	if err != nil {
		i.logger.Error("local invoker: encode destination record", "correlation_id", inv.CorrelationID,
			"task_id", inv.TaskID, "step", inv.Step, "attempt", inv.Attempt, "error", err)
		return
	}
	// The record must be delivered even while the invoker shuts down.
	if err := i.dest.Send(context.WithoutCancel(ctx), []engine.Message{{Body: body}}); err != nil {
		i.logger.Error("local invoker: send destination record; the sweep will time the step out",
			"correlation_id", inv.CorrelationID, "task_id", inv.TaskID, "step", inv.Step, "attempt", inv.Attempt, "error", err)
	}
}

// runSafely calls the handler runtime in its own goroutine; a panic that
// escapes it is an unhandled Lambda error. A handler still running
// abandonGrace past the payload's deadline (it ignores its context) is
// abandoned: the attempt gets a retryable timeout error and the worker
// moves on; the goroutine is counted until it returns. When ctx ends
// (Stop), the handler gets the abandon grace to return; after it, stopped
// is true and the worker moves on without a record.
func (i *Invoker) runSafely(ctx context.Context, inv engine.Invocation) (resp []byte, unhandled *contract.LambdaError, stopped bool) {
	type outcome struct {
		resp      []byte
		unhandled *contract.LambdaError
	}
	done := make(chan outcome, 1) // never blocks the handler's goroutine
	var (
		mu        sync.Mutex
		finished  bool // the goroutine sent its outcome
		abandoned bool // the worker moved on without it
	)
	go func() {
		var out outcome
		defer func() {
			if r := recover(); r != nil {
				i.logger.Error("local invoker: handler runtime panicked", "correlation_id", inv.CorrelationID,
					"task_id", inv.TaskID, "step", inv.Step, "attempt", inv.Attempt,
					"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				out = outcome{unhandled: &contract.LambdaError{ErrorMessage: fmt.Sprint(r), ErrorType: "Runtime.Panic"}}
			}
			done <- out
			mu.Lock()
			finished = true
			wasAbandoned := abandoned
			mu.Unlock()
			if wasAbandoned {
				n := i.abandoned.Add(-1)
				i.logger.Info("local invoker: abandoned handler returned", "correlation_id", inv.CorrelationID,
					"task_id", inv.TaskID, "step", inv.Step, "attempt", inv.Attempt, "abandoned", n)
			}
		}()
		out.resp = i.run(ctx, i.reg, inv.Payload, i.runOpts...)
	}()
	deadline := payloadDeadline(inv.Payload)
	timer := time.NewTimer(time.Until(deadline) + i.abandonGrace)
	defer timer.Stop()
	select {
	case out := <-done:
		return out.resp, out.unhandled, false
	case <-timer.C:
	case <-ctx.Done():
		grace := time.NewTimer(i.abandonGrace)
		defer grace.Stop()
		select {
		case out := <-done:
			return out.resp, out.unhandled, false
		case <-timer.C:
		case <-grace.C:
			stopped = true
		}
	}
	mu.Lock()
	if finished { // it returned just as the timer fired
		mu.Unlock()
		out := <-done
		return out.resp, out.unhandled, false
	}
	abandoned = true
	n := i.abandoned.Add(1)
	i.abandonedTotal.Add(1)
	mu.Unlock()
	if stopped {
		i.logger.Warn("local invoker: stopped while a handler ignored its cancellation; abandoning it without a record",
			"correlation_id", inv.CorrelationID, "task_id", inv.TaskID, "step", inv.Step, "attempt", inv.Attempt,
			"handler", inv.Handler, "abandoned", n)
		return nil, nil, true
	}
	i.logger.Warn("local invoker: handler ignored its deadline; reporting a timeout and abandoning it (it keeps running)",
		"correlation_id", inv.CorrelationID, "task_id", inv.TaskID, "step", inv.Step, "attempt", inv.Attempt,
		"handler", inv.Handler, "deadline", deadline, "abandoned", n, "max_abandoned", i.maxAbandoned)
	return sdk.ErrorResponse(sdk.WithCode(fmt.Errorf(
		"handler %s still running %s past its deadline %s (it ignores its context); abandoned", inv.Handler, i.abandonGrace,
		deadline.UTC().Format(time.RFC3339)), sdk.CodeTimeout)), nil, false
}

// runLambda runs a Lambda function with the configured runner.
func (i *Invoker) runLambda(ctx context.Context, inv engine.Invocation) (json.RawMessage, *contract.LambdaError, bool, error) {
	if i.lambdas == nil {
		return nil, nil, false, nil
	}
	return i.lambdas.RunHandler(ctx, inv.Handler, inv.Payload, payloadDeadline(inv.Payload))
}

// payloadDeadline is the payload's tasker.deadline, or MaxRun from now.
func payloadDeadline(payload []byte) time.Time {
	var p struct {
		Tasker struct {
			Deadline time.Time `json:"deadline"`
		} `json:"tasker"`
	}
	if err := json.Unmarshal(payload, &p); err != nil || p.Tasker.Deadline.IsZero() {
		return time.Now().Add(MaxRun)
	}
	return p.Tasker.Deadline
}

// encodeRecord encodes a destination record like json.Marshal would, but
// splices the payloads in verbatim: the request payload was validated by
// Invoke and the response comes from json.Marshal, so re-validating and
// compacting them (what json.Marshal does with a RawMessage) is wasted work
// on the hot path.
func encodeRecord(rec *contract.DestinationRecord) ([]byte, error) {
	if !json.Valid(rec.ResponsePayload) {
		return json.Marshal(rec) // reports the problem
	}
	head, err := json.Marshal(struct {
		Version        string                  `json:"version"`
		Timestamp      time.Time               `json:"timestamp"`
		RequestContext contract.RequestContext `json:"requestContext"`
	}{rec.Version, rec.Timestamp, rec.RequestContext})
	if err != nil {
		return nil, err
	}
	respCtx, err := json.Marshal(rec.ResponseContext)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 0, len(head)+len(respCtx)+len(rec.RequestPayload)+len(rec.ResponsePayload)+64)
	buf = append(buf, head[:len(head)-1]...)
	buf = append(buf, `,"requestPayload":`...)
	buf = append(buf, rec.RequestPayload...)
	buf = append(buf, `,"responseContext":`...)
	buf = append(buf, respCtx...)
	buf = append(buf, `,"responsePayload":`...)
	buf = append(buf, rec.ResponsePayload...)
	return append(buf, '}'), nil
}
