package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/taskerhq/tasker/internal/bench"
)

// cmdBench runs the benchmark suite against a private embedded PostgreSQL
// and prints the results table (docs/benchmarks.md explains the scenarios).
func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("tasker bench", flag.ContinueOnError)
	fset.SetOutput(stderr)
	quick := fset.Bool("quick", false, "reduced history and samples (a smoke test, not reference figures)")
	only := fset.String("only", "", "comma-separated scenarios to run, e.g. 1,3 (default: 1-5 and 7; 6 with --growth)")
	growth := fset.Bool("growth", false, "also run scenario 6: 1-3 again with --growth-factor x the history (slow: seeds 9M more steps)")
	factor := fset.Int64("growth-factor", 10, "history multiplier for scenario 6")
	history := fset.Int64("history", 0, "finished steps to seed (default 1000000; --quick: 100000)")
	live := fset.Int64("live", 10000, "live (in-progress) tasks to seed")
	cpuprofile := fset.String("cpuprofile", "", "write a Go CPU profile of the measured scenarios to this file")
	keep := fset.Bool("keep", false, "leave PostgreSQL running after the report until interrupted (prints its URL)")
	trackAll := fset.Bool("track-all", false, "pg_stat_statements.track = all: also list statements inside SQL functions (adds overhead)")
	fset.Usage = func() {
		fmt.Fprintln(stderr, "usage: tasker bench [--quick] [--only N,M] [--growth] [--cpuprofile FILE]")
		fmt.Fprintln(stderr, "\nRuns Tasker's benchmarks against a private embedded PostgreSQL (default settings),")
		fmt.Fprintln(stderr, "in local mode with no-op handlers, and prints a Markdown report to stdout.")
		fmt.Fprintln(stderr)
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fset.NArg() > 0 {
		fmt.Fprintf(stderr, "tasker bench: unexpected argument %q\n", fset.Arg(0))
		return 2
	}
	var scenarios []int
	if *only != "" {
		for _, f := range strings.Split(*only, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 || n > 7 {
				fmt.Fprintf(stderr, "tasker bench: --only: %q is not a scenario number (1-7)\n", f)
				return 2
			}
			scenarios = append(scenarios, n)
		}
	}
	res, err := bench.Run(ctx, bench.Options{
		Quick: *quick, Only: scenarios, Growth: *growth, GrowthFactor: *factor, History: *history,
		LiveTasks: *live, CPUProfile: *cpuprofile, TrackAll: *trackAll, Keep: *keep, Out: stdout, Progress: stderr,
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
