-- Map steps (Store.ExpandMaps in internal/store/map.go); calls
-- tasker_expand_maps of sql/functions/045_map.sql, which returns SETOF
-- tasker_wait_row (migration 0011).

-- name: ExpandMaps :many
SELECT * FROM tasker_expand_maps(@now, @actor, @step_ids::uuid[], @attempts::int[], @items::jsonb[],
                                 @max_concurrency::int[], @tolerated::int[]);

-- Paging a map step's instances (Store.ListMapInstances; GET
-- /v1/tasks/{id}/steps/{step}/instances, docs/control-flow.md, "Map").

-- name: ReadMapStep :many
-- The task (no row: no such task) and its top-level step of that name
-- (step_found false: no such step); expanded says the step is a map step
-- whose instances were made.
SELECT t.namespace, t.name, t.version, (s.id IS NOT NULL)::bool AS step_found,
       (s.map_max_concurrency IS NOT NULL)::bool AS expanded
FROM tasker_tasks t
LEFT JOIN LATERAL (SELECT s.id, s.map_max_concurrency FROM tasker_steps s
                   WHERE s.task_id = t.id AND s.name = @name::text AND s.map_parent_id IS NULL) s ON true
WHERE t.id = @task_id::uuid;

-- name: ListMapInstances :many
-- One page of instances in index order after @after_index, optionally of one
-- state. The walk of tasker_steps_map_instances stops after @scan_limit
-- instances whatever the filter, so a page of a rare state costs at most
-- that (MapInstancesScanned says where the walk stopped). A result larger
-- than @inline_max bytes of JSON text is left out (result_omitted): read the instance.
SELECT i.map_index::int AS map_index, i.name, i.state, i.attempts, i.max_attempts,
       (CASE WHEN octet_length(i.result::text) <= @inline_max::int THEN i.result END)::jsonb AS result,
       coalesce(octet_length(i.result::text) > @inline_max::int, false)::bool AS result_omitted,
       i.last_error, i.next_retry_at, i.started_at, i.completed_at, i.wake_at, i.wait_kind
FROM tasker_steps m
CROSS JOIN LATERAL (
    SELECT w.map_index, w.name, w.state, w.attempts, w.max_attempts, w.result, w.last_error, w.next_retry_at,
           w.started_at, w.completed_at, w.wake_at, w.wait_kind
    FROM tasker_steps w
    WHERE w.map_parent_id = m.id AND w.map_parent_id IS NOT NULL AND w.map_index > @after_index::int
    ORDER BY w.map_index
    LIMIT @scan_limit::int
) i
WHERE m.task_id = @task_id::uuid AND m.name = @name::text AND m.map_parent_id IS NULL
  AND (sqlc.narg('state')::text IS NULL OR i.state = sqlc.narg('state')::text)
ORDER BY i.map_index
LIMIT @page_limit::int;

-- name: MapInstancesScanned :one
-- How far ListMapInstances' walk went with the same bounds: the instances it
-- examined and the last index among them (-1 for none).
SELECT count(*)::int AS scanned, coalesce(max(x.map_index), -1)::int AS last_index
FROM tasker_steps m
CROSS JOIN LATERAL (
    SELECT w.map_index FROM tasker_steps w
    WHERE w.map_parent_id = m.id AND w.map_parent_id IS NOT NULL AND w.map_index > @after_index::int
    ORDER BY w.map_index
    LIMIT @scan_limit::int
) x
WHERE m.task_id = @task_id::uuid AND m.name = @name::text AND m.map_parent_id IS NULL;
