// Package local is the in-process asynchronous invoker of local mode
// (docs/architecture.md, "Handler contract", "Local mode"). It runs registered Go handlers on a bounded worker pool
// and, for every invocation, sends to the destination queue the Lambda
// destination record that AWS would have sent, so results follow the same
// code path as on AWS.
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
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/stephandler"
)

// Defaults and limits.
const (
	DefaultWorkers = 64
	DefaultBacklog = 1024
	// MaxPayloadBytes is the Lambda limit on an asynchronous invocation
	// payload that local mode mirrors.
	MaxPayloadBytes = 256 << 10
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
	// full; like Lambda throttling, the caller should try again later.
	ErrThrottled = errors.New("invoker throttled: backlog full")
	// ErrAbandoned is returned (wrapped) by Invoke while
	// WithMaxAbandoned handlers ignore their deadline and still run; like
	// throttling, the caller should try again later.
	ErrAbandoned = errors.New("invoker throttled: too many handlers still running past their deadline")
	// ErrClosed is returned (wrapped) by Invoke after Close.
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

// WithRunOptions passes options to stephandler.Run (e.g. the result limit).
func WithRunOptions(opts ...stephandler.Option) Option {
	return func(i *Invoker) { i.runOpts = append(i.runOpts, opts...) }
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
	reg        *stephandler.Registry
	dest       engine.Queue
	workers    int
	backlog    int
	maxPayload int
	// abandonGrace and maxAbandoned: see WithAbandonGrace, WithMaxAbandoned.
	abandonGrace   time.Duration
	maxAbandoned   int
	abandoned      atomic.Int64 // abandoned handlers still running
	abandonedTotal atomic.Int64
	runOpts        []stephandler.Option
	logger         *slog.Logger
	// run is stephandler.Run; tests replace it.
	run func(ctx context.Context, reg *stephandler.Registry, payload []byte, opts ...stephandler.Option) []byte

	ctx    context.Context // handlers' context; cancelled when Close gives up
	cancel context.CancelFunc

	mu       sync.RWMutex
	closed   bool
	jobs     chan engine.Invocation
	wg       sync.WaitGroup
	inFlight atomic.Int64
}

var _ engine.Invoker = (*Invoker)(nil)

// New starts an invoker running handlers from reg and sending destination
// records to dest. Call Close to stop it.
func New(reg *stephandler.Registry, dest engine.Queue, opts ...Option) *Invoker {
	i := &Invoker{
		reg:        reg,
		dest:       dest,
		workers:    DefaultWorkers,
		backlog:    DefaultBacklog,
		maxPayload: MaxPayloadBytes,

		abandonGrace: DefaultAbandonGrace,
		maxAbandoned: DefaultMaxAbandoned,
		logger:       slog.Default(),
		run:          stephandler.Run,
	}
	for _, o := range opts {
		o(i)
	}
	i.ctx, i.cancel = context.WithCancel(context.Background())
	// A worker that is idle takes a job straight from the channel, so the
	// channel's buffer is the backlog.
	i.jobs = make(chan engine.Invocation, i.backlog)
	i.wg.Add(i.workers)
	for range i.workers {
		go i.worker()
	}
	return i
}

// Invoke accepts an invocation for asynchronous execution. It fails with
// engine.ErrPayloadTooLarge for payloads over the limit, ErrThrottled when
// all workers are busy and the backlog is full, and ErrClosed after Close.
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
	if i.closed {
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
		return fmt.Errorf("invoke %s for step %q: %w (%d workers, backlog %d)", inv.Handler, inv.Step, ErrThrottled, i.workers, i.backlog)
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
// run and their records were sent. If ctx ends first, it cancels the
// handlers' context, drops invocations that have not started (no record:
// local mode recovers them as interrupted) and returns ctx.Err() without
// waiting for running handlers. Close may be called more than once.
func (i *Invoker) Close(ctx context.Context) error {
	i.mu.Lock()
	if !i.closed {
		i.closed = true
		close(i.jobs)
	}
	i.mu.Unlock()
	done := make(chan struct{})
	go func() {
		i.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		i.cancel()
		return nil
	case <-ctx.Done():
		i.cancel()
		return ctx.Err()
	}
}

func (i *Invoker) worker() {
	defer i.wg.Done()
	for inv := range i.jobs {
		if i.ctx.Err() == nil {
			i.execute(inv)
		}
		i.inFlight.Add(-1)
	}
}

// execute runs one invocation and sends its destination record.
func (i *Invoker) execute(inv engine.Invocation) {
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
	if stephandler.IsLambdaName(inv.Handler) {
		rec.ResponsePayload = stephandler.ErrorResponse(stephandler.Permanent(stephandler.WithCode(
			fmt.Errorf("handler %s is a Lambda function; local mode runs only registered Go handlers", inv.Handler),
			CodeNotLocal)))
	} else {
		resp, unhandled := i.runSafely(inv)
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
	if err := i.dest.Send(context.WithoutCancel(i.ctx), []engine.Message{{Body: body}}); err != nil {
		i.logger.Error("local invoker: send destination record; the sweep will time the step out",
			"correlation_id", inv.CorrelationID, "task_id", inv.TaskID, "step", inv.Step, "attempt", inv.Attempt, "error", err)
	}
}

// runSafely calls the handler runtime in its own goroutine; a panic that
// escapes it is an unhandled Lambda error. A handler still running
// abandonGrace past the payload's deadline (it ignores its context) is
// abandoned: the attempt gets a retryable timeout error and the worker
// moves on; the goroutine is counted until it returns.
func (i *Invoker) runSafely(inv engine.Invocation) (resp []byte, unhandled *contract.LambdaError) {
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
		out.resp = i.run(i.ctx, i.reg, inv.Payload, i.runOpts...)
	}()
	deadline := payloadDeadline(inv.Payload)
	timer := time.NewTimer(time.Until(deadline) + i.abandonGrace)
	defer timer.Stop()
	select {
	case out := <-done:
		return out.resp, out.unhandled
	case <-timer.C:
	}
	mu.Lock()
	if finished { // it returned just as the timer fired
		mu.Unlock()
		out := <-done
		return out.resp, out.unhandled
	}
	abandoned = true
	n := i.abandoned.Add(1)
	i.abandonedTotal.Add(1)
	mu.Unlock()
	i.logger.Warn("local invoker: handler ignored its deadline; reporting a timeout and abandoning it (it keeps running)",
		"correlation_id", inv.CorrelationID, "task_id", inv.TaskID, "step", inv.Step, "attempt", inv.Attempt,
		"handler", inv.Handler, "deadline", deadline, "abandoned", n, "max_abandoned", i.maxAbandoned)
	return stephandler.ErrorResponse(stephandler.WithCode(fmt.Errorf(
		"handler %s still running %s past its deadline %s (it ignores its context); abandoned", inv.Handler, i.abandonGrace,
		deadline.UTC().Format(time.RFC3339)), stephandler.CodeTimeout)), nil
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
