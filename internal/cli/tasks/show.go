package tasks

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/taskerhq/tasker/internal/apiclient"
	"github.com/taskerhq/tasker/internal/cli"
	"github.com/taskerhq/tasker/internal/domain"
	"github.com/taskerhq/tasker/internal/wire"
)

const showUsage = `usage: tasker show ID [--instances STEP [--state STATE] [--limit N]]

Shows a task: its workflow, status and times, and a table of its steps
(status, attempts, duration, last error). A map step is one row with its
instances counted by state; --instances STEP lists that map step's
instances in index order instead (docs/control-flow.md, "Map").
`

// Show is `tasker show ID`.
func Show(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tasker show", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := cli.AddAPIFlags(fs)
	instances := fs.String("instances", "", "list the instances of this map step")
	state := fs.String("state", "", "with --instances: only the instances in this state (error, in_progress, …)")
	limit := fs.Int("limit", 100, "with --instances: list at most this many")
	fs.Usage = cli.UsageFunc(fs, showUsage)
	id, c, code, ok := oneIDCommand(fs, api, "show", args, stderr)
	if !ok {
		return code
	}
	if *instances != "" || *state != "" {
		if *instances == "" || *limit < 1 {
			fmt.Fprintln(stderr, "tasker show: --state and --limit (at least 1) go with --instances STEP")
			return 2
		}
		return showInstances(ctx, c, id, *instances, *state, *limit, api.JSON, stdout, stderr)
	}
	t, raw, err := c.Task(ctx, id)
	if err != nil {
		return cli.ReportError(stderr, "show", err, api.JSON)
	}
	if api.JSON {
		cli.WriteRaw(stdout, raw)
		return 0
	}
	printTask(stdout, t)
	return 0
}

// oneIDCommand parses a command taking exactly one task id.
func oneIDCommand(fs *flag.FlagSet, api *cli.APIFlags, cmd string, args []string, stderr io.Writer) (string, *apiclient.Client, int, bool) {
	pos, code, ok := cli.ParseInterleaved(fs, args)
	if !ok {
		return "", nil, code, false
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "tasker %s: want exactly one task ID\n", cmd)
		fs.Usage()
		return "", nil, 2, false
	}
	c, err := api.Client()
	if err != nil {
		fmt.Fprintf(stderr, "tasker %s: %v\n", cmd, err)
		return "", nil, 2, false
	}
	return pos[0], c, 0, true
}

func printTask(w io.Writer, t wire.Task) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Task\t%s\n", t.ID)
	fmt.Fprintf(tw, "Workflow\t%s\n", workflowOf(&t))
	fmt.Fprintf(tw, "Status\t%s\n", t.Status)
	if t.BlockedReason != "" {
		// Task concurrency holds it back (docs/control-flow.md).
		fmt.Fprintf(tw, "Held\t%s\n", t.BlockedReason)
	}
	created := fmtTime(t.CreatedAt)
	if t.CompletedAt != nil {
		created += "  completed " + fmtTime(*t.CompletedAt) + " (" + taskDuration(t) + ")"
	} else if !taskFinished(t.Status) {
		created += "  (" + taskDuration(t) + ")"
	}
	fmt.Fprintf(tw, "Created\t%s\n", created)
	switch {
	case t.Initiator != "" && t.SourceSystem != "":
		fmt.Fprintf(tw, "Initiator\t%s (via %s)\n", t.Initiator, t.SourceSystem)
	case t.Initiator != "" || t.SourceSystem != "":
		fmt.Fprintf(tw, "Initiator\t%s\n", t.Initiator+t.SourceSystem)
	}
	if t.Reason != "" {
		fmt.Fprintf(tw, "Reason\t%s\n", t.Reason)
	}
	if len(t.Tags) > 0 {
		fmt.Fprintf(tw, "Tags\t%s\n", strings.Join(t.Tags, ", "))
	}
	if t.IdempotencyKey != nil {
		fmt.Fprintf(tw, "Idempotency key\t%s\n", *t.IdempotencyKey)
	}
	fmt.Fprintf(tw, "Correlation id\t%s\n", t.CorrelationID)
	tw.Flush()
	if len(t.Steps) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tSTATUS\tATTEMPTS\tDURATION\tNOTE")
	for _, s := range t.Steps {
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\n", s.Name, s.Status, s.Attempts, s.MaxAttempts, stepDuration(s),
			stepNote(s, time.Now()))
	}
	tw.Flush()
}

// stepNote is the last column of a step row: what a waiting step waits
// for, why a skipped one was skipped, why a ready one is held back, else
// the last error.
func stepNote(s wire.Step, now time.Time) string {
	if s.Map != nil {
		note := mapText(s.Map)
		if e := errorText(s.LastError); e != "" && domain.StepState(s.Status) == domain.StepError {
			note += "; " + e
		}
		return truncate(note, 160)
	}
	switch domain.StepState(s.Status) {
	case domain.StepWaiting:
		return waitText(s, now)
	case domain.StepSkipped:
		if s.SkipReason != nil {
			return truncate("skipped: "+*s.SkipReason, 100)
		}
		return ""
	}
	if s.BlockedReason != "" { // flow control holds it (docs/control-flow.md, "Flow control")
		return truncate("held: "+s.BlockedReason, 100)
	}
	return truncate(errorText(s.LastError), 100)
}

// showInstances lists up to limit instances of a map step, reading pages of
// GET /v1/tasks/{id}/steps/{step}/instances; with --json it prints them as
// one list in the route's shape.
func showInstances(ctx context.Context, c *apiclient.Client, id, step, state string, limit int, asJSON bool, stdout, stderr io.Writer) int {
	var all wire.MapInstanceList
	cursor := ""
	for {
		page, _, err := c.MapInstances(ctx, id, step, state, cursor, min(limit-len(all.Instances), 500))
		if err != nil {
			return cli.ReportError(stderr, "show", err, asJSON)
		}
		all.Instances = append(all.Instances, page.Instances...)
		all.NextCursor = page.NextCursor
		if page.NextCursor == nil || len(all.Instances) >= limit {
			break
		}
		cursor = *page.NextCursor
	}
	if all.Instances == nil {
		all.Instances = []wire.MapInstance{}
	}
	if asJSON {
		b, _ := json.Marshal(all)
		cli.WriteRaw(stdout, b)
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INDEX\tINSTANCE\tSTATUS\tATTEMPTS\tDURATION\tNOTE")
	for _, in := range all.Instances {
		note := truncate(errorText(in.LastError), 100)
		if in.ResultOmitted {
			note = "result left out (over 4 KiB)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d/%d\t%s\t%s\n", in.Index, in.Name, in.Status, in.Attempts, in.MaxAttempts,
			stepDuration(wire.Step{StartedAt: in.StartedAt, CompletedAt: in.CompletedAt}), note)
	}
	tw.Flush()
	switch {
	case len(all.Instances) == 0 && all.NextCursor == nil:
		fmt.Fprintln(stdout, "no instances"+map[bool]string{true: " in state " + state}[state != ""])
	case all.NextCursor != nil:
		fmt.Fprintf(stdout, "… more instances after these; raise --limit (now %d)\n", limit)
	}
	return 0
}
