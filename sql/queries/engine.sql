-- The engine's statements (Store.Process, ReleaseClaims, SweepScan and
-- Heartbeat in internal/store/store.go); each calls one function of
-- sql/functions/020_scheduler.sql.

-- name: SchedulerPass :many
-- Returns SETOF tasker_scheduler_pass_row (migration 0009), so sqlc types
-- the columns NULL for some kinds of row as pointers. retry_after_ms is
-- NULL for a result without a Retry-After, so the array is written _int8
-- (see sqlc.yaml).
SELECT * FROM tasker_scheduler_pass(@now, @actor, @task_ids::uuid[], @step_ids::uuid[], @attempts::int[],
                                    @ok::boolean[], @results::jsonb[], @errors::jsonb[], @permanent::boolean[],
                                    @retry_after_ms::_int8, @reasons::text[], @claim_limit,
                                    @global_cap, @grace_seconds, @skip::boolean[]);

-- name: ReleaseClaims :many
-- Every column is set, so the function keeps RETURNS TABLE and the query
-- casts each column.
SELECT r.task_id::uuid AS task_id, r.step_id::uuid AS step_id, r.step_name::text AS step_name,
       r.attempt::int AS attempt, r.next_retry_at::timestamptz AS next_retry_at
FROM tasker_release_claims(@now, @step_ids::uuid[], @attempts::int[], @reasons::text[], @delay_ms, @actor) r;

-- name: SweepScan :many
-- Returns SETOF tasker_sweep_scan_row (migration 0009).
SELECT kind, task_id, step_id, attempt, timeout_seconds, claimed_by
FROM tasker_sweep_scan(@now, @lim, @after, @scan, @self, @stale_before);

-- name: Heartbeat :exec
SELECT tasker_heartbeat(@instance, @local, @now, @forget_before);

-- name: StepResults :many
-- The results of named steps of claimed tasks (sql/functions/040_inputs.sql).
SELECT r.task_id::uuid AS task_id, r.name::text AS name, r.result::jsonb AS result
FROM tasker_step_results(@task_ids::uuid[], @names::text[]) r;

-- name: PruneRateBuckets :execrows
-- Deletes up to @max_rows token buckets that have refilled to their burst by
-- @now (docs/architecture.md, "Flow control"): a missing row is a full
-- bucket, so nothing changes but the table's size. A range of
-- tasker_rate_buckets_full, oldest first. A pass that locked a bucket first
-- keeps it: its update moves full_at on, which the delete re-checks. The
-- store runs it after IndexPlans.
DELETE FROM tasker_rate_buckets b
WHERE b.key IN (SELECT x.key FROM tasker_rate_buckets x
                WHERE x.full_at <= @now::timestamptz
                ORDER BY x.full_at
                LIMIT @max_rows::int)
  AND b.full_at <= @now::timestamptz;
