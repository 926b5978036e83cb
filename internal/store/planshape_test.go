package store_test

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/json"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/taskerhq/tasker/internal/pgtest"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/store/dbgen"
	tasksql "github.com/taskerhq/tasker/sql"
)

// Plan-shape tests (docs/architecture.md, "Cost follows the work"): every
// named query in sql/queries runs against a database holding 100,000 live
// steps whose statistics are missing or stale, and auto_explain reports the
// plan of every statement it executes, including those nested in the SQL
// functions it calls. No plan may scan a big table sequentially, walk a
// whole index without a bound, or examine more rows than its batch accounts
// for.

// bigTables are the tables that grow with history and live work.
var bigTables = map[string]bool{
	"tasker_tasks": true, "tasker_steps": true, "tasker_step_edges": true, "tasker_transitions": true,
	"tasker_task_tags":    true,
	"tasker_blobs":        true,
	"tasker_rate_buckets": true,
}

// planFixture is one database the plan shapes are checked on. Live tasks
// each have 4 steps (a done, b in flight, c pending on a and b, d waiting for
// a retry); pending tasks 2 pending steps; history tasks 4 complete steps.
// The first live task also runs a map step (m, max_concurrency 50) with
// 10,000 instances (200 in the small fixture): 30 complete, 40 in flight,
// the rest pending. Every 50th live task (from the 25th) has a step waiting
// on a child task that has ended (complete or error), with one step. The
// first step of every 7th pending task has a rate limit (one of 3 keys
// among 10,000 buckets), so passes spend tokens.
type planFixture struct {
	name                string
	live, pending, hist int
	batch               int
	staleStats          bool
	// rowBudget bounds the rows one statement may examine in the big
	// tables (returned plus filtered out, times loops): a few per row of its
	// batch, far below the live rows.
	rowBudget int
}

// mapInstances is the size of the fixture's map step (see seed).
func mapInstances(f planFixture) int {
	if f.live >= 1000 {
		return 10000
	}
	return 200
}

var planFixtures = []planFixture{
	// 100,000 live steps, never analysed: reltuples -1, no pg_statistic.
	{name: "never_analysed", live: 25000, pending: 12500, hist: 10000, batch: 50, rowBudget: 2000},
	// The same, analysed while the tables held a handful of rows.
	{name: "stale_statistics", live: 25000, pending: 12500, hist: 10000, batch: 50, staleStats: true, rowBudget: 2000},
	// A young database: the planner may think walking every live row is
	// cheap, but a pass over 5 tasks must still touch only their rows.
	{name: "small", live: 300, pending: 150, hist: 100, batch: 5, rowBudget: 150},
}

var (
	fixtureNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
)

const fidSQL = `CREATE FUNCTION pg_temp.fid(kind text, n int) RETURNS uuid LANGUAGE sql IMMUTABLE AS
$$ SELECT md5(kind || '-' || n)::uuid $$`

