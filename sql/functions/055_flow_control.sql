-- Applied after the numbered migrations whenever any function file changes
-- (internal/migrate); keep every statement idempotent.
--
-- Task concurrency and the wake-ups of held-back work (docs/architecture.md,
-- "Flow control"). Called by tasker_scheduler_pass (020_scheduler.sql) and
-- the task reads; every statement starts from its batch's keys and counts
-- through partial indexes, stopping at the limit.

-- The pending tasks among p_task_ids that task concurrency holds back, with
-- why: a task with a key starts only while fewer than its limit tasks of the
-- key are running (in_progress) or pending ahead of it (older: ids are
-- UUIDv7), so the oldest go first. Both counts stop at the limit and walk
-- tasker_tasks_concurrency_key. The pass calls this under its advisory
-- lock, so concurrent passes never start more than the limit.
CREATE OR REPLACE FUNCTION tasker_task_concurrency_held(p_task_ids uuid[])
RETURNS TABLE (task_id uuid, reason text)
LANGUAGE sql STABLE AS $$
    -- Held is held: whether the slots are running or promised to older
    -- pending tasks, the key's limit is reached for this one.
    SELECT t.id, format('task concurrency limit %s for key %s reached', t.concurrency_limit,
                        coalesce(nullif(split_part(t.concurrency_key, E'\x1f', 2), ''), t.concurrency_key))
    FROM unnest(p_task_ids) AS b(id)
    -- The task by its primary key; its status and key are tested outside
    -- the subquery (OFFSET 0 keeps them out), or the planner may walk the
    -- whole key index to find one id.
    CROSS JOIN LATERAL (
        SELECT t.id, t.status, t.concurrency_key, t.concurrency_limit FROM tasker_tasks t
        WHERE t.id = b.id
        OFFSET 0) t
    CROSS JOIN LATERAL (
        SELECT count(*)::int AS n
        FROM (SELECT 1 FROM tasker_tasks x
              WHERE x.concurrency_key = t.concurrency_key AND x.status = 'in_progress'
              LIMIT t.concurrency_limit) x) r
    CROSS JOIN LATERAL (
        SELECT count(*)::int AS n
        FROM (SELECT 1 FROM tasker_tasks x
              WHERE x.concurrency_key = t.concurrency_key AND x.status = 'pending' AND x.id < t.id
              LIMIT t.concurrency_limit) x) o
    WHERE t.status = 'pending' AND t.concurrency_key IS NOT NULL
      AND r.n + o.n >= t.concurrency_limit
$$;

-- Holds back the given tasks (tasker_task_concurrency_held under the pass's
-- lock): marks the ones held for the first time (held_at) and returns a
-- 'task_held' row for each of them, so the task.queued event is sent once per
-- task, not once per pass.
CREATE OR REPLACE FUNCTION tasker_hold_tasks(p_now timestamptz, p_task_ids uuid[], p_reasons text[])
RETURNS SETOF tasker_scheduler_pass_row
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(cardinality(p_task_ids), 0) = 0 THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH input AS MATERIALIZED (
        SELECT i.id, i.reason FROM unnest(p_task_ids, p_reasons) AS i(id, reason)
    ),
    marked AS (
        UPDATE tasker_tasks t
        SET held_at = p_now
        FROM input i
        WHERE t.id = i.id AND t.held_at IS NULL
        RETURNING t.id, t.status, t.namespace, t.name, t.version, t.correlation_id, t.trace_parent, i.reason
    )
    -- jsonb_populate_record fills the columns this row does not name with
    -- NULL, whatever columns later migrations add to the row type.
    SELECT r.*
    FROM marked m
    CROSS JOIN LATERAL jsonb_populate_record(NULL::tasker_scheduler_pass_row, jsonb_build_object(
        'kind', 'task_held', 'task_id', m.id, 'from_state', m.status, 'to_state', m.status, 'reason', m.reason,
        'namespace', m.namespace, 'workflow', m.name, 'version', m.version, 'correlation_id', m.correlation_id,
        'trace_parent', m.trace_parent)) r;
END
$$;

