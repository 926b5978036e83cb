-- Applied after the numbered migrations whenever any function file changes
-- (internal/migrate); keep every statement idempotent.
--
-- Durable waits and callbacks (docs/architecture.md, "States", "Sweep" and
-- "Callbacks"). A waiting step is parked on a timer or on its callback
-- token until wake_at. Like the scheduler's functions, every statement here
-- starts from the keys it is given (step ids, a task id) or walks the
-- partial index of waiting steps from its start (tasker_steps_waiting_due),
-- so its cost is that of its own rows; internal/store's plan-shape tests
-- hold each to that.

-- Records the outcome of one attempt of a step in p_from (waiting, or
-- in_progress for a callback that beats the handler's own answer), fenced
-- on state and attempt: a late or duplicate outcome changes nothing. The
-- retry decision is the scheduler pass's (020_scheduler.sql): retryable
-- with attempts left ⇒ waiting_for_retry after the backoff (or the
-- caller's retry-after, capped), else error. Callers lock the task first.
CREATE OR REPLACE FUNCTION tasker_record_wait(
    p_now timestamptz, p_actor text, p_step_id uuid, p_attempt int, p_from text,
    p_ok boolean, p_result jsonb, p_err jsonb, p_permanent boolean, p_retry_after_ms bigint, p_reason text)
RETURNS SETOF tasker_wait_row
LANGUAGE sql AS $$
    WITH decided AS (
        SELECT s.id, s.wait_kind,
               CASE
                   WHEN p_ok THEN 'complete'
                   WHEN NOT p_permanent AND s.attempts < s.max_attempts THEN 'waiting_for_retry'
                   ELSE 'error'
               END AS to_state,
               CASE
                   WHEN p_retry_after_ms IS NOT NULL THEN least(p_retry_after_ms, s.max_backoff_ms::bigint)::float8
                   ELSE least(s.max_backoff_ms::float8, s.backoff_base_ms * power(2, s.attempts - 1))
                        * (1 + s.jitter * (2 * random() - 1))
               END AS delay_ms
        FROM tasker_steps s
        WHERE s.id = p_step_id AND s.state = p_from AND s.attempts = p_attempt
    ),
    updated AS (
        UPDATE tasker_steps s
        SET state = d.to_state,
            result = CASE WHEN p_ok THEN p_result ELSE s.result END,
            last_error = CASE WHEN p_ok THEN s.last_error ELSE p_err END,
            next_retry_at = CASE WHEN d.to_state = 'waiting_for_retry'
                                 THEN p_now + make_interval(secs => d.delay_ms / 1000.0) END,
            deadline_at = NULL,
            claimed_by = NULL,
            wake_at = NULL,
            completed_at = CASE WHEN d.to_state IN ('complete', 'error') THEN p_now END,
            updated_at = p_now
        FROM decided d
        WHERE s.id = d.id AND s.state = p_from AND s.attempts = p_attempt
        RETURNING s.task_id, s.id, s.name, s.state, s.next_retry_at, d.wait_kind
    ),
    tr AS (
        INSERT INTO tasker_transitions (task_id, step_id, from_state, to_state, attempt, reason, actor, metadata, created_at)
        SELECT u.task_id, u.id, p_from, u.state, p_attempt, p_reason, p_actor,
               CASE WHEN u.state <> 'complete' THEN jsonb_build_object('error', p_err) END, p_now
        FROM updated u
    )
    SELECT 'recorded'::text, u.task_id, u.id, u.name, p_attempt, p_from, u.state, u.next_retry_at, NULL::timestamptz,
           u.wait_kind, p_reason, t.namespace, t.name, t.correlation_id, t.trace_parent
    FROM updated u
    CROSS JOIN LATERAL (SELECT t.* FROM tasker_tasks t WHERE t.id = u.task_id OFFSET 0) t
$$;

-- Parks in-flight attempts in waiting: a tasker.wait timer, a
-- tasker.callback, or a handler that answered tasker_pending. Fenced on
-- (step, attempt) and in_progress, so a late or duplicate answer changes
-- nothing. The step leaves the in-flight set, so it holds no slot.
CREATE OR REPLACE FUNCTION tasker_park_steps(
    p_now timestamptz, p_actor text, p_step_ids uuid[], p_attempts int[], p_kinds text[], p_wake_at timestamptz[],
    p_timeouts int[], p_reasons text[])
RETURNS SETOF tasker_wait_row
LANGUAGE sql AS $$
    -- MATERIALIZED keeps from_state a column, not a literal the planner
    -- could match to a partial index over in-flight steps: only the
    -- primary key leads in.
    WITH input AS MATERIALIZED (
        SELECT i.*, 'in_progress'::text AS from_state
        FROM unnest(p_step_ids, p_attempts, p_kinds, p_wake_at, p_timeouts, p_reasons)
            AS i(step_id, attempt, kind, wake_at, timeout_seconds, reason)
    ),
    updated AS (
        UPDATE tasker_steps s
        SET state = 'waiting',
            wait_kind = i.kind,
            wake_at = i.wake_at,
            wait_timeout_seconds = i.timeout_seconds,
            deadline_at = NULL,
            claimed_by = NULL,
            updated_at = p_now
        FROM input i
        WHERE s.id = i.step_id AND s.attempts = i.attempt AND s.state = i.from_state
        RETURNING s.task_id, s.id, s.name, s.attempts, s.wake_at, s.wait_kind, i.reason
    ),
    tr AS (
        INSERT INTO tasker_transitions (task_id, step_id, from_state, to_state, attempt, reason, actor, metadata, created_at)
        SELECT u.task_id, u.id, 'in_progress', 'waiting', u.attempts, u.reason, p_actor,
               jsonb_build_object('wait_kind', u.wait_kind, 'wake_at', u.wake_at), p_now
        FROM updated u
    )
    SELECT 'parked'::text, u.task_id, u.id, u.name, u.attempts, 'in_progress'::text, 'waiting'::text, NULL::timestamptz,
           u.wake_at, u.wait_kind, u.reason, t.namespace, t.name, t.correlation_id, t.trace_parent
    FROM updated u
    CROSS JOIN LATERAL (SELECT t.* FROM tasker_tasks t WHERE t.id = u.task_id OFFSET 0) t
$$;

-- Moves on waits that are due: a timer completes (result
-- {"waited_until": …}); a callback that expired fails as retryable with
-- code callback_timeout. With p_step_ids NULL it takes the p_limit soonest
-- due waits (the sweep, walking tasker_steps_waiting_due); otherwise the
-- given attempts (a delayed wake-up naming them), and for those not yet
-- due it returns a 'later' row with their wake_at. Tasks are locked in id
-- order first, as a scheduler pass does.
CREATE OR REPLACE FUNCTION tasker_fire_waits(
    p_now timestamptz, p_actor text, p_step_ids uuid[], p_attempts int[], p_limit int)
RETURNS SETOF tasker_wait_row
LANGUAGE plpgsql AS $$
DECLARE
    v_ids      uuid[] := p_step_ids;
    v_attempts int[] := p_attempts;
    r          record;
BEGIN
    IF v_ids IS NULL THEN
        SELECT array_agg(d.id), array_agg(d.attempts) INTO v_ids, v_attempts
        FROM (SELECT s.id, s.attempts FROM tasker_steps s
              WHERE s.state = 'waiting' AND s.wake_at <= p_now
              ORDER BY s.wake_at
              LIMIT p_limit) d;
        IF v_ids IS NULL THEN
            RETURN;
        END IF;
    END IF;

    PERFORM 1
    FROM (SELECT DISTINCT s.task_id
          FROM unnest(v_ids) AS b(id)
          CROSS JOIN LATERAL (SELECT s.task_id FROM tasker_steps s WHERE s.id = b.id OFFSET 0) s
          ORDER BY s.task_id) b
    CROSS JOIN LATERAL (SELECT t.id FROM tasker_tasks t WHERE t.id = b.task_id FOR UPDATE OFFSET 0) l;

    FOR r IN
        SELECT s.id, s.task_id, s.name, s.attempts, s.wait_kind, s.wake_at, s.wait_timeout_seconds
        FROM unnest(v_ids, v_attempts) AS i(id, attempt)
        CROSS JOIN LATERAL (SELECT s.* FROM tasker_steps s WHERE s.id = i.id OFFSET 0) s
        WHERE s.state = 'waiting' AND s.attempts = i.attempt
    LOOP
        IF r.wake_at > p_now THEN
            RETURN QUERY SELECT 'later'::text, r.task_id, r.id, r.name, r.attempts, NULL::text, NULL::text,
                                NULL::timestamptz, r.wake_at, r.wait_kind, NULL::text, NULL::text, NULL::text,
                                NULL::text, NULL::text;
        ELSIF r.wait_kind = 'timer' THEN
            RETURN QUERY SELECT * FROM tasker_record_wait(p_now, p_actor, r.id, r.attempts, 'waiting', true,
                jsonb_build_object('waited_until', to_char(r.wake_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')),
                NULL, false, NULL, 'wait elapsed');
        ELSE
            RETURN QUERY SELECT * FROM tasker_record_wait(p_now, p_actor, r.id, r.attempts, 'waiting', false, NULL,
                jsonb_build_object('message', format('no callback within the wait''s %s s timeout', r.wait_timeout_seconds),
                                   'code', 'callback_timeout', 'attempt', r.attempts),
                false, NULL, 'callback timed out');
        END IF;
    END LOOP;
END
$$;

-- One callback for one step attempt (docs/architecture.md, "Callbacks").
-- The step is named by p_step_id (a callback token: p_attempt and p_hash,
-- the SHA-256 of the token's secret, must match the current attempt) or by
-- p_task_id and p_step_name (an operator with steps:complete: the current
-- attempt, which must be waiting). p_action is 'success' (p_result),
-- 'failure' (p_err, p_permanent, p_retry_after_ms) or 'heartbeat' (a
-- waiting step's expiry moves to now + its wait timeout; an in-flight
-- one's deadline to now + its step timeout + p_grace_seconds). Returns one
-- row: 'recorded' or 'heartbeat' when accepted; 'not_found' (no such step,
-- or the token does not match), 'over' (the attempt has ended: a reused or
-- stale token), 'expired' (the wait timed out), 'not_waiting' (operator
-- completion of a step that is not waiting), 'map_waiting' (a map step,
-- which only its instances complete) or 'child_waiting' (a step waiting on
-- its child task, which only the child's end completes) when refused.
CREATE OR REPLACE FUNCTION tasker_callback(
    p_now timestamptz, p_actor text, p_step_id uuid, p_task_id uuid, p_step_name text, p_attempt int, p_hash bytea,
    p_action text, p_result jsonb, p_err jsonb, p_permanent boolean, p_retry_after_ms bigint, p_reason text,
    p_grace_seconds int)
RETURNS SETOF tasker_wait_row
LANGUAGE plpgsql AS $$
DECLARE
    v_task    uuid;
    s         tasker_steps%ROWTYPE;
    v_attempt int := p_attempt;
    v_kind    text;
BEGIN
    IF p_step_id IS NOT NULL THEN
        SELECT x.task_id INTO v_task FROM tasker_steps x WHERE x.id = p_step_id;
    ELSE
        SELECT x.task_id INTO v_task FROM tasker_steps x WHERE x.task_id = p_task_id AND x.name = p_step_name;
    END IF;
    IF v_task IS NULL THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::uuid, NULL::uuid, NULL::text, NULL::int, NULL::text, NULL::text,
                            NULL::timestamptz, NULL::timestamptz, NULL::text, NULL::text, NULL::text, NULL::text,
                            NULL::text, NULL::text;
        RETURN;
    END IF;
    -- The task first, as everything that changes a task's steps does.
    PERFORM 1 FROM tasker_tasks t WHERE t.id = v_task FOR UPDATE;
    IF p_step_id IS NOT NULL THEN
        SELECT x.* INTO s FROM tasker_steps x WHERE x.id = p_step_id FOR UPDATE;
    ELSE
        SELECT x.* INTO s FROM tasker_steps x WHERE x.task_id = p_task_id AND x.name = p_step_name FOR UPDATE;
    END IF;

    IF p_hash IS NOT NULL THEN
        IF v_attempt > s.attempts OR (v_attempt = s.attempts AND s.callback_token_hash IS DISTINCT FROM p_hash) THEN
            v_kind := 'not_found';
        ELSIF v_attempt < s.attempts THEN
            v_kind := 'over';
        END IF;
    ELSE
        v_attempt := s.attempts;
        IF s.state <> 'waiting' THEN
            v_kind := 'not_waiting';
        END IF;
    END IF;

    -- A map step waits for its instances, never for a callback: it
    -- completes when they end (docs/architecture.md, "Map").
    IF v_kind IS NULL AND s.state = 'waiting' AND s.wait_kind = 'map' THEN
        v_kind := 'map_waiting';
    END IF;
    -- Likewise a step waiting on its child task ("Child workflows").
    IF v_kind IS NULL AND s.state = 'waiting' AND s.wait_kind = 'child' THEN
        v_kind := 'child_waiting';
    END IF;

    IF v_kind IS NULL THEN
        IF s.state = 'waiting' AND s.wake_at <= p_now THEN
            v_kind := 'expired';
        ELSIF s.state IN ('waiting', 'in_progress') THEN
            IF p_action = 'heartbeat' THEN
                IF s.state = 'waiting' THEN
                    UPDATE tasker_steps x
                    SET wake_at = p_now + make_interval(secs => coalesce(x.wait_timeout_seconds, 0)), updated_at = p_now
                    WHERE x.id = s.id
                    RETURNING x.wake_at INTO s.wake_at;
                ELSE
                    UPDATE tasker_steps x
                    SET deadline_at = greatest(x.deadline_at, p_now + make_interval(secs => x.timeout_seconds + p_grace_seconds)),
                        updated_at = p_now
                    WHERE x.id = s.id
                    RETURNING x.deadline_at INTO s.wake_at;
                END IF;
                RETURN QUERY SELECT 'heartbeat'::text, s.task_id, s.id, s.name, v_attempt, s.state, s.state,
                                    NULL::timestamptz, s.wake_at, s.wait_kind, NULL::text, NULL::text, NULL::text,
                                    NULL::text, NULL::text;
                RETURN;
            END IF;
            RETURN QUERY SELECT * FROM tasker_record_wait(p_now, p_actor, s.id, v_attempt, s.state, p_action = 'success',
                                                          p_result, p_err, coalesce(p_permanent, false), p_retry_after_ms, p_reason);
            RETURN;
        ELSIF s.state IN ('waiting_for_retry', 'error') AND s.last_error->>'code' = 'callback_timeout'
              AND (s.last_error->>'attempt')::int = v_attempt THEN
            v_kind := 'expired';
        ELSE
            v_kind := 'over';
        END IF;
    END IF;

    RETURN QUERY SELECT v_kind, s.task_id, s.id, s.name, v_attempt, s.state, NULL::text, NULL::timestamptz, s.wake_at,
                        s.wait_kind, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text;
END
$$;

-- Planner settings and generic plans, as for the scheduler's functions
-- (020_scheduler.sql, end; docs/architecture.md, "Cost follows the work").
ALTER FUNCTION tasker_record_wait(timestamptz, text, uuid, int, text, boolean, jsonb, jsonb, boolean, bigint, text)
    SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off
    SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION tasker_park_steps(timestamptz, text, uuid[], int[], text[], timestamptz[], int[], text[])
    SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off
    SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION tasker_fire_waits(timestamptz, text, uuid[], int[], int)
    SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off
    SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION tasker_callback(timestamptz, text, uuid, uuid, text, int, bytea, text, jsonb, jsonb, boolean, bigint, text, int)
    SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off
    SET plan_cache_mode = force_generic_plan;
