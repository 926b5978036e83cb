package bench

import (
	"fmt"
	"io"
	"strings"
	"time"
)

func report(w io.Writer, opts Options, m machine, db *database, res *Result, work *dbWork, top []stmt, e *env, took time.Duration) {
	mode := "full"
	if opts.Quick {
		mode = "quick (reduced history and samples; not reference figures)"
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
	fmt.Fprint(w, "- other settings that matter here (defaults):")
	for i, kv := range m.Key {
		sep := ","
		if i == 0 {
			sep = ""
		}
		fmt.Fprintf(w, "%s `%s = %s`", sep, kv[0], kv[1])
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "- data: %s finished steps (10-step tasks with edges and transitions), %s live 10-step tasks; seeding ran at %.0f steps/s\n\n",
		thousands(float64(opts.History)), thousands(float64(opts.LiveTasks)), e.seedRate)

	fmt.Fprintln(w, "## Results")
	printTable(w, res.Rows)
	fmt.Fprintln(w)
	for _, n := range e.notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
	if len(e.loads) > 0 {
		fmt.Fprintf(w, "- 1-minute load average before → after each scenario (%d CPUs; anything else running skews the figures): %s\n",
			m.CPUs, strings.Join(e.loads, "; "))
	}
	if !opts.runs(6) {
		more := opts.History * (opts.GrowthFactor - 1)
		fmt.Fprintf(w, "- #6 not run: it seeds %s more finished steps (about %s at the measured rate); run with --growth.\n",
			thousands(float64(more)), (time.Duration(float64(more)/e.seedRate) * time.Second).Round(time.Second))
	}
	if work != nil {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "## Database work per unit (#7)")
		fmt.Fprintln(w)
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
	if len(top) > 0 {
		fmt.Fprintln(w, "\n## Where database time goes (#1–#5, pg_stat_statements by total time)")
		fmt.Fprintln(w, "\n| statement | calls | rows/call | mean ms | total ms |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|")
		for _, s := range top {
			fmt.Fprintf(w, "| `%s` | %.0f | %.1f | %.3f | %.0f |\n", oneLine(s.Query, 90), s.Calls, s.Rows, s.MeanMS, s.TotalMS)
		}
	}
	for _, d := range e.details {
		fmt.Fprintf(w, "\n### %s\n\n```\n%s```\n", d.Title, d.Body)
	}
	fmt.Fprintf(w, "\nTotal run time %s; %d target(s) missed.\n", took.Round(time.Second), res.Missed)
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	s = strings.ReplaceAll(s, "|", "\\|")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
