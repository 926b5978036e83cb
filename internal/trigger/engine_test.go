package trigger_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/enginetest"
	"github.com/taskerhq/tasker/internal/pgtest"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/trigger"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type noInvoker struct{}

func (noInvoker) Invoke(context.Context, engine.Invocation) error { return nil }

// TestRedeliveryStartsNoSecondTask runs the handler on a real engine and
// database: the same event twice yields one task per workflow, and a
// context the schema refuses creates nothing and is not an error.
func TestRedeliveryStartsNoSecondTask(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	st, err := store.New(pool)
	if err != nil {
		t.Fatal(err)
	}
	q := &enginetest.Queue{}
	s := allTemplates(t)
	eng, err := engine.New(engine.Config{Store: st, Templates: s, Queue: q, Invoker: noInvoker{}})
	if err != nil {
		t.Fatal(err)
	}
	h := &trigger.Handler{Creator: eng, Templates: s}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	ev := json.RawMessage(s3Notification("in-bucket", "exports/a+b.csv", "ObjectCreated:Put", "00AA"))
	first, err := h.Handle(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	second, err := h.Handle(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Tasks) != 2 || len(second.Tasks) != 2 {
		t.Fatalf("first %+v second %+v", first, second)
	}
	ids := map[string]bool{}
	for i := range first.Tasks {
		if !first.Tasks[i].Created || second.Tasks[i].Created || first.Tasks[i].TaskID != second.Tasks[i].TaskID {
			t.Errorf("task %d: first %+v, second %+v", i, first.Tasks[i], second.Tasks[i])
		}
		ids[first.Tasks[i].TaskID] = true
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM tasker_tasks`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 || len(ids) != 2 {
		t.Errorf("%d tasks in the database, %d distinct ids; want 2", n, len(ids))
	}
	var src, key, ctxJSON string
	if err := pool.QueryRow(ctx, `SELECT source_system, idempotency_key, context::text FROM tasker_tasks WHERE name = 'ingest'`).Scan(&src, &key, &ctxJSON); err != nil {
		t.Fatal(err)
	}
	if src != "s3" || key != "s3:in-bucket/exports/a b.csv/00AA#data/ingest" {
		t.Errorf("source %q key %q", src, key)
	}
	jsonEq(t, json.RawMessage(ctxJSON), `{"bucket":"in-bucket","key":"exports/a b.csv","size":1048576,"etag":"0123abcd"}`)
	wakes := len(q.Peek())
	if wakes != 2 {
		t.Errorf("%d wake-ups sent, want 2 (one per new task)", wakes)
	}

	// The order event lacks nothing the schema needs; an EventBridge event
	// whose detail lacks order_id is refused by the schema and dropped.
	sum, err := h.Handle(ctx, json.RawMessage(`{"version":"0","id":"ev-x","detail-type":"Order Placed","source":"shop.storefront",
		"detail":{"channel":"web","total":5}}`))
	if err != nil || len(sum.Tasks) != 0 || len(sum.Rejected) != 1 {
		t.Errorf("schema-refused event: %+v, %v", sum, err)
	}
}
