-- Read models for the HTTP API (internal/store/read.go). Every query here is
-- read-only and parameterised; none of them touches live-state hot paths.

-- name: SnapshotBegin :exec
-- Multi-statement reads (a task with its steps, a step with its history) run
-- in one pipeline inside one snapshot, so the parts agree with each other.
BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;

-- name: IndexPlans :exec
-- Right after SnapshotBegin: for this transaction only, the planner keeps to
-- index paths and nested loops, so no read's plan depends on statistics
-- being fresh (docs/architecture.md, "Cost follows the work"); the scheduler
-- functions carry the same settings.
SELECT set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true),
       set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true),
       -- Disabled paths carry a huge cost, which would trigger JIT compilation.
       set_config('jit', 'off', true);

-- name: SnapshotEnd :exec
COMMIT;

-- name: ReadTask :one
SELECT t.id, t.namespace, t.name, t.version, t.status, t.context, t.initiator, t.source_system, t.reason,
       t.tags, t.idempotency_key, t.correlation_id, t.created_at, t.updated_at, t.started_at, t.completed_at
FROM tasker_tasks t
WHERE t.id = @id::uuid;

-- name: ReadTaskParent :many
-- The parent step of a child task (none for a task started otherwise).
SELECT t.parent_task_id::uuid AS parent_task_id, ps.name AS parent_step
FROM tasker_tasks t
CROSS JOIN LATERAL (SELECT ps.name FROM tasker_steps ps WHERE ps.id = t.parent_step_id OFFSET 0) ps
WHERE t.id = @id::uuid;

-- name: ReadTaskChildren :many
-- The child tasks of a task's tasker.workflow steps (docs/architecture.md,
-- "Child workflows"), oldest first.
SELECT c.id, s.name AS step, c.status
FROM tasker_tasks c
JOIN tasker_steps s ON s.id = c.parent_step_id
WHERE c.parent_task_id = @task_id::uuid
ORDER BY c.created_at, c.id
LIMIT 1000;

