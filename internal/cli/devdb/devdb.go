// Package devdb opens the database of local mode (tasker dev, tasker
// migrate, tasker prune): the given URL, else an embedded PostgreSQL in
// .tasker/pgdata; Connect is the set-up the one-off commands share.
package devdb

import (
	"context"
	"log/slog"
	"net"
	neturl "net/url"
	"path/filepath"
	"strconv"
	"time"

	"github.com/taskerhq/tasker/internal/embeddedpg"
)

const (
	// DataDir holds the embedded Postgres cluster of local mode,
	// relative to the working directory; it persists across runs.
	DataDir = ".tasker/pgdata"
	// devDatabase is the database local mode uses on the embedded server.
	devDatabase = "tasker"
	// devPreferredPort keeps the embedded server's URL stable across runs
	// when the port is free; otherwise any free port is used.
	devPreferredPort = 54329
)

// Open resolves the database local mode uses. With a databaseURL
// it returns it unchanged (stop does nothing). Without one it starts the
// embedded Postgres in .tasker/pgdata (initialising it on first use, or
// attaching to one already running there), makes sure the "tasker"
// database exists and returns its URL; stop shuts the server down.
// Migrations are the caller's business (migrate.Up).
func Open(ctx context.Context, databaseURL string, logger *slog.Logger) (url string, stop func(), err error) {
	if databaseURL != "" {
		return databaseURL, func() {}, nil
	}
	dir, err := filepath.Abs(DataDir)
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

// redactURL hides the password of a database URL for logging.
func redactURL(raw string) string {
	u, err := neturl.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
