-- Large payloads (docs/architecture.md, "Large payloads"): contexts and
-- step results over the inline threshold, stored out of line when the blob
-- store is PostgreSQL (local mode; on AWS they live in S3). The task's
-- context or the step's result then holds only the reference
-- {"tasker_ref":{"uri":"pg:<key>","size":…,"sha256":…}}, so scheduler
-- passes never carry the bytes. Keys are tasks/<task_id>/context and
-- tasks/<task_id>/steps/<step_id>/<attempt>/result.
--
-- task_id has no foreign key: a context is stored before its task row (the
-- task is created in one statement). Deleting a task deletes its blobs
-- (trigger tasker_tasks_delete_blobs, sql/functions/040_blobs.sql).
CREATE TABLE tasker_blobs (
    key        text        PRIMARY KEY,
    task_id    uuid        NOT NULL,
    data       bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX tasker_blobs_task ON tasker_blobs (task_id);
