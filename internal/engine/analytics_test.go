package engine_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/engine"
)

const analyticsYAML = `
namespace: test
name: analytics
version: 1.0.0
steps:
  - {name: a, handler: h}
  - {name: b, handler: h, depends_on: [a]}
  - {name: c, handler: h, depends_on: [a], retry: {max_attempts: 3}}
  - {name: d, handler: h, depends_on: [b, c]}
`

// answerer feeds outcomes of the invocations named in outs back as one
// batch after advancing the clock by wait; others stay pending.
func answerer(h *harness) func(wait time.Duration, outs map[string]outcome) {
	var pending []engine.Invocation
	return func(wait time.Duration, outs map[string]outcome) {
		h.t.Helper()
		h.clock.Advance(wait)
		pending = append(pending, h.inv.Take()...)
		var in []engine.InMessage
		var keep []engine.Invocation
		for _, inv := range pending {
			o, ok := outs[inv.Step]
			if !ok {
				keep = append(keep, inv)
				continue
			}
			in = append(in, engine.InMessage{ID: uuid.NewString(), Body: record(h.t, inv, o)})
		}
		pending = keep
		if _, err := h.eng.HandleMessages(h.ctx, in); err != nil {
			h.t.Fatal(err)
		}
	}
}

func TestTemplateAnalytics(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, analyticsYAML)
	start := h.clock.Now()
	id := h.create("analytics", `{}`)
	if err := h.eng.ProcessTasks(h.ctx, id); err != nil { // claims a at t0
		t.Fatal(err)
	}
	done := ok(map[string]bool{"ok": true})
	answer := answerer(h)
	answer(2*time.Second, map[string]outcome{"a": done}) // a: 2 s; b and c claimed at t0+2
	answer(time.Second, map[string]outcome{"b": done})   // b: 1 s
	answer(time.Second, map[string]outcome{"c": fail(&contract.HandlerError{Message: "flaky", RetryAfterSeconds: 1})})
	h.clock.Advance(2 * time.Second) // c's retry is due at t0+5, claimed at t0+6
	if err := h.eng.ProcessTasks(h.ctx, id); err != nil {
		t.Fatal(err)
	}
	answer(4*time.Second, map[string]outcome{"c": done}) // c attempt 2: 4 s; d claimed at t0+10
	answer(time.Second, map[string]outcome{"d": done})
	mustStatus(t, h, id, "complete")

	// A task of the same template outside the window is not counted.
	h.clock.Advance(2 * time.Hour)
	h.create("analytics", `{}`)

	got, err := h.eng.TemplateAnalytics(h.ctx, engine.AnalyticsQuery{Namespace: "test", Name: "analytics",
		Window: time.Hour, Until: start.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if got.Tasks != 1 || len(got.Steps) != 4 {
		t.Fatalf("analytics: %+v", got)
	}
	want := map[string]struct {
		runs, failures, retries int64
		p50, wait               float64
	}{
		"a": {1, 0, 0, 2000, 0},
		"b": {1, 0, 0, 1000, 0},
		"c": {2, 1, 1, 3000, 0}, // attempts of 2 s and 4 s
		"d": {1, 0, 0, 1000, 0},
	}
	for _, s := range got.Steps {
		w := want[s.Step]
		if s.Runs != w.runs || s.Failures != w.failures || s.Retries != w.retries || s.DurationMS == nil ||
			s.DurationMS.P50 != w.p50 || s.QueueWaitMS == nil || s.QueueWaitMS.P50 != w.wait {
			t.Errorf("step %s: %+v (duration %+v, wait %+v), want %+v", s.Step, s, s.DurationMS, s.QueueWaitMS, w)
		}
	}
	if c := got.Steps[2]; c.FailureRate != 0.5 || c.DurationMS.P99 < 3900 {
		t.Errorf("c: failure rate %v, p99 %v", c.FailureRate, c.DurationMS.P99)
	}
	if !slices.Equal(got.SlowestPath, []string{"a", "c", "d"}) || got.SlowestPathMS != 6000 {
		t.Errorf("slowest path %v (%v ms), want [a c d] (6000 ms)", got.SlowestPath, got.SlowestPathMS)
	}

	// Bad questions.
	if _, err := h.eng.TemplateAnalytics(h.ctx, engine.AnalyticsQuery{Namespace: "test", Name: "nope"}); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("unknown template: %v", err)
	}
	if _, err := h.eng.TemplateAnalytics(h.ctx, engine.AnalyticsQuery{Namespace: "test", Name: "analytics", Window: time.Second}); !errors.Is(err, engine.ErrInvalid) {
		t.Errorf("1 s window: %v", err)
	}
}
