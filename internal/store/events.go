package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/store/dbgen"
)

// Subscription is a webhook subscription (docs/operating.md, "Webhook
// subscriptions"). Secret is set only when it is created.
type Subscription struct {
	ID          uuid.UUID
	URL         string
	Events      []string
	Secret      string
	Description string
	MaxAttempts int
	CreatedAt   time.Time
	// Pending and Dead count its deliveries still to make and given up.
	Pending, Dead int64
}

// CreateSubscription stores a subscription; the caller validated it.
func (s *Store) CreateSubscription(ctx context.Context, sub Subscription) (Subscription, error) {
	r, err := dbq.CreateSubscription(ctx, s.pool, dbgen.CreateSubscriptionParams{
		ID: sub.ID, Url: sub.URL, Events: sub.Events, Secret: sub.Secret, Description: sub.Description,
		MaxAttempts: int32(sub.MaxAttempts), CreatedAt: sub.CreatedAt,
	})
	if err != nil {
		return Subscription{}, fmt.Errorf("create subscription: %w", err)
	}
	return Subscription{ID: r.ID, URL: r.Url, Events: r.Events, Secret: sub.Secret, Description: r.Description,
		MaxAttempts: int(r.MaxAttempts), CreatedAt: r.CreatedAt}, nil
}

// ListSubscriptions returns the subscriptions, oldest first, without secrets.
func (s *Store) ListSubscriptions(ctx context.Context) ([]Subscription, error) {
	rows, err := dbq.ListSubscriptions(ctx, s.pool)
	if err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	out := make([]Subscription, 0, len(rows))
	for _, r := range rows {
		out = append(out, Subscription{ID: r.ID, URL: r.Url, Events: r.Events, Description: r.Description,
			MaxAttempts: int(r.MaxAttempts), CreatedAt: r.CreatedAt, Pending: r.Pending, Dead: r.Dead})
	}
	return out, nil
}

