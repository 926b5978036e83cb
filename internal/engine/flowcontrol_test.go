package engine_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/template"
)

const keyedYAML = `
namespace: test
name: keyed
version: 1.0.0
steps:
  - {name: sync, handler: tasker.noop, concurrency: {limit: 1, key: "${context.customer}"}}
`

// Two tasks of one customer contend for a limit of 1: never both in
// flight, both complete; another customer's task runs beside them; the
// held-back step shows why in its view (docs/control-flow.md, "Flow control").
func TestKeyedConcurrency(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, keyedYAML)
	acme1 := h.create("keyed", `{"customer":"acme"}`)
	acme2 := h.create("keyed", `{"customer":"acme"}`)
	beta := h.create("keyed", `{"customer":"beta"}`)
	isAcme := map[uuid.UUID]bool{acme1: true, acme2: true}

	sawBeside, sawBlocked := false, false
	for round := 0; round < 50; round++ {
		var in []engine.InMessage
		for _, m := range h.queue.Take() {
			in = append(in, engine.InMessage{ID: uuid.NewString(), Body: m.Body})
		}
		if len(in) > 0 {
			if _, err := h.eng.HandleMessages(h.ctx, in); err != nil {
				t.Fatal(err)
			}
		}
		// The sweep is what finds a task held back by its key once the slot
		// frees (docs/control-flow.md, "Flow control": latency).
		if _, err := h.eng.Sweep(h.ctx); err != nil {
			t.Fatal(err)
		}
		invs := h.inv.Take()
		acmeInFlight, betaInFlight := 0, false
		for _, inv := range invs {
			id := payloadOf(t, inv).Tasker.TaskID
			if isAcme[id] {
				acmeInFlight++
			}
			betaInFlight = betaInFlight || id == beta
		}
		if acmeInFlight > 1 {
			t.Fatalf("round %d: %d acme steps in flight, limit 1", round, acmeInFlight)
		}
		if acmeInFlight == 1 && betaInFlight {
			sawBeside = true
		}
		if acmeInFlight == 1 {
			for id := range isAcme {
				v, err := h.store.GetTask(h.ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if s := v.Steps[0]; s.State == "pending" {
					if want := "concurrency limit 1 for key acme reached"; s.BlockedReason != want {
						t.Fatalf("blocked_reason = %q, want %q", s.BlockedReason, want)
					}
					sawBlocked = true
				} else if s.BlockedReason != "" {
					t.Fatalf("%s step has blocked_reason %q", s.State, s.BlockedReason)
				}
			}
		}
		if len(invs) == 0 && len(in) == 0 {
			break
		}
		var recs []engine.InMessage
		for _, inv := range invs {
			recs = append(recs, engine.InMessage{ID: uuid.NewString(), Body: record(t, inv, ok(1))})
		}
		if len(recs) > 0 {
			if _, err := h.eng.HandleMessages(h.ctx, recs); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, id := range []uuid.UUID{acme1, acme2, beta} {
		mustStatus(t, h, id, "complete")
	}
	if !sawBeside {
		t.Fatal("beta never ran beside acme: different keys must run in parallel")
	}
	if !sawBlocked {
		t.Fatal("the second acme task was never seen held back: the test proves nothing")
	}
}

// A context without the key's value is refused, naming the step; nothing
// is created.
func TestKeyedConcurrencyMissingKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, keyedYAML)
	_, err := h.eng.CreateTask(h.ctx, engine.CreateRequest{Namespace: "test", Name: "keyed", Context: []byte(`{"customer":{"id":1}}`)})
	var ce *template.ContextError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "step sync: concurrency.key") {
		t.Fatalf("err = %v, want a ContextError naming step sync's concurrency.key", err)
	}
	var n int
	if err := h.pool.QueryRow(h.ctx, "SELECT count(*) FROM tasker_tasks").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d tasks stored after a refused create (%v)", n, err)
	}
}
