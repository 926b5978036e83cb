// Package bench is `tasker bench`: the benchmark suite (internal/bench)
// against an embedded PostgreSQL.
package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	benchmark "github.com/taskerhq/tasker/internal/bench"
)

// Run runs the benchmark matrix and scenarios against a private
// embedded PostgreSQL and prints the report (docs/benchmarks.md explains it).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("tasker bench", flag.ContinueOnError)
	fset.SetOutput(stderr)
	quick := fset.Bool("quick", false, "small matrix (history 0,100000 x live 1000) and fewer samples: a smoke test (under a minute)")
	only := fset.String("only", "", "comma-separated scenarios: 2,3 (per matrix cell), 4, 5, 7, 8 (once, after the matrix); default all")
	retention := fset.Int64("retention-history", 0, "#8 retention: finished steps pruned while passes are timed (default 1000000; --quick: 100000)")
	growth := fset.Bool("growth", false, "add 10,000,000 finished steps to the history axis (seeding takes minutes)")
	history := fset.String("history", "", "history axis: finished steps per row, comma-separated (default 0,100000,1000000; --quick: 0,100000)")
	live := fset.String("live", "", "live-task axis: in-progress tasks per column, comma-separated (default 0,10000,100000; --quick: 1000)")
	cpuprofile := fset.String("cpuprofile", "", "write a Go CPU profile of the run to this file")
	keep := fset.Bool("keep", false, "leave PostgreSQL running after the report until interrupted (prints its URL)")
	trackAll := fset.Bool("track-all", false, "pg_stat_statements.track = all: also list statements inside SQL functions (adds overhead)")
	fset.Usage = func() {
		fmt.Fprintln(stderr, "usage: tasker bench [--quick] [--growth] [--history N,...] [--live N,...] [--only N,M] [--cpuprofile FILE]")
		fmt.Fprintln(stderr, "\nRuns Tasker's benchmark matrix against a private embedded PostgreSQL (default settings,")
		fmt.Fprintln(stderr, "autovacuum off, never analysed), in local mode with no-op handlers, and prints a Markdown")
		fmt.Fprintln(stderr, "report to stdout (docs/benchmarks.md explains it).")
		fmt.Fprintln(stderr)
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *retention < 0 {
		fmt.Fprintln(stderr, "tasker bench: --retention-history takes a non-negative integer")
		return 2
	}
	if fset.NArg() > 0 {
		fmt.Fprintf(stderr, "tasker bench: unexpected argument %q\n", fset.Arg(0))
		return 2
	}
	var scenarios []int
	for _, n := range splitInts(*only) {
		if !slices.Contains([]int64{2, 3, 4, 5, 7, 8}, n) {
			fmt.Fprintf(stderr, "tasker bench: --only: %q is not one of 2, 3, 4, 5, 7, 8\n", *only)
			return 2
		}
		scenarios = append(scenarios, int(n))
	}
	histories, lives := splitInts(*history), splitInts(*live)
	for _, v := range append(slices.Clone(histories), lives...) {
		if v < 0 {
			fmt.Fprintf(stderr, "tasker bench: --history and --live take comma-separated non-negative integers\n")
			return 2
		}
	}
	res, err := benchmark.Run(ctx, benchmark.Options{
		Quick: *quick, Only: scenarios, Growth: *growth, Histories: histories, Lives: lives,
		CPUProfile: *cpuprofile, TrackAll: *trackAll, Keep: *keep, Out: stdout, Progress: stderr, RetentionHistory: *retention,
	})
	if err != nil {
		fmt.Fprintf(stderr, "tasker bench: %v\n", err)
		return 1
	}
	if res.Missed > 0 {
		fmt.Fprintf(stderr, "tasker bench: %d target(s) missed (see the report)\n", res.Missed)
	}
	return 0
}

// splitInts parses a comma-separated list; an entry that is not an
// integer comes back as -1 so the caller can name the flag.
func splitInts(s string) []int64 {
	var out []int64
	if strings.TrimSpace(s) == "" {
		return nil
	}
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		if err != nil {
			n = -1
		}
		out = append(out, n)
	}
	return out
}
