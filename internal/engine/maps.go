package engine

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/template"
)

// Map steps (docs/architecture.md, "Map"). A claimed map step is not
// invoked: its `over` is evaluated here, and it either ends at once (an
// empty list completes with [], an evaluation error or too many items
// fails it permanently) or waits while its instances, rows of their own,
// are claimed by the scheduler pass like any step. The pass settles it
// when they end (tasker_settle_maps).

// Codes of map step failures.
const (
	codeMapError    = "map_error"
	codeMapTooLarge = "map_too_many_items"
)

// maps expands the claimed map steps and returns the other claims to
// dispatch, the results to record for map steps that ended at once, and
// the tasks that need a pass (to record those, or to claim the new
// instances).
func (e *Engine) maps(ctx context.Context, claims []store.Claim, spans taskSpans) (run []store.Claim, decided []store.StepResult, tasks []uuid.UUID, err error) {
	seen := map[uuid.UUID]bool{}
	addTask := func(id uuid.UUID) {
		if !seen[id] {
			seen[id] = true
			tasks = append(tasks, id)
		}
	}
	var expands []store.Expand
	for _, c := range claims {
		m := e.mapOf(c)
		if m == nil {
			run = append(run, c)
			continue
		}
		addTask(c.TaskID)
		items, err := m.Items(c.Context, c.Results)
		switch {
		case err != nil:
			msg := err.Error()
			decided = append(decided, failure(c.StepID, c.Attempt,
				&contract.HandlerError{Message: msg, Permanent: true, Code: codeMapError}, "failed: "+msg))
		case len(items) > m.MaxItems:
			msg := fmt.Sprintf("map: %q gave %d items, more than max_items (%d)", m.Over, len(items), m.MaxItems)
			decided = append(decided, failure(c.StepID, c.Attempt,
				&contract.HandlerError{Message: msg, Permanent: true, Code: codeMapTooLarge}, "failed: "+msg))
		case len(items) == 0:
			decided = append(decided, store.StepResult{StepID: c.StepID, Attempt: c.Attempt, OK: true,
				Result: json.RawMessage("[]"), Reason: "map: no items"})
		default:
			body, err := json.Marshal(items)
			if err != nil { // cannot happen: items are JSON values
				return nil, nil, nil, fmt.Errorf("map items of %s: %w", c.Step, err)
			}
			expands = append(expands, store.Expand{StepID: c.StepID, Attempt: c.Attempt, Items: body,
				MaxConcurrency: m.MaxConcurrency, Tolerated: m.Tolerated(len(items))})
		}
	}
	if len(expands) == 0 {
		return run, decided, tasks, nil
	}
	now := e.clock.Now()
	changes, err := e.store.ExpandMaps(ctx, now, e.cfg.InstanceID, expands)
	if err != nil {
		// The attempts stay in flight; the deadline sweep retries them.
		return run, decided, tasks, err
	}
	events := make([]Event, 0, len(changes))
	for _, w := range changes {
		events = append(events, Event{Name: StepWaiting, Time: now, TaskID: w.TaskID, Namespace: w.Namespace,
			Workflow: w.Workflow, CorrelationID: w.CorrelationID, StepID: w.StepID, Step: w.Step, Attempt: w.Attempt,
			From: string(w.From), To: string(w.To), Reason: w.Reason,
			Data: mustJSON(map[string]any{"wait_kind": w.WaitKind})})
	}
	e.pub.Publish(ctx, events)
	spans.annotate(events)
	return run, decided, tasks, nil
}

// mapOf returns the map of a claimed step, nil when it is not a map step
// (or is an instance of one). The map comes from the loaded template of the
// task's version; see docs/control-flow.md for what a changed template does.
func (e *Engine) mapOf(c store.Claim) *template.Map {
	if c.Map != nil {
		return nil
	}
	tpl, err := e.cfg.Templates.Get(c.Namespace, c.Workflow, c.Version)
	if err != nil {
		return nil
	}
	st, ok := tpl.Step(c.Step)
	if !ok {
		return nil
	}
	return st.Map
}
