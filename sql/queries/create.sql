-- Task creation (Store.CreateTask in internal/store/store.go).

-- name: CreateTask :one
-- The step arrays are parallel, one element per step; a step without a
-- concurrency key has NULL in both concurrency arrays, which are therefore
-- written _text and _int4 (see sqlc.yaml); so is when_exprs, NULL for a step
-- without a condition. request_hash is '' for a task created
-- before migration 0010 (no hash); the store takes a replay of it as the same
-- request.
SELECT r.task_id::uuid AS task_id, r.created::boolean AS created,
    coalesce(r.request_hash, '')::text AS request_hash
FROM tasker_create_task(@id, @namespace, @name, @version, @context, @initiator, @source_system, @reason,
    @tags::text[], @idempotency_scope::text, sqlc.narg('idempotency_key'), sqlc.narg('request_hash')::text,
    @correlation_id, @now, @actor,
    @step_ids::uuid[], @step_names::text[], @handlers::text[], @configs::jsonb[], @retry_limits::int[],
    @backoff_base_ms::int[], @max_backoff_ms::int[], @jitters::real[], @timeouts::int[],
    @concurrency_keys::_text, @concurrency_limits::_int4, @edge_from::uuid[], @edge_to::uuid[],
    @trigger_rules::text[], @when_exprs::_text) r;

-- name: SetTraceParent :exec
-- Queued after CreateTask when tracing is on, in the same implicit
-- transaction; a task that already existed keeps its trace.
UPDATE tasker_tasks SET trace_parent = @trace_parent WHERE id = @id AND trace_parent IS NULL;

-- name: SetStepRateLimits :exec
-- Queued after CreateTask, in the same implicit transaction, for the steps
-- with a rate_limit (docs/architecture.md, "Flow control"); the steps of an
-- existing task (a repeated idempotency key) have other ids and keep theirs.
-- Each a primary-key probe.
UPDATE tasker_steps s
SET rate_key = r.rate_key, rate_per_second = r.rate_per_second, rate_burst = r.rate_burst
FROM (SELECT unnest(@step_ids::uuid[]) AS step_id, unnest(@rate_keys::text[]) AS rate_key,
             unnest(@rates::float8[]) AS rate_per_second, unnest(@bursts::int[]) AS rate_burst) r
WHERE s.id = r.step_id;
