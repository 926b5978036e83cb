// Package bench is `tasker bench`: it starts a private embedded PostgreSQL
// (default settings, autovacuum off), runs the whole local stack in process
// (devserver: API, scheduler consumers, in-process invoker) with no-op
// handlers, and measures per-step orchestration overhead and throughput
// over a matrix of finished history × live tasks (seeded set-based and
// never analysed), then fan-out, API task creation with a breakdown of
// where its time goes, and the database work per step
// (docs/benchmarks.md).
//
// Import rules: bench wires devserver, engine, store and embeddedpg like
// cmd/tasker does; nothing imports bench but cmd/tasker.
package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/taskerhq/tasker/internal/migrate"
	"github.com/taskerhq/tasker/internal/template"
	"github.com/taskerhq/tasker/sdk"
)

// Options configure Run.
type Options struct {
	// Quick runs a small matrix with fewer samples, as a smoke test; its
	// figures are not the reference ones.
	Quick bool
	// Only lists the scenarios to run (2, 3: in every matrix cell; 4, 5, 7,
	// 8: once, after the matrix); empty runs all. #0 always runs.
	Only []int
	// Growth adds a 10,000,000-finished-step row to the matrix.
	Growth bool
	// Histories and Lives are the matrix axes: finished steps of history
	// and live 10-step tasks (default {0, 100k, 1M} × {0, 10k, 100k};
	// Quick: {0, 100k} × {1k}).
	Histories, Lives []int64
	// CPUProfile, when set, receives a Go CPU profile of the measured
	// scenarios (seeding included: it is mostly PostgreSQL's).
	CPUProfile string
	// TrackAll loads pg_stat_statements with track = all, so statements
	// inside SQL functions are listed too (adds overhead).
	TrackAll bool
	// Keep leaves PostgreSQL running after the report, until ctx ends, for
	// inspection.
	Keep bool
	// RetentionHistory is the finished steps #8 (retention) prunes over
	// (default 1,000,000; Quick 100,000); it adds history when the matrix
	// seeded less.
	RetentionHistory int64
	// Scale multiplies sample counts (tests use a small one; default 1).
	Scale float64
	// Out receives the report; Progress receives progress lines.
	Out, Progress io.Writer
}

func (o *Options) defaults() {
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if len(o.Histories) == 0 {
		o.Histories = []int64{0, 100_000, 1_000_000}
		if o.Quick {
			o.Histories = []int64{0, 100_000}
		}
	}
	if o.Growth && !slices.Contains(o.Histories, 10_000_000) {
		o.Histories = append(slices.Clone(o.Histories), 10_000_000)
	}
	if len(o.Lives) == 0 {
		o.Lives = []int64{0, 10_000, 100_000}
		if o.Quick {
			o.Lives = []int64{1_000}
		}
	}
	if o.Scale <= 0 {
		o.Scale = 1
		if o.Quick {
			o.Scale = 0.25
		}
	}
}

func (o *Options) runs(n int) bool {
	return n == 0 || len(o.Only) == 0 || slices.Contains(o.Only, n)
}

// n scales a sample count, keeping at least least.
func (o *Options) n(full, least int) int {
	return max(least, int(float64(full)*o.Scale))
}

// Result is what Run measured.
type Result struct {
	Machine  machine
	Cells    []*Cell   // the matrix, in the order it ran
	Verdicts []Verdict // the targets over the matrix
	Rows     []Row     // #0 and #4
	Creation *Creation // #5
	Missed   int
}

