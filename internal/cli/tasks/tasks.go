// Package tasks holds the tasker commands that work on tasks through the
// API: run, tasks, show, graph, cancel, retry and resolve. They talk to the
// server only through internal/apiclient.
package tasks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/taskerhq/tasker/internal/apiclient"
	"github.com/taskerhq/tasker/internal/cli"
	"github.com/taskerhq/tasker/internal/wire"
)

func workflowOf(t *wire.Task) string {
	return t.Namespace + "/" + t.Name + "@" + t.Version
}

// Task statuses that end a task (error may be retried by an operator, but
// nothing moves it on by itself).
func taskFinished(status string) bool {
	switch status {
	case "complete", "error", "cancelled", "resolved_manually":
		return true
	}
	return false
}

func taskSucceeded(status string) bool { return status == "complete" || status == "resolved_manually" }

// stepDone reports whether a step counts as done for the progress bar.
func stepDone(status string) bool {
	return status == "complete" || status == "resolved_manually"
}

// ---- run ----

const runUsage = `usage: tasker run NAMESPACE/NAME [--version V] [--context JSON|@file] [--idempotency-key K] [--watch]

Creates a task of the workflow NAMESPACE/NAME (the highest version unless
--version says otherwise) and prints its id. With --watch it follows the task
until it finishes, showing each step's progress, and exits 0 only when the
task completed; otherwise it names the failing steps and their last error on
stderr and exits 1.
`

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
	interval := fs.Duration("interval", 250*time.Millisecond, "how often --watch polls")
	fs.Usage = cli.UsageFunc(fs, runUsage)
	pos, code, ok := cli.ParseInterleaved(fs, args)
	if !ok {
		return code
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

// ---- watch ----

// watchTask polls the task until it finishes, rendering progress on stdout,
// and returns the exit status: 0 when it completed, 1 otherwise.
func watchTask(ctx context.Context, c *apiclient.Client, task wire.Task, raw []byte, cmd string, interval time.Duration, asJSON bool,
	stdout, stderr io.Writer) int {
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	var pr *progress
	if !asJSON {
		pr = newProgress(stdout, task)
	}
	failures := 0
	for {
		if pr != nil {
			pr.update(task)
		}
		if taskFinished(task.Status) {
			break
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(stderr, "tasker %s: stopped watching; task %s is %s and carries on (tasker show %s)\n",
				cmd, task.ID, task.Status, task.ID)
			return 1
		case <-time.After(interval):
		}
		next, data, err := c.Task(ctx, task.ID)
		if err != nil {
			if ctx.Err() != nil {
				continue // reported above
			}
			var ce *apiclient.ConnError
			if errors.As(err, &ce) && failures < 20 { // e.g. the server restarting: keep trying for a while
				failures++
				continue
			}
			return cli.ReportError(stderr, cmd, err, asJSON)
		}
		failures = 0
		task, raw = next, data
	}
	if asJSON {
		cli.WriteRaw(stdout, raw)
	} else {
		printSummary(stdout, task)
	}
	if taskSucceeded(task.Status) {
		return 0
	}
	reportFailedSteps(stderr, cmd, task)
	return 1
}

// reportFailedSteps names the failing steps of a task that did not complete.
func reportFailedSteps(stderr io.Writer, cmd string, task wire.Task) {
	fmt.Fprintf(stderr, "tasker %s: task %s ended %s\n", cmd, task.ID, task.Status)
	var notRun []string
	for _, s := range task.Steps {
		msg := errorText(s.LastError)
		switch {
		case s.Status == "error":
			if msg == "" {
				msg = "(no error recorded)"
			}
			fmt.Fprintf(stderr, "  step %s failed after %d/%d attempts: %s\n", s.Name, s.Attempts, s.MaxAttempts, msg)
		case s.Status == "complete" || s.Status == "resolved_manually":
		case msg != "":
			fmt.Fprintf(stderr, "  step %s %s after %d/%d attempts; last error: %s\n", s.Name, s.Status, s.Attempts, s.MaxAttempts, msg)
		default:
			notRun = append(notRun, s.Name)
		}
	}
	if len(notRun) > 0 {
		fmt.Fprintf(stderr, "  not run: %s\n", strings.Join(notRun, ", "))
	}
	if task.Status == "error" {
		fmt.Fprintf(stderr, "  next: tasker retry %s, or tasker resolve %s STEP [--result JSON]\n", task.ID, task.ID)
	}
}

// errorText renders a step's last_error: the handler error envelope
// ({message, permanent, retry_after_seconds, code}) as "[code] message
// (permanent)", anything else as compact JSON.
func errorText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var he struct {
		Message   string `json:"message"`
		Code      string `json:"code"`
		Permanent bool   `json:"permanent"`
	}
	if json.Unmarshal(raw, &he) == nil && he.Message != "" {
		s := he.Message
		if he.Code != "" {
			s = "[" + he.Code + "] " + s
		}
		if he.Permanent {
			s += " (permanent)"
		}
		return s
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return compactJSON(raw, 200)
}

func compactJSON(raw json.RawMessage, max int) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		b.Reset()
		b.Write(raw)
	}
	return truncate(b.String(), max)
}

