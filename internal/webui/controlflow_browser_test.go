package webui_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/taskerhq/tasker/internal/graph"
)

// startApproval starts payments/refund_with_approval for the large refund
// example (over the approval threshold) and waits until manager_approval
// waits for a decision. bearer authorises the API calls ("" when open).
func startApproval(t *testing.T, s *stack, bearer string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "examples", "refund_large.json"))
	if err != nil {
		t.Fatal(err)
	}
	code, task := s.callAs(t, bearer, "POST", "/v1/tasks", map[string]any{
		"namespace": "payments", "name": "refund_with_approval", "context": json.RawMessage(raw), "initiator": "browser-test",
	})
	if code != http.StatusCreated {
		t.Fatalf("create task: %d %v", code, task)
	}
	id := task["id"].(string)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, st := s.callAs(t, bearer, "GET", "/v1/tasks/"+id+"/steps/manager_approval", nil)
		if st["status"] == "waiting" {
			return id
		}
		if time.Now().After(deadline) {
			t.Fatalf("manager_approval is %v, never waiting", st["status"])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// callAs is stack.call with a bearer token.
func (s *stack) callAs(t *testing.T, bearer, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, s.url+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		t.Fatalf("%s %s: %d, not JSON: %v", method, path, res.StatusCode, err)
	}
	return res.StatusCode, out
}

// Clicking a step in the graph opens its detail (and proves the CDP
// client's clicks land where a user's would).
func TestBrowserClickGraphNode(t *testing.T) {
	t.Parallel()
	bin := chromium(t)
	s := startStack(t, stackOptions{})
	id := s.createOrder(t)
	c := openCDP(t, bin, s.url+"/#/tasks/"+id)
	c.waitFor("the graph", `document.querySelector('g.node[data-step="fraud_check"]')`, 20*time.Second)
	c.click(`g.node[data-step="fraud_check"] rect`)
	c.waitFor("the step card", `document.querySelector('.step-card[data-step="fraud_check"]')`, 10*time.Second)
	var hash string
	c.eval(`location.hash`, &hash)
	if hash != "#/tasks/"+id+"/steps/fraud_check" {
		t.Errorf("location.hash = %q", hash)
	}
}

// The saga example after a failure: skipped steps look skipped and say
// why, the compensation edges are drawn apart and labelled, and the
// template page shows trigger rules.
func TestBrowserSagaView(t *testing.T) {
	t.Parallel()
	bin := chromium(t)
	s := startStack(t, stackOptions{})
	raw, err := os.ReadFile(filepath.Join("..", "..", "examples", "trip.json"))
	if err != nil {
		t.Fatal(err)
	}
	code, task := s.call(t, "POST", "/v1/tasks", map[string]any{"namespace": "travel", "name": "book_trip", "context": json.RawMessage(raw)})
	if code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, task)
	}
	id := task["id"].(string)
	deadline := time.Now().Add(30 * time.Second)
	for task["status"] != "complete" {
		if time.Now().After(deadline) {
			t.Fatalf("saga is %v", task["status"])
		}
		time.Sleep(50 * time.Millisecond)
		_, task = s.call(t, "GET", "/v1/tasks/"+id, nil)
	}

	dom := string(browse(t, bin, s.url+"/#/tasks/"+id+"/steps/charge_card", "--dump-dom"))
	mustContain(t, dom,
		`data-step="charge_card" data-state="skipped"`, `data-step="reserve_hotel" data-state="error"`,
		`data-step="cancel_flight" data-state="complete"`,
		`class="edge rule-one_failed" data-rule="one_failed"`, `>on failure</text>`,
		`class="muted small skip-note"`, "Skipped because", "parent reserve_hotel failed",
		`class="swatch st-skipped"`, `class="swatch st-waiting"`)
	if !regexp.MustCompile(`<tr data-step="cancel_hotel">.*?data-status="complete"`).MatchString(dom) {
		t.Errorf("cancel_hotel row is not complete")
	}

	dom = string(browse(t, bin, s.url+"/#/tasks/"+id+"/steps/cancel_flight", "--dump-dom"))
	mustContain(t, dom, `<dt>Trigger rule</dt><dd><code>one_failed</code></dd>`, `"cancelled"`)

	dom = string(browse(t, bin, s.url+"/#/templates/travel/book_trip", "--dump-dom"))
	mustContain(t, dom, `data-rule="one_failed"`, "trigger rule <code>one_failed</code>")

	shot := filepath.Join(t.TempDir(), "saga.png")
	browse(t, bin, s.url+"/#/tasks/"+id, "--screenshot="+shot)
	img := checkPNG(t, shot)
	if n := countColour(img, graph.StyleOf("skipped").Fill, 2); n < 2000 {
		t.Errorf("screenshot has %d pixels of the skipped fill; skipped nodes are not drawn", n)
	}
	if n := countColour(img, graph.EdgeStyleOf(graph.RuleOneFailed).Stroke, 40); n < 50 {
		t.Errorf("screenshot has %d pixels of the compensation edge colour", n)
	}
	copyFile(t, shot, filepath.Join(os.TempDir(), "tasker-webui", "saga.png"))
	if os.Getenv("UPDATE_SCREENSHOT") == "1" {
		copyFile(t, shot, filepath.Join("..", "..", "docs", "img", "saga.png")) // docs/control-flow.md
	}
}
