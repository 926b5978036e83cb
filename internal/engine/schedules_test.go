package engine_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/taskerhq/tasker/internal/engine"
)

func scheduledTemplate(schedules string) string {
	return `name: tick
namespace: test
version: 1.0.0
context_schema: {type: object, required: [kind], properties: {kind: {type: string}}}
steps:
  - name: a
    handler: tasker.noop
schedules:
` + schedules
}

// scheduledKeys returns the idempotency keys of the tasks schedules started.
func (h *harness) scheduledKeys() []string {
	h.t.Helper()
	rows, err := h.pool.Query(h.ctx, `SELECT idempotency_key FROM tasker_tasks WHERE idempotency_scope = 'schedule' ORDER BY idempotency_key`)
	if err != nil {
		h.t.Fatal(err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			h.t.Fatal(err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		h.t.Fatal(err)
	}
	return keys
}

func equalKeys(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("scheduled tasks = %q, want %q", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("scheduled tasks = %q, want %q", got, want)
		}
	}
}

func TestScheduleFiresOncePerInterval(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, scheduledTemplate(`  - {rate: "5 minutes", context: {kind: rate}}`))
	// 03:04:05: the schedule is recorded, first due at 03:05.
	h.sweep()
	equalKeys(t, h.scheduledKeys(), nil)
	for range 3 {
		h.clock.Advance(5 * time.Minute)
		h.sweep()
		h.sweep() // a second sweep at the same time fires nothing
	}
	equalKeys(t, h.scheduledKeys(), []string{
		"schedule:test/tick:0:2026-01-02T03:05:00Z",
		"schedule:test/tick:0:2026-01-02T03:10:00Z",
		"schedule:test/tick:0:2026-01-02T03:15:00Z",
	})
	if n := h.pub.Count(engine.ScheduleFired); n != 3 {
		t.Errorf("schedule.fired events = %d, want 3", n)
	}
	var ctxJSON, source string
	if err := h.pool.QueryRow(h.ctx, `SELECT context::text, source_system FROM tasker_tasks WHERE idempotency_scope = 'schedule' LIMIT 1`).Scan(&ctxJSON, &source); err != nil {
		t.Fatal(err)
	}
	if ctxJSON != `{"kind": "rate"}` || source != "schedule" {
		t.Errorf("task context %s, source %q", ctxJSON, source)
	}
	views, err := h.eng.Schedules(h.ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(views) != 1 || !views[0].Loaded || views[0].Rate != "5m0s" || len(views[0].Next) != 3 ||
		!views[0].Next[0].Equal(time.Date(2026, 1, 2, 3, 20, 0, 0, time.UTC)) || views[0].LastFiredAt == nil {
		t.Errorf("schedules = %+v", views)
	}
}

func TestScheduleCatchUp(t *testing.T) {
	t.Parallel()
	cases := []struct {
		mode string
		want []string
	}{
		{"latest", []string{"schedule:test/tick:0:2026-01-02T06:00:00Z"}},
		{"all", []string{"schedule:test/tick:0:2026-01-02T04:00:00Z", "schedule:test/tick:0:2026-01-02T05:00:00Z",
			"schedule:test/tick:0:2026-01-02T06:00:00Z"}},
		{"none", nil},
	}
	for _, tc := range cases {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, engine.Config{}, scheduledTemplate(`  - {cron: "0 * * * *", catch_up: `+tc.mode+`, context: {kind: hourly}}`))
			h.sweep() // 03:04:05: first due at 04:00
			// An outage: the next sweep runs at 06:14:05, past 04:00, 05:00
			// and 06:00 (14 minutes late, beyond the grace of none).
			h.clock.Advance(3*time.Hour + 10*time.Minute)
			h.sweep()
			equalKeys(t, h.scheduledKeys(), tc.want)
			views, err := h.eng.Schedules(h.ctx, 1)
			if err != nil {
				t.Fatal(err)
			}
			if want := time.Date(2026, 1, 2, 7, 0, 0, 0, time.UTC); !views[0].NextFireAt.Equal(want) {
				t.Errorf("next fire at %s, want %s", views[0].NextFireAt, want)
			}
		})
	}
}

// A year-long outage of a minute's schedule fires only the latest fire
// time under latest, without stepping through each missed one.
func TestScheduleLatestAfterALongOutage(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, scheduledTemplate(`  - {cron: "* * * * *", context: {kind: minutely}}`))
	h.sweep()
	h.clock.Advance(400 * 24 * time.Hour)
	h.sweep()
	equalKeys(t, h.scheduledKeys(), []string{"schedule:test/tick:0:2027-02-06T03:04:00Z"})
}

func TestConcurrentSweepsFireOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, scheduledTemplate(`  - {rate: "1 minute", catch_up: all, context: {kind: busy}}`))
	h.sweep()
	h.clock.Advance(10 * time.Minute) // ten fire times due
	engines := []*engine.Engine{h.eng, h.peer(engine.Config{}), h.peer(engine.Config{})}
	var wg sync.WaitGroup
	for _, e := range engines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.FireSchedules(h.ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if keys := h.scheduledKeys(); len(keys) != 10 {
		t.Fatalf("scheduled tasks = %d (%q), want 10", len(keys), keys)
	}
	fired := 0
	for _, ev := range h.pub.Events() {
		if ev.Name == engine.ScheduleFired {
			fired++
		}
	}
	if fired != 10 {
		t.Errorf("schedule.fired events = %d, want 10 (one per fire time, from the sweep that moved the schedule)", fired)
	}
}

func TestPauseAndResumeSchedule(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, scheduledTemplate(`  - {rate: "5 minutes", catch_up: all, context: {kind: p}}`))
	h.sweep()
	views, err := h.eng.Schedules(h.ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	id := views[0].ID
	v, err := h.eng.PauseSchedule(h.ctx, id, true)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Paused || len(v.Next) != 0 {
		t.Errorf("paused view = %+v", v)
	}
	h.clock.Advance(time.Hour)
	h.sweep()
	equalKeys(t, h.scheduledKeys(), nil)
	// Resuming starts from the next fire time after now (04:05), not the
	// pause's missed ones.
	v, err = h.eng.PauseSchedule(h.ctx, id, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 1, 2, 4, 5, 0, 0, time.UTC); v.Paused || !v.NextFireAt.Equal(want) || len(v.Next) == 0 {
		t.Errorf("resumed view = %+v, want next %s", v, want)
	}
	h.clock.Advance(time.Minute)
	h.sweep()
	equalKeys(t, h.scheduledKeys(), []string{"schedule:test/tick:0:2026-01-02T04:05:00Z"})
	if _, err := h.eng.PauseSchedule(h.ctx, id+100, true); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("pause of an unknown schedule: %v, want ErrNotFound", err)
	}
}
