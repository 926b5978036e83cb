-- name: create_task
SELECT task_id, created
FROM tasker_create_task($1, $2, $3, $4, $5, $6, $7, $8, $9::text[], $10, $11, $12, $13,
    $14::uuid[], $15::text[], $16::text[], $17::jsonb[], $18::int[], $19::int[], $20::int[], $21::real[],
    $22::int[], $23::text[], $24::int[], $25::uuid[], $26::uuid[]);

-- name: set_trace_parent
UPDATE tasker_tasks SET trace_parent = $2 WHERE id = $1 AND trace_parent IS NULL;

-- name: lock_task
SELECT status, namespace, name, correlation_id FROM tasker_tasks WHERE id = $1 FOR UPDATE;

-- name: cancel_steps
WITH updated AS (
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
SELECT id, name, attempts, from_state FROM updated;

-- name: set_task_status
WITH old AS (
    SELECT status FROM tasker_tasks WHERE id = $1::uuid
), upd AS (
    UPDATE tasker_tasks
    SET status = $2::text, updated_at = $3::timestamptz,
        completed_at = CASE WHEN $2::text IN ('complete', 'error', 'cancelled', 'resolved_manually') THEN $3::timestamptz END
    WHERE id = $1::uuid
    RETURNING id
)
INSERT INTO tasker_transitions (task_id, from_state, to_state, reason, actor, created_at)
SELECT $1::uuid, old.status, $2::text, $4::text, $5::text, $3::timestamptz FROM old, upd;

-- name: retry_failed_steps
WITH updated AS (
    UPDATE tasker_steps s
    SET state = 'pending', max_attempts = s.attempts + s.retry_limit, next_retry_at = NULL,
        completed_at = NULL, updated_at = $2::timestamptz
    WHERE s.task_id = $1::uuid AND s.state = 'error'
    RETURNING s.id, s.name, s.attempts
), tr AS (
    INSERT INTO tasker_transitions (task_id, step_id, from_state, to_state, attempt, reason, actor, created_at)
    SELECT $1::uuid, u.id, 'error', 'pending', u.attempts, $3::text, $4::text, $2::timestamptz FROM updated u
)
SELECT id, name, attempts FROM updated;

-- name: resolve_step
WITH target AS (
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
SELECT target.id, target.state, target.attempts, EXISTS (SELECT 1 FROM updated) FROM target;
