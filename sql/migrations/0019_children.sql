-- Child workflows (docs/architecture.md, "Child workflows"): a
-- tasker.workflow step starts a child task and waits (state waiting,
-- wait_kind 'child') until the child ends. The child names its parent step
-- and task; the parent step's current child is the one whose idempotency
-- key is child:<step id>:<attempt> (scope 'child').
ALTER TABLE tasker_steps DROP CONSTRAINT tasker_steps_wait_kind_check;
ALTER TABLE tasker_steps ADD CONSTRAINT tasker_steps_wait_kind_check
    CHECK (wait_kind IN ('timer', 'callback', 'map', 'child')) NOT VALID;
ALTER TABLE tasker_steps VALIDATE CONSTRAINT tasker_steps_wait_kind_check;

ALTER TABLE tasker_tasks
    ADD COLUMN parent_step_id uuid NULL,
    ADD COLUMN parent_task_id uuid NULL;

-- The children of a task (API, cancel) and of a step.
CREATE INDEX tasker_tasks_parent_task ON tasker_tasks (parent_task_id, created_at)
    WHERE parent_task_id IS NOT NULL;
CREATE INDEX tasker_tasks_parent_step ON tasker_tasks (parent_step_id)
    WHERE parent_step_id IS NOT NULL;
-- The sweep's backstop: the steps waiting on a child.
CREATE INDEX tasker_steps_children_waiting ON tasker_steps (task_id)
    WHERE state = 'waiting' AND wait_kind = 'child';