-- name: ReadTaskSteps :many
-- Parents come from the materialised edges (primary key (to_step_id, ...)),
-- in template order.
SELECT s.id, s.name, s.state, s.handler, coalesce(d.deps, '{}'::text[])::text[] AS depends_on, s.attempts, s.max_attempts,
       s.result, s.last_error, s.next_retry_at, s.deadline_at, s.started_at, s.completed_at,
       s.timeout_seconds, s.wake_at, s.wait_kind, s.trigger_rule, s.when_expr, s.skip_kind, s.skip_reason,
       m.map_counts,
       -- Why a ready step is not running (docs/control-flow.md, "Flow
       -- control"): sql/functions/060_step_blocked.sql; '' when nothing
       -- holds it back.
       coalesce(tasker_step_blocked_reason(s.id, s.state, s.concurrency_key, s.concurrency_limit,
                                           s.rate_key, s.rate_per_second, s.rate_burst, @now::timestamptz),
                '')::text AS blocked_reason
FROM tasker_steps s
LEFT JOIN LATERAL (
    SELECT array_agg(p.name ORDER BY p.position) AS deps
    FROM tasker_step_edges e
    JOIN tasker_steps p ON p.id = e.from_step_id
    WHERE e.to_step_id = s.id
) d ON true
-- A map step's instances by state (docs/architecture.md, "Map"); NULL for
-- other steps, and before the map step ran.
LEFT JOIN LATERAL (
    SELECT jsonb_object_agg(c.state, c.n) AS map_counts
    FROM (SELECT i.state, count(*) AS n FROM tasker_steps i WHERE i.map_parent_id = s.id GROUP BY i.state) c
) m ON true
-- A map step's instances are shown as its counts (ReadStep reads one).
WHERE s.task_id = @task_id::uuid AND s.map_parent_id IS NULL
ORDER BY s.position;

-- name: ReadStep :one
SELECT s.id, s.name, s.state, s.handler, coalesce(d.deps, '{}'::text[])::text[] AS depends_on, s.attempts, s.max_attempts,
       s.result, s.last_error, s.next_retry_at, s.deadline_at, s.started_at, s.completed_at,
       s.timeout_seconds, s.wake_at, s.wait_kind, s.trigger_rule, s.when_expr, s.skip_kind, s.skip_reason,
       m.map_counts,
       -- Why a ready step is not running (docs/control-flow.md, "Flow
       -- control"): sql/functions/060_step_blocked.sql; '' when nothing
       -- holds it back.
       coalesce(tasker_step_blocked_reason(s.id, s.state, s.concurrency_key, s.concurrency_limit,
                                           s.rate_key, s.rate_per_second, s.rate_burst, @now::timestamptz),
                '')::text AS blocked_reason
FROM tasker_steps s
LEFT JOIN LATERAL (
    SELECT array_agg(p.name ORDER BY p.position) AS deps
    FROM tasker_step_edges e
    JOIN tasker_steps p ON p.id = e.from_step_id
    WHERE e.to_step_id = s.id
) d ON true
-- A map step's instances by state (docs/architecture.md, "Map"); NULL for
-- other steps, and before the map step ran.
LEFT JOIN LATERAL (
    SELECT jsonb_object_agg(c.state, c.n) AS map_counts
    FROM (SELECT i.state, count(*) AS n FROM tasker_steps i WHERE i.map_parent_id = s.id GROUP BY i.state) c
) m ON true
WHERE s.task_id = @task_id::uuid AND s.name = @name::text;

-- name: ReadStepTransitions :many
-- Uses tasker_transitions_step (step_id, id): oldest first.
SELECT tr.from_state, tr.to_state, tr.attempt, tr.reason, tr.actor, tr.metadata, tr.created_at
FROM tasker_transitions tr
WHERE tr.step_id = (SELECT s.id FROM tasker_steps s WHERE s.task_id = @task_id::uuid AND s.name = @name::text)
ORDER BY tr.id;

-- name: ReadTaskExists :one
SELECT EXISTS (SELECT 1 FROM tasker_tasks WHERE id = @id::uuid) AS found;

-- name: ListTasks :many
-- Newest first, keyset-paginated on (created_at DESC, id DESC), which the
-- indexes of 0001 serve (tasker_tasks_created, _workflow, _status). NULL
-- parameters mean "no filter"; the store runs this without a cached generic
-- plan so each call is planned for the filters it actually has. One status
-- is passed as status (an equality the status index can walk in order), several
-- as statuses.
SELECT t.id, t.namespace, t.name, t.version, t.status, t.context, t.initiator, t.source_system, t.reason,
       t.tags, t.idempotency_key, t.correlation_id, t.created_at, t.updated_at, t.started_at, t.completed_at
FROM tasker_tasks t
WHERE (sqlc.narg('namespace')::text IS NULL OR t.namespace = sqlc.narg('namespace')::text)
  AND (sqlc.narg('name')::text IS NULL OR t.name = sqlc.narg('name')::text)
  AND (sqlc.narg('status')::text IS NULL OR t.status = sqlc.narg('status')::text)
  AND (sqlc.narg('statuses')::text[] IS NULL OR t.status = ANY (sqlc.narg('statuses')::text[]))
  -- Search (migration 0017): a correlation id walks tasker_tasks_correlation;
  -- a created range is a range of whichever index leads.
  AND (sqlc.narg('correlation_id')::text IS NULL OR t.correlation_id = sqlc.narg('correlation_id')::text)
  AND (sqlc.narg('created_from')::timestamptz IS NULL OR t.created_at >= sqlc.narg('created_from')::timestamptz)
  AND (sqlc.narg('created_to')::timestamptz IS NULL OR t.created_at < sqlc.narg('created_to')::timestamptz)
  AND (sqlc.narg('after_created_at')::timestamptz IS NULL
       OR (t.created_at, t.id) < (sqlc.narg('after_created_at')::timestamptz, sqlc.narg('after_id')::uuid))
ORDER BY t.created_at DESC, t.id DESC
LIMIT @max_rows::int;

-- name: StatusTaskCounts :many
-- Each status counted from its range of tasker_tasks_status, up to @count_cap:
-- health reads cost the same with ten million finished tasks.
SELECT v.status::text AS status, c.n::bigint AS n
FROM (VALUES ('pending'), ('in_progress'), ('complete'), ('error'), ('cancelled'), ('resolved_manually')) AS v(status)
CROSS JOIN LATERAL (
    SELECT count(*) AS n
    FROM (SELECT 1 FROM tasker_tasks t WHERE t.status = v.status LIMIT @count_cap::int) x
) c;

-- name: StatusLiveStepCounts :many
-- Live states only, each up to @count_cap from tasker_steps_unfinished. The
-- states are literals: a partial index serves only predicates it implies.
SELECT 'pending'::text AS state, count(*)::bigint AS n
FROM (SELECT 1 FROM tasker_steps WHERE state = 'pending' LIMIT @count_cap::int) x
UNION ALL
SELECT 'waiting_for_retry', count(*)
FROM (SELECT 1 FROM tasker_steps WHERE state = 'waiting_for_retry' LIMIT @count_cap::int) x
UNION ALL
SELECT 'in_progress', count(*)
FROM (SELECT 1 FROM tasker_steps WHERE state = 'in_progress' LIMIT @count_cap::int) x
UNION ALL
SELECT 'waiting', count(*)
FROM (SELECT 1 FROM tasker_steps WHERE state = 'waiting' LIMIT @count_cap::int) x;

-- name: StatusRecentOutcomes :one
-- Step attempt outcomes recorded since @since (every finished attempt leaves
-- in_progress), system-wide, up to @count_cap: a range of
-- tasker_transitions_outcomes.
SELECT count(*) FILTER (WHERE x.to_state = 'complete')::bigint AS completed,
       count(*) FILTER (WHERE x.to_state = 'waiting_for_retry')::bigint AS retried,
       count(*) FILTER (WHERE x.to_state = 'error')::bigint AS failed
FROM (SELECT tr.to_state
      FROM tasker_transitions tr
      WHERE tr.created_at >= @since::timestamptz
        AND tr.step_id IS NOT NULL
        AND tr.from_state = 'in_progress'
      LIMIT @count_cap::int) x;

-- name: StatusInFlight :one
-- Step attempts in progress, from the partial index tasker_steps_in_flight,
-- up to @count_cap.
SELECT count(*) AS n
FROM (SELECT 1 FROM tasker_steps WHERE state = 'in_progress' LIMIT @count_cap::int) x;
