package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// History is seeded straight into the tables with INSERT … SELECT over
// generate_series: finished 10-step tasks (linear chains) with their steps,
// edges and transitions, shaped like what the engine writes (a task has 3
// transitions, a step 2). Ids are synthetic but ordered like the engine's
// UUIDv7s and all sort before them. Foreign-key triggers are skipped for the
// seeding session (session_replication_role = replica): the rows are
// consistent by construction.

const seedFunc = `
CREATE OR REPLACE FUNCTION bench_id(kind int, g bigint, j int) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (lpad(to_hex(kind), 4, '0') || lpad(to_hex(g), 12, '0') || '7000' || lpad(to_hex(j), 12, '0'))::uuid
$$`

// Kinds of synthetic ids.
const (
	kindHistTask = 1
	kindHistStep = 2
	kindLiveTask = 3
	kindLiveStep = 4
)

var histTasks = `
INSERT INTO tasker_tasks (id, namespace, name, version, status, context, correlation_id,
                          created_at, updated_at, started_at, completed_at)
SELECT bench_id(1, g, 0), 'bench', 'history10', '1.0.0', 'complete', '{}'::jsonb, 'hist-' || g,
       x.ts, x.ts, x.ts, x.ts
FROM generate_series($1::bigint, $2::bigint) g,
     LATERAL (SELECT $3::timestamptz + g * interval '10 ms' AS ts) x`

var histSteps = `
INSERT INTO tasker_steps (id, task_id, name, position, handler, config, state, attempts, retry_limit,
                          max_attempts, backoff_base_ms, max_backoff_ms, jitter, timeout_seconds, result,
                          created_at, updated_at, started_at, completed_at)
SELECT bench_id(2, g, j), bench_id(1, g, 0), 's' || j, j, 'bench.noop', '{}'::jsonb, 'complete', 1, 3,
       3, 1000, 300000, 0.1, 300, '{}'::jsonb, x.ts, x.ts, x.ts, x.ts
FROM generate_series($1::bigint, $2::bigint) g CROSS JOIN generate_series(1, 10) j,
     LATERAL (SELECT $3::timestamptz + g * interval '10 ms' AS ts) x`

var histEdges = `
INSERT INTO tasker_step_edges (task_id, from_step_id, to_step_id)
SELECT bench_id(1, g, 0), bench_id(2, g, j - 1), bench_id(2, g, j)
FROM generate_series($1::bigint, $2::bigint) g CROSS JOIN generate_series(2, 10) j
WHERE $3::timestamptz IS NOT NULL`

var histTransitions = `
INSERT INTO tasker_transitions (task_id, step_id, from_state, to_state, attempt, reason, actor, created_at)
SELECT bench_id(1, g, 0), CASE WHEN v.j > 0 THEN bench_id(2, g, v.j) END, v.f, v.t,
       CASE WHEN v.j > 0 THEN 1 END, v.r, 'bench-seed', $3::timestamptz + g * interval '10 ms'
FROM generate_series($1::bigint, $2::bigint) g
CROSS JOIN LATERAL (
    SELECT 0 AS j, NULL::text AS f, 'pending' AS t, 'created' AS r, 1 AS o
    UNION ALL SELECT 0, 'pending', 'in_progress', 'first step claimed', 2
    UNION ALL SELECT s.j, 'pending', 'in_progress', 'claimed', 3 FROM generate_series(1, 10) s(j)
    UNION ALL SELECT s.j, 'in_progress', 'complete', 'succeeded', 3 FROM generate_series(1, 10) s(j)
    UNION ALL SELECT 0, 'in_progress', 'complete', 'all steps finished', 4
) v`

// Live tasks: 10-step chains in progress whose first step is held by an
// instance that does not exist (deadline a week away) or waits for a retry
// a week away, so neither the sweep nor the scheduler touches them, but
// their live rows sit in every partial index.
var liveTasks = `
INSERT INTO tasker_tasks (id, namespace, name, version, status, context, correlation_id,
                          created_at, updated_at, started_at)
SELECT bench_id(3, g, 0), 'bench', 'live10', '1.0.0', 'in_progress', '{}'::jsonb, 'live-' || g,
       now(), now(), now()
FROM generate_series($1::bigint, $2::bigint) g`

var liveSteps = `
INSERT INTO tasker_steps (id, task_id, name, position, handler, config, state, attempts, retry_limit,
                          max_attempts, backoff_base_ms, max_backoff_ms, jitter, timeout_seconds,
                          next_retry_at, deadline_at, claimed_by, created_at, updated_at, started_at)
SELECT bench_id(4, g, j), bench_id(3, g, 0), 's' || j, j, 'bench.noop', '{}'::jsonb,
       CASE WHEN j > 1 THEN 'pending' WHEN g % 10 = 0 THEN 'waiting_for_retry' ELSE 'in_progress' END,
       CASE WHEN j = 1 THEN 1 ELSE 0 END, 3, 3, 1000, 300000, 0.1, 300,
       CASE WHEN j = 1 AND g % 10 = 0 THEN now() + interval '7 days' END,
       CASE WHEN j = 1 AND g % 10 <> 0 THEN now() + interval '7 days' END,
       CASE WHEN j = 1 AND g % 10 <> 0 THEN 'bench-ghost' END,
       now(), now(), CASE WHEN j = 1 THEN now() END
FROM generate_series($1::bigint, $2::bigint) g CROSS JOIN generate_series(1, 10) j`

