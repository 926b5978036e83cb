package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/template"
)

// Child workflows (docs/architecture.md, "Child workflows"). A claimed
// tasker.workflow step is not invoked: the engine creates its child task
// through CreateTask with an idempotency key of the step's attempt, then
// parks the step waiting (wait_kind child). When a child ends, the pass
// that finalized it settles the parent step (tasker_settle_children) and
// the parent task moves on; the sweep is the backstop.

// Codes of child workflow failures.
const (
	codeChildInvalid = "child_invalid"
	codeChildFailed  = "child_failed" // set by tasker_settle_children
)

// childScope is the idempotency scope of child tasks; no API caller's
// scope is ever this one.
const childScope = "child"

// childKey is the idempotency key of the child of one step attempt: a crash
// or a duplicate claim finds the same child, a retry starts a new one.
func childKey(step uuid.UUID, attempt int) string {
	return fmt.Sprintf("child:%s:%d", step, attempt)
}

// children starts the children of the claimed tasker.workflow steps and
// returns the other claims to dispatch, the failures to record for steps
// whose child cannot be created (a bad config or context), and the tasks
// that need a pass.
func (e *Engine) children(ctx context.Context, claims []store.Claim, spans taskSpans) (run []store.Claim, decided []store.StepResult, tasks []uuid.UUID, err error) {
	var starts []store.ChildStart
	var dspans map[uuid.UUID]trace.Span // by step id
	defer func() {
		for _, span := range dspans {
			span.End()
		}
	}()
	for _, c := range claims {
		if c.Handler != template.HandlerWorkflow || c.Map != nil {
			run = append(run, c)
			continue
		}
		// The child joins its parent's trace (docs/observability.md,
		// "Traces"): its task.create is a child of this attempt's
		// step.dispatch span, as a handler's step.execute would be.
		cctx := ctx
		if tctx, ok := spans.ctx(c.TaskID); ok {
			var span trace.Span
			cctx, span = e.tracer.Start(tctx, SpanStepDispatch, trace.WithSpanKind(trace.SpanKindProducer),
				trace.WithAttributes(AttrTaskID.String(c.TaskID.String()), AttrStepID.String(c.StepID.String()),
					AttrStep.String(c.Step), AttrAttempt.Int(c.Attempt), AttrHandler.String(c.Handler),
					AttrCorrelationID.String(c.CorrelationID)))
			if dspans == nil {
				dspans = map[uuid.UUID]trace.Span{}
			}
			dspans[c.StepID] = span
		}
		child, cerr := e.startChild(cctx, c)
		if span := dspans[c.StepID]; span != nil {
			if cerr != nil {
				span.RecordError(cerr)
				span.SetStatus(codes.Error, cerr.Error())
			} else {
				span.SetAttributes(AttrChildTaskID.String(child.String()))
			}
		}
		if cerr != nil {
			var te *template.ContextError
			if errors.As(cerr, &te) || errors.Is(cerr, template.ErrNotFound) || errors.Is(cerr, errChildConfig) {
				msg := cerr.Error()
				decided = append(decided, failure(c.StepID, c.Attempt,
					&contract.HandlerError{Message: msg, Permanent: true, Code: codeChildInvalid}, "failed: "+msg))
				tasks = appendNew(tasks, c.TaskID)
				continue
			}
			// The attempt stays in flight; the deadline sweep retries it,
			// and the idempotency key finds a child created meanwhile.
			err = errors.Join(err, cerr)
			continue
		}
		starts = append(starts, store.ChildStart{StepID: c.StepID, Attempt: c.Attempt, ChildID: child})
	}
	if len(starts) == 0 {
		return run, decided, tasks, err
	}
	now := e.clock.Now()
	changes, ended, perr := e.store.ParkChildren(ctx, now, e.cfg.InstanceID, starts)
	if perr != nil {
		return run, decided, tasks, errors.Join(err, perr)
	}
	childOf := make(map[uuid.UUID]uuid.UUID, len(starts))
	for _, s := range starts {
		childOf[s.StepID] = s.ChildID
	}
	events := make([]Event, 0, 2*len(changes))
	for _, w := range changes {
		base := Event{Time: now, TaskID: w.TaskID, Namespace: w.Namespace, Workflow: w.Workflow,
			CorrelationID: w.CorrelationID, StepID: w.StepID, Step: w.Step, Attempt: w.Attempt,
			From: string(w.From), To: string(w.To), Reason: w.Reason}
		waiting := base
		waiting.Name, waiting.Data = StepWaiting, mustJSON(map[string]any{"wait_kind": w.WaitKind})
		started := base
		started.Name, started.Data = StepChildStarted, mustJSON(map[string]any{"child_task_id": childOf[w.StepID]})
		events = append(events, waiting, started)
	}
	e.pub.Publish(ctx, events)
	spans.annotate(events)
	for _, ev := range events {
		if span := dspans[ev.StepID]; span != nil && ev.Name == StepChildStarted {
			addSpanEvent(span, ev, time.Now())
		}
	}
	// A child that ended before its parent step was parked named no parent
	// when its pass finalized it: it is settled now (usually there is none,
	// and no statement runs).
	return run, decided, tasks, errors.Join(err, e.settleChildren(ctx, ended))
}

