package bench

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// cellSpec is one point of the matrix: finished steps of history and live
// (in-progress, 10-step) tasks seeded before the cell runs.
type cellSpec struct{ History, Live int64 }

func (c cellSpec) String() string {
	return fmt.Sprintf("%s finished steps, %s live tasks", short(c.History), short(c.Live))
}

// Cell is what one matrix cell measured. Durations are zero and rates 0
// for a scenario the cell did not run.
type Cell struct {
	History, Live int64 // seeded (earlier cells also leave their finished tasks behind)
	// Commit is the p50 of #0, the fsync'd single-row commit, timed in this
	// cell so the ratios compare figures taken under the same load.
	Commit                   time.Duration
	OverheadP50, OverheadP99 time.Duration // #2 per-step overhead
	ToCommitP50, ToStartP50  time.Duration // its two halves, split at the pass commit
	E2EP50                   time.Duration // #2 4-step task end to end
	Gaps, Tasks              int           // #2 samples
	StepsPerSec              float64       // #3
	TaskP50                  time.Duration // #3 per-task latency from the wake-ups
	ConcTasks, ConcDone      int           // #3 tasks woken, completed within the limit
	SeqGo, SeqPG             time.Duration // CPU per step, #2 (one task at a time)
	ConcGo, ConcPG           time.Duration // CPU per step, #3 (many at once)
	Startup                  time.Duration // server start incl. its startup sweep
	Stats                    []tableStats  // planner's view at the start of the cell
	Analysed                 bool          // something analysed a table during the cell
	Load                     string        // 1-minute load average before → after
	Err                      string        // the cell failed; the run went on
}

// Spec returns the cell's coordinates.
func (c *Cell) Spec() string { return cellSpec{c.History, c.Live}.String() }

// ratio is d in commits (0 when either is unknown).
func (c *Cell) ratio(d time.Duration) float64 {
	if c.Commit <= 0 || d <= 0 {
		return 0
	}
	return float64(d) / float64(c.Commit)
}

// plan orders the cells so seeded data is reused: history only grows, and
// the live-task axis is walked up for one history size and down for the
// next (a snake), so each move adds or removes one step of live tasks.
func plan(histories, lives []int64) []cellSpec {
	hs := slices.Clone(histories)
	slices.Sort(hs)
	ls := slices.Clone(lives)
	slices.Sort(ls)
	var out []cellSpec
	for i, h := range hs {
		order := slices.Clone(ls)
		if i%2 == 1 {
			slices.Reverse(order)
		}
		for _, l := range order {
			out = append(out, cellSpec{h, l})
		}
	}
	return out
}

// cellBudget sizes one cell's samples.
type cellBudget struct {
	commits   int           // #0 samples
	maxTasks  int           // #2 tasks at most …
	time      time.Duration // … or this long, whichever comes first
	concTasks int           // #3 tasks …
	concLimit time.Duration // … finished within this long, or the rest are cancelled
}

func (o *Options) budget() cellBudget {
	b := cellBudget{commits: o.n(500, 50), maxTasks: o.n(1000, 20), time: 8 * time.Second,
		concTasks: o.n(2000, 40), concLimit: 30 * time.Second}
	if o.Quick {
		b.time, b.concLimit = 3*time.Second, 15*time.Second
	}
	return b
}

// runMatrix seeds and measures every cell in plan order.
func (e *env) runMatrix(ctx context.Context, seed *seeder, specs []cellSpec) ([]*Cell, error) {
	var cells []*Cell
	for i, sp := range specs {
		changed := i == 0 // the first cell is settled too, like every other
		if more := sp.History - seed.seeded().History; more > 0 {
			fmt.Fprintf(e.progress, "bench: seeding %s more finished steps\n", short(more))
			if err := seed.history(ctx, more); err != nil {
				return nil, err
			}
			changed = true
		}
		if sp.Live != seed.live {
			fmt.Fprintf(e.progress, "bench: live tasks %s → %s\n", short(seed.live), short(sp.Live))
			if err := seed.setLive(ctx, sp.Live); err != nil {
				return nil, err
			}
			changed = true
		}
		if changed {
			if err := seed.settle(ctx); err != nil {
				return nil, err
			}
		}
		fmt.Fprintf(e.progress, "bench: cell %d/%d: %s\n", i+1, len(specs), sp)
		c, err := e.runCell(ctx, sp)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			// A cell that times out is a finding, not a reason to lose the
			// others: report it and go on.
			c.Err = err.Error()
			fmt.Fprintf(e.progress, "bench: cell %s failed: %v\n", sp, err)
		}
		cells = append(cells, c)
	}
	return cells, nil
}

