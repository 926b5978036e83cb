package upgradetest_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/enginetest"
	"github.com/taskerhq/tasker/internal/migrate"
	"github.com/taskerhq/tasker/internal/pgtest"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/template"
	tasksql "github.com/taskerhq/tasker/sql"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// release1Migrations are the migrations of the first release (commit
// 8d49468) with the checksums they had there. TestMigrationsImmutable keeps
// the files in sql/migrations equal to these; the pin here makes this test
// fail loudly, rather than test something else, if that ever breaks.
var release1Migrations = []struct{ file, sum string }{
	{"0001_schema.sql", "d5a08d3e565c6bf96fd20d833813d857114ebefe880e1aa941b09eb6b56f9826"},
	{"0002_readiness.sql", "68e55af19e127947ed20cf66307151f7d8c14c13bb450ce47119faea7fc272c4"},
	{"0003_task_api.sql", "68de5ae83f1be99dc9f91e3242927b14187b79d2f11c70f4cd2a74eaf13cea3c"},
	{"0004_read_indexes.sql", "d4db3de18a4d9d68c2e36b52f21ce0590c463754f12b5f32407300307f7a1ba5"},
	{"0005_trace.sql", "52adadd2fb3363a64283f3be5c5de167d01999bc7a44623c8b4d1a9ee2d041e0"},
	{"0006_fast_readiness.sql", "7832fca52e8d0b3e93150ee7b6dfffb1f09b5356c87032c04fb6ccac33ea0554"},
}

// Every task status and step state release 1 knew.
var (
	r1TaskStatuses = []string{"pending", "in_progress", "complete", "error", "cancelled", "resolved_manually"}
	r1StepStates   = []string{"pending", "in_progress", "waiting_for_retry", "complete", "error", "cancelled", "resolved_manually"}
)

// The first release's queries (sql/queries/*.sql at commit 8d49468), copied
// verbatim: sql/queries changes with HEAD, but these are what release 1 ran
// against its own schema and functions.
const (
	r1CreateTask = `SELECT task_id, created
FROM tasker_create_task($1, $2, $3, $4, $5, $6, $7, $8, $9::text[], $10, $11, $12, $13,
    $14::uuid[], $15::text[], $16::text[], $17::jsonb[], $18::int[], $19::int[], $20::int[], $21::real[],
    $22::int[], $23::text[], $24::int[], $25::uuid[], $26::uuid[]);`

	r1LockTasks = `SELECT tasker_lock_tasks($1::uuid[]);`

	r1RecordResults = `SELECT r.task_id, r.step_id, r.step_name, r.attempt, r.from_state, r.to_state, r.next_retry_at, r.reason,
       t.correlation_id, coalesce(t.trace_parent, '')
FROM tasker_record_results($1, $2::uuid[], $3::int[], $4::boolean[], $5::jsonb[], $6::jsonb[], $7::boolean[], $8::bigint[], $9::text[], $10) r
JOIN tasker_tasks t ON t.id = r.task_id;`

	r1FinalizeTasks = `SELECT f.task_id, f.from_state, f.to_state, t.namespace, t.name, t.correlation_id, coalesce(t.trace_parent, '')
FROM tasker_finalize_tasks($1::uuid[], $2, $3) f
JOIN tasker_tasks t ON t.id = f.task_id;`

	r1ClaimSteps = `SELECT c.step_id, c.task_id, c.step_name, c.handler, c.attempt, c.max_attempts, c.deadline_at, c.config, c.context,
       c.namespace, c.workflow, c.version, c.correlation_id, c.results, c.from_state, c.task_started,
       coalesce(t.trace_parent, '')
FROM tasker_claim_steps($1::uuid[], $2, $3, $4, $5, $6) c
JOIN tasker_tasks t ON t.id = c.task_id;`

	r1LockTask = `SELECT status, namespace, name, correlation_id FROM tasker_tasks WHERE id = $1 FOR UPDATE;`

	r1CancelSteps = `WITH updated AS (
    UPDATE tasker_steps s
    SET state = 'cancelled', deadline_at = NULL, next_retry_at = NULL, claimed_by = NULL,
        completed_at = $2::timestamptz, updated_at = $2::timestamptz
    FROM (SELECT id, state FROM tasker_steps
          WHERE task_id = $1::uuid AND state IN ('pending', 'waiting_for_retry', 'in_progress')
          FOR UPDATE) old
    WHERE s.id = old.id
    RETURNING s.id, s.name, s.attempts, old.state AS from_state
), tr AS (
    INSERT INTO tasker_transitions (task_id, step_id, from_state, to_state, attempt, reason, actor, created_at)
    SELECT $1::uuid, u.id, u.from_state, 'cancelled', u.attempts, $3::text, $4::text, $2::timestamptz FROM updated u
)
SELECT id, name, attempts, from_state FROM updated;`

	r1SetTaskStatus = `WITH old AS (
    SELECT status FROM tasker_tasks WHERE id = $1::uuid
), upd AS (
    UPDATE tasker_tasks
    SET status = $2::text, updated_at = $3::timestamptz,
        completed_at = CASE WHEN $2::text IN ('complete', 'error', 'cancelled', 'resolved_manually') THEN $3::timestamptz END
    WHERE id = $1::uuid
    RETURNING id
)
INSERT INTO tasker_transitions (task_id, from_state, to_state, reason, actor, created_at)
SELECT $1::uuid, old.status, $2::text, $4::text, $5::text, $3::timestamptz FROM old, upd;`

	r1RetryFailedSteps = `WITH updated AS (
    UPDATE tasker_steps s
    SET state = 'pending', max_attempts = s.attempts + s.retry_limit, next_retry_at = NULL,
        completed_at = NULL, updated_at = $2::timestamptz
    WHERE s.task_id = $1::uuid AND s.state = 'error'
    RETURNING s.id, s.name, s.attempts
), tr AS (
    INSERT INTO tasker_transitions (task_id, step_id, from_state, to_state, attempt, reason, actor, created_at)
    SELECT $1::uuid, u.id, 'error', 'pending', u.attempts, $3::text, $4::text, $2::timestamptz FROM updated u
)
SELECT id, name, attempts FROM updated;`

	r1ResolveStep = `WITH target AS (
    SELECT id, state, attempts FROM tasker_steps WHERE task_id = $1::uuid AND name = $2::text FOR UPDATE
), updated AS (
    UPDATE tasker_steps s
    SET state = 'resolved_manually', result = coalesce($3::jsonb, s.result), completed_at = $4::timestamptz, updated_at = $4::timestamptz,
        next_retry_at = NULL
    FROM target
    WHERE s.id = target.id AND target.state = 'error'
    RETURNING s.id, s.attempts
), tr AS (
    INSERT INTO tasker_transitions (task_id, step_id, from_state, to_state, attempt, reason, actor, metadata, created_at)
    SELECT $1::uuid, u.id, 'error', 'resolved_manually', u.attempts, $5::text, $6::text,
           CASE WHEN $3::jsonb IS NOT NULL THEN jsonb_build_object('result', $3::jsonb) END, $4::timestamptz
    FROM updated u
)
SELECT target.id, target.state, target.attempts, EXISTS (SELECT 1 FROM updated) FROM target;`
)

