package tasks

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/taskerhq/tasker/internal/cli"
	"github.com/taskerhq/tasker/internal/domain"
)

const cancelUsage = `usage: tasker cancel ID [--reason TEXT]
       tasker cancel --all [--status S] [--name N] [--namespace N] [--tag K:V]... [--dry-run] [--yes]

Cancels a pending, running or failed task: steps not yet finished are
cancelled. With --all, every task the filters select (without --status:
pending, in_progress and error), after a confirmation.
`

const retryUsage = `usage: tasker retry ID [--reason TEXT] [--watch]
       tasker retry --all [--name N] [--namespace N] [--tag K:V]... [--dry-run] [--yes]

Retries a task in error: its failed steps go back to pending and run again.
With --all, every task in error the filters select, after a confirmation.
`

// Cancel is `tasker cancel ID`.
func Cancel(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return operate(ctx, "cancel", cancelUsage, args, stdout, stderr)
}

// Retry is `tasker retry ID`.
func Retry(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return operate(ctx, "retry", retryUsage, args, stdout, stderr)
}

func operate(ctx context.Context, cmd, usage string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tasker "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := cli.AddAPIFlags(fs)
	reason := fs.String("reason", "", "why (recorded on the transitions)")
	var watch *bool
	if cmd == "retry" {
		watch = fs.Bool("watch", false, "follow the task until it finishes again")
	}
	bf := addBulkFlags(fs)
	fs.Usage = cli.UsageFunc(fs, usage)
	if slices.ContainsFunc(args, func(a string) bool { return a == "--all" || a == "-all" || a == "--all=true" }) {
		pos, code, ok := cli.ParseInterleaved(fs, args)
		if !ok {
			return code
		}
		if len(pos) > 0 {
			fmt.Fprintf(stderr, "tasker %s: --all takes filters, not a task ID (%q)\n", cmd, pos[0])
			return 2
		}
		return bulk(ctx, cmd, bf, api, *reason, os.Stdin, stdout, stderr)
	}
	id, c, code, ok := oneIDCommand(fs, api, cmd, args, stderr)
	if !ok {
		return code
	}
	if bf.dryRun || bf.yes || len(bf.filter()) > 0 {
		fmt.Fprintf(stderr, "tasker %s: the filters, --dry-run and --yes go with --all, not with a task ID\n", cmd)
		return 2
	}
	body := map[string]any{}
	if *reason != "" {
		body["reason"] = *reason
	}
	action := c.CancelTask
	if cmd == "retry" {
		action = c.RetryTask
	}
	t, raw, err := action(ctx, id, body)
	if err != nil {
		return cli.ReportError(stderr, cmd, err, api.JSON)
	}
	if watch != nil && *watch {
		return watchTask(ctx, c, t, raw, cmd, 250*time.Millisecond, api.JSON, stdout, stderr)
	}
	if api.JSON {
		cli.WriteRaw(stdout, raw)
		return 0
	}
	switch cmd {
	case "cancel":
		fmt.Fprintf(stdout, "Task %s %s\n", t.ID, t.Status)
	case "retry":
		var again []string
		for _, s := range t.Steps {
			if st := domain.StepState(s.Status); st == domain.StepPending || st == domain.StepInProgress || st == domain.StepWaitingForRetry {
				again = append(again, s.Name)
			}
		}
		fmt.Fprintf(stdout, "Task %s %s", t.ID, t.Status)
		if len(again) > 0 {
			fmt.Fprintf(stdout, "; to run: %s", strings.Join(again, ", "))
		}
		fmt.Fprintf(stdout, "\n(follow it: tasker show %s)\n", t.ID)
	}
	return 0
}

const resolveUsage = `usage: tasker resolve ID STEP [--result JSON|@file] [--reason TEXT]

Marks a failed step resolved by an operator, optionally with the result its
dependents receive; a task in error then carries on.
`

// Resolve is `tasker resolve ID STEP`.
func Resolve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tasker resolve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := cli.AddAPIFlags(fs)
	result := fs.String("result", "", "the step's result: JSON, @file, or @- for stdin")
	reason := fs.String("reason", "", "why (recorded on the transition)")
	fs.Usage = cli.UsageFunc(fs, resolveUsage)
	pos, code, ok := cli.ParseInterleaved(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 2 {
		fmt.Fprintln(stderr, "tasker resolve: want a task ID and a STEP name")
		fs.Usage()
		return 2
	}
	body := map[string]any{}
	if *result != "" {
		raw, err := cli.ReadJSONArg("result", *result)
		if err != nil {
			fmt.Fprintf(stderr, "tasker resolve: %v\n", err)
			return 2
		}
		body["result"] = raw
	}
	if *reason != "" {
		body["reason"] = *reason
	}
	c, err := api.Client()
	if err != nil {
		fmt.Fprintf(stderr, "tasker resolve: %v\n", err)
		return 2
	}
	s, raw, err := c.ResolveStep(ctx, pos[0], pos[1], body)
	if err != nil {
		return cli.ReportError(stderr, "resolve", err, api.JSON)
	}
	if api.JSON {
		cli.WriteRaw(stdout, raw)
		return 0
	}
	fmt.Fprintf(stdout, "Step %s of task %s %s\n", s.Name, pos[0], s.Status)
	return 0
}
