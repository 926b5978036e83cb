package devserver_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The control-flow example workflows (docs/control-flow.md) run on the
// real engine in local mode with their shipped templates and example
// contexts, through the API, the local queue and the local invoker.

func exampleContext(t *testing.T, file string, edit func(map[string]any)) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "examples", file))
	if err != nil {
		t.Fatal(err)
	}
	var ctx map[string]any
	if err := json.Unmarshal(raw, &ctx); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(ctx)
	}
	return ctx
}

func createTask(t *testing.T, h http.Handler, ns, name string, ctx map[string]any) string {
	t.Helper()
	code, task := call(t, h, "POST", "/v1/tasks", map[string]any{"namespace": ns, "name": name, "context": ctx})
	if code != http.StatusCreated {
		t.Fatalf("create %s/%s: %d %v", ns, name, code, task)
	}
	return task["id"].(string)
}

// steps maps step name to the step's JSON object.
func steps(task map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, s := range task["steps"].([]any) {
		st := s.(map[string]any)
		out[st["name"].(string)] = st
	}
	return out
}

// wantStates checks each named step's status.
func wantStates(t *testing.T, task map[string]any, want map[string]string) {
	t.Helper()
	got := steps(task)
	for name, st := range want {
		if got[name]["status"] != st {
			t.Errorf("step %s is %v (skip_reason %v, last_error %v), want %s",
				name, got[name]["status"], got[name]["skip_reason"], got[name]["last_error"], st)
		}
	}
}

// waitStep polls until the step reaches state and returns it.
func waitStep(t *testing.T, h http.Handler, id, step, state string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, st := call(t, h, "GET", "/v1/tasks/"+id+"/steps/"+step, nil)
		if st["status"] == state {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("step %s is %v, never %s", step, st["status"], state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSagaCompensates(t *testing.T) {
	t.Parallel()
	srv := start(t)
	h := srv.Handler
	tests := []struct {
		name   string
		edit   func(map[string]any)
		states map[string]string
	}{
		{"hotel full: compensated", nil, map[string]string{
			"reserve_flight": "complete", "reserve_hotel": "error", "charge_card": "skipped", "confirm_trip": "skipped",
			"cancel_flight": "complete", "cancel_hotel": "complete",
		}},
		{"card declined: compensated", func(c map[string]any) { c["fail_step"] = "charge_card" }, map[string]string{
			"reserve_flight": "complete", "reserve_hotel": "complete", "charge_card": "error", "confirm_trip": "skipped",
			"cancel_flight": "complete", "cancel_hotel": "complete",
		}},
		{"no flight: nothing to undo", func(c map[string]any) { c["fail_step"] = "reserve_flight" }, map[string]string{
			"reserve_flight": "error", "reserve_hotel": "skipped", "charge_card": "skipped", "confirm_trip": "skipped",
			"cancel_flight": "complete", "cancel_hotel": "skipped",
		}},
		{"booked: no compensation", func(c map[string]any) { delete(c, "fail_step") }, map[string]string{
			"reserve_flight": "complete", "reserve_hotel": "complete", "charge_card": "complete", "confirm_trip": "complete",
			"cancel_flight": "skipped", "cancel_hotel": "skipped",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			id := createTask(t, h, "travel", "book_trip", exampleContext(t, "trip.json", tc.edit))
			task := waitDone(t, h, id)
			// Every failure was handled by a completed one_failed step.
			if task["status"] != "complete" {
				t.Errorf("task ended %v, want complete", task["status"])
			}
			wantStates(t, task, tc.states)
			// A compensation undoes what its parents reserved, nothing else.
			for _, c := range []struct{ step, reserved string }{{"cancel_flight", "reserve_flight"}, {"cancel_hotel", "reserve_hotel"}} {
				if tc.states[c.step] != "complete" {
					continue
				}
				res, _ := steps(task)[c.step]["result"].(map[string]any)
				if want := tc.states[c.reserved] == "complete"; res["cancelled"] != want {
					t.Errorf("%s result = %v, want cancelled %v", c.step, res, want)
				}
			}
		})
	}
	// The graph shows the compensation edges apart.
	id := createTask(t, h, "travel", "book_trip", exampleContext(t, "trip.json", nil))
	waitDone(t, h, id)
	req := httptest.NewRequest("GET", "/v1/tasks/"+id+"/graph?format=mermaid", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if body := rec.Body.String(); rec.Code != 200 || !contains(body, "-. on failure .->", "class ", "skipped") {
		t.Errorf("graph: %d\n%s", rec.Code, body)
	}
}

func contains(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
