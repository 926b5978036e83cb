package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"time"

	"github.com/taskerhq/tasker/sdk/contract"
)

// Error is a handler failure with instructions for the engine. Build one
// with Permanent, RetryAfter or WithCode; inspect one with errors.As.
// Helpers stack: Permanent(WithCode(err, "x")) is permanent with code "x".
type Error struct {
	// Err is the underlying failure; its message is reported.
	Err error
	// Permanent failures are not retried.
	Permanent bool
	// RetryAfter asks for the next attempt no sooner than this (the
	// engine caps it by the step's max backoff). Zero: the engine's backoff.
	RetryAfter time.Duration
	// Code is a short machine-readable reason, e.g. "card_declined".
	Code string
}

func (e *Error) Error() string {
	if e.Err == nil {
		return "step failed"
	}
	return e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// wrap returns a new *Error around err that inherits the instructions of
// any *Error already in err's chain.
func wrap(err error) *Error {
	out := &Error{Err: err}
	var inner *Error
	if errors.As(err, &inner) {
		out.Permanent, out.RetryAfter, out.Code = inner.Permanent, inner.RetryAfter, inner.Code
	}
	return out
}

// Permanent marks err as not worth retrying: the step fails at once.
// Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	e := wrap(err)
	e.Permanent = true
	return e
}

// RetryAfter marks err as retryable no sooner than d (rounded up to whole
// seconds on the wire). RetryAfter(nil, d) is nil.
func RetryAfter(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	e := wrap(err)
	e.RetryAfter = d
	return e
}

// WithCode attaches a machine-readable code to err. WithCode(nil, c) is nil.
func WithCode(err error, code string) error {
	if err == nil {
		return nil
	}
	e := wrap(err)
	e.Code = code
	return e
}

// Error codes the SDK itself reports.
const (
	CodePanic          = "panic"
	CodeUnknownHandler = "unknown_handler"
	CodeInvalidPayload = "invalid_payload"
	CodeInvalidResult  = "invalid_result"
	CodeResultTooLarge = "result_too_large"
	CodeTimeout        = "timeout"
)

// HandlerError converts any error into the wire form of docs/architecture.md,
// "Handler contract". Errors
// without an *Error in their chain are retryable; context deadline errors
// get the code "timeout" unless they carry one.
func HandlerError(err error) contract.HandlerError {
	he := contract.HandlerError{Message: "step failed"}
	if err == nil {
		return he
	}
	if msg := err.Error(); msg != "" {
		he.Message = msg
	}
	var e *Error
	if errors.As(err, &e) {
		he.Permanent = e.Permanent
		he.Code = e.Code
		if e.RetryAfter > 0 {
			he.RetryAfterSeconds = int(math.Ceil(e.RetryAfter.Seconds()))
		}
	}
	if he.Code == "" && errors.Is(err, context.DeadlineExceeded) {
		he.Code = CodeTimeout
	}
	return he
}

// envelope is the exact response of a handled failure. Unlike
// contract.HandlerError it always spells out all four fields, so any
// consumer sees one stable shape.
type envelope struct {
	TaskerError envelopeBody `json:"tasker_error"`
}

type envelopeBody struct {
	Message           string `json:"message"`
	Permanent         bool   `json:"permanent"`
	RetryAfterSeconds int    `json:"retry_after_seconds"`
	Code              string `json:"code"`
}

// ErrorResponse encodes err as the handler response of a handled failure:
// {"tasker_error":{"message":…,"permanent":…,"retry_after_seconds":…,"code":…}}.
func ErrorResponse(err error) []byte {
	he := HandlerError(err)
	b, mErr := json.Marshal(envelope{TaskerError: envelopeBody{
		Message:           he.Message,
		Permanent:         he.Permanent,
		RetryAfterSeconds: he.RetryAfterSeconds,
		Code:              he.Code,
	}})
	if mErr != nil { // cannot happen: strings and scalars only
		return []byte(`{"tasker_error":{"message":"step failed","permanent":false,"retry_after_seconds":0,"code":""}}`)
	}
	return b
}
