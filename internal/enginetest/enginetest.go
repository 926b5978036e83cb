// Package enginetest holds test doubles for the engine's ports — a manual
// clock, a recording queue, invoker and publisher — and a builder for the
// Lambda destination records handlers produce, so tests across packages can
// drive the engine deterministically.
//
// Import rules: only _test.go files import enginetest.
package enginetest

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/engine"
)

// Clock is a clock the test moves.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock stopped at start.
func NewClock(start time.Time) *Clock { return &Clock{now: start.UTC()} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Queue records sent messages; the test decides when they arrive.
type Queue struct {
	mu   sync.Mutex
	msgs []engine.Message
}

// Send records msgs.
func (q *Queue) Send(_ context.Context, msgs []engine.Message) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.msgs = append(q.msgs, msgs...)
	return nil
}

// Take returns and forgets the messages sent so far.
func (q *Queue) Take() []engine.Message {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.msgs
	q.msgs = nil
	return out
}

// Peek returns the messages sent so far without forgetting them.
func (q *Queue) Peek() []engine.Message {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]engine.Message(nil), q.msgs...)
}

// Invoker records invocations. Fail, when set, decides dispatch errors.
type Invoker struct {
	mu   sync.Mutex
	invs []engine.Invocation
	Fail func(engine.Invocation) error
}

// Invoke records inv unless Fail returns an error.
func (i *Invoker) Invoke(_ context.Context, inv engine.Invocation) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.Fail != nil {
		if err := i.Fail(inv); err != nil {
			return err
		}
	}
	i.invs = append(i.invs, inv)
	return nil
}

// Take returns and forgets the invocations recorded so far.
func (i *Invoker) Take() []engine.Invocation {
	i.mu.Lock()
	defer i.mu.Unlock()
	out := i.invs
	i.invs = nil
	return out
}

// Publisher collects lifecycle events.
type Publisher struct {
	mu     sync.Mutex
	events []engine.Event
}

// Publish records events.
func (p *Publisher) Publish(_ context.Context, evs []engine.Event) {
	p.mu.Lock()
	p.events = append(p.events, evs...)
	p.mu.Unlock()
}

// Events returns a copy of the events published so far.
func (p *Publisher) Events() []engine.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]engine.Event(nil), p.events...)
}

// Count returns how many events named name were published.
func (p *Publisher) Count(name engine.EventName) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, e := range p.events {
		if e.Name == name {
			n++
		}
	}
	return n
}

// Outcome is what a simulated handler did with one invocation.
type Outcome struct {
	Result any                    // the step result when Err and Crash are unset
	Err    *contract.HandlerError // a handled failure (error envelope)
	Crash  bool                   // an unhandled Lambda error
}

// Record returns the destination record Lambda would send for inv's outcome.
func Record(t testing.TB, inv engine.Invocation, o Outcome) []byte {
	t.Helper()
	rec := contract.DestinationRecord{
		Version:   "1.0",
		Timestamp: time.Now().UTC(),
		RequestContext: contract.RequestContext{
			RequestID: uuid.NewString(), FunctionArn: "arn:aws:lambda:us-east-1:123456789012:function:h:$LATEST",
			Condition: contract.ConditionSuccess, ApproximateInvokeCount: 1,
		},
		RequestPayload:  inv.Payload,
		ResponseContext: contract.ResponseContext{StatusCode: 200, ExecutedVersion: "$LATEST"},
	}
	var body any = o.Result
	switch {
	case o.Crash:
		rec.RequestContext.Condition = contract.ConditionRetriesExhausted
		rec.ResponseContext.FunctionError = "Unhandled"
		body = contract.LambdaError{ErrorMessage: "boom", ErrorType: "Runtime.ExitError"}
	case o.Err != nil:
		body = contract.ErrorEnvelope{TaskerError: o.Err}
	}
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	rec.ResponsePayload = b
	out, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Payload decodes inv's invocation payload.
func Payload(t testing.TB, inv engine.Invocation) contract.Payload {
	t.Helper()
	var p contract.Payload
	if err := json.Unmarshal(inv.Payload, &p); err != nil {
		t.Fatal(err)
	}
	return p
}
