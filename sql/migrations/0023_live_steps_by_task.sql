-- The live steps of one task, reached by their task id: "does this task
-- still have a live step?" (finalisation, the skip rounds, reads) is one
-- probe. tasker_steps_unfinished leads with state, so a probe by task id
-- alone walked the whole index, and its cost grew with the live steps of
-- every task (docs/architecture.md, "Cost follows the work").
-- `task_id IS NOT NULL` (always true) keeps this index from counts by
-- state alone, which tasker_steps_unfinished serves: only a condition on
-- task_id implies it.
CREATE INDEX tasker_steps_live_task ON tasker_steps (task_id)
    WHERE state IN ('pending', 'waiting_for_retry', 'in_progress', 'waiting') AND task_id IS NOT NULL;
