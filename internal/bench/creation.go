package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskerhq/tasker/internal/devserver"
	"github.com/taskerhq/tasker/internal/engine"
)

// #5 splits each POST /v1/tasks into phases from timings taken in process:
// the API's server span and the engine's task.create span (OpenTelemetry,
// kept by phaseClock, every other span dropped by its sampler), and the
// pool's acquires and statements (a pgx tracer), attributed to a request
// by the span in their context. The client sends a traceparent, so its own
// latency joins the same record. Nothing here names a SQL function: the
// statements are whatever the store runs inside each span.

// apiSpan is the API's server span name for the route (api.startSpan).
const apiSpan = "POST /v1/tasks"

// reqTimes is one request's timeline.
type reqTimes struct {
	client                 time.Duration // as the HTTP client saw it
	reqStart, reqEnd       time.Time     // API server span
	createStart, createEnd time.Time     // engine task.create span
	// Database work inside task.create (create) and after it (read back).
	createFirst, createLast time.Time
	createWait, createDB    time.Duration
	readLast                time.Time
	readWait, readDB        time.Duration
}

// phaseClock is a span processor, a sampler and a pgx tracer at once.
type phaseClock struct {
	mu     sync.Mutex
	traces map[trace.TraceID]*reqTimes
	spans  map[trace.SpanID]*reqTimes
	create map[trace.SpanID]bool // task.create spans (else: the API span)
	sql    map[string]string     // statement text → "create" or "read back"
}

func newPhaseClock() *phaseClock {
	return &phaseClock{traces: map[trace.TraceID]*reqTimes{}, spans: map[trace.SpanID]*reqTimes{},
		create: map[trace.SpanID]bool{}, sql: map[string]string{}}
}

// ShouldSample keeps the two spans the phases come from and drops the
// rest (passes, dispatches, handler runs), so tracing costs little.
func (p *phaseClock) ShouldSample(sp sdktrace.SamplingParameters) sdktrace.SamplingResult {
	d := sdktrace.Drop
	if sp.Name == apiSpan || sp.Name == engine.SpanTaskCreate {
		d = sdktrace.RecordAndSample
	}
	return sdktrace.SamplingResult{Decision: d, Tracestate: trace.SpanContextFromContext(sp.ParentContext).TraceState()}
}

func (p *phaseClock) Description() string { return "tasker bench phase clock" }

func (p *phaseClock) OnStart(_ context.Context, s sdktrace.ReadWriteSpan) {
	sc := s.SpanContext()
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.traces[sc.TraceID()]
	if r == nil {
		r = &reqTimes{}
		p.traces[sc.TraceID()] = r
	}
	p.spans[sc.SpanID()] = r
	p.create[sc.SpanID()] = s.Name() == engine.SpanTaskCreate
}

func (p *phaseClock) OnEnd(s sdktrace.ReadOnlySpan) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.spans[s.SpanContext().SpanID()]
	if r == nil {
		return
	}
	if s.Name() == engine.SpanTaskCreate {
		r.createStart, r.createEnd = s.StartTime(), s.EndTime()
	} else {
		r.reqStart, r.reqEnd = s.StartTime(), s.EndTime()
	}
}

func (p *phaseClock) Shutdown(context.Context) error   { return nil }
func (p *phaseClock) ForceFlush(context.Context) error { return nil }

type dbStartKey struct{}

// dbStart is carried in the context from a Trace…Start to its …End.
type dbStart struct {
	at   time.Time
	wait bool // a pool acquire, not a statement
}

func (p *phaseClock) begin(ctx context.Context, wait bool, sql ...string) context.Context {
	id := trace.SpanContextFromContext(ctx).SpanID()
	p.mu.Lock()
	r, create := p.spans[id], p.create[id]
	if r != nil {
		kind := "read back"
		if create {
			kind = "create"
		}
		for _, q := range sql {
			p.sql[pgssText(q)] = kind
		}
	}
	p.mu.Unlock()
	if r == nil {
		return ctx // not a request's work (scheduler passes, sweeps)
	}
	return context.WithValue(ctx, dbStartKey{}, dbStart{at: time.Now(), wait: wait})
}

func (p *phaseClock) end(ctx context.Context) {
	st, ok := ctx.Value(dbStartKey{}).(dbStart)
	if !ok {
		return
	}
	now := time.Now()
	d := now.Sub(st.at)
	id := trace.SpanContextFromContext(ctx).SpanID()
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.spans[id]
	switch {
	case r == nil: // recorded before a reset
	case p.create[id]:
		if r.createFirst.IsZero() || st.at.Before(r.createFirst) {
			r.createFirst = st.at
		}
		r.createLast = now
		if st.wait {
			r.createWait += d
		} else {
			r.createDB += d
		}
	default:
		r.readLast = now
		if st.wait {
			r.readWait += d
		} else {
			r.readDB += d
		}
	}
}

