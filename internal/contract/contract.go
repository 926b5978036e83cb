// Package contract holds the wire shapes that cross process boundaries:
// the handler invocation payload, the handler error envelope, scheduler
// queue messages and the Lambda destination record (docs/architecture.md, "Handler contract",
// "Queue messages").
//
// Import rules: this package imports only the standard library and uuid.
// Everything else (engine, stephandler, adapters, functions) may import it.
package contract

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// PayloadVersion is the version of the invocation payload in "tasker.version".
const PayloadVersion = 1

// Meta is the "tasker" object of an invocation payload.
type Meta struct {
	Version         int       `json:"version"`
	TaskID          uuid.UUID `json:"task_id"`
	StepID          uuid.UUID `json:"step_id"`
	Step            string    `json:"step"`
	Handler         string    `json:"handler"`
	Attempt         int       `json:"attempt"`
	MaxAttempts     int       `json:"max_attempts"`
	Namespace       string    `json:"namespace"`
	Workflow        string    `json:"workflow"`
	WorkflowVersion string    `json:"workflow_version"`
	IdempotencyKey  string    `json:"idempotency_key"`
	CorrelationID   string    `json:"correlation_id"`
	Deadline        time.Time `json:"deadline"`
	// TraceParent carries W3C trace context into the handler.
	TraceParent string `json:"traceparent,omitempty"`
	// CallbackToken completes, fails or extends this attempt through the
	// callback routes (POST /v1/callbacks/{token}/success|failure|heartbeat);
	// opaque, bound to the task, step and attempt.
	CallbackToken string `json:"callback_token,omitempty"`
}

// Payload is what a handler Lambda receives.
type Payload struct {
	Tasker  Meta                       `json:"tasker"`
	Context json.RawMessage            `json:"context"`
	Config  json.RawMessage            `json:"config"`
	Results map[string]json.RawMessage `json:"results"`
	// Map is {"index": i, "item": …} for an instance of a map step
	// (docs/control-flow.md, "Map"); absent otherwise.
	Map json.RawMessage `json:"map,omitempty"`
}

// IdempotencyKey is the key handed to handlers for one attempt of one step.
func IdempotencyKey(taskID uuid.UUID, step string, attempt int) string {
	return fmt.Sprintf("%s/%s/%d", taskID, step, attempt)
}

// HandlerError is the body of a handled failure.
type HandlerError struct {
	Message           string `json:"message"`
	Permanent         bool   `json:"permanent,omitempty"`
	RetryAfterSeconds int    `json:"retry_after_seconds,omitempty"`
	Code              string `json:"code,omitempty"`
}

// ErrorEnvelope is a handler response that reports a handled failure.
type ErrorEnvelope struct {
	TaskerError *HandlerError `json:"tasker_error"`
}

