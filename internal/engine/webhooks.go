package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/store"
)

// Webhook subscriptions (docs/operating.md, "Webhook subscriptions"): a
// trigger on tasker_transitions writes one outbox row per subscribed event
// in the transaction of the state change (sql/functions/040_events.sql);
// DeliverWebhooks, run by every sweep, sends due rows through the
// WebhookSender, retries failures with exponential backoff and gives up
// after the subscription's max attempts (the row is then dead).

// WebhookSender sends one signed webhook request (events.Webhooks over
// HTTP). It returns the response status, 0 when there was none; any status
// outside 2xx or an error is a failed attempt.
type WebhookSender interface {
	SendWebhook(ctx context.Context, d WebhookDelivery) (status int, err error)
}

// WebhookDelivery is one attempt to deliver an event.
type WebhookDelivery struct {
	ID      int64 // the outbox row: the same for every attempt (X-Tasker-Delivery)
	Attempt int
	Event   string
	URL     string
	Secret  string
	Body    []byte
	Time    time.Time // the signing timestamp
}

// Webhook defaults.
const (
	DefaultWebhookMaxAttempts = 8
	maxWebhookAttempts        = 50
	defaultWebhookBackoff     = 10 * time.Second
	maxWebhookBackoff         = time.Hour
	webhookLease              = 5 * time.Minute
	webhookBatch              = 200
	webhookConcurrency        = 16
	// DefaultWebhookRetention is how long finished deliveries (and their
	// attempt log) are kept.
	DefaultWebhookRetention = 7 * 24 * time.Hour
)

// ErrInvalid: a request the engine refuses as malformed; the message names
// what is wrong.
var ErrInvalid = errors.New("invalid request")

func invalid(format string, args ...any) error {
	return &Error{Kind: ErrInvalid, cause: fmt.Errorf(format, args...)}
}

// SubscriptionRequest asks for a webhook subscription.
type SubscriptionRequest struct {
	URL string
	// Events are catalogue names, custom event names, "prefix.*" patterns
	// or "*".
	Events      []string
	Description string
	// MaxAttempts bounds delivery attempts per event (default 8, at most 50).
	MaxAttempts int
	// Secret signs the deliveries; empty generates one (returned once).
	Secret string
}

// CreateSubscription validates and stores a subscription; the returned
// subscription carries its secret, which is never shown again.
func (e *Engine) CreateSubscription(ctx context.Context, req SubscriptionRequest) (store.Subscription, error) {
	u, err := url.Parse(req.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return store.Subscription{}, invalid("url %q: want an absolute http or https URL", req.URL)
	}
	if len(req.Events) == 0 {
		return store.Subscription{}, invalid("events: name at least one event, a prefix.* pattern or *")
	}
	if len(req.Events) > 100 {
		return store.Subscription{}, invalid("events: %d entries, over 100", len(req.Events))
	}
	for i, ev := range req.Events {
		if err := checkEventPattern(ev); err != nil {
			return store.Subscription{}, invalid("events[%d]: %v", i, err)
		}
	}
	if req.MaxAttempts == 0 {
		req.MaxAttempts = DefaultWebhookMaxAttempts
	}
	if req.MaxAttempts < 1 || req.MaxAttempts > maxWebhookAttempts {
		return store.Subscription{}, invalid("max_attempts %d: want 1 to %d", req.MaxAttempts, maxWebhookAttempts)
	}
	if len(req.Description) > 500 {
		return store.Subscription{}, invalid("description: %d bytes, over 500", len(req.Description))
	}
	switch {
	case req.Secret == "":
		b := make([]byte, 32)
		_, _ = rand.Read(b) // never fails (crypto/rand)
		req.Secret = "whsec_" + hex.EncodeToString(b)
	case len(req.Secret) < 16 || len(req.Secret) > 200:
		return store.Subscription{}, invalid("secret: want 16 to 200 characters (or none, to have one generated)")
	}
	sub, err := e.store.CreateSubscription(ctx, store.Subscription{ID: uuid.New(), URL: req.URL,
		Events: slices.Compact(slices.Sorted(slices.Values(req.Events))), Secret: req.Secret,
		Description: req.Description, MaxAttempts: req.MaxAttempts, CreatedAt: e.clock.Now()})
	return sub, fromStore(err)
}

// checkEventPattern accepts a catalogue name, a valid custom event name,
// "prefix.*" or "*".
func checkEventPattern(p string) error {
	if p == "*" {
		return nil
	}
	if prefix, ok := strings.CutSuffix(p, ".*"); ok {
		if prefix == "" || strings.Contains(prefix, "*") || strings.ContainsAny(prefix, " \t") {
			return fmt.Errorf("%q: want prefix.* with a non-empty prefix", p)
		}
		return nil
	}
	if InCatalogue(EventName(p)) {
		if !WebhookEvent(EventName(p)) {
			return fmt.Errorf("%q is not delivered to webhooks: only task and step state changes and custom events are (docs/operating.md)", p)
		}
		return nil
	}
	if strings.HasPrefix(p, "task.") || strings.HasPrefix(p, "step.") || strings.HasPrefix(p, "scheduler.") {
		return fmt.Errorf("%q is not in the event catalogue (docs/observability.md)", p)
	}
	return contract.CheckEventName(p)
}

