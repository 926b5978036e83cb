package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/domain"
	"github.com/taskerhq/tasker/internal/jsonb"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/telemetry"
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
	ctx, span := e.tracer.Start(ctx, SpanSchedulerBatch, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(AttrMessages.Int(len(msgs))), trace.WithLinks(messageLinks(msgs)...))
	defer func() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()
	tasks := map[uuid.UUID]struct{}{}
	var results []store.StepResult
	var parks []store.Park
	var due []store.DueWait
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
			if msg.Wake.StepID != uuid.Nil {
				due = append(due, store.DueWait{StepID: msg.Wake.StepID, Attempt: msg.Wake.Attempt})
			}
		case msg.Result != nil:
			r := msg.Result
			tasks[r.TaskID] = struct{}{}
			k := stepAttempt{r.StepID, r.Attempt}
			if seen[k] {
				continue // a duplicate in the same batch; the fence would ignore it anyway
			}
			seen[k] = true
			if r.Err == nil {
				if secs, herr, pending := contract.AsPending(r.Output); pending {
					if herr == nil {
						parks = append(parks, pendingPark(r, secs, e.clock.Now()))
						continue
					}
					r.Err = herr
				}
			}
			results = append(results, e.toStepResult(ctx, r))
		}
	}
	start := time.Now()
	// Waits first: parking frees slots the pass can use, and a fired wait
	// makes its dependents ready for it.
	if len(parks) > 0 {
		if err := e.park(ctx, e.clock.Now(), parks, nil); err != nil {
			return append(failed, ok...), err
		}
	}
	if len(due) > 0 {
		if _, err := e.fireWaits(ctx, due, 0); err != nil {
			return append(failed, ok...), err
		}
	}
	if err := e.pass(ctx, keys(tasks), results); err != nil {
		e.pub.Publish(ctx, []Event{{Name: PassFailed, Time: e.clock.Now(), Reason: truncate(err.Error()),
			Data: mustJSON(map[string]int{"messages": len(msgs)})}})
		return append(failed, ok...), err
	}
	e.pub.Publish(ctx, []Event{batchEvent(msgs, len(failed), start)})
	return failed, nil
}

// batchEvent describes a processed batch: its duration, and in Data the
// message count, malformed messages and queue lag (the age of its oldest
// message, when the queue reports when messages became available).
func batchEvent(msgs []InMessage, malformed int, start time.Time) Event {
	end := time.Now()
	var oldest time.Time
	for _, m := range msgs {
		if !m.ReadyAt.IsZero() && (oldest.IsZero() || m.ReadyAt.Before(oldest)) {
			oldest = m.ReadyAt
		}
	}
	data := BatchData{Messages: len(msgs), Malformed: malformed}
	if !oldest.IsZero() {
		data.QueueLagMS = max(0, float64(start.Sub(oldest).Microseconds())/1000)
	}
	return Event{Name: BatchProcessed, Time: end.UTC(), DurationMS: float64(end.Sub(start).Microseconds()) / 1000,
		Data: mustJSON(data)}
}

// The limits of flow control (docs/control-flow.md, "Flow control"):
// HeldRateLimit is also the reason of the wake-ups a scheduler pass asks
// for the steps their rate limit held back.
const (
	HeldRateLimit   = "rate_limit"
	HeldConcurrency = "concurrency"
)

// HeldData is the Data of a scheduler.steps_held event: how many ready
// steps one pass held back, by limit.
type HeldData struct {
	RateLimit   int `json:"rate_limit,omitempty"`
	Concurrency int `json:"concurrency,omitempty"`
}

// BatchData is the Data of a scheduler.batch_processed event.
type BatchData struct {
	Messages   int     `json:"messages"`
	Malformed  int     `json:"malformed,omitempty"`
	QueueLagMS float64 `json:"queue_lag_ms,omitempty"`
}

// maxLinks bounds the links of a scheduler.batch span.
const maxLinks = 128

