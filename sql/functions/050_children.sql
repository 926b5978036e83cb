-- Child workflows (docs/architecture.md, "Child workflows"); keep every
-- statement idempotent. A child task is created by the engine's create
-- path with the idempotency key child:<step id>:<attempt> in scope
-- 'child' before its parent step is parked here, so a crash between the
-- two, or a duplicate claim, finds the same child again.

-- Parks claimed tasker.workflow steps (fenced on (step, attempt) and
-- in_progress) waiting (wait_kind 'child') on their children, and links
-- each child to its parent step and task. Returns a 'parked' row per step
-- parked and a 'child_ended' row (task_id: the child) per child it linked
-- that had already ended: its pass finalized it before it named a parent,
-- so nothing settled its parent step, and the engine settles it now
-- (tasker_settle_children). A child that ends after the link commits has
-- a parent in its pass's 'finalized' row.
CREATE OR REPLACE FUNCTION tasker_park_children(
    p_now timestamptz, p_actor text, p_step_ids uuid[], p_attempts int[], p_child_ids uuid[])
RETURNS SETOF tasker_wait_row
LANGUAGE plpgsql AS $$
DECLARE
    v_rows  tasker_wait_row[];
    v_ended uuid[];
BEGIN
    WITH input AS MATERIALIZED (
        SELECT i.*, 'in_progress'::text AS from_state
        FROM unnest(p_step_ids, p_attempts, p_child_ids) AS i(step_id, attempt, child_id)
    ),
    updated AS (
        UPDATE tasker_steps s
        SET state = 'waiting',
            wait_kind = 'child',
            wake_at = NULL,
            wait_timeout_seconds = NULL,
            deadline_at = NULL,
            claimed_by = NULL,
            updated_at = p_now
        FROM input i
        WHERE s.id = i.step_id AND s.attempts = i.attempt AND s.state = i.from_state
        RETURNING s.task_id, s.id, s.name, s.attempts, i.child_id
    ),
    tr AS (
        INSERT INTO tasker_transitions (task_id, step_id, from_state, to_state, attempt, reason, actor, metadata, created_at)
        SELECT u.task_id, u.id, 'in_progress', 'waiting', u.attempts, 'child started', p_actor,
               jsonb_build_object('wait_kind', 'child', 'child_task_id', u.child_id), p_now
        FROM updated u
    )
    SELECT array_agg(ROW('parked', u.task_id, u.id, u.name, u.attempts, 'in_progress', 'waiting', NULL, NULL, 'child',
                         'child started: ' || u.child_id, t.namespace, t.name, t.correlation_id, t.trace_parent)::tasker_wait_row)
    INTO v_rows
    FROM updated u
    CROSS JOIN LATERAL (SELECT t.* FROM tasker_tasks t WHERE t.id = u.task_id OFFSET 0) t;

    -- RETURNING reads the row as updated: the status its last pass
    -- committed, even when that pass held the row while this waited.
    WITH linked AS (
        UPDATE tasker_tasks c
        SET parent_step_id = i.step_id, parent_task_id = p.task_id
        FROM unnest(p_step_ids, p_child_ids) AS i(step_id, child_id)
        CROSS JOIN LATERAL (SELECT p.task_id FROM tasker_steps p WHERE p.id = i.step_id OFFSET 0) p
        WHERE c.id = i.child_id AND c.parent_step_id IS NULL
        RETURNING c.id, c.status
    )
    SELECT array_agg(l.id) INTO v_ended
    FROM linked l
    WHERE l.status IN ('complete', 'resolved_manually', 'error', 'cancelled');

    IF v_rows IS NOT NULL THEN
        RETURN QUERY SELECT * FROM unnest(v_rows);
    END IF;
    IF v_ended IS NOT NULL THEN
        RETURN QUERY SELECT 'child_ended'::text, e.id, NULL::uuid, NULL::text, NULL::int, NULL::text, NULL::text,
                            NULL::timestamptz, NULL::timestamptz, NULL::text, NULL::text, NULL::text, NULL::text,
                            NULL::text, NULL::text
                     FROM unnest(v_ended) AS e(id);
    END IF;
END
$$;

