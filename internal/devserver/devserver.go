// Package devserver runs Tasker as one process (docs/architecture.md,
// "Local mode"): API, scheduler
// loop, sweeper and the registered Go handlers, each a service
// (docs/architecture.md, "Services"), with an in-process delayed
// queue and an in-process async invoker that emit the same messages SQS and
// Lambda would, so the engine runs exactly the code it runs on AWS.
//
// Import rules: devserver wires adapters (queue/local, invoke/local, api)
// around the engine; nothing imports devserver but the tasker dev and bench
// commands, bench and tests (docs/architecture.md, "Import rules").
package devserver

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/taskerhq/tasker/internal/api"
	"github.com/taskerhq/tasker/internal/auth"
	"github.com/taskerhq/tasker/internal/blob"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/events"
	"github.com/taskerhq/tasker/internal/invoke/lambdalocal"
	invlocal "github.com/taskerhq/tasker/internal/invoke/local"
	"github.com/taskerhq/tasker/internal/migrate"
	qlocal "github.com/taskerhq/tasker/internal/queue/local"
	"github.com/taskerhq/tasker/internal/service"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/telemetry"
	"github.com/taskerhq/tasker/internal/template"
	"github.com/taskerhq/tasker/internal/webui"
	"github.com/taskerhq/tasker/sdk"
)

// Options configure a local server.
type Options struct {
	DatabaseURL string
	// Templates is where workflow templates come from (a directory's FS or
	// the embedded templates.FS).
	Templates fs.FS
	// Registry holds the Go step handlers (built-ins are always there).
	Registry *sdk.Registry
	// Lambdas runs "lambda:NAME" handlers written in Python or Node.js
	// (lambdas.local.yaml; docs/handlers.md); nil: such steps fail with
	// not_runnable_locally.
	Lambdas *lambdalocal.Runner
	// HandlerAliases map handler names of the templates (Rails classes) to
	// handlers, besides the templates' handler_aliases.yaml
	// (docs/templates.md, "Handler aliases").
	HandlerAliases map[string]string
	// Addr to listen on; empty means no HTTP server (engine only).
	Addr string
	// AllowedHosts are Host values the API answers besides its own
	// (localhost, 127.0.0.1 and [::1] with the port, and the listen
	// address) when auth is off; tasker dev reads TASKER_ALLOWED_HOSTS.
	AllowedHosts []string
	// HTTP bounds the HTTP server's connections (zero fields: defaults).
	HTTP HTTPLimits
	// Auth verifies API tokens; nil runs the API open.
	Auth   *auth.Verifier
	Logger *slog.Logger
	// MaxInFlight caps in-flight steps (0: none).
	MaxInFlight int
	// Workers is the invoker's worker pool size (default 64).
	Workers int
	// BatchSize is the most messages one scheduler pass takes (default 256).
	BatchSize int
	// Consumers is how many scheduler passes run in parallel (default 4).
	Consumers int
	// SweepInterval is how often the sweep runs (default 2 s).
	SweepInterval time.Duration
	// PoolSize is the pgx pool size (default 16).
	PoolSize int32
	// Publisher receives lifecycle events (default: events.Log on Logger:
	// task events at info, step events at debug). Metrics are always kept.
	Publisher engine.Publisher
	// Metrics is served at /v1/metrics (default: Prometheus text of
	// Server.Metrics).
	Metrics http.Handler
	// TracerProvider makes the API, engine and handler spans (default: a
	// no-op provider). Tracing, when set, supersedes it.
	TracerProvider trace.TracerProvider
	// Tracing is the tracing service (tasker dev passes
	// telemetry.NewTracing's): the server starts it first and stops it
	// last, so the other services' last spans are exported.
	Tracing *telemetry.Tracing
	// Payload are the large-payload limits (default: engine's defaults).
	// With an HTTP server (Addr), contexts and results over the inline
	// threshold are stored in PostgreSQL and served at signed URLs under
	// /v1/blobs/ (docs/architecture.md, "Large payloads"); without one,
	// every value stays inline.
	Payload engine.PayloadLimits
	// InstanceID names this process's claims (default: random).
	InstanceID string
	// Retention deletes finished tasks this old in each sweep (0: keep
	// them for ever), RetentionBatch at a time (default 100), exporting
	// them first to Exporter when set (docs/operating.md, "Retention").
	Retention      time.Duration
	RetentionBatch int
	Exporter       engine.Exporter
	// QueryTracer, when set, observes the pool's statements (and, when it
	// implements pgxpool.AcquireTracer, its acquires); tasker bench uses it
	// to time the phases of a request.
	QueryTracer pgx.QueryTracer
}

