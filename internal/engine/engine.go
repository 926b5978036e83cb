// Package engine is Tasker's orchestration core: it creates tasks from
// templates, turns scheduler messages into recorded results and fenced
// claims, dispatches step invocations, and sweeps up lost work.
//
// Import rules: engine imports store, template, contract, jsonb, telemetry,
// the OpenTelemetry API and pgconn (only to recognise a value PostgreSQL
// refused). It owns the ports (Queue, Invoker, Clock, Publisher)
// that adapters implement, and never imports an adapter, so local and AWS
// modes run the same code (docs/architecture.md, "Import rules").
package engine

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/telemetry"
	"github.com/taskerhq/tasker/internal/template"
)

// Config wires an Engine.
type Config struct {
	Store     *store.Store
	Templates *template.Set
	Queue     Queue
	Invoker   Invoker
	Clock     Clock     // default SystemClock
	Publisher Publisher // default: none
	Logger    *slog.Logger
	// TracerProvider makes the engine's spans (tracing.go). Default: a
	// no-op provider, which costs nothing and persists no trace context.
	TracerProvider trace.TracerProvider

	// InstanceID names this engine on claims and transitions (default: random).
	InstanceID string
	// Local marks an in-process engine whose invoker dies with it, so its
	// claims can be recovered promptly after a crash (docs/architecture.md, "Local mode").
	Local bool
	// MaxInFlight caps step attempts in progress across the system; 0 means
	// no cap. The effective cap adapts to pressure (Adaptive; health.go).
	MaxInFlight int
	// Adaptive tunes adaptive concurrency (on whenever MaxInFlight > 0).
	Adaptive AdaptiveConfig
	// ClaimLimit caps steps claimed in one scheduler pass (default 1000).
	ClaimLimit int
	// DispatchConcurrency bounds parallel Invoke calls (default 64).
	DispatchConcurrency int
	// DeadlineGrace is added to a step's timeout to form its deadline (default 30 s).
	DeadlineGrace time.Duration
	// DispatchRetryDelay is how long a step whose dispatch failed waits (default 1 s).
	DispatchRetryDelay time.Duration
	// HeartbeatStale is how long a local instance may be silent before its
	// in-flight attempts are failed as interrupted (default 15 s).
	HeartbeatStale time.Duration
	// MaxQueueDelay caps wake-up delays (SQS: 900 s); later work is found by the sweep.
	MaxQueueDelay time.Duration
	// Webhooks sends webhook deliveries (events.Webhooks); nil: the
	// outbox is kept but nothing is delivered.
	Webhooks WebhookSender
	// WebhookBackoff is the wait after a first failed delivery, doubled
	// per attempt up to an hour (default 10 s).
	WebhookBackoff time.Duration
	// WebhookRetention is how long finished deliveries are kept (default
	// DefaultWebhookRetention).
	WebhookRetention time.Duration
	// MaxPayloadBytes is the largest handler payload the Invoker can
	// deliver. CreateTask refuses a context that alone cannot fit in one
	// (its size plus PayloadReserve over the limit) instead of accepting a
	// task whose every dispatch fails. 0 asks the Invoker (PayloadLimiter);
	// an Invoker without a limit means none.
	MaxPayloadBytes int
	// Retention is how long finished tasks are kept after they finish;
	// each sweep deletes up to RetentionBatch older ones (docs/operating.md,
	// "Retention"). 0 keeps them for ever.
	Retention time.Duration
	// RetentionBatch bounds the tasks one sweep prunes (default 100, at
	// most store.MaxPruneBatch).
	RetentionBatch int
	// Exporter, if set, receives each pruned task as a JSON document before
	// it is deleted; a failed export deletes nothing.
	Exporter Exporter

	// Blobs stores contexts and results over PayloadInlineBytes out of
	// line (docs/architecture.md, "Large payloads"); nil keeps every value
	// inline, within MaxPayloadBytes.
	Blobs Blobs
	// PayloadInlineBytes is the size above which a context or result is
	// stored in Blobs (default DefaultPayloadInlineBytes).
	PayloadInlineBytes int
	// PayloadMaxBytes is the largest context or result accepted with Blobs
	// (default DefaultPayloadMaxBytes).
	PayloadMaxBytes int
}

// PayloadLimiter is implemented by an Invoker whose payloads have a size
// limit (the Lambda invoker: TASKER_INVOKE_MAX_PAYLOAD_BYTES).
type PayloadLimiter interface {
	MaxPayloadBytes() int
}

// PayloadReserve is the room CreateTask keeps in a payload beside the
// context for the payload's metadata (ids, names, deadline, trace parent).
// A context that fits with this reserve can still fail at dispatch if the
// step's config and parent results are large; that is reported then as
// payload_too_large.
const PayloadReserve = 2 << 10