-- Settles the parent steps of the ended tasks among p_task_ids: a step
-- still waiting on that child (the child's key names the step's current
-- attempt) completes with the child's step results by step name, or, for
-- a child that did not succeed, fails through the step's retry policy with
-- code child_failed (a retry starts a new child). The engine calls it with
-- the finalized tasks of a pass that have a parent (their 'finalized' rows
-- carry parent_task_id), with the children tasker_park_children found
-- ended, and from the sweep; tasks that are not such children cost one
-- primary-key probe.
-- Locks the parent tasks first, in id order, as a scheduler pass does, then
-- settles every step of the batch in one set-based statement keyed by it:
-- each child, its parent step and the child's steps are reached through
-- primary keys (docs/architecture.md, "Cost follows the work").
CREATE OR REPLACE FUNCTION tasker_settle_children(p_now timestamptz, p_actor text, p_task_ids uuid[])
RETURNS SETOF tasker_wait_row
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1
    FROM (SELECT DISTINCT c.parent_task_id
          FROM unnest(p_task_ids) AS b(id)
          CROSS JOIN LATERAL (SELECT c.parent_task_id, c.status FROM tasker_tasks c WHERE c.id = b.id OFFSET 0) c
          WHERE c.parent_task_id IS NOT NULL
            AND c.status IN ('complete', 'resolved_manually', 'error', 'cancelled')
          ORDER BY c.parent_task_id) p
    CROSS JOIN LATERAL (SELECT t.id FROM tasker_tasks t WHERE t.id = p.parent_task_id FOR UPDATE OFFSET 0) l;

    RETURN QUERY
    -- MATERIALIZED keeps from_state a column, not a literal the planner
    -- could match to a partial index over waiting steps: only the primary
    -- key leads the update in.
    WITH input AS MATERIALIZED (
        SELECT c.id AS child_id, c.status, s.id AS step_id, s.attempts, 'waiting'::text AS from_state,
               c.status IN ('complete', 'resolved_manually') AS ok,
               CASE
                   WHEN c.status IN ('complete', 'resolved_manually') THEN 'complete'
                   WHEN s.attempts < s.max_attempts THEN 'waiting_for_retry'
                   ELSE 'error'
               END AS to_state,
               least(s.max_backoff_ms::float8, s.backoff_base_ms * power(2, s.attempts - 1))
                   * (1 + s.jitter * (2 * random() - 1)) AS delay_ms
        FROM (SELECT DISTINCT b.id FROM unnest(p_task_ids) AS b(id)) b
        CROSS JOIN LATERAL (SELECT c.* FROM tasker_tasks c WHERE c.id = b.id OFFSET 0) c
        CROSS JOIN LATERAL (SELECT s.* FROM tasker_steps s WHERE s.id = c.parent_step_id OFFSET 0) s
        WHERE c.parent_step_id IS NOT NULL
          AND c.status IN ('complete', 'resolved_manually', 'error', 'cancelled')
          AND s.state = 'waiting' AND s.wait_kind = 'child'
          AND c.idempotency_scope = 'child' AND c.idempotency_key = 'child:' || s.id || ':' || s.attempts
    ),
    decided AS (
        SELECT i.*,
               CASE WHEN i.ok THEN r.results END AS result,
               CASE WHEN NOT i.ok THEN jsonb_build_object(
                   'message', format('child task %s ended %s', i.child_id, i.status),
                   'code', 'child_failed', 'child_task_id', i.child_id) END AS err,
               'child ' || i.child_id || ' ' || i.status AS reason
        FROM input i
        -- The child's results by step name, read only for a child that
        -- succeeded: its top-level steps through (task_id, name).
        LEFT JOIN LATERAL (
            SELECT coalesce(jsonb_object_agg(cs.name, cs.result), '{}'::jsonb) AS results
            FROM tasker_steps cs
            WHERE cs.task_id = i.child_id AND cs.map_parent_id IS NULL AND i.ok) r ON true
    ),
    updated AS (
        UPDATE tasker_steps s
        SET state = d.to_state,
            result = CASE WHEN d.ok THEN d.result ELSE s.result END,
            last_error = CASE WHEN d.ok THEN s.last_error ELSE d.err END,
            next_retry_at = CASE WHEN d.to_state = 'waiting_for_retry'
                                 THEN p_now + make_interval(secs => d.delay_ms / 1000.0) END,
            deadline_at = NULL,
            claimed_by = NULL,
            wake_at = NULL,
            completed_at = CASE WHEN d.to_state IN ('complete', 'error') THEN p_now END,
            updated_at = p_now
        FROM decided d
        WHERE s.id = d.step_id AND s.state = d.from_state AND s.attempts = d.attempts
        RETURNING s.task_id, s.id, s.name, s.attempts, s.state, s.next_retry_at, s.wait_kind, d.reason, d.err
    ),
    tr AS (
        INSERT INTO tasker_transitions (task_id, step_id, from_state, to_state, attempt, reason, actor, metadata, created_at)
        SELECT u.task_id, u.id, 'waiting', u.state, u.attempts, u.reason, p_actor,
               CASE WHEN u.state <> 'complete' THEN jsonb_build_object('error', u.err) END, p_now
        FROM updated u
    )
    SELECT 'recorded'::text, u.task_id, u.id, u.name, u.attempts, 'waiting'::text, u.state, u.next_retry_at,
           NULL::timestamptz, u.wait_kind, u.reason, t.namespace, t.name, t.correlation_id, t.trace_parent
    FROM updated u
    CROSS JOIN LATERAL (SELECT t.* FROM tasker_tasks t WHERE t.id = u.task_id OFFSET 0) t
    ORDER BY u.task_id, u.id;
END
$$;

-- The sweep's backstop: the ended children of up to p_limit steps waiting
-- on a child, for tasker_settle_children.
CREATE OR REPLACE FUNCTION tasker_ended_children(p_limit int)
RETURNS TABLE (task_id uuid)
LANGUAGE sql AS $$
    SELECT c.id
    FROM tasker_steps s
    CROSS JOIN LATERAL (SELECT c.id, c.status FROM tasker_tasks c
                        WHERE c.parent_step_id = s.id
                          AND c.idempotency_scope = 'child' AND c.idempotency_key = 'child:' || s.id || ':' || s.attempts
                        OFFSET 0) c
    WHERE s.state = 'waiting' AND s.wait_kind = 'child'
      AND c.status IN ('complete', 'resolved_manually', 'error', 'cancelled')
    LIMIT p_limit
$$;

ALTER FUNCTION tasker_park_children(timestamptz, text, uuid[], int[], uuid[])
    SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off
    SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION tasker_settle_children(timestamptz, text, uuid[])
    SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off
    SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION tasker_ended_children(int)
    SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off
    SET plan_cache_mode = force_generic_plan;
