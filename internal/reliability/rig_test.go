package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/internal/api"
	"github.com/taskerhq/tasker/internal/auth"
	"github.com/taskerhq/tasker/internal/engine"
	invlocal "github.com/taskerhq/tasker/internal/invoke/local"
	"github.com/taskerhq/tasker/internal/migrate"
	"github.com/taskerhq/tasker/internal/pgtest"
	qlocal "github.com/taskerhq/tasker/internal/queue/local"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/template"
	"github.com/taskerhq/tasker/sdk"
)

// rigOptions configure an in-process Tasker built from the same pieces as
// devserver (store, local queue, local invoker, engine, consumers, sweep),
// with hooks devserver has no option for: a wrapper around the queue the
// engine and the invoker send to, and short timings.
type rigOptions struct {
	url       string   // database; default pgtest.URL(t)
	templates []string // YAML documents
	handlers  map[string]sdk.Handler
	// wrap, when set, wraps the local queue for every sender (engine
	// wake-ups and the invoker's destination records).
	wrap        func(*qlocal.Queue) engine.Queue
	queueOpts   []qlocal.Option
	invOpts     []invlocal.Option
	maxInFlight int
	sweep       time.Duration // default 200 ms
	grace       time.Duration // deadline grace, default 500 ms
	consumers   int           // default 4
	batch       int           // default 256
	poolSize    int32         // default 16
	auth        *auth.Verifier
	maxBody     int64
	noAPI       bool
}

