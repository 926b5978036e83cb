// Package bench is `tasker bench`: it starts a private embedded PostgreSQL
// (default settings), seeds finished history and live tasks, runs the
// whole local stack in process (devserver: API, scheduler consumers,
// in-process invoker) with no-op handlers, and measures readiness latency,
// per-step orchestration overhead, throughput, fan-out, API task creation,
// the cost of growth and the database work per step (docs/benchmarks.md).
//
// Import rules: bench wires devserver, engine, store and embeddedpg like
// cmd/tasker does; nothing imports bench but cmd/tasker.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/taskerhq/tasker/internal/migrate"
	"github.com/taskerhq/tasker/internal/stephandler"
	"github.com/taskerhq/tasker/internal/template"
)

// Options configure Run.
type Options struct {
	// Quick runs a reduced version (smaller history, fewer samples) for a
	// smoke test; its figures are not the reference ones.
	Quick bool
	// Only lists the scenarios to run (1–7); empty runs 1–5 and 7, plus 6
	// when Growth is set.
	Only []int
	// Growth runs scenario 6 (1–3 again with GrowthFactor× the history).
	Growth bool
	// History is the number of finished steps seeded (default 1,000,000;
	// Quick: 100,000).
	History int64
	// GrowthFactor multiplies History for scenario 6 (default 10).
	GrowthFactor int64
	// LiveTasks is the number of in-progress tasks seeded (default 10,000).
	LiveTasks int64
	// CPUProfile, when set, receives a Go CPU profile of the measured
	// scenarios (not of seeding).
	CPUProfile string
	// TrackAll loads pg_stat_statements with track = all, so statements
	// inside the readiness functions are listed too (adds overhead).
	TrackAll bool
	// Keep leaves PostgreSQL running after the report, until ctx ends, for
	// inspection.
	Keep bool
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
	if o.History <= 0 {
		o.History = 1_000_000
		if o.Quick {
			o.History = 100_000
		}
	}
	if o.GrowthFactor <= 1 {
		o.GrowthFactor = 10
	}
	if o.LiveTasks <= 0 {
		o.LiveTasks = 10_000
	}
	if o.Scale <= 0 {
		o.Scale = 1
		if o.Quick {
			o.Scale = 0.25
		}
	}
}

func (o *Options) runs(n int) bool {
	if len(o.Only) == 0 {
		return n != 6 || o.Growth
	}
	if n == 0 {
		return true
	}
	return slices.Contains(o.Only, n)
}

// n scales a sample count, keeping at least min.
func (o *Options) n(full, least int) int {
	return max(least, int(float64(full)*o.Scale))
}

// Result is what Run measured.
type Result struct {
	Machine machine
	Rows    []Row
	Missed  int
}

