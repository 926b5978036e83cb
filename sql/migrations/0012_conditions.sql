-- Conditions and failure paths (docs/architecture.md, "States" and
-- "Scheduler pass"): what the scheduler pass reads to decide, in SQL, when a
-- step may run and when it is skipped.
--
-- trigger_rule: how the parents must have ended (all_success, all_done,
-- one_failed); when_expr: the step's `when` CEL expression as the template
-- said when the task was created (evaluated by the engine at claim time);
-- skip_kind and skip_reason: why a skipped step was skipped. skip_kind
-- 'upstream_failed' (an all_success step whose parent failed or was itself
-- skipped so) does not satisfy its dependents; 'condition' (its when was
-- false) and 'no_failure' (a one_failed step none of whose parents failed)
-- do.
ALTER TABLE tasker_steps
    ADD COLUMN trigger_rule text NOT NULL DEFAULT 'all_success',
    ADD COLUMN when_expr    text,
    ADD COLUMN skip_kind    text,
    ADD COLUMN skip_reason  text;
ALTER TABLE tasker_steps ADD CONSTRAINT tasker_steps_trigger_rule_check
    CHECK (trigger_rule IN ('all_success', 'all_done', 'one_failed')) NOT VALID;
ALTER TABLE tasker_steps VALIDATE CONSTRAINT tasker_steps_trigger_rule_check;
ALTER TABLE tasker_steps ADD CONSTRAINT tasker_steps_skip_kind_check
    CHECK (skip_kind IN ('condition', 'no_failure', 'upstream_failed')) NOT VALID;
ALTER TABLE tasker_steps VALIDATE CONSTRAINT tasker_steps_skip_kind_check;

-- The pass takes which results are skips (a `when` that was false) and
-- returns each claim's when_expr: the old signature goes, and the function
-- file creates the new one after the row type has its column.
DROP FUNCTION IF EXISTS tasker_scheduler_pass(timestamptz, text, uuid[], uuid[], int[], boolean[], jsonb[], jsonb[],
                                              boolean[], bigint[], text[], int, int, int);
ALTER TABLE tasker_scheduler_pass_row ADD COLUMN when_expr text; -- claimed, when the step has a condition

-- tasker_create_task takes each step's trigger rule and condition.
DROP FUNCTION IF EXISTS tasker_create_task(
    uuid, text, text, text, jsonb, text, text, text, text[], text, text, text, text, timestamptz, text,
    uuid[], text[], text[], jsonb[], int[], int[], int[], real[], int[], text[], int[], uuid[], uuid[]);
