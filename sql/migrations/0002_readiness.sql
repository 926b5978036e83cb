-- Readiness, claims, result recording and finalisation (DESIGN §2, §4).
-- Every function takes the time as a parameter so tests can use a clock.
-- They are set-based: one call handles every task and step of a batch.

-- A step is runnable when it is pending or waiting for a retry and every
-- parent is complete or resolved; ready when it is runnable and due.
CREATE FUNCTION tasker_step_parents_done(p_step_id uuid) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT NOT EXISTS (
        SELECT 1
        FROM tasker_step_edges e
        JOIN tasker_steps p ON p.id = e.from_step_id
        WHERE e.to_step_id = p_step_id
          AND p.state NOT IN ('complete', 'resolved_manually'))
$$;

CREATE FUNCTION tasker_ready_steps(p_task_ids uuid[], p_limit int, p_now timestamptz DEFAULT now())
RETURNS TABLE (step_id uuid, task_id uuid, name text, handler text, state text, attempts int, "position" int)
LANGUAGE sql STABLE AS $$
    SELECT s.id, s.task_id, s.name, s.handler, s.state, s.attempts, s.position
    FROM tasker_steps s
    JOIN tasker_tasks t ON t.id = s.task_id
    WHERE s.task_id = ANY (p_task_ids)
      AND s.state IN ('pending', 'waiting_for_retry')
      AND t.status IN ('pending', 'in_progress')
      AND (s.next_retry_at IS NULL OR s.next_retry_at <= p_now)
      AND tasker_step_parents_done(s.id)
    ORDER BY s.task_id, s.position
    LIMIT p_limit
$$;

-- Counts by state and the execution status of many tasks at once.
CREATE FUNCTION tasker_task_execution_contexts(p_task_ids uuid[], p_now timestamptz DEFAULT now())
RETURNS TABLE (
    task_id uuid, total int, pending int, in_progress int, waiting_for_retry int, complete int,
    error int, cancelled int, resolved_manually int, ready int, runnable int, execution_status text)
LANGUAGE sql STABLE AS $$
    WITH c AS (
        SELECT s.task_id,
               count(*)::int AS total,
               count(*) FILTER (WHERE s.state = 'pending')::int AS pending,
               count(*) FILTER (WHERE s.state = 'in_progress')::int AS in_progress,
               count(*) FILTER (WHERE s.state = 'waiting_for_retry')::int AS waiting_for_retry,
               count(*) FILTER (WHERE s.state = 'complete')::int AS complete,
               count(*) FILTER (WHERE s.state = 'error')::int AS error,
               count(*) FILTER (WHERE s.state = 'cancelled')::int AS cancelled,
               count(*) FILTER (WHERE s.state = 'resolved_manually')::int AS resolved_manually,
               count(*) FILTER (WHERE s.state IN ('pending', 'waiting_for_retry')
                                  AND (s.next_retry_at IS NULL OR s.next_retry_at <= p_now)
                                  AND tasker_step_parents_done(s.id))::int AS ready,
               count(*) FILTER (WHERE s.state = 'waiting_for_retry'
                                   OR (s.state = 'pending' AND tasker_step_parents_done(s.id)))::int AS runnable
        FROM tasker_steps s
        WHERE s.task_id = ANY (p_task_ids)
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

CREATE FUNCTION tasker_task_execution_context(p_task_id uuid, p_now timestamptz DEFAULT now())
RETURNS TABLE (
    task_id uuid, total int, pending int, in_progress int, waiting_for_retry int, complete int,
    error int, cancelled int, resolved_manually int, ready int, runnable int, execution_status text)
LANGUAGE sql STABLE AS $$
    SELECT * FROM tasker_task_execution_contexts(ARRAY[p_task_id], p_now)
$$;

-- Claims ready steps of the given tasks, fenced: only rows still pending or
-- waiting are taken (SKIP LOCKED keeps concurrent schedulers apart) and the
-- attempt is incremented. Caps: p_global_cap limits in-flight steps across
-- the system (0 = none); steps with a concurrency_key are limited per key.
-- When any cap applies, claimers serialise on an advisory lock so counts
-- cannot race.
CREATE FUNCTION tasker_claim_steps(
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
          AND tasker_step_parents_done(s.id)
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

-- Records step outcomes. A row is applied only when its (step, attempt)
-- matches the in-flight attempt: late, duplicate and stale results match
-- nothing and change nothing. Failures retry with capped exponential
-- backoff and jitter (a handler's retry_after wins, capped) until
-- max_attempts; permanent failures stop at once.
CREATE FUNCTION tasker_record_results(
    p_now timestamptz, p_step_ids uuid[], p_attempts int[], p_ok boolean[], p_results jsonb[],
    p_errors jsonb[], p_permanent boolean[], p_retry_after_ms bigint[], p_reasons text[], p_actor text)
RETURNS TABLE (
    task_id uuid, step_id uuid, step_name text, attempt int, from_state text, to_state text,
    next_retry_at timestamptz, reason text)
LANGUAGE sql AS $$
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
    SELECT u.task_id, u.id, u.name, u.attempt, 'in_progress', u.state, u.next_retry_at, u.reason
    FROM updated u
$$;

-- Moves live tasks whose steps are all finished, or that can make no more
-- progress, to their final status.
CREATE FUNCTION tasker_finalize_tasks(p_task_ids uuid[], p_now timestamptz, p_actor text)
RETURNS TABLE (task_id uuid, from_state text, to_state text)
LANGUAGE sql AS $$
    WITH ctx AS (
        SELECT * FROM tasker_task_execution_contexts(p_task_ids, p_now)
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
    SELECT u.id, u.from_state, u.status FROM updated u
$$;

-- Undoes claims whose dispatch failed. The attempt number stays (it is the
-- fence) but the budget grows by one, so a dispatch failure never burns an
-- attempt; the step waits a short delay and is claimed again.
CREATE FUNCTION tasker_release_claims(
    p_now timestamptz, p_step_ids uuid[], p_attempts int[], p_reasons text[], p_delay_ms int, p_actor text)
RETURNS TABLE (task_id uuid, step_id uuid, step_name text, attempt int, next_retry_at timestamptz)
LANGUAGE sql AS $$
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
    SELECT u.task_id, u.id, u.name, u.attempts, u.next_retry_at FROM updated u
$$;

-- Serialises scheduler work per task: two schedulers recording results of
-- sibling steps must not each miss the other's commit (a lost join or a lost
-- finalisation). Locks in id order so overlapping batches cannot deadlock.
CREATE FUNCTION tasker_lock_tasks(p_task_ids uuid[]) RETURNS int
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

-- Tasks the sweep should evaluate: due retries, ready steps nobody woke the
-- task for, and live tasks with nothing left to run (finalisation).
CREATE FUNCTION tasker_sweep_tasks(p_now timestamptz, p_limit int)
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
                      AND tasker_step_parents_done(s.id))
            OR NOT EXISTS (SELECT 1 FROM tasker_steps s
                           WHERE s.task_id = t.id AND s.state IN ('pending', 'waiting_for_retry', 'in_progress')))
     LIMIT p_limit)
$$;
