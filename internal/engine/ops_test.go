package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/store"
)

// exports records what the engine exports, failing while fail is set.
type exports struct {
	mu   sync.Mutex
	docs []json.RawMessage
	fail bool
}

func (x *exports) Export(_ context.Context, docs []json.RawMessage) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.fail {
		return errors.New("bucket unreachable")
	}
	x.docs = append(x.docs, docs...)
	return nil
}

func TestSweepPrunesPastRetention(t *testing.T) {
	t.Parallel()
	x := &exports{}
	h := newHarness(t, engine.Config{Retention: 24 * time.Hour, RetentionBatch: 1, Exporter: x}, singleYAML)
	a, b := h.create("single", `{}`), h.create("single", `{}`)
	h.drain(func(contract.Payload) outcome { return ok(map[string]any{}) })
	mustStatus(t, h, a, "complete")
	sweep := func() engine.SweepReport {
		t.Helper()
		rep, err := h.eng.Sweep(h.ctx)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	if rep := sweep(); rep.Pruned != 0 {
		t.Fatalf("pruned %d tasks inside the retention", rep.Pruned)
	}
	h.clock.Advance(25 * time.Hour)
	live := h.create("single", `{}`)
	x.fail = true
	if rep := sweep(); rep.Pruned != 0 {
		t.Fatalf("pruned %d tasks whose export failed", rep.Pruned)
	}
	x.fail = false
	// One per sweep (RetentionBatch 1): the cost of a sweep stays bounded.
	for i, want := range []int{1, 1, 0} {
		if rep := sweep(); rep.Pruned != want {
			t.Fatalf("sweep %d pruned %d, want %d", i, rep.Pruned, want)
		}
	}
	for _, id := range []uuid.UUID{a, b} {
		if _, err := h.store.GetTask(h.ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("task %s kept: %v", id, err)
		}
	}
	if _, err := h.store.GetTask(h.ctx, live); err != nil {
		t.Fatalf("live task: %v", err)
	}
	if len(x.docs) != 2 {
		t.Fatalf("exported %d docs", len(x.docs))
	}
}

func TestRetentionOff(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, singleYAML)
	a := h.create("single", `{}`)
	h.drain(func(contract.Payload) outcome { return ok(map[string]any{}) })
	h.clock.Advance(10 * 365 * 24 * time.Hour)
	if rep, err := h.eng.Sweep(h.ctx); err != nil || rep.Pruned != 0 {
		t.Fatalf("sweep = %+v, %v", rep, err)
	}
	mustStatus(t, h, a, "complete")
}

func TestBulk(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, singleYAML)
	var ids []uuid.UUID
	for range 5 {
		ids = append(ids, h.create("single", `{}`))
	}
	h.drain(func(contract.Payload) outcome {
		return fail(&contract.HandlerError{Message: "no", Permanent: true})
	})
	filter := store.ListFilter{Namespace: "test", Statuses: []string{"error"}}
	res, err := h.eng.Bulk(h.ctx, engine.BulkRequest{Action: engine.BulkRetry, Filter: filter, DryRun: true})
	if err != nil || res.Matched != 5 || res.Changed != 0 {
		t.Fatalf("dry run = %+v, %v", res, err)
	}
	var progress []int
	res, err = h.eng.Bulk(h.ctx, engine.BulkRequest{Action: engine.BulkRetry, Filter: filter, Actor: "ops", MaxTasks: 3,
		Progress: func(r engine.BulkResult) { progress = append(progress, r.Changed) }})
	if err != nil || res.Changed != 3 || res.Next == nil || len(progress) != 1 {
		t.Fatalf("retry = %+v, %v, progress %v", res, err, progress)
	}
	// The retried tasks were woken: their steps run again.
	ran := h.drain(func(contract.Payload) outcome { return ok(map[string]any{}) })
	if len(ran) != 3 {
		t.Fatalf("%d steps ran after the bulk retry", len(ran))
	}
	filter.After = res.Next
	res, err = h.eng.Bulk(h.ctx, engine.BulkRequest{Action: engine.BulkCancel, Filter: filter, Actor: "ops"})
	if err != nil || res.Changed != 2 || res.Next != nil {
		t.Fatalf("cancel = %+v, %v", res, err)
	}
	complete, cancelled := 0, 0
	for _, id := range ids {
		switch h.taskStatus(id) {
		case "complete":
			complete++
		case "cancelled":
			cancelled++
		}
	}
	if complete != 3 || cancelled != 2 {
		t.Fatalf("%d complete, %d cancelled", complete, cancelled)
	}
	if _, err := h.eng.Bulk(h.ctx, engine.BulkRequest{Action: "delete"}); !errors.Is(err, engine.ErrConflict) {
		t.Fatalf("unknown action: %v", err)
	}
}
