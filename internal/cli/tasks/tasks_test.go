package tasks

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taskerhq/tasker/internal/wire"
)

// On a terminal the block is redrawn in place: cursor up, clear lines.
func TestProgressRedraw(t *testing.T) {
	var b bytes.Buffer
	task := wire.Task{ID: "t1", Namespace: "n", Name: "w", Version: "1.0.0", Status: "in_progress", Steps: []wire.Step{
		{Name: "a", Status: "complete", Attempts: 1, MaxAttempts: 3},
		{Name: "bb", Status: "waiting_for_retry", Attempts: 1, MaxAttempts: 3, LastError: json.RawMessage(`{"message":"busy","code":"x"}`)},
	}}
	p := &progress{w: &b, tty: true, seen: map[string]string{}, start: time.Now()}
	p.update(task)
	first := b.String()
	p.update(task)
	second := b.String()[len(first):]
	if !strings.Contains(first, "[###############---------------] 1/2 steps") || !strings.Contains(first, "✓ a ") ||
		!strings.Contains(first, "[x] busy") {
		t.Errorf("first frame:\n%s", first)
	}
	if strings.Contains(first, "\x1b[3A") || !strings.HasPrefix(second, "\x1b[?7l\x1b[3A") || !strings.Contains(second, "\x1b[2K") ||
		!strings.HasSuffix(second, "\x1b[?7h") {
		t.Errorf("frames %q / %q", first, second)
	}
}

// Waiting steps show what they wait for and until when; skipped steps
// show why; both count correctly in the progress (docs/control-flow.md).
func TestProgressControlFlow(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	str := func(s string) *string { return &s }
	tests := []struct {
		name string
		step wire.Step
		want []string
	}{
		{"timer", wire.Step{Name: "cool_off", Status: "waiting", Handler: "tasker.wait", WaitingUntil: str("2026-12-06T08:30:00Z"), WaitKind: "timer"},
			[]string{"⏸ cool_off", "waiting", "timer: due 2026-12-06 08:30:00Z (in 30m0s)"}},
		{"callback", wire.Step{Name: "approve", Status: "waiting", Handler: "tasker.callback", WaitingUntil: str("2026-12-07T08:00:00Z")},
			[]string{"⏸ approve", "callback: expires 2026-12-07 08:00:00Z (in 24h0m0s)"}},
		{"pending result", wire.Step{Name: "job", Status: "waiting", Handler: "media.start", WaitKind: "callback", WaitingUntil: str("2026-12-06T07:59:00Z")},
			[]string{"callback: expires 2026-12-06 07:59:00Z (now)"}},
		{"no due time", wire.Step{Name: "hold", Status: "waiting", Handler: "tasker.wait"}, []string{"waiting for timer"}},
		{"skipped", wire.Step{Name: "ship", Status: "skipped", SkipReason: str("when: context.amount > 100 was false")},
			[]string{"↷ ship", "skipped", "skipped: when: context.amount > 100 was false"}},
		{"held", wire.Step{Name: "push", Status: "pending", BlockedReason: "concurrency limit 2 for key acme reached"},
			[]string{"push", "pending", "held: concurrency limit 2 for key acme reached"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			line := stepLine(tc.step, false, 0)
			if tc.step.Status == "waiting" {
				line += "  " + waitText(tc.step, now) // stepLine uses the wall clock; the test clock pins the text
			}
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("line %q lacks %q", line, w)
				}
			}
		})
	}

	// Plain output: skipped counts as done, waiting does not.
	var b bytes.Buffer
	task := wire.Task{ID: "t1", Namespace: "n", Name: "w", Version: "1.0.0", Status: "in_progress", Steps: []wire.Step{
		{Name: "a", Status: "complete", Attempts: 1, MaxAttempts: 3},
		{Name: "b", Status: "skipped", SkipReason: str("condition false")},
		{Name: "c", Status: "waiting", Handler: "tasker.callback", Attempts: 1, MaxAttempts: 1, WaitingUntil: str("2999-01-01T00:00:00Z")},
	}}
	p := &progress{w: &b, seen: map[string]string{}, start: time.Now()}
	p.update(task)
	held := task
	held.Steps = append(slices.Clone(task.Steps), wire.Step{Name: "e", Status: "pending", BlockedReason: "rate limit reached"})
	p.update(held)
	out := b.String()
	for _, w := range []string{"[1/3] ✓ a", "[2/3] ↷ b", "skipped: condition false", "[2/3] ⏸ c", "callback: expires 2999-01-01 00:00:00Z", "[2/3] task in_progress",
		"e  pending", "held: rate limit reached"} {
		if !strings.Contains(out, w) {
			t.Errorf("plain output lacks %q:\n%s", w, out)
		}
	}
	if note := stepNote(held.Steps[3], now); note != "held: rate limit reached" {
		t.Errorf("show's note for a held step = %q", note)
	}

	// A failed task names its skipped steps apart from those never run.
	var stderr bytes.Buffer
	task.Status = "error"
	task.Steps[2] = wire.Step{Name: "c", Status: "error", Attempts: 1, MaxAttempts: 1, LastError: json.RawMessage(`{"message":"rejected"}`)}
	task.Steps = append(task.Steps, wire.Step{Name: "d", Status: "pending"},
		wire.Step{Name: "e", Status: "skipped", SkipReason: str("trigger rule all_success cannot hold: parent c failed")})
	reportFailedSteps(&stderr, "run", task)
	for _, w := range []string{"step c failed after 1/1 attempts: rejected", "skipped: b (condition false)\n", "not run: d, e\n"} {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("report lacks %q:\n%s", w, stderr.String())
		}
	}
}

