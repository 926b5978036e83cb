// Package migrate is `tasker migrate`: it applies the database migrations.
package migrate

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/taskerhq/tasker/internal/cli/devdb"
	dbmigrate "github.com/taskerhq/tasker/internal/migrate"
)

// Run applies pending migrations: `tasker migrate [--database-url URL] [--status]`.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tasker migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	databaseURL := devdb.URLFlag(fs)
	status := fs.Bool("status", false, "show applied and pending migrations; change nothing")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: tasker migrate [--database-url URL] [--status]")
		fmt.Fprintln(stderr, "\nApplies the pending database migrations, each in its own transaction.")
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
		fmt.Fprintf(stderr, "tasker migrate: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}

	url, stop, err := devdb.Connect(ctx, *databaseURL, os.Getenv, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "tasker migrate:", err)
		return devdb.ExitCode(err)
	}
	defer stop()

	if *status {
		st, err := dbmigrate.StatusURL(ctx, url)
		for _, m := range st.Migrations {
			if m.Applied {
				fmt.Fprintf(stdout, "applied  %s  (%s)\n", m.File, m.AppliedAt.Local().Format("2006-01-02 15:04:05"))
			} else {
				fmt.Fprintf(stdout, "pending  %s\n", m.File)
			}
		}
		for _, v := range st.Unknown {
			fmt.Fprintf(stdout, "unknown  %s  (applied by a newer build)\n", v)
		}
		if st.FunctionsCurrent {
			fmt.Fprintln(stdout, "functions current (sql/functions)")
		} else {
			fmt.Fprintln(stdout, "functions pending (sql/functions differ from the database's)")
		}
		if err != nil {
			fmt.Fprintln(stderr, "tasker migrate:", err)
			return 1
		}
		return 0
	}

	res, err := dbmigrate.UpURL(ctx, url)
	for _, f := range res.Applied {
		fmt.Fprintf(stdout, "applied %s\n", f)
	}
	if len(res.Functions) > 0 {
		fmt.Fprintf(stdout, "applied functions %s\n", strings.Join(res.Functions, ", "))
	}
	if err != nil {
		fmt.Fprintln(stderr, "tasker migrate:", err)
		return 1
	}
	if len(res.Applied) == 0 {
		fmt.Fprintf(stdout, "database is up to date (version %s)\n", res.Current)
	} else {
		fmt.Fprintf(stdout, "database is at version %s\n", res.Current)
	}
	return 0
}
