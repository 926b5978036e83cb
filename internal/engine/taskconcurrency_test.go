package engine_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/template"
)

const taskKeyedYAML = `
namespace: test
name: tkeyed
version: 1.0.0
concurrency: {limit: 1, key: "${context.customer}"}
steps:
  - {name: a, handler: tasker.noop}
  - {name: b, handler: tasker.noop, depends_on: [a]}
`

// round delivers the queued messages that are due now (none of them may be
// delayed: held-back work is woken at once, never left to the sweep), then
// records every invocation they started. It returns the tasks woken by
// message and the invocations run. inspect, if set, runs between the two.
func (h *harness) round(inspect func(invs []engine.Invocation)) (woken []uuid.UUID, invs []engine.Invocation) {
	h.t.Helper()
	var in []engine.InMessage
	for _, m := range h.queue.Take() {
		if m.Delay > 0 {
			h.t.Fatalf("a wake-up delayed by %s: held-back work must be woken at once", m.Delay)
		}
		var w contract.Wake
		if json.Unmarshal(m.Body, &w) == nil && w.Kind == contract.KindWake {
			woken = append(woken, w.TaskID)
		}
		in = append(in, engine.InMessage{ID: uuid.NewString(), Body: m.Body})
	}
	if len(in) > 0 {
		if failed, err := h.eng.HandleMessages(h.ctx, in); err != nil || len(failed) > 0 {
			h.t.Fatalf("handle messages: %v (failed %v)", err, failed)
		}
	}
	invs = h.inv.Take()
	if inspect != nil {
		inspect(invs)
	}
	var recs []engine.InMessage
	for _, inv := range invs {
		recs = append(recs, engine.InMessage{ID: uuid.NewString(), Body: record(h.t, inv, ok(1))})
	}
	if len(recs) > 0 {
		if failed, err := h.eng.HandleMessages(h.ctx, recs); err != nil || len(failed) > 0 {
			h.t.Fatalf("handle results: %v (failed %v)", err, failed)
		}
	}
	return woken, invs
}

