-- A scheduler pass's 'finalized' rows say whether the task is a child
-- (docs/architecture.md, "Child workflows"): the engine settles parent
-- steps only for the finalized tasks that have a parent, so a pass that
-- ends parentless tasks runs no settle statement.
ALTER TABLE tasker_scheduler_pass_row ADD COLUMN parent_task_id uuid; -- finalized, when the task is a child
