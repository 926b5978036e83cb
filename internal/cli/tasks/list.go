package tasks

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/taskerhq/tasker/internal/apiclient"
	"github.com/taskerhq/tasker/internal/cli"
	"github.com/taskerhq/tasker/internal/wire"
)

const tasksUsage = `usage: tasker tasks [--namespace N] [--name N] [--status S[,S]] [--tag K:V]... [--correlation-id C] [--limit N] [--all | --cursor C]

Lists tasks, newest first: one page (--limit, default 20, at most 100), or
every page with --all.
`

// List is `tasker tasks`.
func List(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tasker tasks", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := cli.AddAPIFlags(fs)
	ns := fs.String("namespace", "", "only this namespace")
	name := fs.String("name", "", "only workflows of this name")
	var statuses stringList
	fs.Var(&statuses, "status", "only tasks in this status (repeatable or comma-separated: pending, in_progress, complete, error, cancelled, resolved_manually)")
	var tags stringList
	fs.Var(&tags, "tag", "only tasks carrying this tag, like env:prod (repeatable: every one)")
	corr := fs.String("correlation-id", "", "only tasks created under this correlation id")
	limit := fs.Int("limit", 0, "tasks per page (1-100; default 20)")
	all := fs.Bool("all", false, "follow next_cursor and list every matching task")
	cursor := fs.String("cursor", "", "start after this cursor (the next_cursor of a previous page)")
	fs.Usage = cli.UsageFunc(fs, tasksUsage)
	pos, code, ok := cli.ParseInterleaved(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "tasker tasks: unexpected argument %q\n", pos[0])
		return 2
	}
	if *limit < 0 || *limit > 100 {
		fmt.Fprintln(stderr, "tasker tasks: --limit must be from 1 to 100")
		return 2
	}
	c, err := api.Client()
	if err != nil {
		fmt.Fprintf(stderr, "tasker tasks: %v\n", err)
		return 2
	}
	q := listQuery(*ns, *name, statuses, *limit, *cursor)
	for _, t := range tags {
		q.Add("tag", t)
	}
	if *corr != "" {
		q.Set("correlation_id", *corr)
	}
	tasks, rawTasks, next, err := fetchTasks(ctx, c, q, *all)
	if err != nil {
		return cli.ReportError(stderr, "tasks", err, api.JSON)
	}
	if api.JSON {
		if rawTasks == nil {
			rawTasks = []json.RawMessage{}
		}
		out, _ := json.Marshal(struct {
			Tasks      []json.RawMessage `json:"tasks"`
			NextCursor *string           `json:"next_cursor"`
		}{rawTasks, next})
		cli.WriteRaw(stdout, out)
		return 0
	}
	printTaskList(stdout, tasks, next)
	return 0
}

// listQuery is the query of GET /v1/tasks for the flags.
func listQuery(ns, name string, statuses []string, limit int, cursor string) url.Values {
	q := url.Values{}
	if ns != "" {
		q.Set("namespace", ns)
	}
	if name != "" {
		q.Set("name", name)
	}
	if len(statuses) > 0 {
		q.Set("status", strings.Join(statuses, ","))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	return q
}

// fetchTasks lists one page of tasks, or with all every page. It returns
// the tasks decoded and as the API sent them, and the next cursor (nil
// with all).
func fetchTasks(ctx context.Context, c *apiclient.Client, q url.Values, all bool) ([]wire.Task, []json.RawMessage, *string, error) {
	var tasks []wire.Task
	var rawTasks []json.RawMessage
	var next *string
	for {
		page, raw, err := c.ListTasks(ctx, q)
		if err != nil {
			return nil, nil, nil, err
		}
		var rawPage struct {
			Tasks []json.RawMessage `json:"tasks"`
		}
		_ = json.Unmarshal(raw, &rawPage)
		tasks = append(tasks, page.Tasks...)
		rawTasks = append(rawTasks, rawPage.Tasks...)
		next = page.NextCursor
		if !all || next == nil || *next == "" {
			break
		}
		q.Set("cursor", *next)
	}
	if all {
		next = nil
	}
	return tasks, rawTasks, next, nil
}

// printTaskList prints tasks as a table, and how to get more when next is
// a cursor.
func printTaskList(w io.Writer, tasks []wire.Task, next *string) {
	if len(tasks) == 0 {
		fmt.Fprintln(w, "no tasks")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tWORKFLOW\tSTATUS\tCREATED\tDURATION")
	for _, t := range tasks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, workflowOf(&t), t.Status, fmtTime(t.CreatedAt), taskDuration(t))
	}
	tw.Flush()
	if next != nil && *next != "" {
		fmt.Fprintf(w, "(more: add --all, or --cursor %s)\n", *next)
	}
}

func fmtTime(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func taskDuration(t wire.Task) string {
	a, err := time.Parse(time.RFC3339Nano, t.CreatedAt)
	if err != nil {
		return ""
	}
	if t.CompletedAt == nil {
		if taskFinished(t.Status) {
			return ""
		}
		return fmtDuration(time.Since(a)) + " so far"
	}
	b, err := time.Parse(time.RFC3339Nano, *t.CompletedAt)
	if err != nil {
		return ""
	}
	return fmtDuration(b.Sub(a))
}
