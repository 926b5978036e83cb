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
	"github.com/taskerhq/tasker/internal/service"
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
// It is a service (docs/architecture.md, "Services"): Start runs the
// sending loop; events published before Start wait in the buffer. In
// Lambda, call Flush before returning from an invocation: the runtime
// freezes background work between invocations.
type EventBridge struct {
	service.Base
	api     EventBridgeAPI
	bus     string
	source  string
	timeout time.Duration
	log     *slog.Logger

	in      chan item
	mu      sync.Mutex // guards dropped; Publish never waits long on it
	dropped int
}

var _ service.Service = (*EventBridge)(nil)

// item is an event to send, or (flush != nil) a flush marker.
type item struct {
	ev    engine.Event
	flush chan struct{}
}

// NewEventBridge returns a publisher sending to the bus (name or ARN). It
// starts nothing: call Start, and Close (or Stop) when done.
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
	return &EventBridge{api: api, bus: bus, source: opts.Source, timeout: opts.CallTimeout, log: opts.Logger,
		in: make(chan item, opts.Buffer)}
}

// Start runs the sending loop until Stop or until ctx ends.
func (p *EventBridge) Start(ctx context.Context) error {
	ctx, ok, started, stopped := p.StartInit(ctx)
	if !ok {
		return nil
	}
	go func() {
		defer stopped()
		started()
		p.loop(ctx)
	}()
	return nil
}

// Publish enqueues events; it never blocks. Events that do not fit the
// buffer are dropped and reported in a warning at the next send.
func (p *EventBridge) Publish(_ context.Context, evs []engine.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range evs {
		select {
		case p.in <- item{ev: e}:
		default:
			p.dropped++
		}
	}
}

// errNotRunning is returned by Flush when the loop is not running.
var errNotRunning = errors.New("events: EventBridge publisher is not running")

// Flush waits until every event published before it was sent (or given
// up), or until ctx is done. It fails when the publisher is not running.
func (p *EventBridge) Flush(ctx context.Context) error {
	stopping := p.Stopping()
	if stopping == nil {
		return errNotRunning
	}
	done := make(chan struct{})
	select {
	case p.in <- item{flush: done}: // may wait for room; bounded by ctx
	case <-ctx.Done():
		return ctx.Err()
	case <-stopping:
		return errNotRunning
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-stopping: // the loop's last drain may have missed the marker
		return errNotRunning
	}
}

// Close sends what is buffered (bounded by ctx) and stops the publisher.
func (p *EventBridge) Close(ctx context.Context) error {
	err := p.Flush(ctx)
	p.Stop()
	if errors.Is(err, errNotRunning) {
		return nil
	}
	return err
}

func (p *EventBridge) loop(ctx context.Context) {
	batch := make([]engine.Event, 0, MaxEntriesPerCall)
	for {
		select {
		case <-ctx.Done():
			p.drain(batch)
			return
		case it := <-p.in:
			if it.flush != nil {
				p.send(context.Background(), batch)
				batch = batch[:0]
				close(it.flush)
				continue
			}
			batch = append(batch, it.ev)
			// Send a full batch, or whatever there is once nothing else waits.
			if len(batch) == MaxEntriesPerCall || len(p.in) == 0 {
				p.send(context.Background(), batch)
				batch = batch[:0]
			}
		}
	}
}

// drain sends what is buffered when the loop stops, all of it within one
// call timeout, so Stop is bounded even when EventBridge is unreachable.
// It takes only what was buffered when it began: Publish may go on.
func (p *EventBridge) drain(batch []engine.Event) {
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	var flushes []chan struct{}
	for n := len(p.in); n > 0; n-- { // only this goroutine receives
		it := <-p.in
		if it.flush != nil {
			flushes = append(flushes, it.flush)
			continue
		}
		if batch = append(batch, it.ev); len(batch) == MaxEntriesPerCall {
			p.send(ctx, batch)
			batch = batch[:0]
		}
	}
	p.send(ctx, batch)
	for _, f := range flushes {
		close(f)
	}
}

// send puts one batch (at most 10 events), retrying failed entries once.
func (p *EventBridge) send(ctx context.Context, evs []engine.Event) {
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
	failed, err := p.put(ctx, entries)
	if len(failed) > 0 {
		failed, err = p.put(ctx, failed)
	}
	if len(failed) > 0 {
		p.log.Warn("lifecycle events not sent to EventBridge after a retry; dropped",
			"event_bus", p.bus, "events", len(failed), "error", err)
	}
}

// put makes one PutEvents call and returns the entries that failed with
// the first error.
func (p *EventBridge) put(ctx context.Context, entries []types.PutEventsRequestEntry) ([]types.PutEventsRequestEntry, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
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