// Run runs the benchmark and writes its report to opts.Out.
func Run(ctx context.Context, opts Options) (*Result, error) {
	opts.defaults()
	began := time.Now()
	out, progress := opts.Out, opts.Progress
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
	reg := stephandler.NewRegistry()
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

	seed := newSeeder(db.url, progress)
	fmt.Fprintf(progress, "bench: seeding %d finished steps and %d live tasks\n", opts.History, opts.LiveTasks)
	if err := seed.live(ctx, opts.LiveTasks); err != nil {
		return nil, err
	}
	seedTook, err := seed.history(ctx, opts.History)
	if err != nil {
		return nil, err
	}
	e.seedRate = float64(opts.History) / seedTook.Seconds()
	fmt.Fprintf(progress, "bench: seeded in %s (%.0f steps/s incl. VACUUM ANALYZE)\n", seedTook.Round(time.Millisecond), e.seedRate)

	if opts.CPUProfile != "" {
		f, err := os.Create(opts.CPUProfile)
		if err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	if err := db.resetStatements(ctx); err != nil {
		return nil, err
	}

	hist := fmt.Sprintf("%s finished steps, %s live tasks", short(opts.History), short(opts.LiveTasks))
	base := map[string]Row{}
	add := func(rows ...Row) {
		res.Rows = append(res.Rows, rows...)
		for _, r := range rows {
			base[r.ID+" "+r.key()] = r
		}
	}
	steps := []struct {
		n  int
		fn func() ([]Row, error)
	}{
		{0, func() ([]Row, error) { return e.baseline(ctx) }},
		{1, func() ([]Row, error) { return e.readiness(ctx, "1", hist) }},
		{2, func() ([]Row, error) { return e.linear(ctx, "2") }},
		{3, func() ([]Row, error) { return e.throughput(ctx, "3") }},
		{4, func() ([]Row, error) { return e.fanoutRun(ctx, "4") }},
		{5, func() ([]Row, error) { return e.apiCreate(ctx, "5") }},
	}
	for _, s := range steps {
		if !opts.runs(s.n) {
			continue
		}
		fmt.Fprintf(progress, "bench: scenario %d\n", s.n)
		if err := db.resetStatements(ctx); err != nil {
			return nil, err
		}
		load0 := loadAvg()
		rows, err := s.fn()
		if err != nil {
			return nil, fmt.Errorf("scenario %d: %w", s.n, err)
		}
		add(rows...)
		e.loads = append(e.loads, fmt.Sprintf("#%d %s → %s", s.n, load0, loadAvg()))
		if s.n > 0 {
			e.statementsDetail(ctx, fmt.Sprintf("#%d", s.n))
		}
	}
	var work *dbWork
	if opts.runs(7) {
		fmt.Fprintln(progress, "bench: scenario 7")
		work, err = e.dbWork(ctx)
		if err != nil {
			return nil, fmt.Errorf("scenario 7: %w", err)
		}
	}
	if opts.CPUProfile != "" {
		pprof.StopCPUProfile()
	}
	var growthRows []Row
	if opts.runs(6) {
		more := opts.History * (opts.GrowthFactor - 1)
		fmt.Fprintf(progress, "bench: scenario 6: seeding %d more finished steps (estimated %s)\n", more,
			(time.Duration(float64(more)/e.seedRate) * time.Second).Round(time.Second))
		took, err := seed.history(ctx, more)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(progress, "bench: seeded in %s\n", took.Round(time.Millisecond))
		hist10 := fmt.Sprintf("%s finished steps, %s live tasks", short(opts.History*opts.GrowthFactor), short(opts.LiveTasks))
		var rows []Row
		for _, s := range []struct {
			n  int
			fn func() ([]Row, error)
		}{
			{1, func() ([]Row, error) { return e.readiness(ctx, "6/1", hist10) }},
			{2, func() ([]Row, error) { return e.linear(ctx, "6/2") }},
			{3, func() ([]Row, error) { return e.throughput(ctx, "6/3") }},
		} {
			if len(opts.Only) > 0 && !opts.runs(s.n) && !slices.Contains(opts.Only, 6) {
				continue
			}
			if err := db.resetStatements(ctx); err != nil {
				return nil, err
			}
			fmt.Fprintf(progress, "bench: scenario 6: rerun of %d\n", s.n)
			load0 := loadAvg()
			r, err := s.fn()
			if err != nil {
				return nil, fmt.Errorf("scenario 6: %w", err)
			}
			e.loads = append(e.loads, fmt.Sprintf("#6/%d %s → %s", s.n, load0, loadAvg()))
			rows = append(rows, r...)
			e.statementsDetail(ctx, fmt.Sprintf("#6 (rerun of #%d)", s.n))
		}
		growthRows = compareGrowth(rows, base, opts.GrowthFactor)
		res.Rows = append(res.Rows, growthRows...)
	}

	for _, r := range res.Rows {
		if strings.HasSuffix(r.Verdict, "MISSED") {
			res.Missed++
		}
	}
	report(out, opts, m, db, res, work, nil, e, time.Since(began))
	if opts.Keep {
		fmt.Fprintf(progress, "bench: PostgreSQL stays up at %s until interrupted\n", db.url)
		<-ctx.Done()
	}
	return res, nil
}

// compareGrowth turns the rerun rows into verdicts against the base rows:
// no p50, p99 or throughput may be more than 20 % worse.
func compareGrowth(rows []Row, base map[string]Row, factor int64) []Row {
	var out []Row
	for _, r := range rows {
		id := r.ID[2:] // "6/1" → "1"
		b, ok := base[id+" "+r.key()]
		r.ID = "6"
		r.Name = fmt.Sprintf("%s — %d× history (base: #%s)", r.Name, factor, id)
		r.Target, r.Verdict = "", ""
		if !ok {
			out = append(out, r)
			continue
		}
		var parts []string
		worst := 0.0
		cmp := func(what string, old, now float64, higherBetter bool) {
			if old <= 0 || now <= 0 {
				return
			}
			ch := (now - old) / old
			worse := ch
			if higherBetter {
				worse = -ch
			}
			worst = max(worst, worse)
			parts = append(parts, fmt.Sprintf("%s %+.0f%%", what, ch*100))
		}
		cmp("p50", float64(b.P50), float64(r.P50), false)
		cmp("p99", float64(b.P99), float64(r.P99), false)
		cmp("rate", b.Rate, r.Rate, true)
		if len(parts) > 0 {
			r.Target = "≤ 20 % worse"
			r.Verdict = strings.Join(parts, ", ") + ": " + verdict(worst <= 0.20)
		}
		out = append(out, r)
	}
	return out
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

var errTimeout = errors.New("timed out")

// loadAvg is the 1-minute load average (other work on the machine skews
// every figure; the report shows it per scenario).
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
