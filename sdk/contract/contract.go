// Package contract holds the handler wire contract (docs/architecture.md,
// "Handler contract"): the invocation payload a handler receives, the
// error envelope and tasker_pending answer it may return, and the format of
// the idempotency key. Handlers in any language speak these shapes; the Go
// SDK (package sdk) decodes and encodes them for you.
//
// The package imports only the standard library and uuid, so the engine's
// internal/contract can alias these types and both sides share one
// definition.
package contract

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// PayloadVersion is the version of the invocation payload in "tasker.version".
const PayloadVersion = 1

// MaxPayloadBytes bounds an invocation payload and a step result: a Lambda
// destination record carries both, and SQS and Lambda bound their sizes.
const MaxPayloadBytes = 256 << 10

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
	// IdempotencyKey is stable across the automatic retries of a step
	// (see IdempotencyKey); Attempt tells the attempts apart.
	IdempotencyKey string    `json:"idempotency_key"`
	CorrelationID  string    `json:"correlation_id"`
	Deadline       time.Time `json:"deadline"`
	// TraceParent carries W3C trace context into the handler.
	TraceParent string `json:"traceparent,omitempty"`
	// CallbackToken completes, fails or extends this attempt through the
	// callback routes (POST /v1/callbacks/{token}/success|failure|heartbeat);
	// opaque, bound to the task, step and attempt.
	CallbackToken string `json:"callback_token,omitempty"`
	// ResultUpload is where a result over its InlineLimit goes (present
	// when large payloads are on; docs/handlers.md, "Large payloads").
	ResultUpload *Upload `json:"result_upload,omitempty"`
}

// Ref is the reference that stands, in a payload, for a context or result
// stored out of line: {"tasker_ref":{"uri","size","sha256","url"}}. URI
// names the stored value (s3://bucket/key on AWS, pg:key locally), Size is
// its length in bytes and SHA256 the hex digest of those bytes (the JSON
// text). URL, present only in invocation payloads, is a time-limited HTTP
// GET URL that returns the bytes (docs/handlers.md, "Large payloads").
type Ref struct {
	URI    string `json:"uri"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	URL    string `json:"url,omitempty"`
}

// RefEnvelope is a value replaced by a reference.
type RefEnvelope struct {
	Ref *Ref `json:"tasker_ref"`
}

// Upload tells a handler where to put a large result: a result whose JSON
// is longer than InlineLimit bytes (and at most MaxBytes) is sent with an
// HTTP PUT of the JSON bytes to URL, and the handler returns
// {"tasker_ref":{"uri":URI,"size":…,"sha256":…}} instead.
type Upload struct {
	URL         string `json:"url"`
	URI         string `json:"uri"`
	InlineLimit int    `json:"inline_limit"`
	MaxBytes    int64  `json:"max_bytes"`
}

// AsRef reports whether v is a reference: a JSON object whose only member
// is "tasker_ref". A "tasker_ref" that is not a well-formed reference
// returns an error, so a malformed reference is never taken for data.
func AsRef(v json.RawMessage) (*Ref, bool, error) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 || v[0] != '{' || !bytes.Contains(v, []byte(`"tasker_ref"`)) {
		return nil, false, nil
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(v, &probe); err != nil {
		return nil, false, nil
	}
	raw, ok := probe["tasker_ref"]
	if !ok || len(probe) != 1 {
		return nil, false, nil
	}
	var r Ref
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, true, fmt.Errorf("malformed tasker_ref: %w", err)
	}
	if r.URI == "" || r.Size < 0 || len(r.SHA256) != 64 {
		return nil, true, fmt.Errorf("malformed tasker_ref: want uri, size >= 0 and a 64-digit hex sha256, got %.200s", raw)
	}
	return &r, true, nil
}

// Payload is what a handler receives.
type Payload struct {
	Tasker  Meta                       `json:"tasker"`
	Context json.RawMessage            `json:"context"`
	Config  json.RawMessage            `json:"config"`
	Results map[string]json.RawMessage `json:"results"`
	// Map is {"index": i, "item": …} for an instance of a map step
	// (docs/control-flow.md, "Map"); absent otherwise.
	Map json.RawMessage `json:"map,omitempty"`
}

// IdempotencyKeyHeader is the HTTP header the built-in tasker.http handler
// sends the idempotency key in.
const IdempotencyKeyHeader = "Idempotency-Key"

// IdempotencyKey is the key of a step's side effects: "<task_id>/<step>",
// the same for every automatic retry, so a service that saw the first
// attempt can recognise the retry of a request whose answer was lost.
// After the n-th operator retry of the task (operatorRetries = n > 0) it is
// "<task_id>/<step>/<n>": an operator asking to run the step again means
// it, so the key changes.
func IdempotencyKey(taskID uuid.UUID, step string, operatorRetries int) string {
	return withRetries(taskID.String()+"/"+step, operatorRetries)
}

// MapIdempotencyKey is the key of instance index of a map step:
// "<task_id>/<step>[<index>]", then "/<n>" after the n-th operator retry.
func MapIdempotencyKey(taskID uuid.UUID, step string, index, operatorRetries int) string {
	return withRetries(fmt.Sprintf("%s/%s[%d]", taskID, step, index), operatorRetries)
}

func withRetries(key string, operatorRetries int) string {
	if operatorRetries > 0 {
		key += "/" + strconv.Itoa(operatorRetries)
	}
	return key
}

// HandlerError is the body of a handled failure, the "tasker_error" member
// of an error envelope.
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

// DefaultPendingTimeoutSeconds is how long a step whose handler answered
// tasker_pending waits for its callback unless the answer says otherwise.
const DefaultPendingTimeoutSeconds = 86400

// MaxWaitSeconds bounds a callback's timeout (365 days).
const MaxWaitSeconds = 31_536_000

// Pending is the body of a tasker_pending answer, the "tasker_pending"
// member of the result.
type Pending struct {
	TimeoutSeconds int `json:"timeout_seconds,omitempty"`
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
