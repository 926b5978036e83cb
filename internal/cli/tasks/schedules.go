package tasks

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/taskerhq/tasker/internal/cli"
)

const schedulesUsage = `usage: tasker schedules [list] [--next N]
       tasker schedules pause|resume ID

Lists the schedules of the loaded templates with their next fire times, or
pauses or resumes one (docs/control-flow.md, "Schedules").
`

// Schedules is `tasker schedules [list|pause ID|resume ID]`.
func Schedules(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tasker schedules", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := cli.AddAPIFlags(fs)
	next := fs.Int("next", 3, "next fire times to show (0-100)")
	fs.Usage = cli.UsageFunc(fs, schedulesUsage)
	pos, code, ok := cli.ParseInterleaved(fs, args)
	if !ok {
		return code
	}
	action := "list"
	if len(pos) > 0 {
		action, pos = pos[0], pos[1:]
	}
	switch {
	case action == "list" && len(pos) == 0:
	case (action == "pause" || action == "resume") && len(pos) == 1:
	default:
		fmt.Fprintln(stderr, "tasker schedules: want list, pause ID or resume ID")
		fs.Usage()
		return 2
	}
	if *next < 0 || *next > 100 {
		fmt.Fprintln(stderr, "tasker schedules: --next must be from 0 to 100")
		return 2
	}
	c, err := api.Client()
	if err != nil {
		fmt.Fprintf(stderr, "tasker schedules: %v\n", err)
		return 2
	}
	if action != "list" {
		s, raw, err := c.PauseSchedule(ctx, pos[0], action)
		if err != nil {
			return cli.ReportError(stderr, "schedules", err, api.JSON)
		}
		if api.JSON {
			cli.WriteRaw(stdout, raw)
			return 0
		}
		state := "active, next " + s.NextFireAt
		if s.Paused {
			state = "paused"
		}
		fmt.Fprintf(stdout, "Schedule %d (%s/%s[%d]) %s\n", s.ID, s.Namespace, s.Name, s.Index, state)
		return 0
	}
	l, raw, err := c.Schedules(ctx, *next)
	if err != nil {
		return cli.ReportError(stderr, "schedules", err, api.JSON)
	}
	if api.JSON {
		cli.WriteRaw(stdout, raw)
		return 0
	}
	if len(l.Schedules) == 0 {
		fmt.Fprintln(stdout, "No schedules.")
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tWORKFLOW\tSCHEDULE\tCATCH UP\tSTATE\tNEXT")
	for _, s := range l.Schedules {
		state := "active"
		switch {
		case !s.Loaded:
			state = "not loaded"
		case s.Paused:
			state = "paused"
		}
		fmt.Fprintf(tw, "%d\t%s/%s[%d]\t%s\t%s\t%s\t%s\n", s.ID, s.Namespace, s.Name, s.Index, s.Spec, s.CatchUp, state,
			strings.Join(s.NextFires, " "))
	}
	_ = tw.Flush()
	return 0
}