func (p *phaseClock) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	return p.begin(ctx, false, d.SQL)
}
func (p *phaseClock) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	p.end(ctx)
}
func (p *phaseClock) TraceBatchStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	var sql []string
	if d.Batch != nil {
		for _, q := range d.Batch.QueuedQueries {
			sql = append(sql, q.SQL)
		}
	}
	return p.begin(ctx, false, sql...)
}
func (p *phaseClock) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (p *phaseClock) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchEndData) {
	p.end(ctx)
}
func (p *phaseClock) TraceAcquireStart(ctx context.Context, _ *pgxpool.Pool, _ pgxpool.TraceAcquireStartData) context.Context {
	return p.begin(ctx, true)
}
func (p *phaseClock) TraceAcquireEnd(ctx context.Context, _ *pgxpool.Pool, _ pgxpool.TraceAcquireEndData) {
	p.end(ctx)
}

func (p *phaseClock) setClient(id trace.TraceID, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r := p.traces[id]; r != nil {
		r.client = d
	}
}

// reset forgets everything recorded (after the warm-up).
func (p *phaseClock) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.traces)
	clear(p.spans)
	clear(p.create)
}

// Phase is one part of a creation request, over all requests.
type Phase struct {
	Name      string
	P50, P99  time.Duration
	Mean      time.Duration
	ShareMean float64 // of the mean client-observed latency
}

// Creation is scenario 5's result.
type Creation struct {
	Clients, N    int
	P50, P99      time.Duration // client-observed
	Rate          float64       // creations/s
	OneP50        time.Duration // one client, one request at a time
	Phases        []Phase
	Statements    []stmt // pg_stat_statements for the statements of the create and read-back phases
	StatementKind map[string]string
	Data          string // the data it ran over
}

// phases turns the recorded timelines into the phase table.
func (p *phaseClock) phases() []Phase {
	p.mu.Lock()
	defer p.mu.Unlock()
	names := []string{
		"HTTP client, loopback and server I/O (outside the API span)",
		"routing, auth, decode (API span start → task.create)",
		"template lookup, JSON Schema validation, ids (→ first pool acquire)",
		"create: waiting for a pool connection",
		"create: SQL round trip(s)",
		"event publish + wake-up enqueue (create SQL done → task.create end)",
		"read back for the response: waiting for a pool connection",
		"read back for the response: SQL round trip(s)",
		"response encode and write (→ API span end)",
		"unaccounted (gaps between the above)",
	}
	vals := make([][]time.Duration, len(names))
	var totals []time.Duration
	for _, r := range p.traces {
		if r.client == 0 || r.reqEnd.IsZero() || r.createEnd.IsZero() || r.createFirst.IsZero() {
			continue
		}
		server := r.reqEnd.Sub(r.reqStart)
		readEnd := r.readLast
		if readEnd.IsZero() {
			readEnd = r.createEnd
		}
		v := []time.Duration{
			r.client - server,
			r.createStart.Sub(r.reqStart),
			r.createFirst.Sub(r.createStart),
			r.createWait,
			r.createDB,
			r.createEnd.Sub(r.createLast),
			r.readWait,
			r.readDB,
			r.reqEnd.Sub(readEnd),
		}
		known := time.Duration(0)
		for _, d := range v {
			known += d
		}
		v = append(v, r.client-known)
		for i, d := range v {
			vals[i] = append(vals[i], d)
		}
		totals = append(totals, r.client)
	}
	if len(totals) == 0 {
		return nil
	}
	mean := func(ds []time.Duration) time.Duration { return sum(ds) / time.Duration(len(ds)) }
	total := mean(totals)
	out := make([]Phase, len(names))
	for i, n := range names {
		m := mean(vals[i])
		out[i] = Phase{Name: n, P50: percentile(vals[i], 50), P99: percentile(vals[i], 99), Mean: m,
			ShareMean: float64(m) / float64(total)}
	}
	return out
}

