package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/store"
)

// A byte budget cuts pages short with a cursor, reading in batches; the
// walk still sees every task once, in order, whatever the sizes and ties.
func TestListTasksByteBudget(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	var want []uuid.UUID
	for i := range 30 {
		size := 100
		if i%4 == 0 {
			size = 10 << 10 // a few large contexts among small ones
		}
		id := uuid.Must(uuid.NewV7())
		nt := store.NewTask{ID: id, Namespace: "shop", Name: "order", Version: "1.0.0",
			Context:       json.RawMessage(fmt.Sprintf(`{"pad":%q}`, strings.Repeat("x", size))),
			CorrelationID: "c", Actor: "test", Now: t0.Add(time.Duration(i/3) * time.Millisecond)}
		if _, _, err := s.CreateTask(ctx, nt); err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	tests := []struct {
		name     string
		f        store.ListFilter
		maxPages int
		context  bool
	}{
		{name: "no budget", f: store.ListFilter{Limit: 100}, maxPages: 1, context: true},
		{name: "budget", f: store.ListFilter{Limit: 100, MaxBytes: 16 << 10}, maxPages: 30, context: true},
		{name: "budget below one task", f: store.ListFilter{Limit: 100, MaxBytes: 1}, maxPages: 30, context: true},
		{name: "budget and limit", f: store.ListFilter{Limit: 7, MaxBytes: 64 << 10}, maxPages: 30, context: true},
		{name: "without context", f: store.ListFilter{Limit: 100, MaxBytes: 16 << 10, OmitContext: true}, maxPages: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := tc.f
			var seen []uuid.UUID
			pages := 0
			for {
				page, next, err := s.ListTasks(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				pages++
				used := 0
				for _, tk := range page {
					if (tk.Context != nil) != tc.context {
						t.Fatalf("context present = %v", tk.Context != nil)
					}
					used += tk.Size()
					seen = append(seen, tk.ID)
				}
				if len(page) > f.Limit || (f.MaxBytes > 0 && len(page) > 1 && used > f.MaxBytes) {
					t.Fatalf("page of %d tasks, %d bytes; limit %d, budget %d", len(page), used, f.Limit, f.MaxBytes)
				}
				if next == nil {
					break
				}
				if pages > tc.maxPages {
					t.Fatalf("more than %d pages", tc.maxPages)
				}
				f.After = next
			}
			set := map[uuid.UUID]bool{}
			for _, id := range seen {
				if set[id] {
					t.Fatalf("task %s seen twice", id)
				}
				set[id] = true
			}
			for _, id := range want {
				if !set[id] {
					t.Fatalf("task %s never seen (%d of %d seen)", id, len(seen), len(want))
				}
			}
		})
	}
	if _, _, err := s.ListTasks(ctx, store.ListFilter{Limit: 5, MaxBytes: -1}); err == nil {
		t.Fatal("negative budget accepted")
	}
}
