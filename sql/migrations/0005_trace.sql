-- Trace continuity (DESIGN §9): the W3C traceparent of the span that
-- created a task, so later scheduler passes, step dispatches and handler
-- executions join the task's trace. NULL when tracing is off.
ALTER TABLE tasker_tasks ADD COLUMN trace_parent text;
