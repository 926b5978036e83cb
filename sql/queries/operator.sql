-- name: LockTask :one
SELECT status, namespace, name, correlation_id FROM tasker_tasks WHERE id = @id FOR UPDATE;

-- name: CancelSteps :many
WITH updated AS (
    UPDATE tasker_steps s
    SET state = 'cancelled', deadline_at = NULL, next_retry_at = NULL, claimed_by = NULL,
        completed_at = @now::timestamptz, updated_at = @now::timestamptz
    FROM (SELECT id, state FROM tasker_steps
          WHERE task_id = @task_id::uuid AND state IN ('pending', 'waiting_for_retry', 'in_progress', 'waiting')
          FOR UPDATE) old
    WHERE s.id = old.id
    RETURNING s.id, s.name, s.attempts, old.state AS from_state
), tr AS (
    INSERT INTO tasker_transitions (task_id, step_id, from_state, to_state, attempt, reason, actor, created_at)
    SELECT @task_id::uuid, u.id, u.from_state, 'cancelled', u.attempts, @reason::text, @actor::text, @now::timestamptz FROM updated u
)
SELECT id, name, attempts, from_state FROM updated;

-- name: SetTaskStatus :exec
WITH old AS (
    SELECT status FROM tasker_tasks WHERE id = @task_id::uuid
), upd AS (
    UPDATE tasker_tasks
    SET status = @status::text, updated_at = @now::timestamptz,
        completed_at = CASE WHEN @status::text IN ('complete', 'error', 'cancelled', 'resolved_manually') THEN @now::timestamptz END
    WHERE id = @task_id::uuid
    RETURNING id
)
INSERT INTO tasker_transitions (task_id, from_state, to_state, reason, actor, created_at)
SELECT @task_id::uuid, old.status, @status::text, @reason::text, @actor::text, @now::timestamptz FROM old, upd;

-- name: RetryFailedSteps :many
WITH updated AS (
    UPDATE tasker_steps s
    SET state = 'pending', max_attempts = s.attempts + s.retry_limit, next_retry_at = NULL,
        operator_retries = s.operator_retries + 1,
        completed_at = NULL, updated_at = @now::timestamptz
    WHERE s.task_id = @task_id::uuid AND s.state = 'error'
    RETURNING s.id, s.name, s.attempts
), tr AS (
    INSERT INTO tasker_transitions (task_id, step_id, from_state, to_state, attempt, reason, actor, created_at)
    SELECT @task_id::uuid, u.id, 'error', 'pending', u.attempts, @reason::text, @actor::text, @now::timestamptz FROM updated u
)
SELECT id, name, attempts FROM updated;

-- name: ResolveStep :one
WITH target AS (
    SELECT id, state, attempts FROM tasker_steps WHERE task_id = @task_id::uuid AND name = @step::text FOR UPDATE
), updated AS (
    UPDATE tasker_steps s
    SET state = 'resolved_manually', result = coalesce(sqlc.narg('result')::jsonb, s.result), completed_at = @now::timestamptz, updated_at = @now::timestamptz,
        next_retry_at = NULL
    FROM target
    WHERE s.id = target.id AND target.state = 'error'
    RETURNING s.id, s.attempts
), tr AS (
    INSERT INTO tasker_transitions (task_id, step_id, from_state, to_state, attempt, reason, actor, metadata, created_at)
    SELECT @task_id::uuid, u.id, 'error', 'resolved_manually', u.attempts, @reason::text, @actor::text,
           CASE WHEN sqlc.narg('result')::jsonb IS NOT NULL THEN jsonb_build_object('result', sqlc.narg('result')::jsonb) END, @now::timestamptz
    FROM updated u
)
SELECT target.id, target.state, target.attempts, EXISTS (SELECT 1 FROM updated) AS resolved FROM target;

-- name: ResetSkippedDescendants :many
-- After an operator retry or resolve changed the given steps (@roots), the
-- steps skipped below them, through skipped steps only, go back to pending:
-- they were skipped on their parents' old outcome, and the scheduler pass
-- decides them again (docs/architecture.md, "States"). A walk from the
-- roots by tasker_step_edges_from and primary keys: the task's own rows.
WITH RECURSIVE below AS (
    SELECT r.id FROM unnest(@roots::uuid[]) AS r(id)
    UNION
    SELECT c.id
    FROM below b
    JOIN tasker_step_edges e ON e.from_step_id = b.id
    JOIN tasker_steps c ON c.id = e.to_step_id
    WHERE c.state = 'skipped'
), updated AS (
    UPDATE tasker_steps s
    SET state = 'pending', skip_kind = NULL, skip_reason = NULL, max_attempts = s.attempts + s.retry_limit,
        next_retry_at = NULL, completed_at = NULL, updated_at = @now::timestamptz
    FROM below b
    WHERE s.id = b.id AND s.task_id = @task_id::uuid AND s.state = 'skipped'
    RETURNING s.id, s.name, s.attempts
), tr AS (
    INSERT INTO tasker_transitions (task_id, step_id, from_state, to_state, attempt, reason, actor, created_at)
    SELECT @task_id::uuid, u.id, 'skipped', 'pending', u.attempts, @reason::text, @actor::text, @now::timestamptz FROM updated u
)
SELECT id, name, attempts FROM updated;
