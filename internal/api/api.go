// Package api is Tasker's HTTP API v1 (docs/architecture.md, "HTTP API"): one http.Handler that
// serves both the local server (`tasker dev`) and the API Lambda.
//
// Every route is listed once, in routes below, with the permission it
// needs; openapi.json (embedded, served at GET /v1/openapi.json) documents
// the same routes and a test keeps the two in step.
//
// Request handling, in order: panics are recovered into a 500 problem (the
// stack is logged, never sent); the X-Correlation-ID header is taken (or
// made) and echoed; the route is matched (404/405 problems otherwise);
// the bearer token is verified and the route's permission checked, before
// any of the body is read (401 with WWW-Authenticate, 403 naming the
// permission); the body is capped at Config.MaxBodyBytes (413); then the
// route runs. Errors are RFC 9457 application/problem+json documents with
// a stable `type` URI (see the Type constants).
//
// Status codes: 400 for a body that is not exactly one JSON object
// (malformed-request) and for bad path or query parameters
// (invalid-parameter); 422 for a well-formed body that does not fit:
// unknown fields, wrong types, missing or too-long fields, an unknown
// workflow or version (pointer /name or /version), and a context that fails
// the template's context_schema (one pointer per violation, e.g.
// /context/payment_info/amount); 404 for unknown tasks, steps, templates
// and routes; 409 for state conflicts (cancel a finished task, retry a
// task not in error, resolve a step not in error, an idempotency key the
// caller used with a different request); 413 past the body limit; 415 for a
// non-JSON Content-Type.
//
// With auth off (the local default) two more checks defend the developer's
// browser (docs/security.md): every POST needs Content-Type:
// application/json (415 otherwise), so a cross-site form or text/plain post
// cannot change state, and with Config.AllowedHosts a Host that is not one
// of the server's names is a 421, so a DNS-rebound page cannot read it.
// List and read responses keep to a byte budget (Config.MaxResponseBytes,
// budget.go) and take ?fields= to leave large members out.
//
// Import rules: api imports engine, template, auth, graph, jsonb, telemetry,
// wire (the response shapes it shares with internal/apiclient), and store
// for its value types only (it reads through its own Reader interface);
// only the server's wiring imports api (devserver, lambdaapp, the tasker dev
// command), never the CLI's client side (docs/architecture.md, "Import
// rules", enforced by internal/importrules).
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/taskerhq/tasker/internal/auth"
	"github.com/taskerhq/tasker/internal/graphql"
	"github.com/taskerhq/tasker/internal/telemetry"
	"github.com/taskerhq/tasker/internal/template"
)

// DefaultMaxBodyBytes caps request bodies when Config.MaxBodyBytes is 0:
// 1 MiB, far above any sensible task context and well under API Gateway's
// and Lambda's payload limits (10 MB and 6 MB).
const DefaultMaxBodyBytes int64 = 1 << 20

// Config wires the API.
type Config struct {
	// Engine creates tasks and runs the operator actions (required).
	Engine Engine
	// Store is the read model behind every GET (required): a *store.Store.
	Store Reader
	// Auth verifies bearer tokens; nil runs the API open (every route
	// allowed without a token; the caller logs the warning).
	Auth   *auth.Verifier
	Logger *slog.Logger
	// Metrics, when set, is served at GET /v1/metrics (permission
	// system:read); without it that route answers 404.
	Metrics http.Handler
	// MaxBodyBytes caps request bodies (default DefaultMaxBodyBytes).
	MaxBodyBytes int64
	// MaxResponseBytes is the byte budget of list and read responses
	// (default DefaultMaxResponseBytes): a task list stops early with a
	// next_cursor, a task read leaves out its largest step results.
	MaxResponseBytes int
	// AllowedHosts, when not nil and auth is off, are the Host header
	// values the API answers (see LocalHosts); any other Host is a 421.
	// It defeats DNS rebinding against a local server (docs/security.md).
	AllowedHosts []string
	// TracerProvider makes a server span per request, continuing the
	// caller's trace (traceparent or X-Amzn-Trace-Id); tasks created in
	// the request join it. Default: none.
	TracerProvider trace.TracerProvider
}

type server struct {
	eng     Engine
	store   Reader
	tpls    *template.Set
	auth    *auth.Verifier
	log     *slog.Logger
	metrics http.Handler
	maxBody int64
	// maxResponse is the response byte budget.
	maxResponse int
	// hosts are the allowed Host values, lower case; nil allows any.
	hosts   []string
	tracer  trace.Tracer
	tracing bool
	mux     *http.ServeMux
	routes  []route
	graphql http.Handler
}

