package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/store"
)

// Reasons recorded on transitions.
const (
	reasonSucceeded   = "succeeded"
	reasonTimedOut    = "timed out"
	reasonInterrupted = "interrupted"
)

// maxReason bounds the error text copied into a transition's reason.
const maxReason = 500

type stepAttempt struct {
	step    uuid.UUID
	attempt int
}

// HandleMessages processes a batch of scheduler queue messages set-wise:
// record every result, evaluate readiness for every touched task in one
// pass, claim, dispatch. It returns the IDs of messages to report as batch
// item failures: malformed messages (poison: they go to the DLQ after the
// queue's redrive limit) and, when the pass itself fails, every message.
func (e *Engine) HandleMessages(ctx context.Context, msgs []InMessage) (failed []string, err error) {
	tasks := map[uuid.UUID]struct{}{}
	var results []store.StepResult
	seen := map[stepAttempt]bool{}
	var ok []string
	for _, m := range msgs {
		msg, perr := contract.ParseMessage(m.Body)
		if perr != nil {
			e.log.WarnContext(ctx, "dropping malformed scheduler message", "message_id", m.ID, "error", perr)
			failed = append(failed, m.ID)
			continue
		}
		ok = append(ok, m.ID)
		switch {
		case msg.Wake != nil:
			tasks[msg.Wake.TaskID] = struct{}{}
		case msg.Result != nil:
			r := msg.Result
			tasks[r.TaskID] = struct{}{}
			k := stepAttempt{r.StepID, r.Attempt}
			if seen[k] {
				continue // a duplicate in the same batch; the fence would ignore it anyway
			}
			seen[k] = true
			results = append(results, e.toStepResult(r))
		}
	}
	if err := e.pass(ctx, keys(tasks), results); err != nil {
		return append(failed, ok...), err
	}
	return failed, nil
}

// ProcessTasks evaluates tasks directly, as if a wake-up arrived for each.
func (e *Engine) ProcessTasks(ctx context.Context, ids ...uuid.UUID) error {
	return e.pass(ctx, ids, nil)
}

func (e *Engine) toStepResult(r *contract.Result) store.StepResult {
	sr := store.StepResult{StepID: r.StepID, Attempt: r.Attempt}
	if r.Err == nil && len(r.Output) > e.maxResultBytes() {
		r.Err = &contract.HandlerError{
			Message:   fmt.Sprintf("result is %d bytes, over the %d-byte limit", len(r.Output), e.maxResultBytes()),
			Permanent: true, Code: "result_too_large",
		}
	}
	if r.Err == nil {
		sr.OK, sr.Result, sr.Reason = true, r.Output, reasonSucceeded
		return sr
	}
	return failure(r.StepID, r.Attempt, r.Err, "failed: "+r.Err.Message)
}

func (e *Engine) maxResultBytes() int { return 256 << 10 }

func failure(step uuid.UUID, attempt int, he *contract.HandlerError, reason string) store.StepResult {
	if len(reason) > maxReason {
		reason = reason[:maxReason] + "…"
	}
	body, _ := json.Marshal(struct {
		*contract.HandlerError
		Attempt int `json:"attempt"`
	}{he, attempt}) // cannot fail
	sr := store.StepResult{StepID: step, Attempt: attempt, Error: body, Permanent: he.Permanent, Reason: reason}
	if he.RetryAfterSeconds > 0 {
		d := time.Duration(he.RetryAfterSeconds) * time.Second
		sr.RetryAfter = &d
	}
	return sr
}

// pass is one scheduler pass: one transaction, then dispatch and wake-ups.
func (e *Engine) pass(ctx context.Context, taskIDs []uuid.UUID, results []store.StepResult) error {
	if len(taskIDs) == 0 {
		return nil
	}
	now := e.clock.Now()
	out, err := e.store.Process(ctx, store.ProcessInput{
		Now: now, Actor: e.cfg.InstanceID, TaskIDs: taskIDs, Results: results,
		ClaimLimit: e.cfg.ClaimLimit, GlobalCap: e.health.cap(e.cfg.MaxInFlight), Grace: e.cfg.DeadlineGrace,
	})
	if err != nil {
		return err
	}
	permanent := map[stepAttempt]bool{}
	for _, r := range results {
		if !r.OK && r.Permanent {
			permanent[stepAttempt{r.StepID, r.Attempt}] = true
		}
	}
	events := make([]Event, 0, len(out.Recorded)+len(out.Finalized)+len(out.Claims))
	wakes := map[uuid.UUID]time.Duration{}
	for _, t := range out.Recorded {
		e.health.observe(t.To == "complete")
		ev := Event{Time: now, TaskID: t.TaskID, StepID: t.StepID, Step: t.Step, Attempt: t.Attempt, From: t.From, To: t.To, Reason: t.Reason}
		if t.Reason == reasonTimedOut {
			to := ev
			to.Name = StepTimedOut
			events = append(events, to)
		}
		switch t.To {
		case "complete":
			ev.Name = StepCompleted
		case "waiting_for_retry":
			ev.Name = StepRetryScheduled
			if t.NextRetryAt != nil {
				d := t.NextRetryAt.Sub(now)
				if cur, ok := wakes[t.TaskID]; !ok || d < cur {
					wakes[t.TaskID] = d
				}
			}
		default:
			ev.Name = StepRetriesExhausted
			if permanent[stepAttempt{t.StepID, t.Attempt}] {
				ev.Name = StepFailed
			}
		}
		events = append(events, ev)
	}
	for _, f := range out.Finalized {
		ev := Event{Time: now, TaskID: f.TaskID, Namespace: f.Namespace, Workflow: f.Workflow,
			CorrelationID: f.CorrelationID, From: f.From, To: f.To}
		switch f.To {
		case "complete":
			ev.Name = TaskCompleted
		case "resolved_manually":
			ev.Name = TaskResolved
		default:
			ev.Name = TaskFailed
		}
		events = append(events, ev)
	}
	for _, c := range out.Claims {
		if c.TaskStarted {
			events = append(events, Event{Name: TaskStarted, Time: now, TaskID: c.TaskID, Namespace: c.Namespace,
				Workflow: c.Workflow, CorrelationID: c.CorrelationID, From: "pending", To: "in_progress"})
		}
		events = append(events, Event{Name: StepClaimed, Time: now, TaskID: c.TaskID, Namespace: c.Namespace,
			Workflow: c.Workflow, CorrelationID: c.CorrelationID, StepID: c.StepID, Step: c.Step,
			Attempt: c.Attempt, From: c.From, To: "in_progress"})
	}
	e.pub.Publish(ctx, events)
	e.wake(ctx, wakes)
	return e.dispatch(ctx, out.Claims)
}

