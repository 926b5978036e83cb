package store_test

// Conformance tests of the in-flight caps: the global cap across all tasks
// and per-key step concurrency, alone and under concurrent passes.

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/store"
)

func keyed(name, key string, limit int, deps ...string) store.NewStep {
	st := step(name, deps...)
	st.ConcurrencyKey, st.ConcurrencyLimit = key, limit
	return st
}

func inFlight(t *testing.T, s *store.Store) int {
	t.Helper()
	n, err := s.InFlight(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func capPass(t *testing.T, s *store.Store, now time.Time, cap int, rs []store.StepResult, ids ...uuid.UUID) store.ProcessOutput {
	t.Helper()
	return process(t, s, store.ProcessInput{Now: now, TaskIDs: ids, Results: rs, ClaimLimit: 100, GlobalCap: cap, Grace: grace})
}

func TestGlobalCap(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	var tks []task
	var ids []uuid.UUID
	for range 3 {
		tk := mk(t, s, step("a"), step("b"))
		tks, ids = append(tks, tk), append(ids, tk.ID)
	}
	if n := inFlight(t, s); n != 0 {
		t.Fatalf("in flight = %d before any claim", n)
	}
	out := capPass(t, s, at(time.Second), 3, nil, ids...)
	if len(out.Claims) != 3 || inFlight(t, s) != 3 {
		t.Fatalf("claims = %d, in flight = %d, want 3 (the cap)", len(out.Claims), inFlight(t, s))
	}
	if out := capPass(t, s, at(2*time.Second), 3, nil, ids...); len(out.Claims) != 0 {
		t.Fatalf("claimed %d beyond the cap", len(out.Claims))
	}
	// A result frees a slot in the same pass.
	c := out.Claims[0]
	out = capPass(t, s, at(3*time.Second), 3, []store.StepResult{okResult(c.StepID, c.Attempt, `{}`)}, ids...)
	if len(out.Recorded) != 1 || len(out.Claims) != 1 || inFlight(t, s) != 3 {
		t.Fatalf("recorded %d, claimed %d, in flight %d; want 1, 1, 3", len(out.Recorded), len(out.Claims), inFlight(t, s))
	}
	// The cap counts every task's in-flight steps, not only the pass's.
	other := mk(t, s, step("a"))
	if out := capPass(t, s, at(4*time.Second), 4, nil, other.ID); len(out.Claims) != 1 {
		t.Fatalf("claims under cap 4 = %d, want 1", len(out.Claims))
	}
	if out := capPass(t, s, at(5*time.Second), 4, nil, ids...); len(out.Claims) != 0 {
		t.Fatalf("claimed %d beyond the cap", len(out.Claims))
	}
	// No cap: everything ready is claimed.
	if out := capPass(t, s, at(6*time.Second), 0, nil, ids...); len(out.Claims) != 2 || inFlight(t, s) != 6 {
		t.Fatalf("uncapped claims = %d, in flight %d; want 2, 6", len(out.Claims), inFlight(t, s))
	}
}

func TestConcurrencyKey(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	var tks []task
	for range 3 {
		tks = append(tks, mk(t, s, keyed("k", "api", 2), step("free"), keyed("o", "other", 1)))
	}
	pass := func(now time.Time, tk task, rs ...store.StepResult) []string {
		t.Helper()
		return claimNames(tk, capPass(t, s, now, 0, rs, tk.ID).Claims)
	}
	if got := fmt.Sprint(pass(at(time.Second), tks[0])); got != "[free k o]" {
		t.Fatalf("task 0 claimed %s", got)
	}
	if got := fmt.Sprint(pass(at(time.Second), tks[1])); got != "[free k]" {
		t.Fatalf("task 1 claimed %s, want o held back (key other, limit 1)", got)
	}
	if got := fmt.Sprint(pass(at(time.Second), tks[2])); got != "[free]" {
		t.Fatalf("task 2 claimed %s, want k and o held back", got)
	}
	// Finishing a keyed step frees its key for another task.
	if got := fmt.Sprint(pass(at(2*time.Second), tks[0], okResult(tks[0].Steps["k"], 1, `{}`))); got != "[]" {
		t.Fatalf("task 0 claimed %s", got)
	}
	if got := fmt.Sprint(pass(at(3*time.Second), tks[2])); got != "[k]" {
		t.Fatalf("task 2 claimed %s after a slot of api freed, want [k]", got)
	}
	out := capPass(t, s, at(4*time.Second), 0, []store.StepResult{failResult(tks[0].Steps["o"], 1, false)}, tks[0].ID, tks[1].ID)
	if len(out.Claims) != 1 || out.Claims[0].StepID != tks[1].Steps["o"] {
		t.Fatalf("claims = %+v, want task 1's o once task 0's o waits for retry", out.Claims)
	}

	// Within one pass over many tasks the key's limit holds too.
	var ids []uuid.UUID
	var many []task
	for range 5 {
		tk := mk(t, s, keyed("x", "batch", 2))
		many, ids = append(many, tk), append(ids, tk.ID)
	}
	if out := capPass(t, s, at(5*time.Second), 0, nil, ids...); len(out.Claims) != 2 {
		t.Fatalf("one pass claimed %d steps of key batch, limit 2", len(out.Claims))
	}
	if out := capPass(t, s, at(6*time.Second), 0, nil, ids...); len(out.Claims) != 0 {
		t.Fatalf("second pass claimed %d beyond the limit", len(out.Claims))
	}
	// Global cap and key limit together: the tighter one wins.
	y := mk(t, s, keyed("y1", "wide", 5), keyed("y2", "wide", 5), keyed("y3", "wide", 5))
	if out := capPass(t, s, at(7*time.Second), inFlight(t, s)+2, nil, y.ID); len(out.Claims) != 2 {
		t.Fatalf("claims = %d, want 2 (global cap)", len(out.Claims))
	}
}

// A step held back by its concurrency key must not use up the pass's claim
// limit: the other ready steps are claimed (else a sweep over tasks with
// blocked keyed steps never claims anything else, docs/architecture.md, "Invariants" 2).
func TestConcurrencyKeyDoesNotBlockOtherSteps(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	busy := mk(t, s, keyed("k", "api", 1))
	if cs := claim(t, s, t0, busy.ID); len(cs) != 1 {
		t.Fatalf("claims = %d", len(cs))
	}
	tk := mk(t, s, keyed("k1", "api", 1), keyed("k2", "api", 1), step("free"))
	out := process(t, s, store.ProcessInput{Now: at(time.Second), TaskIDs: []uuid.UUID{tk.ID}, ClaimLimit: 1, Grace: grace})
	if got := fmt.Sprint(claimNames(tk, out.Claims)); got != "[free]" {
		t.Fatalf("ClaimLimit 1 claimed %s, want [free] (k1 and k2 wait for key api)", got)
	}
}

// Concurrent passes never exceed a cap nor claim a step twice. Each round
// starts its passes together on one pool, then completes what they claimed.
func TestCapsHoldUnderConcurrentPasses(t *testing.T) {
	t.Parallel()
	const rounds, racers = 15, 6
	tests := []struct {
		name    string
		step    func() store.NewStep
		cap     int
		limit   int  // the most steps in flight allowed
		overlap bool // every racer passes over every task of the round
	}{
		{"global cap", func() store.NewStep { return step("a") }, 3, 3, false},
		{"concurrency key", func() store.NewStep { return keyed("a", "k", 2) }, 0, 2, false},
		{"both", func() store.NewStep { return keyed("a", "k", 4) }, 2, 2, false},
		{"same tasks", func() store.NewStep { return step("a") }, 0, racers, true},
		{"same tasks with cap", func() store.NewStep { return keyed("a", "k", 3) }, 4, 3, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			now := t0
			for r := range rounds {
				now = now.Add(time.Second)
				ids := make([]uuid.UUID, racers)
				for i := range ids {
					ids[i] = mk(t, s, tc.step()).ID
				}
				claims := make([][]store.Claim, racers)
				var wg sync.WaitGroup
				start := make(chan struct{})
				for i := range racers {
					wg.Go(func() {
						taskIDs := []uuid.UUID{ids[i]}
						if tc.overlap {
							taskIDs = ids
						}
						<-start
						out, err := s.Process(t.Context(), store.ProcessInput{Now: now, Actor: fmt.Sprintf("racer-%d", i),
							TaskIDs: taskIDs, ClaimLimit: 10, GlobalCap: tc.cap, Grace: grace})
						if err != nil {
							t.Error(err)
						}
						claims[i] = out.Claims
					})
				}
				close(start)
				wg.Wait()
				if t.Failed() {
					t.FailNow()
				}
				seen := map[uuid.UUID]bool{}
				var results []store.StepResult
				for _, cs := range claims {
					for _, c := range cs {
						if seen[c.StepID] || c.Attempt != 1 {
							t.Fatalf("round %d: step %s claimed twice (attempt %d)", r, c.StepID, c.Attempt)
						}
						seen[c.StepID] = true
						results = append(results, okResult(c.StepID, c.Attempt, `{}`))
					}
				}
				if n := inFlight(t, s); len(seen) == 0 || len(seen) > tc.limit || n != len(seen) {
					t.Fatalf("round %d: %d claims, %d in flight; want 1..%d", r, len(seen), n, tc.limit)
				}
				// Drain the round so the next starts from an empty system.
				now = now.Add(time.Second)
				out := process(t, s, store.ProcessInput{Now: now, TaskIDs: ids, Results: results})
				if len(out.Recorded) != len(results) || inFlight(t, s) != 0 {
					t.Fatalf("round %d: drained %d of %d", r, len(out.Recorded), len(results))
				}
			}
		})
	}
}