// A map step is one line with its instances counted by state, in --watch
// (plain and terminal) and in show (docs/control-flow.md, "Map").
func TestMapStepLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		m    *wire.MapSummary
		want string
	}{
		{"running", &wire.MapSummary{Items: 100, Counts: map[string]int{"complete": 37, "in_progress": 10, "error": 2, "pending": 51}},
			"map 37/100 complete, 10 in progress, 51 pending, 2 failed"},
		{"done", &wire.MapSummary{Items: 3, Counts: map[string]int{"complete": 3}}, "map 3/3 complete"},
		{"retrying", &wire.MapSummary{Items: 2, Counts: map[string]int{"waiting_for_retry": 1, "complete": 1}}, "map 1/2 complete, 1 retrying"},
		{"new state", &wire.MapSummary{Items: 1, Counts: map[string]int{"paused_here": 1}}, "map 0/1 complete, 1 paused here"},
		{"empty list", &wire.MapSummary{Items: 0, Counts: map[string]int{}}, "map 0/0 complete"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := mapText(tc.m); got != tc.want {
				t.Errorf("mapText = %q, want %q", got, tc.want)
			}
			line := stepLine(wire.Step{Name: "process", Status: "in_progress", Attempts: 1, MaxAttempts: 1, Map: tc.m}, false, 0)
			if !strings.Contains(line, "▶ process  in_progress  "+tc.want) || strings.Contains(line, "attempt") {
				t.Errorf("stepLine = %q", line)
			}
		})
	}

	// Plain --watch prints a new line whenever the counts move, though
	// the map step's own state stays in_progress.
	var b bytes.Buffer
	p := &progress{w: &b, seen: map[string]string{}, start: time.Now()}
	step := func(done, running int) wire.Task {
		return wire.Task{ID: "t1", Status: "in_progress", Steps: []wire.Step{{Name: "process", Status: "in_progress", Attempts: 1, MaxAttempts: 1,
			Map: &wire.MapSummary{Items: 4, Counts: map[string]int{"complete": done, "in_progress": running}}}}}
	}
	p.update(step(0, 4))
	p.update(step(0, 4))
	p.update(step(3, 1))
	out := b.String()
	if n := strings.Count(out, "process"); n != 2 || !strings.Contains(out, "map 0/4 complete, 4 in progress") ||
		!strings.Contains(out, "map 3/4 complete, 1 in progress") {
		t.Errorf("plain output (%d lines of process):\n%s", n, out)
	}

	// show: the note column carries the counts.
	var s bytes.Buffer
	printTask(&s, wire.Task{ID: "t1", Status: "error", Steps: []wire.Step{{Name: "process", Status: "error", Attempts: 1, MaxAttempts: 1,
		LastError: json.RawMessage(`{"message":"2 instances failed"}`),
		Map:       &wire.MapSummary{Items: 5, Counts: map[string]int{"complete": 3, "error": 2}}}}})
	if !strings.Contains(s.String(), "map 3/5 complete, 2 failed; 2 instances failed") {
		t.Errorf("show:\n%s", s.String())
	}
}
