-- Applied after the numbered migrations whenever any function file changes
-- (internal/migrate); keep every statement idempotent.

-- Task creation: the task, its steps and edges and the first transition in
-- one statement. A repeated idempotency key returns the existing task.
CREATE OR REPLACE FUNCTION tasker_create_task(
    p_id uuid, p_namespace text, p_name text, p_version text, p_context jsonb,
    p_initiator text, p_source_system text, p_reason text, p_tags text[],
    p_idempotency_key text, p_correlation_id text, p_now timestamptz, p_actor text,
    p_step_ids uuid[], p_step_names text[], p_handlers text[], p_configs jsonb[],
    p_retry_limits int[], p_backoff_base_ms int[], p_max_backoff_ms int[], p_jitters real[],
    p_timeouts int[], p_concurrency_keys text[], p_concurrency_limits int[],
    p_edge_from uuid[], p_edge_to uuid[])
RETURNS TABLE (task_id uuid, created boolean)
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tasker_tasks (id, namespace, name, version, context, initiator, source_system, reason,
                              tags, idempotency_key, correlation_id, created_at, updated_at)
    VALUES (p_id, p_namespace, p_name, p_version, p_context, p_initiator, p_source_system, p_reason,
            p_tags, p_idempotency_key, p_correlation_id, p_now, p_now)
    ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING;
    IF NOT FOUND THEN
        RETURN QUERY SELECT t.id, false FROM tasker_tasks t WHERE t.idempotency_key = p_idempotency_key;
        RETURN;
    END IF;

    INSERT INTO tasker_steps (id, task_id, name, position, handler, config, retry_limit, max_attempts,
                              backoff_base_ms, max_backoff_ms, jitter, timeout_seconds,
                              concurrency_key, concurrency_limit, created_at, updated_at)
    SELECT s.id, p_id, s.name, s.ord::int, s.handler, s.config, s.retry_limit, s.retry_limit,
           s.base_ms, s.max_ms, s.jitter, s.timeout, s.ckey, s.climit, p_now, p_now
    FROM unnest(p_step_ids, p_step_names, p_handlers, p_configs, p_retry_limits, p_backoff_base_ms,
                p_max_backoff_ms, p_jitters, p_timeouts, p_concurrency_keys, p_concurrency_limits)
         WITH ORDINALITY AS s(id, name, handler, config, retry_limit, base_ms, max_ms, jitter, timeout, ckey, climit, ord);

    INSERT INTO tasker_step_edges (task_id, from_step_id, to_step_id)
    SELECT p_id, e.f, e.t FROM unnest(p_edge_from, p_edge_to) AS e(f, t);

    INSERT INTO tasker_transitions (task_id, from_state, to_state, reason, actor, created_at)
    VALUES (p_id, NULL, 'pending', 'created', p_actor, p_now);

    RETURN QUERY SELECT p_id, true;
END
$$;