// apiCreate is scenario 5: POST /v1/tasks over real HTTP on 127.0.0.1
// (auth off) from 32 clients while the engine runs the created 4-step
// tasks on the same CPUs, then one client, one request at a time.
func (e *env) apiCreate(ctx context.Context, data string) (*Creation, error) {
	clock := newPhaseClock()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(clock), sdktrace.WithSpanProcessor(clock))
	defer tp.Shutdown(context.WithoutCancel(ctx))
	srv, err := e.server(ctx, e.db.url, func(o *devserver.Options) {
		o.TracerProvider, o.QueryTracer = tp, clock
	})
	if err != nil {
		return nil, err
	}
	defer closeServer(srv)
	hs := httptest.NewServer(srv.Handler)
	defer hs.Close()
	const clients = 32
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}, Timeout: 30 * time.Second}
	body := []byte(`{"namespace":"bench","name":"linear4","context":{}}`)
	post := func() (uuid.UUID, time.Duration, error) {
		var tid trace.TraceID
		var sid [8]byte
		rand.Read(tid[:])
		rand.Read(sid[:])
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, hs.URL+"/v1/tasks", bytes.NewReader(body))
		if err != nil {
			return uuid.Nil, 0, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("traceparent", "00-"+tid.String()+"-"+hex.EncodeToString(sid[:])+"-01")
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return uuid.Nil, 0, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(t0)
		if err != nil {
			return uuid.Nil, 0, err
		}
		if resp.StatusCode != http.StatusCreated {
			return uuid.Nil, 0, fmt.Errorf("POST /v1/tasks: %s: %s", resp.Status, b)
		}
		var v struct {
			ID uuid.UUID `json:"id"`
		}
		if err := json.Unmarshal(b, &v); err != nil {
			return uuid.Nil, 0, fmt.Errorf("POST /v1/tasks response: %w", err)
		}
		clock.setClient(tid, d)
		return v.ID, d, nil
	}
	// blast sends n requests from the clients, or fewer when budget runs
	// out first (a slow engine shows in the figures, not in the run time).
	blast := func(n int, budget time.Duration) ([]uuid.UUID, []time.Duration, time.Duration, error) {
		ids := make([]uuid.UUID, n)
		lat := make([]time.Duration, n)
		var next, sent atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		began := time.Now()
		deadline := began.Add(budget)
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) {
					i := int(next.Add(1)) - 1
					if i >= n {
						return
					}
					sent.Add(1)
					tid, d, err := post()
					if err != nil {
						errs <- err
						return
					}
					ids[i], lat[i] = tid, d
				}
			}()
		}
		wg.Wait()
		el := time.Since(began)
		select {
		case err := <-errs:
			return nil, nil, 0, err
		default:
		}
		k := int(sent.Load())
		return ids[:k], lat[:k], el, nil
	}
	// The engine gets this long to run the created tasks after each part;
	// what it has not finished by then is cancelled and counted.
	limit, budget, cancelled := time.Minute, 30*time.Second, 0
	if e.opts.Quick {
		limit, budget = 20*time.Second, 10*time.Second
	}
	drain := func(ids []uuid.UUID) error {
		n, err := e.drain(ctx, srv, ids, limit)
		cancelled += n
		return err
	}
	warm, _, _, err := blast(200, budget/5)
	if err != nil {
		return nil, err
	}
	if err := drain(warm); err != nil {
		return nil, err
	}
	clock.reset()
	if err := e.db.resetStatements(ctx); err != nil {
		return nil, err
	}
	n := e.opts.n(4000, 200)
	cpu0 := e.db.cpu()
	ids, lat, el, err := blast(n, budget)
	if err != nil {
		return nil, err
	}
	if err := drain(ids); err != nil {
		return nil, err
	}
	e.cpuNote("5", "POST /v1/tasks and running the 4-step task it created", len(ids), "task", e.db.cpu().sub(cpu0))
	res := &Creation{Clients: clients, N: len(ids), P50: percentile(lat, 50), P99: percentile(lat, 99), Rate: perSec(n, el),
		Phases: clock.phases(), Data: data}
	// pg_stat_statements of the statements the phases ran, read before the
	// one-client run adds its calls.
	if top, err := e.db.topStatements(ctx, 1000); err == nil {
		clock.mu.Lock()
		res.StatementKind = map[string]string{}
		for _, s := range top {
			if k, ok := clock.sql[pgssText(s.Query)]; ok {
				res.Statements = append(res.Statements, s)
				res.StatementKind[s.Query] = k
			}
		}
		clock.mu.Unlock()
	}
	var lat1 []time.Duration
	var ids1 []uuid.UUID
	for end := time.Now().Add(budget / 3); len(ids1) < e.opts.n(500, 20) && (len(ids1) < 5 || time.Now().Before(end)); {
		id, d, err := post()
		if err != nil {
			return nil, err
		}
		ids1, lat1 = append(ids1, id), append(lat1, d)
	}
	if err := drain(ids1); err != nil {
		return nil, err
	}
	res.OneP50 = percentile(lat1, 50)
	if cancelled > 0 {
		e.note("#5: the engine had not finished %d created tasks %s after their creation; they were cancelled (CPU per task above is then an underestimate)", cancelled, limit)
	}
	return res, nil
}

// pgssText is a statement's text as pg_stat_statements keeps it (trimmed
// of surrounding blanks and semicolons), so the two can be matched.
func pgssText(q string) string { return strings.Trim(q, " \t\r\n;") }
