package webui_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/taskerhq/tasker/internal/auth"
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

// A user opens a refund waiting for approval, sees the waiting step (its
// colour, its callback badge, its expiry), types a comment, clicks
// Approve, and sees the step and the task complete; the skipped rejection
// notice shows as skipped with its reason.
func TestBrowserApproveCallbackStep(t *testing.T) {
	t.Parallel()
	bin := chromium(t)
	s := startStack(t, stackOptions{})
	id := startApproval(t, s, "")

	c := openCDP(t, bin, s.url+"/#/tasks/"+id+"/steps/manager_approval")
	c.waitFor("the decision form", `document.querySelector('#decision button[data-action="approve"]')`, 20*time.Second)
	c.waitFor("the waiting callback node",
		`document.querySelector('g.node.st-waiting[data-kind="callback"][data-step="manager_approval"][data-state="waiting"]')`, 5*time.Second)
	c.waitFor("the callback expiry in the steps table",
		`document.querySelector('tr[data-step="manager_approval"] .wait-note')?.textContent.includes('callback expires')`, 5*time.Second)
	c.waitFor("the Reject button", `document.querySelector('#decision button[data-action="reject"]')`, time.Second)

	c.eval(`window.scrollTo(0, document.querySelector('.step-card').getBoundingClientRect().top + window.scrollY - 64), true`, nil)
	shot := filepath.Join(t.TempDir(), "approval.png")
	c.screenshot(shot)
	img := checkPNG(t, shot)
	if n := countColour(img, graph.StyleOf("waiting").Fill, 4); n < 300 {
		t.Errorf("screenshot has %d pixels of the waiting fill; the waiting badge is not drawn", n)
	}
	copyFile(t, shot, filepath.Join(os.TempDir(), "tasker-webui", "approval.png"))
	if os.Getenv("UPDATE_SCREENSHOT") == "1" {
		copyFile(t, shot, filepath.Join("..", "..", "docs", "img", "approval.png")) // docs/control-flow.md
	}

	c.typeInto("#decision-comment", "approved in the browser")

	c.click(`#decision button[data-action="approve"]`)

	c.waitFor("the task complete", `document.querySelector('#task-status[data-status="complete"]')`, 30*time.Second)
	c.waitFor("the approval node complete", `document.querySelector('g.node[data-step="manager_approval"][data-state="complete"]')`, 10*time.Second)
	c.waitFor("the form gone", `!document.querySelector('#decision')`, 5*time.Second)
	c.waitFor("the skipped step with its reason",
		`document.querySelector('tr[data-step="notify_rejection"] [data-status="skipped"]') && document.querySelector('tr[data-step="notify_rejection"] .skip-note')`, 5*time.Second)

	_, st := s.call(t, "GET", "/v1/tasks/"+id+"/steps/manager_approval", nil)
	res, _ := st["result"].(map[string]any)
	if st["status"] != "complete" || res["approved"] != true || res["comment"] != "approved in the browser" {
		t.Errorf("manager_approval = %v, result %v", st["status"], st["result"])
	}
	for _, line := range c.console {
		if strings.Contains(line, "exceptionThrown") || strings.Contains(line, `"type":"error"`) {
			t.Errorf("browser console: %s", line)
		}
	}
}

// With auth on, the form is offered only to a token that grants
// steps:complete; Reject completes the step with approved: false.
func TestBrowserDecisionNeedsPermission(t *testing.T) {
	t.Parallel()
	bin := chromium(t)
	secret := bytes.Repeat([]byte("k"), 32)
	v, err := auth.New(context.Background(), auth.Config{HS256Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	s := startStack(t, stackOptions{auth: v})
	token := func(scope string) string {
		tok, err := auth.SignHS256(secret, map[string]any{"sub": "manager", "scope": scope, "exp": time.Now().Add(time.Hour).Unix()})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	reader := token("tasks:read tasks:list steps:read templates:read system:read")
	manager := token("tasks:* steps:* templates:read system:read")
	id := startApproval(t, s, manager)
	page := s.url + "/#/tasks/" + id + "/steps/manager_approval"

	c := openCDP(t, bin, s.url+"/")
	c.eval(`localStorage.setItem('tasker.token', `+jsonString(reader)+`), true`, nil)
	c.navigate(page)
	c.waitFor("the step page", `document.querySelector('.step-card[data-step="manager_approval"] [data-status="waiting"]')`, 20*time.Second)
	var offered bool
	c.eval(`Boolean(document.querySelector('#decision') || document.querySelector('.decide-link'))`, &offered)
	if offered {
		t.Error("the decision form is offered to a token without steps:complete")
	}

	c.eval(`localStorage.setItem('tasker.token', `+jsonString(manager)+`), true`, nil)
	c.navigate(s.url + "/#/tasks/" + id)
	c.waitFor("the decide link", `document.querySelector('tr[data-step="manager_approval"] .decide-link')`, 20*time.Second)
	c.click(`tr[data-step="manager_approval"] .decide-link`)
	c.waitFor("the decision form", `document.querySelector('#decision button[data-action="reject"]')`, 20*time.Second)
	c.click(`#decision button[data-action="reject"]`)
	c.waitFor("the task complete", `document.querySelector('#task-status[data-status="complete"]')`, 30*time.Second)

	_, task := s.callAs(t, manager, "GET", "/v1/tasks/"+id, nil)
	got := map[string]any{}
	for _, x := range task["steps"].([]any) {
		st := x.(map[string]any)
		got[st["name"].(string)] = st["status"]
		if st["name"] == "manager_approval" {
			if res, _ := st["result"].(map[string]any); res["approved"] != false {
				t.Errorf("manager_approval result = %v, want approved: false", st["result"])
			}
		}
	}
	if got["process_gateway_refund"] != "skipped" || got["notify_rejection"] != "complete" {
		t.Errorf("after Reject: %v", got)
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