var liveEdges = `
INSERT INTO tasker_step_edges (task_id, from_step_id, to_step_id)
SELECT bench_id(3, g, 0), bench_id(4, g, j - 1), bench_id(4, g, j)
FROM generate_series($1::bigint, $2::bigint) g CROSS JOIN generate_series(2, 10) j`

var liveTransitions = `
INSERT INTO tasker_transitions (task_id, step_id, from_state, to_state, attempt, reason, actor, created_at)
SELECT bench_id(3, g, 0), CASE WHEN v.s THEN bench_id(4, g, 1) END, v.f, v.t, CASE WHEN v.s THEN 1 END, v.r, 'bench-seed', now()
FROM generate_series($1::bigint, $2::bigint) g
CROSS JOIN LATERAL (
    SELECT false AS s, NULL::text AS f, 'pending' AS t, 'created' AS r
    UNION ALL SELECT false, 'pending', 'in_progress', 'first step claimed'
    UNION ALL SELECT true, 'pending', 'in_progress', 'claimed'
) v`

// Live tasks above index $1 are removed table by table (foreign-key
// triggers are off in the seeding session, so nothing cascades), each by a
// range of its primary key or task index.
var liveDeletes = []string{
	`DELETE FROM tasker_transitions WHERE task_id >= bench_id(3, $1::bigint + 1, 0) AND task_id < bench_id(4, 0, 0)`,
	`DELETE FROM tasker_step_edges WHERE to_step_id >= bench_id(4, $1::bigint + 1, 0) AND to_step_id < bench_id(5, 0, 0)`,
	`DELETE FROM tasker_steps WHERE id >= bench_id(4, $1::bigint + 1, 0) AND id < bench_id(5, 0, 0)`,
	`DELETE FROM tasker_tasks WHERE id >= bench_id(3, $1::bigint + 1, 0) AND id < bench_id(4, 0, 0)`,
}

// seeder adds finished history and adds or removes live tasks, so the
// matrix reuses one database: history only grows, live tasks go up and
// down between cells.
type seeder struct {
	url      string
	base     time.Time
	progress io.Writer
	next     int64 // next history task index
	live     int64 // live tasks present (indexes 1..live)
}

func newSeeder(url string, progress io.Writer) *seeder {
	return &seeder{url: url, base: time.Now().Add(-90 * 24 * time.Hour), progress: progress, next: 1}
}

// seeded is what the seeder has put in the database so far.
func (s *seeder) seeded() cellSpec { return cellSpec{History: (s.next - 1) * 10, Live: s.live} }

func seedConn(ctx context.Context, url string) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	for _, s := range []string{"SET session_replication_role = replica", "SET synchronous_commit = off", seedFunc} {
		if _, err := conn.Exec(ctx, s); err != nil {
			conn.Close(ctx)
			return nil, fmt.Errorf("seed: %s: %w", oneLine(s, 60), err)
		}
	}
	return conn, nil
}

// history adds finished 10-step tasks until steps finished steps were added.
func (s *seeder) history(ctx context.Context, steps int64) error {
	if steps <= 0 {
		return nil
	}
	began := time.Now()
	tasks := steps / 10
	a, err := seedConn(ctx, s.url)
	if err != nil {
		return err
	}
	defer a.Close(ctx)
	b, err := seedConn(ctx, s.url)
	if err != nil {
		return err
	}
	defer b.Close(ctx)
	const chunk = 50_000 // tasks (500k steps) per statement
	last := s.next + tasks - 1
	for lo := s.next; lo <= last; lo += chunk {
		hi := min(lo+chunk-1, last)
		err := parallel(
			func() error { return execAll(ctx, a, []string{histTasks, histSteps}, lo, hi, s.base) },
			func() error { return execAll(ctx, b, []string{histEdges, histTransitions}, lo, hi, s.base) },
		)
		if err != nil {
			return fmt.Errorf("seed history: %w", err)
		}
		done := (hi - s.next + 1) * 10
		fmt.Fprintf(s.progress, "bench: seeded %d/%d finished steps (%.0f steps/s)\n", done, tasks*10,
			float64(done)/time.Since(began).Seconds())
	}
	s.next = last + 1
	return nil
}

// setLive adds or removes live tasks until n are present.
func (s *seeder) setLive(ctx context.Context, n int64) error {
	if n == s.live {
		return nil
	}
	conn, err := seedConn(ctx, s.url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if n > s.live {
		for _, q := range []string{liveTasks, liveSteps, liveEdges, liveTransitions} {
			if _, err := conn.Exec(ctx, q, s.live+1, n); err != nil {
				return fmt.Errorf("seed live tasks: %w", err)
			}
		}
	} else {
		for _, q := range liveDeletes {
			if _, err := conn.Exec(ctx, q, n); err != nil {
				return fmt.Errorf("remove live tasks: %w", err)
			}
		}
	}
	s.live = n
	return nil
}

// settle vacuums the tables so deleted rows and unset hint bits do not
// land in a cell's measurements, then checkpoints. Deliberately no
// ANALYZE: the matrix must show the engine as it runs on a young database
// whose tables have never been analysed (VACUUM does set reltuples; the
// report shows what the planner had in each cell).
func (s *seeder) settle(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, s.url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "VACUUM tasker_tasks, tasker_steps, tasker_step_edges, tasker_transitions"); err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

func execAll(ctx context.Context, conn *pgx.Conn, qs []string, lo, hi int64, base time.Time) error {
	for _, q := range qs {
		if _, err := conn.Exec(ctx, q, lo, hi, base); err != nil {
			return err
		}
	}
	return nil
}

func parallel(fns ...func() error) error {
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = fn() }()
	}
	wg.Wait()
	return errors.Join(errs...)
}
