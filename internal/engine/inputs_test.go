package engine_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/engine"
)

// A step's payload carries its direct parents' results by default, every
// ancestor's with inputs: all, and the listed ones besides its parents'
// with inputs: [names] (docs/templates.md, "Inputs").
func TestStepInputs(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, `
namespace: test
name: inputs
steps:
  - {name: a, handler: x.a}
  - {name: b, handler: x.b, depends_on: a}
  - {name: c, handler: x.c, depends_on: b}
  - {name: d, handler: x.d, depends_on: c, inputs: all}
  - {name: e, handler: x.e, depends_on: c, inputs: [a]}
  - {name: f, handler: x.f, depends_on: c}
`)
	id := h.create("inputs", `{}`)
	seen := map[string][]string{}
	h.drain(func(p contract.Payload) outcome {
		var names []string
		for n, r := range p.Results {
			var v map[string]string
			if err := json.Unmarshal(r, &v); err != nil || v["from"] != n {
				t.Errorf("step %s: results[%s] = %s, want that step's result", p.Tasker.Step, n, r)
			}
			names = append(names, n)
		}
		slices.Sort(names)
		seen[p.Tasker.Step] = names
		return ok(map[string]string{"from": p.Tasker.Step})
	})
	if got := h.taskStatus(id); got != "complete" {
		t.Fatalf("task %s, want complete", got)
	}
	want := map[string][]string{"a": nil, "b": {"a"}, "c": {"b"}, "d": {"a", "b", "c"}, "e": {"a", "c"}, "f": {"c"}}
	if !reflect.DeepEqual(seen, want) {
		t.Fatalf("results seen = %v, want %v", seen, want)
	}
}

// The context_schema's defaults are applied to the stored context; the
// idempotency hash stays that of the context as sent.
func TestContextDefaultsStored(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, `
namespace: test
name: defaults
context_schema:
  type: object
  required: [id]
  properties:
    id: {type: integer}
    tier: {type: string, default: standard, enum: [standard, express]}
    opts: {type: object, default: {}, properties: {notify: {type: boolean, default: true}}}
steps:
  - {name: a, handler: x.a}
`)
	id := h.create("defaults", `{"id":7}`)
	var got contract.Payload
	h.drain(func(p contract.Payload) outcome { got = p; return ok(true) })
	var ctx map[string]any
	if err := json.Unmarshal(got.Context, &ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"id": 7.0, "tier": "standard", "opts": map[string]any{"notify": true}}
	if !reflect.DeepEqual(ctx, want) {
		t.Fatalf("context = %v, want %v", ctx, want)
	}
	var stored json.RawMessage
	if err := h.pool.QueryRow(h.ctx, `SELECT context FROM tasker_tasks WHERE id = $1`, id).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	_ = json.Unmarshal(stored, &s)
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("stored context = %s, want the defaults applied", stored)
	}
	// Same key, same context as sent: the same task, not a conflict.
	req := engine.CreateRequest{Namespace: "test", Name: "defaults", Context: json.RawMessage(`{"id":7}`), IdempotencyKey: "k"}
	c1, err := h.eng.CreateTask(h.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := h.eng.CreateTask(h.ctx, req)
	if err != nil || c2.TaskID != c1.TaskID || c2.Created {
		t.Fatalf("replay = %+v, %v; want task %s again", c2, err, c1.TaskID)
	}
	// A default that breaks the schema is still checked.
	if _, err := h.eng.CreateTask(h.ctx, engine.CreateRequest{Namespace: "test", Name: "defaults",
		Context: json.RawMessage(`{"id":"x"}`)}); err == nil {
		t.Fatal("an invalid context was accepted")
	}
}

// Inputs count towards the payload limit: a step whose ancestors' results
// make its payload too large fails for good with payload_too_large, and
// the same step without inputs: all would have fit.
func TestStepInputsWithinPayloadBudget(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, `
namespace: test
name: budget
steps:
  - {name: a, handler: x.a}
  - {name: b, handler: x.b, depends_on: a}
  - {name: c, handler: x.c, depends_on: b, inputs: all}
`)
	const limit = 4000
	h.inv.Fail = func(inv engine.Invocation) error {
		if len(inv.Payload) > limit {
			return fmt.Errorf("%w: %d bytes", engine.ErrPayloadTooLarge, len(inv.Payload))
		}
		return nil
	}
	id := h.create("budget", `{}`)
	big := strings.Repeat("x", limit/2)
	h.drain(func(p contract.Payload) outcome { return ok(map[string]string{"blob": big}) })
	if got := h.taskStatus(id); got != "error" {
		t.Fatalf("task %s, want error", got)
	}
	var state string
	var lastErr json.RawMessage
	if err := h.pool.QueryRow(h.ctx, `SELECT state, last_error FROM tasker_steps WHERE task_id = $1 AND name = 'c'`, id).Scan(&state, &lastErr); err != nil {
		t.Fatal(err)
	}
	if state != "error" || !strings.Contains(string(lastErr), "payload_too_large") {
		t.Fatalf("step c: %s %s, want failed with payload_too_large", state, lastErr)
	}
	if b := h.step(id, "b"); b.State != "complete" {
		t.Fatalf("step b %s: with its parent's result only, it fits", b.State)
	}
}
