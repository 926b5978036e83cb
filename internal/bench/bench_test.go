package bench

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRunSmoke runs every scenario at a tiny scale against a private
// embedded PostgreSQL: it checks the harness, not the figures.
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
		Quick: true, History: 20_000, LiveTasks: 500, Scale: 0.02, Growth: true, GrowthFactor: 2,
		Out: &out, Progress: &progress,
	})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, progress.String())
	}
	t.Log(out.String())
	for _, want := range []string{"tasker_ready_steps", "per-step overhead", "throughput", "fan-out", "API task creation", "step executed", "2× history"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if len(res.Rows) < 8 {
		t.Errorf("got %d rows", len(res.Rows))
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

func TestCompareGrowth(t *testing.T) {
	base := map[string]Row{
		"2 overhead": {ID: "2", Name: "overhead", P50: 10 * time.Millisecond, P99: 20 * time.Millisecond},
		"3 rate":     {ID: "3", Name: "rate", Rate: 1000},
	}
	rows := compareGrowth([]Row{
		{ID: "6/2", Name: "overhead", P50: 11 * time.Millisecond, P99: 30 * time.Millisecond},
		{ID: "6/3", Name: "rate", Rate: 900},
	}, base, 10)
	if !strings.HasSuffix(rows[0].Verdict, "MISSED") || !strings.Contains(rows[0].Verdict, "p99 +50%") {
		t.Errorf("overhead verdict = %q", rows[0].Verdict)
	}
	if !strings.HasSuffix(rows[1].Verdict, "met") || !strings.Contains(rows[1].Verdict, "rate -10%") {
		t.Errorf("rate verdict = %q", rows[1].Verdict)
	}
}