func truncate(s string, max int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if max > 0 && len([]rune(s)) > max {
		r := []rune(s)
		return string(r[:max-1]) + "…"
	}
	return s
}

// progress renders a watched task: a bar and one line per step, redrawn in
// place on a terminal, or appended lines (one per change) otherwise.
type progress struct {
	w      io.Writer
	tty    bool
	color  bool
	lines  int               // lines drawn last time (tty)
	seen   map[string]string // step -> last rendered "state/attempts" (plain)
	done   int               // scratch: steps reported done (plain)
	status string
	start  time.Time
}

func newProgress(w io.Writer, t wire.Task) *progress {
	tty := isTerminal(w)
	p := &progress{w: w, tty: tty, color: tty && os.Getenv("NO_COLOR") == "", seen: map[string]string{}, start: time.Now()}
	fmt.Fprintf(w, "Task %s  %s\n", t.ID, workflowOf(&t))
	return p
}

// isTerminal reports whether w is a character device (a terminal) and the
// terminal can move the cursor.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	return os.Getenv("TERM") != "dumb"
}

func (p *progress) update(t wire.Task) {
	if p.tty {
		p.redraw(t)
		return
	}
	// Plain output: one line per step change, counting done steps as
	// they are reported.
	width := 0
	for _, s := range t.Steps {
		width = max(width, len(s.Name))
		if stepDone(p.seenState(s.Name)) {
			p.done++
		}
	}
	done := p.done
	p.done = 0
	for _, s := range t.Steps {
		key := s.Status + "/" + strconv.Itoa(s.Attempts)
		prev := p.seen[s.Name]
		if prev == key {
			continue
		}
		p.seen[s.Name] = key
		if prev == "" && s.Status == "pending" {
			continue // nothing to say yet
		}
		if stepDone(s.Status) && !stepDone(p.stateOf(prev)) {
			done++
		}
		fmt.Fprintf(p.w, "[%d/%d] %s\n", done, len(t.Steps), stepLine(s, true, width))
	}
	if t.Status != p.status {
		p.status = t.Status
		if t.Status == "pending" || t.Status == "in_progress" {
			fmt.Fprintf(p.w, "[%d/%d] task %s\n", done, len(t.Steps), t.Status)
		}
	}
}

// seenState is the state last reported for step (plain output).
func (p *progress) seenState(step string) string { return p.stateOf(p.seen[step]) }

func (p *progress) stateOf(key string) string {
	state, _, _ := strings.Cut(key, "/")
	return state
}

func (p *progress) redraw(t wire.Task) {
	var b strings.Builder
	b.WriteString("\x1b[?7l") // no line wrap while drawing: a long line must not push the block down
	if p.lines > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.lines) // back to the top of the block
	}
	done := 0
	width := 0
	for _, s := range t.Steps {
		if stepDone(s.Status) {
			done++
		}
		width = max(width, len(s.Name))
	}
	b.WriteString("\x1b[2K" + bar(done, len(t.Steps), 30) + fmt.Sprintf(" %d/%d steps  %s  %s\n", done, len(t.Steps),
		p.paint(t.Status, t.Status), fmtDuration(time.Since(p.start))))
	for _, s := range t.Steps {
		b.WriteString("\x1b[2K  " + p.stepLineTTY(s, width) + "\n")
	}
	b.WriteString("\x1b[?7h")
	p.lines = 1 + len(t.Steps)
	io.WriteString(p.w, b.String())
}

func bar(done, total, width int) string {
	if total <= 0 {
		return "[" + strings.Repeat("-", width) + "]"
	}
	n := done * width / total
	return "[" + strings.Repeat("#", n) + strings.Repeat("-", width-n) + "]"
}

