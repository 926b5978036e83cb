-- Applied after the numbered migrations whenever any function file changes
-- (internal/migrate); keep every statement idempotent.

-- Serialises scheduler work per task: two schedulers recording results of
-- sibling steps must not each miss the other's commit (a lost join or a lost
-- finalisation). Locks in id order so overlapping batches cannot deadlock.
CREATE OR REPLACE FUNCTION tasker_lock_tasks(p_task_ids uuid[]) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    v_n int;
BEGIN
    SELECT count(*) INTO v_n FROM (
        SELECT t.id FROM tasker_tasks t WHERE t.id = ANY (p_task_ids) ORDER BY t.id FOR UPDATE
    ) x;
    RETURN v_n;
END
$$;

CREATE OR REPLACE FUNCTION tasker_ready_steps(p_task_ids uuid[], p_limit int, p_now timestamptz DEFAULT now())
RETURNS TABLE (step_id uuid, task_id uuid, name text, handler text, state text, attempts int, "position" int)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY
    SELECT s.id, s.task_id, s.name, s.handler, s.state, s.attempts, s.position
    FROM tasker_steps s
    JOIN tasker_tasks t ON t.id = s.task_id
    WHERE s.task_id = ANY (p_task_ids)
      AND s.state IN ('pending', 'waiting_for_retry')
      AND t.status IN ('pending', 'in_progress')
      AND (s.next_retry_at IS NULL OR s.next_retry_at <= p_now)
      AND NOT EXISTS (
          SELECT 1 FROM tasker_step_edges e JOIN tasker_steps p ON p.id = e.from_step_id
          WHERE e.to_step_id = s.id AND p.state NOT IN ('complete', 'resolved_manually'))
    ORDER BY s.task_id, s.position
    LIMIT p_limit;
END
$$;

CREATE OR REPLACE FUNCTION tasker_task_execution_contexts(p_task_ids uuid[], p_now timestamptz DEFAULT now())
RETURNS TABLE (
    task_id uuid, total int, pending int, in_progress int, waiting_for_retry int, complete int,
    error int, cancelled int, resolved_manually int, ready int, runnable int, execution_status text)
LANGUAGE sql STABLE AS $$
    WITH s AS (
        SELECT s.task_id, s.state, s.next_retry_at,
               s.state IN ('pending', 'waiting_for_retry') AND NOT EXISTS (
                   SELECT 1 FROM tasker_step_edges e JOIN tasker_steps p ON p.id = e.from_step_id
                   WHERE e.to_step_id = s.id AND p.state NOT IN ('complete', 'resolved_manually')) AS parents_done
        FROM tasker_steps s
        WHERE s.task_id = ANY (p_task_ids)
    ),
    c AS (
        SELECT s.task_id,
               count(*)::int AS total,
               count(*) FILTER (WHERE s.state = 'pending')::int AS pending,
               count(*) FILTER (WHERE s.state = 'in_progress')::int AS in_progress,
               count(*) FILTER (WHERE s.state = 'waiting_for_retry')::int AS waiting_for_retry,
               count(*) FILTER (WHERE s.state = 'complete')::int AS complete,
               count(*) FILTER (WHERE s.state = 'error')::int AS error,
               count(*) FILTER (WHERE s.state = 'cancelled')::int AS cancelled,
               count(*) FILTER (WHERE s.state = 'resolved_manually')::int AS resolved_manually,
               count(*) FILTER (WHERE s.parents_done
                                  AND (s.next_retry_at IS NULL OR s.next_retry_at <= p_now))::int AS ready,
               count(*) FILTER (WHERE s.state = 'waiting_for_retry'
                                   OR (s.state = 'pending' AND s.parents_done))::int AS runnable
        FROM s
        GROUP BY s.task_id
    )
    SELECT c.task_id, c.total, c.pending, c.in_progress, c.waiting_for_retry, c.complete, c.error,
           c.cancelled, c.resolved_manually, c.ready, c.runnable,
           CASE
               WHEN c.complete + c.resolved_manually = c.total THEN 'all_complete'
               WHEN c.ready > 0 THEN 'has_ready_steps'
               WHEN c.in_progress > 0 THEN 'processing'
               WHEN c.runnable > 0 THEN 'waiting_for_retry'
               ELSE 'blocked_by_failures'
           END
    FROM c
