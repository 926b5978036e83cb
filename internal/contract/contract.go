// Package contract holds the wire shapes that cross process boundaries:
// the handler invocation payload, the handler error envelope, scheduler
// queue messages and the Lambda destination record (docs/architecture.md, "Handler contract",
// "Queue messages").
//
// Import rules: this package imports only the standard library, uuid and
// sdk/contract, whose handler wire types it re-exports. Everything else
// (engine, sdk, adapters, functions) may import it.
package contract

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	sdkcontract "github.com/taskerhq/tasker/sdk/contract"
)

// The handler wire types are the public SDK's (sdk/contract): one
// definition for the engine and for handler code.
type (
	// Meta is the "tasker" object of an invocation payload.
	Meta = sdkcontract.Meta
	// Payload is what a handler receives.
	Payload = sdkcontract.Payload
	// HandlerError is the body of a handled failure.
	HandlerError = sdkcontract.HandlerError
	// ErrorEnvelope is a handler response that reports a handled failure.
	ErrorEnvelope = sdkcontract.ErrorEnvelope
	// Pending is the body of a tasker_pending answer.
	Pending = sdkcontract.Pending
	// Ref, RefEnvelope and Upload are the large-payload shapes
	// (docs/architecture.md, "Large payloads").
	Ref         = sdkcontract.Ref
	RefEnvelope = sdkcontract.RefEnvelope
	Upload      = sdkcontract.Upload
)

// AsRef reports whether v is a reference ({"tasker_ref":…}); see
// sdkcontract.AsRef.
func AsRef(v json.RawMessage) (*Ref, bool, error) { return sdkcontract.AsRef(v) }

// Constants of the handler contract (sdk/contract).
const (
	PayloadVersion               = sdkcontract.PayloadVersion
	DefaultPendingTimeoutSeconds = sdkcontract.DefaultPendingTimeoutSeconds
	MaxWaitSeconds               = sdkcontract.MaxWaitSeconds
)

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

// IdempotencyKey is sdkcontract.IdempotencyKey: "<task_id>/<step>", then
// "/<n>" after the n-th operator retry.
func IdempotencyKey(taskID uuid.UUID, step string, operatorRetries int) string {
	return sdkcontract.IdempotencyKey(taskID, step, operatorRetries)
}

// AsHandlerError is sdkcontract.AsHandlerError.
func AsHandlerError(resp json.RawMessage) (*HandlerError, bool) {
	return sdkcontract.AsHandlerError(resp)
}

// AsPending is sdkcontract.AsPending.
func AsPending(resp json.RawMessage) (timeoutSeconds int, failure *HandlerError, ok bool) {
	return sdkcontract.AsPending(resp)
}