// seedSQL is run statement by statement (split on blank lines after ';').
const seedSQL = `
INSERT INTO tasker_tasks (id, namespace, name, version, status, context, correlation_id, created_at, updated_at, started_at, completed_at, tags,
                          concurrency_key, concurrency_limit)
SELECT pg_temp.fid('task', g), 'plan', CASE WHEN g % 2 = 0 THEN 'even' ELSE 'odd' END, '1.0.0',
       CASE WHEN g <= $1::int THEN 'in_progress' WHEN g <= $1::int + $2::int THEN 'pending' ELSE 'complete' END,
       '{"n":1}', 'corr-' || g, $4::timestamptz - g * interval '1 s', $4, $4,
       CASE WHEN g > $1::int + $2::int THEN $4::timestamptz - interval '40 days' - g * interval '1 s' END,
       ARRAY['plan:all', 'g:' || (g % 100)],
       -- Task concurrency: 1 in 50 running tasks under key acme (limit 3,
       -- full), and 1 in 5000 pending ones (in the big fixtures, some of
       -- the pass's pending tasks: held; the others claim); 1 in 50
       -- pending tasks under key fin (limit 10).
       CASE WHEN (g <= $1::int AND g % 50 = 1) OR (g > $1::int AND g <= $1::int + $2::int AND g % 5000 = 1)
                THEN 'plan/odd' || chr(31) || 'acme'
            WHEN g > $1::int AND g <= $1::int + $2::int AND g % 50 = 2 THEN 'plan/odd' || chr(31) || 'fin' END,
       CASE WHEN (g <= $1::int AND g % 50 = 1) OR (g > $1::int AND g <= $1::int + $2::int AND g % 5000 = 1) THEN 3
            WHEN g > $1::int AND g <= $1::int + $2::int AND g % 50 = 2 THEN 10 END
FROM generate_series(1, $1::int + $2::int + $3::int) g;

INSERT INTO tasker_tasks (id, namespace, name, version, status, context, correlation_id, created_at, updated_at, started_at,
                          concurrency_key, concurrency_limit)
SELECT pg_temp.fid('fin', k), 'plan', 'odd', '1.0.0', 'in_progress', '{}', 'corr-fin-' || k, $1::timestamptz, $1, $1,
       'plan/odd' || chr(31) || 'fin', 10
FROM generate_series(1, 5) k;

INSERT INTO tasker_steps (id, task_id, name, position, handler, config, state, attempts, retry_limit, max_attempts,
                          backoff_base_ms, max_backoff_ms, jitter, timeout_seconds, result, created_at, updated_at)
SELECT pg_temp.fid('finstep', k), pg_temp.fid('fin', k), 's0', 0, 'plan.noop', '{}', 'complete', 1, 3, 3, 1000, 300000, 0, 300,
       '{"ok":true}', $1::timestamptz, $1
FROM generate_series(1, 5) k;

INSERT INTO tasker_task_tags (tag, created_at, task_id)
SELECT g.tag, t.created_at, t.id FROM tasker_tasks t CROSS JOIN LATERAL unnest(t.tags) AS g(tag)
WHERE $1::timestamptz IS NOT NULL;

INSERT INTO tasker_steps (id, task_id, name, position, handler, config, state, attempts, retry_limit, max_attempts,
                          backoff_base_ms, max_backoff_ms, jitter, timeout_seconds, next_retry_at, deadline_at,
                          claimed_by, result, created_at, updated_at, concurrency_key, concurrency_limit, trigger_rule)
SELECT pg_temp.fid('step', g * 4 + j), pg_temp.fid('task', g), 's' || j, j, 'plan.noop', '{}',
       CASE
           WHEN g > $1::int + $2::int THEN 'complete'
           WHEN g > $1::int THEN 'pending'
           ELSE (ARRAY['complete', 'in_progress', 'pending', 'waiting_for_retry'])[j + 1]
       END,
       CASE WHEN g <= $1::int AND j IN (0, 1, 3) THEN 1 ELSE 0 END, 3, 3, 1000, 300000, 0, 300,
       CASE WHEN g <= $1::int AND j = 3 THEN $4::timestamptz + interval '1 hour' END,
       CASE WHEN g <= $1::int AND j = 1 THEN $4::timestamptz + interval '1 hour' END,
       CASE WHEN g <= $1::int AND j = 1 THEN 'plan-instance' END,
       CASE WHEN g > $1::int + $2::int OR (g <= $1::int AND j = 0) THEN '{"ok":true}'::jsonb END,
       $4, $4,
       CASE WHEN j = 2 AND g % 10 = 0 THEN 'plan/capped' WHEN j = 1 AND g % 500 = 1 THEN 'plan/inflight' END,
       CASE WHEN j = 2 AND g % 10 = 0 THEN 5 WHEN j = 1 AND g % 500 = 1 THEN 100 END,
       CASE WHEN j = 2 AND g % 3 = 1 THEN 'one_failed' WHEN j = 2 AND g % 3 = 2 THEN 'all_done' ELSE 'all_success' END
FROM generate_series(1, $1::int + $2::int + $3::int) g
CROSS JOIN generate_series(0, 3) j
WHERE g <= $1::int OR g > $1::int + $2::int OR j < 2;

UPDATE tasker_steps s
SET rate_key = 'plan/rated' || E'\x1f' || (g % 3), rate_per_second = 2, rate_burst = 3
FROM generate_series($1::int + 1, $1::int + $2::int) g
WHERE g % 7 = 0 AND s.id = pg_temp.fid('step', g * 4) AND $3::int >= 0;

INSERT INTO tasker_rate_buckets (key, tokens, refilled_at, per_second, burst, full_at)
SELECT 'plan/rated' || E'\x1f' || k, 0.5, $1::timestamptz - interval '1 s', 2, 3,
       $1::timestamptz - interval '1 s' + CASE WHEN k % 100 = 0 THEN interval '0.5 s' ELSE interval '1 hour' END
FROM generate_series(0, 9999) k
ON CONFLICT (key) DO NOTHING;

INSERT INTO tasker_step_edges (task_id, from_step_id, to_step_id)
SELECT pg_temp.fid('task', g), pg_temp.fid('step', g * 4 + e.f), pg_temp.fid('step', g * 4 + e.t)
FROM generate_series(1, $1::int + $2::int + $3::int) g
CROSS JOIN (VALUES (0, 2), (1, 2), (2, 3)) e(f, t)
WHERE g <= $1::int OR g > $1::int + $2::int
UNION ALL
SELECT pg_temp.fid('task', g), pg_temp.fid('step', g * 4), pg_temp.fid('step', g * 4 + 1)
FROM generate_series($1::int + 1, $1::int + $2::int) g;

INSERT INTO tasker_transitions (task_id, step_id, from_state, to_state, attempt, reason, actor, created_at)
SELECT s.task_id, s.id, 'pending', s.state, s.attempts, 'seeded', 'plan', $1::timestamptz - interval '1 day'
FROM tasker_steps s;

INSERT INTO tasker_steps (id, task_id, name, position, handler, config, state, attempts, retry_limit, max_attempts,
                          backoff_base_ms, max_backoff_ms, jitter, timeout_seconds, wake_at, wait_kind,
                          wait_timeout_seconds, created_at, updated_at)
SELECT pg_temp.fid('wait', g), pg_temp.fid('task', g), 'w', 4, 'tasker.callback', '{}', 'waiting', 1, 3, 3, 1000, 300000, 0,
       300, $4::timestamptz + CASE WHEN g % 100 = 0 THEN -interval '1 minute' ELSE g * interval '1 minute' END,
       CASE WHEN g % 2 = 0 THEN 'timer' ELSE 'callback' END, 3600, $4, $4
FROM generate_series(1, $1::int) g
WHERE $2::int >= 0 AND $3::int >= 0;

INSERT INTO tasker_steps (id, task_id, name, position, handler, config, state, attempts, retry_limit, max_attempts,
                          backoff_base_ms, max_backoff_ms, jitter, timeout_seconds, wait_kind, created_at, updated_at)
SELECT pg_temp.fid('kstep', g), pg_temp.fid('task', g), 'k', 6, 'tasker.workflow', '{}', 'waiting', 1, 3, 3, 1000, 300000, 0,
       300, 'child', $4, $4
FROM generate_series(25, $1::int, 50) g
WHERE $2::int >= 0 AND $3::int >= 0;

INSERT INTO tasker_tasks (id, namespace, name, version, status, context, correlation_id, created_at, updated_at, started_at,
                          completed_at, idempotency_scope, idempotency_key, parent_step_id, parent_task_id)
SELECT pg_temp.fid('child', g), 'plan', 'child', '1.0.0', CASE WHEN g % 100 = 25 THEN 'complete' ELSE 'error' END, '{}',
       'corr-' || g, $4, $4, $4, $4, 'child', 'child:' || pg_temp.fid('kstep', g) || ':1', pg_temp.fid('kstep', g),
       pg_temp.fid('task', g)
FROM generate_series(25, $1::int, 50) g
WHERE $2::int >= 0 AND $3::int >= 0;

INSERT INTO tasker_steps (id, task_id, name, position, handler, config, state, attempts, retry_limit, max_attempts,
                          backoff_base_ms, max_backoff_ms, jitter, timeout_seconds, result, created_at, updated_at, completed_at)
SELECT pg_temp.fid('cstep', g), pg_temp.fid('child', g), 'pack', 0, 'plan.noop', '{}',
       CASE WHEN g % 100 = 25 THEN 'complete' ELSE 'error' END, 1, 3, 3, 1000, 300000, 0, 300,
       CASE WHEN g % 100 = 25 THEN '{"box":1}'::jsonb END, $4, $4, $4
FROM generate_series(25, $1::int, 50) g
WHERE $2::int >= 0 AND $3::int >= 0;

INSERT INTO tasker_blobs (key, task_id, data, created_at)
SELECT 'tasks/' || pg_temp.fid('task', g) || '/context', pg_temp.fid('task', g), '\x7b7d'::bytea, $4::timestamptz
FROM generate_series(1, $1::int) g
WHERE $2::int >= 0 AND $3::int >= 0
ON CONFLICT (key) DO NOTHING;

INSERT INTO tasker_steps (id, task_id, name, position, handler, config, state, attempts, retry_limit, max_attempts,
                          backoff_base_ms, max_backoff_ms, jitter, timeout_seconds, wait_kind, map_max_concurrency,
                          map_tolerated, created_at, updated_at)
SELECT pg_temp.fid('map', 0), pg_temp.fid('task', 1), 'm', 5, 'plan.noop', '{}', 'waiting', 1, 3, 3, 1000, 300000, 0,
       300, 'map', 50, 0, $4, $4
WHERE $1::int > 0 AND $2::int >= 0 AND $3::int >= 0;

INSERT INTO tasker_steps (id, task_id, name, position, handler, config, state, attempts, retry_limit, max_attempts,
                          backoff_base_ms, max_backoff_ms, jitter, timeout_seconds, deadline_at, claimed_by, result,
                          map_parent_id, map_index, map_item, created_at, updated_at)
SELECT pg_temp.fid('inst', i), pg_temp.fid('task', 1), 'm[' || i || ']', 5, 'plan.noop', '{}',
       CASE WHEN i < 30 THEN 'complete' WHEN i < 70 THEN 'in_progress' ELSE 'pending' END,
       CASE WHEN i < 70 THEN 1 ELSE 0 END, 3, 3, 1000, 300000, 0, 300,
       CASE WHEN i >= 30 AND i < 70 THEN $4::timestamptz + interval '1 hour' END,
       CASE WHEN i >= 30 AND i < 70 THEN 'plan-instance' END,
       CASE WHEN i < 30 THEN to_jsonb(i) END,
       pg_temp.fid('map', 0), i, to_jsonb('file-' || i), $4, $4
FROM generate_series(0, CASE WHEN $1::int >= 1000 THEN 9999 ELSE 199 END) i
WHERE $1::int > 0 AND $2::int >= 0 AND $3::int >= 0;

INSERT INTO tasker_instances (id, local, started_at, heartbeat_at)
VALUES ('plan-instance', true, $1::timestamptz, $1::timestamptz),
       ('plan-dead', true, $1::timestamptz - interval '1 day', $1::timestamptz - interval '1 day')`

