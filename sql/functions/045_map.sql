-- Map steps (docs/architecture.md, "Map"); keep every statement
-- idempotent. Instances are child rows of tasker_steps (migration 0013).

-- Expands claimed map steps: each attempt (fenced on (step, attempt) and
-- in_progress) waits (wait_kind 'map') while one pending instance per item
-- is inserted, named "<step>[<index>]", with the step's handler, config and
-- retry policy. An instance that already exists (an operator retried the
-- map step) is kept if it completed, and made pending again if it failed or
-- was cancelled; a new list does not replace the old items. The engine
-- records an empty list or too many items as the step's result or failure
-- instead of calling this.
CREATE OR REPLACE FUNCTION tasker_expand_maps(
    p_now timestamptz, p_actor text, p_step_ids uuid[], p_attempts int[], p_items jsonb[],
    p_max_concurrency int[], p_tolerated int[])
RETURNS SETOF tasker_wait_row
LANGUAGE plpgsql AS $$
DECLARE
    v_rows tasker_wait_row[];
BEGIN
    WITH input AS MATERIALIZED (
        SELECT i.*, 'in_progress'::text AS from_state
        FROM unnest(p_step_ids, p_attempts, p_items, p_max_concurrency, p_tolerated)
            AS i(step_id, attempt, items, max_concurrency, tolerated)
    ),
    updated AS (
        UPDATE tasker_steps s
        SET state = 'waiting',
            wait_kind = 'map',
            wake_at = NULL,
            wait_timeout_seconds = NULL,
            deadline_at = NULL,
            claimed_by = NULL,
            map_max_concurrency = i.max_concurrency,
            map_tolerated = i.tolerated,
            updated_at = p_now
        FROM input i
        WHERE s.id = i.step_id AND s.attempts = i.attempt AND s.state = i.from_state
        RETURNING s.task_id, s.id, s.name, s.attempts, jsonb_array_length(i.items) AS n
    ),
    tr AS (
        INSERT INTO tasker_transitions (task_id, step_id, from_state, to_state, attempt, reason, actor, metadata, created_at)
        SELECT u.task_id, u.id, 'in_progress', 'waiting', u.attempts, 'map: ' || u.n || ' items', p_actor,
               jsonb_build_object('wait_kind', 'map', 'items', u.n), p_now
        FROM updated u
    )
    SELECT array_agg(ROW('parked', u.task_id, u.id, u.name, u.attempts, 'in_progress', 'waiting', NULL, NULL, 'map',
                         'map: ' || u.n || ' items', t.namespace, t.name, t.correlation_id, t.trace_parent)::tasker_wait_row)
    INTO v_rows
    FROM updated u
    CROSS JOIN LATERAL (SELECT t.* FROM tasker_tasks t WHERE t.id = u.task_id OFFSET 0) t;

    IF v_rows IS NULL THEN
        RETURN;
    END IF;

    INSERT INTO tasker_steps (id, task_id, name, position, handler, config, retry_limit, max_attempts,
                              backoff_base_ms, max_backoff_ms, jitter, timeout_seconds, trigger_rule,
                              map_parent_id, map_index, map_item, created_at, updated_at)
    SELECT gen_random_uuid(), p.task_id, p.name || '[' || (x.ord - 1) || ']', p.position, p.handler, p.config,
           p.retry_limit, p.retry_limit, p.backoff_base_ms, p.max_backoff_ms, p.jitter, p.timeout_seconds,
           'all_success', p.id, (x.ord - 1)::int, x.item, p_now, p_now
    FROM unnest(v_rows) r
    JOIN unnest(p_step_ids, p_items) AS i(step_id, items) ON i.step_id = r.step_id
    CROSS JOIN LATERAL (SELECT p.* FROM tasker_steps p WHERE p.id = r.step_id OFFSET 0) p
    CROSS JOIN LATERAL jsonb_array_elements(i.items) WITH ORDINALITY AS x(item, ord)
    ON CONFLICT (task_id, name) DO UPDATE
        SET state = 'pending',
            max_attempts = tasker_steps.attempts + tasker_steps.retry_limit,
            next_retry_at = NULL,
            completed_at = NULL,
            updated_at = excluded.updated_at
        WHERE tasker_steps.state IN ('error', 'cancelled');

    RETURN QUERY SELECT * FROM unnest(v_rows);
END
$$;

-- Settles the running map steps among p_step_ids (map steps, or instances
-- whose map step is then looked at): one whose failed instances exceed
-- what it tolerates fails (code map_failed) and its instances not yet
-- started are cancelled; one with no live instance left completes with the
-- instances' results in index order (null for a failed or resolved one).
-- Each check is a probe of a partial index that stops at its first row (or
-- at the tolerated count); the results are read once, when the map ends.
-- Called by the scheduler pass, which holds the tasks' locks.
CREATE OR REPLACE FUNCTION tasker_settle_maps(p_now timestamptz, p_actor text, p_step_ids uuid[])
RETURNS SETOF tasker_scheduler_pass_row
LANGUAGE plpgsql AS $$
DECLARE
    v_rows tasker_scheduler_pass_row[];