// DeleteSubscription deletes a subscription and its undelivered events; a
// missing one is ErrNotFound.
func (s *Store) DeleteSubscription(ctx context.Context, id uuid.UUID) error {
	n, err := dbq.DeleteSubscription(ctx, s.pool, id)
	if err != nil {
		return fmt.Errorf("delete subscription: %w", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// Delivery is one claimed attempt to deliver an event to a subscription.
type Delivery struct {
	ID             int64
	SubscriptionID uuid.UUID
	Event          string
	Payload        json.RawMessage
	Attempt        int
	MaxAttempts    int
	URL, Secret    string
}

// ClaimDeliveries takes up to limit due deliveries for one attempt each,
// leased until leaseUntil (a crashed deliverer's rows come due again then).
func (s *Store) ClaimDeliveries(ctx context.Context, now, leaseUntil time.Time, limit int) ([]Delivery, error) {
	rows, err := dbq.ClaimDeliveries(ctx, s.pool, dbgen.ClaimDeliveriesParams{LeaseUntil: leaseUntil, Now: now, Lim: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	out := make([]Delivery, 0, len(rows))
	for _, r := range rows {
		out = append(out, Delivery{ID: r.ID, SubscriptionID: r.SubscriptionID, Event: r.Event, Payload: r.Payload,
			Attempt: int(r.Attempts), MaxAttempts: int(r.MaxAttempts), URL: r.Url, Secret: r.Secret})
	}
	return out, nil
}

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryDead      = "dead"
)

// DeliveryOutcome is the outcome of one claimed attempt.
type DeliveryOutcome struct {
	ID         int64
	Attempt    int
	State      string    // DeliveryPending (retry at NextAt), DeliveryDelivered or DeliveryDead
	NextAt     time.Time // when State is DeliveryPending
	StatusCode int       // 0: no response
	Error      string
	Duration   time.Duration
}

// FinishDeliveries records outcomes (fenced on the attempt) and logs each.
func (s *Store) FinishDeliveries(ctx context.Context, now time.Time, outs []DeliveryOutcome) error {
	p := dbgen.FinishDeliveriesParams{Now: now}
	for _, o := range outs {
		next := o.NextAt
		if next.IsZero() {
			next = now
		}
		p.Ids = append(p.Ids, o.ID)
		p.Attempts = append(p.Attempts, int32(o.Attempt))
		p.States = append(p.States, o.State)
		p.NextAt = append(p.NextAt, next)
		p.StatusCodes = append(p.StatusCodes, int32(o.StatusCode))
		p.Errors = append(p.Errors, truncateText(o.Error, 500))
		p.DurationsMs = append(p.DurationsMs, float64(o.Duration.Microseconds())/1000)
	}
	if err := dbq.FinishDeliveries(ctx, s.pool, p); err != nil {
		return fmt.Errorf("finish deliveries: %w", err)
	}
	return nil
}

// DeliveryView is one delivery of a subscription with its attempt log.
type DeliveryView struct {
	ID            int64           `json:"id"`
	Event         string          `json:"event"`
	State         string          `json:"state"`
	Attempts      int             `json:"attempts"`
	NextAttemptAt time.Time       `json:"next_attempt_at"`
	CreatedAt     time.Time       `json:"created_at"`
	FinishedAt    *time.Time      `json:"finished_at,omitempty"`
	Log           json.RawMessage `json:"log"`
}

// ListDeliveries returns a subscription's newest deliveries (at most limit).
func (s *Store) ListDeliveries(ctx context.Context, sub uuid.UUID, limit int) ([]DeliveryView, error) {
	rows, err := dbq.ListDeliveries(ctx, s.pool, dbgen.ListDeliveriesParams{SubscriptionID: sub, Lim: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	out := make([]DeliveryView, 0, len(rows))
	for _, r := range rows {
		out = append(out, DeliveryView{ID: r.ID, Event: r.Event, State: r.State, Attempts: int(r.Attempts),
			NextAttemptAt: r.NextAttemptAt, CreatedAt: r.CreatedAt, FinishedAt: r.FinishedAt, Log: r.Log})
	}
	return out, nil
}

// PressureSample is one instance's recent view, recorded for all instances
// to read (docs/operating.md, "Adaptive concurrency").
type PressureSample struct {
	Instance   string
	At         time.Time
	CommitMS   float64 // recent scheduler-pass transaction latency
	PoolWaitMS float64 // recent wait for a pool connection
	Results    int     // step results recorded recently
	Failures   int     // of which failures
	Throttles  int     // invocations refused for lack of capacity
}

// RecordPressure stores this instance's sample.
func (s *Store) RecordPressure(ctx context.Context, p PressureSample) error {
	err := dbq.RecordPressure(ctx, s.pool, dbgen.RecordPressureParams{Instance: p.Instance, Now: p.At,
		CommitMs: float32(p.CommitMS), PoolWaitMs: float32(p.PoolWaitMS), Results: int32(p.Results),
		Failures: int32(p.Failures), Throttles: int32(p.Throttles)})
	if err != nil {
		return fmt.Errorf("record pressure: %w", err)
	}
	return nil
}

// Pressure is the system-wide pressure: the worst latencies and summed
// outcomes of every instance's sample since a time, and the server's
// connections.
type Pressure struct {
	Instances                   int
	CommitMS, PoolWaitMS        float64
	Results, Failures, Throttle int64
	Connections, MaxConnections int
}

// ReadPressure reads the samples recorded since since.
func (s *Store) ReadPressure(ctx context.Context, since time.Time) (Pressure, error) {
	r, err := dbq.ReadPressure(ctx, s.pool, since)
	if err != nil {
		return Pressure{}, fmt.Errorf("read pressure: %w", err)
	}
	return Pressure{Instances: int(r.Instances), CommitMS: r.CommitMs, PoolWaitMS: r.PoolWaitMs, Results: r.Results,
		Failures: r.Failures, Throttle: r.Throttles, Connections: int(r.Connections), MaxConnections: int(r.MaxConnections)}, nil
}

// truncateText cuts s to at most n bytes on a character boundary.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// PruneDeliveries deletes up to limit deliveries that finished (delivered
// or dead) before before, oldest first, and returns how many it deleted.
func (s *Store) PruneDeliveries(ctx context.Context, before time.Time, limit int) (int64, error) {
	n, err := dbq.PruneDeliveries(ctx, s.pool, dbgen.PruneDeliveriesParams{Before: &before, Lim: int32(limit)})
	if err != nil {
		return 0, fmt.Errorf("prune deliveries: %w", err)
	}
	return n, nil
}
