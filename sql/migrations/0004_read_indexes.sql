-- Read-side indexes for the HTTP API (internal/store/read.go).
--
-- /v1/health/status reports step outcomes of the last few minutes across the
-- system. Transitions are appended in time order, so a BRIN index on
-- created_at is a few pages large, costs almost nothing on the hot insert
-- path, and turns "since T" into a short range scan.
CREATE INDEX tasker_transitions_created_brin ON tasker_transitions USING brin (created_at);