BEGIN
    WITH maps AS MATERIALIZED (
        SELECT DISTINCT m.id, 'waiting'::text AS from_state
        FROM unnest(p_step_ids) AS b(id)
        CROSS JOIN LATERAL (SELECT s.id, s.map_parent_id FROM tasker_steps s WHERE s.id = b.id OFFSET 0) s
        CROSS JOIN LATERAL (SELECT m.* FROM tasker_steps m WHERE m.id = coalesce(s.map_parent_id, s.id) OFFSET 0) m
        WHERE m.state = 'waiting' AND m.wait_kind = 'map'
    ),
    checked AS (
        SELECT m.id, m.from_state, f.failed,
               NOT EXISTS (SELECT 1 FROM tasker_steps i
                           WHERE i.map_parent_id = m.id
                             AND i.state IN ('pending', 'waiting_for_retry', 'in_progress', 'waiting')
                           OFFSET 0) AS ended
        FROM maps m
        CROSS JOIN LATERAL (SELECT p.map_tolerated FROM tasker_steps p WHERE p.id = m.id OFFSET 0) p
        CROSS JOIN LATERAL (
            SELECT count(*)::int AS failed
            FROM (SELECT 1 FROM tasker_steps i
                  WHERE i.map_parent_id = m.id AND i.state = 'error'
                  LIMIT coalesce(p.map_tolerated, 0) + 1) x) f
    ),
    decided AS (
        SELECT c.id, c.from_state,
               CASE WHEN c.failed > coalesce(p.map_tolerated, 0) THEN 'error' ELSE 'complete' END AS to_state,
               c.failed, p.map_tolerated
        FROM checked c
        CROSS JOIN LATERAL (SELECT p.map_tolerated FROM tasker_steps p WHERE p.id = c.id OFFSET 0) p
        WHERE c.failed > coalesce(p.map_tolerated, 0) OR c.ended
    ),
    first_error AS (
        SELECT d.id, fe.name, fe.last_error
        FROM decided d
        CROSS JOIN LATERAL (SELECT i.name, i.last_error FROM tasker_steps i
                            WHERE i.map_parent_id = d.id AND i.state = 'error'
                            LIMIT 1) fe
        WHERE d.to_state = 'error'
    ),
    results AS (
        SELECT d.id, r.result, r.n
        FROM decided d
        CROSS JOIN LATERAL (
            SELECT jsonb_agg(coalesce(i.result, 'null'::jsonb) ORDER BY i.map_index) AS result, count(*) AS n
            FROM tasker_steps i
            WHERE i.map_parent_id = d.id) r
        WHERE d.to_state = 'complete'
    ),
    updated AS (
        UPDATE tasker_steps s
        SET state = d.to_state,
            result = CASE WHEN d.to_state = 'complete' THEN coalesce(r.result, '[]'::jsonb) END,
            last_error = CASE WHEN d.to_state = 'error' THEN jsonb_build_object(
                'message', format('map: %s instance(s) failed, more than the %s tolerated; first: %s: %s',
                                  d.failed, coalesce(d.map_tolerated, 0), fe.name,
                                  coalesce(fe.last_error ->> 'message', 'failed')),
                'code', 'map_failed') ELSE s.last_error END,
            wait_kind = NULL,
            completed_at = p_now,
            updated_at = p_now
        FROM decided d
        LEFT JOIN results r ON r.id = d.id
        LEFT JOIN first_error fe ON fe.id = d.id
        WHERE s.id = d.id AND s.state = d.from_state
        RETURNING s.task_id, s.id, s.name, s.attempts, s.state, s.last_error,
                  CASE WHEN s.state = 'complete' THEN 'map: ' || coalesce(r.n, 0) || ' instances completed'
                       ELSE 'map failed' END AS reason
    ),
    tr AS (
        INSERT INTO tasker_transitions (task_id, step_id, from_state, to_state, attempt, reason, actor, metadata, created_at)
        SELECT u.task_id, u.id, 'waiting', u.state, u.attempts, u.reason, p_actor,
               CASE WHEN u.state = 'error' THEN jsonb_build_object('error', u.last_error) END, p_now
        FROM updated u
    )
    SELECT array_agg(ROW('recorded', u.task_id, u.id, u.name, u.attempts, 'waiting', u.state, NULL,
                         u.reason, t.namespace, t.name, t.version, t.correlation_id, t.trace_parent,
                         NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)::tasker_scheduler_pass_row)
    INTO v_rows
    FROM updated u
    CROSS JOIN LATERAL (SELECT t.* FROM tasker_tasks t WHERE t.id = u.task_id OFFSET 0) t;

    IF v_rows IS NULL THEN
        RETURN;
    END IF;

    -- A failed map's instances that have not started are cancelled; those
    -- in flight end on their own.
    WITH failed AS MATERIALIZED (
        SELECT r.step_id AS id FROM unnest(v_rows) r WHERE r.to_state = 'error'
    ),
    cancelled AS (
        UPDATE tasker_steps s
        SET state = 'cancelled', next_retry_at = NULL, completed_at = p_now, updated_at = p_now
        FROM failed f
        CROSS JOIN LATERAL (SELECT i.id, i.state FROM tasker_steps i
                            WHERE i.map_parent_id = f.id AND i.state IN ('pending', 'waiting_for_retry')
                            OFFSET 0) i
        WHERE s.id = i.id
        RETURNING s.task_id, s.id, s.attempts, i.state AS from_state
    )
    INSERT INTO tasker_transitions (task_id, step_id, from_state, to_state, attempt, reason, actor, created_at)
    SELECT c.task_id, c.id, c.from_state, 'cancelled', c.attempts, 'map failed', p_actor, p_now
    FROM cancelled c;

    RETURN QUERY SELECT * FROM unnest(v_rows);
END
$$;

ALTER FUNCTION tasker_expand_maps(timestamptz, text, uuid[], int[], jsonb[], int[], int[])
    SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off
    SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION tasker_settle_maps(timestamptz, text, uuid[])
    SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off
    SET plan_cache_mode = force_generic_plan;
