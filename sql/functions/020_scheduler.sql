-- Applied after the numbered migrations whenever any function file changes
-- (internal/migrate); keep every statement idempotent.
--
-- The scheduler (docs/architecture.md, "Scheduler pass"). Every statement
-- here starts from the keys of its batch (task ids, step ids) and reaches
-- rows through primary keys or partial indexes on live steps, so a pass
-- costs what its own rows cost whatever the history size, the number of
-- live tasks and the planner's statistics; internal/store's plan-shape tests
-- hold each statement to that on a database with no statistics.

-- tasker_scheduler_pass and tasker_sweep_scan returned TABLE (...) until they
-- took the row types of migration 0009. CREATE OR REPLACE cannot change a
-- function's return type, so where the old ones remain they are dropped
-- here, in the transaction that creates their replacements below.
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN
        SELECT p.oid
        FROM pg_proc p
        WHERE p.oid IN (
                  to_regprocedure('tasker_scheduler_pass(timestamptz, text, uuid[], uuid[], int[], boolean[], jsonb[], jsonb[], boolean[], bigint[], text[], int, int, int)'),
                  to_regprocedure('tasker_sweep_scan(timestamptz, int, uuid, int, text, timestamptz)'))
          AND p.prorettype = 'record'::regtype
    LOOP
        EXECUTE format('DROP FUNCTION %s', f);
    END LOOP;
END
$$;

-- Steps of the given tasks that can be claimed now: pending or due for a
-- retry, their trigger rule holding (all_success: every parent complete,
-- resolved or skipped other than by a failure upstream; all_done: every
-- parent ended; one_failed: a parent in error), and a free
-- slot under their concurrency key if they have one; in template order, at
-- most p_limit per task and in all. Steps whose key is full are left out
-- before the limit, so they never crowd out others. Steps with a rate limit
-- are returned whatever their bucket holds: the pass grants their tokens
-- and asks for a wake-up for the others. The caller has locked the tasks or
-- accepts a snapshot.
-- Its result gained the rate limit columns (migration 0020): CREATE OR
-- REPLACE cannot change a result type, so the older one is dropped first,
-- in this file's transaction.
DROP FUNCTION IF EXISTS tasker_ready_steps(uuid[], int, timestamptz);
CREATE OR REPLACE FUNCTION tasker_ready_steps(p_task_ids uuid[], p_limit int, p_now timestamptz DEFAULT now())
RETURNS TABLE (step_id uuid, task_id uuid, name text, handler text, state text, attempts int, "position" int,
               concurrency_key text, concurrency_limit int,
               rate_key text, rate_per_second float8, rate_burst int)
LANGUAGE sql STABLE AS $$
    SELECT s.id, s.task_id, s.name, s.handler, s.state, s.attempts, s.position, s.concurrency_key, s.concurrency_limit,
           s.rate_key, s.rate_per_second, s.rate_burst
    FROM (
    SELECT s.*
    FROM unnest(p_task_ids) AS b(task_id)
    CROSS JOIN LATERAL (
        -- Walks tasker_steps_runnable_top from this task id (map instances
        -- are not in it); the parent check is one primary-key probe per edge.
        SELECT s.*
        FROM tasker_steps s
        WHERE s.task_id = b.task_id
          AND s.state IN ('pending', 'waiting_for_retry')
          AND s.map_parent_id IS NULL
          AND (s.next_retry_at IS NULL OR s.next_retry_at <= p_now)
          -- The trigger rule (docs/architecture.md, "States"), each a
          -- primary-key probe per edge.
          AND CASE s.trigger_rule
              WHEN 'all_done' THEN NOT EXISTS (
                  SELECT 1
                  FROM tasker_step_edges e
                  JOIN tasker_steps p ON p.id = e.from_step_id
                  WHERE e.to_step_id = s.id
                    AND p.state IN ('pending', 'in_progress', 'waiting_for_retry', 'waiting')
                  OFFSET 0)
              WHEN 'one_failed' THEN EXISTS (
                  SELECT 1
                  FROM tasker_step_edges e
                  JOIN tasker_steps p ON p.id = e.from_step_id
                  WHERE e.to_step_id = s.id AND p.state = 'error'
                  OFFSET 0)
              ELSE NOT EXISTS (
                  SELECT 1
                  FROM tasker_step_edges e
                  JOIN tasker_steps p ON p.id = e.from_step_id
                  WHERE e.to_step_id = s.id
                    AND (p.state NOT IN ('complete', 'resolved_manually', 'skipped')
                         OR p.skip_kind = 'upstream_failed')
                  OFFSET 0)
              END
          AND (s.concurrency_key IS NULL OR (
              SELECT count(*)
              FROM (SELECT 1 FROM tasker_steps x
                    WHERE x.state = 'in_progress' AND x.concurrency_key = s.concurrency_key
                    LIMIT s.concurrency_limit) x) < s.concurrency_limit)
        ORDER BY s.position
        LIMIT p_limit
    ) s
    UNION ALL
    -- The instances of the task's running map steps (docs/architecture.md,
    -- "Map"): per map step, its free slots (counting in-flight instances
    -- stops at max_concurrency), then that many instances in index order
    -- from tasker_steps_map_runnable. Instances have no edges and no key.
    SELECT i.*
    FROM unnest(p_task_ids) AS b(task_id)
    CROSS JOIN LATERAL (
        SELECT m.id, m.map_max_concurrency FROM tasker_steps m
        WHERE m.task_id = b.task_id AND m.state = 'waiting' AND m.wait_kind = 'map'
        OFFSET 0) m
    CROSS JOIN LATERAL (
        SELECT count(*)::int AS n
        FROM (SELECT 1 FROM tasker_steps x
              WHERE x.map_parent_id = m.id AND x.state = 'in_progress'
              LIMIT m.map_max_concurrency) x) f
    CROSS JOIN LATERAL (
        SELECT i.*
        FROM tasker_steps i
        WHERE i.map_parent_id = m.id
          AND i.state IN ('pending', 'waiting_for_retry')
          AND (i.next_retry_at IS NULL OR i.next_retry_at <= p_now)
        ORDER BY i.map_index
        LIMIT greatest(least(p_limit, m.map_max_concurrency - f.n), 0)
    ) i
    ) s
    ORDER BY s.task_id, s.position, s.map_index NULLS FIRST
    LIMIT p_limit