// Engine orchestrates tasks. It is safe for concurrent use.
type Engine struct {
	cfg     Config
	store   *store.Store
	log     *slog.Logger
	clock   Clock
	pub     Publisher
	health  *health
	waiting backlog // tasks that found the in-flight cap full
	tracer  trace.Tracer
	// skipResultCheck leaves refused results to the database (tests of
	// the fallback in process).
	skipResultCheck bool
}

// New returns an Engine.
func New(cfg Config) (*Engine, error) {
	if cfg.Store == nil || cfg.Templates == nil || cfg.Queue == nil || cfg.Invoker == nil {
		return nil, errors.New("engine: Store, Templates, Queue and Invoker are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Publisher == nil {
		cfg.Publisher = nopPublisher{}
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = noop.NewTracerProvider()
	}
	if cfg.MaxPayloadBytes <= 0 {
		if pl, ok := cfg.Invoker.(PayloadLimiter); ok {
			cfg.MaxPayloadBytes = pl.MaxPayloadBytes()
		}
	}
	if cfg.PayloadInlineBytes <= 0 {
		cfg.PayloadInlineBytes = DefaultPayloadInlineBytes
	}
	if cfg.PayloadMaxBytes <= 0 {
		cfg.PayloadMaxBytes = DefaultPayloadMaxBytes
	}
	if cfg.InstanceID == "" {
		cfg.InstanceID = "engine-" + uuid.NewString()[:8]
	}
	if cfg.ClaimLimit <= 0 {
		cfg.ClaimLimit = 1000
	}
	if cfg.DispatchConcurrency <= 0 {
		cfg.DispatchConcurrency = 64
	}
	if cfg.DeadlineGrace <= 0 {
		cfg.DeadlineGrace = 30 * time.Second
	}
	if cfg.DispatchRetryDelay <= 0 {
		cfg.DispatchRetryDelay = time.Second
	}
	if cfg.HeartbeatStale <= 0 {
		cfg.HeartbeatStale = 15 * time.Second
	}
	if cfg.RetentionBatch <= 0 {
		cfg.RetentionBatch = 100
	}
	cfg.RetentionBatch = min(cfg.RetentionBatch, store.MaxPruneBatch)
	cfg.Adaptive = cfg.Adaptive.withDefaults(cfg.MaxInFlight)
	if cfg.WebhookRetention <= 0 {
		cfg.WebhookRetention = DefaultWebhookRetention
	}
	if cfg.WebhookBackoff <= 0 {
		cfg.WebhookBackoff = defaultWebhookBackoff
	}
	if cfg.MaxQueueDelay <= 0 {
		cfg.MaxQueueDelay = 900 * time.Second
	}
	return &Engine{
		cfg:    cfg,
		store:  cfg.Store,
		log:    cfg.Logger,
		clock:  cfg.Clock,
		pub:    cfg.Publisher,
		health: &health{},
		tracer: cfg.TracerProvider.Tracer(TracerName),
	}, nil
}

// InstanceID is the name this engine records on claims.
func (e *Engine) InstanceID() string { return e.cfg.InstanceID }

// Templates returns the template set the engine creates tasks from.
func (e *Engine) Templates() *template.Set { return e.cfg.Templates }

type nopPublisher struct{}

func (nopPublisher) Publish(context.Context, []Event) {}

// wake sends wake-ups, delayed where asked; a failure is logged, not
// returned: Postgres already holds the truth and the sweep finds the work.
// A wake-up for a task with a span carries its trace context.
func (e *Engine) wake(ctx context.Context, wakes map[uuid.UUID]time.Duration, spans taskSpans) {
	if len(wakes) == 0 {
		return
	}
	msgs := make([]Message, 0, len(wakes))
	for id, d := range wakes {
		if d < 0 {
			d = 0
		}
		if d > e.cfg.MaxQueueDelay {
			d = e.cfg.MaxQueueDelay
		}
		m := Message{Body: contract.NewWake(id), Delay: d}
		if tctx, ok := spans.ctx(id); ok {
			m.Attributes = telemetry.InjectMessage(tctx, nil)
		}
		msgs = append(msgs, m)
	}
	if err := e.cfg.Queue.Send(ctx, msgs); err != nil {
		e.log.WarnContext(ctx, "wake-up not sent; the sweep will find the work", "error", err, "tasks", len(msgs))
	}
}

// runParallel calls fn for each index with at most n goroutines.
func runParallel(n, count int, fn func(i int)) {
	if count == 1 || n <= 1 {
		for i := range count {
			fn(i)
		}
		return
	}
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for i := range count {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(i)
		}()
	}
	wg.Wait()
}
