// Package service is the one lifecycle contract of Tasker's long-running
// components (docs/architecture.md, "Services"): the sweeper, the local
// queue consumers, the local invoker, the EventBridge publisher, the HTTP
// server and the tracing provider. Constructors only build; Start starts
// the goroutines and Stop ends them, so a composition (devserver,
// lambdaapp) decides when anything runs and can stop everything it
// started, in order.
//
// The shape follows River's startstop package: Start is idempotent (a
// second Start of a running service does nothing), Stop is idempotent and
// blocks until the service's goroutines have returned, Stop without Start
// returns at once, and Started reports when a service is running.
//
// Import rules: service is a leaf; it imports only the standard library.
package service

import (
	"context"
	"sync"
)

// Service is a component with goroutines of its own.
type Service interface {
	// Start starts the service's goroutines and returns; they run until
	// Stop or until ctx is cancelled (callers that must outlive a request
	// pass context.WithoutCancel). Starting a running service does nothing
	// and returns nil. An error means nothing is left running.
	Start(ctx context.Context) error
	// Stop ends the service's goroutines and waits for them. It is safe to
	// call more than once, concurrently, and without Start.
	Stop()
}

// Base gives a service idempotent Start and Stop. Embed it and write
// Start as:
//
//	func (s *S) Start(ctx context.Context) error {
//		ctx, ok, started, stopped := s.StartInit(ctx)
//		if !ok {
//			return nil // already running
//		}
//		go func() {
//			started()
//			defer stopped()
//			s.run(ctx) // returns when ctx is cancelled
//		}()
//		return nil
//	}
//
// A Start that fails after StartInit calls stopped before returning.
// The zero value is ready to use; a Base must not be copied.
type Base struct {
	mu      sync.Mutex
	running bool               // between StartInit and the end of Stop
	cancel  context.CancelFunc // cancels the run context
	started chan struct{}      // closed by started(); replaced after a stop
	stopped chan struct{}      // closed by stopped()
}

// StartInit begins a start. When the service is already running (or still
// stopping) ok is false and the caller returns without starting anything.
// Otherwise ctx is the run context, cancelled by Stop; started is called
// once the service is up and stopped once all its goroutines returned.
func (b *Base) StartInit(ctx context.Context) (runCtx context.Context, ok bool, started, stopped func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.running {
		select {
		case <-b.stopped: // ended on its own (its start context was cancelled)
			b.reset()
		default:
			return ctx, false, nil, nil
		}
	}
	b.running = true
	if b.started == nil {
		b.started = make(chan struct{})
	}
	startedCh, stoppedCh := b.started, make(chan struct{})
	b.stopped = stoppedCh
	runCtx, b.cancel = context.WithCancel(ctx)
	return runCtx, true, sync.OnceFunc(func() { close(startedCh) }), sync.OnceFunc(func() { close(stoppedCh) })
}

// Started returns a channel closed once the current (or next) start has
// called started. After a Stop it is a new channel.
func (b *Base) Started() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started == nil {
		b.started = make(chan struct{})
	}
	return b.started
}

// Stop cancels the run context and waits until stopped was called. It is
// a no-op when the service is not running; concurrent calls all wait.
func (b *Base) Stop() {
	b.mu.Lock()
	if !b.running {
		b.mu.Unlock()
		return
	}
	cancel, stoppedCh := b.cancel, b.stopped
	b.mu.Unlock()
	cancel()
	<-stoppedCh
	b.mu.Lock()
	// Concurrent Stops all get here; the first resets. A Start in between
	// may have begun a new run already (the old one had ended), so compare.
	if b.running && b.stopped == stoppedCh {
		b.reset()
	}
	b.mu.Unlock()
}

// reset marks the service stopped; b.mu is held.
func (b *Base) reset() {
	b.running = false
	b.started = nil
	b.cancel()
	b.cancel = nil
}

// Stopping returns a channel closed when the current run's goroutines have
// all returned, or nil when the service is not running. Services use it to
// stop waiting on a loop that is gone (e.g. a flush during Stop).
func (b *Base) Stopping() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.running {
		return nil
	}
	return b.stopped
}

// Group starts services in order and stops them in reverse order, so a
// service stops after those that depend on it (docs/architecture.md,
// "Services").
type Group []Service

// Start starts each service; when one fails, the ones already started are
// stopped and the error returned.
func (g Group) Start(ctx context.Context) error {
	for i, s := range g {
		if err := s.Start(ctx); err != nil {
			g[:i].Stop()
			return err
		}
	}
	return nil
}

// Stop stops the services in reverse order.
func (g Group) Stop() {
	for i := len(g) - 1; i >= 0; i-- {
		g[i].Stop()
	}
}
