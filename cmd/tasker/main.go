// Command tasker is the Tasker developer CLI and the all-in-one local server.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() map[string]command {
	return map[string]command{
		"bench":    {"run the benchmark suite against an embedded PostgreSQL", cmdBench},
		"dev":      {"run API, scheduler, sweeper and handlers in one process", cmdDev},
		"migrate":  {"apply database migrations", cmdMigrate},
		"validate": {"validate workflow templates", cmdValidate},
		"run":      {"start a task (--watch follows its steps until it finishes)", cmdRun},
		"tasks":    {"list tasks", cmdTasks},
		"show":     {"show a task and its steps", cmdShow},
		"graph":    {"print a task's step graph (mermaid, dot, svg, json)", cmdGraph},
		"cancel":   {"cancel a task", cmdCancel},
		"retry":    {"retry the failed steps of a task in error", cmdRetry},
		"resolve":  {"mark a failed step resolved, optionally with a result", cmdResolve},
		"token":    {"mint an HS256 API token for local use", cmdToken},
		"new":      {"scaffold a workflow: template, Go handlers, tests", cmdNew},
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
	return c.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: tasker <command> [flags]")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nCommands that call the API take --url (TASKER_URL, default "+defaultAPIURL+"),")
	fmt.Fprintln(w, "--token (TASKER_TOKEN) and --json. `tasker <command> --help` describes a command.")
}