// runningOf counts the in_progress tasks among ids.
func (h *harness) runningOf(ids ...uuid.UUID) int {
	h.t.Helper()
	var n int
	if err := h.pool.QueryRow(h.ctx, "SELECT count(*) FROM tasker_tasks WHERE id = ANY ($1) AND status = 'in_progress'", ids).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

// Three tasks of one customer contend for a task concurrency limit of 1:
// never two running at once, the later ones held with a blocked_reason and
// started oldest first, each right after the one before ends, by a wake-up
// from the pass that finalized it (the sweep never runs); another
// customer's task runs beside them (docs/control-flow.md, "Task concurrency").
func TestTaskConcurrency(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, taskKeyedYAML)
	acme := []uuid.UUID{h.create("tkeyed", `{"customer":"acme"}`), h.create("tkeyed", `{"customer":"acme"}`),
		h.create("tkeyed", `{"customer":"acme"}`)}
	beta := h.create("tkeyed", `{"customer":"beta"}`)

	sawBeside, sawBlocked := false, false
	var wokenAcme []uuid.UUID
	for r := 0; ; r++ {
		if r == 40 {
			t.Fatal("the tasks did not finish without a sweep")
		}
		woken, invs := h.round(func(invs []engine.Invocation) {
			if n := h.runningOf(acme...); n > 1 {
				t.Fatalf("round %d: %d acme tasks running, limit 1", r, n)
			}
			if h.runningOf(acme...) == 1 && h.runningOf(beta) == 1 {
				sawBeside = true
			}
			for _, id := range acme {
				v, err := h.store.GetTask(h.ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case v.Status == "pending" && h.runningOf(acme...) == 1:
					if want := "task concurrency limit 1 for key acme reached"; v.BlockedReason != want {
						t.Fatalf("round %d: pending task's blocked_reason = %q, want %q", r, v.BlockedReason, want)
					}
					sawBlocked = true
				case v.Status != "pending" && v.BlockedReason != "":
					t.Fatalf("%s task has blocked_reason %q", v.Status, v.BlockedReason)
				}
			}
		})
		for _, id := range woken {
			// Round 0 delivers the creations' own wake-ups; later ones come
			// from the passes.
			if r > 0 && slices.Contains(acme[1:], id) && !slices.Contains(wokenAcme, id) {
				wokenAcme = append(wokenAcme, id)
			}
		}
		if len(invs) == 0 && len(h.queue.Peek()) == 0 {
			break
		}
	}
	for _, id := range append(acme, beta) {
		mustStatus(t, h, id, "complete")
	}
	if !sawBeside {
		t.Fatal("beta never ran beside an acme task: different keys must run in parallel")
	}
	if !sawBlocked {
		t.Fatal("no acme task was seen held back: the test proves nothing")
	}
	// Each held task was woken by the pass that ended the one before it,
	// oldest first.
	if !slices.Equal(wokenAcme, acme[1:]) {
		t.Fatalf("held tasks woken in order %v, want %v", wokenAcme, acme[1:])
	}
	var started []uuid.UUID
	queued := map[uuid.UUID]int{}
	woke := 0
	for _, ev := range h.pub.Events() {
		switch ev.Name {
		case engine.TaskStarted:
			if slices.Contains(acme, ev.TaskID) {
				started = append(started, ev.TaskID)
			}
		case engine.TaskQueued:
			queued[ev.TaskID]++
			if want := "task concurrency limit 1 for key acme reached"; ev.Reason != want {
				t.Fatalf("task.queued reason = %q, want %q", ev.Reason, want)
			}
		case engine.TasksWoken:
			var d engine.TasksWokenData
			if err := json.Unmarshal(ev.Data, &d); err != nil {
				t.Fatal(err)
			}
			woke += d.Woken["task_concurrency"]
		}
	}
	if !slices.Equal(started, acme) {
		t.Fatalf("acme tasks started in order %v, want creation order %v", started, acme)
	}
	if len(queued) != 2 || queued[acme[1]] != 1 || queued[acme[2]] != 1 {
		t.Fatalf("task.queued events per task = %v, want one for each of %v", queued, acme[1:])
	}
	if woke != 2 {
		t.Fatalf("scheduler.tasks_woken counted %d task_concurrency wake-ups, want 2 (one per ended acme task with one waiting)", woke)
	}
}