// check refuses negative values: zero means the default, a negative
// value is a mistake, never silently replaced (docs/DESIGN.md §11).
func (o Options) check() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"MaxInFlight", int64(o.MaxInFlight)}, {"Workers", int64(o.Workers)}, {"BatchSize", int64(o.BatchSize)},
		{"Consumers", int64(o.Consumers)}, {"SweepInterval", int64(o.SweepInterval)}, {"PoolSize", int64(o.PoolSize)},
		{"HTTP.ReadHeaderTimeout", int64(o.HTTP.ReadHeaderTimeout)}, {"HTTP.ReadTimeout", int64(o.HTTP.ReadTimeout)},
		{"HTTP.WriteTimeout", int64(o.HTTP.WriteTimeout)}, {"HTTP.IdleTimeout", int64(o.HTTP.IdleTimeout)},
		{"HTTP.MaxConns", int64(o.HTTP.MaxConns)}, {"HTTP.MaxHeaderBytes", int64(o.HTTP.MaxHeaderBytes)},
		{"Retention", int64(o.Retention)}, {"RetentionBatch", int64(o.RetentionBatch)},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("devserver: Options.%s is negative; want 0 (the default) or more", f.name))
		}
	}
	return errors.Join(errs...)
}

// HTTPLimits bound the local HTTP server, so slow or idle connections
// cannot hold it (docs/security.md).
type HTTPLimits struct {
	// ReadHeaderTimeout is how long a request's headers may take (5 s).
	ReadHeaderTimeout time.Duration
	// ReadTimeout is how long a whole request may take to arrive (30 s).
	ReadTimeout time.Duration
	// WriteTimeout is how long a response may take (60 s).
	WriteTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long (60 s).
	IdleTimeout time.Duration
	// MaxConns caps open connections (512); at the cap the longest idle
	// or unstarted connection makes room for a new one.
	MaxConns int
	// MaxHeaderBytes caps request headers (64 KiB).
	MaxHeaderBytes int
}

func (l HTTPLimits) withDefaults() HTTPLimits {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.ReadHeaderTimeout, 5*time.Second)
	def(&l.ReadTimeout, 30*time.Second)
	def(&l.WriteTimeout, 60*time.Second)
	def(&l.IdleTimeout, 60*time.Second)
	if l.MaxConns <= 0 {
		l.MaxConns = 512
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = 64 << 10
	}
	return l
}

// newHTTPServer returns the server for h with the limits, and the listener
// that enforces the connection cap.
func newHTTPServer(h http.Handler, ln net.Listener, lim HTTPLimits, log *slog.Logger) (*http.Server, *connLimiter) {
	lim = lim.withDefaults()
	cl := newConnLimiter(ln, lim.MaxConns)
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		WriteTimeout:      lim.WriteTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    lim.MaxHeaderBytes,
		ConnState:         cl.track,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}, cl
}

// Server is a running local Tasker, composed of services
// (docs/architecture.md, "Services"): tracing (when Options.Tracing is
// set), the local invoker, the scheduler's queue consumers, the sweeper
// and, with an Addr, the HTTP server, started in that order and stopped in
// the reverse one.
type Server struct {
	Engine  *engine.Engine
	Store   *store.Store
	Pool    *pgxpool.Pool
	Queue   *qlocal.Queue
	Invoker *invlocal.Invoker
	Handler http.Handler
	// Metrics holds the server's metrics (events.Metrics and the handler
	// metrics of sdk.WithMetrics).
	Metrics *telemetry.Registry
	// Addr is the listening address when an HTTP server runs.
	Addr string

	http     *HTTPServer // nil without an Addr
	services service.Group
}

