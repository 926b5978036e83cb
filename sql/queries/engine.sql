-- name: scheduler_pass
SELECT * FROM tasker_scheduler_pass($1, $2, $3::uuid[], $4::uuid[], $5::int[], $6::boolean[], $7::jsonb[], $8::jsonb[],
                                    $9::boolean[], $10::bigint[], $11::text[], $12, $13, $14);

-- name: release_claims
SELECT task_id, step_id, step_name, attempt, next_retry_at
FROM tasker_release_claims($1, $2::uuid[], $3::int[], $4::text[], $5, $6);

-- name: sweep_tasks
SELECT task_id, scanned_to FROM tasker_sweep_tasks($1, $2, $3, $4);

-- name: expired_steps
SELECT id, task_id, attempts, timeout_seconds
FROM tasker_steps
WHERE state = 'in_progress' AND deadline_at <= $1
ORDER BY deadline_at
LIMIT $2;

-- name: interrupted_steps
SELECT s.id, s.task_id, s.attempts, s.claimed_by
FROM tasker_steps s
JOIN tasker_instances i ON i.id = s.claimed_by
WHERE s.state = 'in_progress'
  AND i.local
  AND i.id <> $1
  AND i.heartbeat_at < $2
LIMIT $3;

-- name: heartbeat
INSERT INTO tasker_instances (id, local, started_at, heartbeat_at)
VALUES ($1, $2, $3, $3)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at;

-- name: forget_instances
DELETE FROM tasker_instances i
WHERE i.heartbeat_at < $1
  AND NOT EXISTS (SELECT 1 FROM tasker_steps s WHERE s.state = 'in_progress' AND s.claimed_by = i.id);

-- name: in_flight
SELECT count(*) FROM tasker_steps WHERE state = 'in_progress';
