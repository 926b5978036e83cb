-- Durable waits and callbacks (Store.ParkSteps, FireWaits and Callback in
-- internal/store/waits.go); each calls one function of
-- sql/functions/030_waits.sql, which returns SETOF tasker_wait_row
-- (migration 0011), so sqlc types the columns NULL for some kinds of row as
-- pointers.

-- name: ParkSteps :many
SELECT * FROM tasker_park_steps(@now, @actor, @step_ids::uuid[], @attempts::int[], @kinds::text[],
                                @wake_at::timestamptz[], @timeouts::int[], @reasons::text[]);

-- name: FireWaits :many
-- step_ids NULL: the soonest due waits (the sweep).
SELECT * FROM tasker_fire_waits(@now, @actor, sqlc.narg('step_ids')::uuid[], sqlc.narg('attempts')::int[], @lim);

-- name: Callback :many
SELECT * FROM tasker_callback(@now, @actor, sqlc.narg('step_id')::uuid, sqlc.narg('task_id')::uuid,
                              sqlc.narg('step_name')::text, sqlc.narg('attempt')::int, sqlc.narg('hash')::bytea,
                              @action::text, sqlc.narg('result')::jsonb, sqlc.narg('err')::jsonb,
                              sqlc.narg('permanent')::boolean, sqlc.narg('retry_after_ms')::bigint,
                              @reason::text, @grace_seconds::int);
