-- Webhook subscriptions and their outbox (internal/store/events.go;
-- sql/functions/040_events.sql fills the outbox), adaptive-concurrency
-- pressure samples and template analytics (internal/store/analytics.go).

-- name: CreateSubscription :one
INSERT INTO tasker_subscriptions (id, url, events, secret, description, max_attempts, created_at)
VALUES (@id, @url, @events::text[], @secret, @description, @max_attempts, @created_at)
RETURNING id, url, events, description, max_attempts, created_at;

-- name: ListSubscriptions :many
-- Subscriptions are configuration: a handful of rows, listed whole.
SELECT s.id, s.url, s.events, s.description, s.max_attempts, s.created_at,
       (SELECT count(*) FROM tasker_webhook_outbox o
        WHERE o.subscription_id = s.id AND o.state = 'pending')::bigint AS pending,
       (SELECT count(*) FROM tasker_webhook_outbox o
        WHERE o.subscription_id = s.id AND o.state = 'dead')::bigint AS dead
FROM tasker_subscriptions s
ORDER BY s.created_at, s.id
LIMIT 1000;

-- name: DeleteSubscription :execrows
DELETE FROM tasker_subscriptions WHERE id = @id;

-- name: ClaimDeliveries :many
-- Takes due deliveries for one attempt each: the attempt is counted and the
-- row leased until @lease_until, so a crashed deliverer's rows come due
-- again and two deliverers never take the same row.
WITH due AS (
    SELECT o.id
    FROM tasker_webhook_outbox o
    WHERE o.state = 'pending' AND o.next_attempt_at <= @now
    ORDER BY o.next_attempt_at, o.id
    LIMIT @lim
    FOR UPDATE SKIP LOCKED
)
UPDATE tasker_webhook_outbox o
SET attempts = o.attempts + 1, next_attempt_at = @lease_until
FROM due, tasker_subscriptions s
WHERE o.id = due.id AND s.id = o.subscription_id
RETURNING o.id, o.subscription_id, o.event, o.payload, o.attempts, s.url, s.secret, s.max_attempts;

-- name: FinishDeliveries :exec
SELECT tasker_finish_deliveries(@now::timestamptz, @ids::bigint[], @attempts::int[], @states::text[],
                                @next_at::timestamptz[], @status_codes::int[], @errors::text[],
                                @durations_ms::float8[]);

-- name: PruneDeliveries :execrows
-- Deletes up to @lim deliveries finished (delivered or dead) before
-- @before, oldest first, with their attempt log.
DELETE FROM tasker_webhook_outbox
WHERE id IN (SELECT o.id FROM tasker_webhook_outbox o
             WHERE o.state <> 'pending' AND o.finished_at < @before
             ORDER BY o.finished_at
             LIMIT @lim);

-- name: ListDeliveries :many
-- The newest deliveries of a subscription with their attempt log.
SELECT o.id, o.event, o.state, o.attempts, o.next_attempt_at, o.created_at, o.finished_at,
       coalesce((SELECT jsonb_agg(jsonb_build_object('attempt', a.attempt, 'status_code', a.status_code,
                                                     'error', a.error, 'duration_ms', a.duration_ms,
                                                     'at', a.created_at) ORDER BY a.id)
                 FROM tasker_webhook_attempts a WHERE a.outbox_id = o.id), '[]')::jsonb AS log
FROM tasker_webhook_outbox o
WHERE o.subscription_id = @subscription_id
ORDER BY o.id DESC
LIMIT @lim;

-- name: RecordPressure :exec
INSERT INTO tasker_pressure_samples (instance, updated_at, commit_ms, pool_wait_ms, results, failures, throttles)
VALUES (@instance, @now, @commit_ms, @pool_wait_ms, @results, @failures, @throttles)
ON CONFLICT (instance) DO UPDATE
SET updated_at = excluded.updated_at, commit_ms = excluded.commit_ms, pool_wait_ms = excluded.pool_wait_ms,
    results = excluded.results, failures = excluded.failures, throttles = excluded.throttles;