$$;

CREATE OR REPLACE FUNCTION tasker_claim_steps(
    p_task_ids uuid[], p_limit int, p_now timestamptz, p_instance text,
    p_global_cap int, p_grace_seconds int)
RETURNS TABLE (
    step_id uuid, task_id uuid, step_name text, handler text, attempt int, max_attempts int,
    deadline_at timestamptz, config jsonb, context jsonb, namespace text, workflow text,
    version text, correlation_id text, results jsonb, from_state text, task_started boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_avail int := p_limit;
BEGIN
    IF p_global_cap > 0 OR EXISTS (
        SELECT 1 FROM tasker_steps s
        WHERE s.task_id = ANY (p_task_ids)
          AND s.state IN ('pending', 'waiting_for_retry')
          AND s.concurrency_key IS NOT NULL) THEN
        PERFORM pg_advisory_xact_lock(7305417101);
    END IF;
    IF p_global_cap > 0 THEN
        v_avail := least(p_limit, p_global_cap - (SELECT count(*) FROM tasker_steps s WHERE s.state = 'in_progress')::int);
        IF v_avail <= 0 THEN
            RETURN;
        END IF;
    END IF;

    RETURN QUERY
    WITH cand AS (
        SELECT s.id, s.task_id, s.state, s.position, s.concurrency_key, s.concurrency_limit
        FROM tasker_steps s
        JOIN tasker_tasks t ON t.id = s.task_id
        WHERE s.task_id = ANY (p_task_ids)
          AND s.state IN ('pending', 'waiting_for_retry')
          AND t.status IN ('pending', 'in_progress')
          AND (s.next_retry_at IS NULL OR s.next_retry_at <= p_now)
          AND NOT EXISTS (
              SELECT 1 FROM tasker_step_edges e JOIN tasker_steps p ON p.id = e.from_step_id
              WHERE e.to_step_id = s.id AND p.state NOT IN ('complete', 'resolved_manually'))
        ORDER BY s.task_id, s.position
        LIMIT p_limit
        FOR UPDATE OF s SKIP LOCKED
    ),
    ranked AS (
        SELECT c.*, row_number() OVER (PARTITION BY c.concurrency_key ORDER BY c.task_id, c.position) AS rn
        FROM cand c
    ),
    allowed AS (
        SELECT r.id, r.state
        FROM ranked r
        WHERE r.concurrency_key IS NULL
           OR r.rn + (SELECT count(*) FROM tasker_steps x
                      WHERE x.state = 'in_progress' AND x.concurrency_key = r.concurrency_key) <= r.concurrency_limit
        ORDER BY r.task_id, r.position
        LIMIT v_avail
    ),
    claimed AS (
        UPDATE tasker_steps s
        SET state = 'in_progress',
            attempts = s.attempts + 1,
            next_retry_at = NULL,
            deadline_at = p_now + make_interval(secs => s.timeout_seconds + p_grace_seconds),
            claimed_by = p_instance,
            started_at = p_now,
            completed_at = NULL,
            updated_at = p_now
        FROM allowed a
        WHERE s.id = a.id
        RETURNING s.id, s.task_id, s.name, s.handler, s.attempts, s.max_attempts, s.deadline_at, s.config, a.state AS from_state
    ),
    step_tr AS (
        INSERT INTO tasker_transitions (task_id, step_id, from_state, to_state, attempt, reason, actor, created_at)
        SELECT c.task_id, c.id, c.from_state, 'in_progress', c.attempts, 'claimed', p_instance, p_now
        FROM claimed c
    ),
    started AS (
        UPDATE tasker_tasks t
        SET status = 'in_progress', started_at = coalesce(t.started_at, p_now), updated_at = p_now
        WHERE t.id IN (SELECT DISTINCT c.task_id FROM claimed c) AND t.status = 'pending'
        RETURNING t.id
    ),
    task_tr AS (
        INSERT INTO tasker_transitions (task_id, from_state, to_state, reason, actor, created_at)
        SELECT st.id, 'pending', 'in_progress', 'first step claimed', p_instance, p_now
        FROM started st
    )
    SELECT c.id, c.task_id, c.name, c.handler, c.attempts, c.max_attempts, c.deadline_at, c.config,
           t.context, t.namespace, t.name, t.version, t.correlation_id,
           coalesce((SELECT jsonb_object_agg(p.name, coalesce(p.result, 'null'::jsonb))
                     FROM tasker_step_edges e JOIN tasker_steps p ON p.id = e.from_step_id
                     WHERE e.to_step_id = c.id), '{}'::jsonb),
           c.from_state,
           EXISTS (SELECT 1 FROM started st WHERE st.id = c.task_id)
    FROM claimed c
    JOIN tasker_tasks t ON t.id = c.task_id;
END
$$;

CREATE OR REPLACE FUNCTION tasker_record_results(
    p_now timestamptz, p_step_ids uuid[], p_attempts int[], p_ok boolean[], p_results jsonb[],
    p_errors jsonb[], p_permanent boolean[], p_retry_after_ms bigint[], p_reasons text[], p_actor text)
RETURNS TABLE (
    task_id uuid, step_id uuid, step_name text, attempt int, from_state text, to_state text,
    next_retry_at timestamptz, reason text)
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    WITH input AS (
        SELECT * FROM unnest(p_step_ids, p_attempts, p_ok, p_results, p_errors, p_permanent, p_retry_after_ms, p_reasons)
            AS i(step_id, attempt, ok, result, err, permanent, retry_after_ms, reason)
    ),
    decided AS (
        SELECT s.id, i.attempt, i.ok, i.result, i.err, i.reason,
               CASE
                   WHEN i.ok THEN 'complete'
                   WHEN NOT i.permanent AND s.attempts < s.max_attempts THEN 'waiting_for_retry'
                   ELSE 'error'
               END AS to_state,
               CASE
                   WHEN i.retry_after_ms IS NOT NULL THEN least(i.retry_after_ms, s.max_backoff_ms::bigint)::float8
                   ELSE least(s.max_backoff_ms::float8, s.backoff_base_ms * power(2, s.attempts - 1))
                        * (1 + s.jitter * (2 * random() - 1))
               END AS delay_ms
        FROM input i
        JOIN tasker_steps s ON s.id = i.step_id
        WHERE s.state = 'in_progress' AND s.attempts = i.attempt
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
            completed_at = CASE WHEN d.to_state IN ('complete', 'error') THEN p_now END,
            updated_at = p_now
        FROM decided d
        WHERE s.id = d.id AND s.state = 'in_progress' AND s.attempts = d.attempt
        RETURNING s.task_id, s.id, s.name, d.attempt, s.state, s.next_retry_at, d.reason, d.err
    ),
    tr AS (
        INSERT INTO tasker_transitions (task_id, step_id, from_state, to_state, attempt, reason, actor, metadata, created_at)
        SELECT u.task_id, u.id, 'in_progress', u.state, u.attempt, u.reason, p_actor,
               CASE WHEN u.state <> 'complete' THEN jsonb_build_object('error', u.err) END, p_now
        FROM updated u
    )
    SELECT u.task_id, u.id, u.name, u.attempt, 'in_progress'::text, u.state, u.next_retry_at, u.reason
    FROM updated u;
END
$$;

CREATE OR REPLACE FUNCTION tasker_finalize_tasks(p_task_ids uuid[], p_now timestamptz, p_actor text)
RETURNS TABLE (task_id uuid, from_state text, to_state text)
LANGUAGE plpgsql AS $$
DECLARE
    v_ids uuid[];
BEGIN
    SELECT array_agg(t.id) INTO v_ids
    FROM tasker_tasks t
    WHERE t.id = ANY (p_task_ids)
      AND t.status IN ('pending', 'in_progress')
      AND NOT EXISTS (SELECT 1 FROM tasker_steps s
                      WHERE s.task_id = t.id AND s.state IN ('in_progress', 'waiting_for_retry'));
    IF v_ids IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH ctx AS (
        SELECT * FROM tasker_task_execution_contexts(v_ids, p_now)
    ),
    decided AS (
        SELECT t.id, t.status AS from_state,
               CASE
                   WHEN c.execution_status = 'all_complete' AND c.resolved_manually > 0 THEN 'resolved_manually'
                   WHEN c.execution_status = 'all_complete' THEN 'complete'
                   ELSE 'error'
               END AS to_state
        FROM tasker_tasks t
        JOIN ctx c ON c.task_id = t.id
        WHERE t.status IN ('pending', 'in_progress')
          AND c.execution_status IN ('all_complete', 'blocked_by_failures')
        FOR UPDATE OF t
    ),
    updated AS (
        UPDATE tasker_tasks t
        SET status = d.to_state, completed_at = p_now, updated_at = p_now
        FROM decided d
        WHERE t.id = d.id
        RETURNING t.id, d.from_state, t.status
    ),
    tr AS (
        INSERT INTO tasker_transitions (task_id, from_state, to_state, reason, actor, created_at)
        SELECT u.id, u.from_state, u.status,
               CASE WHEN u.status = 'error' THEN 'blocked by failed steps' ELSE 'all steps finished' END,
               p_actor, p_now
        FROM updated u
    )
    SELECT u.id, u.from_state, u.status FROM updated u;
END
$$;

CREATE OR REPLACE FUNCTION tasker_release_claims(
    p_now timestamptz, p_step_ids uuid[], p_attempts int[], p_reasons text[], p_delay_ms int, p_actor text)
RETURNS TABLE (task_id uuid, step_id uuid, step_name text, attempt int, next_retry_at timestamptz)
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    WITH input AS (
        SELECT * FROM unnest(p_step_ids, p_attempts, p_reasons) AS i(step_id, attempt, reason)
    ),
    updated AS (
        UPDATE tasker_steps s
        SET state = 'waiting_for_retry',
            max_attempts = s.max_attempts + 1,
            next_retry_at = p_now + make_interval(secs => p_delay_ms / 1000.0),
            deadline_at = NULL,
            claimed_by = NULL,
            updated_at = p_now
        FROM input i
        WHERE s.id = i.step_id AND s.attempts = i.attempt AND s.state = 'in_progress'
        RETURNING s.task_id, s.id, s.name, s.attempts, s.next_retry_at, i.reason
    ),
    tr AS (
        INSERT INTO tasker_transitions (task_id, step_id, from_state, to_state, attempt, reason, actor, created_at)
        SELECT u.task_id, u.id, 'in_progress', 'waiting_for_retry', u.attempts, u.reason, p_actor, p_now
        FROM updated u
    )
    SELECT u.task_id, u.id, u.name, u.attempts, u.next_retry_at FROM updated u;
END
$$;

CREATE OR REPLACE FUNCTION tasker_sweep_tasks(p_now timestamptz, p_limit int)
RETURNS TABLE (task_id uuid)
LANGUAGE sql STABLE AS $$
    (SELECT DISTINCT s.task_id
     FROM tasker_steps s
     WHERE s.state = 'waiting_for_retry' AND s.next_retry_at <= p_now
     LIMIT p_limit)
    UNION
    (SELECT t.id
     FROM tasker_tasks t
     WHERE t.status IN ('pending', 'in_progress')
       AND (EXISTS (SELECT 1 FROM tasker_steps s
                    WHERE s.task_id = t.id AND s.state = 'pending'
                      AND (s.next_retry_at IS NULL OR s.next_retry_at <= p_now)
                      AND NOT EXISTS (
                          SELECT 1 FROM tasker_step_edges e JOIN tasker_steps p ON p.id = e.from_step_id
                          WHERE e.to_step_id = s.id AND p.state NOT IN ('complete', 'resolved_manually')))
            OR NOT EXISTS (SELECT 1 FROM tasker_steps s
                           WHERE s.task_id = t.id AND s.state IN ('pending', 'waiting_for_retry', 'in_progress')))
     LIMIT p_limit)
$$;

-- Their queries take arrays of ids; with custom plans Postgres re-plans the
-- whole statement on every call (planning costs more than running them), so
-- these functions always use the cached generic plan. Not tasker_record_results
-- (nor tasker_release_claims, which has the same shape and runs rarely):
-- its generic plan (unnest of unknown size joined to tasker_steps) turns into
-- scans of the whole table once there are thousands of live tasks (the
-- 10,000-task overload soak test slowed from 20 s to over 15 min).
ALTER FUNCTION tasker_ready_steps(uuid[], int, timestamptz) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION tasker_lock_tasks(uuid[]) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION tasker_claim_steps(uuid[], int, timestamptz, text, int, int) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION tasker_finalize_tasks(uuid[], timestamptz, text) SET plan_cache_mode = force_generic_plan;
