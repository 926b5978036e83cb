package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/devserver"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/stephandler"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/template"
)

type env struct {
	opts     Options
	db       *database
	tr       *tracker
	reg      *stephandler.Registry
	tfs      fs.FS
	tpls     *template.Set
	fanout   int
	progress io.Writer
	seedRate float64
	notes    []string
	details  []detail
	loads    []string
	cpus     int
}

type detail struct{ Title, Body string }

func (e *env) note(format string, args ...any) {
	e.notes = append(e.notes, fmt.Sprintf(format, args...))
}

// cpuNote reports the CPU time a measurement window used per unit, and
// the rate two dedicated CPUs' worth of it would sustain.
func (e *env) cpuNote(id, what string, units int, unit string, c cpuTimes) {
	if !c.ok || units == 0 {
		return
	}
	per := (c.Go + c.PG) / time.Duration(units)
	msg := fmt.Sprintf("#%s CPU per %s (%s): Go process %.3f ms + PostgreSQL %.3f ms = %.3f ms", id, unit, what,
		ms64(c.Go/time.Duration(units)), ms64(c.PG/time.Duration(units)), ms64(per))
	if per > 0 {
		msg += fmt.Sprintf(" → CPU-bound ceiling on %d dedicated CPUs ≈ %s %ss/s", e.cpus, thousands(float64(e.cpus)*float64(time.Second)/float64(per)), unit)
	}
	e.note("%s", msg)
}

