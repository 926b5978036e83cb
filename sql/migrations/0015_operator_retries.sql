-- Operator retries of a step (docs/architecture.md, "Handler contract"):
-- the idempotency key handed to handlers is "<task_id>/<step>" across
-- automatic retries and gains "/<n>" after the n-th operator retry, so the
-- count must be durable. A constant default makes ADD COLUMN a catalog-only
-- change on a live table.
ALTER TABLE tasker_steps ADD COLUMN operator_retries int NOT NULL DEFAULT 0;

ALTER TABLE tasker_scheduler_pass_row ADD COLUMN operator_retries int; -- claimed