// route is one endpoint. Pattern paths use ServeMux syntax, which is also
// OpenAPI's ({id}).
type route struct {
	method string
	path   string
	// perm is the permission the route needs; "" makes it public.
	perm string
	h    http.HandlerFunc
}

func (rt route) pattern() string { return rt.method + " " + rt.path }

// New returns the API handler.
func New(cfg Config) (http.Handler, error) {
	if cfg.Engine == nil {
		return nil, errors.New("api: Config.Engine is required")
	}
	if cfg.Store == nil {
		return nil, errors.New("api: Config.Store is required")
	}
	if cfg.Engine.Templates() == nil {
		return nil, errors.New("api: the engine has no templates")
	}
	if _, err := openAPIDocument(); err != nil {
		return nil, fmt.Errorf("api: embedded openapi.json: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
		// Room for the largest context and the request around it
		// (payloads.go).
		if l, ok := cfg.Engine.(contextLimiter); ok && int64(l.MaxContextBytes())+bodySlack > cfg.MaxBodyBytes {
			cfg.MaxBodyBytes = int64(l.MaxContextBytes()) + bodySlack
		}
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	s := &server{
		eng: cfg.Engine, store: cfg.Store, tpls: cfg.Engine.Templates(), auth: cfg.Auth, log: cfg.Logger,
		metrics: cfg.Metrics, maxBody: cfg.MaxBodyBytes, maxResponse: cfg.MaxResponseBytes, mux: http.NewServeMux(),
	}
	if cfg.AllowedHosts != nil {
		s.hosts = []string{}
		for _, h := range cfg.AllowedHosts {
			s.hosts = append(s.hosts, strings.ToLower(strings.TrimSpace(h)))
		}
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = noop.NewTracerProvider()
	}
	_, off := cfg.TracerProvider.(noop.TracerProvider)
	s.tracing = !off
	s.tracer = cfg.TracerProvider.Tracer("github.com/taskerhq/tasker/internal/api")
	s.routes = []route{
		{"POST", "/v1/tasks", auth.TasksCreate, s.createTask},
		{"GET", "/v1/tasks", auth.TasksList, s.listTasks},
		{"GET", "/v1/tasks/{id}", auth.TasksRead, s.getTask},
		{"POST", "/v1/tasks/{id}/cancel", auth.TasksCancel, s.cancelTask},
		{"POST", "/v1/tasks/{id}/retry", auth.TasksRetry, s.retryTask},
		{"POST", "/v1/tasks/bulk/cancel", auth.TasksCancel, s.bulkCancel},
		{"POST", "/v1/tasks/bulk/retry", auth.TasksRetry, s.bulkRetry},
		{"GET", "/v1/tasks/{id}/transitions", auth.TasksRead, s.taskTransitions},
		{"GET", "/v1/tasks/{id}/graph", auth.TasksRead, s.taskGraph},
		{"GET", "/v1/tasks/{id}/steps/{step}", auth.StepsRead, s.getStep},
		{"GET", "/v1/tasks/{id}/steps/{step}/instances", auth.StepsRead, s.listInstances},
		{"POST", "/v1/tasks/{id}/steps/{step}/resolve", auth.StepsResolve, s.resolveStep},
		{"POST", "/v1/tasks/{id}/steps/{step}/complete", auth.StepsComplete, s.completeStep},
		// Authorised by the callback token alone (callbacks.go).
		{"POST", "/v1/callbacks/{token}/success", "", s.callbackSuccess},
		{"POST", "/v1/callbacks/{token}/failure", "", s.callbackFailure},
		{"POST", "/v1/callbacks/{token}/heartbeat", "", s.callbackHeartbeat},
		{"GET", "/v1/templates", auth.TemplatesRead, s.listTemplates},
		{"GET", "/v1/templates/{namespace}/{name}", auth.TemplatesRead, s.getTemplate},
		{"GET", "/v1/schedules", auth.SchedulesRead, s.listSchedules},
		{"POST", "/v1/schedules/{id}/pause", auth.SchedulesManage, s.pauseSchedule},
		{"POST", "/v1/schedules/{id}/resume", auth.SchedulesManage, s.resumeSchedule},
		{"GET", "/v1/analytics/templates/{namespace}/{name}", auth.SystemRead, s.templateAnalytics},
		{"POST", "/v1/subscriptions", auth.SystemAdmin, s.createSubscription},
		{"GET", "/v1/subscriptions", auth.SystemAdmin, s.listSubscriptions},
		{"DELETE", "/v1/subscriptions/{id}", auth.SystemAdmin, s.deleteSubscription},
		{"GET", "/v1/subscriptions/{id}/deliveries", auth.SystemAdmin, s.listDeliveries},
		{"GET", "/v1/health/live", "", s.live},
		{"GET", "/v1/health/ready", "", s.ready},
		{"GET", "/v1/health/status", auth.SystemRead, s.status},
		{"GET", "/v1/metrics", auth.SystemRead, s.serveMetrics},
		{"GET", "/v1/openapi.json", "", s.openAPI},
		// Needs a valid token; each field then needs the permission of the
		// route it mirrors (internal/graphql, operations).
		{"POST", "/v1/graphql", authenticatedOnly, s.serveGraphQL},
		{"GET", "/v1/graphql/schema.graphqls", "", s.graphQLSchema},
	}
	gql, err := graphql.NewHandler(graphql.Options{Engine: cfg.Engine, Reader: cfg.Store, Permission: s.routePermission,
		Logger: cfg.Logger, MaxResponseBytes: cfg.MaxResponseBytes - listEnvelope})
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	s.graphql = gql
	for _, rt := range s.routes {
		s.mux.Handle(rt.pattern(), s.guard(rt))
	}
	return s, nil
}

// ServeHTTP is the outer middleware: recover, correlation id, routing
// problems, access log.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	cid := correlationID(r)
	rec.Header().Set(HeaderCorrelationID, cid)
	rec.Header().Set("X-Content-Type-Options", "nosniff")
	ctx := context.WithValue(r.Context(), correlationKey{}, cid)
	var span trace.Span
	if s.tracing {
		ctx, span = s.startSpan(ctx, r, cid)
	}
	r = r.WithContext(ctx)
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler { //nolint:errorlint // sentinel compared as net/http does
				panic(v)
			}
			s.log.ErrorContext(ctx, "panic serving request", "panic", fmt.Sprint(v), "stack", string(debug.Stack()),
				"method", r.Method, "path", redactPath(r.URL.Path), "correlation_id", cid)
			if !rec.wrote {
				s.writeProblem(rec, r, newProblem(http.StatusInternalServerError, TypeInternal,
					"the server could not complete the request; quote the correlation id when reporting this"))
			}
		}
		level := slog.LevelDebug
		if rec.status >= 500 {
			level = slog.LevelError
		}
		s.log.Log(ctx, level, "http request", "method", r.Method, "path", redactPath(r.URL.Path), "status", rec.status,
			"duration_ms", time.Since(start).Milliseconds(), "correlation_id", cid)
		if span != nil {
			span.SetAttributes(attribute.Int("http.response.status_code", rec.status))
			if rec.status >= 500 {
				span.SetStatus(codes.Error, http.StatusText(rec.status))
			}
			span.End()
		}
	}()
	if s.auth == nil && s.hosts != nil && !hostAllowed(s.hosts, r.Host) {
		s.writeProblem(rec, r, newProblem(http.StatusMisdirectedRequest, TypeMisdirected,
			"this server does not answer for host "+strconv.Quote(r.Host)+"; add it to "+EnvAllowedHosts+" if it is yours"))
		return
	}
	if _, pattern := s.mux.Handler(r); pattern == "" {
		s.unrouted(rec, r)
		return
	}
	s.mux.ServeHTTP(rec, r)
}