type rig struct {
	t     *testing.T
	pool  *pgxpool.Pool
	eng   *engine.Engine
	q     *qlocal.Queue
	sendQ engine.Queue
	inv   *invlocal.Invoker
	h     http.Handler

	mu       sync.Mutex
	failures map[string]int // message id → times reported as a batch item failure
	passErrs int

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// testLogger logs to stderr when RELIABILITY_LOG is set, else nowhere.
func testLogger() *slog.Logger {
	if lvl := os.Getenv("RELIABILITY_LOG"); lvl != "" {
		var l slog.Level
		_ = l.UnmarshalText([]byte(lvl))
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
	}
	return slog.New(slog.DiscardHandler)
}

func parseTemplates(t testing.TB, docs []string) *template.Set {
	t.Helper()
	var ts []*template.Template
	for i, y := range docs {
		tpl, err := template.Parse(fmt.Sprintf("t%d.yaml", i), []byte(y), template.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, tpl)
	}
	set, err := template.NewSet(ts...)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func newRig(t *testing.T, o rigOptions) *rig {
	t.Helper()
	if o.url == "" {
		o.url = pgtest.URL(t)
	} else if _, err := migrate.UpURL(t.Context(), o.url); err != nil {
		t.Fatal(err)
	}
	if o.sweep <= 0 {
		o.sweep = 200 * time.Millisecond
	}
	if o.grace <= 0 {
		o.grace = 500 * time.Millisecond
	}
	if o.consumers <= 0 {
		o.consumers = 4
	}
	if o.batch <= 0 {
		o.batch = 256
	}
	if o.poolSize <= 0 {
		o.poolSize = 16
	}
	log := testLogger()
	reg := sdk.NewRegistry()
	for name, h := range o.handlers {
		if err := reg.Register(name, h); err != nil {
			t.Fatal(err)
		}
	}
	tpls := parseTemplates(t, o.templates)
	pcfg, err := pgxpool.ParseConfig(o.url)
	if err != nil {
		t.Fatal(err)
	}
	pcfg.MaxConns = o.poolSize
	pool, err := pgxpool.NewWithConfig(context.Background(), pcfg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.New(pool)
	if err != nil {
		t.Fatal(err)
	}
	q := qlocal.New(o.queueOpts...)
	var send engine.Queue = q
	if o.wrap != nil {
		send = o.wrap(q)
	}
	inv := invlocal.New(reg, send, append([]invlocal.Option{invlocal.WithLogger(log),
		invlocal.WithRunOptions(sdk.WithLogger(log))}, o.invOpts...)...)
	if err := inv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Config{
		Store: st, Templates: tpls, Queue: send, Invoker: inv, Logger: log, Local: true,
		MaxInFlight: o.maxInFlight, Adaptive: engine.AdaptiveConfig{Disabled: true}, DeadlineGrace: o.grace, HeartbeatStale: 10 * time.Second,
		DispatchRetryDelay: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &rig{t: t, pool: pool, eng: eng, q: q, sendQ: send, inv: inv, failures: map[string]int{}, cancel: cancel}
	for range o.consumers {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			q.Consume(ctx, o.batch, func(ctx context.Context, msgs []engine.InMessage) []string {
				failed, err := eng.HandleMessages(ctx, msgs)
				r.mu.Lock()
				for _, id := range failed {
					r.failures[id]++
				}
				if err != nil {
					r.passErrs++
				}
				r.mu.Unlock()
				return failed
			})
		}()
	}
	sw := engine.NewSweeper(eng, o.sweep)
	if err := sw.Start(ctx); err != nil {
		t.Fatal(err)
	}
	r.wg.Add(1)
	go func() { // the rig stops everything by cancelling ctx
		defer r.wg.Done()
		<-ctx.Done()
		sw.Stop()
	}()
	if !o.noAPI {
		r.h, err = api.New(api.Config{Engine: eng, Store: st, Auth: o.auth, Logger: log, MaxBodyBytes: o.maxBody})
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(r.close)
	return r
}

func (r *rig) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = r.inv.Close(ctx)
	r.cancel()
	r.wg.Wait()
	r.pool.Close()
}

// create makes a task directly through the engine.
func (r *rig) create(ns, name string, taskCtx any) uuid.UUID {
	r.t.Helper()
	raw, err := json.Marshal(taskCtx)
	if err != nil {
		r.t.Fatal(err)
	}
	out, err := r.eng.CreateTask(context.Background(), engine.CreateRequest{Namespace: ns, Name: name, Context: raw, Actor: "reliability"})
	if err != nil {
		r.t.Fatal(err)
	}
	return out.TaskID
}

// waitFinished waits until no task is pending or in progress.
func waitFinished(t testing.TB, pool *pgxpool.Pool, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var open int
		err := pool.QueryRow(context.Background(),
			`SELECT count(*) FROM tasker_tasks WHERE status IN ('pending','in_progress')`).Scan(&open)
		if err == nil && open == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d tasks still open after %s (last error %v)\n%s", open, timeout, err, describeOpen(pool))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// describeOpen lists a few unfinished steps, for failure messages.
func describeOpen(pool *pgxpool.Pool) string {
	rows, err := pool.Query(context.Background(), `SELECT s.task_id, s.name, s.state, s.attempts, coalesce(s.claimed_by,''), coalesce(s.last_error::text,'')
		FROM tasker_steps s JOIN tasker_tasks t ON t.id = s.task_id
		WHERE t.status IN ('pending','in_progress') AND s.state NOT IN ('complete') ORDER BY s.task_id LIMIT 10`)
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var id uuid.UUID
		var name, state, by, lastErr string
		var attempts int
		if rows.Scan(&id, &name, &state, &attempts, &by, &lastErr) == nil {
			fmt.Fprintf(&b, "  %s %s %s attempts=%d by=%s %s\n", id, name, state, attempts, by, lastErr)
		}
	}
	return b.String()
}

// stepRow is one step's final state.
type stepRow struct {
	TaskID   uuid.UUID
	Task     string // task status
	Name     string
	State    string
	Attempts int
	Result   json.RawMessage
	LastErr  json.RawMessage
}

func loadSteps(t testing.TB, pool *pgxpool.Pool) []stepRow {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT s.task_id, t.status, s.name, s.state, s.attempts, s.result, s.last_error
		FROM tasker_steps s JOIN tasker_tasks t ON t.id = s.task_id ORDER BY s.task_id, s.position`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []stepRow
	for rows.Next() {
		var s stepRow
		if err := rows.Scan(&s.TaskID, &s.Task, &s.Name, &s.State, &s.Attempts, &s.Result, &s.LastErr); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// snapshot is a digest of everything the engine persists: tasks, steps and
// transitions. Two equal snapshots mean nothing changed.
func snapshot(t testing.TB, pool *pgxpool.Pool) string {
	t.Helper()
	var b strings.Builder
	for _, q := range []string{
		`SELECT count(*)::text || ':' || coalesce(md5(string_agg(id::text || status || updated_at::text || coalesce(completed_at::text,''), ',' ORDER BY id)),'') FROM tasker_tasks`,
		`SELECT count(*)::text || ':' || coalesce(md5(string_agg(id::text || state || attempts || coalesce(result::text,'') || coalesce(last_error::text,'') || coalesce(next_retry_at::text,''), ',' ORDER BY id)),'') FROM tasker_steps`,
		`SELECT count(*)::text || ':' || coalesce(max(id),0)::text FROM tasker_transitions`,
	} {
		var s string
		if err := pool.QueryRow(context.Background(), q).Scan(&s); err != nil {
			t.Fatal(err)
		}
		b.WriteString(s + "|")
	}
	return b.String()
}

// httpResp is a captured response.
type httpResp struct {
	code   int
	header http.Header
	body   []byte
}

// call sends one request to an http.Handler.
func call(h http.Handler, method, path string, body io.Reader, hdr map[string]string) httpResp {
	r := httptest.NewRequest(method, path, body)
	if body != nil || method == http.MethodPost {
		// As a client should: with auth off, a POST without it is a 415
		// (docs/security.md); hdr may take it away.
		r.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		if v == "" {
			r.Header.Del(k)
		} else {
			r.Header.Set(k, v)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return httpResp{code: w.Code, header: w.Header(), body: w.Body.Bytes()}
}

func jsonBody(v any) io.Reader {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return bytes.NewReader(b)
}

// percentile returns the p-th percentile (0..100) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}