// WebhookEvent reports whether a catalogue event is delivered to webhook
// subscriptions: those that a transition records (tasker_transition_event
// in sql/functions/040_events.sql maps them), so the outbox row commits with
// the state change. Dispatch, scheduler and webhook events are not.
func WebhookEvent(n EventName) bool {
	switch n {
	case TaskCreated, TaskStarted, TaskCompleted, TaskFailed, TaskCancelled, TaskRetryRequested, TaskResolved,
		StepClaimed, StepDispatchFailed, StepCompleted, StepFailed, StepRetryScheduled, StepRetriesExhausted,
		StepResolved, StepCancelled, StepRetryRequested, StepWaiting, StepSkipped:
		return true
	}
	return false
}

// ListSubscriptions returns every subscription, without secrets.
func (e *Engine) ListSubscriptions(ctx context.Context) ([]store.Subscription, error) {
	return e.store.ListSubscriptions(ctx)
}

// DeleteSubscription deletes a subscription and its undelivered events.
func (e *Engine) DeleteSubscription(ctx context.Context, id uuid.UUID) error {
	return fromStore(e.store.DeleteSubscription(ctx, id))
}

// ListDeliveries returns a subscription's newest deliveries with their
// attempt log.
func (e *Engine) ListDeliveries(ctx context.Context, id uuid.UUID, limit int) ([]store.DeliveryView, error) {
	return e.store.ListDeliveries(ctx, id, limit)
}

// WebhookReport says what one delivery round did.
type WebhookReport struct {
	Delivered, Failed, Dead int
	Pruned                  int64 // finished deliveries past their retention, deleted
}

// DeliverWebhooks sends the due outbox rows, once each, and records the
// outcomes; it does nothing without a WebhookSender. A failed attempt is
// retried after WebhookBackoff × 2^(attempt-1) (at most an hour); after the
// subscription's max attempts the row is dead and webhook.dead is
// published. One subscription's failures never hold up another's rows.
func (e *Engine) DeliverWebhooks(ctx context.Context) (WebhookReport, error) {
	var rep WebhookReport
	if e.cfg.Webhooks == nil {
		return rep, nil
	}
	now := e.clock.Now()
	// Finished deliveries past their retention go first, a batch a round.
	pruned, err := e.store.PruneDeliveries(ctx, now.Add(-e.cfg.WebhookRetention), webhookBatch)
	if err != nil {
		return rep, err
	}
	rep.Pruned = pruned
	ds, err := e.store.ClaimDeliveries(ctx, now, now.Add(webhookLease), webhookBatch)
	if err != nil || len(ds) == 0 {
		return rep, err
	}
	outs := make([]store.DeliveryOutcome, len(ds))
	runParallel(webhookConcurrency, len(ds), func(i int) {
		d := ds[i]
		start := time.Now()
		status, err := e.cfg.Webhooks.SendWebhook(ctx, WebhookDelivery{ID: d.ID, Attempt: d.Attempt, Event: d.Event,
			URL: d.URL, Secret: d.Secret, Body: d.Payload, Time: now})
		o := store.DeliveryOutcome{ID: d.ID, Attempt: d.Attempt, StatusCode: status, Duration: time.Since(start)}
		switch {
		case err == nil && status >= 200 && status < 300:
			o.State = store.DeliveryDelivered
		default:
			if err != nil {
				o.Error = err.Error()
			} else {
				o.Error = fmt.Sprintf("status %d", status)
			}
			o.State = store.DeliveryPending
			o.NextAt = now.Add(e.webhookBackoff(d.Attempt))
			if d.Attempt >= d.MaxAttempts {
				o.State = store.DeliveryDead
			}
		}
		outs[i] = o
	})
	var events []Event
	for i, o := range outs {
		switch o.State {
		case store.DeliveryDelivered:
			rep.Delivered++
		case store.DeliveryDead:
			rep.Dead++
			events = append(events, Event{Name: WebhookDead, Time: now, Reason: truncate(o.Error),
				Data: mustJSON(map[string]any{"subscription_id": ds[i].SubscriptionID, "delivery_id": ds[i].ID,
					"event": ds[i].Event, "attempts": ds[i].Attempt})})
		default:
			rep.Failed++
		}
	}
	if err := e.store.FinishDeliveries(ctx, now, outs); err != nil {
		// The lease expires and the rows are sent again: at least once.
		return rep, err
	}
	e.pub.Publish(ctx, events)
	return rep, nil
}

// webhookBackoff is the wait after a failed attempt.
func (e *Engine) webhookBackoff(attempt int) time.Duration {
	d := e.cfg.WebhookBackoff
	for i := 1; i < attempt && d < maxWebhookBackoff; i++ {
		d *= 2
	}
	return min(d, maxWebhookBackoff)
}
