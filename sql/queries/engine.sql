-- name: scheduler_pass
SELECT * FROM tasker_scheduler_pass($1, $2, $3::uuid[], $4::uuid[], $5::int[], $6::boolean[], $7::jsonb[], $8::jsonb[],
                                    $9::boolean[], $10::bigint[], $11::text[], $12, $13, $14);

-- name: release_claims
SELECT task_id, step_id, step_name, attempt, next_retry_at
FROM tasker_release_claims($1, $2::uuid[], $3::int[], $4::text[], $5, $6);

-- name: sweep_scan
SELECT kind, task_id, step_id, attempt, timeout_seconds, claimed_by
FROM tasker_sweep_scan($1, $2, $3, $4, $5, $6);

-- name: heartbeat
SELECT tasker_heartbeat($1, $2, $3, $4);
