package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/store/dbgen"
)

// Expand is one claimed map step to expand into its instances
// (docs/architecture.md, "Map").
type Expand struct {
	StepID  uuid.UUID
	Attempt int
	// Items is a JSON list of at least one item.
	Items          json.RawMessage
	MaxConcurrency int
	Tolerated      int
}

// ExpandMaps moves claimed map steps to waiting (wait_kind map) and inserts
// one pending instance per item (tasker_expand_maps); fenced on
// (step, attempt), so a stale claim changes nothing. The scheduler pass
// claims the instances, at most MaxConcurrency in flight per map, and
// settles the map step when they end.
func (s *Store) ExpandMaps(ctx context.Context, now time.Time, actor string, es []Expand) ([]WaitChange, error) {
	n := len(es)
	ids := make([]uuid.UUID, n)
	attempts := make([]int32, n)
	items := make([]json.RawMessage, n)
	conc := make([]int32, n)
	tol := make([]int32, n)
	for i, e := range es {
		ids[i], attempts[i], items[i], conc[i], tol[i] = e.StepID, int32(e.Attempt), e.Items, int32(e.MaxConcurrency), int32(e.Tolerated)
	}
	rows, err := dbq.ExpandMaps(ctx, s.pool, dbgen.ExpandMapsParams{Now: now, Actor: actor, StepIds: ids, Attempts: attempts,
		Items: items, MaxConcurrency: conc, Tolerated: tol})
	if err != nil {
		return nil, fmt.Errorf("expand maps: %w", err)
	}
	return waitChanges(rows), nil
}
