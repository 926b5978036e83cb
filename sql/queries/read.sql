-- Read models for the HTTP API (internal/store/read.go). Every query here is
-- read-only and parameterised; none of them touches live-state hot paths.

-- name: read_snapshot_begin
-- Multi-statement reads (a task with its steps, a step with its history) run
-- in one pipeline inside one snapshot, so the parts agree with each other.
BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;

-- name: read_snapshot_end
COMMIT;

-- name: read_task
SELECT t.id, t.namespace, t.name, t.version, t.status, t.context, t.initiator, t.source_system, t.reason,
       t.tags, t.idempotency_key, t.correlation_id, t.created_at, t.updated_at, t.started_at, t.completed_at
FROM tasker_tasks t
WHERE t.id = $1::uuid;

-- name: read_task_steps
-- Parents come from the materialised edges (primary key (to_step_id, ...)),
-- in template order.
SELECT s.id, s.name, s.state, s.handler, coalesce(d.deps, '{}'::text[]), s.attempts, s.max_attempts,
       s.result, s.last_error, s.next_retry_at, s.deadline_at, s.started_at, s.completed_at,
       s.timeout_seconds
FROM tasker_steps s
LEFT JOIN LATERAL (
    SELECT array_agg(p.name ORDER BY p.position) AS deps
    FROM tasker_step_edges e
    JOIN tasker_steps p ON p.id = e.from_step_id
    WHERE e.to_step_id = s.id
) d ON true
WHERE s.task_id = $1::uuid
ORDER BY s.position;

-- name: read_step
SELECT s.id, s.name, s.state, s.handler, coalesce(d.deps, '{}'::text[]), s.attempts, s.max_attempts,
       s.result, s.last_error, s.next_retry_at, s.deadline_at, s.started_at, s.completed_at,
       s.timeout_seconds
FROM tasker_steps s
LEFT JOIN LATERAL (
    SELECT array_agg(p.name ORDER BY p.position) AS deps
    FROM tasker_step_edges e
    JOIN tasker_steps p ON p.id = e.from_step_id
    WHERE e.to_step_id = s.id
) d ON true
WHERE s.task_id = $1::uuid AND s.name = $2::text;

-- name: read_step_transitions
-- Uses tasker_transitions_step (step_id, id): oldest first.
SELECT tr.from_state, tr.to_state, tr.attempt, tr.reason, tr.actor, tr.metadata, tr.created_at
FROM tasker_transitions tr
WHERE tr.step_id = (SELECT s.id FROM tasker_steps s WHERE s.task_id = $1::uuid AND s.name = $2::text)
ORDER BY tr.id;

-- name: read_task_exists
SELECT EXISTS (SELECT 1 FROM tasker_tasks WHERE id = $1::uuid);

-- name: list_tasks
-- Newest first, keyset-paginated on (created_at DESC, id DESC), which the
-- indexes of 0001 serve (tasker_tasks_created, _workflow, _status). NULL
-- parameters mean "no filter"; the store runs this without a cached generic
-- plan so each call is planned for the filters it actually has. One status
-- is passed as $3 (an equality the status index can walk in order), several
-- as $4.
SELECT t.id, t.namespace, t.name, t.version, t.status, t.context, t.initiator, t.source_system, t.reason,
       t.tags, t.idempotency_key, t.correlation_id, t.created_at, t.updated_at, t.started_at, t.completed_at
FROM tasker_tasks t
WHERE ($1::text IS NULL OR t.namespace = $1::text)
  AND ($2::text IS NULL OR t.name = $2::text)
  AND ($3::text IS NULL OR t.status = $3::text)
  AND ($4::text[] IS NULL OR t.status = ANY ($4::text[]))
  AND ($5::timestamptz IS NULL OR (t.created_at, t.id) < ($5::timestamptz, $6::uuid))
ORDER BY t.created_at DESC, t.id DESC
LIMIT $7::int;

-- name: status_task_counts
SELECT status, count(*)::bigint FROM tasker_tasks GROUP BY status;

-- name: status_live_step_counts
-- Live states only: served by the partial indexes on live steps.
SELECT state, count(*)::bigint
FROM tasker_steps
WHERE state IN ('pending', 'waiting_for_retry', 'in_progress')
GROUP BY state;

-- name: status_recent_outcomes
-- Step attempt outcomes recorded since $1 (every finished attempt leaves
-- in_progress), system-wide; tasker_transitions_created_brin (0004) keeps
-- this a small range scan.
SELECT count(*) FILTER (WHERE to_state = 'complete')::bigint,
       count(*) FILTER (WHERE to_state = 'waiting_for_retry')::bigint,
       count(*) FILTER (WHERE to_state = 'error')::bigint
FROM tasker_transitions
WHERE created_at >= $1::timestamptz
  AND step_id IS NOT NULL
  AND from_state = 'in_progress';