// Start migrates the database, loads templates, builds the services and
// starts them. The services run on a context detached from ctx's
// cancellation: Close stops them.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registry == nil {
		opts.Registry = sdk.NewRegistry()
	}
	if err := opts.check(); err != nil {
		return nil, err
	}
	if opts.Workers <= 0 {
		opts.Workers = 64
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 256
	}
	if opts.Consumers <= 0 {
		opts.Consumers = 4
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = 2 * time.Second
	}
	if opts.PoolSize <= 0 {
		opts.PoolSize = 16
	}
	if opts.Tracing != nil {
		opts.TracerProvider = opts.Tracing.Provider()
	}
	if opts.TracerProvider == nil {
		opts.TracerProvider = noop.NewTracerProvider()
	}
	if _, err := migrate.UpURL(ctx, opts.DatabaseURL); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	tpls, err := template.LoadFS(opts.Templates, template.Options{Handlers: opts.Registry, HandlerAliases: opts.HandlerAliases})
	if err != nil {
		return nil, fmt.Errorf("load templates: %w", err)
	}
	if opts.Lambdas != nil {
		if err := opts.Lambdas.Check(); err != nil {
			return nil, err
		}
	}
	warnUnmappedLambdas(opts.Logger, tpls, opts.Lambdas)
	pcfg, err := pgxpool.ParseConfig(opts.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("database url: %w", err)
	}
	pcfg.MaxConns = opts.PoolSize
	if opts.QueryTracer != nil {
		pcfg.ConnConfig.Tracer = opts.QueryTracer
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	s, err := build(opts, pool, tpls)
	if err != nil {
		pool.Close()
		return nil, err
	}
	if err := s.services.Start(context.WithoutCancel(ctx)); err != nil {
		if s.http != nil {
			s.http.Stop() // closes a listener never served
		}
		pool.Close()
		return nil, err
	}
	return s, nil
}

// build makes the server's parts; nothing runs until s.services start.
func build(opts Options, pool *pgxpool.Pool, tpls *template.Set) (*Server, error) {
	log := opts.Logger
	st, err := store.New(pool)
	if err != nil {
		return nil, err
	}
	// One registry for the scheduler-side metrics (events.Metrics) and the
	// handler SDK's (telemetry.HandlerMetrics), served at /v1/metrics.
	reg := telemetry.NewRegistry()
	q := qlocal.New(qlocal.WithLogger(log))
	invOpts := []invlocal.Option{invlocal.WithWorkers(opts.Workers), invlocal.WithLogger(log)}
	if opts.Lambdas != nil {
		invOpts = append(invOpts, invlocal.WithLambdas(opts.Lambdas))
	}
	inv := invlocal.New(opts.Registry, q, append(invOpts,
		invlocal.WithRunOptions(sdk.WithLogger(log), sdk.WithTracerProvider(opts.TracerProvider),
			sdk.WithObserver(telemetry.NewHandlerMetrics(reg))))...)
	var pub engine.Publisher = events.Log{Logger: log}
	if opts.Publisher != nil {
		pub = opts.Publisher
	}
	pub = events.Multi{pub, events.NewMetrics(reg)}
	if opts.Metrics == nil {
		opts.Metrics = reg.Handler()
	}
	var ln net.Listener
	var hosts []string
	var addr string
	var blobs *blob.Local
	if opts.Addr != "" {
		// Bound now: the API's allowed hosts and the blob URLs name the
		// bound address.
		if ln, err = net.Listen("tcp", opts.Addr); err != nil {
			return nil, fmt.Errorf("listen on %s: %w", opts.Addr, err)
		}
		addr = ln.Addr().String()
		hosts = api.LocalHosts(addr, opts.AllowedHosts)
		if blobs, err = localBlobs(st, ln.Addr(), opts.Payload); err != nil {
			_ = ln.Close()
			return nil, err
		}
	}
	ecfg := engine.Config{
		Store: st, Templates: tpls, Queue: q, Invoker: inv, Publisher: pub, Logger: log,
		InstanceID: opts.InstanceID, Local: true, MaxInFlight: opts.MaxInFlight, HeartbeatStale: 10 * time.Second,
		// Webhook subscriptions are delivered by the sweep; local
		// receivers (localhost) are allowed here.
		Webhooks:       events.NewWebhooks(events.WebhookOptions{}),
		TracerProvider: opts.TracerProvider,
		Retention:      opts.Retention, RetentionBatch: opts.RetentionBatch, Exporter: opts.Exporter,
		PayloadInlineBytes: opts.Payload.InlineBytes, PayloadMaxBytes: opts.Payload.MaxBytes,
	}
	if blobs != nil {
		ecfg.Blobs = blobs
	}
	eng, err := engine.New(ecfg)
	if err != nil {
		if ln != nil {
			_ = ln.Close()
		}
		return nil, err
	}
	s := &Server{Engine: eng, Store: st, Pool: pool, Queue: q, Invoker: inv, Metrics: reg, Addr: addr}
	if opts.Tracing != nil {
		s.services = append(s.services, opts.Tracing)
	}
	// The invoker starts before the consumers so the first scheduler pass
	// can dispatch.
	s.services = append(s.services, inv, qlocal.NewConsumers(q, opts.Consumers, opts.BatchSize, schedulerPass(eng, log)),
		engine.NewSweeper(eng, opts.SweepInterval))
	h, err := api.New(api.Config{Engine: eng, Store: s.Store, Auth: opts.Auth, Logger: log, Metrics: opts.Metrics,
		TracerProvider: opts.TracerProvider, AllowedHosts: hosts})
	if err != nil {
		if ln != nil {
			_ = ln.Close()
		}
		return nil, err
	}
	s.Handler = h
	if ln != nil {
		var root http.Handler = webui.Mount(h)
		if blobs != nil {
			mux := http.NewServeMux()
			mux.Handle(blob.LocalPath, blobs.Handler())
			mux.Handle("/", root)
			root = mux
		}
		s.http = NewHTTPServer(ln, root, opts.HTTP, log)
		s.services = append(s.services, s.http)
	}
	return s, nil
}

