package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/domain"
	"github.com/taskerhq/tasker/internal/store/dbgen"
)

// Wait kinds (tasker_steps.wait_kind): what a waiting step waits for.
const (
	WaitTimer    = "timer"    // tasker.wait: completes when due
	WaitCallback = "callback" // tasker.callback or tasker_pending: a callback, or a timeout when due
)

// Park is an in-flight attempt to move to waiting.
type Park struct {
	StepID  uuid.UUID
	Attempt int
	Kind    string // WaitTimer or WaitCallback
	WakeAt  time.Time
	// TimeoutSeconds is what a heartbeat extends a callback wait by.
	TimeoutSeconds int
	Reason         string
}

// WaitChange is one outcome of ParkSteps, FireWaits or Callback.
type WaitChange struct {
	// Kind is "parked", "recorded", "later" (FireWaits: not due yet),
	// "heartbeat", or a callback refusal: "not_found", "over", "expired",
	// "not_waiting".
	Kind          string
	TaskID        uuid.UUID
	StepID        uuid.UUID
	Step          string
	Attempt       int
	From, To      domain.StepState
	NextRetryAt   *time.Time
	WakeAt        *time.Time // parked, later, heartbeat (an in-flight step's new deadline)
	WaitKind      string
	Reason        string
	Namespace     string
	Workflow      string
	CorrelationID string
	TraceParent   string
}

// Transition returns the step transition a "parked" or "recorded" change made.
func (w WaitChange) Transition() Transition {
	return Transition{TaskID: w.TaskID, StepID: w.StepID, Step: w.Step, Attempt: w.Attempt, From: w.From, To: w.To,
		NextRetryAt: w.NextRetryAt, Reason: w.Reason, CorrelationID: w.CorrelationID, TraceParent: w.TraceParent}
}

func waitChanges(rows []dbgen.TaskerWaitRow) []WaitChange {
	out := make([]WaitChange, 0, len(rows))
	for _, r := range rows {
		// Columns a kind of row leaves NULL are pointers (tasker_wait_row,
		// migration 0011).
		w := WaitChange{Kind: r.Kind, NextRetryAt: r.NextRetryAt, WakeAt: r.WakeAt, WaitKind: deref(r.WaitKind),
			Step: deref(r.StepName), From: domain.StepState(deref(r.FromState)), To: domain.StepState(deref(r.ToState)),
			Reason: deref(r.Reason), Namespace: deref(r.Namespace), Workflow: deref(r.Workflow),
			CorrelationID: deref(r.CorrelationID), TraceParent: deref(r.TraceParent)}
		if r.TaskID != nil {
			w.TaskID = *r.TaskID
		}
		if r.StepID != nil {
			w.StepID = *r.StepID
		}
		if r.Attempt != nil {
			w.Attempt = int(*r.Attempt)
		}
		out = append(out, w)
	}
	return out
}

// ParkSteps moves in-flight attempts to waiting (tasker_park_steps), fenced
// on (step, attempt): a late or duplicate request changes nothing.
func (s *Store) ParkSteps(ctx context.Context, now time.Time, actor string, ps []Park) ([]WaitChange, error) {
	n := len(ps)
	ids := make([]uuid.UUID, n)
	attempts := make([]int32, n)
	kinds := make([]string, n)
	wakes := make([]time.Time, n)
	timeouts := make([]int32, n)
	reasons := make([]string, n)
	for i, p := range ps {
		ids[i], attempts[i], kinds[i], wakes[i], timeouts[i], reasons[i] =
			p.StepID, int32(p.Attempt), p.Kind, p.WakeAt, int32(p.TimeoutSeconds), p.Reason
	}
	rows, err := dbq.ParkSteps(ctx, s.pool, dbgen.ParkStepsParams{Now: now, Actor: actor, StepIds: ids, Attempts: attempts,
		Kinds: kinds, WakeAt: wakes, Timeouts: timeouts, Reasons: reasons})
	if err != nil {
		return nil, fmt.Errorf("park steps: %w", err)
	}
	return waitChanges(rows), nil
}

// DueWait names one waiting attempt a delayed wake-up was sent for.
type DueWait struct {
	StepID  uuid.UUID
	Attempt int
}

// FireWaits moves on the waits that are due (tasker_fire_waits): timers
// complete, expired callbacks fail as retryable (code callback_timeout).
// With due nil it takes the limit soonest due waits (the sweep); otherwise
// the named attempts, reporting those not due yet as "later".
func (s *Store) FireWaits(ctx context.Context, now time.Time, actor string, due []DueWait, limit int) ([]WaitChange, error) {
	arg := dbgen.FireWaitsParams{Now: now, Actor: actor, Lim: int32(limit)}
	if due != nil {
		arg.StepIds, arg.Attempts = make([]uuid.UUID, len(due)), make([]int32, len(due))
		for i, d := range due {
			arg.StepIds[i], arg.Attempts[i] = d.StepID, int32(d.Attempt)
		}
	}
	rows, err := dbq.FireWaits(ctx, s.pool, arg)
	if err != nil {
		return nil, fmt.Errorf("fire waits: %w", err)
	}
	return waitChanges(rows), nil
}

// Callback actions.
const (
	CallbackSuccess   = "success"
	CallbackFailure   = "failure"
	CallbackHeartbeat = "heartbeat"
)

// CallbackInput is one callback for a step attempt: by token (StepID,
// Attempt, Hash) or, for an operator, by TaskID and Step (the current
// attempt, which must be waiting).
type CallbackInput struct {
	Now     time.Time
	Actor   string
	StepID  uuid.UUID
	Attempt int
	Hash    []byte // SHA-256 of the token's secret
	TaskID  uuid.UUID
	Step    string
	Action  string // CallbackSuccess, CallbackFailure or CallbackHeartbeat
	Result  json.RawMessage
	// Error, Permanent and RetryAfter describe a failure.
	Error      json.RawMessage
	Permanent  bool
	RetryAfter *time.Duration
	Reason     string
	Grace      time.Duration
}

// Callback applies one callback (tasker_callback) and returns its outcome.
func (s *Store) Callback(ctx context.Context, in CallbackInput) (WaitChange, error) {
	arg := dbgen.CallbackParams{Now: in.Now, Actor: in.Actor, Action: in.Action, Reason: in.Reason,
		GraceSeconds: int32(in.Grace / time.Second)}
	if in.Hash != nil {
		id, attempt := in.StepID, int32(in.Attempt)
		arg.StepID, arg.Attempt, arg.Hash = &id, &attempt, in.Hash
	} else {
		id, step := in.TaskID, in.Step
		arg.TaskID, arg.StepName = &id, &step
	}
	switch in.Action {
	case CallbackSuccess:
		arg.Result = in.Result
	case CallbackFailure:
		arg.Err = in.Error
		perm := in.Permanent
		arg.Permanent = &perm
		if in.RetryAfter != nil {
			ms := in.RetryAfter.Milliseconds()
			arg.RetryAfterMs = &ms
		}
	}
	rows, err := dbq.Callback(ctx, s.pool, arg)
	if err != nil {
		return WaitChange{}, fmt.Errorf("callback: %w", err)
	}
	if len(rows) != 1 {
		return WaitChange{}, fmt.Errorf("callback: %d outcome rows, want 1", len(rows))
	}
	return waitChanges(rows)[0], nil
}