// AsHandlerError reports whether a handler response is an error envelope: a
// JSON object with a "tasker_error" member. A malformed envelope (wrong
// types, not an object) is still a failure — a handler that meant to fail
// must never be recorded as a success — reported as retryable with code
// "malformed_error".
func AsHandlerError(resp json.RawMessage) (*HandlerError, bool) {
	if len(resp) == 0 || resp[0] != '{' {
		return nil, false
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(resp, &probe); err != nil {
		return nil, false
	}
	raw, ok := probe["tasker_error"]
	if !ok || string(raw) == "null" {
		return nil, false
	}
	var he HandlerError
	if err := json.Unmarshal(raw, &he); err != nil {
		return &HandlerError{
			Message: fmt.Sprintf("handler returned a malformed tasker_error (%v): %.200s", err, raw),
			Code:    "malformed_error",
		}, true
	}
	if he.Message == "" {
		he.Message = "handler reported an error without a message"
	}
	return &he, true
}

// Message kinds on the scheduler queue.
const (
	KindWake = "wake"
)

// Wake asks the scheduler to evaluate a task. A wake-up sent for a
// waiting step's due time also names the step and attempt (older
// schedulers ignore those fields and the sweep moves the wait on).
type Wake struct {
	Kind    string    `json:"kind"`
	TaskID  uuid.UUID `json:"task_id"`
	StepID  uuid.UUID `json:"step_id,omitzero"`
	Attempt int       `json:"attempt,omitempty"`
}

// NewWaitWake returns the encoded wake-up for the due time of a waiting
// step attempt.
func NewWaitWake(taskID, stepID uuid.UUID, attempt int) []byte {
	b, _ := json.Marshal(Wake{Kind: KindWake, TaskID: taskID, StepID: stepID, Attempt: attempt}) // cannot fail
	return b
}

// NewWake returns the encoded wake-up for a task.
func NewWake(taskID uuid.UUID) []byte {
	b, _ := json.Marshal(Wake{Kind: KindWake, TaskID: taskID}) // cannot fail
	return b
}

// DefaultPendingTimeoutSeconds is how long a step whose handler answered
// tasker_pending waits for its callback unless the answer says otherwise.
const DefaultPendingTimeoutSeconds = 86400

// MaxWaitSeconds bounds a callback's timeout (365 days).
const MaxWaitSeconds = 31_536_000

// Pending is the body of a tasker_pending answer.
type Pending struct {
	TimeoutSeconds int `json:"timeout_seconds,omitempty"`
}

// AsPending reports whether a handler response is a tasker_pending answer
// (a JSON object with a "tasker_pending" member): the step waits for its
// callback for the returned number of seconds. A malformed one (not an
// object, a timeout outside 1..MaxWaitSeconds) is reported as a retryable
// failure with code "malformed_pending".
func AsPending(resp json.RawMessage) (timeoutSeconds int, failure *HandlerError, ok bool) {
	if len(resp) == 0 || resp[0] != '{' {
		return 0, nil, false
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(resp, &probe); err != nil {
		return 0, nil, false
	}
	raw, found := probe["tasker_pending"]
	if !found || string(raw) == "null" {
		return 0, nil, false
	}
	var p Pending
	if err := json.Unmarshal(raw, &p); err != nil {
		return 0, &HandlerError{Message: fmt.Sprintf("handler returned a malformed tasker_pending (%v): %.200s", err, raw),
			Code: "malformed_pending"}, true
	}
	switch {
	case p.TimeoutSeconds == 0:
		return DefaultPendingTimeoutSeconds, nil, true
	case p.TimeoutSeconds < 0 || p.TimeoutSeconds > MaxWaitSeconds:
		return 0, &HandlerError{Message: fmt.Sprintf("handler returned tasker_pending.timeout_seconds %d: want 1 to %d",
			p.TimeoutSeconds, MaxWaitSeconds), Code: "malformed_pending"}, true
	}
	return p.TimeoutSeconds, nil, true
}

// Destination conditions Lambda writes into requestContext.condition.
const (
	ConditionSuccess          = "Success"
	ConditionRetriesExhausted = "RetriesExhausted"
	ConditionEventAgeExceeded = "EventAgeExceeded"
)

// CodeEventExpired is the code of the retryable failure recorded for an
// invocation that was too old to matter when it could have run: Lambda
// dropped it from its queue (EventAgeExceeded), or the handler refused it
// because its deadline had passed (docs/deploy.md, "Throttling").
const CodeEventExpired = "event_expired"

// DestinationRecord is the record Lambda sends to an OnSuccess/OnFailure
// destination of an asynchronous invocation.
type DestinationRecord struct {
	Version         string          `json:"version"`
	Timestamp       time.Time       `json:"timestamp"`
	RequestContext  RequestContext  `json:"requestContext"`
	RequestPayload  json.RawMessage `json:"requestPayload"`
	ResponseContext ResponseContext `json:"responseContext"`
	ResponsePayload json.RawMessage `json:"responsePayload,omitempty"`
}

// RequestContext of a destination record.
type RequestContext struct {
	RequestID              string `json:"requestId"`
	FunctionArn            string `json:"functionArn"`
	Condition              string `json:"condition"`
	ApproximateInvokeCount int    `json:"approximateInvokeCount"`
}

// ResponseContext of a destination record.
type ResponseContext struct {
	StatusCode      int    `json:"statusCode"`
	ExecutedVersion string `json:"executedVersion"`
	FunctionError   string `json:"functionError,omitempty"`
}

// LambdaError is the responsePayload of an unhandled Lambda error.
type LambdaError struct {
	ErrorMessage string   `json:"errorMessage"`
	ErrorType    string   `json:"errorType"`
	StackTrace   []string `json:"stackTrace,omitempty"`
}

// Message is one decoded scheduler queue message: exactly one field is set.
type Message struct {
	Wake   *Wake
	Result *Result
}

// Result is a step outcome carried by a destination record.
type Result struct {
	TaskID  uuid.UUID
	StepID  uuid.UUID
	Step    string
	Attempt int
	// Output is the step result when Err is nil.
	Output json.RawMessage
	// Err is set for handled and unhandled failures.
	Err *HandlerError
}

// ErrMalformed marks a message that can never be processed.
var ErrMalformed = errors.New("malformed scheduler message")

// ParseMessage decodes a scheduler queue body: a wake-up or a Lambda
// destination record.
func ParseMessage(body []byte) (Message, error) {
	var probe struct {
		Kind           string          `json:"kind"`
		RequestContext json.RawMessage `json:"requestContext"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		return Message{}, fmt.Errorf("%w: not a JSON object: %v", ErrMalformed, err)
	}
	switch {
	case probe.Kind == KindWake:
		var w Wake
		if err := json.Unmarshal(body, &w); err != nil {
			return Message{}, fmt.Errorf("%w: wake: %v", ErrMalformed, err)
		}
		if w.TaskID == uuid.Nil {
			return Message{}, fmt.Errorf("%w: wake without task_id", ErrMalformed)
		}
		return Message{Wake: &w}, nil
	case probe.Kind != "":
		return Message{}, fmt.Errorf("%w: unknown kind %q", ErrMalformed, probe.Kind)
	case len(probe.RequestContext) > 0:
		r, err := ParseDestinationRecord(body)
		if err != nil {
			return Message{}, err
		}
		return Message{Result: &r}, nil
	default:
		return Message{}, fmt.Errorf("%w: neither a wake-up nor a destination record", ErrMalformed)
	}
}

// ParseDestinationRecord turns a Lambda destination record into a step result.
func ParseDestinationRecord(body []byte) (Result, error) {
	var rec DestinationRecord
	if err := json.Unmarshal(body, &rec); err != nil {
		return Result{}, fmt.Errorf("%w: destination record: %v", ErrMalformed, err)
	}
	var req struct {
		Tasker *Meta `json:"tasker"`
	}
	if err := json.Unmarshal(rec.RequestPayload, &req); err != nil || req.Tasker == nil {
		return Result{}, fmt.Errorf("%w: destination record without a tasker requestPayload", ErrMalformed)
	}
	m := req.Tasker
	if m.TaskID == uuid.Nil || m.StepID == uuid.Nil || m.Attempt < 1 {
		return Result{}, fmt.Errorf("%w: requestPayload.tasker lacks task_id, step_id or attempt", ErrMalformed)
	}
	res := Result{TaskID: m.TaskID, StepID: m.StepID, Step: m.Step, Attempt: m.Attempt}
	switch {
	case rec.RequestContext.Condition == ConditionSuccess && rec.ResponseContext.FunctionError == "":
		if he, ok := AsHandlerError(rec.ResponsePayload); ok {
			res.Err = he
			return res, nil
		}
		res.Output = rec.ResponsePayload
		if len(res.Output) == 0 {
			res.Output = json.RawMessage("null")
		}
	case rec.RequestContext.Condition == ConditionEventAgeExceeded:
		// Never a success, whatever the payload: the handler did not run.
		res.Output = nil
		res.Err = &HandlerError{Message: "invocation expired in the Lambda async queue (EventAgeExceeded) before the handler ran", Code: CodeEventExpired}
	default:
		var le LambdaError
		_ = json.Unmarshal(rec.ResponsePayload, &le) // best effort: any payload is an unhandled error
		msg := le.ErrorMessage
		if le.ErrorType != "" {
			msg = le.ErrorType + ": " + msg
		}
		if msg == "" {
			msg = "handler failed: " + rec.ResponseContext.FunctionError
		}
		res.Err = &HandlerError{Message: msg, Code: "unhandled"}
	}
	return res, nil
}
