-- Applied after the numbered migrations whenever any function file changes
-- (internal/migrate); keep every statement idempotent.
--
-- Webhook subscriptions (docs/operating.md, "Webhook subscriptions"): every
-- statement that inserts transitions fills tasker_webhook_outbox in its own
-- transaction, one row per subscription that asked for the event, so an
-- event is never lost between the state change and its delivery. With no
-- subscription the trigger returns after one probe of an empty table.

-- The lifecycle event a transition stands for (engine.Catalogue), or NULL.
CREATE OR REPLACE FUNCTION tasker_transition_event(p_step_id uuid, p_from text, p_to text, p_reason text, p_metadata jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN p_step_id IS NULL THEN
            CASE
                WHEN p_from IS NULL THEN 'task.created'
                WHEN p_to = 'in_progress' AND p_from = 'pending' THEN 'task.started'
                WHEN p_to = 'in_progress' THEN 'task.retry_requested'
                WHEN p_to = 'complete' THEN 'task.completed'
                WHEN p_to = 'error' THEN 'task.failed'
                WHEN p_to = 'cancelled' THEN 'task.cancelled'
                WHEN p_to = 'resolved_manually' THEN 'task.resolved'
            END
        ELSE
            CASE
                WHEN p_to = 'in_progress' THEN 'step.claimed'
                WHEN p_to = 'complete' THEN 'step.completed'
                WHEN p_to = 'waiting_for_retry' AND p_reason LIKE 'dispatch failed%' THEN 'step.dispatch_failed'
                WHEN p_to = 'waiting_for_retry' THEN 'step.retry_scheduled'
                WHEN p_to = 'error' AND coalesce((p_metadata #>> '{error,permanent}')::boolean, false) THEN 'step.failed'
                WHEN p_to = 'error' THEN 'step.retries_exhausted'
                WHEN p_to = 'pending' THEN 'step.retry_requested'
                WHEN p_to = 'resolved_manually' THEN 'step.resolved'
                WHEN p_to = 'cancelled' THEN 'step.cancelled'
                WHEN p_to = 'waiting' THEN 'step.waiting'
                WHEN p_to = 'skipped' THEN 'step.skipped'
            END
    END
$$;

-- Whether a subscription's patterns select an event name: an exact name,
-- "prefix.*" (any name under prefix.) or "*".
CREATE OR REPLACE FUNCTION tasker_event_matches(p_patterns text[], p_name text)
RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM unnest(p_patterns) AS p(pat)
        WHERE p.pat = p_name OR p.pat = '*'
           OR (right(p.pat, 2) = '.*' AND left(p_name, length(p.pat) - 1) = left(p.pat, -1)))
$$;

CREATE OR REPLACE FUNCTION tasker_outbox_transitions()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM tasker_subscriptions) THEN
        RETURN NULL;
    END IF;
    WITH ev AS (
        SELECT n.id AS transition_id, n.task_id, n.step_id, n.from_state, n.to_state, n.attempt, n.reason,
               n.created_at, tasker_transition_event(n.step_id, n.from_state, n.to_state, n.reason, n.metadata) AS name
        FROM new_transitions n
    ),
    named AS (
        SELECT ev.*, t.namespace, t.name AS workflow, t.correlation_id, s.name AS step, s.result
        FROM ev
        CROSS JOIN LATERAL (SELECT t.* FROM tasker_tasks t WHERE t.id = ev.task_id OFFSET 0) t
        LEFT JOIN LATERAL (SELECT s.* FROM tasker_steps s WHERE s.id = ev.step_id OFFSET 0) s ON true
        WHERE ev.name IS NOT NULL
    ),
    lifecycle AS (
        SELECT n.name, n.created_at, jsonb_strip_nulls(jsonb_build_object(
                   'name', n.name, 'time', n.created_at, 'task_id', n.task_id, 'namespace', n.namespace,
                   'workflow', n.workflow, 'correlation_id', n.correlation_id, 'step', n.step,
                   'step_id', n.step_id, 'attempt', n.attempt, 'from', n.from_state, 'to', n.to_state,
                   'reason', nullif(n.reason, ''), 'transition_id', n.transition_id)) AS payload
        FROM named n
        UNION ALL
        -- Custom events a handler returned with its result (tasker_events),
        -- delivered when the step completes; the engine validated them.
        SELECT c.ev ->> 'name', n.created_at, jsonb_strip_nulls(jsonb_build_object(
                   'name', c.ev ->> 'name', 'time', n.created_at, 'task_id', n.task_id, 'namespace', n.namespace,
                   'workflow', n.workflow, 'correlation_id', n.correlation_id, 'step', n.step,
                   'step_id', n.step_id, 'attempt', n.attempt, 'data', c.ev -> 'data', 'custom', true,
                   'transition_id', n.transition_id)) AS payload
        FROM named n
        CROSS JOIN LATERAL jsonb_array_elements(
            CASE WHEN jsonb_typeof(n.result -> 'tasker_events') = 'array' THEN n.result -> 'tasker_events' ELSE '[]' END) AS c(ev)
        WHERE n.name = 'step.completed' AND c.ev ->> 'name' IS NOT NULL
    )
    INSERT INTO tasker_webhook_outbox (subscription_id, event, payload, next_attempt_at, created_at)
    SELECT s.id, l.name, l.payload, l.created_at, l.created_at
    FROM lifecycle l
    JOIN tasker_subscriptions s ON tasker_event_matches(s.events, l.name);
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER tasker_transitions_outbox
    AFTER INSERT ON tasker_transitions
    REFERENCING NEW TABLE AS new_transitions
    FOR EACH STATEMENT EXECUTE FUNCTION tasker_outbox_transitions();

-- Connections to this database from every client, and the server's limit:
-- the database pressure adaptive concurrency reads (docs/operating.md,
-- "Adaptive concurrency"). pg_stat_activity is in memory, not a table.
CREATE OR REPLACE FUNCTION tasker_connection_count()
RETURNS int
LANGUAGE sql STABLE AS $$
    SELECT count(*)::int FROM pg_stat_activity a WHERE a.datname = current_database()
$$;

-- Records the outcome of claimed delivery attempts (fenced on the attempt
-- number, so a late outcome of a lease that expired changes nothing) and
-- logs each in tasker_webhook_attempts, the delivery log.
CREATE OR REPLACE FUNCTION tasker_finish_deliveries(
    p_now timestamptz, p_ids bigint[], p_attempts int[], p_states text[], p_next_at timestamptz[],
    p_status_codes int[], p_errors text[], p_durations_ms float8[])
RETURNS void
LANGUAGE sql AS $$
    WITH input AS (
        SELECT *
        FROM unnest(p_ids, p_attempts, p_states, p_next_at, p_status_codes, p_errors, p_durations_ms)
            AS i(id, attempt, state, next_at, status_code, error, duration_ms)
    ),
    updated AS (
        UPDATE tasker_webhook_outbox o
        SET state = i.state, next_attempt_at = i.next_at,
            finished_at = CASE WHEN i.state <> 'pending' THEN p_now END
        FROM input i
        WHERE o.id = i.id AND o.attempts = i.attempt AND o.state = 'pending'
        RETURNING o.id
    )
    INSERT INTO tasker_webhook_attempts (outbox_id, attempt, status_code, error, duration_ms, created_at)
    SELECT i.id, i.attempt, nullif(i.status_code, 0), i.error, i.duration_ms::real, p_now
    FROM input i
    JOIN updated u ON u.id = i.id
$$;
