-- Schedules (docs/control-flow.md, "Schedules"; docs/architecture.md,
-- "Sweep"): one row per entry of a template's top-level schedules, keyed by
-- the template (namespace and name, whatever its version) and the entry's
-- index. The sweep fires a due schedule by creating its task (idempotency
-- key schedule:<namespace>/<name>:<index>:<fire time>) and then moving
-- next_fire_at on with a guarded update (WHERE next_fire_at = the time it
-- read), so concurrent sweeps fire each fire time once.
CREATE TABLE tasker_schedules (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace     text NOT NULL,
    name          text NOT NULL,
    idx           int NOT NULL CHECK (idx >= 0),
    -- The schedule as written (template.Schedule.Spec); a changed spec
    -- starts the schedule afresh from the next fire time after the change.
    spec          text NOT NULL,
    next_fire_at  timestamptz NOT NULL,
    last_fired_at timestamptz,
    last_task_id  uuid,
    paused        boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    UNIQUE (namespace, name, idx)
);

-- Due schedules, soonest first: the sweep reads from the start of this
-- index and stops at its limit.
CREATE INDEX tasker_schedules_due ON tasker_schedules (next_fire_at) WHERE NOT paused;