// startSpan starts the request's server span, continuing the caller's
// trace, named after the matched route ("POST /v1/tasks").
func (s *server) startSpan(ctx context.Context, r *http.Request, cid string) (context.Context, trace.Span) {
	ctx = telemetry.Propagator().Extract(ctx, propagation.HeaderCarrier(r.Header))
	name := r.Method
	attrs := []attribute.KeyValue{attribute.String("http.request.method", r.Method),
		attribute.String("url.path", redactPath(r.URL.Path)), attribute.String("tasker.correlation_id", cid)}
	if _, pattern := s.mux.Handler(r); pattern != "" {
		name = pattern
		if _, route, ok := strings.Cut(pattern, " "); ok {
			attrs = append(attrs, attribute.String("http.route", route))
		}
	}
	return s.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
}

// unrouted answers a request no route matches: 405 with Allow when the
// path exists under other methods, else 404.
func (s *server) unrouted(w http.ResponseWriter, r *http.Request) {
	h, _ := s.mux.Handler(r)
	probe := &probeWriter{header: http.Header{}}
	h.ServeHTTP(probe, r)
	if probe.status == http.StatusMethodNotAllowed {
		allow := probe.header.Get("Allow")
		s.writeProblem(w, r, newProblem(http.StatusMethodNotAllowed, TypeMethodNotAllowed,
			r.Method+" is not allowed here; allowed: "+allow).withHeader("Allow", allow))
		return
	}
	s.writeProblem(w, r, notFound("no route "+r.Method+" "+r.URL.Path+"; see GET /v1/openapi.json"))
}