-- name: ReadPressure :one
-- Every instance's recent sample, and the server's connections: what the
-- adaptive in-flight limit judges (docs/operating.md, "Adaptive concurrency").
SELECT count(*)::int AS instances,
       coalesce(max(p.commit_ms), 0)::float8 AS commit_ms,
       coalesce(max(p.pool_wait_ms), 0)::float8 AS pool_wait_ms,
       coalesce(sum(p.results), 0)::bigint AS results,
       coalesce(sum(p.failures), 0)::bigint AS failures,
       coalesce(sum(p.throttles), 0)::bigint AS throttles,
       tasker_connection_count()::int AS connections,
       current_setting('max_connections')::int AS max_connections
FROM tasker_pressure_samples p
WHERE p.updated_at >= @since;

-- name: TemplateStepStats :many
-- Per step of a template's tasks created in [since, until): attempts,
-- failures, retries, and duration and queue-wait percentiles. Tasks are
-- reached through tasker_tasks_workflow bounded by the window (at most
-- @max_tasks, newest first), their steps and transitions by key.
WITH tasks AS (
    SELECT t.id, t.created_at
    FROM tasker_tasks t
    WHERE t.namespace = @namespace AND t.name = @name AND t.created_at >= @since AND t.created_at < @until
    ORDER BY t.created_at DESC, t.id DESC
    LIMIT @max_tasks
),
attempts AS (
    SELECT s.name AS step, tr.attempt,
           min(tr.created_at) FILTER (WHERE tr.to_state = 'in_progress') AS claimed_at,
           max(tr.created_at) FILTER (WHERE tr.from_state IN ('in_progress', 'waiting')
                                        AND tr.to_state IN ('complete', 'error', 'waiting_for_retry')
                                        AND tr.reason NOT LIKE 'dispatch failed%') AS ended_at,
           bool_or(tr.to_state IN ('error', 'waiting_for_retry') AND tr.reason NOT LIKE 'dispatch failed%') AS failed,
           bool_or(tr.to_state = 'skipped') AS skipped,
           min(greatest(t.created_at, (SELECT max(p.completed_at)
                                       FROM tasker_step_edges e
                                       JOIN tasker_steps p ON p.id = e.from_step_id
                                       WHERE e.to_step_id = s.id))) AS ready_at
    FROM tasks t
    -- A map instance (<step>[<index>]) counts as a run of its map step.
    CROSS JOIN LATERAL (SELECT s.id, CASE WHEN s.map_parent_id IS NULL THEN s.name ELSE split_part(s.name, '[', 1) END AS name
                        FROM tasker_steps s WHERE s.task_id = t.id OFFSET 0) s
    CROSS JOIN LATERAL (SELECT tr.* FROM tasker_transitions tr
                        WHERE tr.step_id = s.id AND tr.attempt IS NOT NULL AND tr.attempt > 0 OFFSET 0) tr
    GROUP BY s.id, s.name, tr.attempt
)
SELECT a.step::text AS step,
       -- A step skipped on its claim (its when was false) ran no handler.
       count(*) FILTER (WHERE a.claimed_at IS NOT NULL AND NOT a.skipped)::bigint AS runs,
       count(*) FILTER (WHERE a.failed)::bigint AS failures,
       count(*) FILTER (WHERE a.attempt > 1 AND a.claimed_at IS NOT NULL AND NOT a.skipped)::bigint AS retries,
       coalesce(percentile_cont(ARRAY[0.5, 0.95, 0.99]::float8[]) WITHIN GROUP (
           ORDER BY greatest(0, extract(epoch FROM a.ended_at - a.claimed_at) * 1000))
           FILTER (WHERE a.ended_at IS NOT NULL AND a.claimed_at IS NOT NULL), '{}')::float8[] AS duration_ms,
       coalesce(percentile_cont(ARRAY[0.5, 0.95, 0.99]::float8[]) WITHIN GROUP (
           ORDER BY greatest(0, extract(epoch FROM a.claimed_at - a.ready_at) * 1000))
           FILTER (WHERE a.attempt = 1 AND a.claimed_at IS NOT NULL), '{}')::float8[] AS queue_wait_ms
FROM attempts a
GROUP BY a.step
ORDER BY a.step;

-- name: TemplateTaskCount :one
SELECT count(*)::bigint AS tasks
FROM (SELECT 1 FROM tasker_tasks t
      WHERE t.namespace = @namespace AND t.name = @name AND t.created_at >= @since AND t.created_at < @until
      LIMIT @max_tasks) t;
