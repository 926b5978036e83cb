-- Webhook subscriptions and their outbox, and the cross-instance pressure
-- samples of adaptive concurrency (docs/operating.md, "Webhook
-- subscriptions" and "Adaptive concurrency"). The trigger that fills the
-- outbox and the functions that read it live in sql/functions/040_events.sql.

CREATE TABLE tasker_subscriptions (
    id           uuid        PRIMARY KEY,
    url          text        NOT NULL,
    -- Event names, "prefix.*" patterns or "*".
    events       text[]      NOT NULL CHECK (cardinality(events) > 0),
    secret       text        NOT NULL,
    description  text        NOT NULL DEFAULT '',
    max_attempts int         NOT NULL CHECK (max_attempts BETWEEN 1 AND 50),
    created_at   timestamptz NOT NULL
);

-- One row per (subscription, event) to deliver, written in the transaction
-- of the transition the event describes, so a crash loses nothing.
CREATE TABLE tasker_webhook_outbox (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id uuid        NOT NULL REFERENCES tasker_subscriptions (id) ON DELETE CASCADE,
    event           text        NOT NULL,
    payload         jsonb       NOT NULL,
    state           text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        int         NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    created_at      timestamptz NOT NULL,
    finished_at     timestamptz
);
-- Only deliveries still to make enter the due index.
CREATE INDEX tasker_webhook_outbox_due ON tasker_webhook_outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX tasker_webhook_outbox_subscription ON tasker_webhook_outbox (subscription_id, id);
-- Finished deliveries by age, for pruning (DeliverWebhooks).
CREATE INDEX tasker_webhook_outbox_finished ON tasker_webhook_outbox (finished_at) WHERE state <> 'pending';

-- The delivery log: one row per attempt.
CREATE TABLE tasker_webhook_attempts (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    outbox_id   bigint      NOT NULL REFERENCES tasker_webhook_outbox (id) ON DELETE CASCADE,
    attempt     int         NOT NULL,
    status_code int,
    error       text        NOT NULL DEFAULT '',
    duration_ms real        NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX tasker_webhook_attempts_outbox ON tasker_webhook_attempts (outbox_id, id);

-- Each scheduler instance's recent view of database pressure and handler
-- outcomes; the adaptive in-flight limit reads all recent rows, so every
-- instance sees the whole system.
CREATE TABLE tasker_pressure_samples (
    instance     text        PRIMARY KEY,
    updated_at   timestamptz NOT NULL,
    commit_ms    real        NOT NULL,
    pool_wait_ms real        NOT NULL,
    results      int         NOT NULL,
    failures     int         NOT NULL,
    throttles    int         NOT NULL
);
