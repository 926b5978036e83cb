package devdb

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/taskerhq/tasker/internal/config"
)

// The set-up the one-off database commands share (tasker migrate, tasker
// prune): the --database-url flag, $DATABASE_URL, LOG_LEVEL and Open.

// ErrUsage marks a Connect error the caller made (a bad LOG_LEVEL): exit
// status 2, not 1.
var ErrUsage = errors.New("usage")

// URLFlag adds --database-url to fs. Connect resolves its default after
// parsing, so --help never prints a password from the environment.
func URLFlag(fs *flag.FlagSet) *string {
	return fs.String("database-url", "",
		"Postgres URL (default $DATABASE_URL; when both are empty, the embedded Postgres in "+DataDir+")")
}

// Connect returns the database a one-off command works on: flagURL, else
// $DATABASE_URL, else the embedded PostgreSQL of local mode (Open), with a
// logger at LOG_LEVEL writing to stderr. stop shuts down what it started.
// A LOG_LEVEL that is not a level is ErrUsage (wrapped), naming it.
func Connect(ctx context.Context, flagURL string, getenv func(string) string, stderr io.Writer) (url string, stop func(), err error) {
	if flagURL == "" {
		flagURL = getenv("DATABASE_URL")
	}
	level, err := config.LogLevel(getenv)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	return Open(ctx, flagURL, logger)
}

// ExitCode is the exit status of a command whose Connect failed with err.
func ExitCode(err error) int {
	if errors.Is(err, ErrUsage) {
		return 2
	}
	return 1
}
