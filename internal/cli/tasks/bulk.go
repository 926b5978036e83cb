package tasks

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/taskerhq/tasker/internal/cli"
	"github.com/taskerhq/tasker/internal/wire"
)

// bulkFlags are the selection flags of `tasker cancel --all` and `tasker
// retry --all` (docs/operating.md, "Bulk actions").
type bulkFlags struct {
	all, dryRun, yes       bool
	namespace, name        string
	statuses, tags         stringList
	corr                   string
	createdFrom, createdTo string
}

func addBulkFlags(fs *flag.FlagSet) *bulkFlags {
	b := &bulkFlags{}
	fs.BoolVar(&b.all, "all", false, "act on every task the filters select instead of one ID")
	fs.BoolVar(&b.dryRun, "dry-run", false, "with --all: count the selected tasks and change nothing")
	fs.BoolVar(&b.yes, "yes", false, "with --all: do not ask for confirmation")
	fs.StringVar(&b.namespace, "namespace", "", "with --all: only this namespace")
	fs.StringVar(&b.name, "name", "", "with --all: only workflows of this name")
	fs.Var(&b.statuses, "status", "with --all: only tasks in this status (repeatable or comma-separated)")
	fs.Var(&b.tags, "tag", "with --all: only tasks carrying this tag, like env:prod (repeatable: every one)")
	fs.StringVar(&b.corr, "correlation-id", "", "with --all: only tasks of this correlation id")
	fs.StringVar(&b.createdFrom, "created-from", "", "with --all: only tasks created at or after this RFC 3339 time")
	fs.StringVar(&b.createdTo, "created-to", "", "with --all: only tasks created before this RFC 3339 time")
	return b
}

func (b *bulkFlags) filter() map[string]any {
	f := map[string]any{}
	for k, v := range map[string]string{"namespace": b.namespace, "name": b.name, "correlation_id": b.corr,
		"created_from": b.createdFrom, "created_to": b.createdTo} {
		if v != "" {
			f[k] = v
		}
	}
	var st []string
	for _, s := range b.statuses {
		st = append(st, strings.Split(s, ",")...)
	}
	if len(st) > 0 {
		f["status"] = st
	}
	if len(b.tags) > 0 {
		f["tag"] = []string(b.tags)
	}
	return f
}

// describe says what the filters select, for the confirmation.
func (b *bulkFlags) describe() string {
	var parts []string
	for _, p := range []struct{ k, v string }{{"namespace", b.namespace}, {"name", b.name}, {"status", b.statuses.String()},
		{"tag", b.tags.String()}, {"correlation id", b.corr}, {"created from", b.createdFrom}, {"created before", b.createdTo}} {
		if p.v != "" {
			parts = append(parts, p.k+" "+p.v)
		}
	}
	if len(parts) == 0 {
		return "every task"
	}
	return strings.Join(parts, ", ")
}

// bulk runs `tasker cancel|retry --all`: a dry run to count, a
// confirmation (unless --yes), then calls of at most 1,000 tasks each,
// printing the progress, until the selection is done.
func bulk(ctx context.Context, cmd string, b *bulkFlags, api *cli.APIFlags, reason string, stdin io.Reader, stdout, stderr io.Writer) int {
	c, err := api.Client()
	if err != nil {
		fmt.Fprintf(stderr, "tasker %s: %v\n", cmd, err)
		return 2
	}
	req := wire.BulkRequest{Filter: b.filter(), Reason: reason, DryRun: true}
	count, raw, err := c.BulkTasks(ctx, cmd, req)
	if err != nil {
		return cli.ReportError(stderr, cmd, err, api.JSON)
	}
	more := ""
	if count.Capped {
		more = " or more"
	}
	if b.dryRun {
		if api.JSON {
			cli.WriteRaw(stdout, raw)
			return 0
		}
		fmt.Fprintf(stdout, "%d%s tasks match (%s); nothing changed (--dry-run)\n", count.Matched, more, b.describe())
		return 0
	}
	if count.Matched == 0 {
		fmt.Fprintf(stdout, "no tasks match (%s)\n", b.describe())
		return 0
	}
	if !b.yes {
		if !isTerminalReader(stdin) {
			fmt.Fprintf(stderr, "tasker %s: refusing to %s %d%s tasks without confirmation: pass --yes\n", cmd, cmd, count.Matched, more)
			return 2
		}
		fmt.Fprintf(stderr, "%s %d%s tasks (%s)? Type yes to go on: ", cmd, count.Matched, more, b.describe())
		line, _ := bufio.NewReader(stdin).ReadString('\n')
		if strings.TrimSpace(line) != "yes" {
			fmt.Fprintln(stderr, "nothing changed")
			return 1
		}
	}
	req.DryRun = false
	total := wire.BulkResult{Action: cmd}
	for {
		r, raw, err := c.BulkTasks(ctx, cmd, req)
		if err != nil {
			fmt.Fprintf(stderr, "tasker %s: stopped after %d tasks changed, %d skipped\n", cmd, total.Changed, total.Skipped)
			return cli.ReportError(stderr, cmd, err, api.JSON)
		}
		total.Matched += r.Matched
		total.Changed += r.Changed
		total.Skipped += r.Skipped
		total.Batches += r.Batches
		if api.JSON {
			cli.WriteRaw(stdout, raw)
		} else if r.NextCursor != nil {
			fmt.Fprintf(stderr, "… %d changed, %d skipped so far\n", total.Changed, total.Skipped)
		}
		if r.NextCursor == nil {
			break
		}
		req.Cursor = *r.NextCursor
	}
	if !api.JSON {
		verb := map[string]string{"cancel": "cancelled", "retry": "retried"}[cmd]
		fmt.Fprintf(stdout, "%d tasks %s, %d skipped (their status had changed), in %d batches\n", total.Changed, verb, total.Skipped, total.Batches)
	}
	return 0
}

func isTerminalReader(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
