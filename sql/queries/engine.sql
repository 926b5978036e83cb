-- name: lock_tasks
SELECT tasker_lock_tasks($1::uuid[]);

-- name: record_results
SELECT r.task_id, r.step_id, r.step_name, r.attempt, r.from_state, r.to_state, r.next_retry_at, r.reason,
       t.correlation_id, coalesce(t.trace_parent, '')
FROM tasker_record_results($1, $2::uuid[], $3::int[], $4::boolean[], $5::jsonb[], $6::jsonb[], $7::boolean[], $8::bigint[], $9::text[], $10) r
JOIN tasker_tasks t ON t.id = r.task_id;

-- name: finalize_tasks
SELECT f.task_id, f.from_state, f.to_state, t.namespace, t.name, t.correlation_id, coalesce(t.trace_parent, '')
FROM tasker_finalize_tasks($1::uuid[], $2, $3) f
JOIN tasker_tasks t ON t.id = f.task_id;

-- name: claim_steps
SELECT c.step_id, c.task_id, c.step_name, c.handler, c.attempt, c.max_attempts, c.deadline_at, c.config, c.context,
       c.namespace, c.workflow, c.version, c.correlation_id, c.results, c.from_state, c.task_started,
       coalesce(t.trace_parent, '')
FROM tasker_claim_steps($1::uuid[], $2, $3, $4, $5, $6) c
JOIN tasker_tasks t ON t.id = c.task_id;

-- name: release_claims
SELECT task_id, step_id, step_name, attempt, next_retry_at
FROM tasker_release_claims($1, $2::uuid[], $3::int[], $4::text[], $5, $6);

-- name: sweep_tasks
SELECT task_id FROM tasker_sweep_tasks($1, $2);

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