// guard authenticates and authorises a route's request before its body is
// read, then caps the body.
func (s *server) guard(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := anonymous
		if rt.perm != "" && s.auth != nil {
			var prob *Problem
			if p, prob = s.authenticate(r); prob != nil {
				s.writeProblem(w, r, prob)
				return
			}
			if rt.perm != authenticatedOnly && !p.Allows(rt.perm) {
				s.writeProblem(w, r, forbidden(rt.perm))
				return
			}
		}
		r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
		// Without auth, a state change must say it is JSON: a page in the
		// developer's browser can send a cross-site "simple" request
		// (form or text/plain, or no body at all) without a CORS preflight,
		// but not one with Content-Type: application/json.
		if s.auth == nil && rt.method != http.MethodGet && !isJSONMediaType(r.Header.Get("Content-Type")) {
			s.writeProblem(w, r, unsupportedMedia())
			return
		}
		if r.ContentLength > s.maxBody {
			s.writeProblem(w, r, tooLarge(s.maxBody))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.maxBody)
		rt.h(w, r)
	})
}

// authenticatedOnly is the perm of a route that needs a valid token but
// checks permissions itself, per operation (POST /v1/graphql).
const authenticatedOnly = "(authenticated)"

// routePermission returns the permission of the route "METHOD /path", for
// the GraphQL operations that mirror it.
func (s *server) routePermission(route string) (string, bool) {
	for _, rt := range s.routes {
		if rt.pattern() == route {
			return rt.perm, rt.perm != authenticatedOnly
		}
	}
	return "", false
}

// anonymous is the caller when auth is off: it may do everything.
var anonymous = &auth.Principal{Subject: "", Permissions: []string{"*"}}

func (s *server) authenticate(r *http.Request) (*auth.Principal, *Problem) {
	if len(r.Header.Values("Authorization")) == 0 {
		return nil, newProblem(http.StatusUnauthorized, TypeUnauthorized,
			"this route needs a bearer token: send Authorization: Bearer <token>").
			withHeader("WWW-Authenticate", `Bearer realm="tasker"`)
	}
	tok, ok := auth.BearerToken(r)
	if !ok {
		return nil, newProblem(http.StatusUnauthorized, TypeUnauthorized,
			"the Authorization header must be exactly one \"Bearer <token>\"").
			withHeader("WWW-Authenticate", `Bearer realm="tasker", error="invalid_request", error_description="malformed Authorization header"`)
	}
	p, err := s.auth.Verify(r.Context(), tok)
	if err != nil || p == nil {
		// The reason is logged, not sent: it may describe key material.
		s.log.InfoContext(r.Context(), "bearer token refused", "error", err, "correlation_id", correlationFrom(r.Context()))
		return nil, newProblem(http.StatusUnauthorized, TypeUnauthorized, "the bearer token is invalid or expired").
			withHeader("WWW-Authenticate", `Bearer realm="tasker", error="invalid_token", error_description="the token is invalid or expired"`)
	}
	return p, nil
}

func forbidden(perm string) *Problem {
	p := newProblem(http.StatusForbidden, TypeForbidden, "the token lacks the permission "+perm)
	p.Permission = perm
	return p.withHeader("WWW-Authenticate", `Bearer realm="tasker", error="insufficient_scope", scope="`+perm+`"`)
}

type principalKey struct{}

func principalFrom(ctx context.Context) *auth.Principal {
	p, _ := ctx.Value(principalKey{}).(*auth.Principal)
	return p
}

// actor names the caller on transitions: the token subject, else "api".
func actor(ctx context.Context) string {
	if p := principalFrom(ctx); p != nil && p.Subject != "" {
		return p.Subject
	}
	return "api"
}

// HeaderCorrelationID carries the correlation id in and out.
const HeaderCorrelationID = "X-Correlation-ID"

type correlationKey struct{}

func correlationFrom(ctx context.Context) string {
	s, _ := ctx.Value(correlationKey{}).(string)
	return s
}

// correlationID returns the caller's X-Correlation-ID when it is sane
// (1-128 visible ASCII characters), else a new UUID.
func correlationID(r *http.Request) string {
	v := strings.TrimSpace(r.Header.Get(HeaderCorrelationID))
	if v != "" && len(v) <= 128 {
		ok := true
		for i := 0; i < len(v); i++ {
			if v[i] <= ' ' || v[i] > '~' {
				ok = false
				break
			}
		}
		if ok {
			return v
		}
	}
	return newID()
}

// recorder remembers the status for the access log and whether anything
// was written (a panic after that cannot become a problem response).
type recorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *recorder) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// probeWriter captures what ServeMux's own 404/405 handlers would answer.
type probeWriter struct {
	header http.Header
	status int
}

func (p *probeWriter) Header() http.Header { return p.header }
func (p *probeWriter) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}

func (p *probeWriter) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.status = http.StatusOK
	}
	return len(b), nil
}
