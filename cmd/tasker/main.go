// Command tasker is the Tasker developer CLI and the all-in-one local server.
// This file only wires the subcommands; each lives in a package under
// internal/cli, and the commands that call the API do so through
// internal/apiclient.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/taskerhq/tasker/internal/apiclient"
	"github.com/taskerhq/tasker/internal/cli"
	"github.com/taskerhq/tasker/internal/cli/bench"
	"github.com/taskerhq/tasker/internal/cli/dev"
	"github.com/taskerhq/tasker/internal/cli/migrate"
	"github.com/taskerhq/tasker/internal/cli/prune"
	"github.com/taskerhq/tasker/internal/cli/scaffold"
	"github.com/taskerhq/tasker/internal/cli/tasks"
	"github.com/taskerhq/tasker/internal/cli/token"
	"github.com/taskerhq/tasker/internal/cli/validate"
)

func commands() map[string]cli.Command {
	return map[string]cli.Command{
		"bench":     {Summary: "run the benchmark suite against an embedded PostgreSQL", Run: bench.Run},
		"dev":       {Summary: "run API, scheduler, sweeper and handlers in one process", Run: dev.Run},
		"migrate":   {Summary: "apply database migrations", Run: migrate.Run},
		"prune":     {Summary: "delete finished tasks older than an age (--dry-run counts)", Run: prune.Run},
		"validate":  {Summary: "validate workflow templates", Run: validate.Run},
		"run":       {Summary: "start a task (--watch follows its steps until it finishes)", Run: tasks.Run},
		"tasks":     {Summary: "list tasks", Run: tasks.List},
		"show":      {Summary: "show a task and its steps", Run: tasks.Show},
		"graph":     {Summary: "print a task's step graph (mermaid, dot, svg, json)", Run: tasks.Graph},
		"cancel":    {Summary: "cancel a task", Run: tasks.Cancel},
		"retry":     {Summary: "retry the failed steps of a task in error", Run: tasks.Retry},
		"resolve":   {Summary: "mark a failed step resolved, optionally with a result", Run: tasks.Resolve},
		"schedules": {Summary: "list schedules and their next fire times; pause or resume one", Run: tasks.Schedules},
		"token":     {Summary: "mint an HS256 API token for local use", Run: token.Run},
		"new":       {Summary: "scaffold a workflow: template, Go handlers, tests", Run: scaffold.Run},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout, cmds)
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "tasker: unknown command %q\n", args[0])
		usage(stderr, cmds)
		return 2
	}
	return c.Run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer, cmds map[string]cli.Command) {
	fmt.Fprintln(w, "usage: tasker <command> [flags]")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].Summary)
	}
	fmt.Fprintln(w, "\nCommands that call the API take --url (TASKER_URL, default "+apiclient.DefaultURL+"),")
	fmt.Fprintln(w, "--token (TASKER_TOKEN) and --json. `tasker <command> --help` describes a command.")
}