// fid mirrors pg_temp.fid: the md5 of the name as a uuid.
func fid(kind string, n int) uuid.UUID {
	return uuid.UUID(md5.Sum(fmt.Appendf(nil, "%s-%d", kind, n)))
}

// seedPlanFixture builds the fixture. With staleStats, statistics are taken
// while the tables hold a handful of rows, then the rest is loaded: the
// thin statistics of a young database. Otherwise the tables are never
// analysed (reltuples -1, no pg_statistic rows). Autovacuum is off for the
// tables throughout.
func seedPlanFixture(t *testing.T, f planFixture) string {
	t.Helper()
	ctx := context.Background()
	url := pgtest.URL(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for tbl := range bigTables {
		mustExec(t, conn, "ALTER TABLE "+tbl+" SET (autovacuum_enabled = off, toast.autovacuum_enabled = off)")
	}
	mustExec(t, conn, fidSQL)
	seed := func(live, pending, history int, now time.Time) {
		t.Helper()
		for _, stmt := range strings.Split(seedSQL, ";\n\n") {
			args := []any{live, pending, history, now}
			if !strings.Contains(stmt, "$2") {
				args = []any{now}
			} else if !strings.Contains(stmt, "$4") {
				args = args[:3]
			}
			mustExec(t, conn, stmt, args...)
		}
	}
	if f.staleStats {
		// A young deployment: a few tasks when autovacuum last analysed.
		seed(10, 5, 5, fixtureNow.Add(-time.Hour))
		for tbl := range bigTables {
			mustExec(t, conn, "ANALYZE "+tbl)
		}
		mustExec(t, conn, "TRUNCATE tasker_tasks, tasker_instances CASCADE")
	}
	seed(f.live, f.pending, f.hist, fixtureNow)
	// A webhook subscription to every event, so each statement that
	// records transitions also runs the outbox trigger
	// (sql/functions/040_events.sql) under the same checks.
	mustExec(t, conn, `INSERT INTO tasker_subscriptions (id, url, events, secret, max_attempts, created_at)
		VALUES (gen_random_uuid(), 'https://example.com/hook', '{*}', 'plan-secret', 5, $1)`, fixtureNow)
	if !f.staleStats {
		mustExec(t, conn, `DELETE FROM pg_statistic WHERE starelid IN (SELECT oid FROM pg_class WHERE relname LIKE 'tasker\_%')`)
		mustExec(t, conn, `UPDATE pg_class SET reltuples = -1, relpages = 0 WHERE relname IN ('tasker_tasks', 'tasker_steps', 'tasker_step_edges', 'tasker_transitions', 'tasker_task_tags')`)
	}
	var live int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM tasker_steps WHERE state IN ('pending', 'waiting_for_retry', 'in_progress') AND map_parent_id IS NULL").Scan(&live); err != nil {
		t.Fatal(err)
	}
	if want := 3*f.live + 2*f.pending; live != want {
		t.Fatalf("fixture has %d live steps, want %d", live, want)
	}
	return url
}

