-- Row types of the functions whose result columns are NULL for some kinds of
-- row (sql/functions/020_scheduler.sql): tasker_scheduler_pass and
-- tasker_sweep_scan return SETOF these instead of TABLE (...), so sqlc
-- (sqlc.yaml) knows their columns, and from the NOT NULL constraints which
-- ones are never NULL: it types those as values and the others as pointers.
--
-- These tables never hold rows (CHECK (false)); they exist for their row
-- types. PostgreSQL does not check constraints on a function's result, so
-- the constraints only document it. Changing a function's columns means a
-- new migration altering its table, and the function file then replacing
-- the function.

-- One row per change of a scheduler pass; kind is 'recorded', 'claimed' or
-- 'finalized'. Comments say which kinds set a nullable column.
CREATE TABLE tasker_scheduler_pass_row (
    kind           text        NOT NULL,
    task_id        uuid        NOT NULL,
    step_id        uuid,        -- recorded, claimed
    step_name      text,        -- recorded, claimed
    attempt        int,         -- recorded, claimed
    from_state     text        NOT NULL,
    to_state       text        NOT NULL,
    next_retry_at  timestamptz, -- recorded, when waiting for a retry
    reason         text,        -- recorded, claimed
    namespace      text        NOT NULL,
    workflow       text        NOT NULL,
    version        text        NOT NULL,
    correlation_id text        NOT NULL,
    trace_parent   text,        -- when the task was created with tracing on
    handler        text,        -- claimed
    max_attempts   int,         -- claimed
    deadline_at    timestamptz, -- claimed
    config         jsonb,       -- claimed
    context        jsonb,       -- claimed
    results        jsonb,       -- claimed
    task_started   boolean,     -- claimed
    CHECK (false)
);

-- One row per finding of a sweep scan; kind is 'task', 'cursor', 'expired'
-- or 'interrupted'.
CREATE TABLE tasker_sweep_scan_row (
    kind            text NOT NULL,
    task_id         uuid, -- all; NULL in the cursor row when the walk reached the end
    step_id         uuid, -- expired, interrupted
    attempt         int,  -- expired, interrupted
    timeout_seconds int,  -- expired, interrupted
    claimed_by      text, -- expired, interrupted
    CHECK (false)
);
