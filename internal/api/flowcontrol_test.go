package api_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/engine"
)

const keyedYAML = `
namespace: shop
name: keyed
version: 1.0.0
steps:
  - {name: sync, handler: tasker.noop, concurrency: {limit: 1, key: "${context.customer}"}}
`

// A step held back by its concurrency key says why in the task and step
// views (docs/control-flow.md, "Flow control"), and runs once the slot frees.
func TestBlockedReason(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{templates: []string{keyedYAML}})
	body := func() map[string]any {
		return map[string]any{"namespace": "shop", "name": "keyed", "version": "1.0.0", "context": map[string]any{"customer": "acme"}}
	}
	first := e.createTask(body(), "")
	second := e.createTask(body(), "")
	// Deliver the wake-ups only: one step claimed, the other held back.
	var in []engine.InMessage
	for _, m := range e.queue.Take() {
		in = append(in, engine.InMessage{ID: uuid.NewString(), Body: m.Body})
	}
	if _, err := e.eng.HandleMessages(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	blocked := map[string]string{}
	for _, id := range []string{first, second} {
		r := e.get("/v1/tasks/"+id+"/steps/sync", "")
		wantStatus(t, r, http.StatusOK)
		var s struct {
			Status        string `json:"status"`
			BlockedReason string `json:"blocked_reason"`
		}
		r.decode(t, &s)
		blocked[s.Status] = s.BlockedReason
	}
	if got, want := blocked["pending"], "concurrency limit 1 for key acme reached"; got != want {
		t.Fatalf("pending step's blocked_reason = %q, want %q (views: %v)", got, want, blocked)
	}
	if got, isIn := blocked["in_progress"]; !isIn || got != "" {
		t.Fatalf("in-progress step: blocked_reason %q (views: %v)", got, blocked)
	}
	r := e.get("/v1/tasks/"+second, "")
	wantStatus(t, r, http.StatusOK)
	e.drain(succeed)
	if _, err := e.eng.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.drain(succeed)
	for _, id := range []string{first, second} {
		r := e.get("/v1/tasks/"+id, "")
		if got := r.json(t)["status"]; got != "complete" {
			t.Fatalf("task %s is %v, want complete", id, got)
		}
	}
}

// A template step's rate limit is part of the template view.
func TestTemplateRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{templates: []string{`
namespace: shop
name: rated
version: 1.0.0
steps:
  - {name: push, handler: tasker.noop, rate_limit: {per_second: 0.5, key: "${context.partner}"}}
  - {name: plain, handler: tasker.noop}
`}})
	r := e.get("/v1/templates/shop/rated", "")
	wantStatus(t, r, http.StatusOK)
	var tpl struct {
		Steps []struct {
			Name      string          `json:"name"`
			RateLimit *map[string]any `json:"rate_limit"`
		} `json:"steps"`
	}
	r.decode(t, &tpl)
	if len(tpl.Steps) != 2 || tpl.Steps[0].RateLimit == nil || tpl.Steps[1].RateLimit != nil {
		t.Fatalf("steps = %+v, want push with a rate_limit and plain without", tpl.Steps)
	}
	if got := *tpl.Steps[0].RateLimit; got["per_second"] != 0.5 || got["burst"] != 1.0 || got["key"] != "${context.partner}" {
		t.Fatalf("rate_limit = %v", got)
	}
}
