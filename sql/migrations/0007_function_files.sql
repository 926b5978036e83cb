-- From here on SQL functions live in sql/functions/*.sql, applied after the
-- migrations whenever they change (docs/architecture.md, "Schema"); 0002,
-- 0003 and 0006 stay as they landed. This drops what those files no longer
-- define.
DROP FUNCTION IF EXISTS tasker_task_execution_context(uuid, timestamptz);
-- Databases migrated by a pre-release 0006 (accepted as superseded in
-- sql/migrations.sum) may still have this one.
DROP FUNCTION IF EXISTS tasker_step_parents_done(uuid);
