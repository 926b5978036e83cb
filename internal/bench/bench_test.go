package bench

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRunSmoke runs the quick path end to end at a tiny scale against a
// private embedded PostgreSQL: it checks the harness and the report's
// structure, not the figures.
func TestRunSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and runs the whole stack")
	}
	if !havePostgres() {
		t.Skip("no PostgreSQL server binaries (initdb, postgres)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out, progress bytes.Buffer
	res, err := Run(ctx, Options{
		Quick: true, Histories: []int64{0, 2_000}, Lives: []int64{100}, Scale: 0.02, RetentionHistory: 20_000,
		Out: &out, Progress: &progress,
	})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, progress.String())
	}
	report := out.String()
	t.Log(report)
	if len(res.Cells) != 2 {
		t.Fatalf("got %d matrix cells, want 2", len(res.Cells))
	}
	for _, c := range res.Cells {
		if c.Err != "" {
			t.Errorf("cell %s failed: %s", c.Spec(), c.Err)
			continue
		}
		if c.Commit <= 0 || c.OverheadP50 <= 0 || c.OverheadP99 < c.OverheadP50 || c.E2EP50 <= 0 || c.StepsPerSec <= 0 {
			t.Errorf("cell %s has missing figures: %+v", c.Spec(), c)
		}
		if c.Analysed {
			t.Errorf("cell %s: a table was analysed during the cell", c.Spec())
		}
		if len(c.Stats) != 4 {
			t.Errorf("cell %s: statistics of %d tables, want 4", c.Spec(), len(c.Stats))
		}
	}
	// The history axis grows 0 → 2,000 with the live tasks reused.
	if res.Cells[0].History != 0 || res.Cells[1].History != 2_000 || res.Cells[1].Live != 100 {
		t.Errorf("cells ran in the wrong order: %s, %s", res.Cells[0].Spec(), res.Cells[1].Spec())
	}
	if len(res.Verdicts) < 4 {
		t.Errorf("got %d verdicts, want one per target at least", len(res.Verdicts))
	}
	if c := res.Creation; c == nil || c.P50 <= 0 || len(c.Phases) == 0 {
		t.Errorf("creation result incomplete: %+v", c)
	} else if c.Phases[4].Mean <= 0 {
		t.Errorf("creation: no time in the create SQL phase: %+v", c.Phases)
	}
	for _, want := range []string{"## Machine", "## Matrix", "| history | live |", "per-step overhead p50 ≤ 2 commits",
		"throughput ≥ 8,000 steps/s", "within 25 % of the best", "never analysed", "#5 API task creation",
		"create: SQL round trip", "fan-out", "step executed", "while pruning the 20k", "prune transaction"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

func havePostgres() bool {
	if _, err := exec.LookPath("postgres"); err == nil {
		return true
	}
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	return len(m) > 0
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	if got := percentile(ds, 50); got != 50*time.Millisecond {
		t.Errorf("p50 = %v", got)
	}
	if got := percentile(ds, 99); got != 99*time.Millisecond {
		t.Errorf("p99 = %v", got)
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %v", got)
	}
}

func TestPlanSnake(t *testing.T) {
	got := plan([]int64{100, 0}, []int64{10, 0, 5})
	want := []cellSpec{{0, 0}, {0, 5}, {0, 10}, {100, 10}, {100, 5}, {100, 0}}
	if !slices.Equal(got, want) {
		t.Errorf("plan = %v, want %v", got, want)
	}
}

func TestVerdicts(t *testing.T) {
	ms := time.Millisecond
	cells := []*Cell{
		{History: 0, Commit: ms, OverheadP50: ms, OverheadP99: 4 * ms, E2EP50: 6 * ms, StepsPerSec: 9000},
		{History: 1, Commit: ms, OverheadP50: 3 * ms, OverheadP99: 5 * ms, E2EP50: 7 * ms, StepsPerSec: 8500},
	}
	got := map[string]bool{}
	for _, v := range verdicts(cells) {
		got[v.Target] = v.Met
	}
	if got["per-step overhead p50 ≤ 2 commits"] {
		t.Error("overhead p50 of 3 commits passed")
	}
	if !got["per-step overhead p99 ≤ 6 commits"] || !got["throughput ≥ 8,000 steps/s"] {
		t.Errorf("targets met in every cell reported missed: %v", got)
	}
	// 3 ms against 1 ms is 200 % off; 8,500 against 9,000 steps/s is 6 %.
	var spreads []bool
	for _, v := range verdicts(cells) {
		if strings.Contains(v.Target, "within 25 %") {
			spreads = append(spreads, v.Met)
		}
	}
	if want := []bool{false, true, true, true}; !slices.Equal(spreads, want) {
		t.Errorf("spread verdicts = %v, want %v", spreads, want)
	}
}
