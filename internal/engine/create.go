package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskerhq/tasker/internal/domain"
	"github.com/taskerhq/tasker/internal/jsonb"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/telemetry"
	"github.com/taskerhq/tasker/internal/template"
)

// CreateRequest asks for a new task.
type CreateRequest struct {
	Namespace      string
	Name           string
	Version        string // empty: the highest version
	Context        json.RawMessage
	Initiator      string
	SourceSystem   string
	Reason         string
	Tags           []string
	IdempotencyKey string
	// IdempotencyScope is who may replay IdempotencyKey: the key is unique
	// within its scope only, and a replay from another scope is a new key
	// (docs/security.md, "Idempotency keys"). The API uses "sub:<subject>"
	// for an authenticated caller and "" (the whole deployment) when auth is
	// off; triggers use TriggerScope.
	IdempotencyScope string
	CorrelationID    string // empty: generated
	Actor            string
}

// TriggerScope is the idempotency scope of tasks started by triggers; no
// API caller's scope is ever this one.
const TriggerScope = "trigger"

// requestHash is the sha256 (hex) of a canonical encoding of what the
// caller asked for: the workflow and version as requested, the context
// (decoded and re-encoded, so key order and white space do not matter),
// initiator, source system, reason and tags. A replayed idempotency key
// must come with the same hash.
func requestHash(req CreateRequest) (string, error) {
	d := json.NewDecoder(bytes.NewReader(req.Context))
	d.UseNumber()
	var c any
	if err := d.Decode(&c); err != nil {
		return "", fmt.Errorf("request hash: %w", err)
	}
	tags := req.Tags
	if tags == nil {
		tags = []string{}
	}
	b, err := json.Marshal([]any{"v1", req.Namespace, req.Name, req.Version, c,
		req.Initiator, req.SourceSystem, req.Reason, tags})
	if err != nil {
		return "", fmt.Errorf("request hash: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// Created is the outcome of CreateTask.
type Created struct {
	TaskID  uuid.UUID
	Version string
	// Created is false when the idempotency key matched an existing task.
	Created bool
}

// CreateTask validates the context against the template's schema and
// materialises the task with its steps and edges in one transaction, then
// wakes the scheduler. Errors: template.ErrNotFound (wrapped) for an unknown
// workflow, *template.ContextError for an invalid context (including one
// PostgreSQL cannot store, and one too large to fit in a handler payload:
// Config.MaxPayloadBytes), ErrIdempotencyConflict for an idempotency key
// already used in its scope with another request.
//
// With tracing on, the task.create span (a child of the span in ctx, e.g.
// the API request) roots the task's trace: its context is stored with the
// task so every later pass, dispatch and handler run joins that trace.
func (e *Engine) CreateTask(ctx context.Context, req CreateRequest) (out Created, err error) {
	ctx, span := e.tracer.Start(ctx, SpanTaskCreate, trace.WithAttributes(
		AttrNamespace.String(req.Namespace), AttrWorkflow.String(req.Name)))
	defer func() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()
	tpl, err := e.cfg.Templates.Get(req.Namespace, req.Name, req.Version)
	if err != nil {
		return Created{}, err
	}
	if len(req.Context) == 0 {
		req.Context = json.RawMessage("{}")
	}
	// The idempotency hash covers the context as sent; the stored one has
	// the schema's defaults, as the Rails engine stores it
	// (docs/templates.md, "Defaults").
	sent := req.Context
	if req.Context, err = tpl.ApplyDefaults(req.Context); err != nil {
		return Created{}, err
	}
	// A context PostgreSQL cannot store is refused like one the schema
	// refuses (the trigger path has no API check in front of it).
	var je *jsonb.Error
	if err := jsonb.Check(req.Context); errors.As(err, &je) {
		return Created{}, &template.ContextError{Violations: []template.Violation{{Pointer: je.Pointer, Message: je.Detail()}}}
	}
	if limit := e.cfg.PayloadMaxBytes; e.cfg.Blobs != nil && len(req.Context) > limit {
		return Created{}, &template.ContextError{Violations: []template.Violation{{Pointer: "", Message: fmt.Sprintf(
			"context is %d bytes, over the %d-byte limit on task contexts (TASKER_PAYLOAD_MAX_BYTES)", len(req.Context), limit)}}}
	}
	if limit := e.cfg.MaxPayloadBytes; e.cfg.Blobs == nil && limit > 0 && len(req.Context)+PayloadReserve > limit {
		return Created{}, &template.ContextError{Violations: []template.Violation{{Pointer: "", Message: fmt.Sprintf(
			"context is %d bytes; with the %d bytes every handler payload needs beside it, it cannot fit in the %d-byte payload limit of handler invocations",
			len(req.Context), PayloadReserve, limit)}}}
	}
	if err := tpl.ValidateContext(req.Context); err != nil {
		return Created{}, err
	}
	var hash string
	if req.IdempotencyKey != "" {
		hashed := req
		hashed.Context = sent
		if hash, err = requestHash(hashed); err != nil {
			return Created{}, err
		}
	}
	if req.CorrelationID == "" {
		req.CorrelationID = uuid.NewString()
	}
	now := e.clock.Now()
	id, err := uuid.NewV7()
	if err != nil {
		return Created{}, fmt.Errorf("new task id: %w", err)
	}
	nt := store.NewTask{
		ID: id, Namespace: tpl.Namespace, Name: tpl.Name, Version: tpl.Version, Context: req.Context,
		Initiator: req.Initiator, SourceSystem: req.SourceSystem, Reason: req.Reason, Tags: req.Tags,
		IdempotencyScope: req.IdempotencyScope, IdempotencyKey: req.IdempotencyKey, RequestHash: hash,
		CorrelationID: req.CorrelationID, Actor: req.Actor, Now: now,
		TraceParent: telemetry.TraceParent(ctx),
	}
	if e.cfg.Blobs != nil && len(req.Context) > e.cfg.PayloadInlineBytes {
		// Stored before the task row. A replay of an idempotency key
		// stores a copy under its own (unused) task id that nothing
		// references (docs/architecture.md, "Large payloads": retention).
		if nt.Context, err = e.offload(ctx, contextKey(id), req.Context); err != nil {
			return Created{}, err
		}
	}
	for _, st := range tpl.Steps {
		sid, err := uuid.NewV7()
		if err != nil {
			return Created{}, fmt.Errorf("new step id: %w", err)
		}
		ns := store.NewStep{
			ID: sid, Name: st.Name, Handler: st.Handler, Config: st.Config, RetryLimit: st.Retry.MaxAttempts,
			BackoffBase: st.Retry.BackoffBase, MaxBackoff: st.Retry.MaxBackoff, Jitter: st.Retry.Jitter,
			TimeoutSeconds: st.TimeoutSeconds, DependsOn: st.DependsOn, TriggerRule: st.TriggerRule,
		}
		if st.When != nil {
			ns.When = st.When.Expr
		}
		if st.Concurrency > 0 {
			ns.ConcurrencyKey = tpl.Namespace + "/" + tpl.Name + "/" + st.Name
			ns.ConcurrencyLimit = st.Concurrency
			if st.ConcurrencyKey != "" {
				// One key per step identity and value, so the in-flight
				// index counts it (docs/architecture.md, "Flow control").
				v, err := st.ResolveConcurrencyKey(req.Context)
				if err != nil {
					return Created{}, &template.ContextError{Violations: []template.Violation{{Pointer: "", Message: err.Error()}}}
				}
				ns.ConcurrencyKey += store.ConcurrencyKeySep + v
			}
		}
		if rl := st.RateLimit; rl != nil {
			// Keyed like concurrency (docs/architecture.md, "Flow control").
			ns.RateKey, ns.RatePerSecond, ns.RateBurst = tpl.Namespace+"/"+tpl.Name+"/"+st.Name, rl.PerSecond, rl.Burst
			if rl.Key != "" {
				v, err := st.ResolveRateLimitKey(req.Context)
				if err != nil {
					return Created{}, &template.ContextError{Violations: []template.Violation{{Pointer: "", Message: err.Error()}}}
				}
				ns.RateKey += store.ConcurrencyKeySep + v
			}
		}
		nt.Steps = append(nt.Steps, ns)
	}
	taskID, created, err := e.store.CreateTask(ctx, nt)
	if err != nil {
		return Created{}, fromStore(err)
	}
	out = Created{TaskID: taskID, Version: tpl.Version, Created: created}
	if span.IsRecording() {
		span.SetAttributes(AttrTaskID.String(taskID.String()), AttrCorrelationID.String(req.CorrelationID),
			attribute.Bool("tasker.created", created))
	}
	if !created {
		return out, nil
	}
	events := []Event{{
		Name: TaskCreated, Time: now, TaskID: taskID, Namespace: tpl.Namespace, Workflow: tpl.Name,
		CorrelationID: req.CorrelationID, To: string(domain.TaskPending), Reason: req.Reason,
	}}
	e.pub.Publish(ctx, events)
	spans := taskSpans{taskID: {ctx: ctx, span: span}}
	spans.annotate(events)
	e.wake(ctx, map[uuid.UUID]time.Duration{taskID: 0}, spans)
	return out, nil
}
