package engine

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/domain"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/template"
)

// Durable waits and callbacks (docs/architecture.md, "Callbacks"). A step
// parked in waiting holds no in-flight slot; it is moved on by a callback,
// by a delayed wake-up naming it (due within MaxQueueDelay), or by the sweep.

// Reasons recorded on the transitions of waits.
const (
	reasonWaiting          = "waiting"
	reasonPending          = "handler answered tasker_pending"
	reasonWaitElapsed      = "wait elapsed"
	reasonCallbackTimedOut = "callback timed out"
	reasonCallback         = "callback"
)

// Callback errors, besides ErrNotFound (an unknown token) and ErrConflict
// (the token's attempt is over: the token was used, or is stale).
var (
	// ErrCallbackExpired: the wait the token belongs to timed out.
	ErrCallbackExpired = errors.New("callback expired")
	// ErrInvalidResult: a result that cannot be stored (too large, or a
	// value PostgreSQL refuses); nothing changed.
	ErrInvalidResult = errors.New("invalid result")
)

// CodeCallbackTimeout is the error code of a callback wait that timed out.
const CodeCallbackTimeout = "callback_timeout"

// Callback actions.
const (
	CallbackSuccess   = store.CallbackSuccess
	CallbackFailure   = store.CallbackFailure
	CallbackHeartbeat = store.CallbackHeartbeat
)

// tokenSecretLen is the size of a callback token's secret (the claim makes
// it from two random UUIDs: 244 random bits).
const tokenSecretLen = 32

