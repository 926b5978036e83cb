-- Applied after the numbered migrations whenever any function file changes
-- (internal/migrate); keep every statement idempotent.

-- Why a step is not running although it could (docs/control-flow.md, "Flow
-- control"), for the step views (ReadTaskSteps and ReadStep in
-- sql/queries/read.sql); NULL when nothing holds it back. Only a pending
-- step (or one waiting for a retry) with a concurrency key or a rate limit
-- and no unfinished parent is examined:
--   - its concurrency key's slots are all taken: counting in-flight runs
--     stops at the limit and uses tasker_steps_in_flight_key;
--   - its rate limit's bucket holds less than one token at p_now: one
--     primary-key probe of tasker_rate_buckets (no row is a full bucket).
CREATE OR REPLACE FUNCTION tasker_step_blocked_reason(
    p_step_id uuid, p_state text, p_concurrency_key text, p_concurrency_limit int,
    p_rate_key text, p_rate_per_second float8, p_rate_burst int, p_now timestamptz)
RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN p_state NOT IN ('pending', 'waiting_for_retry')
          OR (p_concurrency_key IS NULL AND p_rate_key IS NULL)
          -- From the step's edges, a primary-key probe per parent (OFFSET 0:
          -- never a walk of the unfinished steps probing edges).
          OR EXISTS (SELECT 1 FROM tasker_step_edges e
                     CROSS JOIN LATERAL (SELECT p.state FROM tasker_steps p WHERE p.id = e.from_step_id OFFSET 0) p
                     WHERE e.to_step_id = p_step_id
                       AND p.state IN ('pending', 'waiting_for_retry', 'in_progress', 'waiting'))
            THEN NULL
        WHEN p_concurrency_key IS NOT NULL
         AND (SELECT count(*) FROM (SELECT 1 FROM tasker_steps x
                                    WHERE x.state = 'in_progress' AND x.concurrency_key = p_concurrency_key
                                    LIMIT p_concurrency_limit) y) >= p_concurrency_limit
            THEN format('concurrency limit %s for key %s reached', p_concurrency_limit,
                        coalesce(nullif(split_part(p_concurrency_key, E'\x1f', 2), ''), p_concurrency_key))
        WHEN p_rate_key IS NOT NULL
            THEN (SELECT format('rate limit %s/s (burst %s) for key %s: next start in %s',
                                p_rate_per_second, p_rate_burst,
                                coalesce(nullif(split_part(p_rate_key, E'\x1f', 2), ''), p_rate_key),
                                CASE WHEN w.ms < 1000 THEN w.ms || 'ms'
                                     ELSE rtrim(rtrim(round(w.ms / 1000.0, 1)::text, '0'), '.') || 's' END)
                  FROM tasker_rate_buckets b
                  CROSS JOIN LATERAL (
                      SELECT least(p_rate_burst::float8,
                                   b.tokens + p_rate_per_second
                                              * greatest(0, extract(epoch FROM p_now - b.refilled_at))::float8) AS tokens) t
                  CROSS JOIN LATERAL (SELECT ceil((1 - t.tokens) / p_rate_per_second * 1000)::bigint AS ms) w
                  WHERE b.key = p_rate_key AND t.tokens < 1 - 1e-9)
    END
$$;
