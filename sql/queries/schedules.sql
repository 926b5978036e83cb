-- Schedules (internal/store/schedules.go; migration 0014; docs/control-flow.md,
-- "Schedules"). The table holds one row per schedule entry of the loaded
-- templates, so every statement here costs the number of schedules at most.

-- name: SyncSchedules :exec
-- Inserts the schedules not yet known and starts afresh those whose spec
-- changed; a known, unchanged schedule keeps its state (no write).
INSERT INTO tasker_schedules AS s (namespace, name, idx, spec, next_fire_at, created_at, updated_at)
SELECT u.namespace, u.name, u.idx, u.spec, u.next_fire_at, @now::timestamptz, @now::timestamptz
FROM (SELECT unnest(@namespaces::text[]) AS namespace, unnest(@names::text[]) AS name, unnest(@idxs::int[]) AS idx,
             unnest(@specs::text[]) AS spec, unnest(@next_fire_ats::timestamptz[]) AS next_fire_at) u
ON CONFLICT (namespace, name, idx) DO UPDATE
SET spec = excluded.spec, next_fire_at = excluded.next_fire_at, updated_at = excluded.updated_at
WHERE s.spec IS DISTINCT FROM excluded.spec;

-- name: DueSchedules :many
SELECT id, namespace, name, idx, spec, next_fire_at
FROM tasker_schedules
WHERE NOT paused AND next_fire_at <= @now
ORDER BY next_fire_at
LIMIT @lim;

-- name: ClaimScheduleFire :many
-- The fire claim: only the sweep that read next_fire_at = old_next moves it
-- on (docs/control-flow.md, "Schedules").
UPDATE tasker_schedules
SET next_fire_at = @next_fire_at, last_fired_at = sqlc.narg('last_fired_at'),
    last_task_id = COALESCE(sqlc.narg('last_task_id')::uuid, last_task_id), updated_at = @now
WHERE id = @id AND next_fire_at = @old_next AND NOT paused AND spec = @spec
RETURNING id;

-- name: ListSchedules :many
SELECT id, namespace, name, idx, spec, next_fire_at, last_fired_at, last_task_id, paused
FROM tasker_schedules
ORDER BY namespace, name, idx
LIMIT @lim;

-- name: ReadSchedule :many
SELECT id, namespace, name, idx, spec, next_fire_at, last_fired_at, last_task_id, paused
FROM tasker_schedules
WHERE id = @id;

-- name: SetSchedulePaused :many
-- Resuming sets next_fire_at to the next fire time after now: the fire
-- times of the pause are not caught up.
UPDATE tasker_schedules
SET paused = @paused, next_fire_at = COALESCE(sqlc.narg('next_fire_at')::timestamptz, next_fire_at), updated_at = @now
WHERE id = @id
RETURNING id, namespace, name, idx, spec, next_fire_at, last_fired_at, last_task_id, paused;

-- name: ListTemplateSchedules :many
-- One template's schedules (GET /v1/templates/{namespace}/{name}), in entry
-- order: a range of the (namespace, name, idx) key.
SELECT id, namespace, name, idx, spec, next_fire_at, last_fired_at, last_task_id, paused
FROM tasker_schedules
WHERE namespace = @namespace AND name = @name
ORDER BY idx
LIMIT @lim;