// localBlobs is the blob store of large payloads in local mode: the
// PostgreSQL store behind URLs signed with a secret made for this process
// and served by its HTTP server.
func localBlobs(st *store.Store, addr net.Addr, lim engine.PayloadLimits) (*blob.Local, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("blob URL secret: %w", err)
	}
	host := addr.String()
	if ta, ok := addr.(*net.TCPAddr); ok && ta.IP.IsUnspecified() {
		// A wildcard bind is reached on loopback by in-process handlers.
		host = net.JoinHostPort("127.0.0.1", strconv.Itoa(ta.Port))
	}
	maxBytes := lim.MaxBytes
	if maxBytes <= 0 {
		maxBytes = engine.DefaultPayloadMaxBytes
	}
	return blob.NewLocal(st, "http://"+host, secret, int64(maxBytes), nil)
}

// schedulerPass handles a batch in one scheduler pass. A pass fails as a
// whole when the database is unreachable; it backs off so an outage does
// not burn the messages' receive budget (and send them to the dead-letter
// list) within seconds.
func schedulerPass(eng *engine.Engine, log *slog.Logger) qlocal.Handler {
	var streak atomic.Int64 // failed passes in a row, across the consumers
	return func(ctx context.Context, msgs []engine.InMessage) []string {
		failed, err := eng.HandleMessages(ctx, msgs)
		if err == nil || ctx.Err() != nil {
			streak.Store(0)
			return failed
		}
		n := streak.Add(1)
		wait := min(100*time.Millisecond<<min(n, 6), 5*time.Second)
		log.Warn("scheduler pass failed; messages will be redelivered", "error", err, "messages", len(msgs), "backoff", wait)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		return failed
	}
}

// HTTPLimits returns the limits the HTTP server runs with; zero without
// an HTTP server.
func (s *Server) HTTPLimits() HTTPLimits {
	if s.http == nil {
		return HTTPLimits{}
	}
	return s.http.Limits()
}

// Close stops the HTTP server, lets in-flight handlers finish (bounded by
// ctx), and stops the other services. Attempts still running when ctx ends
// are recovered as interrupted by the next process.
func (s *Server) Close(ctx context.Context) error {
	var errs []error
	if s.http != nil {
		errs = append(errs, s.http.Shutdown(ctx))
	}
	errs = append(errs, s.Invoker.Close(ctx))
	s.services.Stop()
	s.Pool.Close()
	return errors.Join(errs...)
}

// warnUnmappedLambdas names, once at start, the Lambda functions the
// templates call that lambdas.local.yaml does not map: their steps fail
// with not_runnable_locally.
func warnUnmappedLambdas(log *slog.Logger, tpls *template.Set, fns *lambdalocal.Runner) {
	seen := map[string]bool{}
	var missing []string
	for _, t := range tpls.List() {
		for _, s := range t.Steps {
			if !sdk.IsLambdaName(s.Handler) || seen[s.Handler] {
				continue
			}
			seen[s.Handler] = true
			if _, ok := fns.Lookup(s.Handler); !ok {
				missing = append(missing, s.Handler)
			}
		}
	}
	if len(missing) > 0 {
		log.Warn("steps with these Lambda handlers cannot run locally: map each in lambdas.local.yaml (runtime, path, handler)",
			"handlers", missing)
	}
}