// Passes of several engines (own pools) run at once over tasks of one key
// with a limit of 2: however they interleave, never more than 2 run.
func TestTaskConcurrencyConcurrentPasses(t *testing.T) {
	t.Parallel()
	yaml := strings.Replace(taskKeyedYAML, "limit: 1", "limit: 2", 1)
	h := newHarness(t, engine.Config{}, yaml)
	engines := []*engine.Engine{h.eng, h.peer(engine.Config{}), h.peer(engine.Config{}), h.peer(engine.Config{})}
	var ids []uuid.UUID
	for range 8 {
		ids = append(ids, h.create("tkeyed", `{"customer":"acme"}`))
	}
	h.queue.Take()
	for r := 0; ; r++ {
		if r == 40 {
			t.Fatal("the tasks did not finish")
		}
		// Every engine passes over every task at once.
		var wg sync.WaitGroup
		errs := make([]error, len(engines))
		for i, e := range engines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var in []engine.InMessage
				for _, id := range ids {
					in = append(in, engine.InMessage{ID: uuid.NewString(), Body: contract.NewWake(id)})
				}
				_, errs[i] = e.HandleMessages(h.ctx, in)
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		if n := h.runningOf(ids...); n > 2 {
			t.Fatalf("round %d: %d tasks running, limit 2", r, n)
		}
		h.queue.Take()
		invs := h.inv.Take()
		if len(invs) == 0 {
			break
		}
		var recs []engine.InMessage
		for _, inv := range invs {
			recs = append(recs, engine.InMessage{ID: uuid.NewString(), Body: record(t, inv, ok(1))})
		}
		if _, err := h.eng.HandleMessages(h.ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		mustStatus(t, h, id, "complete")
	}
}

// A step held back by its step concurrency key starts as soon as the run
// holding its slot ends, woken by that pass: no sweep runs.
func TestStepConcurrencyWakeWithoutSweep(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, keyedYAML)
	first := h.create("keyed", `{"customer":"acme"}`)
	second := h.create("keyed", `{"customer":"acme"}`)
	var woken []uuid.UUID
	for r := 0; ; r++ {
		if r == 20 {
			t.Fatal("the tasks did not finish without a sweep")
		}
		w, invs := h.round(func(invs []engine.Invocation) {
			if len(invs) > 1 {
				t.Fatalf("round %d: %d acme steps in flight, limit 1", r, len(invs))
			}
		})
		woken = append(woken, w...)
		if len(invs) == 0 && len(h.queue.Peek()) == 0 {
			break
		}
	}
	mustStatus(t, h, first, "complete")
	mustStatus(t, h, second, "complete")
	if !slices.Contains(woken, second) {
		t.Fatalf("the held task %s was never woken (woken: %v)", second, woken)
	}
	n := 0
	for _, ev := range h.pub.Events() {
		if ev.Name == engine.TasksWoken {
			var d engine.TasksWokenData
			if err := json.Unmarshal(ev.Data, &d); err != nil {
				t.Fatal(err)
			}
			n += d.Woken["concurrency"]
		}
	}
	if n != 1 {
		t.Fatalf("concurrency wake-ups = %d, want 1", n)
	}
}

// A context without the task key's value is refused naming the field;
// nothing is created.
func TestTaskConcurrencyMissingKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, taskKeyedYAML)
	_, err := h.eng.CreateTask(h.ctx, engine.CreateRequest{Namespace: "test", Name: "tkeyed", Context: []byte(`{"other":1}`)})
	var ce *template.ContextError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "concurrency.key: ${context.customer}") {
		t.Fatalf("err = %v, want a ContextError naming concurrency.key", err)
	}
	var n int
	if err := h.pool.QueryRow(h.ctx, "SELECT count(*) FROM tasker_tasks").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d tasks stored after a refused create (%v)", n, err)
	}
}

// Cancelling the running task of a key wakes the oldest task it held back
// at once (no sweep), as an ended task does.
func TestTaskConcurrencyCancelWakes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, taskKeyedYAML)
	first := h.create("tkeyed", `{"customer":"acme"}`)
	second := h.create("tkeyed", `{"customer":"acme"}`)
	var in []engine.InMessage
	for _, m := range h.queue.Take() {
		in = append(in, engine.InMessage{ID: uuid.NewString(), Body: m.Body})
	}
	if _, err := h.eng.HandleMessages(h.ctx, in); err != nil {
		t.Fatal(err)
	}
	mustStatus(t, h, first, "in_progress")
	mustStatus(t, h, second, "pending")
	h.inv.Take() // the first task's step: its result never comes
	if err := h.eng.CancelTask(h.ctx, first, "operator", "stop"); err != nil {
		t.Fatal(err)
	}
	var woken []uuid.UUID
	for _, m := range h.queue.Peek() {
		var w contract.Wake
		if json.Unmarshal(m.Body, &w) == nil && w.Kind == contract.KindWake && m.Delay == 0 {
			woken = append(woken, w.TaskID)
		}
	}
	if !slices.Equal(woken, []uuid.UUID{second}) {
		t.Fatalf("wake-ups after the cancel = %v, want the held task %s", woken, second)
	}
	h.drain(func(contract.Payload) outcome { return ok(1) })
	mustStatus(t, h, second, "complete")
}
