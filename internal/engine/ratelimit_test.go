package engine_test

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/template"
)

const ratedYAML = `
namespace: test
name: rated
version: 1.0.0
steps:
  - {name: call, handler: partner.call, rate_limit: {per_second: 1, burst: 2, key: "${context.customer}"}}
`

// delayedWake is a wake-up the engine asked for, due at a test-clock time.
type delayedWake struct {
	due  time.Time
	body []byte
}

// takeWakes splits the queued messages into those due now and the delayed
// ones, which it adds to later with their due times.
func takeWakes(h *harness, later *[]delayedWake) []engine.InMessage {
	h.t.Helper()
	var now []engine.InMessage
	for _, m := range h.queue.Take() {
		if m.Delay <= 0 {
			now = append(now, engine.InMessage{ID: uuid.NewString(), Body: m.Body})
		} else {
			*later = append(*later, delayedWake{due: h.clock.Now().Add(m.Delay), body: m.Body})
		}
	}
	return now
}

// Five tasks of one customer contend for a bucket of 1 start per second,
// burst 2: two start at once, then one per second as the clock advances;
// another customer is not held back. A held step stays pending with no
// attempt, its task's wake-up is due when its token is, and its view says
// why (docs/control-flow.md, "Rate limits").
func TestRateLimit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, ratedYAML)
	// Reads on the test clock: the blocked reason's "next start in".
	reads, err := store.New(h.pool, store.WithClock(h.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	var acme []uuid.UUID
	for range 5 {
		acme = append(acme, h.create("rated", `{"customer":"acme"}`))
	}
	beta := h.create("rated", `{"customer":"beta"}`)
	isAcme := map[uuid.UUID]bool{}
	for _, id := range acme {
		isAcme[id] = true
	}
	var later []delayedWake
	// The creation wake-ups, in one batch: one pass ranks the five.
	if _, err := h.eng.HandleMessages(h.ctx, takeWakes(h, &later)); err != nil {
		t.Fatal(err)
	}
	if now := takeWakes(h, &later); len(now) != 0 {
		t.Fatalf("%d wake-ups for now after the first pass, want only delayed ones", len(now))
	}
	started := map[uuid.UUID]bool{}
	runStarted := func() (acmeNew int, betaNew bool) {
		t.Helper()
		var recs []engine.InMessage
		for _, inv := range h.inv.Take() {
			id := payloadOf(t, inv).Tasker.TaskID
			if started[id] {
				t.Fatalf("task %s started twice", id)
			}
			started[id] = true
			if isAcme[id] {
				acmeNew++
			}
			betaNew = betaNew || id == beta
			recs = append(recs, engine.InMessage{ID: uuid.NewString(), Body: record(t, inv, ok(1))})
		}
		if len(recs) > 0 {
			if _, err := h.eng.HandleMessages(h.ctx, recs); err != nil {
				t.Fatal(err)
			}
		}
		return acmeNew, betaNew
	}
	n, betaRan := runStarted()
	if n != 2 || !betaRan {
		t.Fatalf("first pass started %d acme tasks (want the burst, 2) and beta %v (want true)", n, betaRan)
	}
	// The three held: pending, no attempt, woken 1 s, 2 s and 3 s from now
	// (the tokens of their ranks), and say why.
	var dues []time.Duration
	for _, w := range later {
		dues = append(dues, w.due.Sub(h.clock.Now()))
	}
	if want := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}; !sameDurations(dues, want) {
		t.Fatalf("delayed wake-ups in %v, want %v", dues, want)
	}
	held := 0
	for _, id := range acme {
		if started[id] {
			continue
		}
		held++
		if s := h.step(id, "call"); s.State != "pending" || s.Attempts != 0 {
			t.Fatalf("held step is %s with %d attempts, want pending with none", s.State, s.Attempts)
		}
		v, err := reads.GetTask(h.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := v.Steps[0].BlockedReason, "rate limit 1/s (burst 2) for key acme: next start in 1s"; got != want {
			t.Fatalf("blocked_reason = %q, want %q", got, want)
		}
		st, _, _, err := reads.GetStep(h.ctx, id, "call")
		if err != nil {
			t.Fatal(err)
		}
		if st.BlockedReason != v.Steps[0].BlockedReason {
			t.Fatalf("step view says %q, task view %q", st.BlockedReason, v.Steps[0].BlockedReason)
		}
	}
	if held != 3 {
		t.Fatalf("%d acme tasks held, want 3", held)
	}
	if h.pub.Count(engine.StepsHeld) != 1 {
		t.Fatalf("%d scheduler.steps_held events, want 1", h.pub.Count(engine.StepsHeld))
	}
	// Half a second on: still no token, a shorter wait.
	h.clock.Advance(500 * time.Millisecond)
	v, err := reads.GetTask(h.ctx, acme[4])
	if err != nil {
		t.Fatal(err)
	}
	if got, want := v.Steps[0].BlockedReason, "rate limit 1/s (burst 2) for key acme: next start in 500ms"; got != want {
		t.Fatalf("blocked_reason = %q, want %q", got, want)
	}
	h.clock.Advance(500 * time.Millisecond)
	// Each second: the wake-ups due run, one more acme task starts.
	for sec := 1; sec <= 3; sec++ {
		var due []engine.InMessage
		rest := later[:0]
		for _, w := range later {
			if !w.due.After(h.clock.Now()) {
				due = append(due, engine.InMessage{ID: uuid.NewString(), Body: w.body})
			} else {
				rest = append(rest, w)
			}
		}
		later = rest
		// A wake-up of every live acme task: the bucket, not the wake-ups,
		// decides who starts.
		for _, id := range acme {
			if !started[id] {
				due = append(due, engine.InMessage{ID: uuid.NewString(), Body: wakeBody(id)})
			}
		}
		if _, err := h.eng.HandleMessages(h.ctx, due); err != nil {
			t.Fatal(err)
		}
		takeWakes(h, &later)
		if n, _ := runStarted(); n != 1 {
			t.Fatalf("second %d: %d acme tasks started, want 1", sec, n)
		}
		h.clock.Advance(time.Second)
	}
	for _, id := range append(acme, beta) {
		mustStatus(t, h, id, "complete")
		if s := h.step(id, "call"); s.Attempts != 1 {
			t.Fatalf("step took %d attempts, want 1: waiting for a token costs none", s.Attempts)
		}
	}
}

func sameDurations(got, want []time.Duration) bool {
	if len(got) != len(want) {
		return false
	}
	seen := map[time.Duration]int{}
	for _, d := range got {
		seen[d.Round(time.Millisecond)]++
	}
	for _, d := range want {
		seen[d]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

func wakeBody(id uuid.UUID) []byte { return contract.NewWake(id) }

// Two engines passing over the same key at once never grant more starts
// than the bucket holds: the claim locks the bucket rows under the pass's
// advisory lock.
func TestRateLimitConcurrentPasses(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, `
namespace: test
name: rated
version: 1.0.0
steps:
  - {name: call, handler: partner.call, rate_limit: {per_second: 1, burst: 3}}
`)
	peer := h.peer(engine.Config{})
	var ids []uuid.UUID
	for range 12 {
		ids = append(ids, h.create("rated", `{}`))
	}
	h.queue.Take()
	pass := func() {
		t.Helper()
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i, e := range []*engine.Engine{h.eng, peer, h.eng, peer} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Disjoint tasks, so the passes do not wait for each
				// other's task locks: only the bucket's locking stands
				// between them and the same tokens.
				errs[i] = e.ProcessTasks(h.ctx, ids[3*i:3*i+3]...)
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
	}
	pass()
	if got := len(h.inv.Take()); got != 3 {
		t.Fatalf("concurrent passes started %d steps, want the burst of 3", got)
	}
	h.clock.Advance(2 * time.Second)
	pass()
	if got := len(h.inv.Take()); got != 2 {
		t.Fatalf("two seconds later concurrent passes started %d steps, want 2", got)
	}
	var tokens float64
	if err := h.pool.QueryRow(h.ctx, "SELECT tokens FROM tasker_rate_buckets").Scan(&tokens); err != nil || tokens != 0 {
		t.Fatalf("bucket holds %v tokens (%v), want 0", tokens, err)
	}
}

// Concurrency and a rate limit on one step both apply: a burst of 3 starts
// no more than the concurrency limit of 1 in flight.
func TestRateLimitWithConcurrency(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, `
namespace: test
name: rated
version: 1.0.0
steps:
  - name: call
    handler: partner.call
    concurrency: {limit: 1, key: "${context.customer}"}
    rate_limit: {per_second: 1, burst: 3, key: "${context.customer}"}
`)
	var ids []uuid.UUID
	for range 3 {
		ids = append(ids, h.create("rated", `{"customer":"acme"}`))
	}
	h.queue.Take()
	if err := h.eng.ProcessTasks(h.ctx, ids...); err != nil {
		t.Fatal(err)
	}
	if got := len(h.inv.Take()); got != 1 {
		t.Fatalf("%d steps started, want 1 (the concurrency limit)", got)
	}
	// The two held back are counted as held by concurrency, in one event.
	var held []engine.HeldData
	for _, ev := range h.pub.Events() {
		if ev.Name == engine.StepsHeld {
			var d engine.HeldData
			if err := json.Unmarshal(ev.Data, &d); err != nil {
				t.Fatal(err)
			}
			held = append(held, d)
		}
	}
	if len(held) != 1 || held[0] != (engine.HeldData{Concurrency: 2}) {
		t.Fatalf("scheduler.steps_held data = %+v, want one event with concurrency 2", held)
	}
	// Only the start spent a token.
	var tokens float64
	if err := h.pool.QueryRow(h.ctx, "SELECT tokens FROM tasker_rate_buckets").Scan(&tokens); err != nil || tokens != 2 {
		t.Fatalf("bucket holds %v tokens (%v), want 2", tokens, err)
	}
}

// A context without the key's value is refused, naming the step; nothing
// is created.
func TestRateLimitMissingKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, ratedYAML)
	_, err := h.eng.CreateTask(h.ctx, engine.CreateRequest{Namespace: "test", Name: "rated", Context: []byte(`{"other":1}`)})
	var ce *template.ContextError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "step call: rate_limit.key") {
		t.Fatalf("err = %v, want a ContextError naming step call's rate_limit.key", err)
	}
	var n int
	if err := h.pool.QueryRow(h.ctx, "SELECT count(*) FROM tasker_tasks").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d tasks stored after a refused create (%v)", n, err)
	}
}

// The sweep drops a bucket once it has refilled to its burst (a missing
// bucket is a full one), and not before.
func TestRateLimitBucketsPruned(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, `
namespace: test
name: rated
version: 1.0.0
steps:
  - {name: call, handler: partner.call, rate_limit: {per_second: 1, burst: 2}}
`)
	id := h.create("rated", `{}`)
	h.queue.Take()
	if err := h.eng.ProcessTasks(h.ctx, id); err != nil {
		t.Fatal(err)
	}
	buckets := func() int {
		t.Helper()
		var n int
		if err := h.pool.QueryRow(h.ctx, "SELECT count(*) FROM tasker_rate_buckets").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if _, err := h.eng.Sweep(h.ctx); err != nil {
		t.Fatal(err)
	}
	if n := buckets(); n != 1 {
		t.Fatalf("%d buckets after a start, want 1 (one token spent, refilled in 1 s)", n)
	}
	h.clock.Advance(time.Second)
	if _, err := h.eng.Sweep(h.ctx); err != nil {
		t.Fatal(err)
	}
	if n := buckets(); n != 0 {
		t.Fatalf("%d buckets once refilled, want 0", n)
	}
}
