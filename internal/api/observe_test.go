package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/taskerhq/tasker/internal/auth"
)

func TestSubscriptionsAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{auth: true})
	admin := e.token("ops", auth.SystemAdmin)
	reader := e.token("viewer", auth.SystemRead)

	wantProblem(t, e.post("/v1/subscriptions", map[string]any{"url": "https://example.com/h", "events": []string{"*"}}, reader),
		http.StatusForbidden, "forbidden")
	for _, c := range []struct {
		body map[string]any
		want string
	}{
		{map[string]any{"events": []string{"*"}}, "/url"},
		{map[string]any{"url": "https://example.com/h", "events": []string{"task.exploded"}}, "not in the event catalogue"},
		{map[string]any{"url": "mailto:x@example.com", "events": []string{"*"}}, "http or https"},
		{map[string]any{"url": "https://example.com/h", "events": []string{"*"}, "max_attempts": 0}, "/max_attempts"},
		{map[string]any{"url": "https://example.com/h", "events": []string{"*"}, "colour": "red"}, "/colour"},
	} {
		r := e.post("/v1/subscriptions", c.body, admin)
		if r.code != http.StatusUnprocessableEntity || !strings.Contains(string(r.body), c.want) {
			t.Errorf("%v: %d %s, want 422 naming %q", c.body, r.code, r.body, c.want)
		}
	}
	if got := e.get("/v1/subscriptions", admin).json(t)["subscriptions"].([]any); len(got) != 0 {
		t.Fatalf("bad requests created %v", got)
	}

	r := e.post("/v1/subscriptions", map[string]any{"url": "https://example.com/h", "events": []string{"task.*", "order.shipped"},
		"description": "orders", "max_attempts": 5}, admin)
	wantStatus(t, r, http.StatusCreated)
	sub := r.json(t)
	if secret, _ := sub["secret"].(string); !strings.HasPrefix(secret, "whsec_") || sub["max_attempts"] != float64(5) {
		t.Fatalf("created: %v", sub)
	}
	id := sub["id"].(string)
	list := e.get("/v1/subscriptions", admin).json(t)["subscriptions"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["secret"] != nil {
		t.Fatalf("list shows %v", list)
	}

	// Task events fill the subscription's outbox in the same transaction.
	e.createTask(orderBody(nil), e.token("svc", auth.TasksCreate))
	e.drain(succeed)
	ds := e.get("/v1/subscriptions/"+id+"/deliveries", admin).json(t)["deliveries"].([]any)
	var events []string
	for _, d := range ds {
		events = append(events, d.(map[string]any)["event"].(string))
	}
	if strings.Join(events, ",") != "task.completed,task.started,task.created" {
		t.Errorf("deliveries (newest first): %v", events)
	}
	wantProblem(t, e.get("/v1/subscriptions/nope/deliveries", admin), http.StatusBadRequest, "invalid-parameter")

	wantStatus(t, e.do(req{method: "DELETE", path: "/v1/subscriptions/" + id, token: admin}), http.StatusNoContent)
	wantProblem(t, e.do(req{method: "DELETE", path: "/v1/subscriptions/" + id, token: admin}), http.StatusNotFound, "not-found")
}

func TestTemplateAnalyticsAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{auth: true})
	tok := e.token("ops", auth.SystemRead)
	for range 3 {
		e.createTask(orderBody(nil), e.token("svc", auth.TasksCreate))
	}
	e.drain(succeed)
	r := e.get("/v1/analytics/templates/shop/order?window=1h", tok)
	wantStatus(t, r, http.StatusOK) // and matches the documented schema (checkResponse)
	a := r.json(t)
	if a["tasks"] != float64(3) || len(a["steps"].([]any)) != 4 || a["window_seconds"] != float64(3600) {
		t.Fatalf("analytics: %s", r.body)
	}
	first := a["steps"].([]any)[0].(map[string]any)
	if first["step"] != "validate" || first["runs"] != float64(3) || first["failures"] != float64(0) {
		t.Errorf("validate: %v", first)
	}
	if p := a["slowest_path"].([]any); len(p) != 3 || p[0] != "validate" || p[2] != "ship" {
		t.Errorf("slowest path %v", p)
	}
	// The in-flight limit and its reason (fixed: the test engine turns
	// adaptation off so load cannot move it).
	st := e.get("/v1/health/status", tok).json(t)
	if inf := st["in_flight"].(map[string]any); inf["cap"] != float64(50) || inf["max"] != float64(50) || inf["reason"] != "fixed" {
		t.Errorf("in_flight: %v", inf)
	}
	wantProblem(t, e.get("/v1/analytics/templates/shop/order?window=2s", tok), http.StatusBadRequest, "invalid-parameter")
	wantProblem(t, e.get("/v1/analytics/templates/shop/order?since=1", tok), http.StatusBadRequest, "invalid-parameter")
	wantProblem(t, e.get("/v1/analytics/templates/shop/nope", tok), http.StatusNotFound, "not-found")
	wantProblem(t, e.get("/v1/analytics/templates/shop/order", e.token("x", auth.TasksRead)), http.StatusForbidden, "forbidden")
}
