// Package dev is `tasker dev`: the API, scheduler, sweeper and handlers in
// one process, on an embedded PostgreSQL unless given a database.
package dev

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taskerhq/tasker/handlers"
	"github.com/taskerhq/tasker/internal/api"
	"github.com/taskerhq/tasker/internal/auth"
	"github.com/taskerhq/tasker/internal/cli/devdb"
	"github.com/taskerhq/tasker/internal/config"
	"github.com/taskerhq/tasker/internal/devserver"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/examples"
	"github.com/taskerhq/tasker/internal/invoke/lambdalocal"
	"github.com/taskerhq/tasker/internal/retention"
	"github.com/taskerhq/tasker/internal/telemetry"
	"github.com/taskerhq/tasker/sdk"
	"github.com/taskerhq/tasker/templates"
)

// Run is `tasker dev`: it serves the API with the scheduler, sweeper and
// handlers in-process until ctx is done.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseOptions(args, os.Getenv, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "tasker dev: %v\n", err)
		return 2
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: o.logLevel}))

	tfs, tsrc, err := templateSource(o.tplDir)
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
	httpPolicy, err := sdk.HTTPPolicyFromEnv(os.Getenv, false)
	if err != nil {
		fmt.Fprintf(stderr, "tasker dev: %v\n", err)
		return 1
	}
	reg := sdk.NewRegistry(sdk.WithHTTPPolicy(httpPolicy))
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
	// Retention (docs/operating.md, "Retention"): TASKER_RETENTION_*.
	ret, err := retention.FromEnv(os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "tasker dev: %v\n", err)
		return 2
	}
	exporter, err := retention.NewTarget(ret.Export, func() (retention.S3API, error) {
		cfg, err := awsconfig.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, err
		}
		return s3.NewFromConfig(cfg), nil
	})
	if err != nil {
		fmt.Fprintf(stderr, "tasker dev: %v\n", err)
		return 2
	}
	lambdas, lsrc, err := lambdaSource(o.lambdasFile, logger)
	if err != nil {
		fmt.Fprintf(stderr, "tasker dev: %v\n", err)
		return 1
	}
	url, stopDB, err := devdb.Open(ctx, o.dbURL, logger)
	if err != nil {
		fmt.Fprintf(stderr, "tasker dev: %v\n", err)
		return 1
	}
	defer stopDB()
	dopts := devserver.Options{
		DatabaseURL: url, Templates: tfs, Registry: reg, Addr: o.addr, Auth: verifier, Logger: logger,
		AllowedHosts: api.ParseAllowedHosts(os.Getenv(api.EnvAllowedHosts)),
		MaxInFlight:  o.maxInFlight, Workers: o.workers, SweepInterval: o.sweep, Tracing: tracing, Lambdas: lambdas,
		Retention: ret.Keep, RetentionBatch: ret.Batch, Payload: o.payload,
	}
	if exporter != nil {
		dopts.Exporter = exporter
	}
	srv, err := devserver.Start(ctx, dopts)
	if err != nil {
		fmt.Fprintf(stderr, "tasker dev: %v\n", err)
		return 1
	}
	logger.Info("tasker dev is running", "url", "http://"+srv.Addr, "templates", tsrc, "lambdas", lsrc)
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

// lambdaSource loads the local function map: the flag or env, else
// ./lambdas.local.yaml when it exists, else none (nil runner).
func lambdaSource(file string, logger *slog.Logger) (*lambdalocal.Runner, string, error) {
	if file == "" {
		if _, err := os.Stat(lambdalocal.File); err != nil {
			return nil, "none", nil
		}
		file = lambdalocal.File
	}
	fns, err := lambdalocal.LoadFile(file)
	if err != nil {
		return nil, "", fmt.Errorf("lambdas: %w", err)
	}
	r := lambdalocal.New(fns, lambdalocal.WithLogger(logger),
		lambdalocal.WithInterpreters(os.Getenv(lambdalocal.EnvPython), os.Getenv(lambdalocal.EnvNode)))
	return r, file, nil
}

// Ranges of the flags.
const (
	defaultMaxInFlight = 1000
	defaultWorkers     = 64
	maxWorkers         = 4096
	defaultSweep       = 2 * time.Second
	minSweep           = 10 * time.Millisecond
	maxSweep           = time.Hour
)

// options are tasker dev's flags and variables, checked.
type options struct {
	addr, tplDir, dbURL string
	lambdasFile         string
	maxInFlight         int
	workers             int
	sweep               time.Duration
	logLevel            slog.Level
	payload             engine.PayloadLimits
}

// errUsage is a flag error the flag package has reported already.
var errUsage = errors.New("usage")

// parseOptions reads the flags and the environment. An invalid value is an
// error naming the flag or variable and the accepted range, never a
// silent default (docs/DESIGN.md §11).
func parseOptions(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	envMax, err := config.Int(getenv, "TASKER_MAX_IN_FLIGHT", defaultMaxInFlight, 0, config.MaxInFlightLimit)
	if err != nil {
		return o, err
	}
	if o.payload, err = engine.PayloadLimitsFromEnv(getenv); err != nil {
		return o, err
	}
	if o.logLevel, err = config.LogLevel(getenv); err != nil {
		return o, err
	}
	addr := strings.TrimSpace(getenv("TASKER_ADDR"))
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	fset := flag.NewFlagSet("tasker dev", flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.StringVar(&o.addr, "addr", addr, "listen address (TASKER_ADDR)")
	fset.StringVar(&o.tplDir, "templates", getenv("TASKER_TEMPLATES_DIR"), "template directory (TASKER_TEMPLATES_DIR; default ./templates if present, else the built-in examples)")
	fset.StringVar(&o.lambdasFile, "lambdas", getenv("TASKER_LAMBDAS_FILE"), "local map of the Lambda functions lambda:NAME handlers run (TASKER_LAMBDAS_FILE; default ./lambdas.local.yaml if present)")
	// DATABASE_URL is read after parsing so --help never prints its password.
	fset.StringVar(&o.dbURL, "database-url", "", "Postgres URL (default $DATABASE_URL; when both are empty, embedded Postgres in .tasker/)")
	fset.IntVar(&o.maxInFlight, "max-in-flight", envMax,
		fmt.Sprintf("cap on in-flight steps, 0 to %d (TASKER_MAX_IN_FLIGHT; 0 = none)", config.MaxInFlightLimit))
	fset.IntVar(&o.workers, "workers", defaultWorkers, fmt.Sprintf("handler worker pool size, 1 to %d", maxWorkers))
	fset.DurationVar(&o.sweep, "sweep-interval", defaultSweep,
		fmt.Sprintf("how often the sweep runs, %s to %s", config.FormatDuration(minSweep), config.FormatDuration(maxSweep)))
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, flag.ErrHelp
		}
		return o, errUsage
	}
	if fset.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fset.Arg(0))
	}
	if o.dbURL == "" {
		o.dbURL = getenv("DATABASE_URL")
	}
	if err := errors.Join(
		config.CheckInt("-max-in-flight", o.maxInFlight, 0, config.MaxInFlightLimit),
		config.CheckInt("-workers", o.workers, 1, maxWorkers),
		config.CheckDuration("-sweep-interval", o.sweep, minSweep, maxSweep),
	); err != nil {
		return o, err
	}
	return o, nil
}