// Run runs the benchmark and writes its report to opts.Out.
func Run(ctx context.Context, opts Options) (*Result, error) {
	opts.defaults()
	began := time.Now()
	progress := &stampWriter{w: opts.Progress, t0: began}
	fmt.Fprintln(progress, "bench: starting embedded PostgreSQL")
	db, err := startDatabase(ctx, opts.TrackAll, progress)
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	defer db.stop()
	if _, err := migrate.UpURL(ctx, db.url); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	m, err := describe(ctx, db.url)
	if err != nil {
		return nil, fmt.Errorf("describe machine: %w", err)
	}
	res := &Result{Machine: m}

	tr := newTracker()
	reg := sdk.NewRegistry()
	if err := reg.Register(handlerName, tr.handler); err != nil {
		return nil, err
	}
	fanout := 1000
	tfs := templatesFS(fanout)
	tpls, err := template.LoadFS(tfs, template.Options{Handlers: reg})
	if err != nil {
		return nil, fmt.Errorf("bench templates: %w", err)
	}
	e := &env{opts: opts, db: db, tr: tr, reg: reg, tfs: tfs, tpls: tpls, fanout: fanout, progress: progress, cpus: m.CPUs}

	if opts.CPUProfile != "" {
		f, err := os.Create(opts.CPUProfile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
	}

	fmt.Fprintln(progress, "bench: #0 reference commit")
	n0 := opts.n(2000, 100)
	p50, p99, err := e.commitRef(ctx, n0)
	if err != nil {
		return nil, err
	}
	res.Rows = append(res.Rows, Row{ID: "0", Name: "reference: single-row UPDATE … RETURNING, own transaction, synchronous_commit on (fsync'd commit)",
		N: n0, P50: p50, P99: p99})

	seed := newSeeder(db.url, progress)
	if opts.runs(2) || opts.runs(3) {
		specs := plan(opts.Histories, opts.Lives)
		if res.Cells, err = e.runMatrix(ctx, seed, specs); err != nil {
			return nil, err
		}
		res.Verdicts = verdicts(res.Cells)
	}
	data := seed.seeded().String()
	// The scenarios after the matrix run once, over its last cell's data. A
	// failure is reported with the rest rather than losing the matrix.
	failed := func(n int, err error) error {
		if ctx.Err() != nil {
			return err
		}
		res.Missed++
		e.note("#%d FAILED: %v", n, err)
		fmt.Fprintf(progress, "bench: #%d failed: %v\n", n, err)
		return nil
	}
	if opts.runs(4) {
		fmt.Fprintf(progress, "bench: #4 fan-out (%s)\n", data)
		rows, err := e.fanoutRun(ctx, "4")
		if err != nil {
			if err := failed(4, err); err != nil {
				return nil, err
			}
		}
		res.Rows = append(res.Rows, rows...)
	}
	if opts.runs(5) {
		fmt.Fprintf(progress, "bench: #5 API creation (%s)\n", data)
		if res.Creation, err = e.apiCreate(ctx, data); err != nil {
			if err := failed(5, err); err != nil {
				return nil, err
			}
		}
	}
	var work *dbWork
	if opts.runs(7) {
		fmt.Fprintf(progress, "bench: #7 database work (%s)\n", data)
		if work, err = e.dbWork(ctx); err != nil {
			if err := failed(7, err); err != nil {
				return nil, err
			}
		}
	}

	if opts.runs(8) {
		fmt.Fprintf(progress, "bench: #8 retention\n")
		rows, err := e.retention(ctx, seed)
		if err != nil {
			if err := failed(8, err); err != nil {
				return nil, err
			}
		}
		res.Rows = append(res.Rows, rows...)
	}

	for _, r := range res.Rows {
		if strings.HasSuffix(r.Verdict, "MISSED") {
			res.Missed++
		}
	}
	for _, v := range res.Verdicts {
		if !v.Met {
			res.Missed++
		}
	}
	report(opts.Out, opts, res, work, e, data, time.Since(began))
	if opts.Keep {
		fmt.Fprintf(progress, "bench: PostgreSQL stays up at %s until interrupted\n", db.url)
		<-ctx.Done()
	}
	return res, nil
}

func short(n int64) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

// stampWriter prefixes each progress line with the time since the start,
// so a slow phase shows where the run's time went.
type stampWriter struct {
	w  io.Writer
	t0 time.Time
}

func (s *stampWriter) Write(p []byte) (int, error) {
	if _, err := fmt.Fprintf(s.w, "[%6.1fs] %s", time.Since(s.t0).Seconds(), p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// loadAvg is the 1-minute load average (other work on the machine skews
// every figure; the report shows it per matrix cell).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}