// Release-1 reads of the release-1 schema: the expected side of the
// readability check, taken before the upgrade.
const (
	r1ReadTask = `SELECT id, namespace, name, version, status, context, initiator, source_system, reason, tags,
       idempotency_key, correlation_id, created_at, updated_at, started_at, completed_at
FROM tasker_tasks WHERE id = $1`
	r1ReadSteps = `SELECT id, name, state, handler, attempts, max_attempts, result, last_error, next_retry_at,
       deadline_at, started_at, completed_at, timeout_seconds
FROM tasker_steps WHERE task_id = $1 ORDER BY position`
	r1ReadTransitions = `SELECT from_state, to_state, attempt, reason, actor, metadata, created_at
FROM tasker_transitions WHERE step_id = $1 ORDER BY id`
)

// t0 is when release 1 created the fixture tasks; the fixtures' clock runs
// from there (at), and the HEAD engine's test clock continues it.
var t0 = time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

// The fixture workflow, a → b. Step a retries with a 60 s first backoff and
// no jitter, so when a retry falls due is known exactly.
const (
	r1Namespace = "upgrade"
	r1Workflow  = "flow"
	r1Instance  = "release1-engine"
	r1Grace     = 30 // seconds, release 1's default DeadlineGrace
)

// flowYAML is the workflow for the HEAD engine's template set. The fixture
// tasks do not need it (release 1 materialised their steps, with these
// parameters, when it created them); the engine requires a set.
const flowYAML = `
namespace: upgrade
name: flow
version: 1.0.0
steps:
  - name: a
    handler: tasker.noop
    retry: {max_attempts: 3, backoff_base_seconds: 60, max_backoff_seconds: 600, jitter: 0}
    timeout_seconds: 300
  - {name: b, handler: tasker.noop, depends_on: [a], timeout_seconds: 300}
`

// r1Task is a fixture task's ids.
type r1Task struct {
	key      string
	id, a, b uuid.UUID
}

// release1 runs the first release's SQL against a release-1 database.
type release1 struct {
	t    *testing.T
	ctx  context.Context
	conn *pgx.Conn
}

func (r *release1) create(key string, now time.Time) r1Task {
	r.t.Helper()
	k := r1Task{key: key, id: uuid.New(), a: uuid.New(), b: uuid.New()}
	idem := "r1-" + key
	var id uuid.UUID
	var created bool
	err := r.conn.QueryRow(r.ctx, r1CreateTask,
		k.id, r1Namespace, r1Workflow, "1.0.0", json.RawMessage(fmt.Sprintf(`{"case": %q}`, key)),
		"upgrade-test", "release1", "fixture "+key, []string{"upgrade", key}, &idem, "corr-"+key, now, "release1-api",
		[]uuid.UUID{k.a, k.b}, []string{"a", "b"}, []string{"tasker.noop", "tasker.noop"},
		[]json.RawMessage{json.RawMessage(`{}`), json.RawMessage(`{}`)},
		[]int32{3, 3}, []int32{60000, 1000}, []int32{600000, 300000}, []float32{0, 0.1}, []int32{300, 300},
		[]*string{nil, nil}, []*int32{nil, nil}, []uuid.UUID{k.a}, []uuid.UUID{k.b}).Scan(&id, &created)
	if err != nil || !created || id != k.id {
		r.t.Fatalf("release 1: create task %s: id %s created %v: %v", key, id, created, err)
	}
	return k
}

// r1Result is a step outcome as release 1's engine recorded it.
type r1Result struct {
	step      uuid.UUID
	attempt   int
	result    string // JSON; empty for a failure
	permanent bool
}

func ok1(step uuid.UUID, attempt int, result string) r1Result {
	return r1Result{step: step, attempt: attempt, result: result}
}

func fail1(step uuid.UUID, attempt int, permanent bool) r1Result {
	return r1Result{step: step, attempt: attempt, permanent: permanent}
}

// attempt is a claimed (step, attempt).
type attempt struct {
	step uuid.UUID
	n    int
}

