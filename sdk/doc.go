// Package sdk is the Go SDK for step handlers (docs/handlers.md).
//
// A Handler receives an Input — the invocation payload with typed
// accessors for the task context, the step config and the parents' results
// — and returns any JSON-encodable result or an error. Errors are retryable
// unless wrapped with Permanent; RetryAfter asks for a minimum delay and
// WithCode attaches a machine-readable code.
//
// Handlers are registered by name in a Registry (which always holds the
// built-ins tasker.noop and tasker.http). Run executes one invocation and
// produces exactly the wire response of the contract: the result JSON, or
// {"tasker_error":{"message","permanent","retry_after_seconds","code"}}.
// LambdaHandler wraps Run for lambda.Start; the local invoker calls Run
// in process.
//
// Execution is at-least-once: use Input.IdempotencyKey, the same for every
// automatic retry of a step, to make side effects idempotent.
//
// Observability (docs/observability.md): Run starts a step.execute span as
// a child of the dispatch span whose context the payload carries in
// tasker.traceparent (WithTracerProvider); logs with the task's
// correlation_id, task_id, step and attempt, and hands handlers the same
// logger through Logger(ctx) (WithLogger); and reports each execution to an
// Observer (WithObserver), which Tasker's functions turn into metrics.
//
// The wire shapes themselves are in sdk/contract; sdk/sdktest runs a
// handler against a payload in tests.
package sdk
