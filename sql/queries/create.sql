-- Task creation (Store.CreateTask in internal/store/store.go). Still looked
-- up by name, not yet compiled by sqlc: it goes with the engine side, whose
-- functions (tasker_create_task) are being reworked.

-- name: create_task
SELECT task_id, created
FROM tasker_create_task($1, $2, $3, $4, $5, $6, $7, $8, $9::text[], $10, $11, $12, $13,
    $14::uuid[], $15::text[], $16::text[], $17::jsonb[], $18::int[], $19::int[], $20::int[], $21::real[],
    $22::int[], $23::text[], $24::int[], $25::uuid[], $26::uuid[]);

-- name: set_trace_parent
UPDATE tasker_tasks SET trace_parent = $2 WHERE id = $1 AND trace_parent IS NULL;
