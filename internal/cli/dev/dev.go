// Package dev is `tasker dev`: the API, scheduler, sweeper and handlers in
// one process, on an embedded PostgreSQL unless given a database.
package dev

import (
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/taskerhq/tasker/handlers"
	"github.com/taskerhq/tasker/internal/api"
	"github.com/taskerhq/tasker/internal/auth"
	"github.com/taskerhq/tasker/internal/cli/devdb"
	"github.com/taskerhq/tasker/internal/devserver"
	"github.com/taskerhq/tasker/internal/examples"
	"github.com/taskerhq/tasker/internal/stephandler"
	"github.com/taskerhq/tasker/internal/telemetry"
	"github.com/taskerhq/tasker/templates"
)

// Run is `tasker dev`: it serves the API with the scheduler, sweeper and
// handlers in-process until ctx is done.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("tasker dev", flag.ContinueOnError)
	fset.SetOutput(stderr)
	addr := fset.String("addr", envOr("TASKER_ADDR", "127.0.0.1:8080"), "listen address (TASKER_ADDR)")
	tplDir := fset.String("templates", os.Getenv("TASKER_TEMPLATES_DIR"), "template directory (TASKER_TEMPLATES_DIR; default ./templates if present, else the built-in examples)")
	dbURL := fset.String("database-url", os.Getenv("DATABASE_URL"), "Postgres URL (DATABASE_URL; default: embedded Postgres in .tasker/)")
	maxInFlight := fset.Int("max-in-flight", envInt("TASKER_MAX_IN_FLIGHT", 1000), "cap on in-flight steps (TASKER_MAX_IN_FLIGHT; 0 = none)")
	workers := fset.Int("workers", 64, "handler worker pool size")
	sweep := fset.Duration("sweep-interval", 2*time.Second, "how often the sweep runs")
	if err := fset.Parse(args); err != nil {
		return 2
	}
	logger := newLogger(stderr)

	tfs, tsrc, err := templateSource(*tplDir)
	if err != nil {
		fmt.Fprintf(stderr, "tasker dev: %v\n", err)
		return 1
	}
	verifier, err := auth.FromEnv(ctx, os.Getenv, logger)
	if err != nil {
		fmt.Fprintf(stderr, "tasker dev: auth: %v\n", err)
		return 1
	}
	if verifier == nil {
		logger.Warn("AUTH IS OFF: the API accepts requests without a token; set TASKER_AUTH_HS256_SECRET (≥ 32 bytes) or TASKER_AUTH_JWKS_URL to turn it on")
	}
	// tasker.http may call loopback and private addresses locally unless
	// TASKER_HTTP_DENY_PRIVATE=true.
	httpPolicy, err := stephandler.HTTPPolicyFromEnv(os.Getenv, false)
	if err != nil {
		fmt.Fprintf(stderr, "tasker dev: %v\n", err)
		return 1
	}
	reg := stephandler.NewRegistry(stephandler.WithHTTPPolicy(httpPolicy))
	if err := examples.Register(reg); err != nil {
		fmt.Fprintf(stderr, "tasker dev: %v\n", err)
		return 1
	}
	// The packages scaffolded by `tasker new` (handlers/registry_gen.go).
	if err := handlers.Register(reg); err != nil {
		fmt.Fprintf(stderr, "tasker dev: %v\n", err)
		return 1
	}
	// Tracing is off unless OTEL_TRACES_EXPORTER asks for it (otlp, console).
	// The server starts and stops it (docs/architecture.md, "Services").
	tracing, err := telemetry.NewTracing(ctx, "tasker-dev")
	if err != nil {
		fmt.Fprintf(stderr, "tasker dev: %v\n", err)
		return 1
	}
	url, stopDB, err := devdb.Open(ctx, *dbURL, logger)
	if err != nil {
		fmt.Fprintf(stderr, "tasker dev: %v\n", err)
		return 1
	}
	defer stopDB()
	srv, err := devserver.Start(ctx, devserver.Options{
		DatabaseURL: url, Templates: tfs, Registry: reg, Addr: *addr, Auth: verifier, Logger: logger,
		AllowedHosts: api.ParseAllowedHosts(os.Getenv(api.EnvAllowedHosts)),
		MaxInFlight:  *maxInFlight, Workers: *workers, SweepInterval: *sweep, Tracing: tracing,
	})
	if err != nil {
		fmt.Fprintf(stderr, "tasker dev: %v\n", err)
		return 1
	}
	logger.Info("tasker dev is running", "url", "http://"+srv.Addr, "templates", tsrc)
	fmt.Fprintf(stdout, "Tasker is running at http://%s (templates: %s). Press Ctrl-C to stop.\n", srv.Addr, tsrc)
	<-ctx.Done()
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Close(sctx); err != nil {
		logger.Warn("shutdown", "error", err)
	}
	return 0
}

// templateSource picks the template directory: the flag or env, else
// ./templates when it exists, else the examples built into the binary.
func templateSource(dir string) (fs.FS, string, error) {
	if dir == "" {
		if st, err := os.Stat("templates"); err == nil && st.IsDir() {
			dir = "templates"
		}
	}
	if dir == "" {
		return templates.FS, "built-in examples", nil
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, "", fmt.Errorf("templates: %w", err)
	}
	if !st.IsDir() {
		return nil, "", fmt.Errorf("templates: %s is not a directory", dir)
	}
	return os.DirFS(dir), dir, nil
}

func newLogger(w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	if err := level.UnmarshalText([]byte(os.Getenv("LOG_LEVEL"))); err != nil {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func envInt(key string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(key)); err == nil {
		return n
	}
	return def
}
