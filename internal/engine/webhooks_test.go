package engine_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/events"
)

const hookYAML = `
namespace: test
name: hook
version: 1.0.0
steps:
  - {name: a, handler: h}
  - {name: b, handler: h, depends_on: [a]}
`

// receiver is a real HTTP endpoint that verifies each delivery's signature
// with the engine's clock and records what it accepted.
type receiver struct {
	t      *testing.T
	secret string
	now    func() time.Time
	fail   bool // answer 503

	mu       sync.Mutex
	got      []map[string]any
	attempts int
	bad      int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.attempts++
	if err := events.VerifyWebhook(rc.secret, r.Header, body, rc.now(), 5*time.Minute); err != nil {
		rc.bad++
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if rc.fail {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		rc.t.Errorf("body: %v", err)
	}
	if m["name"] != r.Header.Get(events.HeaderEvent) {
		rc.t.Errorf("event header %q, body name %v", r.Header.Get(events.HeaderEvent), m["name"])
	}
	rc.got = append(rc.got, m)
}

func (rc *receiver) names() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []string
	for _, m := range rc.got {
		out = append(out, m["name"].(string))
	}
	return out
}

func TestWebhookSubscriptions(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{Webhooks: events.NewWebhooks(events.WebhookOptions{}), WebhookBackoff: 10 * time.Second}, hookYAML)
	good := &receiver{t: t, now: h.clock.Now}
	down := &receiver{t: t, now: h.clock.Now, fail: true}
	goodSrv, downSrv := httptest.NewServer(good), httptest.NewServer(down)
	t.Cleanup(goodSrv.Close)
	t.Cleanup(downSrv.Close)

	// Bad requests change nothing and say what is wrong.
	for _, c := range []struct {
		req  engine.SubscriptionRequest
		want string
	}{
		{engine.SubscriptionRequest{URL: "ftp://x", Events: []string{"*"}}, "want an absolute http or https URL"},
		{engine.SubscriptionRequest{URL: goodSrv.URL}, "name at least one event"},
		{engine.SubscriptionRequest{URL: goodSrv.URL, Events: []string{"task.exploded"}}, "not in the event catalogue"},
		{engine.SubscriptionRequest{URL: goodSrv.URL, Events: []string{"Order"}}, "dotted lower-case"},
		{engine.SubscriptionRequest{URL: goodSrv.URL, Events: []string{"step.dispatched"}}, "not delivered to webhooks"},
		{engine.SubscriptionRequest{URL: goodSrv.URL, Events: []string{"*"}, MaxAttempts: 99}, "max_attempts 99"},
		{engine.SubscriptionRequest{URL: goodSrv.URL, Events: []string{"*"}, Secret: "short"}, "secret"},
	} {
		_, err := h.eng.CreateSubscription(h.ctx, c.req)
		if !errors.Is(err, engine.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want ErrInvalid with %q", c.req, err, c.want)
		}
	}
	if subs, err := h.eng.ListSubscriptions(h.ctx); err != nil || len(subs) != 0 {
		t.Fatalf("subscriptions after bad requests: %v %v", subs, err)
	}

	goodSub, err := h.eng.CreateSubscription(h.ctx, engine.SubscriptionRequest{URL: goodSrv.URL,
		Events: []string{"task.completed", "step.*", "order.shipped"}})
	if err != nil {
		t.Fatal(err)
	}
	good.secret = goodSub.Secret
	downSub, err := h.eng.CreateSubscription(h.ctx, engine.SubscriptionRequest{URL: downSrv.URL, Events: []string{"task.completed"},
		MaxAttempts: 3, Secret: "a-secret-of-enough-length"})
	if err != nil {
		t.Fatal(err)
	}
	down.secret = downSub.Secret

	id := h.create("hook", `{}`)
	h.drain(func(p contract.Payload) outcome {
		if p.Tasker.Step == "b" {
			return ok(map[string]any{"shipped": true,
				"tasker_events": []map[string]any{{"name": "order.shipped", "data": map[string]string{"carrier": "ups"}}}})
		}
		return ok(map[string]bool{"ok": true})
	})
	mustStatus(t, h, id, "complete")

	rep, err := h.eng.DeliverWebhooks(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Sent in parallel: compare as sets.
	want := []string{"order.shipped", "step.claimed", "step.claimed", "step.completed", "step.completed", "task.completed"}
	if got := slices.Sorted(slices.Values(good.names())); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("good receiver got %v, want %v", got, want)
	}
	if rep.Delivered != len(want) || rep.Failed != 1 || rep.Dead != 0 {
		t.Errorf("first round: %+v", rep)
	}
	for _, m := range good.got {
		if m["task_id"] != id.String() || m["namespace"] != "test" || m["workflow"] != "hook" {
			t.Errorf("payload lacks the task: %v", m)
		}
		if m["name"] == "order.shipped" {
			if d, _ := m["data"].(map[string]any); d["carrier"] != "ups" || m["custom"] != true || m["step"] != "b" {
				t.Errorf("custom event payload: %v", m)
			}
		}
	}

	// The failing receiver is retried after 10 s, then 20 s, then given up;
	// nothing is sent before its time.
	for i, wait := range []time.Duration{10 * time.Second, 20 * time.Second} {
		h.clock.Advance(wait - time.Second)
		if rep, _ := h.eng.DeliverWebhooks(h.ctx); rep != (engine.WebhookReport{}) {
			t.Fatalf("retry %d before its backoff: %+v", i+1, rep)
		}
		h.clock.Advance(time.Second)
		rep, err := h.eng.DeliverWebhooks(h.ctx)
		if err != nil {
			t.Fatal(err)
		}
		wantRep := engine.WebhookReport{Failed: 1}
		if i == 1 {
			wantRep = engine.WebhookReport{Dead: 1}
		}
		if rep != wantRep {
			t.Errorf("retry %d: %+v, want %+v", i+1, rep, wantRep)
		}
	}
	if down.attempts != 3 || down.bad != 0 || good.bad != 0 {
		t.Errorf("down receiver attempts %d, bad signatures %d/%d", down.attempts, down.bad, good.bad)
	}
	if n := h.pub.Count(engine.WebhookDead); n != 1 {
		t.Errorf("webhook.dead events: %d", n)
	}
	log, err := h.eng.ListDeliveries(h.ctx, downSub.ID, 10)
	if err != nil || len(log) != 1 || log[0].State != "dead" || log[0].Attempts != 3 {
		t.Fatalf("delivery log: %+v %v", log, err)
	}
	var entries []map[string]any
	if err := json.Unmarshal(log[0].Log, &entries); err != nil || len(entries) != 3 || entries[0]["status_code"] != float64(503) {
		t.Errorf("attempt log: %s", log[0].Log)
	}
	subs, err := h.eng.ListSubscriptions(h.ctx)
	if err != nil || len(subs) != 2 || subs[0].Secret != "" {
		t.Fatalf("list: %+v %v", subs, err)
	}

	// Finished deliveries are pruned after the retention (7 days).
	h.clock.Advance(engine.DefaultWebhookRetention + time.Minute)
	if rep, err := h.eng.DeliverWebhooks(h.ctx); err != nil || rep.Pruned != int64(len(want)+1) {
		t.Errorf("prune: %+v %v, want %d pruned", rep, err, len(want)+1)
	}
	if log, err := h.eng.ListDeliveries(h.ctx, downSub.ID, 10); err != nil || len(log) != 0 {
		t.Errorf("after pruning: %+v %v", log, err)
	}

	// A deleted subscription takes its deliveries with it.
	if err := h.eng.DeleteSubscription(h.ctx, downSub.ID); err != nil {
		t.Fatal(err)
	}
	if err := h.eng.DeleteSubscription(h.ctx, downSub.ID); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
}

// A result whose custom events are malformed fails its own step, with a
// message naming the problem, and harms no other step.
func TestInvalidCustomEventsFailTheStep(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, hookYAML)
	bad, okTask := h.create("hook", `{"bad":true}`), h.create("hook", `{}`)
	h.drain(func(p contract.Payload) outcome {
		if strings.Contains(string(p.Context), "bad") {
			return ok(map[string]any{"tasker_events": []map[string]any{{"name": "task.completed"}}})
		}
		return ok(map[string]any{"tasker_events": []map[string]any{{"name": "order.packed"}}})
	})
	mustStatus(t, h, bad, "error")
	mustStatus(t, h, okTask, "complete")
	var msg string
	if err := h.pool.QueryRow(h.ctx, "SELECT last_error->>'code' || ': ' || (last_error->>'message') FROM tasker_steps WHERE task_id = $1 AND name = 'a'", bad).Scan(&msg); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, "invalid_events") || !strings.Contains(msg, "lifecycle events") {
		t.Errorf("failure: %s", msg)
	}
	if n := h.pub.Count("order.packed"); n != 2 {
		t.Errorf("order.packed published %d times, want 2 (once per step of the good task)", n)
	}
}
