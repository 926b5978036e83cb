-- Step states of the second wave (docs/architecture.md, "States"): waiting
-- (parked on a timer or a callback; not in flight, so not counted against
-- caps) and skipped (its condition was false, or its trigger rule can never
-- hold; satisfies its dependents like complete).
ALTER TABLE tasker_steps DROP CONSTRAINT tasker_steps_state_check;
ALTER TABLE tasker_steps ADD CONSTRAINT tasker_steps_state_check
    CHECK (state IN ('pending', 'in_progress', 'complete', 'waiting_for_retry', 'waiting', 'error', 'cancelled',
                     'resolved_manually', 'skipped')) NOT VALID;
ALTER TABLE tasker_steps VALIDATE CONSTRAINT tasker_steps_state_check;

-- Claim candidates of one task in template order: a scheduler pass walks
-- this index from each task id of its batch and stops at its claim limit.
CREATE INDEX tasker_steps_runnable_position ON tasker_steps (task_id, position)
    WHERE state IN ('pending', 'waiting_for_retry');
DROP INDEX tasker_steps_runnable;

-- Unfinished steps, now with waiting: of one task (finalisation, cancel;
-- one probe per state) and by state (health counts, bounded by their cap).
CREATE INDEX tasker_steps_unfinished ON tasker_steps (state, task_id)
    WHERE state IN ('pending', 'waiting_for_retry', 'in_progress', 'waiting');
DROP INDEX tasker_steps_live;

-- Step attempt outcomes by time (/v1/health/status). A btree, not the BRIN
-- index of 0004: a BRIN range inserted since the last (auto)vacuum is not
-- summarised and matches every query, so its cost depended on maintenance.
CREATE INDEX tasker_transitions_outcomes ON tasker_transitions (created_at)
    WHERE step_id IS NOT NULL AND from_state = 'in_progress';
DROP INDEX tasker_transitions_created_brin;

-- The old per-statement functions are folded into tasker_scheduler_pass
-- (sql/functions/020_scheduler.sql).
DROP FUNCTION IF EXISTS tasker_ready_steps(uuid[], int, timestamptz);
DROP FUNCTION IF EXISTS tasker_task_execution_contexts(uuid[], timestamptz);
DROP FUNCTION IF EXISTS tasker_claim_steps(uuid[], int, timestamptz, text, int, int);
DROP FUNCTION IF EXISTS tasker_record_results(timestamptz, uuid[], int[], boolean[], jsonb[], jsonb[], boolean[], bigint[], text[], text);
DROP FUNCTION IF EXISTS tasker_finalize_tasks(uuid[], timestamptz, text);
DROP FUNCTION IF EXISTS tasker_lock_tasks(uuid[]);
DROP FUNCTION IF EXISTS tasker_sweep_tasks(timestamptz, int);
