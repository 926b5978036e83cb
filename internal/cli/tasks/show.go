package tasks

import (
	"context"
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

const showUsage = `usage: tasker show ID

Shows a task: its workflow, status and times, and a table of its steps
(status, attempts, duration, last error).
`

// Show is `tasker show ID`.
func Show(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tasker show", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := cli.AddAPIFlags(fs)
	fs.Usage = cli.UsageFunc(fs, showUsage)
	id, c, code, ok := oneIDCommand(fs, api, "show", args, stderr)
	if !ok {
		return code
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
