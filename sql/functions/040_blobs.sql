-- Applied after the numbered migrations whenever any function file changes
-- (internal/migrate); keep every statement idempotent.
--
-- Large payloads (docs/architecture.md, "Large payloads"): deleting a task
-- deletes the blobs stored for it (migration 0016), through the index on
-- task_id.
CREATE OR REPLACE FUNCTION tasker_delete_task_blobs() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tasker_blobs WHERE task_id = OLD.id;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER tasker_tasks_delete_blobs AFTER DELETE ON tasker_tasks
    FOR EACH ROW EXECUTE FUNCTION tasker_delete_task_blobs();
