-- Task concurrency (docs/architecture.md, "Flow control"): a template's
-- top-level concurrency caps its running (in_progress) tasks, per key value.
-- concurrency_key is "namespace/name", followed for a keyed cap by
-- U+001F and the key value resolved from the context when the task is
-- created; concurrency_limit is the cap. held_at is when a pass first held
-- the task back (its task.queued event is sent once).
ALTER TABLE tasker_tasks
    ADD COLUMN concurrency_key text NULL,
    ADD COLUMN concurrency_limit int NULL,
    ADD COLUMN held_at timestamptz NULL;

-- Counting a key's running tasks (stopping at the limit) and finding its
-- oldest pending ones (ids are UUIDv7: id order is creation order).
CREATE INDEX tasker_tasks_concurrency_key ON tasker_tasks (concurrency_key, status, id)
    WHERE concurrency_key IS NOT NULL AND status IN ('pending', 'in_progress');

-- Wake-ups when a keyed step's run ends: the oldest tasks with a step of
-- that key still to run.
CREATE INDEX tasker_steps_waiting_key ON tasker_steps (concurrency_key, task_id)
    WHERE state IN ('pending', 'waiting_for_retry') AND concurrency_key IS NOT NULL;