// pass is one release-1 scheduler pass over task k at now, as release 1's
// store.Process ran it: one transaction that locks the task, records
// results, finalises, and claims unless claim is false (the in-flight cap
// was full). It fails the test unless exactly want was claimed.
func (r *release1) pass(k r1Task, now time.Time, claim bool, results []r1Result, want ...attempt) {
	r.t.Helper()
	var got []attempt
	err := pgx.BeginFunc(r.ctx, r.conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(r.ctx, r1LockTasks, []uuid.UUID{k.id}); err != nil {
			return fmt.Errorf("lock_tasks: %w", err)
		}
		if len(results) > 0 {
			n := len(results)
			ids, attempts := make([]uuid.UUID, n), make([]int32, n)
			oks, perm := make([]bool, n), make([]bool, n)
			res, errs := make([]json.RawMessage, n), make([]json.RawMessage, n)
			after, reasons := make([]*int64, n), make([]string, n)
			for i, x := range results {
				ids[i], attempts[i], perm[i] = x.step, int32(x.attempt), x.permanent
				if x.result != "" {
					oks[i], res[i], reasons[i] = true, json.RawMessage(x.result), "succeeded"
				} else {
					errs[i] = json.RawMessage(fmt.Sprintf(`{"message": "boom", "code": "release1", "permanent": %t, "attempt": %d}`, x.permanent, x.attempt))
					reasons[i] = "failed: boom"
				}
			}
			rows, err := tx.Query(r.ctx, r1RecordResults, now, ids, attempts, oks, res, errs, perm, after, reasons, r1Instance)
			if err != nil {
				return fmt.Errorf("record_results: %w", err)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("record_results: %w", err)
			}
		}
		rows, err := tx.Query(r.ctx, r1FinalizeTasks, []uuid.UUID{k.id}, now, r1Instance)
		if err != nil {
			return fmt.Errorf("finalize_tasks: %w", err)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("finalize_tasks: %w", err)
		}
		if !claim {
			return nil
		}
		rows, err = tx.Query(r.ctx, r1ClaimSteps, []uuid.UUID{k.id}, int32(10), now, r1Instance, int32(0), int32(r1Grace))
		if err != nil {
			return fmt.Errorf("claim_steps: %w", err)
		}
		got, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (attempt, error) {
			var a attempt
			skip := make([]any, 17) // nil destinations skip columns
			skip[0], skip[4] = &a.step, &a.n
			return a, row.Scan(skip...)
		})
		if err != nil {
			return fmt.Errorf("claim_steps: %w", err)
		}
		return nil
	})
	if err != nil {
		r.t.Fatalf("release 1: pass over %s at %s: %v", k.key, now.Format(time.TimeOnly), err)
	}
	if !slices.Equal(got, want) {
		r.t.Fatalf("release 1: pass over %s at %s claimed %v, want %v (a=%s b=%s)", k.key, now.Format(time.TimeOnly), got, want, k.a, k.b)
	}
}

// operator runs a release-1 operator action in one transaction holding the
// task lock, as release 1's store did.
func (r *release1) operator(k r1Task, what string, fn func(tx pgx.Tx, status string) error) {
	r.t.Helper()
	err := pgx.BeginFunc(r.ctx, r.conn, func(tx pgx.Tx) error {
		var status, ns, name, corr string
		if err := tx.QueryRow(r.ctx, r1LockTask, k.id).Scan(&status, &ns, &name, &corr); err != nil {
			return fmt.Errorf("lock_task: %w", err)
		}
		return fn(tx, status)
	})
	if err != nil {
		r.t.Fatalf("release 1: %s %s: %v", what, k.key, err)
	}
}

func (r *release1) setStatus(tx pgx.Tx, k r1Task, status string, now time.Time, reason string) error {
	_, err := tx.Exec(r.ctx, r1SetTaskStatus, k.id, status, now, reason, "operator")
	return err
}

func (r *release1) cancel(k r1Task, now time.Time) {
	r.t.Helper()
	r.operator(k, "cancel", func(tx pgx.Tx, _ string) error {
		rows, err := tx.Query(r.ctx, r1CancelSteps, k.id, now, "cancelled", "operator")
		if err != nil {
			return err
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		return r.setStatus(tx, k, "cancelled", now, "cancelled")
	})
}

func (r *release1) retry(k r1Task, now time.Time) {
	r.t.Helper()
	r.operator(k, "retry", func(tx pgx.Tx, status string) error {
		if status != "error" {
			return fmt.Errorf("task is %s, not error", status)
		}
		rows, err := tx.Query(r.ctx, r1RetryFailedSteps, k.id, now, "operator retry", "operator")
		if err != nil {
			return err
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		return r.setStatus(tx, k, "in_progress", now, "operator retry")
	})
}

func (r *release1) resolve(k r1Task, step, result string, now time.Time) {
	r.t.Helper()
	r.operator(k, "resolve", func(tx pgx.Tx, status string) error {
		var id uuid.UUID
		var from string
		var attempts int
		var changed bool
		if err := tx.QueryRow(r.ctx, r1ResolveStep, k.id, step, json.RawMessage(result), now, "resolved by operator", "operator").
			Scan(&id, &from, &attempts, &changed); err != nil {
			return err
		}
		if !changed {
			return fmt.Errorf("step %s is %s, not error", step, from)
		}
		if status == "error" {
			return r.setStatus(tx, k, "in_progress", now, "step "+step+" resolved")
		}
		return nil
	})
}

// snapshot is a task as release 1 left it, read with release-1 SQL.
type snapshot struct {
	task        store.TaskView // with Steps
	transitions map[string][]store.TransitionView
}

func (r *release1) read(k r1Task) snapshot {
	r.t.Helper()
	var s snapshot
	t := &s.task
	err := r.conn.QueryRow(r.ctx, r1ReadTask, k.id).Scan(&t.ID, &t.Namespace, &t.Name, &t.Version, &t.Status, &t.Context,
		&t.Initiator, &t.SourceSystem, &t.Reason, &t.Tags, &t.IdempotencyKey, &t.CorrelationID, &t.CreatedAt, &t.UpdatedAt,
		&t.StartedAt, &t.CompletedAt)
	if err != nil {
		r.t.Fatalf("release 1: read task %s: %v", k.key, err)
	}
	rows, err := r.conn.Query(r.ctx, r1ReadSteps, k.id)
	if err != nil {
		r.t.Fatalf("release 1: read steps of %s: %v", k.key, err)
	}
	t.Steps, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.StepView, error) {
		var st store.StepView
		err := row.Scan(&st.ID, &st.Name, &st.State, &st.Handler, &st.Attempts, &st.MaxAttempts, &st.Result, &st.LastError,
			&st.NextRetryAt, &st.DeadlineAt, &st.StartedAt, &st.CompletedAt, &st.TimeoutSeconds)
		return st, err
	})
	if err != nil {
		r.t.Fatalf("release 1: read steps of %s: %v", k.key, err)
	}
	s.transitions = map[string][]store.TransitionView{}
	for _, st := range t.Steps {
		rows, err := r.conn.Query(r.ctx, r1ReadTransitions, st.ID)
		if err != nil {
			r.t.Fatalf("release 1: read transitions of %s/%s: %v", k.key, st.Name, err)
		}
		trs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.TransitionView, error) {
			var tr store.TransitionView
			err := row.Scan(&tr.From, &tr.To, &tr.Attempt, &tr.Reason, &tr.Actor, &tr.Metadata, &tr.At)
			return tr, err
		})
		if err != nil {
			r.t.Fatalf("release 1: read transitions of %s/%s: %v", k.key, st.Name, err)
		}
		s.transitions[st.Name] = trs
	}
	return s
}

