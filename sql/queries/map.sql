-- Map steps (Store.ExpandMaps in internal/store/map.go); calls
-- tasker_expand_maps of sql/functions/045_map.sql, which returns SETOF
-- tasker_wait_row (migration 0011).

-- name: ExpandMaps :many
SELECT * FROM tasker_expand_maps(@now, @actor, @step_ids::uuid[], @attempts::int[], @items::jsonb[],
                                 @max_concurrency::int[], @tolerated::int[]);