// stepSymbol is a one-character picture of a step state.
func stepSymbol(state string) string {
	switch state {
	case "complete":
		return "✓"
	case "resolved_manually":
		return "✓"
	case "error":
		return "✗"
	case "in_progress":
		return "▶"
	case "waiting_for_retry":
		return "↻"
	case "cancelled":
		return "-"
	}
	return "·"
}

var stateColors = map[string]string{
	"complete": "32", "resolved_manually": "32", "error": "31", "cancelled": "90",
	"in_progress": "36", "waiting_for_retry": "33",
}

func (p *progress) paint(state, text string) string {
	if !p.color {
		return text
	}
	if c, ok := stateColors[state]; ok {
		return "\x1b[" + c + "m" + text + "\x1b[0m"
	}
	return text
}

func (p *progress) stepLineTTY(s wire.Step, width int) string {
	line := stepLine(s, true, width)
	return p.paint(s.Status, line)
}

// stepLine describes a step's state: symbol, name, state, attempts,
// duration, and the last error when it failed.
func stepLine(s wire.Step, padded bool, width int) string {
	name := s.Name
	if padded {
		name = fmt.Sprintf("%-*s", width, s.Name)
	}
	status := s.Status
	if padded {
		status = fmt.Sprintf("%-17s", s.Status)
	}
	parts := []string{stepSymbol(s.Status) + " " + name, status}
	if s.Attempts > 0 {
		parts = append(parts, fmt.Sprintf("attempt %d/%d", s.Attempts, s.MaxAttempts))
	}
	if d := stepDuration(s); d != "" {
		parts = append(parts, d)
	}
	if s.Status == "waiting_for_retry" && s.NextRetryAt != nil {
		if at, err := time.Parse(time.RFC3339Nano, *s.NextRetryAt); err == nil {
			parts = append(parts, "retry in "+fmtDuration(time.Until(at)))
		}
	}
	if s.Status == "error" || s.Status == "waiting_for_retry" {
		if e := errorText(s.LastError); e != "" {
			parts = append(parts, truncate(e, 100))
		}
	}
	out := strings.Join(parts, "  ")
	return strings.TrimRight(out, " ")
}

// stepDuration is completed-started, or the time running so far.
func stepDuration(s wire.Step) string {
	if s.StartedAt == nil {
		return ""
	}
	start, err := time.Parse(time.RFC3339Nano, *s.StartedAt)
	if err != nil {
		return ""
	}
	end := time.Now()
	if s.CompletedAt != nil {
		if t, err := time.Parse(time.RFC3339Nano, *s.CompletedAt); err == nil {
			end = t
		}
	} else if s.Status != "in_progress" {
		return ""
	}
	return fmtDuration(end.Sub(start))
}

func fmtDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Millisecond:
		return "0ms"
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	default:
		return d.Round(time.Second).String()
	}
}

// printSummary ends a watch: the final status and the results of the last
// steps (those nothing depends on).
func printSummary(w io.Writer, t wire.Task) {
	took := ""
	if t.CompletedAt != nil {
		if a, err := time.Parse(time.RFC3339Nano, t.CreatedAt); err == nil {
			if b, err := time.Parse(time.RFC3339Nano, *t.CompletedAt); err == nil {
				took = " in " + fmtDuration(b.Sub(a))
			}
		}
	}
	fmt.Fprintf(w, "Task %s %s%s\n", t.ID, t.Status, took)
	if !taskSucceeded(t.Status) {
		return
	}
	parent := map[string]bool{}
	for _, s := range t.Steps {
		for _, d := range s.DependsOn {
			parent[d] = true
		}
	}
	var leaves []wire.Step
	for _, s := range t.Steps {
		if !parent[s.Name] && len(s.Result) > 0 && string(s.Result) != "null" {
			leaves = append(leaves, s)
		}
	}
	if len(leaves) == 0 {
		return
	}
	fmt.Fprintln(w, "Result:")
	for _, s := range leaves {
		fmt.Fprintf(w, "  %s: %s\n", s.Name, compactJSON(s.Result, 300))
	}
}

// ---- tasks ----

const tasksUsage = `usage: tasker tasks [--namespace N] [--name N] [--status S[,S]] [--limit N] [--all | --cursor C]

Lists tasks, newest first: one page (--limit, default 20, at most 100), or
every page with --all.
`

