-- Operating at volume (docs/operating.md, "Searching tasks", "Retention";
-- docs/architecture.md, "Cost follows the work"): every new filter and the
-- retention sweep walk an index from their keys, whatever the history.

-- One row per tag of a task, written by tasker_create_task (tags never change
-- after creation). (tag, created_at, task_id) lets a tag filter walk its
-- tasks newest first, keyset-paginated like the other listing indexes; a
-- GIN index on tasker_tasks.tags could only be read as a bitmap of every
-- match, sorted afterwards.
CREATE TABLE tasker_task_tags (
    tag        text        NOT NULL,
    created_at timestamptz NOT NULL,
    task_id    uuid        NOT NULL REFERENCES tasker_tasks (id) ON DELETE CASCADE,
    PRIMARY KEY (tag, created_at, task_id)
);
-- The cascade from a deleted task finds its tags here.
CREATE INDEX tasker_task_tags_task ON tasker_task_tags (task_id);

INSERT INTO tasker_task_tags (tag, created_at, task_id)
SELECT DISTINCT g.tag, t.created_at, t.id
FROM tasker_tasks t CROSS JOIN LATERAL unnest(t.tags) AS g(tag);

-- Search by correlation id, and by the time of the last change.
CREATE INDEX tasker_tasks_correlation ON tasker_tasks (correlation_id, created_at DESC, id DESC);
CREATE INDEX tasker_tasks_updated ON tasker_tasks (updated_at DESC, id DESC);

-- Retention: finished tasks, oldest completion first. The states are
-- literals so the prune query's predicate implies the index's.
CREATE INDEX tasker_tasks_finished ON tasker_tasks (completed_at, id)
    WHERE status IN ('complete', 'error', 'cancelled', 'resolved_manually');

-- Deleting a task cascades to its edges by task_id, which no index led.
CREATE INDEX tasker_step_edges_task ON tasker_step_edges (task_id);
