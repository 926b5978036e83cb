package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/taskerhq/tasker/internal/engine"
)

// An idempotency key is scoped to the caller and bound to the request
// (docs/security.md, "Idempotency keys"; issue 15 item 7).
func TestIdempotencyKeyScopedToCaller(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{auth: true})
	alice := e.token("alice", "tasks:create")
	bob := e.token("bob", "tasks:create")
	body := orderBody(map[string]any{"idempotency_key": "order-7", "reason": "checkout"})

	r1 := e.post("/v1/tasks", body, alice)
	wantStatus(t, r1, http.StatusCreated)
	aliceID := r1.json(t)["id"].(string)

	// Same caller, same request: the same task.
	r2 := e.post("/v1/tasks", body, alice)
	wantStatus(t, r2, http.StatusOK)
	if id := r2.json(t)["id"]; id != aliceID {
		t.Fatalf("replay id = %v, want %s", id, aliceID)
	}
	// The same request written differently (key order, white space, the
	// key in the header) is the same request.
	raw := `{ "reason":"checkout","context":{"payment_info":{"amount":12.5}},"version":"1.0.0","name":"order","namespace":"shop"}`
	r3 := e.do(req{method: "POST", path: "/v1/tasks", body: raw, token: alice, header: map[string]string{"Idempotency-Key": "order-7"}})
	wantStatus(t, r3, http.StatusOK)
	if id := r3.json(t)["id"]; id != aliceID {
		t.Fatalf("reordered replay id = %v, want %s", id, aliceID)
	}

	// Same caller, another request: a 409 that names nothing.
	for name, b := range map[string]any{
		"context":  orderBody(map[string]any{"idempotency_key": "order-7", "reason": "checkout", "context": map[string]any{"payment_info": map[string]any{"amount": 99}}}),
		"reason":   orderBody(map[string]any{"idempotency_key": "order-7", "reason": "other"}),
		"tags":     orderBody(map[string]any{"idempotency_key": "order-7", "reason": "checkout", "tags": []string{"x"}}),
		"workflow": map[string]any{"namespace": "shop", "name": "flaky", "idempotency_key": "order-7", "reason": "checkout"},
	} {
		r := e.post("/v1/tasks", b, alice)
		p := wantProblem(t, r, http.StatusConflict, "conflict")
		if p.Detail != "this idempotency key was used with a different request" {
			t.Errorf("%s: detail = %q", name, p.Detail)
		}
		if s := string(r.body); strings.Contains(s, aliceID) || strings.Contains(s, "order") || strings.Contains(s, "payment") {
			t.Errorf("%s: the 409 reveals the other task: %s", name, s)
		}
		if loc := r.header.Get("Location"); loc != "" {
			t.Errorf("%s: Location = %q", name, loc)
		}
	}

	// Another caller, same key: a new key, whatever the body.
	for i, b := range []any{body, orderBody(map[string]any{"idempotency_key": "order-7", "reason": "other"})} {
		tok := bob
		if i == 1 {
			tok = e.token("carol", "tasks:create")
		}
		r := e.post("/v1/tasks", b, tok)
		wantStatus(t, r, http.StatusCreated)
		got := r.json(t)
		if got["id"] == aliceID {
			t.Fatalf("caller %d got alice's task", i)
		}
		// And it is that caller's own key from then on.
		again := e.post("/v1/tasks", b, tok)
		wantStatus(t, again, http.StatusOK)
		if again.json(t)["id"] != got["id"] {
			t.Fatalf("caller %d replay: %v, want %v", i, again.json(t)["id"], got["id"])
		}
	}
	// The store holds one task per scope for the key.
	var n int
	if err := e.pool.QueryRow(t.Context(), "SELECT count(*) FROM tasker_tasks WHERE idempotency_key = 'order-7'").Scan(&n); err != nil || n != 3 {
		t.Fatalf("tasks with the key = %d (%v), want 3", n, err)
	}
}

// With auth off the whole deployment is one scope: every caller replays
// every key (documented in docs/security.md), still bound to the request.
// Triggers' keys live in their own scope.
func TestIdempotencyKeyDeploymentScopeWithoutAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	body := orderBody(map[string]any{"idempotency_key": "k-1"})
	r1 := e.post("/v1/tasks", body, "")
	wantStatus(t, r1, http.StatusCreated)
	r2 := e.post("/v1/tasks", body, "")
	wantStatus(t, r2, http.StatusOK)
	if r1.json(t)["id"] != r2.json(t)["id"] {
		t.Fatal("replay got another task")
	}
	r := e.post("/v1/tasks", orderBody(map[string]any{"idempotency_key": "k-1", "initiator": "someone"}), "")
	p := wantProblem(t, r, http.StatusConflict, "conflict")
	if strings.Contains(string(r.body), r1.json(t)["id"].(string)) || p.Detail != "this idempotency key was used with a different request" {
		t.Fatalf("409 = %s", r.body)
	}
	var scope string
	if err := e.pool.QueryRow(t.Context(), "SELECT idempotency_scope FROM tasker_tasks WHERE idempotency_key = 'k-1'").Scan(&scope); err != nil || scope != "" {
		t.Fatalf("scope = %q (%v), want the deployment-wide ''", scope, err)
	}

	// A trigger's key, replayed through the API, is a new key.
	trig := engine.CreateRequest{Namespace: "shop", Name: "flaky", IdempotencyKey: "eventbridge:e-1#shop/flaky",
		IdempotencyScope: engine.TriggerScope, Initiator: "trigger", SourceSystem: "eventbridge"}
	tc, err := e.eng.CreateTask(t.Context(), trig)
	if err != nil || !tc.Created {
		t.Fatalf("trigger create: %+v, %v", tc, err)
	}
	r = e.post("/v1/tasks", map[string]any{"namespace": "shop", "name": "flaky", "idempotency_key": "eventbridge:e-1#shop/flaky",
		"initiator": "trigger", "source_system": "eventbridge"}, "")
	wantStatus(t, r, http.StatusCreated)
	if r.json(t)["id"] == tc.TaskID.String() {
		t.Fatal("the API replayed a trigger's key")
	}
}