$$;

-- One scheduler pass in one statement and one transaction: lock the batch's
-- tasks in id order (two passes completing sibling steps must not each miss
-- the other's commit), record results fenced on (step, attempt), claim ready
-- steps within the caps, and finalise tasks with nothing left to run. Claim
-- runs before finalisation, so a task that claimed is never evaluated.
-- Returns one row per change; kind is 'recorded', 'claimed', 'finalized',
-- 'wake' (a held-back task to wake at next_retry_at, NULL for now; reason
-- names the limit: docs/architecture.md, "Flow control"), 'held' (a ready
-- step its concurrency key holds back, for the metrics; no wake-up) or
-- 'task_held' (a pending task its task concurrency holds back, the first
-- time: 055_flow_control.sql).
CREATE OR REPLACE FUNCTION tasker_scheduler_pass(
    p_now timestamptz, p_actor text, p_task_ids uuid[],
    p_step_ids uuid[], p_attempts int[], p_ok boolean[], p_results jsonb[], p_errors jsonb[],
    p_permanent boolean[], p_retry_after_ms bigint[], p_reasons text[],
    p_claim_limit int, p_global_cap int, p_grace_seconds int, p_skip boolean[])
RETURNS SETOF tasker_scheduler_pass_row
LANGUAGE plpgsql AS $$
DECLARE
    v_live    uuid[];
    v_pending uuid[];
    v_avail   int := p_claim_limit;
    v_rows    tasker_scheduler_pass_row[];
    v_front   uuid[] := '{}'; -- steps that ended since the last skip round
    v_full    uuid[];         -- live tasks without results in this pass
    v_maps    tasker_scheduler_pass_row[];
    v_ended   uuid[] := '{}'; -- steps that left in_progress here (flow control wake-ups)
    v_held    uuid[] := '{}'; -- pending tasks task concurrency holds back
    v_reasons text[];
    v_claim   uuid[];         -- v_live without v_held
BEGIN
    SELECT array_agg(l.id ORDER BY l.id) FILTER (WHERE l.status IN ('pending', 'in_progress')),
           array_agg(l.id) FILTER (WHERE l.status = 'pending')
    INTO v_live, v_pending
    FROM (SELECT DISTINCT b.id FROM unnest(p_task_ids) AS b(id) ORDER BY b.id) b
    CROSS JOIN LATERAL (SELECT t.id, t.status FROM tasker_tasks t WHERE t.id = b.id FOR UPDATE OFFSET 0) l;

    IF cardinality(p_step_ids) > 0 THEN
        WITH input AS (
            SELECT *
            FROM unnest(p_step_ids, p_attempts, p_ok, p_results, p_errors, p_permanent, p_retry_after_ms, p_reasons, p_skip)
                AS i(step_id, attempt, ok, result, err, permanent, retry_after_ms, reason, skip)
        ),
        decided AS (
            SELECT s.id, i.attempt, i.ok, i.result, i.err, i.reason, s.state AS from_state,
                   CASE
                       -- The step's when was false (evaluated by the engine
                       -- on the claim): skipped, its dependents satisfied.
                       WHEN i.skip THEN 'skipped'
                       WHEN i.ok THEN 'complete'
                       WHEN NOT i.permanent AND s.attempts < s.max_attempts THEN 'waiting_for_retry'
                       ELSE 'error'
                   END AS to_state,
                   CASE
                       WHEN i.retry_after_ms IS NOT NULL THEN least(i.retry_after_ms, s.max_backoff_ms::bigint)::float8
                       ELSE least(s.max_backoff_ms::float8, s.backoff_base_ms * power(2, s.attempts - 1))
                            * (1 + s.jitter * (2 * random() - 1))
                   END AS delay_ms
            FROM input i
            CROSS JOIN LATERAL (SELECT s.* FROM tasker_steps s WHERE s.id = i.step_id OFFSET 0) s
            WHERE s.state = 'in_progress' AND s.attempts = i.attempt
        ),
        updated AS (
            UPDATE tasker_steps s
            SET state = d.to_state,
                result = CASE WHEN d.to_state = 'complete' THEN d.result ELSE s.result END,
                last_error = CASE WHEN d.ok OR d.to_state = 'skipped' THEN s.last_error ELSE d.err END,
                skip_kind = CASE WHEN d.to_state = 'skipped' THEN 'condition' END,
                skip_reason = CASE WHEN d.to_state = 'skipped' THEN d.reason END,
                next_retry_at = CASE WHEN d.to_state = 'waiting_for_retry'
                                     THEN p_now + make_interval(secs => d.delay_ms / 1000.0) END,
                deadline_at = NULL,
                claimed_by = NULL,
                completed_at = CASE WHEN d.to_state IN ('complete', 'error', 'skipped') THEN p_now END,
                updated_at = p_now
            FROM decided d
            -- The fence again, for a concurrent release; compared with the
            -- row's own columns, not literals, so no partial index over
            -- in-flight steps looks like a way in (only the primary key is).
            WHERE s.id = d.id AND s.state = d.from_state AND s.attempts = d.attempt
            RETURNING s.task_id, s.id, s.name, d.attempt, s.state, s.next_retry_at, d.reason, d.err
        ),
        tr AS (
            INSERT INTO tasker_transitions (task_id, step_id, from_state, to_state, attempt, reason, actor, metadata, created_at)
            SELECT u.task_id, u.id, 'in_progress', u.state, u.attempt, u.reason, p_actor,
                   CASE WHEN u.state NOT IN ('complete', 'skipped') THEN jsonb_build_object('error', u.err) END, p_now
            FROM updated u
        )
        SELECT array_agg(ROW('recorded', u.task_id, u.id, u.name, u.attempt, 'in_progress', u.state, u.next_retry_at,
                             u.reason, t.namespace, t.name, t.version, t.correlation_id, t.trace_parent,
                             NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)::tasker_scheduler_pass_row)
        INTO v_rows
        FROM updated u
        CROSS JOIN LATERAL (SELECT t.* FROM tasker_tasks t WHERE t.id = u.task_id OFFSET 0) t;
        RETURN QUERY SELECT * FROM unnest(v_rows);
        v_ended := ARRAY(SELECT r.step_id FROM unnest(v_rows) r);
        v_front := ARRAY(SELECT r.step_id FROM unnest(v_rows) r WHERE r.to_state IN ('complete', 'error', 'skipped'));
        -- Map steps whose instances ended here may end too
        -- (045_map.sql); their dependents are then decided below.
        IF cardinality(v_front) > 0 THEN
            v_maps := ARRAY(SELECT m FROM tasker_settle_maps(p_now, p_actor, v_front) m);
            IF cardinality(v_maps) > 0 THEN
                RETURN QUERY SELECT * FROM unnest(v_maps);
                v_front := v_front || ARRAY(SELECT r.step_id FROM unnest(v_maps) r);
                v_rows := v_rows || v_maps;
            END IF;
        END IF;
    END IF;

    IF v_live IS NULL THEN
        -- Slots freed by results of tasks that ended meanwhile.
        RETURN QUERY SELECT * FROM tasker_flow_control_wakes(p_now, v_ended, '{}');
        RETURN;
    END IF;

    -- Skip the pending steps whose trigger rule can never hold: an
    -- all_success step with a parent in error, cancelled, or skipped after
    -- a failure upstream (skip_kind upstream_failed, which its own
    -- dependents then see), and a one_failed step whose parents all ended
    -- without one in error (no_failure). Only what changed is examined: the
    -- pending children of the steps that ended in this pass (an all_success
    -- child is decided by that parent alone, so a join under a wide fan-out
    -- costs one probe per finished parent, not one per parent each pass),
    -- then of the steps each round skipped, one round per level a failure
    -- reaches. A task woken without results (a wake-up, the sweep, an
    -- operator action) has all its pending steps examined, which also
    -- settles steps left pending by an operator action or an older version.
    v_full := ARRAY(SELECT b.id FROM unnest(v_live) AS b(id)
                    WHERE NOT EXISTS (SELECT 1 FROM unnest(v_rows) r WHERE r.task_id = b.id));
    -- Running map steps of those tasks may have ended outside a pass (an
    -- instance's callback, an operator action): settle them too.
    IF cardinality(v_full) > 0 THEN
        v_maps := ARRAY(
            SELECT m
            FROM tasker_settle_maps(p_now, p_actor, ARRAY(
                SELECT x.id
                FROM unnest(v_full) AS b(id)
                CROSS JOIN LATERAL (SELECT m.id FROM tasker_steps m
                                    WHERE m.task_id = b.id AND m.state = 'waiting' AND m.wait_kind = 'map'
                                    OFFSET 0) x)) m);
        IF cardinality(v_maps) > 0 THEN
            RETURN QUERY SELECT * FROM unnest(v_maps);
            v_front := v_front || ARRAY(SELECT r.step_id FROM unnest(v_maps) r);
        END IF;
    END IF;
    LOOP
        EXIT WHEN cardinality(v_front) = 0 AND cardinality(v_full) = 0;
        WITH full_cand AS (
            SELECT s.id, s.task_id, s.trigger_rule, ps.failed, ps.blocked
            FROM unnest(v_full) AS b(id)
            CROSS JOIN LATERAL (
                SELECT s.id, s.task_id, s.trigger_rule FROM tasker_steps s
                WHERE s.task_id = b.id AND s.state = 'pending' AND s.map_parent_id IS NULL
                OFFSET 0) s
            CROSS JOIN LATERAL (
                SELECT count(*) FILTER (WHERE p.state IN ('pending', 'in_progress', 'waiting_for_retry', 'waiting')) AS live,
                       min(p.name) FILTER (WHERE p.state = 'error') AS failed,
                       min(p.name) FILTER (WHERE p.state = 'cancelled'
                                              OR (p.state = 'skipped' AND p.skip_kind = 'upstream_failed')) AS blocked
                FROM tasker_step_edges e
                JOIN tasker_steps p ON p.id = e.from_step_id
                WHERE e.to_step_id = s.id
            ) ps
            WHERE (s.trigger_rule = 'all_success' AND (ps.failed IS NOT NULL OR ps.blocked IS NOT NULL))
               OR (s.trigger_rule = 'one_failed' AND ps.live = 0 AND ps.failed IS NULL)
        ),
        front_cand AS (
            SELECT c.id, c.task_id, c.trigger_rule, f.failed, f.blocked
            FROM (SELECT p.id,
                         CASE WHEN p.state = 'error' THEN p.name END AS failed,
                         CASE WHEN p.state = 'cancelled' OR (p.state = 'skipped' AND p.skip_kind = 'upstream_failed')
                              THEN p.name END AS blocked
                  FROM unnest(v_front) AS f(id)
                  CROSS JOIN LATERAL (SELECT p.* FROM tasker_steps p WHERE p.id = f.id OFFSET 0) p) f
            JOIN tasker_step_edges e ON e.from_step_id = f.id
            CROSS JOIN LATERAL (
                SELECT c.id, c.task_id, c.trigger_rule FROM tasker_steps c
                WHERE c.id = e.to_step_id AND c.state = 'pending'
                OFFSET 0) c
            WHERE c.task_id = ANY (v_live)
              AND ((c.trigger_rule = 'all_success' AND (f.failed IS NOT NULL OR f.blocked IS NOT NULL))
                   OR (c.trigger_rule = 'one_failed' AND NOT EXISTS (
                           SELECT 1
                           FROM tasker_step_edges e2
                           JOIN tasker_steps p2 ON p2.id = e2.from_step_id
                           WHERE e2.to_step_id = c.id
                             AND p2.state IN ('error', 'pending', 'in_progress', 'waiting_for_retry', 'waiting')
                           OFFSET 0)))
        ),
        -- MATERIALIZED keeps from_state a column, not a literal the planner
        -- could match to a partial index over pending steps: only the
        -- primary key leads the update in.
        cand AS MATERIALIZED (
            -- One row per step: a failed parent names the reason before a
            -- blocked one.
            SELECT DISTINCT ON (x.id) x.*, 'pending'::text AS from_state
            FROM (SELECT * FROM full_cand UNION ALL SELECT * FROM front_cand) x
            ORDER BY x.id, x.failed NULLS LAST, x.blocked NULLS LAST
        ),
        skipped AS (
            UPDATE tasker_steps s
            SET state = 'skipped',
                skip_kind = CASE WHEN c.trigger_rule = 'one_failed' THEN 'no_failure' ELSE 'upstream_failed' END,
                skip_reason = CASE
                    WHEN c.trigger_rule = 'one_failed' THEN 'trigger rule one_failed: no parent failed'
                    WHEN c.failed IS NOT NULL THEN 'trigger rule all_success cannot hold: parent ' || c.failed || ' failed'
                    ELSE 'trigger rule all_success cannot hold: parent ' || c.blocked || ' did not run after a failure'
                END,
                next_retry_at = NULL,
                completed_at = p_now,
                updated_at = p_now
            FROM cand c
            WHERE s.id = c.id AND s.state = c.from_state
            RETURNING s.task_id, s.id, s.name, s.attempts, s.skip_reason
        ),
        tr AS (
            INSERT INTO tasker_transitions (task_id, step_id, from_state, to_state, attempt, reason, actor, created_at)
            SELECT k.task_id, k.id, 'pending', 'skipped', k.attempts, k.skip_reason, p_actor, p_now
            FROM skipped k
        )
        SELECT array_agg(ROW('recorded', k.task_id, k.id, k.name, k.attempts, 'pending', 'skipped', NULL,
                             k.skip_reason, t.namespace, t.name, t.version, t.correlation_id, t.trace_parent,
                             NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)::tasker_scheduler_pass_row)
        INTO v_rows
        FROM skipped k
        CROSS JOIN LATERAL (SELECT t.* FROM tasker_tasks t WHERE t.id = k.task_id OFFSET 0) t;
        EXIT WHEN v_rows IS NULL;
        RETURN QUERY SELECT * FROM unnest(v_rows);
        v_front := ARRAY(SELECT r.step_id FROM unnest(v_rows) r);
        v_full := '{}';
    END LOOP;

    IF p_claim_limit > 0 THEN
        -- Caps are checked and taken under one lock, so concurrent passes
        -- cannot both see the last free slot (or spend the last token of a
        -- rate limit's bucket). Counting stops at the cap.
        IF p_global_cap > 0 OR EXISTS (
            SELECT 1
            FROM unnest(v_live) AS b(id)
            CROSS JOIN LATERAL (
                SELECT 1 FROM tasker_steps s
                WHERE s.task_id = b.id AND s.state IN ('pending', 'waiting_for_retry')
                  AND (s.concurrency_key IS NOT NULL OR s.rate_key IS NOT NULL)
                  AND s.map_parent_id IS NULL
                OFFSET 0) k)
           -- Task concurrency (055_flow_control.sql).
           OR EXISTS (
            SELECT 1
            FROM unnest(v_pending) AS b(id)
            CROSS JOIN LATERAL (
                SELECT 1 FROM tasker_tasks t WHERE t.id = b.id AND t.concurrency_key IS NOT NULL
                OFFSET 0) k) THEN
            PERFORM pg_advisory_xact_lock(7305417101);
        END IF;
        -- Under the lock, in a statement of its own (a snapshot that sees
        -- the claims of passes that held the lock before): the pending tasks
        -- whose task concurrency key is full claim nothing.
        v_claim := v_live;
        IF v_pending IS NOT NULL THEN
            SELECT coalesce(array_agg(h.task_id), '{}'), array_agg(h.reason) INTO v_held, v_reasons
            FROM tasker_task_concurrency_held(v_pending) h;
            IF cardinality(v_held) > 0 THEN
                RETURN QUERY SELECT * FROM tasker_hold_tasks(p_now, v_held, v_reasons);
                v_claim := ARRAY(SELECT b.id FROM unnest(v_live) AS b(id) WHERE b.id <> ALL (v_held) ORDER BY b.id);
            END IF;
        END IF;
        IF p_global_cap > 0 THEN
            v_avail := least(p_claim_limit, p_global_cap - (
                SELECT count(*)::int
                FROM (SELECT 1 FROM tasker_steps x WHERE x.state = 'in_progress' LIMIT p_global_cap) x));
        END IF;

        IF v_avail > 0 THEN
            RETURN QUERY
            WITH ranked AS (
                SELECT r.step_id, r.task_id, r.state, r."position", r.concurrency_key, r.concurrency_limit,
                       r.rate_key, r.rate_per_second, r.rate_burst,
                       row_number() OVER (PARTITION BY r.concurrency_key ORDER BY r.task_id, r."position") AS rn
                FROM tasker_ready_steps(v_claim, p_claim_limit, p_now) r
            ),
            -- Within their concurrency caps; ranked per rate key for the
            -- tokens (docs/architecture.md, "Flow control").
            capped AS (
                SELECT r.*, row_number() OVER (PARTITION BY r.rate_key ORDER BY r.task_id, r."position") AS rate_rn
                FROM ranked r
                WHERE r.concurrency_key IS NULL
                   OR r.rn + (SELECT count(*)
                              FROM (SELECT 1 FROM tasker_steps x
                                    WHERE x.state = 'in_progress' AND x.concurrency_key = r.concurrency_key
                                    LIMIT r.concurrency_limit) x) <= r.concurrency_limit
            ),
            -- The token bucket of each rate key here, locked in key order
            -- and refilled to p_now: min(burst, tokens + rate x elapsed); no
            -- row is a full bucket. A pass whose clock is behind the
            -- bucket's adds nothing. The first step's rate and burst stand
            -- for the key (steps of another template version may differ).
            buckets AS MATERIALIZED (
                SELECT k.rate_key, k.rate_per_second, k.rate_burst,
                       CASE WHEN b.key IS NULL THEN k.rate_burst::float8
                            ELSE least(k.rate_burst::float8,
                                       b.tokens + k.rate_per_second
                                                  * greatest(0, extract(epoch FROM p_now - b.refilled_at))::float8)
                       END AS tokens,
                       greatest(p_now, b.refilled_at) AS at
                FROM (SELECT DISTINCT ON (c.rate_key) c.rate_key, c.rate_per_second, c.rate_burst
                      FROM capped c
                      WHERE c.rate_key IS NOT NULL
                      ORDER BY c.rate_key, c.task_id, c."position") k
                LEFT JOIN LATERAL (
                    SELECT b.key, b.tokens, b.refilled_at FROM tasker_rate_buckets b
                    WHERE b.key = k.rate_key FOR UPDATE OFFSET 0) b ON true
                ORDER BY k.rate_key
            ),
            allowed AS (
                -- k1, k2: the secret of the attempt's callback token
                -- (docs/architecture.md, "Callbacks"), random per row. A
                -- rate key grants floor(tokens) starts (the epsilon absorbs
                -- float error in the refill).
                SELECT c.step_id, c.state, gen_random_uuid() AS k1, gen_random_uuid() AS k2
                FROM capped c
                WHERE c.rate_key IS NULL
                   OR c.rate_rn <= (SELECT floor(k.tokens + 1e-9) FROM buckets k WHERE k.rate_key = c.rate_key)
                ORDER BY c.task_id, c."position"
                LIMIT v_avail
            ),
            claimed AS (
                UPDATE tasker_steps s
                SET state = 'in_progress',
                    attempts = s.attempts + 1,
                    next_retry_at = NULL,
                    deadline_at = p_now + make_interval(secs => s.timeout_seconds + p_grace_seconds),
                    claimed_by = p_actor,
                    started_at = p_now,
                    completed_at = NULL,
                    updated_at = p_now,
                    callback_token_hash = sha256(uuid_send(a.k1) || uuid_send(a.k2))
                FROM allowed a
                WHERE s.id = a.step_id AND s.state = a.state
                RETURNING s.id, s.task_id, s.name, s.position, s.handler, s.attempts, s.max_attempts, s.deadline_at,
                          s.config, s.when_expr, a.state AS from_state, uuid_send(a.k1) || uuid_send(a.k2) AS secret,
                          s.map_parent_id, s.map_index, s.map_item, s.operator_retries, s.rate_key
            ),
            -- Spend the tokens of the starts claimed, in key order (the
            -- rows were locked in that order above).
            spent AS (
                INSERT INTO tasker_rate_buckets AS b (key, tokens, refilled_at, per_second, burst, full_at)
                SELECT k.rate_key, k.left, k.at, k.rate_per_second, k.rate_burst,
                       k.at + make_interval(secs => (k.rate_burst - k.left) / k.rate_per_second)
                FROM (SELECT k.*, k.tokens - (SELECT count(*) FROM claimed c WHERE c.rate_key = k.rate_key) AS left
                      FROM buckets k) k
                ORDER BY k.rate_key
                ON CONFLICT (key) DO UPDATE
                SET tokens = excluded.tokens, refilled_at = excluded.refilled_at,
                    per_second = excluded.per_second, burst = excluded.burst, full_at = excluded.full_at
            ),
            -- Steps their rate limit held back stay pending (no attempt);
            -- each asks for a wake-up when the token of its rank is due.
            held AS (
                SELECT c.task_id, c.step_id, c.state,
                       k.at + make_interval(secs => (c.rate_rn - k.tokens) / k.rate_per_second) AS due
                FROM capped c
                CROSS JOIN LATERAL (SELECT k.* FROM buckets k WHERE k.rate_key = c.rate_key) k
                WHERE c.rate_rn > floor(k.tokens + 1e-9)
            ),
            step_tr AS (
                INSERT INTO tasker_transitions (task_id, step_id, from_state, to_state, attempt, reason, actor, created_at)
                SELECT c.task_id, c.id, c.from_state, 'in_progress', c.attempts, 'claimed', p_actor, p_now
                FROM claimed c
            ),
            started AS (
                UPDATE tasker_tasks t
                SET status = 'in_progress', started_at = coalesce(t.started_at, p_now), updated_at = p_now
                -- v_pending: the batch's pending tasks, locked above (so
                -- their row versions stay put). Each is found by its
                -- primary key and updated by its ctid: a join on id alone
                -- let the planner walk tasker_tasks_created for it.
                FROM (SELECT x.ctid AS row_id
                      FROM (SELECT DISTINCT c.task_id FROM claimed c) c
                      CROSS JOIN LATERAL (SELECT t.ctid FROM tasker_tasks t WHERE t.id = c.task_id OFFSET 0) x
                      WHERE c.task_id = ANY (v_pending)) p
                WHERE t.ctid = p.row_id
                RETURNING t.id
            ),
            task_tr AS (
                INSERT INTO tasker_transitions (task_id, from_state, to_state, reason, actor, created_at)
                SELECT st.id, 'pending', 'in_progress', 'first step claimed', p_actor, p_now
                FROM started st
            )
            SELECT 'claimed'::text, c.task_id, c.id, c.name, c.attempts, c.from_state, 'in_progress'::text,
                   NULL::timestamptz, 'claimed'::text, t.namespace, t.name, t.version, t.correlation_id, t.trace_parent,
                   c.handler, c.max_attempts, c.deadline_at, c.config, t.context,
                   coalesce(pr.results, '{}'::jsonb),
                   -- The task's first claim of this pass reports that it started.
                   EXISTS (SELECT 1 FROM started st WHERE st.id = c.task_id)
                       AND row_number() OVER (PARTITION BY c.task_id ORDER BY c.position) = 1,
                   c.secret, c.when_expr,
                   CASE WHEN c.map_parent_id IS NOT NULL
                        THEN jsonb_build_object('index', c.map_index, 'item', c.map_item) END,
                   c.operator_retries, NULL::uuid
            FROM claimed c
            CROSS JOIN LATERAL (SELECT t.* FROM tasker_tasks t WHERE t.id = c.task_id OFFSET 0) t
            CROSS JOIN LATERAL (
                SELECT jsonb_object_agg(p.name, coalesce(p.result, 'null'::jsonb)) AS results
                FROM tasker_step_edges e
                JOIN tasker_steps p ON p.id = e.from_step_id
                -- A map instance has no edges: it gets its item, not its map
                -- step's parents' results, which the list usually came from
                -- (each instance would carry the whole list).
                WHERE e.to_step_id = c.id
            ) pr
            UNION ALL
            SELECT 'wake'::text, h.task_id, h.step_id, hs.name, hs.attempts, h.state, h.state, h.due,
                   'rate_limit'::text, t.namespace, t.name, t.version, t.correlation_id, t.trace_parent,
                   NULL::text, NULL::int, NULL::timestamptz, NULL::jsonb, NULL::jsonb, NULL::jsonb, NULL::boolean,
                   NULL::bytea, NULL::text, NULL::jsonb, NULL::int, NULL::uuid
            FROM held h
            CROSS JOIN LATERAL (SELECT s.name, s.attempts FROM tasker_steps s WHERE s.id = h.step_id OFFSET 0) hs
            CROSS JOIN LATERAL (SELECT t.* FROM tasker_tasks t WHERE t.id = h.task_id OFFSET 0) t;
        END IF;

        -- The steps their concurrency key holds back now, as 'held' rows
        -- for the flow-control metric (docs/observability.md): from
        -- tasker_steps_flow_pending, at most p_claim_limit per task, each
        -- judged as its blocked_reason is (sql/functions/060_step_blocked.sql).
        RETURN QUERY
        SELECT 'held'::text, s.task_id, s.id, s.name, s.attempts, s.state, s.state, NULL::timestamptz,
               'concurrency'::text, t.namespace, t.name, t.version, t.correlation_id, t.trace_parent,
               NULL::text, NULL::int, NULL::timestamptz, NULL::jsonb, NULL::jsonb, NULL::jsonb, NULL::boolean,
               NULL::bytea, NULL::text, NULL::jsonb, NULL::int, NULL::uuid
        FROM unnest(v_live) AS b(id)
        CROSS JOIN LATERAL (
            SELECT s.id, s.task_id, s.name, s.attempts, s.state, s.concurrency_key, s.concurrency_limit
            FROM tasker_steps s
            WHERE s.task_id = b.id AND s.state IN ('pending', 'waiting_for_retry') AND s.map_parent_id IS NULL
              AND s.concurrency_key IS NOT NULL
              AND (s.next_retry_at IS NULL OR s.next_retry_at <= p_now)
            LIMIT p_claim_limit) s
        CROSS JOIN LATERAL (SELECT t.* FROM tasker_tasks t WHERE t.id = s.task_id OFFSET 0) t
        WHERE tasker_step_blocked_reason(s.id, s.state, s.concurrency_key, s.concurrency_limit,
                                         NULL, NULL, NULL, p_now) IS NOT NULL;
    END IF;

    -- A live task is finished when none of its steps is live: after the
    -- skip rounds above, a pending step is ready (perhaps held back by a
    -- cap) or waits for a live parent. It ends error when a step in error
    -- has no one_failed dependent that completed (caught it), else
    -- resolved_manually when an operator resolved a step, else complete.
    RETURN QUERY
    -- OFFSET 0 keeps each lookup a probe keyed by its task: the planner
    -- may neither turn it into a join over every live step nor move the
    -- batch to the inner side (docs/architecture.md, "Cost follows the work").
    WITH done AS (
        SELECT t.id, t.status
        FROM unnest(v_live) AS b(id)
        CROSS JOIN LATERAL (SELECT t.id, t.status FROM tasker_tasks t WHERE t.id = b.id OFFSET 0) t
        WHERE t.status IN ('pending', 'in_progress')
          AND NOT EXISTS (
              SELECT 1 FROM tasker_steps s
              WHERE s.task_id = t.id AND s.state IN ('pending', 'in_progress', 'waiting_for_retry', 'waiting')
              OFFSET 0)
    ),
    decided AS (
        SELECT d.id, d.status AS from_state,
               CASE
                   WHEN c.unfinished > 0 THEN 'error'
                   WHEN c.resolved > 0 THEN 'resolved_manually'
                   ELSE 'complete'
               END AS to_state
        FROM done d
        CROSS JOIN LATERAL (
            SELECT count(*) FILTER (
                       WHERE s.state NOT IN ('complete', 'resolved_manually', 'skipped', 'error')
                          OR (s.state = 'error' AND s.map_parent_id IS NULL AND NOT EXISTS (
                                  SELECT 1
                                  FROM tasker_step_edges e
                                  JOIN tasker_steps c ON c.id = e.to_step_id
                                  WHERE e.from_step_id = s.id AND c.trigger_rule = 'one_failed'
                                    AND c.state IN ('complete', 'resolved_manually')))) AS unfinished,
                   count(*) FILTER (WHERE s.state = 'resolved_manually') AS resolved
            FROM tasker_steps s
            WHERE s.task_id = d.id
        ) c
    ),
    updated AS (
        UPDATE tasker_tasks t
        SET status = d.to_state, completed_at = p_now, updated_at = p_now
        FROM decided d
        WHERE t.id = d.id
        RETURNING t.id, d.from_state, t.status, t.namespace, t.name, t.version, t.correlation_id, t.trace_parent,
                  t.parent_task_id
    ),
    tr AS (
        INSERT INTO tasker_transitions (task_id, from_state, to_state, reason, actor, created_at)
        SELECT u.id, u.from_state, u.status,
               CASE WHEN u.status = 'error' THEN 'blocked by failed steps' ELSE 'all steps finished' END,
               p_actor, p_now
        FROM updated u
    )
    SELECT 'finalized'::text, u.id, NULL::uuid, NULL::text, NULL::int, u.from_state, u.status, NULL::timestamptz,
           NULL::text, u.namespace, u.name, u.version, u.correlation_id, u.trace_parent,
           NULL::text, NULL::int, NULL::timestamptz, NULL::jsonb, NULL::jsonb, NULL::jsonb, NULL::boolean, NULL::bytea, NULL::text,
           NULL::jsonb, NULL::int,
           -- A child's parent step is settled by the engine after the pass
           -- (050_children.sql); parentless tasks need no settle.
           u.parent_task_id
    FROM updated u;

    -- Wake-ups for work held back by the slots this pass freed
    -- (055_flow_control.sql), after finalisation so ended tasks count.
    RETURN QUERY SELECT * FROM tasker_flow_control_wakes(p_now, v_ended, v_live);
END
$$;

-- Undoes claims whose dispatch failed, without burning an attempt: the
-- attempt number is the fence and never repeats, so max_attempts grows.
CREATE OR REPLACE FUNCTION tasker_release_claims(
    p_now timestamptz, p_step_ids uuid[], p_attempts int[], p_reasons text[], p_delay_ms int, p_actor text)
RETURNS TABLE (task_id uuid, step_id uuid, step_name text, attempt int, next_retry_at timestamptz)
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    -- MATERIALIZED keeps from_state a column, not a literal the planner
    -- could match to a partial index over in-flight steps: only the primary
    -- key leads in.
    WITH input AS MATERIALIZED (
        SELECT i.*, 'in_progress'::text AS from_state
        FROM unnest(p_step_ids, p_attempts, p_reasons) AS i(step_id, attempt, reason)
    ),
    updated AS (
        UPDATE tasker_steps s
        SET state = 'waiting_for_retry',
            max_attempts = s.max_attempts + 1,
            next_retry_at = p_now + make_interval(secs => p_delay_ms / 1000.0),
            deadline_at = NULL,
            claimed_by = NULL,
            updated_at = p_now
        FROM input i
        WHERE s.id = i.step_id AND s.attempts = i.attempt AND s.state = i.from_state
        RETURNING s.task_id, s.id, s.name, s.attempts, s.next_retry_at, i.reason
    ),
    tr AS (
        INSERT INTO tasker_transitions (task_id, step_id, from_state, to_state, attempt, reason, actor, created_at)
        SELECT u.task_id, u.id, 'in_progress', 'waiting_for_retry', u.attempts, u.reason, p_actor, p_now
        FROM updated u
    )
    SELECT u.task_id, u.id, u.name, u.attempts, u.next_retry_at FROM updated u;
END
$$;

-- What the sweep must move on (docs/architecture.md, "Sweep"), one row per
-- finding, by kind:
--   'task'        a task to evaluate: a due retry (a range of
--                 tasker_steps_retry_due), or, among at most p_scan live
--                 tasks after p_after in id order, one with a ready step
--                 nobody woke it for or with nothing left to run;
--   'cursor'      always one row: where the next walk over live tasks
--                 resumes (task_id NULL when this one reached the end);
--   'expired'     an attempt past its deadline, oldest first;
--   'interrupted' an attempt held by a local instance (not p_self) whose
--                 heartbeat is older than p_stale_before.
-- Each part stops at p_limit, so a sweep's cost is bounded whatever the
-- number of live tasks; successive sweeps walk them all.
CREATE OR REPLACE FUNCTION tasker_sweep_scan(
    p_now timestamptz, p_limit int, p_after uuid, p_scan int, p_self text, p_stale_before timestamptz)
RETURNS SETOF tasker_sweep_scan_row
LANGUAGE plpgsql AS $$
DECLARE
    v_scanned uuid[];
BEGIN
    SELECT array_agg(t.id ORDER BY t.id) INTO v_scanned
    FROM (SELECT t.id FROM tasker_tasks t
          WHERE t.status IN ('pending', 'in_progress') AND t.id > p_after
          ORDER BY t.id
          LIMIT p_scan) t;

    RETURN QUERY
    SELECT 'task'::text, x.task_id, NULL::uuid, NULL::int, NULL::int, NULL::text
    FROM (
        (SELECT s.task_id
         FROM tasker_steps s
         WHERE s.state = 'waiting_for_retry' AND s.next_retry_at <= p_now
         ORDER BY s.next_retry_at
         LIMIT p_limit)
        UNION
        (SELECT b.id
         FROM unnest(v_scanned) AS b(id)
         -- LATERAL … LIMIT 1 rather than EXISTS: a probe per task, never a
         -- hashed subplan over every pending step. A pending step whose
         -- parents all ended is ready or to be skipped: either way the
         -- task has work for a pass.
         CROSS JOIN LATERAL (
             SELECT 1 FROM tasker_steps s
             WHERE s.task_id = b.id AND s.state = 'pending'
               AND NOT EXISTS (
                   SELECT 1
                   FROM tasker_step_edges e
                   JOIN tasker_steps p ON p.id = e.from_step_id
                   WHERE e.to_step_id = s.id
                     AND p.state IN ('pending', 'in_progress', 'waiting_for_retry', 'waiting'))
             LIMIT 1) ready
         LIMIT p_limit)
        UNION
        (SELECT b.id
         FROM unnest(v_scanned) AS b(id)
         WHERE NOT EXISTS (
                   SELECT 1 FROM tasker_steps s
                   WHERE s.task_id = b.id AND s.state IN ('pending', 'waiting_for_retry', 'in_progress', 'waiting'))
         LIMIT p_limit)
    ) x
    LIMIT p_limit;

    RETURN QUERY
    SELECT 'cursor'::text,
           CASE WHEN cardinality(v_scanned) = p_scan THEN v_scanned[p_scan] END,
           NULL::uuid, NULL::int, NULL::int, NULL::text;

    RETURN QUERY
    SELECT 'expired'::text, s.task_id, s.id, s.attempts, s.timeout_seconds, s.claimed_by
    FROM tasker_steps s
    WHERE s.state = 'in_progress' AND s.deadline_at <= p_now
    ORDER BY s.deadline_at
    LIMIT p_limit;

    RETURN QUERY
    SELECT 'interrupted'::text, s.task_id, s.id, s.attempts, s.timeout_seconds, s.claimed_by
    FROM tasker_instances i
    CROSS JOIN LATERAL (
        SELECT s.* FROM tasker_steps s
        WHERE s.state = 'in_progress' AND s.claimed_by = i.id
        LIMIT p_limit
    ) s
    WHERE i.local AND i.id <> p_self AND i.heartbeat_at < p_stale_before
    LIMIT p_limit;
END
$$;

-- Records that an engine instance is alive, and forgets instances silent
-- since p_forget_before that hold no work.
CREATE OR REPLACE FUNCTION tasker_heartbeat(p_instance text, p_local boolean, p_now timestamptz, p_forget_before timestamptz)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tasker_instances (id, local, started_at, heartbeat_at)
    VALUES (p_instance, p_local, p_now, p_now)
    ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at;

    DELETE FROM tasker_instances i
    WHERE i.heartbeat_at < p_forget_before
      AND NOT EXISTS (SELECT 1 FROM tasker_steps s WHERE s.state = 'in_progress' AND s.claimed_by = i.id OFFSET 0);
END
$$;

-- Planner settings for the write path (docs/architecture.md, "Cost follows
-- the work"). These statements are keyed by their batch: the right plan is
-- always nested loops over primary keys and partial indexes. Without
-- statistics (a young database, autovacuum behind) the planner's default
-- selectivities can make a hash join over every live step, or a bitmap of a
-- whole partial index, look cheaper; these settings take those paths off the
-- table for these functions only, whatever the statistics say; jit is off
-- because a disabled path's huge cost estimate would otherwise trigger JIT
-- compilation. Their statements always use the generic plan: with array
-- parameters PostgreSQL would otherwise keep re-planning them, and planning
-- cost five times what running them does; the shape of that generic plan is
-- what the plan-shape tests check. (Function SET clauses scope all this to
-- the call; no session state changes.)
ALTER FUNCTION tasker_scheduler_pass(timestamptz, text, uuid[], uuid[], int[], boolean[], jsonb[], jsonb[], boolean[], bigint[], text[], int, int, int, boolean[])
    SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off
    SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION tasker_release_claims(timestamptz, uuid[], int[], text[], int, text)
    SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off
    SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION tasker_sweep_scan(timestamptz, int, uuid, int, text, timestamptz)
    SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off
    SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION tasker_heartbeat(text, boolean, timestamptz, timestamptz)
    SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off
    SET plan_cache_mode = force_generic_plan;
