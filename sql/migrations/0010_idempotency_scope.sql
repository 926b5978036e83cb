-- Idempotency keys are scoped to the caller and bound to the request
-- (docs/security.md, "Idempotency keys"; issue 15 item 7).
--
-- idempotency_scope: who may replay the key. The API uses "sub:<subject>"
-- for an authenticated caller and '' (the whole deployment) when auth is
-- off; triggers use "trigger". Keys recorded before this migration had no
-- scope and keep the deployment-wide one.
-- request_hash: sha256 (hex) of the canonical request the key was first
-- used with; a replay with another request is refused. NULL on rows
-- created before this migration, which no replay matches.
ALTER TABLE tasker_tasks ADD COLUMN idempotency_scope text, ADD COLUMN request_hash text;

UPDATE tasker_tasks SET idempotency_scope = '' WHERE idempotency_key IS NOT NULL;

ALTER TABLE tasker_tasks ADD CONSTRAINT tasker_tasks_idempotency_scoped
    CHECK (idempotency_key IS NULL OR idempotency_scope IS NOT NULL);

CREATE UNIQUE INDEX tasker_tasks_idempotency_scope_key ON tasker_tasks (idempotency_scope, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

DROP INDEX tasker_tasks_idempotency_key;
