package events

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/taskerhq/tasker/internal/engine"
)

// EventBridgeAPI is the part of the EventBridge client the publisher uses.
type EventBridgeAPI interface {
	PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, optFns ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

var _ EventBridgeAPI = (*eventbridge.Client)(nil)

// Defaults of EventBridgeOptions.
const (
	DefaultSource       = "tasker"
	DefaultBuffer       = 1000
	DefaultCallTimeout  = 5 * time.Second
	MaxEntriesPerCall   = 10 // the PutEvents limit
	eventBridgeMaxBytes = 256 << 10
)

// EventBridgeOptions configure NewEventBridge.
type EventBridgeOptions struct {
	// Source of the events (default "tasker"); rules match on it, and on
	// detail-type, which is the event name.
	Source string
	// Buffer is how many events may wait to be sent (default 1000); when
	// it is full, further events are dropped (and counted in a warning).
	Buffer int
	// CallTimeout bounds one PutEvents call (default 5 s).
	CallTimeout time.Duration
	Logger      *slog.Logger
}

// EventBridge publishes lifecycle events to an EventBridge bus with
// PutEvents, in batches of up to 10 entries, asynchronously: Publish only
// enqueues into a bounded buffer, so the engine never waits on
// EventBridge. Entries that fail are sent once more; entries that fail
// again are logged and dropped. Each entry has Source (default "tasker"),
// DetailType the event name and Detail the event's JSON (see Fields).
//
// In Lambda, call Flush before returning from an invocation: the runtime
// freezes background work between invocations.
type EventBridge struct {
	api     EventBridgeAPI
	bus     string
	source  string
	timeout time.Duration
	log     *slog.Logger

	in   chan item
	done chan struct{}
	// flushMu is held (shared) by Flush while it sends its marker, and by
	// Close while it closes in, so no send meets a closed channel.
	flushMu sync.RWMutex
	mu      sync.Mutex // guards closed and dropped; Publish never waits long on it
	closed  bool
	dropped int
}

// item is an event to send, or (flush != nil) a flush marker.
type item struct {
	ev    engine.Event
	flush chan struct{}
}

// NewEventBridge starts a publisher sending to the bus (name or ARN). Call
// Close to flush and stop it.
func NewEventBridge(api EventBridgeAPI, bus string, opts EventBridgeOptions) *EventBridge {
	if opts.Source == "" {
		opts.Source = DefaultSource
	}
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultBuffer
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = DefaultCallTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	p := &EventBridge{api: api, bus: bus, source: opts.Source, timeout: opts.CallTimeout, log: opts.Logger,
		in: make(chan item, opts.Buffer), done: make(chan struct{})}
	go p.loop()
	return p
}

// Publish enqueues events; it never blocks. Events that do not fit the
// buffer are dropped and reported in a warning at the next send.
func (p *EventBridge) Publish(_ context.Context, evs []engine.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	for _, e := range evs {
		select {
		case p.in <- item{ev: e}:
		default:
			p.dropped++
		}
	}
}

// Flush waits until every event published before it was sent (or given
// up), or until ctx is done.
func (p *EventBridge) Flush(ctx context.Context) error {
	done := make(chan struct{})
	p.flushMu.RLock()
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		p.flushMu.RUnlock()
		return errors.New("events: EventBridge publisher is closed")
	}
	select {
	case p.in <- item{flush: done}: // may wait for room; bounded by ctx
	case <-ctx.Done():
		p.flushMu.RUnlock()
		return ctx.Err()
	}
	p.flushMu.RUnlock()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close sends what is buffered (bounded by ctx) and stops the publisher.
func (p *EventBridge) Close(ctx context.Context) error {
	p.flushMu.Lock()
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.in)
	}
	p.mu.Unlock()
	p.flushMu.Unlock()
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *EventBridge) loop() {
	defer close(p.done)
	batch := make([]engine.Event, 0, MaxEntriesPerCall)
	for it := range p.in {
		if it.flush != nil {
			p.send(batch)
			batch = batch[:0]
			close(it.flush)
			continue
		}
		batch = append(batch, it.ev)
		// Send a full batch, or whatever there is once nothing else waits.
		if len(batch) == MaxEntriesPerCall || len(p.in) == 0 {
			p.send(batch)
			batch = batch[:0]
		}
	}
	p.send(batch)
}

// send puts one batch (at most 10 events), retrying failed entries once.
func (p *EventBridge) send(evs []engine.Event) {
	p.mu.Lock()
	dropped := p.dropped
	p.dropped = 0
	p.mu.Unlock()
	if dropped > 0 {
		p.log.Warn("EventBridge publisher buffer full; lifecycle events dropped", "event_bus", p.bus, "dropped", dropped)
	}
	if len(evs) == 0 {
		return
	}
	entries := make([]types.PutEventsRequestEntry, 0, len(evs))
	for _, e := range evs {
		detail, err := json.Marshal(e)
		if err != nil || len(detail) > eventBridgeMaxBytes {
			p.log.Warn("lifecycle event not sent to EventBridge: cannot encode it within the size limit",
				"event", e.Name, "task_id", e.TaskID, "correlation_id", e.CorrelationID, "error", err)
			continue
		}
		t := e.Time
		entries = append(entries, types.PutEventsRequestEntry{
			EventBusName: aws.String(p.bus), Source: aws.String(p.source), DetailType: aws.String(string(e.Name)),
			Detail: aws.String(string(detail)), Time: &t,
		})
	}
	failed, err := p.put(entries)
	if len(failed) > 0 {
		failed, err = p.put(failed)
	}
	if len(failed) > 0 {
		p.log.Warn("lifecycle events not sent to EventBridge after a retry; dropped",
			"event_bus", p.bus, "events", len(failed), "error", err)
	}
}

// put makes one PutEvents call and returns the entries that failed with
// the first error.
func (p *EventBridge) put(entries []types.PutEventsRequestEntry) ([]types.PutEventsRequestEntry, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	out, err := p.api.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: entries})
	if err != nil {
		return entries, err
	}
	if out.FailedEntryCount == 0 {
		return nil, nil
	}
	var failed []types.PutEventsRequestEntry
	var first error
	for i, r := range out.Entries {
		if r.ErrorCode != nil && i < len(entries) {
			failed = append(failed, entries[i])
			if first == nil {
				first = errors.New(aws.ToString(r.ErrorCode) + ": " + aws.ToString(r.ErrorMessage))
			}
		}
	}
	if len(failed) == 0 { // a count without per-entry results: resend them all
		return entries, errors.New("PutEvents reported failed entries without saying which")
	}
	return failed, first
}
