-- Child workflows (internal/store/children.go); the functions are in
-- sql/functions/050_children.sql.

-- name: ParkChildren :many
SELECT * FROM tasker_park_children(@now, @actor, @step_ids::uuid[], @attempts::int[], @child_ids::uuid[]);

-- name: SettleChildren :many
SELECT * FROM tasker_settle_children(@now, @actor, @task_ids::uuid[]);

-- name: EndedChildren :many
SELECT r.task_id::uuid AS task_id FROM tasker_ended_children(@lim::int) r;

-- name: LiveChildren :many
-- The children of p_task_ids not yet ended, for a cancel to cascade to.
SELECT c.id
FROM unnest(@task_ids::uuid[]) AS p(id)
CROSS JOIN LATERAL (SELECT c.id, c.status FROM tasker_tasks c
                    WHERE c.parent_task_id = p.id
                    OFFSET 0) c
WHERE c.status IN ('pending', 'in_progress');
