-- Applied after the numbered migrations whenever any function file changes
-- (internal/migrate); keep every statement idempotent.
--
-- Step inputs (docs/templates.md, "Inputs"): the results of named steps of
-- claimed tasks, for the steps whose template hands them more than their
-- direct parents' results. One probe of UNIQUE (task_id, name) per pair,
-- so the cost is that of the pairs asked for.
CREATE OR REPLACE FUNCTION tasker_step_results(p_task_ids uuid[], p_names text[])
RETURNS TABLE (task_id uuid, name text, result jsonb)
LANGUAGE sql STABLE AS $$
    SELECT i.task_id, p.name, p.result
    FROM unnest(p_task_ids, p_names) AS i(task_id, name)
    CROSS JOIN LATERAL (
        SELECT s.name, s.result FROM tasker_steps s WHERE s.task_id = i.task_id AND s.name = i.name OFFSET 0
    ) p
$$;
ALTER FUNCTION tasker_step_results(uuid[], text[])
    SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off
    SET plan_cache_mode = force_generic_plan;
