// Package prune is `tasker prune`: it deletes finished tasks older than a
// cutoff, in small batches, optionally exporting them first
// (docs/operating.md, "Retention"). The sweep does the same continuously
// with TASKER_RETENTION_DAYS; this is for a one-off cleanup.
package prune

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/internal/cli/devdb"
	"github.com/taskerhq/tasker/internal/config"
	"github.com/taskerhq/tasker/internal/retention"
	"github.com/taskerhq/tasker/internal/store"
)

const usage = `usage: tasker prune --older-than AGE [--dry-run] [--export DIR|s3://bucket/prefix] [--batch N] [--database-url URL]

Deletes tasks that finished (complete, error, cancelled, resolved_manually)
more than AGE ago, with their steps and transitions, oldest first, in
batches of --batch tasks, each in its own transaction. AGE is days (90d) or
a Go duration (36h). --export writes each batch as JSON lines first.
`

// ParseAge reads 90d (days) or a Go duration; it must be positive.
func ParseAge(s string) (time.Duration, error) {

	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 1 || days > retention.MaxDays {
			return 0, fmt.Errorf("--older-than %q: want days like 90d (1 to %d) or a duration like 36h", s, retention.MaxDays)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--older-than %q: want days like 90d or a positive duration like 36h", s)
	}
	return d, nil
}

// Run is `tasker prune`.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tasker prune", flag.ContinueOnError)
	fs.SetOutput(stderr)
	databaseURL := devdb.URLFlag(fs)
	olderThan := fs.String("older-than", "", "delete tasks finished longer ago than this: 90d or 36h (required)")
	dryRun := fs.Bool("dry-run", false, "count what would be deleted; change nothing")
	export := fs.String("export", "", "export each batch first: a directory, or s3://bucket/prefix")
	batch := fs.Int("batch", retention.DefaultBatch, fmt.Sprintf("tasks per transaction, 1 to %d", retention.MaxBatch))
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fmt.Fprintln(stderr, "\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tasker prune: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *olderThan == "" {
		fmt.Fprintln(stderr, "tasker prune: --older-than is required (like 90d)")
		return 2
	}
	age, err := ParseAge(*olderThan)
	if err == nil {
		err = config.CheckInt("--batch", *batch, 1, retention.MaxBatch)
	}
	if err != nil {
		fmt.Fprintln(stderr, "tasker prune:", err)
		return 2
	}
	target, err := retention.NewTarget(*export, func() (retention.S3API, error) {
		cfg, err := awsconfig.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, err
		}
		return s3.NewFromConfig(cfg), nil
	})
	if err != nil {
		fmt.Fprintln(stderr, "tasker prune:", err)
		return 2
	}
	url, stop, err := devdb.Connect(ctx, *databaseURL, os.Getenv, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "tasker prune:", err)
		return devdb.ExitCode(err)
	}
	defer stop()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		fmt.Fprintln(stderr, "tasker prune:", err)
		return 1
	}
	defer pool.Close()
	st, err := store.New(pool)
	if err != nil {
		fmt.Fprintln(stderr, "tasker prune:", err)
		return 1
	}
	before := time.Now().Add(-age)
	if *dryRun {
		n, err := st.PruneCount(ctx, before)
		if err != nil {
			fmt.Fprintln(stderr, "tasker prune:", err)
			return 1
		}
		more := ""
		if n >= store.PruneCountCap {
			more = " or more"
		}
		fmt.Fprintf(stdout, "%d%s tasks finished before %s would be deleted; nothing changed (--dry-run)\n",
			n, more, before.UTC().Format(time.RFC3339))
		return 0
	}
	var exp func(context.Context, []json.RawMessage) error
	if target != nil {
		exp = target.Export
	}
	total := 0
	for {
		ids, err := st.Prune(ctx, before, *batch, exp)
		total += len(ids)
		if err != nil {
			fmt.Fprintf(stderr, "tasker prune: stopped after %d tasks: %v\n", total, err)
			return 1
		}
		if len(ids) == 0 {
			break
		}
		if total%(10*(*batch)) < *batch {
			fmt.Fprintf(stderr, "… %d deleted\n", total)
		}
	}
	fmt.Fprintf(stdout, "%d tasks finished before %s deleted\n", total, before.UTC().Format(time.RFC3339))
	return 0
}
