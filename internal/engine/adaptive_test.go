package engine_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/store"
)

// TestAdaptiveConcurrency drives the in-flight limit down under induced
// database pressure (real extra connections, then another instance's slow
// commits recorded in PostgreSQL) and back up when the pressure ends.
func TestAdaptiveConcurrency(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, hookYAML)
	base, err := h.store.ReadPressure(h.ctx, h.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	// The harness's own pool, the probe's and the extra connections below
	// are all on the test's database.
	threshold := base.Connections + 6
	eng, err := engine.New(engine.Config{Store: h.store, Templates: h.tpls, Queue: h.queue, Invoker: h.inv,
		Publisher: h.pub, Clock: h.clock, InstanceID: "adaptive-a", MaxInFlight: 40,
		Adaptive: engine.AdaptiveConfig{Interval: 5 * time.Second, Connections: threshold,
			// Only the induced pressures count: a loaded test machine's own
			// pool waits and latencies must not.
			CommitHigh: 800 * time.Millisecond, PoolWaitHigh: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	adapt := func() engine.HealthState {
		t.Helper()
		h.clock.Advance(5 * time.Second)
		s, err := eng.AdaptConcurrency(h.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, capN := eng.Health(); capN != s.Limit {
			t.Fatalf("Health cap %d, state limit %d", capN, s.Limit)
		}
		return s
	}
	if s := adapt(); s.Limit != 40 || s.Reason != engine.ReasonHealthy || s.Instances != 1 {
		t.Fatalf("at rest: %+v", s)
	}

	// Pressure 1: connections past the threshold.
	var conns []*pgx.Conn
	for range 8 {
		c, err := pgx.Connect(h.ctx, h.url)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for _, want := range []int{20, 10} {
		s := adapt()
		if s.Limit != want || s.Reason != engine.ReasonPressure || !strings.Contains(s.Detail, "database connections") {
			t.Fatalf("under connection pressure: limit %d (%s: %s), want %d", s.Limit, s.Reason, s.Detail, want)
		}
	}
	for _, c := range conns {
		_ = c.Close(h.ctx)
	}
	// A closed connection's backend leaves pg_stat_activity shortly after.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		p, err := h.store.ReadPressure(h.ctx, h.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		if p.Connections < threshold {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections remain", p.Connections)
		}
	}

	// Pressure 2: another scheduler instance reports slow passes; this
	// instance sees it through PostgreSQL.
	other, err := store.New(newPool(t, h.url))
	if err != nil {
		t.Fatal(err)
	}
	if err := other.RecordPressure(h.ctx, store.PressureSample{Instance: "adaptive-b",
		At: h.clock.Now().Add(5 * time.Second), CommitMS: 900, Results: 10}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []int{5, 4, 4} { // never below Min (MaxInFlight/10)
		s := adapt()
		if s.Limit != want || s.Instances != 2 || !strings.Contains(s.Detail, "scheduler pass latency 900 ms") {
			t.Fatalf("under the other instance's pressure: %+v, want limit %d", s, want)
		}
		if strings.Contains(s.Detail, "connections") {
			t.Fatalf("connection pressure after the connections closed: %s", s.Detail)
		}
	}

	// The other instance's sample ages out: the limit climbs back by a
	// tenth of the maximum per interval.
	h.clock.Advance(20 * time.Second)
	var got []int
	for range 12 {
		s := adapt()
		got = append(got, s.Limit)
		if s.Limit < 40 && s.Reason != engine.ReasonRecovering {
			t.Errorf("limit %d with reason %s, want recovering", s.Limit, s.Reason)
		}
	}
	want := []int{8, 12, 16, 20, 24, 28, 32, 36, 40, 40, 40, 40}
	if !slices.Equal(got, want) {
		t.Errorf("recovery %v, want %v", got, want)
	}
	if s, _ := eng.Health(); s.Reason != engine.ReasonHealthy || s.CapFactor != 1 {
		t.Errorf("after recovery: %+v", s)
	}
	if n := h.pub.Count(engine.ConcurrencyChanged); n != 1+4+9 {
		t.Errorf("%d scheduler.concurrency_changed events, want 14 (the first limit and 13 changes)", n)
	}
}