// runCell runs #0, #2 and #3 against one server over the cell's data.
func (e *env) runCell(ctx context.Context, sp cellSpec) (*Cell, error) {
	c := &Cell{History: sp.History, Live: sp.Live}
	b := e.opts.budget()
	load0 := loadAvg()
	defer func() { c.Load = load0 + " → " + loadAvg() }()
	var err error
	if c.Stats, err = e.db.statsState(ctx); err != nil {
		return c, err
	}
	if err := e.db.resetStatements(ctx); err != nil {
		return c, err
	}
	if c.Commit, _, err = e.commitRef(ctx, b.commits); err != nil {
		return c, err
	}
	t0 := time.Now()
	srv, err := e.server(ctx, e.db.url)
	if err != nil {
		return c, err
	}
	defer closeServer(srv)
	c.Startup = time.Since(t0)
	if e.opts.runs(2) {
		lr, err := e.linear(ctx, srv, b.maxTasks, b.time)
		if err != nil {
			return c, fmt.Errorf("#2: %w", err)
		}
		c.Tasks, c.Gaps = lr.Tasks, len(lr.Gap)
		c.OverheadP50, c.OverheadP99 = percentile(lr.Gap, 50), percentile(lr.Gap, 99)
		c.ToCommitP50, c.ToStartP50 = percentile(lr.ToCommit, 50), percentile(lr.ToStart, 50)
		c.E2EP50 = percentile(lr.E2E, 50)
		if steps := time.Duration(4 * lr.Tasks); lr.CPU.ok && steps > 0 {
			c.SeqGo, c.SeqPG = lr.CPU.Go/steps, lr.CPU.PG/steps
		}
	}
	if e.opts.runs(3) {
		tr, err := e.throughput(ctx, srv, b.concTasks, b.concLimit)
		if err != nil {
			return c, fmt.Errorf("#3: %w", err)
		}
		c.ConcTasks, c.ConcDone, c.StepsPerSec, c.TaskP50 = tr.Tasks, tr.Done, tr.rate(), percentile(tr.Latency, 50)
		if tr.Done < tr.Tasks {
			e.note("%s: #3 stopped at its %s limit with %d of %d tasks complete; steps/s counts those", sp, b.concLimit, tr.Done, tr.Tasks)
		}
		if steps := time.Duration(4 * tr.Done); tr.CPU.ok && steps > 0 {
			c.ConcGo, c.ConcPG = tr.CPU.Go/steps, tr.CPU.PG/steps
		}
		if tr.Redispatched > 0 {
			e.note("%s: %d step dispatches were refused by the local invoker (backlog full) and retried after 1 s", sp, tr.Redispatched)
		}
	}
	after, err := e.db.statsState(ctx)
	if err != nil {
		return c, err
	}
	for i := range after {
		if i < len(c.Stats) && after[i].Analyses != c.Stats[i].Analyses {
			c.Analysed = true
		}
	}
	e.statementsDetail(ctx, sp.String())
	return c, nil
}

// Targets of issue 13, in fsync'd commits (#0) where they are latencies.
const (
	targetOverheadP50 = 2.0
	targetOverheadP99 = 6.0
	targetE2EP50      = 8.0
	targetStepsPerSec = 8000.0
	targetSpread      = 0.25 // worst cell within 25 % of the best
)

// Verdict is one target checked over every cell.
type Verdict struct {
	Target string
	Worst  string // the worst cell's figure and where
	Met    bool
}