// dispatch hands claimed attempts to the invoker in parallel. A dispatch
// error never burns an attempt: the claim is released and retried shortly.
// A payload that can never be accepted fails the step permanently.
func (e *Engine) dispatch(ctx context.Context, claims []store.Claim) error {
	if len(claims) == 0 {
		return nil
	}
	errs := make([]error, len(claims))
	runParallel(e.cfg.DispatchConcurrency, len(claims), func(i int) {
		c := claims[i]
		payload, err := buildPayload(c)
		if err == nil {
			err = e.cfg.Invoker.Invoke(ctx, Invocation{
				TaskID: c.TaskID, StepID: c.StepID, Step: c.Step, Attempt: c.Attempt, Handler: c.Handler, Payload: payload,
			})
		}
		errs[i] = err
	})
	now := e.clock.Now()
	var events []Event
	var releases []store.Release
	var tooLarge []store.StepResult
	tasks := map[uuid.UUID]struct{}{}
	for i, c := range claims {
		ev := Event{Time: now, TaskID: c.TaskID, Namespace: c.Namespace, Workflow: c.Workflow,
			CorrelationID: c.CorrelationID, StepID: c.StepID, Step: c.Step, Attempt: c.Attempt}
		switch err := errs[i]; {
		case err == nil:
			ev.Name = StepDispatched
		case errors.Is(err, ErrPayloadTooLarge):
			ev.Name, ev.Reason = StepDispatchFailed, err.Error()
			tooLarge = append(tooLarge, failure(c.StepID, c.Attempt,
				&contract.HandlerError{Message: err.Error(), Permanent: true, Code: "payload_too_large"}, "dispatch failed: "+err.Error()))
			tasks[c.TaskID] = struct{}{}
		default:
			ev.Name, ev.Reason = StepDispatchFailed, err.Error()
			releases = append(releases, store.Release{StepID: c.StepID, Attempt: c.Attempt, Reason: "dispatch failed: " + truncate(err.Error())})
		}
		events = append(events, ev)
	}
	e.pub.Publish(ctx, events)
	if len(releases) > 0 {
		e.log.WarnContext(ctx, "step dispatch failed; claims released", "steps", len(releases), "error", firstErr(errs))
		released, err := e.store.ReleaseClaims(ctx, now, e.cfg.InstanceID, e.cfg.DispatchRetryDelay, releases)
		if err != nil {
			// The deadline sweep recovers these attempts.
			return fmt.Errorf("release claims after dispatch failure: %w", err)
		}
		wakes := map[uuid.UUID]time.Duration{}
		for _, r := range released {
			wakes[r.TaskID] = e.cfg.DispatchRetryDelay
		}
		e.wake(ctx, wakes)
	}
	if len(tooLarge) > 0 {
		return e.pass(ctx, keys(tasks), tooLarge)
	}
	return nil
}

func buildPayload(c store.Claim) ([]byte, error) {
	var results map[string]json.RawMessage
	if len(c.Results) > 0 {
		if err := json.Unmarshal(c.Results, &results); err != nil {
			return nil, fmt.Errorf("parent results of %s: %w", c.Step, err)
		}
	}
	return json.Marshal(contract.Payload{
		Tasker: contract.Meta{
			Version: contract.PayloadVersion, TaskID: c.TaskID, StepID: c.StepID, Step: c.Step, Handler: c.Handler,
			Attempt: c.Attempt, MaxAttempts: c.MaxAttempts, Namespace: c.Namespace, Workflow: c.Workflow,
			WorkflowVersion: c.Version, IdempotencyKey: contract.IdempotencyKey(c.TaskID, c.Step, c.Attempt),
			CorrelationID: c.CorrelationID, Deadline: c.Deadline.UTC(),
		},
		Context: c.Context, Config: c.Config, Results: results,
	})
}

func firstErr(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func truncate(s string) string {
	if len(s) > maxReason {
		return s[:maxReason] + "…"
	}
	return s
}

func keys[K comparable, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
