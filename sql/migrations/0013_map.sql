-- Map steps (docs/architecture.md, "Map"): a step with `map` runs one
-- instance per item of a list. Instances are rows of tasker_steps, children
-- of the map step (map_parent_id, map_index), named "<step>[<index>]", so
-- each has its own attempts, retries, deadline, callback token and audit
-- rows, and is claimed, recorded, retried and swept by the same functions
-- as any step. The map step itself waits (state waiting, wait_kind 'map')
-- while its instances run, holding no in-flight slot.
ALTER TABLE tasker_steps
    ADD COLUMN map_parent_id       uuid REFERENCES tasker_steps (id) ON DELETE CASCADE,
    ADD COLUMN map_index           int,
    ADD COLUMN map_item            jsonb, -- an instance's item
    ADD COLUMN map_max_concurrency int,   -- a map step's cap on instances in flight
    ADD COLUMN map_tolerated       int;   -- a map step's tolerated instance failures

-- wait_kind gains 'map' (the unnamed CHECK of migration 0011 is replaced).
ALTER TABLE tasker_steps DROP CONSTRAINT tasker_steps_wait_kind_check;
ALTER TABLE tasker_steps ADD CONSTRAINT tasker_steps_wait_kind_check
    CHECK (wait_kind IN ('timer', 'callback', 'map')) NOT VALID;
ALTER TABLE tasker_steps VALIDATE CONSTRAINT tasker_steps_wait_kind_check;

-- Readiness walks the steps of a task that are not instances (thousands of
-- pending instances must not lengthen that walk), then the instances of the
-- task's running map steps, each from its own index, in index order, up to
-- the map's free slots.
CREATE INDEX tasker_steps_runnable_top ON tasker_steps (task_id, position)
    WHERE state IN ('pending', 'waiting_for_retry') AND map_parent_id IS NULL;
CREATE INDEX tasker_steps_maps_running ON tasker_steps (task_id)
    WHERE state = 'waiting' AND wait_kind = 'map';
CREATE INDEX tasker_steps_map_runnable ON tasker_steps (map_parent_id, map_index)
    WHERE state IN ('pending', 'waiting_for_retry') AND map_parent_id IS NOT NULL;
CREATE INDEX tasker_steps_map_in_flight ON tasker_steps (map_parent_id)
    WHERE state = 'in_progress' AND map_parent_id IS NOT NULL;
-- Settling a map: is any instance live, how many failed (counting stops
-- at the tolerated number), then, once, the results in order.
CREATE INDEX tasker_steps_map_live ON tasker_steps (map_parent_id)
    WHERE state IN ('pending', 'waiting_for_retry', 'in_progress', 'waiting') AND map_parent_id IS NOT NULL;
CREATE INDEX tasker_steps_map_failed ON tasker_steps (map_parent_id)
    WHERE state = 'error' AND map_parent_id IS NOT NULL;
CREATE INDEX tasker_steps_map_instances ON tasker_steps (map_parent_id, map_index)
    WHERE map_parent_id IS NOT NULL;

-- A claimed instance carries {"index": i, "item": …} to its payload.
ALTER TABLE tasker_scheduler_pass_row ADD COLUMN map jsonb; -- claimed, for map instances