func List(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tasker tasks", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := cli.AddAPIFlags(fs)
	ns := fs.String("namespace", "", "only this namespace")
	name := fs.String("name", "", "only workflows of this name")
	var statuses stringList
	fs.Var(&statuses, "status", "only tasks in this status (repeatable or comma-separated: pending, in_progress, complete, error, cancelled, resolved_manually)")
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
	q := url.Values{}
	if *ns != "" {
		q.Set("namespace", *ns)
	}
	if *name != "" {
		q.Set("name", *name)
	}
	if len(statuses) > 0 {
		q.Set("status", strings.Join(statuses, ","))
	}
	if *limit > 0 {
		q.Set("limit", strconv.Itoa(*limit))
	}
	if *cursor != "" {
		q.Set("cursor", *cursor)
	}
	var tasks []wire.Task
	var rawTasks []json.RawMessage
	var next *string
	for {
		page, raw, err := c.ListTasks(ctx, q)
		if err != nil {
			return cli.ReportError(stderr, "tasks", err, api.JSON)
		}
		var rawPage struct {
			Tasks []json.RawMessage `json:"tasks"`
		}
		_ = json.Unmarshal(raw, &rawPage)
		tasks = append(tasks, page.Tasks...)
		rawTasks = append(rawTasks, rawPage.Tasks...)
		next = page.NextCursor
		if !*all || next == nil || *next == "" {
			break
		}
		q.Set("cursor", *next)
	}
	if *all {
		next = nil
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
	if len(tasks) == 0 {
		fmt.Fprintln(stdout, "no tasks")
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tWORKFLOW\tSTATUS\tCREATED\tDURATION")
	for _, t := range tasks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, workflowOf(&t), t.Status, fmtTime(t.CreatedAt), taskDuration(t))
	}
	tw.Flush()
	if next != nil && *next != "" {
		fmt.Fprintf(stdout, "(more: add --all, or --cursor %s)\n", *next)
	}
	return 0
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

// ---- show ----

const showUsage = `usage: tasker show ID

Shows a task: its workflow, status and times, and a table of its steps
(status, attempts, duration, last error).
`

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
	fmt.Fprintln(tw, "STEP\tSTATUS\tATTEMPTS\tDURATION\tLAST ERROR")
	for _, s := range t.Steps {
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\n", s.Name, s.Status, s.Attempts, s.MaxAttempts, stepDuration(s),
			truncate(errorText(s.LastError), 100))
	}
	tw.Flush()
}

// ---- graph ----

const graphUsage = `usage: tasker graph ID [--format mermaid|dot|svg|json]

Prints the task's step graph coloured by state (default: Mermaid).
`

func Graph(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tasker graph", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := cli.AddAPIFlags(fs)
	format := fs.String("format", "", "mermaid, dot, svg or json (default mermaid; json with --json)")
	fs.Usage = cli.UsageFunc(fs, graphUsage)
	id, c, code, ok := oneIDCommand(fs, api, "graph", args, stderr)
	if !ok {
		return code
	}
	f := *format
	if f == "" {
		f = "mermaid"
		if api.JSON {
			f = "json"
		}
	}
	switch f {
	case "mermaid", "dot", "svg", "json":
	default:
		fmt.Fprintf(stderr, "tasker graph: --format %q: want mermaid, dot, svg or json\n", f)
		return 2
	}
	data, err := c.TaskGraph(ctx, id, f)
	if err != nil {
		return cli.ReportError(stderr, "graph", err, api.JSON)
	}
	cli.WriteRaw(stdout, data)
	return 0
}

// ---- cancel, retry ----

const cancelUsage = `usage: tasker cancel ID [--reason TEXT]

Cancels a pending, running or failed task: steps not yet finished are
cancelled.
`

const retryUsage = `usage: tasker retry ID [--reason TEXT] [--watch]

Retries a task in error: its failed steps go back to pending and run again.
`

func Cancel(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return operate(ctx, "cancel", cancelUsage, args, stdout, stderr)
}

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
	fs.Usage = cli.UsageFunc(fs, usage)
	id, c, code, ok := oneIDCommand(fs, api, cmd, args, stderr)
	if !ok {
		return code
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
			if s.Status == "pending" || s.Status == "in_progress" || s.Status == "waiting_for_retry" {
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

// ---- resolve ----

const resolveUsage = `usage: tasker resolve ID STEP [--result JSON|@file] [--reason TEXT]

Marks a failed step resolved by an operator, optionally with the result its
dependents receive; a task in error then carries on.
`

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