func ms64(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// server starts the local stack (devserver defaults: 4 scheduler consumers,
// batches of 256, 64 handler workers, pool of 16) without an HTTP
// listener. The periodic sweep is pushed out to an hour: it exists to
// recover lost messages, none are lost here, and the bench pre-creates
// tasks it must not start early. Sweep cost is reported separately.
func (e *env) server(ctx context.Context, url string) (*devserver.Server, error) {
	srv, err := devserver.Start(ctx, devserver.Options{
		DatabaseURL: url, Templates: e.tfs, Registry: e.reg, Publisher: e.tr,
		SweepInterval: time.Hour, InstanceID: "bench-" + uuid.NewString()[:8],
	})
	if err != nil {
		return nil, err
	}
	// The engine sweeps once at start; with many live tasks that takes a
	// while and would overlap the measurement.
	if err := e.waitIdle(ctx); err != nil {
		closeServer(srv)
		return nil, err
	}
	return srv, nil
}

// waitIdle waits until no other session runs a statement.
func (e *env) waitIdle(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, e.db.url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	time.Sleep(100 * time.Millisecond)
	deadline := time.Now().Add(time.Minute)
	for quiet := 0; quiet < 3; {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid()`).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			quiet++
		} else {
			quiet = 0
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the database did not go idle within a minute (%d active statements)", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func closeServer(srv *devserver.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = srv.Close(ctx)
}

// newTask materialises a task from a template the way engine.CreateTask
// does, for inserting without a wake-up.
func newTask(tpl *template.Template) (store.NewTask, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return store.NewTask{}, err
	}
	now := time.Now().UTC()
	nt := store.NewTask{
		ID: id, Namespace: tpl.Namespace, Name: tpl.Name, Version: tpl.Version, Context: json.RawMessage("{}"),
		CorrelationID: uuid.NewString(), Actor: "bench", Now: now,
	}
	for _, st := range tpl.Steps {
		sid, err := uuid.NewV7()
		if err != nil {
			return store.NewTask{}, err
		}
		nt.Steps = append(nt.Steps, store.NewStep{
			ID: sid, Name: st.Name, Handler: st.Handler, Config: st.Config, RetryLimit: st.Retry.MaxAttempts,
			BackoffBase: st.Retry.BackoffBase, MaxBackoff: st.Retry.MaxBackoff, Jitter: st.Retry.Jitter,
			TimeoutSeconds: st.TimeoutSeconds, DependsOn: st.DependsOn,
		})
	}
	return nt, nil
}

// precreate inserts n tasks of a workflow without waking the scheduler.
func (e *env) precreate(ctx context.Context, st *store.Store, workflow string, n int) ([]uuid.UUID, error) {
	tpl, err := e.tpls.Get(namespace, workflow, "")
	if err != nil {
		return nil, err
	}
	ids := make([]uuid.UUID, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				nt, err := newTask(tpl)
				if err == nil {
					ids[i], _, err = st.CreateTask(ctx, nt)
				}
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return ids, firstErr
}

func wakes(ids []uuid.UUID) []engine.Message {
	msgs := make([]engine.Message, len(ids))
	for i, id := range ids {
		msgs[i] = engine.Message{Body: contract.NewWake(id)}
	}
	return msgs
}

// baseline times the cheapest durable write, a single-row
// UPDATE … RETURNING in its own transaction, on this machine's disk with
// these settings: the floor under every scheduler pass (each one commits).
func (e *env) baseline(ctx context.Context) ([]Row, error) {
	conn, err := pgx.Connect(ctx, e.db.url)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS bench_counter (id int PRIMARY KEY, n bigint NOT NULL); INSERT INTO bench_counter VALUES (1, 0) ON CONFLICT DO NOTHING"); err != nil {
		return nil, err
	}
	n := e.opts.n(2000, 100)
	lat := make([]time.Duration, n)
	for i := range n + 100 {
		t0 := time.Now()
		var v int64
		if err := conn.QueryRow(ctx, "UPDATE bench_counter SET n = n + 1 WHERE id = 1 RETURNING n").Scan(&v); err != nil {
			return nil, err
		}
		if i >= 100 {
			lat[i-100] = time.Since(t0)
		}
	}
	return []Row{{ID: "0", Name: "reference: single-row UPDATE … RETURNING, autocommit (fsync'd commit)", N: n,
		P50: percentile(lat, 50), P99: percentile(lat, 99), Throughput: rate(perSec(n, sum(lat)), "commits/s (1 conn)")}}, nil
}

var execTime = regexp.MustCompile(`Execution Time: ([0-9.]+) ms`)

// readiness is scenario 1: tasker_ready_steps for one 10-step task (root
// complete, 8 steps ready, the join blocked) while the tables hold the
// seeded history and live tasks. Client-side round trip over TCP on
// 127.0.0.1, prepared statement (pgx's default statement cache), one
// connection. It also times the sweep's scan, which reads live rows.
func (e *env) readiness(ctx context.Context, id, hist string) ([]Row, error) {
	pool, err := pgxpool.New(ctx, e.db.url)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	st, err := store.New(pool)
	if err != nil {
		return nil, err
	}
	tpl, err := e.tpls.Get(namespace, wfDiamond, "")
	if err != nil {
		return nil, err
	}
	nt, err := newTask(tpl)
	if err != nil {
		return nil, err
	}
	taskID, _, err := st.CreateTask(ctx, nt)
	if err != nil {
		return nil, err
	}
	defer pool.Exec(context.WithoutCancel(ctx), "DELETE FROM tasker_tasks WHERE id = $1", taskID)
	if _, err := pool.Exec(ctx, `UPDATE tasker_steps SET state = 'complete', attempts = 1, result = '{}',
		started_at = now(), completed_at = now() WHERE task_id = $1 AND name = 'root'`, taskID); err != nil {
		return nil, err
	}
	if _, err := pool.Exec(ctx, "ANALYZE tasker_steps"); err != nil {
		return nil, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	const q = `SELECT step_id, task_id, name, handler, state, attempts, "position" FROM tasker_ready_steps($1::uuid[], $2, $3)`
	ids := []uuid.UUID{taskID}
	run := func() (int, error) {
		rows, err := conn.Query(ctx, q, ids, int32(100), time.Now())
		if err != nil {
			return 0, err
		}
		n := 0
		for rows.Next() {
			n++
		}
		rows.Close()
		return n, rows.Err()
	}
	for range 200 {
		if _, err := run(); err != nil {
			return nil, err
		}
	}
	n := e.opts.n(5000, 200)
	lat := make([]time.Duration, n)
	began := time.Now()
	for i := range n {
		t0 := time.Now()
		got, err := run()
		lat[i] = time.Since(t0)
		if err != nil {
			return nil, err
		}
		if got != 8 {
			return nil, fmt.Errorf("tasker_ready_steps returned %d rows, want 8", got)
		}
	}
	el := time.Since(began)
	// Server-side execution time of the same call.
	var plan bytes.Buffer
	rows, err := conn.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+q, ids, int32(100), time.Now())
	if err == nil {
		for rows.Next() {
			var line string
			if rows.Scan(&line) == nil {
				plan.WriteString(line + "\n")
			}
		}
		rows.Close()
	}
	e.details = append(e.details, detail{Title: fmt.Sprintf("#%s tasker_ready_steps plan (%s)", id, hist), Body: plan.String()})
	if m := execTime.FindStringSubmatch(plan.String()); m != nil {
		e.note("#%s tasker_ready_steps server-side execution (EXPLAIN ANALYZE, %s): %s ms", id, hist, m[1])
	}
	p50 := percentile(lat, 50)
	rows1 := []Row{{
		ID: id, Name: "tasker_ready_steps, one 10-step task (" + hist + ")", N: n, Key: "ready",
		P50: p50, P99: percentile(lat, 99), Throughput: rate(perSec(n, el), "calls/s (1 conn)"),
		Target: "p50 ≤ 0.3 ms", Verdict: verdict(p50 <= 300*time.Microsecond),
	}}
	// The sweep scans every live task; time it for context.
	sw := make([]time.Duration, e.opts.n(20, 5))
	for i := range sw {
		now := time.Now().UTC()
		t0 := time.Now()
		if _, _, _, err := st.SweepScan(ctx, now, "bench-readiness", now.Add(-10*time.Second), 1000); err != nil {
			return nil, err
		}
		sw[i] = time.Since(t0)
	}
	rows1 = append(rows1, Row{ID: id, Name: "sweep scan (SweepScan, " + hist + ")", N: len(sw), Key: "sweep",
		P50: percentile(sw, 50), P99: percentile(sw, 99)})
	return rows1, nil
}

// linear is scenario 2: 4-step linear tasks run one at a time.
func (e *env) linear(ctx context.Context, id string) ([]Row, error) {
	srv, err := e.server(ctx, e.db.url)
	if err != nil {
		return nil, err
	}
	defer closeServer(srv)
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	one := func() (uuid.UUID, time.Duration, error) {
		t0 := time.Now()
		c, err := srv.Engine.CreateTask(wctx, engine.CreateRequest{Namespace: namespace, Name: wfLinear, Actor: "bench"})
		if err != nil {
			return uuid.Nil, 0, err
		}
		at, err := e.tr.wait(wctx, c.TaskID)
		return c.TaskID, at.Sub(t0), err
	}
	for range 30 {
		if _, _, err := one(); err != nil {
			return nil, err
		}
	}
	n := e.opts.n(1000, 40)
	cpu0 := e.db.cpu()
	e.tr.recording.Store(true)
	ids := make([]uuid.UUID, n)
	e2e := make([]time.Duration, n)
	starts := make([]time.Time, n)
	for i := range n {
		starts[i] = time.Now()
		ids[i], e2e[i], err = one()
		if err != nil {
			e.tr.recording.Store(false)
			return nil, err
		}
	}
	e.tr.recording.Store(false)
	e.cpuNote(id, "4-step tasks one at a time", 4*n, "step", e.db.cpu().sub(cpu0))
	if f := e.tr.failures(ids); f > 0 {
		return nil, fmt.Errorf("%d of %d tasks did not complete", f, n)
	}
	var gap, toCommit, toStart, first []time.Duration
	for i, tid := range ids {
		t := e.tr.times(tid)
		first = append(first, t.start[0].Sub(starts[i]))
		for k := 0; k < maxTimedSteps-1; k++ {
			if t.end[k].IsZero() || t.start[k+1].IsZero() || t.committed[k].IsZero() {
				return nil, fmt.Errorf("task %s: missing timings for step s%d", tid, k+1)
			}
			gap = append(gap, t.start[k+1].Sub(t.end[k]))
			toCommit = append(toCommit, t.committed[k].Sub(t.end[k]))
			toStart = append(toStart, t.start[k+1].Sub(t.committed[k]))
		}
	}
	g50, g99 := percentile(gap, 50), percentile(gap, 99)
	e50 := percentile(e2e, 50)
	return []Row{
		{ID: id, Name: "per-step overhead: handler return → next handler start", N: len(gap), P50: g50, P99: g99,
			Target: "p50 ≤ 1 ms, p99 ≤ 5 ms", Verdict: verdict(g50 <= time.Millisecond && g99 <= 5*time.Millisecond)},
		{ID: id, Name: "  of which return → scheduler pass committed", N: len(toCommit),
			P50: percentile(toCommit, 50), P99: percentile(toCommit, 99)},
		{ID: id, Name: "  of which pass committed → child handler start", N: len(toStart),
			P50: percentile(toStart, 50), P99: percentile(toStart, 99)},
		{ID: id, Name: "create → first handler start", N: len(first),
			P50: percentile(first, 50), P99: percentile(first, 99)},
		{ID: id, Name: "4-step linear task end to end (create → complete)", N: n, P50: e50, P99: percentile(e2e, 99),
			Throughput: rate(perSec(n, sum(e2e)), "tasks/s (1 at a time)"),
			Target:     "p50 ≤ 4 ms", Verdict: verdict(e50 <= 4*time.Millisecond)},
	}, nil
}

func sum(ds []time.Duration) time.Duration {
	var t time.Duration
	for _, d := range ds {
		t += d
	}
	return t
}

// throughput is scenario 3: n 4-step tasks are inserted, then woken at
// once; the clock runs from the wake-ups to the last task's completion.
func (e *env) throughput(ctx context.Context, id string) ([]Row, error) {
	srv, err := e.server(ctx, e.db.url)
	if err != nil {
		return nil, err
	}
	defer closeServer(srv)
	n := e.opts.n(2000, 100)
	// Warm the connections and statement caches.
	warm, err := e.precreate(ctx, srv.Engine.Store(), wfLinear, 64)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := srv.Queue.Send(ctx, wakes(warm)); err != nil {
		return nil, err
	}
	if _, err := e.tr.waitAll(wctx, warm); err != nil {
		return nil, err
	}
	ids, err := e.precreate(ctx, srv.Engine.Store(), wfLinear, n)
	if err != nil {
		return nil, err
	}
	dispatchFails := e.tr.count(engine.StepDispatchFailed)
	cpu0 := e.db.cpu()
	t0 := time.Now()
	if err := srv.Queue.Send(ctx, wakes(ids)); err != nil {
		return nil, err
	}
	done, err := e.tr.waitAll(wctx, ids)
	if err != nil {
		return nil, err
	}
	e.cpuNote(id, fmt.Sprintf("%d concurrent tasks", n), 4*n, "step", e.db.cpu().sub(cpu0))
	var last time.Time
	lat := make([]time.Duration, n)
	for i, at := range done {
		lat[i] = at.Sub(t0)
		if at.After(last) {
			last = at
		}
	}
	el := last.Sub(t0)
	if f := e.tr.failures(ids); f > 0 {
		return nil, fmt.Errorf("%d of %d tasks did not complete", f, n)
	}
	if df := e.tr.count(engine.StepDispatchFailed) - dispatchFails; df > 0 {
		e.note("#%s: %d step dispatches were refused by the local invoker (backlog full) and retried after 1 s", id, df)
	}
	steps := 4 * n
	r := perSec(steps, el)
	return []Row{{
		ID: id, Name: fmt.Sprintf("throughput, %d concurrent 4-step tasks (wake → last complete; p50/p99: task latency)", n),
		N: steps, P50: percentile(lat, 50), P99: percentile(lat, 99),
		Throughput: rate(r, "steps/s"), Target: "≥ 5,000 steps/s", Verdict: verdict(r >= 5000), Rate: r,
	}}, nil
}

// fanoutRun is scenario 4: one task, a root, 1,000 parallel steps, a join.
func (e *env) fanoutRun(ctx context.Context, id string) ([]Row, error) {
	srv, err := e.server(ctx, e.db.url)
	if err != nil {
		return nil, err
	}
	defer closeServer(srv)
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	runs := e.opts.n(5, 1)
	var ds []time.Duration
	var cpu0 cpuTimes
	for i := range runs + 1 { // the first run warms up
		t0 := time.Now()
		c, err := srv.Engine.CreateTask(wctx, engine.CreateRequest{Namespace: namespace, Name: wfFanout, Actor: "bench"})
		if err != nil {
			return nil, err
		}
		at, err := e.tr.wait(wctx, c.TaskID)
		if err != nil {
			return nil, err
		}
		if f := e.tr.failures([]uuid.UUID{c.TaskID}); f > 0 {
			return nil, fmt.Errorf("fan-out task %s did not complete", c.TaskID)
		}
		if i > 0 {
			ds = append(ds, at.Sub(t0))
		} else {
			cpu0 = e.db.cpu()
		}
	}
	e.cpuNote(id, "fan-out", runs*(e.fanout+2), "step", e.db.cpu().sub(cpu0))
	steps := e.fanout + 2
	p50 := percentile(ds, 50)
	r := perSec(steps, p50)
	return []Row{{
		ID: id, Name: fmt.Sprintf("one task, %s-step fan-out + join (create → complete; %d runs)", thousands(float64(e.fanout)), runs),
		N: steps * runs, P50: p50, P99: percentile(ds, 100), Throughput: rate(r, "steps/s (at p50)"),
		Target: "≥ 3,000 steps/s", Verdict: verdict(r >= 3000), Rate: r,
	}}, nil
}

// apiCreate is scenario 5: POST /v1/tasks from 32 concurrent clients over
// real HTTP on 127.0.0.1 (auth off). The engine runs the created 4-step
// tasks meanwhile, on the same two cores.
func (e *env) apiCreate(ctx context.Context, id string) ([]Row, error) {
	srv, err := e.server(ctx, e.db.url)
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
		t0 := time.Now()
		resp, err := client.Post(hs.URL+"/v1/tasks", "application/json", bytes.NewReader(body))
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
			return uuid.Nil, 0, err
		}
		return v.ID, d, nil
	}
	blast := func(n int) ([]uuid.UUID, []time.Duration, time.Duration, error) {
		ids := make([]uuid.UUID, n)
		lat := make([]time.Duration, n)
		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		began := time.Now()
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= n {
						return
					}
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
		return ids, lat, el, nil
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	warm, _, _, err := blast(200)
	if err != nil {
		return nil, err
	}
	if _, err := e.tr.waitAll(wctx, warm); err != nil {
		return nil, err
	}
	n := e.opts.n(4000, 200)
	cpu0 := e.db.cpu()
	ids, lat, el, err := blast(n)
	if err != nil {
		return nil, err
	}
	if _, err := e.tr.waitAll(wctx, ids); err != nil {
		return nil, err
	}
	e.cpuNote(id, "POST /v1/tasks and running the 4-step task it created", n, "task", e.db.cpu().sub(cpu0))
	p50 := percentile(lat, 50)
	r := perSec(n, el)
	// The same with one client, one request at a time: the latency floor.
	n1 := e.opts.n(500, 20)
	lat1 := make([]time.Duration, n1)
	ids1 := make([]uuid.UUID, n1)
	for i := range n1 {
		if ids1[i], lat1[i], err = post(); err != nil {
			return nil, err
		}
	}
	if _, err := e.tr.waitAll(wctx, ids1); err != nil {
		return nil, err
	}
	return []Row{{
		ID: id, Name: fmt.Sprintf("API task creation, %d clients (POST /v1/tasks; engine runs the tasks meanwhile)", clients),
		N: n, P50: p50, P99: percentile(lat, 99), Throughput: rate(r, "creations/s"),
		Target: "p50 ≤ 2 ms", Verdict: verdict(p50 <= 2*time.Millisecond), Rate: r,
	}, {
		ID: id, Name: "API task creation, 1 client, one request at a time", N: n1,
		P50: percentile(lat1, 50), P99: percentile(lat1, 99), Throughput: rate(perSec(n1, sum(lat1)), "creations/s"),
	}}, nil
}

// phase is the database work of one part of scenario 7, per unit (a task
// created or a step executed).
type phase struct {
	Name       string
	Units      int
	Trips      float64 // round trips (counting proxy)
	Stmts      float64 // top-level statements (pg_stat_statements)
	Rows       float64 // rows inserted, updated or deleted (pg_stat_user_tables)
	WAL        float64 // WAL bytes
	Wire       float64 // bytes on the wire, both ways
	ByTable    []tableWrites
	Statements []stmt
}

// dbWork is scenario 7's measurement.
type dbWork struct {
	Phases []phase
	Conns  int64
}

// dbWork is scenario 7: the engine connects through a counting proxy.
// Tasks are inserted through their own pool (creation), then run one at a
// time, then many at once (execution). Round trips come from the proxy,
// statements from pg_stat_statements, rows written from
// pg_stat_user_tables (flushed by closing the connections), WAL from the
// insert LSN. The engine starts before its tasks are inserted, so its
// startup sweep cannot run them early.
func (e *env) dbWork(ctx context.Context) (*dbWork, error) {
	host := fmt.Sprintf("127.0.0.1:%d", e.db.srv.Port())
	px, err := newCountingProxy(host)
	if err != nil {
		return nil, err
	}
	defer px.close()
	purl := replaceHost(e.db.url, host, px.addr())
	w := &dbWork{}
	measure := func(name string, units int, run func() error, flush func()) error {
		s0, err := e.db.snapshot(ctx)
		if err != nil {
			return err
		}
		px.reset()
		err = run()
		trips, up, dn := px.trips.Load(), px.upBytes.Load(), px.dnBytes.Load()
		flush()
		if err != nil {
			return err
		}
		time.Sleep(500 * time.Millisecond) // backends exit and flush their statistics
		s1, err := e.db.snapshot(ctx)
		if err != nil {
			return err
		}
		u := float64(units)
		p := phase{Name: name, Units: units, Trips: float64(trips) / u, Wire: float64(up+dn) / u,
			WAL: float64(s1.wal-s0.wal) / u}
		p.Rows, p.ByTable = s1.rowsSince(s0, u)
		p.Stmts, p.Statements = s1.stmtsSince(s0, u)
		w.Phases = append(w.Phases, p)
		return nil
	}
	create := func(n int) ([]uuid.UUID, func(), error) {
		pool, err := pgxpool.New(ctx, purl)
		if err != nil {
			return nil, nil, err
		}
		st, err := store.New(pool)
		if err == nil {
			err = pool.Ping(ctx)
		}
		if err != nil {
			pool.Close()
			return nil, nil, err
		}
		px.reset() // the pool's connection set-up is not creation work
		ids, err := e.precreate(ctx, st, wfLinear, n)
		return ids, pool.Close, err
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()

	// One task at a time.
	nSeq := e.opts.n(200, 20)
	srv, err := e.server(ctx, purl)
	if err != nil {
		return nil, err
	}
	time.Sleep(300 * time.Millisecond) // startup heartbeat and sweep
	var ids []uuid.UUID
	var closePool func()
	err = measure("task created (1 round trip: tasker_create_task)", nSeq, func() error {
		var err error
		ids, closePool, err = create(nSeq)
		return err
	}, func() {
		if closePool != nil {
			closePool()
		}
	})
	if err != nil {
		closeServer(srv)
		return nil, err
	}
	conns0 := px.conns.Load()
	err = measure("step executed, one task at a time", 4*nSeq, func() error {
		for _, id := range ids {
			if err := srv.Queue.Send(ctx, wakes([]uuid.UUID{id})); err != nil {
				return err
			}
			if _, err := e.tr.wait(wctx, id); err != nil {
				return err
			}
		}
		return nil
	}, func() { closeServer(srv) })
	if err != nil {
		return nil, err
	}
	w.Conns = px.conns.Load() - conns0

	// Many tasks at once.
	nConc := e.opts.n(1000, 50)
	srv, err = e.server(ctx, purl)
	if err != nil {
		return nil, err
	}
	defer closeServer(srv)
	time.Sleep(300 * time.Millisecond)
	ids, closePool, err = create(nConc)
	if closePool != nil {
		closePool()
	}
	if err != nil {
		return nil, err
	}
	err = measure(fmt.Sprintf("step executed, %d tasks woken at once", nConc), 4*nConc, func() error {
		if err := srv.Queue.Send(ctx, wakes(ids)); err != nil {
			return err
		}
		_, err := e.tr.waitAll(wctx, ids)
		return err
	}, func() { closeServer(srv) })
	if err != nil {
		return nil, err
	}
	return w, nil
}

func replaceHost(url, from, to string) string {
	return string(bytes.Replace([]byte(url), []byte(from), []byte(to), 1))
}

// statementsDetail adds the statements with the most database time since
// the last reset to the report.
func (e *env) statementsDetail(ctx context.Context, label string) {
	top, err := e.db.topStatements(ctx, 8)
	if err != nil || len(top) == 0 {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%8s %9s %9s %10s  %s\n", "calls", "rows/call", "mean ms", "total ms", "statement")
	for _, s := range top {
		fmt.Fprintf(&b, "%8.0f %9.1f %9.3f %10.0f  %s\n", s.Calls, s.Rows, s.MeanMS, s.TotalMS, oneLine(s.Query, 110))
	}
	e.details = append(e.details, detail{Title: "pg_stat_statements during " + label + " (by total time)", Body: b.String()})
}

// tableWrites is rows written to one table, per unit.
type tableWrites struct {
	Table         string
	Ins, Upd, Del float64
	HotUpd        float64
}

// stmt is one pg_stat_statements entry.
type stmt struct {
	Query   string
	Calls   float64 // per unit in deltas, absolute in the top list
	Rows    float64
	TotalMS float64
	MeanMS  float64
}

type snapshot struct {
	tables map[string][4]int64 // ins, upd, del, hot_upd
	wal    int64
	stmts  map[string]stmt
}

func (db *database) snapshot(ctx context.Context) (snapshot, error) {
	s := snapshot{tables: map[string][4]int64{}, stmts: map[string]stmt{}}
	conn, err := pgx.Connect(ctx, db.url)
	if err != nil {
		return s, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT relname, n_tup_ins, n_tup_upd, n_tup_del, n_tup_hot_upd
		FROM pg_stat_user_tables WHERE relname LIKE 'tasker\_%'`)
	if err != nil {
		return s, err
	}
	for rows.Next() {
		var name string
		var v [4]int64
		if err := rows.Scan(&name, &v[0], &v[1], &v[2], &v[3]); err != nil {
			return s, err
		}
		s.tables[name] = v
	}
	if err := rows.Err(); err != nil {
		return s, err
	}
	if err := conn.QueryRow(ctx, "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint").Scan(&s.wal); err != nil {
		return s, err
	}
	if db.pgss {
		rows, err := conn.Query(ctx, `SELECT queryid::text, query, calls, rows, total_exec_time
			FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())`)
		if err != nil {
			return s, err
		}
		for rows.Next() {
			var id, q string
			var st stmt
			var calls, nrows int64
			if err := rows.Scan(&id, &q, &calls, &nrows, &st.TotalMS); err != nil {
				return s, err
			}
			st.Query, st.Calls, st.Rows = q, float64(calls), float64(nrows)
			s.stmts[id] = st
		}
		if err := rows.Err(); err != nil {
			return s, err
		}
	}
	return s, nil
}

func (s snapshot) rowsSince(prev snapshot, per float64) (float64, []tableWrites) {
	var total float64
	var out []tableWrites
	for name, v := range s.tables {
		p := prev.tables[name]
		t := tableWrites{Table: name,
			Ins: float64(v[0]-p[0]) / per, Upd: float64(v[1]-p[1]) / per,
			Del: float64(v[2]-p[2]) / per, HotUpd: float64(v[3]-p[3]) / per}
		if t.Ins+t.Upd+t.Del == 0 {
			continue
		}
		total += t.Ins + t.Upd + t.Del
		out = append(out, t)
	}
	sortBy(out, func(a, b tableWrites) bool { return a.Table < b.Table })
	return total, out
}

var monitoring = regexp.MustCompile(`(?i)pg_stat_|pg_current_wal|pg_database|^\s*(EXPLAIN|ANALYZE|VACUUM|CHECKPOINT)`)

func (s snapshot) stmtsSince(prev snapshot, per float64) (float64, []stmt) {
	var total float64
	var out []stmt
	for id, st := range s.stmts {
		if monitoring.MatchString(st.Query) {
			continue
		}
		p := prev.stmts[id]
		calls := st.Calls - p.Calls
		if calls <= 0 {
			continue
		}
		d := stmt{Query: st.Query, Calls: calls / per, Rows: (st.Rows - p.Rows) / calls,
			TotalMS: st.TotalMS - p.TotalMS, MeanMS: (st.TotalMS - p.TotalMS) / calls}
		total += d.Calls
		out = append(out, d)
	}
	sortBy(out, func(a, b stmt) bool { return a.TotalMS > b.TotalMS })
	return total, out
}

func (db *database) resetStatements(ctx context.Context) error {
	if !db.pgss {
		return nil
	}
	return db.exec(ctx, "SELECT pg_stat_statements_reset()")
}

// topStatements lists the statements with the most execution time since
// the last reset.
func (db *database) topStatements(ctx context.Context, limit int) ([]stmt, error) {
	if !db.pgss {
		return nil, nil
	}
	s, err := db.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	var out []stmt
	for _, st := range s.stmts {
		if monitoring.MatchString(st.Query) || st.Calls == 0 {
			continue
		}
		st.MeanMS = st.TotalMS / st.Calls
		if st.Calls > 0 {
			st.Rows /= st.Calls
		}
		out = append(out, st)
	}
	sortBy(out, func(a, b stmt) bool { return a.TotalMS > b.TotalMS })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func sortBy[T any](s []T, less func(a, b T) bool) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && less(s[j], s[j-1]); j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
