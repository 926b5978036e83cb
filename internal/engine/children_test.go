package engine_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/template"
)

const childParentYAML = `
namespace: test
name: parent
steps:
  - name: start
    handler: start
  - name: ship
    handler: tasker.workflow
    depends_on: [start]
    retry: {max_attempts: 2}
    config:
      namespace: test
      name: child
      context:
        order: "${context.order}"
  - name: done
    handler: done
    depends_on: [ship]
`

const childYAML = `
namespace: test
name: child
steps:
  - name: pack
    handler: pack
`

// children returns the ids of the child tasks of a task, oldest first.
func (h *harness) children(parent uuid.UUID) []uuid.UUID {
	h.t.Helper()
	rows, err := h.pool.Query(h.ctx, `SELECT id FROM tasker_tasks WHERE parent_task_id = $1 ORDER BY created_at, id`, parent)
	if err != nil {
		h.t.Fatal(err)
	}
	defer rows.Close()
	var ids []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			h.t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

func TestChildWorkflowCompletes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, childParentYAML, childYAML)
	id := h.create("parent", `{"order": "o-7"}`)
	var doneSaw json.RawMessage
	var childCtx json.RawMessage
	h.drain(func(p contract.Payload) outcome {
		switch p.Tasker.Step {
		case "pack":
			childCtx = p.Context
			return ok(map[string]any{"box": 3})
		case "done":
			doneSaw = p.Results["ship"]
		}
		return ok(map[string]any{})
	})
	mustStatus(t, h, id, "complete")
	kids := h.children(id)
	if len(kids) != 1 {
		t.Fatalf("children = %v, want one", kids)
	}
	mustStatus(t, h, kids[0], "complete")
	var c struct{ Order string }
	if err := json.Unmarshal(childCtx, &c); err != nil || c.Order != "o-7" {
		t.Errorf("child context = %s (%v), want order o-7", childCtx, err)
	}
	var res map[string]map[string]int
	if err := json.Unmarshal(doneSaw, &res); err != nil || res["pack"]["box"] != 3 {
		t.Errorf("ship result = %s (%v), want {pack: {box: 3}}", doneSaw, err)
	}
	var corrP, corrC, ps string
	if err := h.pool.QueryRow(h.ctx, `SELECT p.correlation_id, c.correlation_id, s.name
		FROM tasker_tasks c JOIN tasker_tasks p ON p.id = c.parent_task_id JOIN tasker_steps s ON s.id = c.parent_step_id
		WHERE c.id = $1`, kids[0]).Scan(&corrP, &corrC, &ps); err != nil {
		t.Fatal(err)
	}
	if corrP != corrC || ps != "ship" {
		t.Errorf("child correlation %q parent %q step %q, want same correlation and step ship", corrC, corrP, ps)
	}
	// The task views link parent and child both ways.
	pv, err := h.store.GetTask(h.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(pv.Children) != 1 || pv.Children[0].ID != kids[0] || pv.Children[0].Step != "ship" || pv.Children[0].Status != "complete" {
		t.Errorf("parent children = %+v, want the one child of ship, complete", pv.Children)
	}
	cv, err := h.store.GetTask(h.ctx, kids[0])
	if err != nil {
		t.Fatal(err)
	}
	if cv.ParentTaskID == nil || *cv.ParentTaskID != id || cv.ParentStep != "ship" {
		t.Errorf("child parent = %v %q, want %s ship", cv.ParentTaskID, cv.ParentStep, id)
	}
	var started bool
	for _, ev := range h.pub.Events() {
		if ev.Name == engine.StepChildStarted && ev.TaskID == id && strings.Contains(string(ev.Data), kids[0].String()) {
			started = true
		}
	}
	if !started {
		t.Error("no step.child_started event naming the child")
	}
}

func TestChildWorkflowFailureRetriesWithNewChild(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, childParentYAML, strings.Replace(childYAML, "handler: pack", "handler: pack\n    retry: {max_attempts: 1}", 1))
	id := h.create("parent", `{"order": "o-1"}`)
	packs := 0
	drain := func() {
		h.drain(func(p contract.Payload) outcome {
			if p.Tasker.Step == "pack" {
				packs++
				return fail(&contract.HandlerError{Message: "no boxes", Permanent: true})
			}
			return ok(map[string]any{})
		})
	}
	drain()
	s := h.step(id, "ship")
	if s.State != "waiting_for_retry" || !strings.Contains(string(s.LastError), "child_failed") {
		t.Fatalf("ship = %s %s, want waiting_for_retry with child_failed", s.State, s.LastError)
	}
	kids := h.children(id)
	if len(kids) != 1 || !strings.Contains(string(s.LastError), kids[0].String()) {
		t.Fatalf("last error %s should name the child %v", s.LastError, kids)
	}
	h.clock.Advance(s.NextRetryAt.Sub(h.clock.Now()) + 1)
	if _, err := h.eng.Sweep(h.ctx); err != nil {
		t.Fatal(err)
	}
	drain()
	mustStatus(t, h, id, "error")
	if kids := h.children(id); len(kids) != 2 || packs != 2 {
		t.Fatalf("children %v, packs %d: want a new child per attempt", kids, packs)
	}
}