var errChildConfig = errors.New("invalid tasker.workflow config")

// startChild creates (or, by its idempotency key, finds) the child of a
// claimed tasker.workflow step attempt.
func (e *Engine) startChild(ctx context.Context, c store.Claim) (uuid.UUID, error) {
	cfg, err := template.ParseWorkflowConfig(c.Config)
	if err != nil {
		return uuid.Nil, fmt.Errorf("%w: %w", errChildConfig, err)
	}
	body, err := cfg.ChildContext(c.Context)
	if err != nil {
		return uuid.Nil, fmt.Errorf("%w: %w", errChildConfig, err)
	}
	out, err := e.CreateTask(ctx, CreateRequest{
		Namespace: cfg.Namespace, Name: cfg.Name, Version: cfg.Version, Context: body,
		Initiator: "tasker", SourceSystem: "tasker.workflow",
		Reason:         fmt.Sprintf("child of task %s, step %s", c.TaskID, c.Step),
		IdempotencyKey: childKey(c.StepID, c.Attempt), IdempotencyScope: childScope,
		CorrelationID: c.CorrelationID, Actor: e.cfg.InstanceID,
	})
	if err != nil {
		return uuid.Nil, fmt.Errorf("start child of step %s: %w", c.Step, err)
	}
	return out.TaskID, nil
}

// settleChildren completes or fails the parent steps waiting on the ended
// tasks among taskIDs, in one statement, and runs a pass for the parents.
func (e *Engine) settleChildren(ctx context.Context, taskIDs []uuid.UUID) error {
	if len(taskIDs) == 0 {
		return nil
	}
	now := e.clock.Now()
	changes, err := e.store.SettleChildren(ctx, now, e.cfg.InstanceID, taskIDs)
	if err != nil || len(changes) == 0 {
		return err
	}
	tasks := e.publishWaitOutcomes(ctx, now, changes, false, false)
	return e.pass(ctx, tasks, nil)
}

// cancelChildren cancels the live children of the cancelled tasks, then
// theirs, one level per statement.
func (e *Engine) cancelChildren(ctx context.Context, ids []uuid.UUID, actor, reason string) error {
	for depth := 0; len(ids) > 0 && depth < 64; depth++ {
		kids, err := e.store.LiveChildren(ctx, ids)
		if err != nil || len(kids) == 0 {
			return err
		}
		now := e.clock.Now()
		out, err := e.store.CancelTasks(ctx, kids, now, actor, reason)
		if err != nil {
			return err
		}
		for _, r := range out.Changed {
			e.publishOperator(ctx, now, r, TaskCancelled, StepCancelled, reason)
		}
		ids = kids
	}
	return nil
}