func mustExec(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", firstLine(sql), err)
	}
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// namedQueries reads every "-- name: x" block of sql/queries.
func namedQueries(t *testing.T) map[string]string {
	t.Helper()
	files, err := fs.Glob(tasksql.Queries, "queries/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range files {
		data, err := fs.ReadFile(tasksql.Queries, f)
		if err != nil {
			t.Fatal(err)
		}
		var name string
		sc := bufio.NewScanner(strings.NewReader(string(data)))
		for sc.Scan() {
			line := sc.Text()
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "-- name:"); ok {
				name = strings.Fields(rest)[0]
				continue
			}
			if name != "" {
				out[name] += line + "\n"
			}
		}
	}
	return out
}

// planCase runs one named query with arguments built from the fixture.
type planCase struct {
	args func() []any
	// sql is the statement as sent: the dbgen constant sqlc compiles
	// from the query file, whose named parameters it numbers. args follow
	// the order of the generated method's parameters.
	sql string
	// indexPlans: the store runs the statement after IndexPlans.
	indexPlans bool
	// budget overrides the fixture's rowBudget for a statement bounded by
	// something other than its batch (a count cap); 0: the fixture's.
	budget int
	// skip says why a query has no plan to check.
	skip string
}

func planCases(f planFixture) map[string]planCase {
	now := fixtureNow
	n := f.batch
	batch := make([]uuid.UUID, n)
	stepIDs := make([]uuid.UUID, n)
	attempts := make([]int32, n)
	oks := make([]bool, n)
	results := make([]json.RawMessage, n)
	errs := make([]json.RawMessage, n)
	perm := make([]bool, n)
	after := make([]*int64, n)
	reasons := make([]string, n)
	skips := make([]bool, n)
	for i := range batch {
		g := 1 + i*(f.live/n) // spread over the live tasks
		batch[i] = fid("task", g)
		stepIDs[i], attempts[i], oks[i], reasons[i] = fid("step", g*4+1), 1, i%5 != 0, "succeeded"
		perm[i] = i%10 == 0  // failed for good: its dependents are skipped or run by their trigger rule
		skips[i] = i%10 == 3 // its when was false
		if oks[i] {
			results[i] = json.RawMessage(`{"done":true}`)
		} else {
			errs[i] = json.RawMessage(`{"message":"boom"}`)
		}
	}
	// An instance's result too, so the pass settles its map step.
	stepIDs, attempts, oks, perm, reasons, skips = append(stepIDs, fid("inst", 30)), append(attempts, 1),
		append(oks, true), append(perm, false), append(reasons, "succeeded"), append(skips, false)
	results, errs, after = append(results, json.RawMessage(`{"n":30}`)), append(errs, nil), append(after, nil)
	// Some pending tasks too, so claims start tasks; in the big fixtures
	// some of them hold task concurrency key acme (limit 3, full: held),
	// and some step results free slots of key plan/inflight
	// (docs/architecture.md, "Flow control").
	var pendingBatch []uuid.UUID
	for i := range n / 5 {
		pendingBatch = append(pendingBatch, fid("task", f.live+1+i*(f.pending/(n/5))))
	}
	batch = append(batch, pendingBatch...)
	// Tasks of key fin with nothing left to run: the pass finalizes them
	// and wakes the oldest pending tasks of their key.
	for k := 1; k <= 5; k++ {
		batch = append(batch, fid("fin", k))
	}
	liveTask := fid("task", 7)
	waitIDs, waitAttempts := make([]uuid.UUID, n), make([]int32, n)
	for i := range waitIDs {
		waitIDs[i], waitAttempts[i] = fid("wait", 100*(i+1)), 1 // due
	}
	fireRuns, listRuns, instanceRuns := 0, 0, 0
	histBatch := make([]uuid.UUID, n)
	for i := range histBatch {
		histBatch[i] = fid("task", f.live+f.pending+1+i*(f.hist/n))
	}
	doneTask := fid("task", f.live+f.pending+3)
	ratedTask := fid("task", (f.live/7+1)*7) // the first pending task with a rate limit
	return map[string]planCase{
		// The engine's queries run without IndexPlans: the functions they
		// call carry the same planner settings.
		"SchedulerPass": {sql: dbgen.SchedulerPass, args: func() []any {
			return []any{now, "plan-actor", batch, stepIDs, attempts, oks, results, errs, perm, after, reasons,
				int32(100), int32(0), int32(30), skips}
		}},
		"ReleaseClaims": {sql: dbgen.ReleaseClaims, args: func() []any {
			return []any{now, stepIDs, attempts, reasons, int32(1000), "plan-actor"}
		}},
		// Every in-flight step is past its deadline, and one stale
		// instance holds work: each part must still stop at its limit. Its
		// walk over live tasks examines a window of 500 (p_scan).
		"SweepScan": {sql: dbgen.SweepScan, budget: 10 * 500, args: func() []any {
			return []any{now.Add(2 * time.Hour), int32(100), uuid.Nil, int32(500), "plan-actor", now.Add(time.Minute)}
		}},
		// 1 % of the 10,000 buckets are full; the delete stops at its limit.
		"PruneRateBuckets": {sql: dbgen.PruneRateBuckets, indexPlans: true, args: func() []any { return []any{now, int32(50)} }},
		"Heartbeat":        {sql: dbgen.Heartbeat, args: func() []any { return []any{"plan-actor", true, now, now.Add(-time.Hour)} }},
		"CreateTask": {sql: dbgen.CreateTask, args: func() []any {
			s1, s2 := uuid.New(), uuid.New()
			cond := "context.n > 0"
			k, h := "plan-idem", "plan-hash"
			return []any{uuid.New(), "plan", "odd", "1.0.0", json.RawMessage(`{}`), "", "", "", []string{"a"},
				"sub:plan", &k, &h, "corr", now, "actor",
				[]uuid.UUID{s1, s2}, []string{"a", "b"}, []string{"plan.noop", "plan.noop"},
				[]json.RawMessage{json.RawMessage(`{}`), json.RawMessage(`{}`)},
				[]int32{3, 3}, []int32{1000, 1000}, []int32{300000, 300000}, []float32{0.1, 0.1}, []int32{300, 300},
				[]*string{nil, nil}, []*int32{nil, nil}, []uuid.UUID{s1}, []uuid.UUID{s2},
				[]string{"all_success", "one_failed"}, []*string{nil, &cond}}
		}},
		// Waits (sql/functions/030_waits.sql). Every live task has a waiting
		// step; 1 % of them are due. FireWaits alternates between the
		// sweep's scan (soonest due first, by tasker_steps_waiting_due) and
		// a wake-up's named attempts, so both shapes are checked.
		"ParkSteps": {sql: dbgen.ParkSteps, args: func() []any {
			kinds, wakes, timeouts := make([]string, n), make([]time.Time, n), make([]int32, n)
			for i := range kinds {
				kinds[i], wakes[i], timeouts[i] = "callback", now.Add(time.Hour), 3600
			}
			return []any{now, "plan-actor", stepIDs, attempts, kinds, wakes, timeouts, reasons}
		}},
		// Map steps (sql/functions/045_map.sql): every in-flight step of
		// the batch expands into 3 instances.
		"ExpandMaps": {sql: dbgen.ExpandMaps, args: func() []any {
			items, conc, tol := make([]json.RawMessage, n), make([]int32, n), make([]int32, n)
			for i := range items {
				items[i], conc[i] = json.RawMessage(`["a","b","c"]`), 10
			}
			return []any{now, "plan-actor", stepIDs[:n], attempts[:n], items, conc, tol}
		}},
		// Child workflows (sql/functions/050_children.sql): every in-flight
		// step of the batch parks on a child (another live task), the
		// finalized tasks of a pass settle their parents, the sweep looks
		// for ended children, a cancel for live ones.
		"ParkChildren": {sql: dbgen.ParkChildren, args: func() []any {
			kids := make([]uuid.UUID, n)
			for i := range kids {
				kids[i] = fid("task", 2+i*(f.live/n))
			}
			return []any{now, "plan-actor", stepIDs[:n], attempts[:n], kids}
		}},
		// The finalized children of a pass (every other one complete, the
		// others in error) among tasks without a parent.
		"SettleChildren": {sql: dbgen.SettleChildren, args: func() []any {
			ids := slices.Clone(batch)
			for i := range n {
				ids = append(ids, fid("child", 25+50*(i%max(1, f.live/50))))
			}
			return []any{now, "plan-actor", ids}
		}},
		"EndedChildren": {sql: dbgen.EndedChildren, args: func() []any { return []any{int32(100)} }},
		"LiveChildren":  {sql: dbgen.LiveChildren, args: func() []any { return []any{batch} }},
		"FireWaits": {sql: dbgen.FireWaits, args: func() []any {
			fireRuns++
			if fireRuns%2 == 0 {
				return []any{now, "plan-actor", nil, nil, int32(100)}
			}
			return []any{now, "plan-actor", waitIDs, waitAttempts, int32(0)}
		}},
		"Callback": {sql: dbgen.Callback, args: func() []any {
			step := "w"
			return []any{now, "plan-actor", nil, &liveTask, &step, nil, nil, "success", json.RawMessage(`{"ok":1}`),
				nil, nil, nil, "callback", int32(30)}
		}},
		"StepResults": {sql: dbgen.StepResults, args: func() []any {
			names := make([]string, n)
			for i := range names {
				names[i] = fmt.Sprintf("s%d", i%4) // the steps of every seeded task
			}
			return []any{batch[:n], names}
		}},
		// Schedules (migration 0014): a table of one row per schedule
		// entry; each statement is keyed by id or walks the due index.
		"SyncSchedules": {sql: dbgen.SyncSchedules, args: func() []any {
			return []any{now, []string{"plan"}, []string{"odd"}, []int32{0}, []string{"rate(5m0s)"}, []time.Time{now}}
		}},
		"DueSchedules": {sql: dbgen.DueSchedules, args: func() []any { return []any{now, int32(100)} }},
		"ClaimScheduleFire": {sql: dbgen.ClaimScheduleFire, args: func() []any {
			return []any{now.Add(time.Minute), &now, nil, now, int64(1), now, "rate(5m0s)"}
		}},
		"ListSchedules": {sql: dbgen.ListSchedules, args: func() []any { return []any{int32(store.MaxSchedules)} }},
		"ReadSchedule":  {sql: dbgen.ReadSchedule, args: func() []any { return []any{int64(1)} }},
		"ListTemplateSchedules": {sql: dbgen.ListTemplateSchedules, args: func() []any {
			return []any{"plan", "odd", int32(store.MaxTemplateSchedules)}
		}},
		"SetSchedulePaused": {sql: dbgen.SetSchedulePaused, args: func() []any { return []any{true, nil, now, int64(1)} }},
		"SetTraceParent":    {sql: dbgen.SetTraceParent, args: func() []any { return []any{"00-abc-def-01", liveTask} }},
		"SetTaskConcurrency": {sql: dbgen.SetTaskConcurrency, args: func() []any {
			return []any{"plan/odd\x1facme", int32(3), liveTask}
		}},
		// Wake-ups after a cancel: the batch's in-flight steps (some under
		// key plan/inflight, whose pending steps are walked in a window) and
		// tasks of key fin (live here, so none of their slots is free).
		"FlowControlWakes": {sql: dbgen.FlowControlWakes, args: func() []any {
			fins := make([]uuid.UUID, 5)
			for k := range fins {
				fins[k] = fid("fin", k+1)
			}
			return []any{now, stepIDs[:n], append(fins, batch[:n]...)}
		}},
		// Why pending tasks (key acme, full) wait: counts stop at the limit.
		"TaskBlockedReasons": {sql: dbgen.TaskBlockedReasons, indexPlans: true, args: func() []any { return []any{pendingBatch} }},
		// Rate limits of created steps (the batch's in-flight steps here).
		"SetStepRateLimits": {sql: dbgen.SetStepRateLimits, args: func() []any {
			keys, rates, bursts := make([]string, n), make([]float64, n), make([]int32, n)
			for i := range keys {
				keys[i], rates[i], bursts[i] = "plan/new", 1, 1
			}
			return []any{stepIDs[:n], keys, rates, bursts}
		}},

		// Reads and operator actions: the store runs them after IndexPlans
		// (reads in a snapshot, operator actions in their transaction),
		// except ListTasks and ReadTaskExists.
		"LockTask":         {sql: dbgen.LockTask, indexPlans: true, args: func() []any { return []any{liveTask} }},
		"CancelSteps":      {sql: dbgen.CancelSteps, indexPlans: true, args: func() []any { return []any{now, liveTask, "plan", "actor"} }},
		"SetTaskStatus":    {sql: dbgen.SetTaskStatus, indexPlans: true, args: func() []any { return []any{liveTask, "cancelled", "plan", "actor", now} }},
		"RetryFailedSteps": {sql: dbgen.RetryFailedSteps, indexPlans: true, args: func() []any { return []any{now, liveTask, "plan", "actor"} }},
		// The walk from the roots stops at steps that are not skipped.
		"ResetSkippedDescendants": {sql: dbgen.ResetSkippedDescendants, indexPlans: true, args: func() []any {
			return []any{[]uuid.UUID{fid("step", 7*4), fid("step", 7*4+1)}, now, liveTask, "plan", "actor"}
		}},
		"ResolveStep": {sql: dbgen.ResolveStep, indexPlans: true, args: func() []any {
			return []any{liveTask, "s1", nil, now, "plan", "actor"}
		}},
		"SnapshotBegin":    {skip: "transaction control"},
		"SnapshotEnd":      {skip: "transaction control"},
		"IndexPlans":       {skip: "planner settings"},
		"CustomPlans":      {skip: "planner settings"},
		"ReadTask":         {sql: dbgen.ReadTask, indexPlans: true, args: func() []any { return []any{doneTask} }},
		"ReadTaskSteps":    {sql: dbgen.ReadTaskSteps, indexPlans: true, args: func() []any { return []any{now, liveTask} }},
		"ReadTaskParent":   {sql: dbgen.ReadTaskParent, indexPlans: true, args: func() []any { return []any{liveTask} }},
		"ReadTaskChildren": {sql: dbgen.ReadTaskChildren, indexPlans: true, args: func() []any { return []any{liveTask} }},
		"ReadStep":         {sql: dbgen.ReadStep, indexPlans: true, args: func() []any { return []any{now, liveTask, "s2"} }},
		// A pending task's first step, rate limited with an empty bucket:
		// the blocked reason probes its bucket (sql/functions/060_step_blocked.sql).
		"ReadStep/rated":      {sql: dbgen.ReadStep, indexPlans: true, args: func() []any { return []any{now, ratedTask, "s0"} }},
		"ReadStepTransitions": {sql: dbgen.ReadStepTransitions, indexPlans: true, args: func() []any { return []any{liveTask, "s2"} }},
		"ReadTaskExists":      {sql: dbgen.ReadTaskExists, args: func() []any { return []any{doneTask} }},
		// ListTasks alternates its filters: workflow and status; a
		// correlation id (tasker_tasks_correlation); a created range.
		"ListTasks": {sql: dbgen.ListTasks, indexPlans: true, args: func() []any {
			listRuns++
			switch listRuns % 3 {
			case 0:
				return []any{"plan", "odd", "in_progress", nil, nil, nil, nil, now.Add(-time.Hour), uuid.Max, int32(n)}
			case 1:
				return []any{nil, nil, nil, nil, "corr-7", nil, nil, nil, nil, int32(n)}
			default:
				return []any{nil, nil, nil, nil, nil, now.Add(-time.Hour), now.Add(-time.Minute), nil, nil, int32(n)}
			}
		}},
		// Search and history (sql/queries/ops.sql).
		"ListTasksByTag": {sql: dbgen.ListTasksByTag, indexPlans: true, args: func() []any {
			return []any{"g:7", []string{"plan:all"}, "plan", nil, []string{"in_progress", "pending", "complete"}, nil,
				now.Add(-24 * time.Hour), now, nil, nil, int32(n)}
		}},
		"ListTasksByUpdated": {sql: dbgen.ListTasksByUpdated, indexPlans: true, args: func() []any {
			return []any{now.Add(-time.Hour), now.Add(time.Second), "plan", nil, nil, nil, nil, nil, nil, now.Add(time.Second), uuid.Max, int32(n)}
		}},
		"ReadTaskTransitions": {sql: dbgen.ReadTaskTransitions, indexPlans: true, args: func() []any { return []any{liveTask, int64(0), int32(n)} }},
		// Retention: the oldest finished tasks, a batch of them exported
		// and deleted with everything that cascades.
		"PruneCandidates": {sql: dbgen.PruneCandidates, indexPlans: true, args: func() []any { return []any{now, int32(n)} }},
		"PruneCount": {sql: dbgen.PruneCount, indexPlans: true, budget: store.PruneCountCap,
			args: func() []any { return []any{now, int32(store.PruneCountCap)} }},
		"ExportTasks": {sql: dbgen.ExportTasks, indexPlans: true, args: func() []any { return []any{histBatch} }},
		"DeleteTasks": {sql: dbgen.DeleteTasks, indexPlans: true, args: func() []any { return []any{histBatch, now} }},
		// Health counts stop at StatusCountCap per state.
		"StatusTaskCounts": {sql: dbgen.StatusTaskCounts, indexPlans: true, budget: 6 * store.StatusCountCap,
			args: func() []any { return []any{int32(store.StatusCountCap)} }},
		// Its pending count may walk an index shared with waiting_for_retry
		// and filter those out: up to half again over the cap.
		"StatusLiveStepCounts": {sql: dbgen.StatusLiveStepCounts, indexPlans: true, budget: 5 * store.StatusCountCap,
			args: func() []any { return []any{int32(store.StatusCountCap)} }},
		"StatusRecentOutcomes": {sql: dbgen.StatusRecentOutcomes, indexPlans: true, budget: store.StatusCountCap,
			args: func() []any { return []any{now.Add(-5 * time.Minute), int32(store.StatusCountCap)} }},
		"PutBlob": {sql: dbgen.PutBlob, args: func() []any {
			return []any{"tasks/" + liveTask.String() + "/context", liveTask, []byte(`{"n":2}`)}
		}},
		"GetBlob":  {sql: dbgen.GetBlob, args: func() []any { return []any{"tasks/" + liveTask.String() + "/context"} }},
		"BlobSize": {sql: dbgen.BlobSize, args: func() []any { return []any{"tasks/" + liveTask.String() + "/context"} }},
		"StatusInFlight": {sql: dbgen.StatusInFlight, indexPlans: true, budget: store.StatusCountCap,
			args: func() []any { return []any{int32(store.StatusCountCap)} }},

		// Webhook subscriptions and adaptive concurrency (sql/queries/events.sql):
		// small tables of their own, never the big ones.
		"CreateSubscription": {sql: dbgen.CreateSubscription, args: func() []any {
			return []any{uuid.New(), "https://example.com/hook", []string{"task.*"}, "secret", "", int32(5), now}
		}},
		"ListSubscriptions":  {sql: dbgen.ListSubscriptions, args: func() []any { return nil }},
		"DeleteSubscription": {sql: dbgen.DeleteSubscription, args: func() []any { return []any{uuid.New()} }},
		"ClaimDeliveries": {sql: dbgen.ClaimDeliveries, args: func() []any {
			return []any{now.Add(time.Minute), now, int32(100)}
		}},
		"FinishDeliveries": {sql: dbgen.FinishDeliveries, args: func() []any {
			return []any{now, []int64{1}, []int32{1}, []string{"delivered"}, []time.Time{now}, []int32{200}, []string{""}, []float64{1}}
		}},
		"PruneDeliveries": {sql: dbgen.PruneDeliveries, args: func() []any { return []any{now, int32(200)} }},
		"ListDeliveries":  {sql: dbgen.ListDeliveries, args: func() []any { return []any{uuid.New(), int32(50)} }},
		"RecordPressure": {sql: dbgen.RecordPressure, args: func() []any {
			return []any{"plan-actor", now, float32(1), float32(0), int32(10), int32(1), int32(0)}
		}},
		"ReadPressure": {sql: dbgen.ReadPressure, args: func() []any { return []any{now.Add(-time.Minute)} }},
		// Template analytics: bounded by the window and the task cap, each
		// task's rows reached by key.
		// Analytics reads every step of the window's tasks, map instances
		// included: its cost follows the runs in the window (a fixture task
		// holds a map of 200 or 10,000 instances), bounded by max_tasks.
		"TemplateStepStats": {sql: dbgen.TemplateStepStats, indexPlans: true, budget: f.rowBudget + mapInstances(f), args: func() []any {
			return []any{"plan", "odd", now.Add(-time.Hour), now, int32(n)}
		}},
		// A page of the fixture's map step's instances (10,000 or 200),
		// alternately unfiltered, of a state some hold (complete) and of
		// one none holds (error): the filtered walk stops at
		// InstanceScanLimit whatever it finds.
		"ReadMapStep": {sql: dbgen.ReadMapStep, indexPlans: true, args: func() []any { return []any{"m", fid("task", 1)} }},
		"ListMapInstances": {sql: dbgen.ListMapInstances, indexPlans: true, budget: store.InstanceScanLimit + 10, args: func() []any {
			instanceRuns++
			switch instanceRuns % 3 {
			case 0:
				return []any{int32(store.InstanceInlineResult), int32(100), int32(51), fid("task", 1), "m", nil, int32(51)}
			case 1:
				return []any{int32(store.InstanceInlineResult), int32(-1), int32(store.InstanceScanLimit), fid("task", 1), "m", "complete", int32(51)}
			default:
				return []any{int32(store.InstanceInlineResult), int32(-1), int32(store.InstanceScanLimit), fid("task", 1), "m", "error", int32(501)}
			}
		}},
		"MapInstancesScanned": {sql: dbgen.MapInstancesScanned, indexPlans: true, budget: store.InstanceScanLimit + 10, args: func() []any {
			return []any{int32(-1), int32(store.InstanceScanLimit), fid("task", 1), "m"}
		}},
		"TemplateTaskCount": {sql: dbgen.TemplateTaskCount, indexPlans: true, args: func() []any {
			return []any{"plan", "odd", now.Add(-time.Hour), now, int32(n)}
		}},
	}
}