func TestChildWorkflowCancelCascades(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, childParentYAML, childYAML)
	id := h.create("parent", `{"order": "o-2"}`)
	h.drain(func(p contract.Payload) outcome {
		if p.Tasker.Step == "pack" {
			return outcome{drop: true} // the child stays in flight
		}
		return ok(map[string]any{})
	})
	kids := h.children(id)
	if len(kids) != 1 {
		t.Fatalf("children = %v", kids)
	}
	if s := h.step(id, "ship"); s.State != "waiting" {
		t.Fatalf("ship = %s, want waiting", s.State)
	}
	// The waiting step refuses an operator's completion.
	if _, err := h.eng.CompleteStep(h.ctx, id, "ship", json.RawMessage(`{}`), "alice"); !errors.Is(err, engine.ErrConflict) {
		t.Fatalf("steps/complete of a child step: %v, want a conflict", err)
	}
	if err := h.eng.CancelTask(h.ctx, id, "op", "stop"); err != nil {
		t.Fatal(err)
	}
	mustStatus(t, h, id, "cancelled")
	mustStatus(t, h, kids[0], "cancelled")
}

func TestChildWorkflowDuplicateClaimStartsOneChild(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, childParentYAML, childYAML)
	id := h.create("parent", `{"order": "o-3"}`)
	h.drain(func(p contract.Payload) outcome {
		if p.Tasker.Step == "pack" {
			return outcome{drop: true}
		}
		return ok(map[string]any{})
	})
	// A crash after the child was created and before the park: the step
	// goes back in flight; the redelivery creates nothing new.
	if _, err := h.pool.Exec(h.ctx, `UPDATE tasker_steps SET state = 'in_progress', wait_kind = NULL
		WHERE task_id = $1 AND name = 'ship'`, id); err != nil {
		t.Fatal(err)
	}
	if _, err := h.pool.Exec(h.ctx, `UPDATE tasker_tasks SET parent_step_id = NULL, parent_task_id = NULL WHERE id = $1`, h.children(id)[0]); err == nil {
		// unlinked, as before the park
	} else {
		t.Fatal(err)
	}
	c := store.Claim{TaskID: id, Step: "ship", Handler: template.HandlerWorkflow, CorrelationID: "x"}
	if err := h.pool.QueryRow(h.ctx, `SELECT s.id, s.attempts, s.config, t.context FROM tasker_steps s
		JOIN tasker_tasks t ON t.id = s.task_id WHERE s.task_id = $1 AND s.name = 'ship'`, id).
		Scan(&c.StepID, &c.Attempt, &c.Config, &c.Context); err != nil {
		t.Fatal(err)
	}
	// Twice: a duplicate delivery of the same claim.
	for range 2 {
		if err := engine.StartChildren(h.ctx, h.eng, []store.Claim{c}); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := h.pool.QueryRow(h.ctx, `SELECT count(*) FROM tasker_tasks WHERE idempotency_scope = 'child'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 || len(h.children(id)) != 1 {
		t.Fatalf("%d child tasks, want one", n)
	}
	if s := h.step(id, "ship"); s.State != "waiting" {
		t.Fatalf("ship = %s, want waiting", s.State)
	}
}

func TestChildWorkflowLoadErrors(t *testing.T) {
	t.Parallel()
	parse := func(y string) *template.Template {
		tpl, err := template.Parse("p.yaml", []byte(y), template.Options{})
		if err != nil {
			t.Fatalf("parse: %v", err)
		}
		return tpl
	}
	for _, tc := range []struct {
		name  string
		yamls []string
		want  []string
	}{
		{"missing child", []string{childParentYAML}, []string{"p.yaml", `"ship"`, "config.name", "test/child", "not loaded"}},
		{"self", []string{strings.Replace(childParentYAML, "name: child", "name: parent", 1)}, []string{"starts itself", `"ship"`}},
		{"cycle", []string{childParentYAML, childYAML + `  - name: back
    handler: tasker.workflow
    config: {namespace: test, name: parent}
`}, []string{"starts itself"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ts []*template.Template
			for _, y := range tc.yamls {
				ts = append(ts, parse(y))
			}
			_, err := template.NewSet(ts...)
			if err == nil {
				t.Fatal("NewSet accepted it")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if _, err := template.Parse("p.yaml", []byte(strings.Replace(childParentYAML, "namespace: test\n      name: child", "name: child", 1)), template.Options{}); err == nil ||
		!strings.Contains(err.Error(), "config.namespace") {
		t.Errorf("a config without namespace: %v, want an error naming config.namespace", err)
	}
}

func TestChildWorkflowSweepSettlesLostEnd(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, childParentYAML, childYAML)
	id := h.create("parent", `{"order": "o-4"}`)
	h.drain(func(p contract.Payload) outcome {
		if p.Tasker.Step == "pack" {
			return outcome{drop: true}
		}
		return ok(map[string]any{})
	})
	kid := h.children(id)[0]
	// The child ends while its parent's settle is lost (a crash after the
	// child's pass committed).
	if _, err := h.pool.Exec(h.ctx, `UPDATE tasker_tasks SET status = 'complete' WHERE id = $1`, kid); err != nil {
		t.Fatal(err)
	}
	if _, err := h.eng.Sweep(h.ctx); err != nil {
		t.Fatal(err)
	}
	if s := h.step(id, "ship"); s.State != "complete" {
		t.Fatalf("ship = %s, want complete after the sweep", s.State)
	}
	h.drain(func(contract.Payload) outcome { return ok(map[string]any{}) })
	mustStatus(t, h, id, "complete")
}
