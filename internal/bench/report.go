package bench

import (
	"fmt"
	"io"
	"strings"
	"time"
)

func report(w io.Writer, opts Options, res *Result, work *dbWork, e *env, data string, took time.Duration) {
	m := res.Machine
	mode := "full"
	if opts.Quick {
		mode = "quick (small matrix, fewer samples: a smoke test, not reference figures)"
	}
	fmt.Fprintf(w, "# tasker bench — %s, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"), mode)
	fmt.Fprintln(w, "## Machine")
	fmt.Fprintf(w, "- CPUs: %d (%s)\n- memory: %s\n- Go: %s %s\n- PostgreSQL: %s\n", m.CPUs, m.CPUModel, m.Memory, m.GoVersion, m.OS, m.PGVersion)
	if m.Source != "" {
		fmt.Fprintf(w, "- source: %s\n", m.Source)
	}
	fmt.Fprintln(w, "- settings changed from the built-in defaults (initdb's and embeddedpg's):")
	for _, kv := range m.NonDefault {
		fmt.Fprintf(w, "  - `%s = %s`\n", kv[0], kv[1])
	}
	fmt.Fprint(w, "- other settings that matter here:")
	for i, kv := range m.Key {
		sep := ","
		if i == 0 {
			sep = ""
		}
		fmt.Fprintf(w, "%s `%s = %s`", sep, kv[0], kv[1])
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "- 1-minute load average before → after each matrix cell (%d CPUs; anything else running skews wall-clock figures): %s\n\n",
		m.CPUs, loads(res.Cells))

	if len(res.Cells) > 0 {
		matrixReport(w, res)
	}
	if len(res.Rows) > 0 {
		fmt.Fprintf(w, "## Other scenarios (#4 over %s)\n\n", data)
		printTable(w, res.Rows)
		fmt.Fprintln(w)
	}
	if c := res.Creation; c != nil {
		creationReport(w, c)
	}
	for _, n := range e.notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
	if work != nil {
		fmt.Fprintf(w, "\n## Database work per unit (#7, over %s)\n\n", data)
		fmt.Fprintln(w, "| per … | n | round trips | statements | rows written | WAL bytes | wire bytes |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|")
		for _, p := range work.Phases {
			fmt.Fprintf(w, "| %s | %d | %.2f | %.2f | %.2f | %s | %s |\n", p.Name, p.Units, p.Trips, p.Stmts, p.Rows,
				thousands(p.WAL), thousands(p.Wire))
		}
		for _, p := range work.Phases {
			fmt.Fprintf(w, "\nPer %s — rows by table (insert / update / delete, HOT updates):\n", p.Name)
			for _, t := range p.ByTable {
				fmt.Fprintf(w, "- %s: %.2f / %.2f / %.2f (%.2f HOT)\n", t.Table, t.Ins, t.Upd, t.Del, t.HotUpd)
			}
			if len(p.Statements) > 0 {
				fmt.Fprintln(w, "\n| statement | calls/unit | rows/call | mean ms |")
				fmt.Fprintln(w, "|---|---:|---:|---:|")
				for _, s := range p.Statements {
					fmt.Fprintf(w, "| `%s` | %.3f | %.1f | %.3f |\n", oneLine(s.Query, 90), s.Calls, s.Rows, s.MeanMS)
				}
			}
		}
	}
	for _, d := range e.details {
		fmt.Fprintf(w, "\n### %s\n\n```\n%s```\n", d.Title, d.Body)
	}
	fmt.Fprintf(w, "\nTotal run time %s; %d target(s) missed.\n", took.Round(time.Second), res.Missed)
}

func loads(cells []*Cell) string {
	var ls []string
	for _, c := range cells {
		ls = append(ls, c.Load)
	}
	if len(ls) == 0 {
		return "—"
	}
	return strings.Join(ls, "; ")
}

