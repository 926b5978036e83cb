package store

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/store/dbgen"
)

func TestPipelineQueueRecordsOneStatement(t *testing.T) {
	ctx := context.Background()
	var p pipeline
	p.queue(func(db dbgen.DBTX) error {
		_, err := dbq.ReadTaskExists(ctx, db, uuid.New())
		return err
	})
	if q := p.batch.QueuedQueries; len(q) != 1 || q[0].SQL != dbgen.ReadTaskExists || len(q[0].Arguments) != 1 {
		t.Fatalf("queued %+v", q)
	}
	for name, call := range map[string]func(dbgen.DBTX) error{
		"none": func(dbgen.DBTX) error { return nil },
		"two": func(db dbgen.DBTX) error {
			_ = dbq.SnapshotBegin(ctx, db)
			return dbq.SnapshotEnd(ctx, db)
		},
		"error swallowed": func(db dbgen.DBTX) error {
			_, _ = dbq.StatusInFlight(ctx, db, StatusCountCap)
			return nil
		},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: queue accepted the call", name)
				}
			}()
			p.queue(call)
		}()
	}
}
