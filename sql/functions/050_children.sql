-- Child workflows (docs/architecture.md, "Child workflows"); keep every
-- statement idempotent. A child task is created by the engine's create
-- path with the idempotency key child:<step id>:<attempt> in scope
-- 'child' before its parent step is parked here, so a crash between the
-- two, or a duplicate claim, finds the same child again.

-- Parks claimed tasker.workflow steps (fenced on (step, attempt) and
-- in_progress) waiting (wait_kind 'child') on their children, and links
-- each child to its parent step and task.
CREATE OR REPLACE FUNCTION tasker_park_children(
    p_now timestamptz, p_actor text, p_step_ids uuid[], p_attempts int[], p_child_ids uuid[])
RETURNS SETOF tasker_wait_row
LANGUAGE plpgsql AS $$
DECLARE
    v_rows tasker_wait_row[];
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

    UPDATE tasker_tasks c
    SET parent_step_id = i.step_id, parent_task_id = p.task_id
    FROM unnest(p_step_ids, p_child_ids) AS i(step_id, child_id)
    CROSS JOIN LATERAL (SELECT p.task_id FROM tasker_steps p WHERE p.id = i.step_id OFFSET 0) p
    WHERE c.id = i.child_id AND c.parent_step_id IS NULL;

    IF v_rows IS NOT NULL THEN
        RETURN QUERY SELECT * FROM unnest(v_rows);
    END IF;
END
$$;

-- Settles the parent steps of the ended tasks among p_task_ids: a step
-- still waiting on that child (the child's key names the step's current
-- attempt) completes with the child's step results by step name, or, for
-- a child that did not succeed, fails through the step's retry policy with
-- code child_failed (a retry starts a new child). Locks the parent tasks
-- first, as everything that changes a task's steps does.
CREATE OR REPLACE FUNCTION tasker_settle_children(p_now timestamptz, p_actor text, p_task_ids uuid[])
RETURNS SETOF tasker_wait_row
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.id AS child_id, c.status, s.id AS step_id, s.attempts, s.task_id
        FROM unnest(p_task_ids) AS b(id)
        CROSS JOIN LATERAL (SELECT c.* FROM tasker_tasks c WHERE c.id = b.id OFFSET 0) c
        CROSS JOIN LATERAL (SELECT s.* FROM tasker_steps s WHERE s.id = c.parent_step_id OFFSET 0) s
        WHERE c.parent_step_id IS NOT NULL
          AND c.status IN ('complete', 'resolved_manually', 'error', 'cancelled')
          AND s.state = 'waiting' AND s.wait_kind = 'child'
          AND c.idempotency_scope = 'child' AND c.idempotency_key = 'child:' || s.id || ':' || s.attempts
        ORDER BY s.task_id
    LOOP
        PERFORM 1 FROM tasker_tasks t WHERE t.id = r.task_id FOR UPDATE;
        IF r.status IN ('complete', 'resolved_manually') THEN
            RETURN QUERY SELECT * FROM tasker_record_wait(p_now, p_actor, r.step_id, r.attempts, 'waiting', true,
                (SELECT coalesce(jsonb_object_agg(cs.name, cs.result), '{}'::jsonb)
                 FROM tasker_steps cs WHERE cs.task_id = r.child_id AND cs.map_parent_id IS NULL),
                NULL, false, NULL, 'child ' || r.child_id || ' ' || r.status);
        ELSE
            RETURN QUERY SELECT * FROM tasker_record_wait(p_now, p_actor, r.step_id, r.attempts, 'waiting', false, NULL,
                jsonb_build_object('message', format('child task %s ended %s', r.child_id, r.status),
                                   'code', 'child_failed', 'child_task_id', r.child_id),
                false, NULL, 'child ' || r.child_id || ' ' || r.status);
        END IF;
    END LOOP;
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
