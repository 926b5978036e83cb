package tasks

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/taskerhq/tasker/internal/cli"
	"github.com/taskerhq/tasker/internal/config"
)

const runUsage = `usage: tasker run NAMESPACE/NAME [--version V] [--context JSON|@file] [--idempotency-key K] [--watch]

Creates a task of the workflow NAMESPACE/NAME (the highest version unless
--version says otherwise) and prints its id. With --watch it follows the task
until it finishes, showing each step's progress, and exits 0 only when the
task completed; otherwise it names the failing steps and their last error on
stderr and exits 1.
`

// Run is `tasker run NAMESPACE/NAME`.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tasker run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := cli.AddAPIFlags(fs)
	version := fs.String("version", "", "workflow version (default: the highest)")
	contextArg := fs.String("context", "", "task context: a JSON object, @file, or @- for stdin")
	idem := fs.String("idempotency-key", "", "idempotency key: the same key again returns the existing task")
	reason := fs.String("reason", "", "why the task is started (recorded on the task)")
	initiator := fs.String("initiator", os.Getenv("USER"), "who starts the task")
	var tags stringList
	fs.Var(&tags, "tag", "tag the task (repeatable)")
	watch := fs.Bool("watch", false, "follow the task until it finishes, showing step progress")
	interval := fs.Duration("interval", 250*time.Millisecond, "how often --watch polls (10ms to 1m)")
	fs.Usage = cli.UsageFunc(fs, runUsage)
	pos, code, ok := cli.ParseInterleaved(fs, args)
	if !ok {
		return code
	}
	if err := config.CheckDuration("--interval", *interval, 10*time.Millisecond, time.Minute); err != nil {
		fmt.Fprintln(stderr, "tasker run:", err)
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "tasker run: want exactly one workflow, NAMESPACE/NAME")
		fs.Usage()
		return 2
	}
	ns, name, found := strings.Cut(pos[0], "/")
	if !found || ns == "" || name == "" || strings.Contains(name, "/") {
		fmt.Fprintf(stderr, "tasker run: %q is not NAMESPACE/NAME (e.g. ecommerce/process_order)\n", pos[0])
		return 2
	}
	body := map[string]any{"namespace": ns, "name": name, "source_system": "tasker-cli"}
	if *version != "" {
		body["version"] = *version
	}
	if *contextArg != "" {
		raw, err := cli.ReadJSONArg("context", *contextArg)
		if err != nil {
			fmt.Fprintf(stderr, "tasker run: %v\n", err)
			return 2
		}
		body["context"] = raw
	}
	if *idem != "" {
		body["idempotency_key"] = *idem
	}
	if *reason != "" {
		body["reason"] = *reason
	}
	if *initiator != "" {
		body["initiator"] = *initiator
	}
	if len(tags) > 0 {
		body["tags"] = []string(tags)
	}
	c, err := api.Client()
	if err != nil {
		fmt.Fprintf(stderr, "tasker run: %v\n", err)
		return 2
	}
	task, raw, status, err := c.CreateTask(ctx, body)
	if err != nil {
		return cli.ReportError(stderr, "run", err, api.JSON)
	}
	if status == 200 {
		fmt.Fprintf(stderr, "tasker run: the idempotency key %q was used before; this is the existing task\n", *idem)
	}
	if !*watch {
		if api.JSON {
			cli.WriteRaw(stdout, raw)
		} else {
			fmt.Fprintln(stdout, task.ID)
		}
		return 0
	}
	return watchTask(ctx, c, task, raw, "run", *interval, api.JSON, stdout, stderr)
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