// callbackToken encodes the token of one step attempt: base64url of the
// step id, the attempt (4 bytes, big-endian) and the secret. The database
// keeps the secret's SHA-256 only.
func callbackToken(step uuid.UUID, attempt int, secret []byte) string {
	b := make([]byte, 0, 16+4+len(secret))
	b = append(b, step[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(attempt))
	b = append(b, secret...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// parseToken decodes a callback token; ok is false for anything that is
// not one.
func parseToken(tok string) (step uuid.UUID, attempt int, hash []byte, ok bool) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) != 16+4+tokenSecretLen {
		return uuid.Nil, 0, nil, false
	}
	copy(step[:], b[:16])
	a := binary.BigEndian.Uint32(b[16:20])
	if a == 0 || a > 1<<30 {
		return uuid.Nil, 0, nil, false
	}
	h := sha256.Sum256(b[20:])
	return step, int(a), h[:], true
}

// parkOf says whether a claim is a built-in wait that parks without a
// handler invocation (tasker.wait, tasker.callback without notify), and
// how; a config that cannot be read fails the step permanently (herr).
func parkOf(c store.Claim, now time.Time) (p store.Park, herr *contract.HandlerError, ok bool) {
	switch c.Handler {
	case template.HandlerWait:
		p = store.Park{StepID: c.StepID, Attempt: c.Attempt, Kind: store.WaitTimer, Reason: reasonWaiting}
		cfg, err := template.ParseWaitConfig(c.Config)
		if err == nil {
			p.WakeAt, err = cfg.Due(now, c.Context)
		}
		if err != nil {
			return p, &contract.HandlerError{Message: err.Error(), Permanent: true, Code: "invalid_config"}, true
		}
		return p, nil, true
	case template.HandlerCallback:
		cfg, err := template.ParseCallbackConfig(c.Config)
		if err != nil {
			return p, &contract.HandlerError{Message: err.Error(), Permanent: true, Code: "invalid_config"}, true
		}
		if cfg.Notify != nil {
			return p, nil, false // the built-in handler notifies, then answers tasker_pending
		}
		return store.Park{StepID: c.StepID, Attempt: c.Attempt, Kind: store.WaitCallback, Reason: reasonWaiting,
			WakeAt: now.Add(time.Duration(cfg.TimeoutSeconds) * time.Second), TimeoutSeconds: cfg.TimeoutSeconds}, nil, true
	}
	return p, nil, false
}

// parkClaims parks the claims that are built-in waits and returns the
// others, to invoke; a wait whose config cannot be read fails its step.
func (e *Engine) parkClaims(ctx context.Context, claims []store.Claim, spans taskSpans) ([]store.Claim, error) {
	now := e.clock.Now()
	var parks []store.Park
	var bad []store.StepResult
	tasks := map[uuid.UUID]struct{}{}
	invoke := claims[:0:0]
	for _, c := range claims {
		if c.Handler == template.HandlerWait {
			// A timer's config may read the context, which may be stored
			// out of line (docs/architecture.md, "Large payloads").
			v, err := e.Resolve(ctx, c.Context)
			if err != nil {
				herr := &contract.HandlerError{Message: err.Error(), Code: codePayloadUnavailable}
				bad = append(bad, failure(c.StepID, c.Attempt, herr, "failed: "+herr.Message))
				tasks[c.TaskID] = struct{}{}
				continue
			}
			c.Context = v
		}
		p, herr, ok := parkOf(c, now)
		switch {
		case !ok:
			invoke = append(invoke, c)
		case herr != nil:
			bad = append(bad, failure(c.StepID, c.Attempt, herr, "failed: "+herr.Message))
			tasks[c.TaskID] = struct{}{}
		default:
			parks = append(parks, p)
		}
	}
	if len(parks) > 0 {
		if err := e.park(ctx, now, parks, spans); err != nil {
			// The attempts stay in flight; the deadline sweep retries them.
			return invoke, err
		}
	}
	if len(bad) > 0 {
		if err := e.pass(ctx, keys(tasks), bad); err != nil {
			return invoke, err
		}
	}
	return invoke, nil
}

// park moves in-flight attempts to waiting, publishes step.waiting, sends
// a wake-up naming each wait due within MaxQueueDelay, and hands the freed
// in-flight slots to tasks waiting for capacity.
func (e *Engine) park(ctx context.Context, now time.Time, parks []store.Park, spans taskSpans) error {
	start := time.Now()
	changes, err := e.store.ParkSteps(ctx, now, e.cfg.InstanceID, parks)
	if err != nil {
		return err
	}
	if spans == nil {
		// Parked from handler answers: task.evaluate spans of their own.
		for _, w := range changes {
			e.startTaskSpan(&spans, ctx, start, w.TaskID, w.TraceParent, w.CorrelationID)
		}
		defer spans.end()
	}
	events := make([]Event, 0, len(changes))
	var msgs []Message
	for _, w := range changes {
		events = append(events, Event{Name: StepWaiting, Time: now, TaskID: w.TaskID, Namespace: w.Namespace,
			Workflow: w.Workflow, CorrelationID: w.CorrelationID, StepID: w.StepID, Step: w.Step, Attempt: w.Attempt,
			From: string(w.From), To: string(w.To), Reason: w.Reason,
			Data: mustJSON(map[string]any{"wait_kind": w.WaitKind, "waiting_until": w.WakeAt})})
		msgs = e.waitWake(msgs, w, now)
	}
	e.pub.Publish(ctx, events)
	spans.annotate(events)
	e.sendWaitWakes(ctx, msgs)
	if e.cfg.MaxInFlight > 0 && len(changes) > 0 {
		wakes := map[uuid.UUID]time.Duration{}
		for _, id := range e.waiting.pop(len(changes)) {
			wakes[id] = 0
		}
		e.wake(ctx, wakes, spans)
	}
	return nil
}

// waitWake appends the wake-up for a wait's due time when it is within
// MaxQueueDelay; later waits are found by the sweep.
func (e *Engine) waitWake(msgs []Message, w store.WaitChange, now time.Time) []Message {
	if w.WakeAt == nil {
		return msgs
	}
	d := max(w.WakeAt.Sub(now), 0)
	if d > e.cfg.MaxQueueDelay {
		return msgs
	}
	return append(msgs, Message{Body: contract.NewWaitWake(w.TaskID, w.StepID, w.Attempt), Delay: d})
}

func (e *Engine) sendWaitWakes(ctx context.Context, msgs []Message) {
	if len(msgs) == 0 {
		return
	}
	if err := e.cfg.Queue.Send(ctx, msgs); err != nil {
		e.log.WarnContext(ctx, "wait wake-up not sent; the sweep will find the wait", "error", err, "waits", len(msgs))
	}
}

// pendingPark is the Park of an attempt whose handler answered
// tasker_pending.
func pendingPark(r *contract.Result, timeoutSeconds int, now time.Time) store.Park {
	return store.Park{StepID: r.StepID, Attempt: r.Attempt, Kind: store.WaitCallback, Reason: reasonPending,
		WakeAt: now.Add(time.Duration(timeoutSeconds) * time.Second), TimeoutSeconds: timeoutSeconds}
}

// fireWaits moves on due waits: those named (a delayed wake-up), or with
// due nil the soonest due (the sweep). It publishes what changed, wakes
// retries, re-sends wake-ups for waits not due yet, and returns the tasks
// whose steps changed, for a scheduler pass.
func (e *Engine) fireWaits(ctx context.Context, due []store.DueWait, limit int) ([]uuid.UUID, error) {
	now := e.clock.Now()
	changes, err := e.store.FireWaits(ctx, now, e.cfg.InstanceID, due, limit)
	if err != nil {
		return nil, err
	}
	var msgs []Message
	var recorded []store.WaitChange
	for _, w := range changes {
		if w.Kind == "later" {
			msgs = e.waitWake(msgs, w, now)
			continue
		}
		recorded = append(recorded, w)
	}
	e.sendWaitWakes(ctx, msgs)
	return e.publishWaitOutcomes(ctx, now, recorded, false, false), nil
}

// publishWaitOutcomes publishes the events of recorded wait outcomes
// (step.callback_received or step.callback_timed_out, then the step's
// completed, retry or failure event) under task.evaluate spans, wakes
// the tasks of retries when due, and returns the tasks touched.
func (e *Engine) publishWaitOutcomes(ctx context.Context, now time.Time, recorded []store.WaitChange, received, permanent bool) []uuid.UUID {
	if len(recorded) == 0 {
		return nil
	}
	start := time.Now()
	var spans taskSpans
	for _, w := range recorded {
		e.startTaskSpan(&spans, ctx, start, w.TaskID, w.TraceParent, w.CorrelationID)
	}
	defer spans.end()
	events := make([]Event, 0, 2*len(recorded))
	wakes := map[uuid.UUID]time.Duration{}
	tasks := make([]uuid.UUID, 0, len(recorded))
	for _, w := range recorded {
		tasks = append(tasks, w.TaskID)
		e.health.observe(w.To == domain.StepComplete)
		ev := Event{Time: now, TaskID: w.TaskID, Namespace: w.Namespace, Workflow: w.Workflow,
			CorrelationID: w.CorrelationID, StepID: w.StepID, Step: w.Step, Attempt: w.Attempt,
			From: string(w.From), To: string(w.To), Reason: w.Reason}
		switch {
		case received:
			pre := ev
			pre.Name = StepCallbackReceived
			events = append(events, pre)
		case w.Reason == reasonCallbackTimedOut:
			pre := ev
			pre.Name = StepCallbackTimedOut
			events = append(events, pre)
		}
		switch w.To {
		case domain.StepComplete:
			ev.Name = StepCompleted
		case domain.StepWaitingForRetry:
			ev.Name = StepRetryScheduled
			if w.NextRetryAt != nil {
				wakes[w.TaskID] = w.NextRetryAt.Sub(now)
			}
		default:
			ev.Name = StepRetriesExhausted
			if permanent {
				ev.Name = StepFailed
			}
		}
		events = append(events, ev)
	}
	e.pub.Publish(ctx, events)
	spans.annotate(events)
	e.wake(ctx, wakes, spans)
	return tasks
}

// CallbackRequest is one callback: a result (Action CallbackSuccess), a
// failure (CallbackFailure: Failure.Message required) or a heartbeat.
type CallbackRequest struct {
	Action  string
	Result  json.RawMessage
	Failure *contract.HandlerError
}

// CallbackOutcome says what an accepted callback did.
type CallbackOutcome struct {
	TaskID  uuid.UUID
	Step    string
	Attempt int
	// State is the step's state after the callback.
	State domain.StepState
	// WaitingUntil is, after a heartbeat, when the wait (or the running
	// attempt's deadline) now ends.
	WaitingUntil *time.Time
}

// Callback applies a callback to the step attempt its token names
// (POST /v1/callbacks/{token}/…): a result completes the attempt; a
// failure follows the step's retry policy; a heartbeat extends the wait by
// its timeout. It works on a waiting attempt and on one still in flight
// (its handler's later answer is then ignored). Errors: ErrNotFound (not a
// token of any attempt), ErrConflict (the attempt is over: the token was
// used or is stale), ErrCallbackExpired (its wait timed out),
// ErrInvalidResult (nothing changed).
func (e *Engine) Callback(ctx context.Context, token string, req CallbackRequest) (CallbackOutcome, error) {
	step, attempt, hash, ok := parseToken(token)
	if !ok {
		return CallbackOutcome{}, &Error{Kind: ErrNotFound, cause: errors.New("unknown callback token")}
	}
	return e.callback(ctx, store.CallbackInput{StepID: step, Attempt: attempt, Hash: hash, Actor: "callback"}, req)
}

// CompleteStep completes the current attempt of a waiting step with a
// result, for an operator or a UI with permission steps:complete
// (POST /v1/tasks/{id}/steps/{step}/complete). Errors: ErrNotFound,
// ErrConflict (the step is not waiting), ErrInvalidResult.
func (e *Engine) CompleteStep(ctx context.Context, taskID uuid.UUID, step string, result json.RawMessage, actor string) (CallbackOutcome, error) {
	out, err := e.callback(ctx, store.CallbackInput{TaskID: taskID, Step: step, Actor: actor},
		CallbackRequest{Action: CallbackSuccess, Result: result})
	if errors.Is(err, ErrCallbackExpired) {
		return out, &Error{Kind: ErrConflict, cause: fmt.Errorf("step %q: its wait has expired", step)}
	}
	return out, err
}

func (e *Engine) callback(ctx context.Context, in store.CallbackInput, req CallbackRequest) (CallbackOutcome, error) {
	now := e.clock.Now()
	in.Now, in.Action, in.Grace = now, req.Action, e.cfg.DeadlineGrace
	if in.Actor == "" {
		in.Actor = "callback"
	}
	permanent := false
	switch req.Action {
	case CallbackSuccess:
		if len(req.Result) == 0 {
			req.Result = json.RawMessage("null")
		}
		if herr := e.checkResult(req.Result); herr != nil {
			return CallbackOutcome{}, &Error{Kind: ErrInvalidResult, cause: errors.New(herr.Message)}
		}
		in.Result, in.Reason = req.Result, reasonCallback+": "+reasonSucceeded
	case CallbackFailure:
		if req.Failure == nil || req.Failure.Message == "" {
			return CallbackOutcome{}, &Error{Kind: ErrInvalidResult, cause: errors.New("a failure needs a message")}
		}
		// The step id and attempt are filled in by the store's fence; the
		// body is the same as a handler failure's.
		sr := failure(in.StepID, in.Attempt, req.Failure, reasonCallback+": failed: "+req.Failure.Message)
		in.Error, in.Permanent, in.RetryAfter, in.Reason = sr.Error, sr.Permanent, sr.RetryAfter, sr.Reason
		permanent = sr.Permanent
	case CallbackHeartbeat:
		in.Reason = reasonCallback + ": heartbeat"
	default:
		return CallbackOutcome{}, fmt.Errorf("callback: unknown action %q", req.Action)
	}
	w, err := e.store.Callback(ctx, in)
	if err != nil {
		if refusal(err) != nil {
			return CallbackOutcome{}, &Error{Kind: ErrInvalidResult, cause: fmt.Errorf("PostgreSQL cannot store it: %w", err)}
		}
		return CallbackOutcome{}, err
	}
	out := CallbackOutcome{TaskID: w.TaskID, Step: w.Step, Attempt: w.Attempt, State: w.To, WaitingUntil: w.WakeAt}
	switch w.Kind {
	case "recorded":
		tasks := e.publishWaitOutcomes(ctx, now, []store.WaitChange{w}, true, permanent)
		if err := e.pass(ctx, tasks, nil); err != nil {
			// Recorded; the sweep moves the task on.
			e.log.WarnContext(ctx, "pass after callback failed; the sweep will move the task on", "task_id", w.TaskID, "error", err)
		}
		return out, nil
	case "heartbeat":
		out.State = w.From
		if w.From == domain.StepWaiting {
			e.sendWaitWakes(ctx, e.waitWake(nil, w, now))
		}
		return out, nil
	case "not_found":
		return out, &Error{Kind: ErrNotFound, cause: errors.New("unknown callback token or step")}
	case "expired":
		return out, &Error{Kind: ErrCallbackExpired, cause: fmt.Errorf("the wait of step %q, attempt %d, has expired", w.Step, w.Attempt)}
	case "map_waiting":
		return out, &Error{Kind: ErrConflict, cause: fmt.Errorf("step %q is a map step waiting for its instances; it completes when they end", w.Step)}
	case "child_waiting":
		return out, &Error{Kind: ErrConflict, cause: fmt.Errorf("step %q is waiting for its child task; it completes when the child ends", w.Step)}
	case "not_waiting":
		return out, &Error{Kind: ErrConflict, cause: fmt.Errorf("step %q is %s, not waiting", w.Step, w.From)}
	default: // over
		return out, &Error{Kind: ErrConflict, cause: fmt.Errorf("attempt %d of step %q is over; the callback changes nothing", w.Attempt, w.Step)}
	}
}