func (s snapshot) step(name string) store.StepView {
	for _, st := range s.task.Steps {
		if st.Name == name {
			return st
		}
	}
	return store.StepView{}
}

// upgradeCase is one fixture task: what release 1 did to it, the state it
// left it in, and (for live tasks) how many attempts step a has made once
// HEAD finished it.
type upgradeCase struct {
	key    string
	build  func(r *release1, k r1Task)
	status string // task status release 1 left
	a, b   string // step states release 1 left
	live   bool
	aRuns  int // step a's attempts after HEAD ran the task to completion
}

func upgradeCases() []upgradeCase {
	claimA := func(r *release1, k r1Task) { r.pass(k, at(10), true, nil, attempt{k.a, 1}) }
	return []upgradeCase{
		{key: "pending", status: "pending", a: "pending", b: "pending", live: true, aRuns: 1,
			build: func(*release1, r1Task) {}},
		{key: "claimed", status: "in_progress", a: "in_progress", b: "pending", live: true, aRuns: 1,
			build: claimA},
		{key: "retrying", status: "in_progress", a: "waiting_for_retry", b: "pending", live: true, aRuns: 2,
			build: func(r *release1, k r1Task) {
				claimA(r, k)
				r.pass(k, at(90), true, []r1Result{fail1(k.a, 1, false)}) // due at 150 s
			}},
		{key: "reclaimed", status: "in_progress", a: "in_progress", b: "pending", live: true, aRuns: 2,
			build: func(r *release1, k r1Task) {
				claimA(r, k)
				r.pass(k, at(20), true, []r1Result{fail1(k.a, 1, false)})
				r.pass(k, at(80), true, nil, attempt{k.a, 2})
			}},
		{key: "half_done", status: "in_progress", a: "complete", b: "pending", live: true, aRuns: 1,
			build: func(r *release1, k r1Task) {
				claimA(r, k)
				r.pass(k, at(20), false, []r1Result{ok1(k.a, 1, `{"by": "release1", "step": "a"}`)})
			}},
		{key: "retried", status: "in_progress", a: "pending", b: "pending", live: true, aRuns: 2,
			build: func(r *release1, k r1Task) {
				claimA(r, k)
				r.pass(k, at(20), true, []r1Result{fail1(k.a, 1, true)})
				r.retry(k, at(30))
			}},
		{key: "complete", status: "complete", a: "complete", b: "complete",
			build: func(r *release1, k r1Task) {
				claimA(r, k)
				r.pass(k, at(20), true, []r1Result{ok1(k.a, 1, `{"by": "release1", "step": "a"}`)}, attempt{k.b, 1})
				r.pass(k, at(30), true, []r1Result{ok1(k.b, 1, `{"by": "release1", "step": "b"}`)})
			}},
		{key: "failed", status: "error", a: "error", b: "pending",
			build: func(r *release1, k r1Task) {
				claimA(r, k)
				r.pass(k, at(20), true, []r1Result{fail1(k.a, 1, true)})
			}},
		{key: "cancelled", status: "cancelled", a: "cancelled", b: "cancelled",
			build: func(r *release1, k r1Task) {
				claimA(r, k)
				r.cancel(k, at(20))
			}},
		{key: "resolved", status: "resolved_manually", a: "resolved_manually", b: "complete",
			build: func(r *release1, k r1Task) {
				claimA(r, k)
				r.pass(k, at(20), true, []r1Result{fail1(k.a, 1, true)})
				r.resolve(k, "a", `{"by": "operator"}`, at(30))
				r.pass(k, at(30), true, nil, attempt{k.b, 1})
				r.pass(k, at(40), true, []r1Result{ok1(k.b, 1, `{"by": "release1", "step": "b"}`)})
			}},
	}
}

