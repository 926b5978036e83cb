-- Tasker data model (DESIGN §4). Steps and edges are materialised per task
-- so editing a template never changes a running task.

CREATE TABLE tasker_tasks (
    id              uuid        PRIMARY KEY,
    namespace       text        NOT NULL,
    name            text        NOT NULL,
    version         text        NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'in_progress', 'complete', 'error', 'cancelled', 'resolved_manually')),
    context         jsonb       NOT NULL DEFAULT '{}',
    initiator       text        NOT NULL DEFAULT '',
    source_system   text        NOT NULL DEFAULT '',
    reason          text        NOT NULL DEFAULT '',
    tags            text[]      NOT NULL DEFAULT '{}',
    idempotency_key text,
    correlation_id  text        NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    started_at      timestamptz,
    completed_at    timestamptz
);

CREATE UNIQUE INDEX tasker_tasks_idempotency_key ON tasker_tasks (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Listing newest first with cursor pagination, optionally filtered.
CREATE INDEX tasker_tasks_created ON tasker_tasks (created_at DESC, id DESC);
CREATE INDEX tasker_tasks_workflow ON tasker_tasks (namespace, name, created_at DESC, id DESC);
CREATE INDEX tasker_tasks_status ON tasker_tasks (status, created_at DESC, id DESC);
-- Live tasks only: the sweep and health look here, never at finished history.
CREATE INDEX tasker_tasks_live ON tasker_tasks (id)
    WHERE status IN ('pending', 'in_progress');

CREATE TABLE tasker_steps (
    id                uuid        PRIMARY KEY,
    task_id           uuid        NOT NULL REFERENCES tasker_tasks (id) ON DELETE CASCADE,
    name              text        NOT NULL,
    position          int         NOT NULL,
    handler           text        NOT NULL,
    config            jsonb       NOT NULL DEFAULT '{}',
    state             text        NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'in_progress', 'complete', 'waiting_for_retry', 'error', 'cancelled', 'resolved_manually')),
    attempts          int         NOT NULL DEFAULT 0,
    -- retry_limit is the template's attempts per run; max_attempts grows by
    -- it on an operator retry so attempt numbers (the fence) never repeat.
    retry_limit       int         NOT NULL CHECK (retry_limit >= 1),
    max_attempts      int         NOT NULL CHECK (max_attempts >= 1),
    backoff_base_ms   int         NOT NULL,
    max_backoff_ms    int         NOT NULL,
    jitter            real        NOT NULL,
    timeout_seconds   int         NOT NULL,
    concurrency_key   text,
    concurrency_limit int,
    next_retry_at     timestamptz,
    deadline_at       timestamptz,
    claimed_by        text,
    result            jsonb,
    last_error        jsonb,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    started_at        timestamptz,
    completed_at      timestamptz,
    UNIQUE (task_id, name)
);

-- Readiness and claims only ever look at live steps; finished history does
-- not enter these indexes, so they stay small with millions of rows.
CREATE INDEX tasker_steps_runnable ON tasker_steps (task_id)
    WHERE state IN ('pending', 'waiting_for_retry');
CREATE INDEX tasker_steps_retry_due ON tasker_steps (next_retry_at)
    WHERE state = 'waiting_for_retry';
CREATE INDEX tasker_steps_in_flight ON tasker_steps (deadline_at)
    WHERE state = 'in_progress';
CREATE INDEX tasker_steps_in_flight_key ON tasker_steps (concurrency_key)
    WHERE state = 'in_progress' AND concurrency_key IS NOT NULL;
CREATE INDEX tasker_steps_claimed_by ON tasker_steps (claimed_by)
    WHERE state = 'in_progress';

CREATE TABLE tasker_step_edges (
    task_id      uuid NOT NULL REFERENCES tasker_tasks (id) ON DELETE CASCADE,
    from_step_id uuid NOT NULL REFERENCES tasker_steps (id) ON DELETE CASCADE,
    to_step_id   uuid NOT NULL REFERENCES tasker_steps (id) ON DELETE CASCADE,
    PRIMARY KEY (to_step_id, from_step_id)
);
CREATE INDEX tasker_step_edges_from ON tasker_step_edges (from_step_id);

-- Append-only audit of every task and step state change.
CREATE TABLE tasker_transitions (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id    uuid        NOT NULL REFERENCES tasker_tasks (id) ON DELETE CASCADE,
    step_id    uuid        REFERENCES tasker_steps (id) ON DELETE CASCADE,
    from_state text,
    to_state   text        NOT NULL,
    attempt    int,
    reason     text        NOT NULL DEFAULT '',
    actor      text        NOT NULL DEFAULT '',
    metadata   jsonb,
    created_at timestamptz NOT NULL
);
CREATE INDEX tasker_transitions_task ON tasker_transitions (task_id, id);
CREATE INDEX tasker_transitions_step ON tasker_transitions (step_id, id) WHERE step_id IS NOT NULL;

-- Engine instances heartbeat here so local processes sharing a database can
-- tell a crashed peer's in-flight work from a live peer's.
CREATE TABLE tasker_instances (
    id           text        PRIMARY KEY,
    local        boolean     NOT NULL,
    started_at   timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL
);