func TestPlanShapes(t *testing.T) {
	for _, f := range planFixtures {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			url := seedPlanFixture(t, f)
			queries := namedQueries(t)
			cases := planCases(f)
			for q := range queries {
				if _, ok := cases[q]; !ok {
					t.Errorf("query %q has no plan-shape case: add one to planCases", q)
				}
			}
			for q, c := range cases {
				// "Query/variant" runs Query with other arguments.
				name, _, _ := strings.Cut(q, "/")
				sql, ok := queries[name]
				if !ok {
					t.Errorf("plan-shape case %q names no query in sql/queries", q)
					continue
				}
				if c.skip != "" {
					continue
				}
				if c.sql != "" {
					sql = c.sql
				}
				if c.budget == 0 {
					c.budget = f.rowBudget
				}
				t.Run(q, func(t *testing.T) { checkPlans(t, url, sql, c) })
			}
		})
	}
}

// checkPlans runs sql seven times (past the custom plans PL/pgSQL makes
// before it may switch to a generic one), each in a transaction rolled back,
// on a fresh connection with auto_explain reporting every statement's
// executed plan as a notice.
func checkPlans(t *testing.T, url, sql string, c planCase) {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var plans []string
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		if _, p, ok := strings.Cut(n.Message, "plan:\n"); ok {
			mu.Lock()
			plans = append(plans, p)
			mu.Unlock()
		}
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, s := range []string{
		"LOAD 'auto_explain'",
		"SET auto_explain.log_min_duration = 0",
		"SET auto_explain.log_analyze = on",
		"SET auto_explain.log_timing = off",
		"SET auto_explain.log_nested_statements = on",
		"SET auto_explain.log_format = json",
		"SET auto_explain.log_level = notice",
	} {
		mustExec(t, conn, s)
	}
	lead := leadingColumns(t, conn)
	for range 7 {
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c.indexPlans {
			if _, err := tx.Exec(ctx, dbgen.IndexPlans); err != nil {
				t.Fatal(err)
			}
		}
		rows, err := tx.Query(ctx, sql, c.args()...)
		if err == nil {
			for rows.Next() {
			}
			rows.Close()
			err = rows.Err()
		}
		_ = tx.Rollback(ctx)
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(plans) == 0 {
		t.Fatal("auto_explain reported no plan")
	}
	for _, p := range plans {
		var doc struct {
			QueryText string         `json:"Query Text"`
			Plan      map[string]any `json:"Plan"`
		}
		if err := json.Unmarshal([]byte(p), &doc); err != nil {
			t.Fatalf("plan JSON: %v\n%s", err, p)
		}
		if strings.Contains(doc.QueryText, "set_config(") {
			continue // IndexPlans itself
		}
		if v := planViolations(doc.Plan, c.budget, lead); len(v) > 0 {
			t.Errorf("statement %q:\n  %s\nplan:\n%s", firstLine(doc.QueryText), strings.Join(v, "\n  "), p)
			return
		}
	}
}

// planViolations walks a plan and lists what breaks the rules: a
// sequential scan of a big table, an index scan of one without an index
// condition (unless a Limit above bounds it), and more than budget rows
// examined in big tables.
func planViolations(root map[string]any, budget int, lead map[string]string) []string {
	var out []string
	examined := 0.0
	var walk func(n map[string]any, limited bool)
	walk = func(n map[string]any, limited bool) {
		typ, _ := n["Node Type"].(string)
		rel, _ := n["Relation Name"].(string)
		idx, _ := n["Index Name"].(string)
		big := bigTables[rel] || strings.HasPrefix(idx, "tasker_tasks") || strings.HasPrefix(idx, "tasker_steps") ||
			strings.HasPrefix(idx, "tasker_step_edges") || strings.HasPrefix(idx, "tasker_transitions")
		if typ == "Limit" {
			limited = true
		}
		if big {
			switch typ {
			case "Seq Scan", "Sample Scan", "Tid Range Scan":
				out = append(out, fmt.Sprintf("%s on %s", typ, rel))
			case "Index Scan", "Index Only Scan", "Bitmap Index Scan":
				cond, ok := n["Index Cond"].(string)
				switch {
				case limited:
				case !ok:
					out = append(out, fmt.Sprintf("%s of the whole index %s, unbounded", typ, idx))
				case lead[idx] != "" && !constrains(cond, lead[idx]):
					// A condition on a later column only filters the
					// entries of a walk over the whole index.
					out = append(out, fmt.Sprintf("%s of the whole index %s: %s has no condition on its leading column %s",
						typ, idx, cond, lead[idx]))
				}
			}
			if typ != "Bitmap Index Scan" && typ != "ModifyTable" {
				loops, _ := n["Actual Loops"].(float64)
				rows, _ := n["Actual Rows"].(float64)
				removed, _ := n["Rows Removed by Filter"].(float64)
				recheck, _ := n["Rows Removed by Index Recheck"].(float64)
				examined += loops * (rows + removed + recheck)
			}
		}
		if kids, ok := n["Plans"].([]any); ok {
			for _, k := range kids {
				if m, ok := k.(map[string]any); ok {
					walk(m, limited)
				}
			}
		}
	}
	walk(root, false)
	if examined > float64(budget) {
		out = append(out, fmt.Sprintf("examines %.0f rows of big tables, over the budget of %d", examined, budget))
	}
	return out
}

// leadingColumns maps each tasker index to the column it leads with ("" for
// an expression), so a plan can be checked for a condition on it.
func leadingColumns(t *testing.T, conn *pgx.Conn) map[string]string {
	t.Helper()
	rows, err := conn.Query(context.Background(), `
		SELECT c.relname::text, coalesce(a.attname::text, '')
		FROM pg_index i
		JOIN pg_class c ON c.oid = i.indexrelid
		LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
		WHERE c.relname LIKE 'tasker%'`)
	if err != nil {
		t.Fatal(err)
	}
	lead := map[string]string{}
	for rows.Next() {
		var idx, col string
		if err := rows.Scan(&idx, &col); err != nil {
			t.Fatal(err)
		}
		lead[idx] = col
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return lead
}

// constrains reports whether an EXPLAIN index condition compares col.
func constrains(cond, col string) bool {
	return regexp.MustCompile(`(^|[(\s])"?` + regexp.QuoteMeta(col) + `"?\s*(=|<|>|IS\b|~)`).MatchString(cond)
}
