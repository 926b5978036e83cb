-- Applied after the numbered migrations whenever any function file changes
-- (internal/migrate); keep every statement idempotent.

-- Until migration 0010 tasker_create_task took no idempotency scope or
-- request hash and returned (task_id, created); that signature is dropped
-- here, in the transaction that creates its replacement below.
DROP FUNCTION IF EXISTS tasker_create_task(
    uuid, text, text, text, jsonb, text, text, text, text[], text, text, timestamptz, text,
    uuid[], text[], text[], jsonb[], int[], int[], int[], real[], int[], text[], int[], uuid[], uuid[]);

-- Until migration 0012 it took no trigger rules or conditions; migration
-- 0012 drops that signature.

-- Task creation: the task, its steps and edges and the first transition in
-- one statement. An idempotency key is unique within its scope (the caller,
-- docs/security.md); a repeated key returns the existing task of that scope
-- with created = false and the hash of the request it was created with, for
-- the caller to compare with its own (NULL for tasks older than 0010).
CREATE OR REPLACE FUNCTION tasker_create_task(
    p_id uuid, p_namespace text, p_name text, p_version text, p_context jsonb,
    p_initiator text, p_source_system text, p_reason text, p_tags text[],
    p_idempotency_scope text, p_idempotency_key text, p_request_hash text,
    p_correlation_id text, p_now timestamptz, p_actor text,
    p_step_ids uuid[], p_step_names text[], p_handlers text[], p_configs jsonb[],
    p_retry_limits int[], p_backoff_base_ms int[], p_max_backoff_ms int[], p_jitters real[],
    p_timeouts int[], p_concurrency_keys text[], p_concurrency_limits int[],
    p_edge_from uuid[], p_edge_to uuid[], p_trigger_rules text[], p_when_exprs text[])
RETURNS TABLE (task_id uuid, created boolean, request_hash text)
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tasker_tasks (id, namespace, name, version, context, initiator, source_system, reason,
                              tags, idempotency_scope, idempotency_key, request_hash, correlation_id,
                              created_at, updated_at)
    VALUES (p_id, p_namespace, p_name, p_version, p_context, p_initiator, p_source_system, p_reason,
            p_tags, CASE WHEN p_idempotency_key IS NOT NULL THEN coalesce(p_idempotency_scope, '') END,
            p_idempotency_key, CASE WHEN p_idempotency_key IS NOT NULL THEN p_request_hash END,
            p_correlation_id, p_now, p_now)
    ON CONFLICT (idempotency_scope, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING;
    IF NOT FOUND THEN
        RETURN QUERY SELECT t.id, false, t.request_hash FROM tasker_tasks t
                     WHERE t.idempotency_scope = coalesce(p_idempotency_scope, '')
                       AND t.idempotency_key = p_idempotency_key;
        RETURN;
    END IF;

    INSERT INTO tasker_steps (id, task_id, name, position, handler, config, retry_limit, max_attempts,
                              backoff_base_ms, max_backoff_ms, jitter, timeout_seconds,
                              concurrency_key, concurrency_limit, trigger_rule, when_expr, created_at, updated_at)
    SELECT s.id, p_id, s.name, s.ord::int, s.handler, s.config, s.retry_limit, s.retry_limit,
           s.base_ms, s.max_ms, s.jitter, s.timeout, s.ckey, s.climit, s.rule, s.when_expr, p_now, p_now
    FROM unnest(p_step_ids, p_step_names, p_handlers, p_configs, p_retry_limits, p_backoff_base_ms,
                p_max_backoff_ms, p_jitters, p_timeouts, p_concurrency_keys, p_concurrency_limits,
                p_trigger_rules, p_when_exprs)
         WITH ORDINALITY AS s(id, name, handler, config, retry_limit, base_ms, max_ms, jitter, timeout, ckey, climit,
                              rule, when_expr, ord);

    INSERT INTO tasker_step_edges (task_id, from_step_id, to_step_id)
    SELECT p_id, e.f, e.t FROM unnest(p_edge_from, p_edge_to) AS e(f, t);

    INSERT INTO tasker_transitions (task_id, from_state, to_state, reason, actor, created_at)
    VALUES (p_id, NULL, 'pending', 'created', p_actor, p_now);

    -- The tag search index (migration 0017).
    INSERT INTO tasker_task_tags (tag, created_at, task_id)
    SELECT DISTINCT g.tag, p_now, p_id FROM unnest(p_tags) AS g(tag);

    RETURN QUERY SELECT p_id, true, p_request_hash;
END
$$;
