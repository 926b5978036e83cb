-- Durable waits and callbacks (docs/architecture.md, "States", "Sweep",
-- "Callbacks"): a step in state waiting is parked on a timer (wait_kind
-- 'timer': tasker.wait) or on its callback token (wait_kind 'callback':
-- tasker.callback, or a handler that answered tasker_pending) until
-- wake_at: the timer's due time or the callback's expiry. A heartbeat moves
-- wake_at by wait_timeout_seconds.
ALTER TABLE tasker_steps
    ADD COLUMN wake_at timestamptz,
    ADD COLUMN wait_kind text CHECK (wait_kind IN ('timer', 'callback')),
    ADD COLUMN wait_timeout_seconds int,
    -- SHA-256 of the secret part of the current attempt's callback token;
    -- the token itself is never stored. Set by every claim.
    ADD COLUMN callback_token_hash bytea;

-- Due waits, soonest first: the sweep walks this from its start and stops
-- at its limit, so its cost is the number of due waits, whatever the
-- history and the number of live steps.
CREATE INDEX tasker_steps_waiting_due ON tasker_steps (wake_at) WHERE state = 'waiting';

-- A claim returns its callback token's secret (the only place it exists).
ALTER TABLE tasker_scheduler_pass_row ADD COLUMN callback_secret bytea; -- claimed

-- One row per outcome of the wait functions (sql/functions/030_waits.sql);
-- kind is 'parked', 'recorded', 'later', 'heartbeat' or, for a callback
-- refused, 'not_found', 'over', 'expired' or 'not_waiting'. Like the tables of
-- migration 0009 it never holds rows (CHECK (false)).
CREATE TABLE tasker_wait_row (
    kind           text NOT NULL,
    task_id        uuid,        -- all but not_found
    step_id        uuid,        -- all but not_found
    step_name      text,        -- all but not_found
    attempt        int,         -- all but not_found
    from_state     text,        -- parked, recorded
    to_state       text,        -- parked, recorded
    next_retry_at  timestamptz, -- recorded, when waiting for a retry
    wake_at        timestamptz, -- parked, later, heartbeat
    wait_kind      text,        -- parked, recorded, later, heartbeat
    reason         text,        -- parked, recorded
    namespace      text,        -- parked, recorded
    workflow       text,        -- parked, recorded
    correlation_id text,        -- parked, recorded
    trace_parent   text,        -- parked, recorded, when tracing
    CHECK (false)
);