// messageLinks links a batch span to the trace context messages carry.
func messageLinks(msgs []InMessage) []trace.Link {
	var links []trace.Link
	for _, m := range msgs {
		if len(links) == maxLinks {
			break
		}
		if sc := telemetry.ExtractMessage(m.Attributes); sc.IsValid() {
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	return links
}

// ProcessTasks evaluates tasks directly, as if a wake-up arrived for each.
func (e *Engine) ProcessTasks(ctx context.Context, ids ...uuid.UUID) error {
	return e.pass(ctx, ids, nil)
}

// Codes of the failures the engine records for a result it cannot store.
const (
	codeResultTooLarge = "result_too_large"
	codeResultInvalid  = "result_invalid"
	codeInvalidEvents  = "invalid_events"
)

func (e *Engine) toStepResult(ctx context.Context, r *contract.Result) store.StepResult {
	sr := store.StepResult{StepID: r.StepID, Attempt: r.Attempt}
	if r.Err == nil {
		r.Err = e.checkResult(r.Output)
	}
	if r.Err == nil {
		r.Err = e.checkResultRef(ctx, r)
	}
	if r.Err == nil {
		sr.OK, sr.Result, sr.Reason = true, r.Output, reasonSucceeded
		return sr
	}
	return failure(r.StepID, r.Attempt, r.Err, "failed: "+r.Err.Message)
}

// checkResult returns the permanent failure a result that cannot be stored
// stands for, or nil.
func (e *Engine) checkResult(out json.RawMessage) *contract.HandlerError {
	if len(out) > e.maxResultBytes() {
		return &contract.HandlerError{
			Message:   fmt.Sprintf("result is %d bytes, over the %d-byte limit", len(out), e.maxResultBytes()),
			Permanent: true, Code: codeResultTooLarge,
		}
	}
	if e.skipResultCheck {
		return nil
	}
	if err := jsonb.Check(out); err != nil {
		return &contract.HandlerError{Message: "result: " + err.Error(), Permanent: true, Code: codeResultInvalid}
	}
	if _, err := contract.CustomEvents(out); err != nil {
		return &contract.HandlerError{Message: "result: " + err.Error(), Permanent: true, Code: codeInvalidEvents}
	}
	return nil
}

func (e *Engine) maxResultBytes() int { return domain.MaxPayloadBytes }

// failure is the StepResult of a failed attempt. The handler's text is made
// storable first: PostgreSQL's text and jsonb refuse NUL characters and
// invalid UTF-8, and one refused value must not fail the whole pass.
func failure(step uuid.UUID, attempt int, he *contract.HandlerError, reason string) store.StepResult {
	clean := *he
	clean.Message, clean.Code = storable(he.Message), storable(he.Code)
	body, _ := json.Marshal(struct {
		*contract.HandlerError
		Attempt int `json:"attempt"`
	}{&clean, attempt}) // cannot fail
	sr := store.StepResult{StepID: step, Attempt: attempt, Error: body, Permanent: he.Permanent, Reason: truncate(reason)}
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
	start := time.Now()
	now := e.clock.Now()
	globalCap := e.inFlightCap(ctx)
	out, results, err := e.process(ctx, store.ProcessInput{
		Now: now, Actor: e.cfg.InstanceID, TaskIDs: taskIDs, Results: results,
		ClaimLimit: e.cfg.ClaimLimit, GlobalCap: globalCap, Grace: e.cfg.DeadlineGrace,
	})
	if err != nil {
		return err
	}
	e.health.commit(time.Since(start))
	// One task.evaluate span per task this pass changed, under the task's
	// stored trace context (none when tracing is off).
	var spans taskSpans
	for _, t := range out.Recorded {
		e.startTaskSpan(&spans, ctx, start, t.TaskID, t.TraceParent, t.CorrelationID)
	}
	for _, f := range out.Finalized {
		e.startTaskSpan(&spans, ctx, start, f.TaskID, f.TraceParent, f.CorrelationID)
	}
	for _, c := range out.Claims {
		e.startTaskSpan(&spans, ctx, start, c.TaskID, c.TraceParent, c.CorrelationID)
	}
	defer spans.end()
	permanent := map[stepAttempt]bool{}
	var withEvents map[stepAttempt][]contract.CustomEvent
	for _, r := range results {
		if !r.OK && r.Permanent {
			permanent[stepAttempt{r.StepID, r.Attempt}] = true
		}
		if r.OK {
			if evs, _ := contract.CustomEvents(r.Result); len(evs) > 0 { // checked in toStepResult
				if withEvents == nil {
					withEvents = map[stepAttempt][]contract.CustomEvent{}
				}
				withEvents[stepAttempt{r.StepID, r.Attempt}] = evs
			}
		}
	}
	events := make([]Event, 0, len(out.Recorded)+len(out.Finalized)+len(out.Claims))
	wakes := map[uuid.UUID]time.Duration{}
	for _, t := range out.Recorded {
		if t.From == domain.StepInProgress && t.To != domain.StepSkipped {
			e.health.observe(t.To == domain.StepComplete) // a handler's outcome
		}
		ev := Event{Time: now, TaskID: t.TaskID, CorrelationID: t.CorrelationID, StepID: t.StepID, Step: t.Step,
			Attempt: t.Attempt, From: string(t.From), To: string(t.To), Reason: t.Reason}
		if t.Reason == reasonTimedOut {
			to := ev
			to.Name = StepTimedOut
			events = append(events, to)
		}
		switch t.To {
		case domain.StepComplete:
			ev.Name = StepCompleted
		case domain.StepSkipped:
			ev.Name = StepSkipped
		case domain.StepWaitingForRetry:
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
		if evs := withEvents[stepAttempt{t.StepID, t.Attempt}]; len(evs) > 0 && t.To == domain.StepComplete {
			events = append(events, customEvents(ev, evs)...)
		}
	}
	for _, f := range out.Finalized {
		ev := Event{Time: now, TaskID: f.TaskID, Namespace: f.Namespace, Workflow: f.Workflow,
			CorrelationID: f.CorrelationID, From: string(f.From), To: string(f.To)}
		switch f.To {
		case domain.TaskComplete:
			ev.Name = TaskCompleted
		case domain.TaskResolvedManually:
			ev.Name = TaskResolved
		default:
			ev.Name = TaskFailed
		}
		events = append(events, ev)
	}
	for _, c := range out.Claims {
		if c.TaskStarted {
			events = append(events, Event{Name: TaskStarted, Time: now, TaskID: c.TaskID, Namespace: c.Namespace,
				Workflow: c.Workflow, CorrelationID: c.CorrelationID, From: string(domain.TaskPending), To: string(domain.TaskInProgress)})
		}
		events = append(events, Event{Name: StepClaimed, Time: now, TaskID: c.TaskID, Namespace: c.Namespace,
			Workflow: c.Workflow, CorrelationID: c.CorrelationID, StepID: c.StepID, Step: c.Step,
			Attempt: c.Attempt, From: string(c.From), To: string(domain.StepInProgress), Handler: c.Handler})
	}
	held := HeldData{Concurrency: len(out.Held)}
	for _, w := range out.Wakes {
		if w.Reason == HeldRateLimit {
			held.RateLimit++
		}
		var d time.Duration
		if w.At != nil {
			d = max(w.At.Sub(now), 0)
		}
		if cur, ok := wakes[w.TaskID]; !ok || d < cur {
			wakes[w.TaskID] = d
		}
	}
	if globalCap > 0 {
		e.wakeWaiting(taskIDs, out, wakes)
	}
	if held.RateLimit > 0 || held.Concurrency > 0 {
		// One event per pass, not per held step: a step held for a minute
		// would otherwise repeat itself at every wake-up.
		events = append(events, Event{Name: StepsHeld, Time: now, Data: mustJSON(held)})
	}
	e.pub.Publish(ctx, events)
	spans.annotate(events)
	e.wake(ctx, wakes, spans)
	run, decided, decidedTasks := e.conditions(ctx, out.Claims)
	run, mapped, mapTasks, err := e.maps(ctx, run, spans)
	run, started, childTasks, cerr := e.children(ctx, run, spans)
	err = errors.Join(err, cerr, e.dispatch(ctx, run, spans))
	decided = append(decided, mapped...)
	decided = append(decided, started...)
	decidedTasks = appendNew(decidedTasks, mapTasks...)
	decidedTasks = appendNew(decidedTasks, childTasks...)
	// Ended children settle their parents' steps (docs/architecture.md,
	// "Child workflows"): one statement for the pass's finalized tasks that
	// have a parent, none when no finalized task has one.
	var ended []uuid.UUID
	for _, f := range out.Finalized {
		if f.ParentTaskID != uuid.Nil {
			ended = append(ended, f.TaskID)
		}
	}
	err = errors.Join(err, e.settleChildren(ctx, ended))
	if len(decidedTasks) > 0 {
		// Record the skips, condition failures and maps that ended at
		// once, and claim what they made ready (a map's instances), in the
		// next pass.
		err = errors.Join(err, e.pass(ctx, decidedTasks, decided))
	}
	return err
}

// process runs the pass's transaction. If PostgreSQL refuses a value of the
// batch (a data exception the result check did not foresee), the results
// are recorded in halves, without claiming, until each refused one stands
// alone; it is replaced by a permanent result_invalid failure and the pass
// runs again with the replacements. A failed transaction changes nothing and
// recording is fenced by attempt, so the repeated passes are safe. It
// returns the results as recorded.
func (e *Engine) process(ctx context.Context, in store.ProcessInput) (store.ProcessOutput, []store.StepResult, error) {
	out, err := e.store.Process(ctx, in)
	cause := refusal(err)
	if cause == nil || len(in.Results) == 0 {
		return out, in.Results, err
	}
	e.log.WarnContext(ctx, "PostgreSQL refused a result of the batch; isolating it", "results", len(in.Results), "error", err)
	results := slices.Clone(in.Results)
	var done store.ProcessOutput
	var invalid []store.StepResult
	// bisect records results[lo:hi], known to hold a value refused with cause.
	var bisect func(lo, hi int, cause *pgconn.PgError) error
	bisect = func(lo, hi int, cause *pgconn.PgError) error {
		if hi-lo == 1 {
			results[lo] = refusedResult(results[lo], cause)
			invalid = append(invalid, results[lo])
			return nil
		}
		mid := (lo + hi) / 2
		for _, r := range [][2]int{{lo, mid}, {mid, hi}} {
			sub := in
			sub.Results, sub.ClaimLimit = results[r[0]:r[1]], 0
			part, err := e.store.Process(ctx, sub)
			if err == nil {
				done.Recorded = append(done.Recorded, part.Recorded...)
				done.Finalized = append(done.Finalized, part.Finalized...)
				done.Claims = append(done.Claims, part.Claims...) // none unless the store ignores ClaimLimit 0
				continue
			}
			pe := refusal(err)
			if pe == nil {
				return err
			}
			if err := bisect(r[0], r[1], pe); err != nil {
				return err
			}
		}
		return nil
	}
	if err := bisect(0, len(results), cause); err != nil {
		return store.ProcessOutput{}, nil, err
	}
	in.Results = invalid
	last, err := e.store.Process(ctx, in)
	if err != nil {
		return store.ProcessOutput{}, nil, err
	}
	last.Recorded = append(done.Recorded, last.Recorded...)
	last.Finalized = append(done.Finalized, last.Finalized...)
	last.Claims = append(done.Claims, last.Claims...)
	return last, results, nil
}

// refusal returns the error with which PostgreSQL refused a value, or nil:
// a data exception (SQLSTATE class 22: untranslatable character, numeric
// out of range, invalid text representation…) or a program limit such as
// the stack depth a deeply nested value exhausts (class 54).
func refusal(err error) *pgconn.PgError {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "54")) {
		return pe
	}
	return nil
}

// refusedResult is the permanent failure that replaces a result PostgreSQL
// refused.
func refusedResult(r store.StepResult, cause *pgconn.PgError) store.StepResult {
	what := "result"
	if !r.OK {
		what = "error"
	}
	msg := fmt.Sprintf("%s: PostgreSQL cannot store it: %s (SQLSTATE %s)", what, cause.Message, cause.Code)
	if cause.Detail != "" {
		msg += ": " + cause.Detail
	}
	return failure(r.StepID, r.Attempt, &contract.HandlerError{Message: msg, Permanent: true, Code: codeResultInvalid}, "failed: "+msg)
}

// maxDispatchWarnings bounds the per-step warnings of one dispatch round
// (an invoker outage fails every claim; the events name them all).
const maxDispatchWarnings = 10

// dispatch hands claimed attempts to the invoker in parallel. A dispatch
// error never burns an attempt: the claim is released and retried shortly.
// A payload that can never be accepted fails the step permanently.
func (e *Engine) dispatch(ctx context.Context, claims []store.Claim, spans taskSpans) error {
	claims, err := e.parkClaims(ctx, claims, spans)
	if err != nil {
		return err
	}
	if len(claims) == 0 {
		return nil
	}
	if err := e.addInputs(ctx, claims); err != nil {
		// Dispatching without the inputs would hand handlers a partial
		// "results"; release the claims instead, like a failed dispatch.
		rs := make([]store.Release, len(claims))
		for i, c := range claims {
			rs[i] = store.Release{StepID: c.StepID, Attempt: c.Attempt, Reason: "dispatch failed: " + truncate(err.Error())}
		}
		if _, rerr := e.store.ReleaseClaims(ctx, e.clock.Now(), e.cfg.InstanceID, e.cfg.DispatchRetryDelay, rs); rerr != nil {
			return fmt.Errorf("read step inputs: %w (release claims: %v)", err, rerr)
		}
		return fmt.Errorf("read step inputs: %w", err)
	}
	errs := make([]error, len(claims))
	latency := make([]time.Duration, len(claims))
	ended := make([]time.Time, len(claims))
	dspans := make([]trace.Span, len(claims))
	runParallel(e.cfg.DispatchConcurrency, len(claims), func(i int) {
		c := claims[i]
		start := time.Now()
		dctx := ctx
		traceParent := ""
		if tctx, ok := spans.ctx(c.TaskID); ok {
			var span trace.Span
			dctx, span = e.tracer.Start(tctx, SpanStepDispatch, trace.WithSpanKind(trace.SpanKindProducer),
				trace.WithAttributes(AttrTaskID.String(c.TaskID.String()), AttrStepID.String(c.StepID.String()),
					AttrStep.String(c.Step), AttrAttempt.Int(c.Attempt), AttrHandler.String(c.Handler),
					AttrCorrelationID.String(c.CorrelationID)))
			dspans[i] = span
			traceParent = telemetry.TraceParent(dctx)
		}
		payload, err := e.buildPayload(dctx, c, traceParent)
		if err == nil {
			err = e.cfg.Invoker.Invoke(dctx, Invocation{
				TaskID: c.TaskID, StepID: c.StepID, Step: c.Step, Attempt: c.Attempt, Handler: c.Handler, Payload: payload,
				CorrelationID: c.CorrelationID,
			})
		}
		ended[i] = time.Now()
		errs[i], latency[i] = err, ended[i].Sub(start)
	})
	now := e.clock.Now()
	var events []Event
	var releases []store.Release
	var tooLarge []store.StepResult
	tasks := map[uuid.UUID]struct{}{}
	failedLogged := 0
	for i, c := range claims {
		ev := Event{Time: now, TaskID: c.TaskID, Namespace: c.Namespace, Workflow: c.Workflow,
			CorrelationID: c.CorrelationID, StepID: c.StepID, Step: c.Step, Attempt: c.Attempt, Handler: c.Handler,
			DurationMS: float64(latency[i].Microseconds()) / 1000}
		switch err := errs[i]; {
		case err == nil:
			ev.Name = StepDispatched
		case errors.Is(err, ErrPayloadTooLarge):
			ev.Name, ev.Reason = StepDispatchFailed, err.Error()
			tooLarge = append(tooLarge, failure(c.StepID, c.Attempt,
				&contract.HandlerError{Message: err.Error(), Permanent: true, Code: "payload_too_large"}, "dispatch failed: "+err.Error()))
			tasks[c.TaskID] = struct{}{}
		default:
			if errors.Is(err, ErrThrottled) {
				e.health.throttled(1)
			}
			ev.Name, ev.Reason = StepDispatchFailed, err.Error()
			releases = append(releases, store.Release{StepID: c.StepID, Attempt: c.Attempt, Reason: "dispatch failed: " + truncate(err.Error())})
		}
		events = append(events, ev)
		if span := dspans[i]; span != nil {
			addSpanEvent(span, ev, ended[i])
			if errs[i] != nil {
				span.RecordError(errs[i], trace.WithTimestamp(ended[i]))
				span.SetStatus(codes.Error, errs[i].Error())
			}
			span.End(trace.WithTimestamp(ended[i]))
		}
		if errs[i] != nil {
			if failedLogged++; failedLogged <= maxDispatchWarnings {
				e.log.WarnContext(ctx, "step dispatch failed", "correlation_id", c.CorrelationID, "task_id", c.TaskID,
					"step", c.Step, "attempt", c.Attempt, "handler", c.Handler, "error", errs[i])
			}
		}
	}
	if failedLogged > maxDispatchWarnings {
		e.log.WarnContext(ctx, "more step dispatches failed", "steps", failedLogged-maxDispatchWarnings)
	}
	e.pub.Publish(ctx, events)
	if len(releases) > 0 {
		released, err := e.store.ReleaseClaims(ctx, now, e.cfg.InstanceID, e.cfg.DispatchRetryDelay, releases)
		if err != nil {
			// The deadline sweep recovers these attempts.
			return fmt.Errorf("release claims after dispatch failure: %w", err)
		}
		wakes := map[uuid.UUID]time.Duration{}
		for _, r := range released {
			wakes[r.TaskID] = e.cfg.DispatchRetryDelay
		}
		e.wake(ctx, wakes, spans)
	}
	if len(tooLarge) > 0 {
		return e.pass(ctx, keys(tasks), tooLarge)
	}
	return nil
}

// appendNew appends the ids not in ids yet.
func appendNew(ids []uuid.UUID, more ...uuid.UUID) []uuid.UUID {
	for _, id := range more {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

func (e *Engine) buildPayload(ctx context.Context, c store.Claim, traceParent string) ([]byte, error) {
	token := ""
	if len(c.CallbackSecret) > 0 {
		token = callbackToken(c.StepID, c.Attempt, c.CallbackSecret)
	}
	var results map[string]json.RawMessage
	if len(c.Results) > 0 {
		if err := json.Unmarshal(c.Results, &results); err != nil {
			return nil, fmt.Errorf("parent results of %s: %w", c.Step, err)
		}
	}
	return e.preparePayload(ctx, c, &contract.Payload{
		Tasker: contract.Meta{
			Version: contract.PayloadVersion, TaskID: c.TaskID, StepID: c.StepID, Step: c.Step, Handler: c.Handler,
			Attempt: c.Attempt, MaxAttempts: c.MaxAttempts, Namespace: c.Namespace, Workflow: c.Workflow,
			WorkflowVersion: c.Version, IdempotencyKey: contract.IdempotencyKey(c.TaskID, c.Step, c.OperatorRetries),
			CorrelationID: c.CorrelationID, Deadline: c.Deadline.UTC(), TraceParent: traceParent,
			CallbackToken: token,
		},
		Context: c.Context, Config: c.Config, Results: results, Map: c.Map,
	})
}

// truncate makes s storable and cuts it to maxReason bytes, on a
// character boundary.
func truncate(s string) string {
	s = storable(s)
	if len(s) <= maxReason {
		return s
	}
	cut := maxReason
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// storable replaces what PostgreSQL text cannot hold (NUL characters and
// invalid UTF-8) with U+FFFD.
func storable(s string) string {
	if utf8.ValidString(s) && !strings.ContainsRune(s, 0) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

func keys[K comparable, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// wakeWaiting remembers the tasks of a pass that claimed nothing and did not
// finish (with a cap set, they may be waiting for capacity), and wakes one
// remembered task for each slot this pass's results freed.
func (e *Engine) wakeWaiting(taskIDs []uuid.UUID, out store.ProcessOutput, wakes map[uuid.UUID]time.Duration) {
	moved := make(map[uuid.UUID]bool, len(out.Claims)+len(out.Finalized))
	for _, c := range out.Claims {
		moved[c.TaskID] = true
	}
	for _, f := range out.Finalized {
		moved[f.TaskID] = true
	}
	var idle []uuid.UUID
	for _, id := range taskIDs {
		if !moved[id] {
			idle = append(idle, id)
		}
	}
	ended := 0 // attempts that left in_progress: the slots this pass freed
	for _, t := range out.Recorded {
		if t.From == domain.StepInProgress {
			ended++
		}
	}
	freed := e.waiting.pop(ended)
	e.waiting.push(idle)
	for _, id := range freed {
		if _, ok := wakes[id]; !ok {
			wakes[id] = 0
		}
	}
}

// customEvents are the events a handler published with its result, about
// the step of base (its step.completed event).
func customEvents(base Event, evs []contract.CustomEvent) []Event {
	out := make([]Event, 0, len(evs))
	for _, ce := range evs {
		ev := base
		ev.Name, ev.Custom, ev.Data, ev.From, ev.To, ev.Reason = EventName(ce.Name), true, ce.Data, "", "", ""
		out = append(out, ev)
	}
	return out
}
