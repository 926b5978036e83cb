-- Read models for the HTTP API (internal/store/read.go). Every query here is
-- read-only and parameterised; none of them touches live-state hot paths.

-- name: SnapshotBegin :exec
-- Multi-statement reads (a task with its steps, a step with its history) run
-- in one pipeline inside one snapshot, so the parts agree with each other.
BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;

-- name: SnapshotEnd :exec
COMMIT;

-- name: ReadTask :one
SELECT t.id, t.namespace, t.name, t.version, t.status, t.context, t.initiator, t.source_system, t.reason,
       t.tags, t.idempotency_key, t.correlation_id, t.created_at, t.updated_at, t.started_at, t.completed_at
FROM tasker_tasks t
WHERE t.id = @id::uuid;

-- name: ReadTaskSteps :many
-- Parents come from the materialised edges (primary key (to_step_id, ...)),
-- in template order.
SELECT s.id, s.name, s.state, s.handler, coalesce(d.deps, '{}'::text[])::text[] AS depends_on, s.attempts, s.max_attempts,
       s.result, s.last_error, s.next_retry_at, s.deadline_at, s.started_at, s.completed_at,
       s.timeout_seconds
FROM tasker_steps s
LEFT JOIN LATERAL (
    SELECT array_agg(p.name ORDER BY p.position) AS deps
    FROM tasker_step_edges e
    JOIN tasker_steps p ON p.id = e.from_step_id
    WHERE e.to_step_id = s.id
) d ON true
WHERE s.task_id = @task_id::uuid
ORDER BY s.position;

-- name: ReadStep :one
SELECT s.id, s.name, s.state, s.handler, coalesce(d.deps, '{}'::text[])::text[] AS depends_on, s.attempts, s.max_attempts,
       s.result, s.last_error, s.next_retry_at, s.deadline_at, s.started_at, s.completed_at,
       s.timeout_seconds
FROM tasker_steps s
LEFT JOIN LATERAL (
    SELECT array_agg(p.name ORDER BY p.position) AS deps
    FROM tasker_step_edges e
    JOIN tasker_steps p ON p.id = e.from_step_id
    WHERE e.to_step_id = s.id
) d ON true
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
  AND (sqlc.narg('after_created_at')::timestamptz IS NULL
       OR (t.created_at, t.id) < (sqlc.narg('after_created_at')::timestamptz, sqlc.narg('after_id')::uuid))
ORDER BY t.created_at DESC, t.id DESC
LIMIT @max_rows::int;

-- name: StatusTaskCounts :many
SELECT status, count(*)::bigint AS n FROM tasker_tasks GROUP BY status;

-- name: StatusLiveStepCounts :many
-- Live states only: served by the partial indexes on live steps.
SELECT state, count(*)::bigint AS n
FROM tasker_steps
WHERE state IN ('pending', 'waiting_for_retry', 'in_progress')
GROUP BY state;

-- name: StatusRecentOutcomes :one
-- Step attempt outcomes recorded since @since (every finished attempt leaves
-- in_progress), system-wide; tasker_transitions_created_brin (0004) keeps
-- this a small range scan.
SELECT count(*) FILTER (WHERE to_state = 'complete')::bigint AS completed,
       count(*) FILTER (WHERE to_state = 'waiting_for_retry')::bigint AS retried,
       count(*) FILTER (WHERE to_state = 'error')::bigint AS failed
FROM tasker_transitions
WHERE created_at >= @since::timestamptz
  AND step_id IS NOT NULL
  AND from_state = 'in_progress';

-- name: StatusInFlight :one
-- Step attempts in progress, from the partial index tasker_steps_in_flight.
SELECT count(*) AS n FROM tasker_steps WHERE state = 'in_progress';
