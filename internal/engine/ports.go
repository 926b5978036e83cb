package engine

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
)

// Queue sends messages to the scheduler queue (SQS on AWS, in-process locally).
// A message with a Delay is delivered no earlier than that; implementations
// may cap Delay (SQS: 900 s) because the sweep finds later work anyway.
type Queue interface {
	Send(ctx context.Context, msgs []Message) error
}

// Message is one scheduler queue message.
type Message struct {
	Body       []byte
	Delay      time.Duration
	Attributes map[string]string
}

// Invoker dispatches one step invocation asynchronously. It returns once the
// invocation is accepted; the outcome arrives later as a destination record
// on the scheduler queue.
type Invoker interface {
	Invoke(ctx context.Context, inv Invocation) error
}

// Invocation is one step attempt to dispatch.
type Invocation struct {
	TaskID  uuid.UUID
	StepID  uuid.UUID
	Step    string
	Attempt int
	// Handler is the template's handler: a registered Go handler name, a
	// built-in (tasker.*), or a Lambda function name or ARN.
	Handler string
	// Payload is the JSON invocation payload (contract.Payload).
	Payload []byte
	// CorrelationID is the task's correlation id, for adapters' log lines.
	CorrelationID string
}

// ErrPayloadTooLarge is returned (wrapped) by an Invoker when the payload can
// never be accepted; the step fails permanently instead of being retried.
var ErrPayloadTooLarge = errors.New("invocation payload too large")

// ErrThrottled is returned (wrapped) by an Invoker that refuses an
// invocation for lack of capacity (Lambda throttling, a full local
// backlog); the caller should try again later.
var ErrThrottled = errors.New("invoke throttled")

// Clock tells the time; tests use a manual clock.
type Clock interface {
	Now() time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns the current UTC time.
func (SystemClock) Now() time.Time { return time.Now().UTC() }

// Publisher receives lifecycle events after the state change they describe
// has committed. It must not block for long and never fails the engine.
type Publisher interface {
	Publish(ctx context.Context, events []Event)
}

// InMessage is one received scheduler queue message.
type InMessage struct {
	ID   string
	Body []byte
	// Attributes are the message attributes (and the AWSTraceHeader system
	// attribute); trace context in them links the scheduler.batch span.
	Attributes map[string]string
	// ReadyAt is when the message became available (sent, or its delay
	// ended); zero if unknown. It measures queue lag.
	ReadyAt time.Time
}