// verdicts checks the targets in every cell that measured them.
func verdicts(cells []*Cell) []Verdict {
	var out []Verdict
	ok := func(c *Cell) bool { return c.Err == "" }
	type metric struct {
		target string
		val    func(*Cell) float64
		fmtv   func(*Cell) string
		limit  float64
		higher bool // higher is better
		// abs is the figure the spread compares: absolute, because each
		// cell's commit floor is itself a noisy measurement.
		abs func(*Cell) float64
	}
	durMS := func(d func(*Cell) time.Duration) func(*Cell) float64 {
		return func(c *Cell) float64 { return float64(d(c)) / float64(time.Millisecond) }
	}
	metrics := []metric{
		{"per-step overhead p50 ≤ 2 commits", func(c *Cell) float64 { return c.ratio(c.OverheadP50) },
			func(c *Cell) string {
				return fmt.Sprintf("%s = %.1f commits", ms(c.OverheadP50), c.ratio(c.OverheadP50))
			}, targetOverheadP50, false, durMS(func(c *Cell) time.Duration { return c.OverheadP50 })},
		{"per-step overhead p99 ≤ 6 commits", func(c *Cell) float64 { return c.ratio(c.OverheadP99) },
			func(c *Cell) string {
				return fmt.Sprintf("%s = %.1f commits", ms(c.OverheadP99), c.ratio(c.OverheadP99))
			}, targetOverheadP99, false, durMS(func(c *Cell) time.Duration { return c.OverheadP99 })},
		{"4-step task end to end p50 ≤ 8 commits", func(c *Cell) float64 { return c.ratio(c.E2EP50) },
			func(c *Cell) string { return fmt.Sprintf("%s = %.1f commits", ms(c.E2EP50), c.ratio(c.E2EP50)) }, targetE2EP50, false,
			durMS(func(c *Cell) time.Duration { return c.E2EP50 })},
		{"throughput ≥ 8,000 steps/s", func(c *Cell) float64 { return c.StepsPerSec },
			func(c *Cell) string { return thousands(c.StepsPerSec) + " steps/s" }, targetStepsPerSec, true,
			func(c *Cell) float64 { return c.StepsPerSec }},
	}
	for _, m := range metrics {
		var worst, best, absWorst, absBest *Cell
		better := func(v func(*Cell) float64, a, b *Cell) bool {
			if m.higher {
				return v(a) > v(b)
			}
			return v(a) < v(b)
		}
		for _, c := range cells {
			if !ok(c) || m.val(c) <= 0 {
				continue
			}
			if worst == nil || better(m.val, worst, c) {
				worst = c
			}
			if best == nil || better(m.val, c, best) {
				best = c
			}
			if absWorst == nil || better(m.abs, absWorst, c) {
				absWorst = c
			}
			if absBest == nil || better(m.abs, c, absBest) {
				absBest = c
			}
		}
		if worst == nil {
			continue
		}
		met := m.val(worst) <= m.limit
		if m.higher {
			met = m.val(worst) >= m.limit
		}
		out = append(out, Verdict{Target: m.target, Worst: m.fmtv(worst) + " (" + worst.Spec() + ")", Met: met})
		if absWorst != absBest {
			// Spread: the worst cell against the best, on the same figure.
			spread := m.abs(absWorst)/m.abs(absBest) - 1
			if m.higher {
				spread = 1 - m.abs(absWorst)/m.abs(absBest)
			}
			out = append(out, Verdict{
				Target: fmt.Sprintf("  same, worst cell within %.0f %% of the best", targetSpread*100),
				Worst: fmt.Sprintf("%.0f %% off: %s (%s) vs best %s (%s)", spread*100, m.fmtv(absWorst), absWorst.Spec(),
					m.fmtv(absBest), absBest.Spec()),
				Met: spread <= targetSpread,
			})
		}
	}
	for _, c := range cells {
		if !ok(c) {
			out = append(out, Verdict{Target: "cell completed", Worst: c.Spec() + ": " + c.Err})
		}
	}
	return out
}