// matrixReport prints the matrix (#2 and #3 per cell), the targets and a
// second table with the figures behind them.
func matrixReport(w io.Writer, res *Result) {
	fmt.Fprintln(w, "## Matrix: #2 per-step overhead and #3 throughput by finished history × live tasks")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Ratios are to the cell's own commit p50 (#0 timed in the cell). CPU per step: Go process + PostgreSQL client backends.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| history | live | commit p50 | overhead p50 | overhead p99 | 4-step e2e p50 | steps/s | CPU/step 1 at a time | CPU/step batched | planner statistics |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, c := range res.Cells {
		if c.Err != "" {
			fmt.Fprintf(w, "| %s | %s | %s | FAILED: %s | | | | | | %s |\n", short(c.History), short(c.Live), ms(c.Commit),
				oneLine(c.Err, 80), statsSummary(c))
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", short(c.History), short(c.Live), ms(c.Commit),
			withRatio(c, c.OverheadP50), withRatio(c, c.OverheadP99), withRatio(c, c.E2EP50), rateOrDash(c.StepsPerSec),
			cpuPair(c.SeqGo, c.SeqPG), cpuPair(c.ConcGo, c.ConcPG), statsSummary(c))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| target (every cell) | worst cell | verdict |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, v := range res.Verdicts {
		fmt.Fprintf(w, "| %s | %s | %s |\n", v.Target, v.Worst, verdict(v.Met))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| history | live | #2 tasks (gaps) | overhead p50: return → pass committed | → next handler start | #3 tasks done / woken | #3 task p50 from wake | server start + startup sweep | load before → after |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, c := range res.Cells {
		fmt.Fprintf(w, "| %s | %s | %d (%d) | %s | %s | %d / %d | %s | %s | %s |\n", short(c.History), short(c.Live), c.Tasks, c.Gaps,
			ms(c.ToCommitP50), ms(c.ToStartP50), c.ConcDone, c.ConcTasks, ms(c.TaskP50), ms(c.Startup), c.Load)
	}
	fmt.Fprintln(w)
}

func withRatio(c *Cell, d time.Duration) string {
	if d <= 0 {
		return "—"
	}
	return fmt.Sprintf("%s (%.1f×)", ms(d), c.ratio(d))
}

func rateOrDash(v float64) string {
	if v <= 0 {
		return "—"
	}
	return thousands(v)
}

func cpuPair(g, p time.Duration) string {
	if g+p <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.3f + %.3f ms", ms64(g), ms64(p))
}

// statsSummary says what the planner had at the start of the cell:
// reltuples of tasker_steps and whether any table had column statistics
// or had been analysed (by hand or by autovacuum).
func statsSummary(c *Cell) string {
	var steps float64
	analysed := false
	var cols int
	for _, t := range c.Stats {
		if t.Table == "tasker_steps" {
			steps = t.RelTuples
		}
		cols += t.Columns
		analysed = analysed || t.Analyses > 0 || t.LastAuto != ""
	}
	s := "steps reltuples " + short(int64(steps))
	if steps < 0 {
		s = "steps reltuples -1 (never vacuumed)"
	}
	switch {
	case analysed:
		s += fmt.Sprintf(", analysed (%d column stats)", cols)
	case cols > 0:
		s += fmt.Sprintf(", %d column stats", cols)
	default:
		s += ", never analysed"
	}
	if c.Analysed {
		s += "; ANALYSED DURING THE CELL"
	}
	return s
}

func creationReport(w io.Writer, c *Creation) {
	fmt.Fprintf(w, "## #5 API task creation: POST /v1/tasks from %d clients, engine running the tasks (%s)\n\n", c.Clients, c.Data)
	fmt.Fprintf(w, "%d requests: p50 %s, p99 %s, %s creations/s; one client, one at a time: p50 %s. Target: p50 ≤ 5 ms, p99 ≤ 20 ms: %s.\n\n",
		c.N, ms(c.P50), ms(c.P99), thousands(c.Rate), ms(c.OneP50), verdict(c.P50 <= 5*time.Millisecond && c.P99 <= 20*time.Millisecond))
	if len(c.Phases) > 0 {
		fmt.Fprintln(w, "Where the time goes (in process: the API and task.create spans, pool acquires and statements; tracing is on for this scenario, two spans kept per request):")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| phase | p50 | p99 | mean | share of mean |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|")
		for _, p := range c.Phases {
			fmt.Fprintf(w, "| %s | %s | %s | %s | %.0f %% |\n", p.Name, ms(p.P50), ms(p.P99), ms(p.Mean), p.ShareMean*100)
		}
		fmt.Fprintln(w)
	}
	if len(c.Statements) > 0 {
		fmt.Fprintln(w, "Server-side (pg_stat_statements) for the statements those phases ran:")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| phase | statement | calls | mean ms |")
		fmt.Fprintln(w, "|---|---|---:|---:|")
		for _, s := range c.Statements {
			fmt.Fprintf(w, "| %s | `%s` | %.0f | %.3f |\n", c.StatementKind[s.Query], oneLine(s.Query, 90), s.Calls, s.MeanMS)
		}
		fmt.Fprintln(w)
	}
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	s = strings.ReplaceAll(s, "|", "\\|")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
