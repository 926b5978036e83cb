package devserver_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/taskerhq/tasker/internal/devserver"
	"github.com/taskerhq/tasker/internal/events"
	"github.com/taskerhq/tasker/internal/pgtest"
	"github.com/taskerhq/tasker/sdk"
)

const shipYAML = `
namespace: obs
name: ship
version: 1.0.0
steps:
  - {name: ship, handler: obs.ship}
`

// Local mode delivers subscriptions from the sweeper: a real receiver gets
// the task's completion and the handler's custom event, signed.
func TestWebhooksDeliveredLocally(t *testing.T) {
	t.Parallel()
	reg := sdk.NewRegistry()
	if err := reg.Register("obs.ship", func(context.Context, sdk.Input) (any, error) {
		return sdk.WithEvents(map[string]string{"tracking": "1Z"},
			sdk.Emit("order.shipped", map[string]string{"carrier": "ups"}))
	}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var secret string
	got := map[string]map[string]any{}
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if err := events.VerifyWebhook(secret, r.Header, body, time.Now(), 5*time.Minute); err != nil {
			t.Errorf("delivery %s: %v", r.Header.Get(events.HeaderEvent), err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		got[r.Header.Get(events.HeaderEvent)] = m
	}))
	t.Cleanup(receiver.Close)

	srv, err := devserver.Start(context.Background(), devserver.Options{
		DatabaseURL: pgtest.URL(t), Templates: fstest.MapFS{"ship.yaml": {Data: []byte(shipYAML)}},
		Registry: reg, SweepInterval: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	code, sub := call(t, srv.Handler, "POST", "/v1/subscriptions",
		map[string]any{"url": receiver.URL + "/hook", "events": []string{"task.completed", "order.*"}})
	if code != http.StatusCreated {
		t.Fatalf("subscribe: %d %v", code, sub)
	}
	mu.Lock()
	secret = sub["secret"].(string)
	mu.Unlock()
	code, task := call(t, srv.Handler, "POST", "/v1/tasks", map[string]any{"namespace": "obs", "name": "ship", "context": map[string]any{}})
	if code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, task)
	}
	if done := waitDone(t, srv.Handler, task["id"].(string)); done["status"] != "complete" {
		t.Fatalf("task: %v", done["status"])
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries received: %v", got)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if d, _ := got["order.shipped"]["data"].(map[string]any); d["carrier"] != "ups" || got["task.completed"]["task_id"] != task["id"] {
		t.Errorf("deliveries: %v", got)
	}
}
