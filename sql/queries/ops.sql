-- Operating at volume (docs/operating.md): search by tag and by update
-- time, a task's whole history, and retention. Reads run after IndexPlans
-- (docs/architecture.md, "Cost follows the work").

-- name: ListTasksByTag :many
-- Tasks carrying @tag, newest first: a walk of tasker_task_tags (tag,
-- created_at, task_id) from the cursor, each task fetched by its primary
-- key. Further tags (all_tags), and the other filters, are checked on the
-- rows walked, like the second filter of ListTasks.
SELECT t.id, t.namespace, t.name, t.version, t.status, t.context, t.initiator, t.source_system, t.reason,
       t.tags, t.idempotency_key, t.correlation_id, t.created_at, t.updated_at, t.started_at, t.completed_at
FROM tasker_task_tags g
-- OFFSET 0 keeps the subquery apart, so each task is fetched by its
-- primary key; flattened, the planner may instead probe another index of
-- tasker_tasks for every tag row (a young database's statistics invite it).
CROSS JOIN LATERAL (SELECT * FROM tasker_tasks t0 WHERE t0.id = g.task_id OFFSET 0) t
WHERE g.tag = @tag::text
  AND (sqlc.narg('all_tags')::text[] IS NULL OR t.tags @> sqlc.narg('all_tags')::text[])
  AND (sqlc.narg('namespace')::text IS NULL OR t.namespace = sqlc.narg('namespace')::text)
  AND (sqlc.narg('name')::text IS NULL OR t.name = sqlc.narg('name')::text)
  AND (sqlc.narg('statuses')::text[] IS NULL OR t.status = ANY (sqlc.narg('statuses')::text[]))
  AND (sqlc.narg('correlation_id')::text IS NULL OR t.correlation_id = sqlc.narg('correlation_id')::text)
  AND (sqlc.narg('created_from')::timestamptz IS NULL OR g.created_at >= sqlc.narg('created_from')::timestamptz)
  AND (sqlc.narg('created_to')::timestamptz IS NULL OR g.created_at < sqlc.narg('created_to')::timestamptz)
  AND (sqlc.narg('after_created_at')::timestamptz IS NULL
       OR (g.created_at, g.task_id) < (sqlc.narg('after_created_at')::timestamptz, sqlc.narg('after_id')::uuid))
ORDER BY g.created_at DESC, g.task_id DESC
LIMIT @max_rows::int;

-- name: ListTasksByUpdated :many
-- Tasks changed in [updated_from, updated_to), most recently changed first:
-- a range of tasker_tasks_updated (updated_at DESC, id DESC) from the cursor.
SELECT t.id, t.namespace, t.name, t.version, t.status, t.context, t.initiator, t.source_system, t.reason,
       t.tags, t.idempotency_key, t.correlation_id, t.created_at, t.updated_at, t.started_at, t.completed_at
FROM tasker_tasks t
WHERE (sqlc.narg('updated_from')::timestamptz IS NULL OR t.updated_at >= sqlc.narg('updated_from')::timestamptz)
  AND (sqlc.narg('updated_to')::timestamptz IS NULL OR t.updated_at < sqlc.narg('updated_to')::timestamptz)
  AND (sqlc.narg('namespace')::text IS NULL OR t.namespace = sqlc.narg('namespace')::text)
  AND (sqlc.narg('name')::text IS NULL OR t.name = sqlc.narg('name')::text)
  AND (sqlc.narg('statuses')::text[] IS NULL OR t.status = ANY (sqlc.narg('statuses')::text[]))
  AND (sqlc.narg('correlation_id')::text IS NULL OR t.correlation_id = sqlc.narg('correlation_id')::text)
  AND (sqlc.narg('all_tags')::text[] IS NULL OR t.tags @> sqlc.narg('all_tags')::text[])
  AND (sqlc.narg('created_from')::timestamptz IS NULL OR t.created_at >= sqlc.narg('created_from')::timestamptz)
  AND (sqlc.narg('created_to')::timestamptz IS NULL OR t.created_at < sqlc.narg('created_to')::timestamptz)
  AND (sqlc.narg('after_updated_at')::timestamptz IS NULL
       OR (t.updated_at, t.id) < (sqlc.narg('after_updated_at')::timestamptz, sqlc.narg('after_id')::uuid))
ORDER BY t.updated_at DESC, t.id DESC
LIMIT @max_rows::int;

-- name: ReadTaskTransitions :many
-- A task's whole audit, task and step rows interleaved in the order they
-- were recorded: a range of tasker_transitions_task (task_id, id) after the
-- cursor, each step row naming its step (primary key).
SELECT tr.id, tr.step_id, s.name AS step_name, tr.from_state, tr.to_state, tr.attempt, tr.reason, tr.actor,
       tr.metadata, tr.created_at
FROM tasker_transitions tr
LEFT JOIN tasker_steps s ON s.id = tr.step_id
-- Written as a range of (task_id, id) rather than task_id = @task_id: with
-- an equality the planner may walk the primary key in id order instead
-- (cheap-looking under stale statistics, a scan of every transition).
WHERE (tr.task_id, tr.id) > (@task_id::uuid, @after_id::bigint) AND tr.task_id <= @task_id::uuid
ORDER BY tr.task_id, tr.id
LIMIT @max_rows::int;

-- name: PruneCandidates :many
-- The oldest finished tasks completed before @before, locked so that an
-- operator retry of a task in error waits (or is waited for) instead of
-- racing the delete; tasks another transaction holds are left for the next
-- run. A range of tasker_tasks_finished, at most @max_rows.
SELECT t.id
FROM tasker_tasks t
WHERE t.status IN ('complete', 'error', 'cancelled', 'resolved_manually')
  AND t.completed_at < @before::timestamptz
ORDER BY t.completed_at, t.id
LIMIT @max_rows::int
FOR UPDATE SKIP LOCKED;

-- name: PruneCount :one
-- How many tasks a prune before @before would delete, up to @count_cap.
SELECT count(*)::bigint AS n
FROM (SELECT 1 FROM tasker_tasks t
      WHERE t.status IN ('complete', 'error', 'cancelled', 'resolved_manually')
        AND t.completed_at < @before::timestamptz
      LIMIT @count_cap::int) x;

-- name: ExportTasks :many
-- One JSON document per task of @ids: the task row, its steps in template
-- order and its transitions in order (callback token hashes left out).
SELECT t.id, jsonb_build_object(
           'task', to_jsonb(t) - 'request_hash',
           'steps', coalesce((SELECT jsonb_agg(to_jsonb(s) - 'callback_token_hash' ORDER BY s.position)
                              FROM tasker_steps s WHERE s.task_id = t.id), '[]'::jsonb),
           'transitions', coalesce((SELECT jsonb_agg(to_jsonb(tr) ORDER BY tr.id)
                                    FROM tasker_transitions tr WHERE tr.task_id = t.id), '[]'::jsonb)
       ) AS doc
FROM tasker_tasks t
WHERE t.id = ANY (@ids::uuid[])
ORDER BY t.id;

-- name: DeleteTasks :many
-- Deletes the tasks of @ids that are still finished before @before; their
-- steps, edges, transitions and tags go with them (ON DELETE CASCADE, each
-- by an index on its task or step).
DELETE FROM tasker_tasks t
WHERE t.id = ANY (@ids::uuid[])
  AND t.status IN ('complete', 'error', 'cancelled', 'resolved_manually')
  AND t.completed_at < @before::timestamptz
RETURNING t.id;

-- name: CustomPlans :exec
-- Within a snapshot, before a listing query: the listings have optional
-- filters (NULL means none), so each call must be planned for its own
-- parameters, never a cached generic plan that keeps every branch. Sent in
-- the same pipeline (one round trip); on the simple protocol every
-- statement is planned for its values anyway.
SELECT set_config('plan_cache_mode', 'force_custom_plan', true);
