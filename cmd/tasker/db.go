package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	neturl "net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/taskerhq/tasker/internal/embeddedpg"
)

const (
	// devDataDir holds the embedded Postgres cluster of local mode,
	// relative to the working directory; it persists across runs.
	devDataDir = ".tasker/pgdata"
	// devDatabase is the database local mode uses on the embedded server.
	devDatabase = "tasker"
	// devPreferredPort keeps the embedded server's URL stable across runs
	// when the port is free; otherwise any free port is used.
	devPreferredPort = 54329
)

// openDevDatabase resolves the database local mode uses. With a databaseURL
// it returns it unchanged (stop does nothing). Without one it starts the
// embedded Postgres in .tasker/pgdata (initialising it on first use, or
// attaching to one already running there), makes sure the "tasker"
// database exists and returns its URL; stop shuts the server down.
// Migrations are the caller's business (migrate.Up).
func openDevDatabase(ctx context.Context, databaseURL string, logger *slog.Logger) (url string, stop func(), err error) {
	if databaseURL != "" {
		return databaseURL, func() {}, nil
	}
	dir, err := filepath.Abs(devDataDir)
	if err != nil {
		return "", nil, err
	}
	port := 0
	if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(devPreferredPort))); err == nil {
		l.Close()
		port = devPreferredPort
	}
	logger.Info("DATABASE_URL not set; using embedded PostgreSQL", "data_dir", dir)
	srv, err := embeddedpg.Start(ctx, embeddedpg.Options{DataDir: dir, Port: port, Logger: logger})
	if err != nil {
		return "", nil, err
	}
	stop = func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Stop(sctx); err != nil {
			logger.Error("stopping embedded PostgreSQL", "err", err)
		}
	}
	if err := srv.EnsureDatabase(ctx, devDatabase); err != nil {
		stop()
		return "", nil, err
	}
	url = srv.URL(devDatabase)
	logger.Info("embedded PostgreSQL ready", "url", redactURL(url),
		"password_file", filepath.Join(srv.DataDir(), embeddedpg.PasswordFileName))
	return url, stop, nil
}

// newCLILogger logs text to w at the level named by LOG_LEVEL (debug, info,
// warn, error; default info).
func newCLILogger(w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	if v := os.Getenv("LOG_LEVEL"); v != "" {
		if err := level.UnmarshalText([]byte(strings.ToUpper(v))); err != nil {
			fmt.Fprintf(w, "ignoring LOG_LEVEL=%q: %v\n", v, err)
		}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// redactURL hides the password of a database URL for logging.
func redactURL(raw string) string {
	u, err := neturl.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
