package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
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
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/template"
	"github.com/taskerhq/tasker/sdk"
)

type env struct {
	opts     Options
	db       *database
	tr       *tracker
	reg      *sdk.Registry
	tfs      fs.FS
	tpls     *template.Set
	fanout   int
	progress io.Writer
	notes    []string
	details  []detail
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
func (e *env) server(ctx context.Context, url string, with ...func(*devserver.Options)) (*devserver.Server, error) {
	opts := devserver.Options{
		DatabaseURL: url, Templates: e.tfs, Registry: e.reg, Publisher: e.tr,
		SweepInterval: time.Hour, InstanceID: "bench-" + uuid.NewString()[:8],
	}
	for _, f := range with {
		f(&opts)
	}
	srv, err := devserver.Start(ctx, opts)
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

// commitRef is #0: the cheapest durable write, a single-row
// UPDATE … RETURNING in its own transaction with synchronous_commit on, on
// this machine's disk: the floor under every scheduler pass (each one
// commits). The matrix measures it in every cell, so each cell's ratios
// are taken against a commit timed under the same load.
func (e *env) commitRef(ctx context.Context, n int) (p50, p99 time.Duration, err error) {
	conn, err := pgx.Connect(ctx, e.db.url)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `SET synchronous_commit = on;
		CREATE TABLE IF NOT EXISTS bench_counter (id int PRIMARY KEY, n bigint NOT NULL);
		INSERT INTO bench_counter VALUES (1, 0) ON CONFLICT DO NOTHING`); err != nil {
		return 0, 0, fmt.Errorf("commit reference: %w", err)
	}
	const warm = 50
	lat := make([]time.Duration, n)
	for i := range n + warm {
		t0 := time.Now()
		var v int64
		if err := conn.QueryRow(ctx, "UPDATE bench_counter SET n = n + 1 WHERE id = 1 RETURNING n").Scan(&v); err != nil {
			return 0, 0, fmt.Errorf("commit reference: %w", err)
		}
		if i >= warm {
			lat[i-warm] = time.Since(t0)
		}
	}
	return percentile(lat, 50), percentile(lat, 99), nil
}

// linearResult is scenario 2 in one cell.
type linearResult struct {
	Tasks int
	// Gap is the per-step overhead (a handler returning → the next step's
	// handler starting), split at the moment the engine published the
	// step's completion (after the scheduler pass committed).
	Gap, ToCommit, ToStart []time.Duration
	First, E2E             []time.Duration // create → first handler; create → task complete
	CPU                    cpuTimes
}

// linear is scenario 2: 4-step linear tasks created with Engine.CreateTask
// and run one at a time, until maxTasks ran or budget is spent (a slow
// cell reports fewer samples instead of stretching the run).
func (e *env) linear(ctx context.Context, srv *devserver.Server, maxTasks int, budget time.Duration) (*linearResult, error) {
	wctx, cancel := context.WithTimeout(ctx, budget+time.Minute)
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
	// Warm connections and plan caches: 20 tasks or a tenth of the budget.
	for i, warmEnd := 0, time.Now().Add(budget/10); i < 20 && (i < 2 || time.Now().Before(warmEnd)); i++ {
		if _, _, err := one(); err != nil {
			return nil, err
		}
	}
	res := &linearResult{}
	cpu0 := e.db.cpu()
	e.tr.recording.Store(true)
	var ids []uuid.UUID
	var starts []time.Time
	deadline := time.Now().Add(budget)
	for len(ids) < maxTasks && (len(ids) < 3 || time.Now().Before(deadline)) {
		starts = append(starts, time.Now())
		id, d, err := one()
		if err != nil {
			e.tr.recording.Store(false)
			return nil, err
		}
		ids = append(ids, id)
		res.E2E = append(res.E2E, d)
	}
	e.tr.recording.Store(false)
	res.CPU = e.db.cpu().sub(cpu0)
	res.Tasks = len(ids)
	if f := e.tr.failures(ids); f > 0 {
		return nil, fmt.Errorf("%d of %d tasks did not complete", f, len(ids))
	}
	for i, tid := range ids {
		t := e.tr.times(tid)
		res.First = append(res.First, t.start[0].Sub(starts[i]))
		for k := 0; k < maxTimedSteps-1; k++ {
			if t.end[k].IsZero() || t.start[k+1].IsZero() || t.committed[k].IsZero() {
				return nil, fmt.Errorf("task %s: missing timings for step s%d", tid, k+1)
			}
			res.Gap = append(res.Gap, t.start[k+1].Sub(t.end[k]))
			res.ToCommit = append(res.ToCommit, t.committed[k].Sub(t.end[k]))
			res.ToStart = append(res.ToStart, t.start[k+1].Sub(t.committed[k]))
		}
	}
	return res, nil
}

func sum(ds []time.Duration) time.Duration {
	var t time.Duration
	for _, d := range ds {
		t += d
	}
	return t
}

// throughputResult is scenario 3 in one cell.
type throughputResult struct {
	Tasks, Done  int
	Elapsed      time.Duration   // wake-ups sent → last task complete (or the time limit)
	Latency      []time.Duration // per finished task, wake-ups sent → complete
	CPU          cpuTimes
	Redispatched int // dispatches the local invoker refused (backlog full)
}

func (r *throughputResult) rate() float64 { return perSec(4*r.Done, r.Elapsed) }

// throughput is scenario 3: n 4-step tasks are inserted without wake-ups
// (store.CreateTask, the engine's own insert), then woken in one Send; the
// clock runs from the wake-ups to the last task's completion. A cell slower
// than limit reports the steps finished by then and cancels the rest, so
// one pathological cell cannot stretch the run or leak work into the next.
func (e *env) throughput(ctx context.Context, srv *devserver.Server, n int, limit time.Duration) (*throughputResult, error) {
	// Warm the connections and statement caches.
	warm, err := e.precreate(ctx, srv.Store, wfLinear, 32)
	if err != nil {
		return nil, err
	}
	if err := srv.Queue.Send(ctx, wakes(warm)); err != nil {
		return nil, err
	}
	if _, err := e.drain(ctx, srv, warm, limit/3); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	ids, err := e.precreate(ctx, srv.Store, wfLinear, n)
	if err != nil {
		return nil, err
	}
	refused := e.tr.count(engine.StepDispatchFailed)
	cpu0 := e.db.cpu()
	t0 := time.Now()
	if err := srv.Queue.Send(ctx, wakes(ids)); err != nil {
		return nil, err
	}
	left, err := e.drain(ctx, srv, ids, limit)
	if err != nil {
		return nil, err
	}
	res := &throughputResult{Tasks: n, CPU: e.db.cpu().sub(cpu0), Redispatched: e.tr.count(engine.StepDispatchFailed) - refused}
	if left > 0 {
		res.Elapsed = limit
	}
	for _, id := range ids {
		if at, ok := e.tr.finished(id); ok {
			res.Done++
			res.Latency = append(res.Latency, at.Sub(t0))
			if left == 0 {
				res.Elapsed = max(res.Elapsed, at.Sub(t0))
			}
		}
	}
	if f := e.tr.failures(ids); f > 0 && left == 0 {
		return nil, fmt.Errorf("%d of %d tasks did not complete", f, n)
	}
	return res, nil
}

// drain waits up to limit for the tasks to finish and cancels those that
// did not (Engine.CancelTask), so they do not run on into whatever the
// benchmark measures next. It returns how many it cancelled.
func (e *env) drain(ctx context.Context, srv *devserver.Server, ids []uuid.UUID, limit time.Duration) (int, error) {
	wctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if _, err := e.tr.waitAll(wctx, ids); err == nil {
		return 0, nil
	} else if ctx.Err() != nil {
		return 0, err
	}
	left := 0
	for _, id := range ids {
		if _, ok := e.tr.finished(id); ok {
			continue
		}
		left++
		if err := srv.Engine.CancelTask(ctx, id, "bench", "benchmark time limit"); err != nil {
			return left, fmt.Errorf("cancel unfinished task %s: %w", id, err)
		}
	}
	return left, nil
}

// fanoutRun is scenario 4: one task, a root, 1,000 parallel steps, a join;
// then the same as a map step over 1,000 items with max_concurrency 50.
func (e *env) fanoutRun(ctx context.Context, id string) ([]Row, error) {
	static, err := e.fanoutOne(ctx, id, wfFanout, nil)
	if err != nil {
		return nil, err
	}
	items := make([]int, e.fanout)
	for i := range items {
		items[i] = i
	}
	mctx, _ := json.Marshal(map[string]any{"items": items}) // cannot fail
	mapped, err := e.fanoutOne(ctx, id+"m", wfMap, mctx)
	if err != nil {
		return static, fmt.Errorf("map: %w", err)
	}
	return append(static, mapped...), nil
}

// fanoutOne runs one task of wf to completion, a warm-up and then runs
// times, and reports steps per second (the root, 1,000 steps, the join).
func (e *env) fanoutOne(ctx context.Context, id, wf string, taskCtx json.RawMessage) ([]Row, error) {
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
		c, err := srv.Engine.CreateTask(wctx, engine.CreateRequest{Namespace: namespace, Name: wf, Actor: "bench", Context: taskCtx})
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
	name := fmt.Sprintf("one task, %s-step fan-out + join (create → complete; %d runs)", thousands(float64(e.fanout)), runs)
	if wf == wfMap {
		name = fmt.Sprintf("one task, map over %s items (max_concurrency 50) + join (create → complete; %d runs)",
			thousands(float64(e.fanout)), runs)
	}
	p50 := percentile(ds, 50)
	r := perSec(steps, p50)
	row := []Row{{
		ID: id, Name: name,
		N: steps * runs, P50: p50, P99: percentile(ds, 100), Throughput: rate(r, "steps/s (at p50)"),
		Target: "≥ 3,000 steps/s", Verdict: verdict(r >= 3000),
	}}
	if wf == wfMap {
		// At most 50 instances in flight: compared with the static fan-out,
		// not held to its target.
		row[0].Target, row[0].Verdict = "compare with #4", "info"
	}
	return row, nil
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
	// measure runs one part; run returns the units it did (known only
	// afterwards when a time limit cut it short).
	measure := func(name string, run func() (int, error), flush func()) error {
		s0, err := e.db.snapshot(ctx)
		if err != nil {
			return err
		}
		px.reset()
		units, err := run()
		trips, up, dn := px.trips.Load(), px.upBytes.Load(), px.dnBytes.Load()
		flush()
		if err != nil {
			return err
		}
		if units == 0 {
			return fmt.Errorf("%s: nothing finished within the time limit", name)
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
	// Per-unit figures need few units: the quick run keeps them small, and
	// time limits keep a slow engine from stretching the run.
	nSeq, nConc, limit := e.opts.n(200, 20), e.opts.n(1000, 50), 20*time.Second
	if e.opts.Quick {
		nSeq, nConc, limit = 20, 100, 5*time.Second
	}

	// One task at a time.
	srv, err := e.server(ctx, purl)
	if err != nil {
		return nil, err
	}
	time.Sleep(300 * time.Millisecond) // startup heartbeat and sweep
	var ids []uuid.UUID
	var closePool func()
	err = measure("task created (store.CreateTask)", func() (int, error) {
		var err error
		ids, closePool, err = create(nSeq)
		return len(ids), err
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
	var unused []uuid.UUID // created, never woken: cancelled after the measurement
	err = measure("step executed, one task at a time", func() (int, error) {
		// unwoken is where the tasks never woken start (drain cancels a
		// woken one that did not finish).
		end, done, unwoken := time.Now().Add(limit), 0, len(ids)
		for i, id := range ids {
			if time.Now().After(end) {
				unwoken = i
				break
			}
			if err := srv.Queue.Send(ctx, wakes([]uuid.UUID{id})); err != nil {
				return 0, err
			}
			if left, err := e.drain(ctx, srv, []uuid.UUID{id}, limit); err != nil {
				return 0, err
			} else if left > 0 {
				unwoken = i + 1
				break
			}
			done++
		}
		unused = ids[unwoken:]
		return 4 * done, nil
	}, func() { closeServer(srv) })
	if err != nil {
		return nil, err
	}
	w.Conns = px.conns.Load() - conns0
	// Tasks never woken would be found by the next server's sweep.
	if err := e.cancelTasks(ctx, unused); err != nil {
		return nil, err
	}

	// Many tasks at once.
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
	err = measure(fmt.Sprintf("step executed, %d tasks woken at once", nConc), func() (int, error) {
		if err := srv.Queue.Send(ctx, wakes(ids)); err != nil {
			return 0, err
		}
		left, err := e.drain(ctx, srv, ids, 2*limit)
		if left > 0 {
			e.note("#7: %d of %d tasks woken at once did not finish within %s and were cancelled; the per-step figures count the finished ones only", left, nConc, 2*limit)
		}
		return 4 * (len(ids) - left), err
	}, func() { closeServer(srv) })
	if err != nil {
		return nil, err
	}
	return w, nil
}

// cancelTasks cancels tasks through the store directly, on a connection
// of its own (not the counting proxy), while no engine runs.
func (e *env) cancelTasks(ctx context.Context, ids []uuid.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	pool, err := pgxpool.New(ctx, e.db.url)
	if err != nil {
		return err
	}
	defer pool.Close()
	st, err := store.New(pool)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := st.CancelTask(ctx, id, time.Now().UTC(), "bench", "benchmark time limit"); err != nil {
			return fmt.Errorf("cancel unused task %s: %w", id, err)
		}
	}
	return nil
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