// TestUpgradeFromFirstRelease is issue 12's upgrade test: a database
// migrated by the first release (commit 8d49468) and holding tasks in every
// task status and steps in every step state, made by release 1's own SQL, is
// migrated to HEAD. Every task and step must read back unchanged through the
// HEAD store, and a HEAD engine must run every live task to completion —
// recording the result of the attempt release 1 had in flight (fenced on its
// attempt number), running the waiting retry when it falls due — while the
// finished tasks stay exactly as they were.
func TestUpgradeFromFirstRelease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.EmptyURL(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })

	// 1. The first release's schema and functions.
	res, err := migrate.Up(ctx, conn, migrate.WithFS(release1FS(t)))
	if err != nil {
		t.Fatalf("migrate with release 1's migrations: %v", err)
	}
	if res.Current != "0006" || len(res.Functions) != 0 {
		t.Fatalf("release 1 migration: current %q, functions %v; want 0006 and no function files", res.Current, res.Functions)
	}

	// 2. Tasks in every state, made by release 1's SQL.
	r1 := &release1{t: t, ctx: ctx, conn: conn}
	cases := upgradeCases()
	tasks := make(map[string]r1Task, len(cases))
	before := make(map[string]snapshot, len(cases))
	taskCovered, stepCovered := map[string]bool{}, map[string]bool{}
	for i, c := range cases {
		k := r1.create(c.key, t0.Add(time.Duration(i)*time.Millisecond))
		c.build(r1, k)
		tasks[c.key] = k
		s := r1.read(k)
		before[c.key] = s
		if string(s.task.Status) != c.status || string(s.step("a").State) != c.a || string(s.step("b").State) != c.b {
			t.Fatalf("fixture %s: release 1 left task %s with steps a=%s b=%s; the case says %s, a=%s b=%s",
				c.key, s.task.Status, s.step("a").State, s.step("b").State, c.status, c.a, c.b)
		}
		taskCovered[c.status] = true
		stepCovered[c.a], stepCovered[c.b] = true, true
	}
	for _, s := range r1TaskStatuses {
		if !taskCovered[s] {
			t.Errorf("no fixture task is %s", s)
		}
	}
	for _, s := range r1StepStates {
		if !stepCovered[s] {
			t.Errorf("no fixture step is %s", s)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// 3. Migrate to HEAD: every later migration and the function files.
	res, err = migrate.Up(ctx, conn)
	if err != nil {
		t.Fatalf("migrate release-1 database to HEAD: %v", err)
	}
	for _, f := range res.Applied {
		if f <= "0006" {
			t.Errorf("HEAD re-applied release-1 migration %s", f)
		}
	}
	status, err := migrate.Status(ctx, conn)
	if err != nil || len(status.Pending) > 0 || !status.FunctionsCurrent {
		t.Fatalf("after upgrade: pending %v, functions current %v, err %v", status.Pending, status.FunctionsCurrent, err)
	}
	t.Logf("upgrade applied %v and function files %v", res.Applied, res.Functions)

	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	st, err := store.New(pool)
	if err != nil {
		t.Fatalf("HEAD store: %v", err)
	}

	// Release 1's idempotency keys are in the deployment-wide scope
	// (migration 0010) with no request hash, so a replay returns its task.
	var unscoped, keyed int
	if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE idempotency_scope IS DISTINCT FROM ''), count(*)
		FROM tasker_tasks WHERE idempotency_key IS NOT NULL`).Scan(&unscoped, &keyed); err != nil || unscoped != 0 || keyed != len(cases) {
		t.Fatalf("after upgrade: %d of %d keyed tasks outside the deployment-wide scope (%v)", unscoped, keyed, err)
	}

	// 4. Everything reads back through the HEAD store as release 1 left it.
	upgraded := make(map[string]store.TaskView, len(cases))
	for _, c := range cases {
		k := tasks[c.key]
		got := getTask(t, st, k)
		report(t, c.key+": HEAD GetTask vs release 1", diffTask(before[c.key].task, got))
		for _, s := range got.Steps {
			step, trs := getStep(t, st, k, s.Name)
			report(t, c.key+"/"+s.Name+": HEAD GetStep vs GetTask", diffStep(s, step))
			report(t, c.key+"/"+s.Name+": HEAD transitions vs release 1", diffTransitions(before[c.key].transitions[s.Name], trs))
		}
		if a, b := stepOf(got, "a"), stepOf(got, "b"); len(a.DependsOn) != 0 || !slices.Equal(b.DependsOn, []string{"a"}) {
			t.Errorf("%s: depends_on a=%v b=%v, want [] and [a]", c.key, a.DependsOn, b.DependsOn)
		}
		upgraded[c.key] = got
	}
	checkList(t, st, cases, tasks)
	if t.Failed() {
		t.FailNow()
	}

	// 5. A HEAD engine on the upgraded database, a minute after release 1
	// stopped, runs the live tasks to completion.
	h := newHead(t, st, at(120))

	// Late results of attempts release 1 no longer has in flight change
	// nothing: reclaimed's first attempt was superseded by its second, and
	// cancelled's was cancelled.
	h.deliver(
		h.r1Record(tasks["reclaimed"], "a", 1, `{"late": true}`),
		h.r1Record(tasks["cancelled"], "a", 1, `{"late": true}`),
	)
	if invs := h.inv.Take(); len(invs) != 0 {
		t.Errorf("stale results caused %d invocations", len(invs))
	}
	if a := stepOf(getTask(t, st, tasks["reclaimed"]), "a"); a.State != "in_progress" || a.Attempts != 2 || len(a.Result) != 0 {
		t.Errorf("reclaimed/a after a stale attempt-1 result: %s, attempts %d, result %s; want in_progress, 2, none", a.State, a.Attempts, a.Result)
	}
	report(t, "cancelled after a late result", diffTask(upgraded["cancelled"], getTask(t, st, tasks["cancelled"])))

	// The attempts release 1 had in flight report back to the HEAD engine;
	// the wake-up release 1 queued for the pending task arrives.
	claimedResult := `{"by": "release1-attempt", "step": "a"}`
	h.deliver(
		h.r1Record(tasks["claimed"], "a", 1, claimedResult),
		h.r1Record(tasks["reclaimed"], "a", 2, `{"by": "release1-attempt", "step": "a", "attempt": 2}`),
		contract.NewWake(tasks["pending"].id),
	)
	h.drain()
	// Ready work no message announces (half_done's b, retried's a) is found
	// by the sweep.
	h.sweep()

	// retrying/a failed at 90 s with a 60 s backoff: not due at 120 s.
	if a := stepOf(getTask(t, st, tasks["retrying"]), "a"); a.State != "waiting_for_retry" || a.Attempts != 1 {
		t.Fatalf("retrying/a at 120 s: %s with %d attempts; want waiting_for_retry with 1 (due at 150 s)", a.State, a.Attempts)
	}
	for _, key := range []string{"pending", "claimed", "reclaimed", "half_done", "retried"} {
		if got := getTask(t, st, tasks[key]); got.Status != "complete" {
			t.Errorf("%s at 120 s: task %s, want complete", key, got.Status)
		}
	}
	h.clock.Advance(80 * time.Second) // 200 s: the retry is due
	h.sweep()
	if rep := h.sweep(); rep != (engine.SweepReport{}) {
		t.Errorf("a sweep after everything finished found work: %+v", rep)
	}

	// A duplicate of an attempt already recorded changes nothing.
	h.deliver(h.r1Record(tasks["claimed"], "a", 1, `{"duplicate": true}`))

	// 6. Every live task completed; finished ones are exactly as they were.
	for _, c := range cases {
		k := tasks[c.key]
		got := getTask(t, st, k)
		if !c.live {
			report(t, c.key+": finished task after the HEAD engine ran", diffTask(upgraded[c.key], got))
			for _, s := range got.Steps {
				_, trs := getStep(t, st, k, s.Name)
				report(t, c.key+"/"+s.Name+": transitions after the HEAD engine ran", diffTransitions(before[c.key].transitions[s.Name], trs))
			}
			continue
		}
		a, b := stepOf(got, "a"), stepOf(got, "b")
		if got.Status != "complete" || a.State != "complete" || b.State != "complete" {
			t.Errorf("%s: task %s, a %s, b %s; want all complete", c.key, got.Status, a.State, b.State)
			continue
		}
		if a.Attempts != c.aRuns || b.Attempts != 1 {
			t.Errorf("%s: a made %d attempts, b %d; want %d and 1", c.key, a.Attempts, b.Attempts, c.aRuns)
		}
		if got.CompletedAt == nil || got.StartedAt == nil {
			t.Errorf("%s: started_at %v completed_at %v; want both set", c.key, got.StartedAt, got.CompletedAt)
		}
		// b received a's result, whoever recorded it.
		p, ran := h.ran[attempt{k.b, 1}]
		switch {
		case !ran:
			t.Errorf("%s: b's first attempt never ran", c.key)
		case !jsonEqual(p.Results["a"], a.Result):
			t.Errorf("%s: b saw a's result %s, a's recorded result is %s", c.key, p.Results["a"], a.Result)
		}
		// Release 1's history stays the start of each step's history.
		for _, s := range got.Steps {
			_, trs := getStep(t, st, k, s.Name)
			old := before[c.key].transitions[s.Name]
			if before[c.key].step(s.Name).State == "complete" {
				report(t, c.key+"/"+s.Name+": transitions of a step release 1 completed", diffTransitions(old, trs))
				continue
			}
			if len(trs) <= len(old) {
				t.Errorf("%s/%s: %d transitions after the run, %d before; want release 1's followed by HEAD's", c.key, s.Name, len(trs), len(old))
				continue
			}
			report(t, c.key+"/"+s.Name+": release-1 transitions kept", diffTransitions(old, trs[:len(old)]))
		}
	}
	if a := stepOf(getTask(t, st, tasks["claimed"]), "a"); !jsonEqual(a.Result, json.RawMessage(claimedResult)) {
		t.Errorf("claimed/a: result %s; want release 1's in-flight attempt's %s", a.Result, claimedResult)
	}
	if a := stepOf(getTask(t, st, tasks["half_done"]), "a"); !jsonEqual(a.Result, stepOf(upgraded["half_done"], "a").Result) {
		t.Errorf("half_done/a: result %s changed from release 1's %s", a.Result, stepOf(upgraded["half_done"], "a").Result)
	}
	// Attempt numbers never repeat across the upgrade: HEAD only ran
	// attempts release 1 had not.
	for sa := range h.ran {
		for _, c := range cases {
			if old := before[c.key]; sa.step == old.step("a").ID && sa.n <= old.step("a").Attempts {
				t.Errorf("%s/a: HEAD ran attempt %d, which release 1 had already made", c.key, sa.n)
			}
		}
	}
}

// release1FS holds the first release's migrations, checked against their
// release-1 checksums.
func release1FS(t *testing.T) fs.FS {
	t.Helper()
	out := fstest.MapFS{}
	for _, m := range release1Migrations {
		b, err := fs.ReadFile(tasksql.Migrations, "migrations/"+m.file)
		if err != nil {
			t.Fatalf("release-1 migration: %v", err)
		}
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != m.sum {
			t.Fatalf("sql/migrations/%s differs from the first release's (sha256 %s); landed migrations must not change", m.file, m.sum)
		}
		out[m.file] = &fstest.MapFile{Data: b}
	}
	return out
}

// head is a HEAD engine with local doubles for its ports.
type head struct {
	t     *testing.T
	ctx   context.Context
	eng   *engine.Engine
	clock *enginetest.Clock
	queue *enginetest.Queue
	inv   *enginetest.Invoker
	// ran holds the payload of every attempt HEAD dispatched.
	ran map[attempt]contract.Payload
}

func newHead(t *testing.T, st *store.Store, now time.Time) *head {
	t.Helper()
	tpl, err := template.Parse("flow.yaml", []byte(flowYAML), template.Options{})
	if err != nil {
		t.Fatalf("parse template: %v", err)
	}
	set, err := template.NewSet(tpl)
	if err != nil {
		t.Fatal(err)
	}
	h := &head{t: t, ctx: context.Background(), clock: enginetest.NewClock(now), queue: &enginetest.Queue{},
		inv: &enginetest.Invoker{}, ran: map[attempt]contract.Payload{}}
	h.eng, err = engine.New(engine.Config{Store: st, Templates: set, Queue: h.queue, Invoker: h.inv, Clock: h.clock,
		Publisher: &enginetest.Publisher{}, InstanceID: "head-engine"})
	if err != nil {
		t.Fatalf("HEAD engine: %v", err)
	}
	return h
}

// r1Record is the destination record Lambda delivers for an attempt release
// 1 dispatched: its payload is release 1's (the same contract version).
func (h *head) r1Record(k r1Task, step string, n int, result string) []byte {
	h.t.Helper()
	id := k.a
	if step == "b" {
		id = k.b
	}
	payload, err := json.Marshal(contract.Payload{
		Tasker: contract.Meta{Version: contract.PayloadVersion, TaskID: k.id, StepID: id, Step: step, Handler: "tasker.noop",
			Attempt: n, MaxAttempts: 3, Namespace: r1Namespace, Workflow: r1Workflow, WorkflowVersion: "1.0.0",
			IdempotencyKey: contract.IdempotencyKey(k.id, step, 0), CorrelationID: "corr-" + k.key},
		Context: json.RawMessage(`{}`), Config: json.RawMessage(`{}`), Results: map[string]json.RawMessage{},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	inv := engine.Invocation{TaskID: k.id, StepID: id, Step: step, Attempt: n, Handler: "tasker.noop", Payload: payload}
	return enginetest.Record(h.t, inv, enginetest.Outcome{Result: json.RawMessage(result)})
}

func (h *head) deliver(bodies ...[]byte) {
	h.t.Helper()
	msgs := make([]engine.InMessage, len(bodies))
	for i, b := range bodies {
		msgs[i] = engine.InMessage{ID: uuid.NewString(), Body: b}
	}
	failed, err := h.eng.HandleMessages(h.ctx, msgs)
	if err != nil || len(failed) > 0 {
		h.t.Fatalf("HEAD engine: handle messages: failed %v: %v", failed, err)
	}
}

// drain delivers immediate wake-ups and runs every dispatched attempt
// (each succeeds) until nothing is left to do now. Delayed wake-ups are
// dropped: the test moves the clock and sweeps instead.
func (h *head) drain() {
	h.t.Helper()
	for range 100 {
		var bodies [][]byte
		for _, m := range h.queue.Take() {
			if m.Delay <= 0 {
				bodies = append(bodies, m.Body)
			}
		}
		for _, inv := range h.inv.Take() {
			p := enginetest.Payload(h.t, inv)
			k := attempt{p.Tasker.StepID, p.Tasker.Attempt}
			if _, dup := h.ran[k]; dup {
				h.t.Fatalf("HEAD dispatched attempt %d of step %s twice", k.n, p.Tasker.Step)
			}
			h.ran[k] = p
			bodies = append(bodies, enginetest.Record(h.t, inv, enginetest.Outcome{
				Result: map[string]any{"by": "head", "step": p.Tasker.Step, "attempt": p.Tasker.Attempt}}))
		}
		if len(bodies) == 0 {
			return
		}
		h.deliver(bodies...)
	}
	h.t.Fatal("HEAD engine: work did not settle after 100 rounds")
}

func (h *head) sweep() engine.SweepReport {
	h.t.Helper()
	rep, err := h.eng.Sweep(h.ctx)
	if err != nil {
		h.t.Fatalf("HEAD engine: sweep at %s: %v", h.clock.Now().Format(time.TimeOnly), err)
	}
	h.drain()
	return rep
}

func getTask(t *testing.T, st *store.Store, k r1Task) store.TaskView {
	t.Helper()
	got, err := st.GetTask(context.Background(), k.id)
	if err != nil {
		t.Fatalf("HEAD store: get task %s: %v", k.key, err)
	}
	return got
}

func getStep(t *testing.T, st *store.Store, k r1Task, name string) (store.StepView, []store.TransitionView) {
	t.Helper()
	step, trs, found, err := st.GetStep(context.Background(), k.id, name)
	if err != nil || !found {
		t.Fatalf("HEAD store: get step %s/%s: task found %v: %v", k.key, name, found, err)
	}
	return step, trs
}

func stepOf(t store.TaskView, name string) store.StepView {
	for _, s := range t.Steps {
		if s.Name == name {
			return s
		}
	}
	return store.StepView{Name: name, State: "(missing)"}
}

// checkList pages through every task with the HEAD list API and filters by
// each status.
func checkList(t *testing.T, st *store.Store, cases []upgradeCase, tasks map[string]r1Task) {
	t.Helper()
	ctx := context.Background()
	// Newest first: the reverse of creation order.
	var want []uuid.UUID
	byStatus := map[string][]uuid.UUID{}
	for i := len(cases) - 1; i >= 0; i-- {
		id := tasks[cases[i].key].id
		want = append(want, id)
		byStatus[cases[i].status] = append(byStatus[cases[i].status], id)
	}
	var got []uuid.UUID
	var after *store.Cursor
	for page := 0; ; page++ {
		ts, next, err := st.ListTasks(ctx, store.ListFilter{Limit: 4, After: after})
		if err != nil {
			t.Fatalf("HEAD store: list tasks page %d: %v", page, err)
		}
		for _, tv := range ts {
			got = append(got, tv.ID)
		}
		if next == nil || page > len(cases) {
			break
		}
		after = next
	}
	if !slices.Equal(got, want) {
		t.Errorf("HEAD store: listing all tasks in pages of 4 gave %v, want %v", got, want)
	}
	for _, s := range r1TaskStatuses {
		ts, _, err := st.ListTasks(ctx, store.ListFilter{Statuses: []string{s}, Limit: 100})
		if err != nil {
			t.Fatalf("HEAD store: list %s tasks: %v", s, err)
		}
		var ids []uuid.UUID
		for _, tv := range ts {
			if string(tv.Status) != s {
				t.Errorf("HEAD store: listing %s tasks returned %s as %s", s, tv.ID, tv.Status)
			}
			ids = append(ids, tv.ID)
		}
		if !slices.Equal(ids, byStatus[s]) {
			t.Errorf("HEAD store: %s tasks listed %v, want %v", s, ids, byStatus[s])
		}
	}
	sys, err := st.Status(ctx, t0)
	if err != nil {
		t.Fatalf("HEAD store: status: %v", err)
	}
	for _, s := range r1TaskStatuses {
		if sys.Tasks[s] != int64(len(byStatus[s])) {
			t.Errorf("HEAD store: status counts %d %s tasks, want %d", sys.Tasks[s], s, len(byStatus[s]))
		}
	}
}

func report(t *testing.T, what string, diffs []string) {
	t.Helper()
	if len(diffs) > 0 {
		t.Errorf("%s:\n\t%s", what, strings.Join(diffs, "\n\t"))
	}
}

// diffTask compares the fields release 1 had, steps matched by name.
func diffTask(want, got store.TaskView) []string {
	var d []string
	eq := func(field string, w, g any) {
		if !reflect.DeepEqual(w, g) {
			d = append(d, fmt.Sprintf("%s = %v, want %v", field, show(g), show(w)))
		}
	}
	eq("id", want.ID, got.ID)
	eq("namespace", want.Namespace, got.Namespace)
	eq("name", want.Name, got.Name)
	eq("version", want.Version, got.Version)
	eq("status", want.Status, got.Status)
	if !jsonEqual(want.Context, got.Context) {
		d = append(d, fmt.Sprintf("context = %s, want %s", got.Context, want.Context))
	}
	eq("initiator", want.Initiator, got.Initiator)
	eq("source_system", want.SourceSystem, got.SourceSystem)
	eq("reason", want.Reason, got.Reason)
	eq("tags", want.Tags, got.Tags)
	eq("idempotency_key", want.IdempotencyKey, got.IdempotencyKey)
	eq("correlation_id", want.CorrelationID, got.CorrelationID)
	timeEq(&d, "created_at", &want.CreatedAt, &got.CreatedAt)
	timeEq(&d, "updated_at", &want.UpdatedAt, &got.UpdatedAt)
	timeEq(&d, "started_at", want.StartedAt, got.StartedAt)
	timeEq(&d, "completed_at", want.CompletedAt, got.CompletedAt)
	if len(want.Steps) != len(got.Steps) {
		d = append(d, fmt.Sprintf("%d steps, want %d", len(got.Steps), len(want.Steps)))
	}
	for i, ws := range want.Steps {
		if i < len(got.Steps) {
			for _, s := range diffStep(ws, got.Steps[i]) {
				d = append(d, "step "+ws.Name+": "+s)
			}
		}
	}
	return d
}

func diffStep(want, got store.StepView) []string {
	var d []string
	eq := func(field string, w, g any) {
		if !reflect.DeepEqual(w, g) {
			d = append(d, fmt.Sprintf("%s = %v, want %v", field, show(g), show(w)))
		}
	}
	eq("id", want.ID, got.ID)
	eq("name", want.Name, got.Name)
	eq("state", want.State, got.State)
	eq("handler", want.Handler, got.Handler)
	eq("attempts", want.Attempts, got.Attempts)
	eq("max_attempts", want.MaxAttempts, got.MaxAttempts)
	eq("timeout_seconds", want.TimeoutSeconds, got.TimeoutSeconds)
	if !jsonEqual(want.Result, got.Result) {
		d = append(d, fmt.Sprintf("result = %s, want %s", got.Result, want.Result))
	}
	if !jsonEqual(want.LastError, got.LastError) {
		d = append(d, fmt.Sprintf("last_error = %s, want %s", got.LastError, want.LastError))
	}
	timeEq(&d, "next_retry_at", want.NextRetryAt, got.NextRetryAt)
	timeEq(&d, "deadline_at", want.DeadlineAt, got.DeadlineAt)
	timeEq(&d, "started_at", want.StartedAt, got.StartedAt)
	timeEq(&d, "completed_at", want.CompletedAt, got.CompletedAt)
	return d
}

func diffTransitions(want, got []store.TransitionView) []string {
	var d []string
	if len(want) != len(got) {
		d = append(d, fmt.Sprintf("%d transitions, want %d", len(got), len(want)))
	}
	for i := range min(len(want), len(got)) {
		w, g := want[i], got[i]
		if show(w.From) != show(g.From) || w.To != g.To || show(w.Attempt) != show(g.Attempt) || w.Reason != g.Reason ||
			w.Actor != g.Actor || !jsonEqual(w.Metadata, g.Metadata) || !w.At.Equal(g.At) {
			d = append(d, fmt.Sprintf("transition %d = %s, want %s", i, showTransition(g), showTransition(w)))
		}
	}
	return d
}

func showTransition(tr store.TransitionView) string {
	return fmt.Sprintf("%s→%s attempt %s %q by %q at %s metadata %s",
		show(tr.From), tr.To, show(tr.Attempt), tr.Reason, tr.Actor, tr.At.UTC().Format(time.RFC3339Nano), tr.Metadata)
}

func timeEq(d *[]string, field string, want, got *time.Time) {
	switch {
	case want == nil && got == nil:
	case want == nil || got == nil || !want.Equal(*got):
		*d = append(*d, fmt.Sprintf("%s = %s, want %s", field, show(got), show(want)))
	}
}

// show prints pointers by value, nil as "null", times in UTC.
func show(v any) string {
	switch x := v.(type) {
	case *string:
		if x == nil {
			return "null"
		}
		return *x
	case *int:
		if x == nil {
			return "null"
		}
		return fmt.Sprint(*x)
	case *time.Time:
		if x == nil {
			return "null"
		}
		return x.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprint(v)
}

// jsonEqual compares JSON values; absent and null are equal.
func jsonEqual(a, b json.RawMessage) bool {
	norm := func(m json.RawMessage) (any, bool) {
		if len(m) == 0 {
			return nil, true
		}
		var v any
		return v, json.Unmarshal(m, &v) == nil
	}
	va, oka := norm(a)
	vb, okb := norm(b)
	return oka && okb && reflect.DeepEqual(va, vb)
}