-- Wake-ups for work flow control held back, so it starts when a slot frees
-- rather than at the next sweep: one 'wake' row per task to wake now.
--   concurrency       p_ended_steps left in_progress in this pass: per step
--                     concurrency key, up to the slots that are free now
--                     (at most as many as ended), the oldest other tasks
--                     with a step of the key to run, whose parents all
--                     ended (tasker_steps_waiting_key, a bounded window);
--   task_concurrency  tasks of p_tasks (the pass's batch) that ran and
--                     ended: per task key, up to the free slots, its oldest
--                     pending tasks (tasker_tasks_concurrency_key).
-- Tasks of the batch had their chance at the freed step slots in this pass
-- (results are recorded before the claim) and are not woken for them.
CREATE OR REPLACE FUNCTION tasker_flow_control_wakes(p_now timestamptz, p_ended_steps uuid[], p_tasks uuid[])
RETURNS SETOF tasker_scheduler_pass_row
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(cardinality(p_ended_steps), 0) > 0 THEN
        RETURN QUERY
        WITH freed AS (
            SELECT s.concurrency_key AS k, max(s.concurrency_limit) AS lim, count(*)::int AS n
            FROM unnest(p_ended_steps) AS e(id)
            CROSS JOIN LATERAL (
                SELECT s.concurrency_key, s.concurrency_limit FROM tasker_steps s
                WHERE s.id = e.id AND s.concurrency_key IS NOT NULL
                OFFSET 0) s
            GROUP BY s.concurrency_key
        ),
        slots AS (
            SELECT f.k, least(f.n, f.lim - r.n) AS n
            FROM freed f
            CROSS JOIN LATERAL (
                SELECT count(*)::int AS n
                FROM (SELECT 1 FROM tasker_steps x
                      WHERE x.state = 'in_progress' AND x.concurrency_key = f.k
                      LIMIT f.lim) x) r
        ),
        woken AS (
            SELECT DISTINCT w.task_id
            FROM slots sl
            CROSS JOIN LATERAL (
                SELECT c.task_id
                FROM (
                    -- A window of the key's oldest steps still to run;
                    -- those whose parents are still running are passed
                    -- over (they are not held back, only not yet ready).
                    SELECT s.id, s.task_id, s.state, s.next_retry_at
                    FROM tasker_steps s
                    WHERE s.concurrency_key = sl.k AND s.state IN ('pending', 'waiting_for_retry')
                      AND s.concurrency_key IS NOT NULL
                      AND s.task_id <> ALL (p_tasks)
                    ORDER BY s.task_id
                    LIMIT sl.n * 4 + 16) c
                WHERE (c.next_retry_at IS NULL OR c.next_retry_at <= p_now)
                  AND NOT EXISTS (
                      SELECT 1
                      FROM tasker_step_edges e
                      JOIN tasker_steps p ON p.id = e.from_step_id
                      WHERE e.to_step_id = c.id
                        AND p.state IN ('pending', 'in_progress', 'waiting_for_retry', 'waiting')
                      OFFSET 0)
                ORDER BY c.task_id
                LIMIT sl.n) w
            WHERE sl.n > 0
        )
        SELECT r.*
        FROM woken w
        CROSS JOIN LATERAL (SELECT t.* FROM tasker_tasks t WHERE t.id = w.task_id OFFSET 0) t
        CROSS JOIN LATERAL jsonb_populate_record(NULL::tasker_scheduler_pass_row, jsonb_build_object(
            'kind', 'wake', 'task_id', t.id, 'from_state', t.status, 'to_state', t.status, 'reason', 'concurrency',
            'namespace', t.namespace, 'workflow', t.name, 'version', t.version, 'correlation_id', t.correlation_id,
            'trace_parent', t.trace_parent)) r
        WHERE t.status IN ('pending', 'in_progress');
    END IF;

    IF coalesce(cardinality(p_tasks), 0) > 0 THEN
        RETURN QUERY
        WITH freed AS (
            SELECT t.concurrency_key AS k, max(t.concurrency_limit) AS lim, count(*)::int AS n
            FROM unnest(p_tasks) AS b(id)
            CROSS JOIN LATERAL (
                SELECT t.concurrency_key, t.concurrency_limit FROM tasker_tasks t
                WHERE t.id = b.id AND t.concurrency_key IS NOT NULL AND t.started_at IS NOT NULL
                  AND t.status NOT IN ('pending', 'in_progress')
                OFFSET 0) t
            GROUP BY t.concurrency_key
        ),
        slots AS (
            SELECT f.k, least(f.n, f.lim - r.n) AS n
            FROM freed f
            CROSS JOIN LATERAL (
                SELECT count(*)::int AS n
                FROM (SELECT 1 FROM tasker_tasks x
                      WHERE x.concurrency_key = f.k AND x.status = 'in_progress'
                      LIMIT f.lim) x) r
        )
        SELECT r.*
        FROM slots sl
        CROSS JOIN LATERAL (
            SELECT t.* FROM tasker_tasks t
            WHERE t.concurrency_key = sl.k AND t.status = 'pending'
            ORDER BY t.id
            LIMIT greatest(sl.n, 0)) t
        CROSS JOIN LATERAL jsonb_populate_record(NULL::tasker_scheduler_pass_row, jsonb_build_object(
            'kind', 'wake', 'task_id', t.id, 'from_state', t.status, 'to_state', t.status, 'reason', 'task_concurrency',
            'namespace', t.namespace, 'workflow', t.name, 'version', t.version, 'correlation_id', t.correlation_id,
            'trace_parent', t.trace_parent)) r;
    END IF;
END
$$;

ALTER FUNCTION tasker_hold_tasks(timestamptz, uuid[], text[])
    SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off
    SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION tasker_flow_control_wakes(timestamptz, uuid[], uuid[])
    SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off
    SET plan_cache_mode = force_generic_plan;
