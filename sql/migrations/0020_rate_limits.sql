-- Per-step rate limits (docs/architecture.md, "Flow control"): a step's
-- rate_limit is stored on its row when the task is created. rate_key is the
-- step's identity namespace/name/step, followed for a keyed limit by \x1f
-- and the key value resolved from the context; the token bucket of each key
-- is a row of tasker_rate_buckets, refilled and spent by the scheduler pass
-- under its advisory lock.
ALTER TABLE tasker_steps
    ADD COLUMN rate_key        text,
    ADD COLUMN rate_per_second float8,
    ADD COLUMN rate_burst      int,
    ADD CONSTRAINT tasker_steps_rate_limit_check
        CHECK ((rate_key IS NULL) = (rate_per_second IS NULL) AND (rate_key IS NULL) = (rate_burst IS NULL)
               AND (rate_per_second IS NULL OR rate_per_second > 0) AND (rate_burst IS NULL OR rate_burst >= 1));

-- tokens as of refilled_at; a missing row is a full bucket. per_second and
-- burst are those of the last pass that spent from it; full_at is when the
-- bucket will have refilled to burst, after which the sweep may delete it
-- (oldest first, by tasker_rate_buckets_full).
CREATE TABLE tasker_rate_buckets (
    key         text PRIMARY KEY,
    tokens      float8      NOT NULL,
    refilled_at timestamptz NOT NULL,
    per_second  float8      NOT NULL CHECK (per_second > 0),
    burst       int         NOT NULL CHECK (burst >= 1),
    full_at     timestamptz NOT NULL
);
CREATE INDEX tasker_rate_buckets_full ON tasker_rate_buckets (full_at);

-- The pending steps under flow control of a task: the pass's lock decision
-- and its count of steps their concurrency key holds back walk only these.
CREATE INDEX tasker_steps_flow_pending ON tasker_steps (task_id)
    WHERE state IN ('pending', 'waiting_for_retry') AND map_parent_id IS NULL
      AND (concurrency_key IS NOT NULL OR rate_key IS NOT NULL);
