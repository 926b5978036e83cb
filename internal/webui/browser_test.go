package webui_test

// Browser tests: a real local Tasker (devserver, real Postgres) behind
// webui.Mount, read by headless Chromium. Chromium is a test dependency
// like PostgreSQL: scripts/install-test-deps installs it; the tests fail
// (never skip) without it.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/taskerhq/tasker/internal/auth"
	"github.com/taskerhq/tasker/internal/devserver"
	"github.com/taskerhq/tasker/internal/examples"
	"github.com/taskerhq/tasker/internal/graph"
	"github.com/taskerhq/tasker/internal/pgtest"
	"github.com/taskerhq/tasker/internal/webui"
	"github.com/taskerhq/tasker/sdk"
	"github.com/taskerhq/tasker/templates"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// EnvChromium names a Chromium binary to use instead of the one on PATH.
const EnvChromium = "TASKER_CHROMIUM"

// orderSteps are the steps of ecommerce/process_order.
var orderSteps = []string{"validate_order", "process_payment", "fraud_check", "update_inventory", "create_shipment", "send_confirmation"}

func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(EnvChromium); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf("headless Chromium is not installed: run scripts/install-test-deps (as root; it apt-installs chromium) "+
		"or set %s to a Chromium/Chrome binary", EnvChromium)
	return ""
}

// browse loads url in headless Chromium with a fresh profile and returns
// what it printed on stdout. Virtual time lets the page's scripts and
// fetches settle before the DOM is dumped or the screenshot taken.
func browse(t *testing.T, bin, url string, extra ...string) []byte {
	t.Helper()
	return browseFor(t, bin, url, 5*time.Second, extra...)
}

// browseFor is browse with a virtual time budget: how long the page may
// run (timers fire at once; time stands still while fetches are pending).
func browseFor(t *testing.T, bin, url string, budget time.Duration, extra ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars", "--force-color-profile=srgb", "--enable-logging=stderr", "--v=0",
		"--user-data-dir=" + t.TempDir(), fmt.Sprintf("--virtual-time-budget=%d", budget.Milliseconds()),
		"--window-size=1280,900",
	}, extra...)
	args = append(args, url)
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\nstderr:\n%s", extra, err, tail(stderr.String(), 4000))
	}
	// The page's console (--enable-logging): a CSP or Trusted Types
	// violation, an uncaught exception or a failed load (but for the 401
	// that asks for a token) is a defect.
	for _, line := range strings.Split(stderr.String(), "\n") {
		if !strings.Contains(line, ":CONSOLE") {
			continue
		}
		if consoleDefect.MatchString(line) && !strings.Contains(line, "status of 401") {
			t.Errorf("browser console: %s", line)
		}
	}
	return stdout.Bytes()
}

var consoleDefect = regexp.MustCompile(`(?i)uncaught|refused|content security policy|trusted ?(html|types|script)|failed to load|error`)

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// stack is a local Tasker with the web view mounted, on 127.0.0.1.
type stack struct {
	url string
	srv *devserver.Server
}

// stackOptions vary the stack: templates and handlers, auth, and a
// middleware in front of the mounted handler.
type stackOptions struct {
	templates fs.FS
	registry  *sdk.Registry
	auth      *auth.Verifier
	wrap      func(http.Handler) http.Handler
}

func startStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	if o.registry == nil {
		o.registry = sdk.NewRegistry()
		if err := examples.Register(o.registry); err != nil {
			t.Fatal(err)
		}
	}
	if o.templates == nil {
		o.templates = templates.FS
	}
	// The browser talks to this test server, not to the devserver's own
	// listener, so its address must be one the API answers for.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := devserver.Start(context.Background(), devserver.Options{
		DatabaseURL: pgtest.URL(t), Templates: o.templates, Registry: o.registry, Addr: "127.0.0.1:0",
		Auth: o.auth, SweepInterval: 200 * time.Millisecond, AllowedHosts: []string{ln.Addr().String()},
	})
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	h := webui.Mount(srv.Handler)
	if o.wrap != nil {
		h = o.wrap(h)
	}
	hs := httptest.NewUnstartedServer(h)
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	t.Cleanup(func() {
		hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return &stack{url: hs.URL, srv: srv}
}

func (s *stack) call(t *testing.T, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
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

// createOrder starts ecommerce/process_order with the shipped example
// context and waits until it has finished.
func (s *stack) createOrder(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "examples", "order.json"))
	if err != nil {
		t.Fatal(err)
	}
	code, task := s.call(t, "POST", "/v1/tasks", map[string]any{
		"namespace": "ecommerce", "name": "process_order", "context": json.RawMessage(raw), "initiator": "browser-test",
	})
	if code != http.StatusCreated {
		t.Fatalf("create task: %d %v", code, task)
	}
	id := task["id"].(string)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, task = s.call(t, "GET", "/v1/tasks/"+id, nil)
		if task["status"] == "complete" {
			return id
		}
		if st := task["status"]; st != "pending" && st != "in_progress" {
			t.Fatalf("task ended %v: %v", st, task["steps"])
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s did not complete: %v", id, task["status"])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The task page of a finished order shows it complete, with its DAG drawn
// as SVG, every step a node coloured "complete", and a screenshot that
// really shows those colours.
func TestBrowserTaskView(t *testing.T) {
	t.Parallel()
	bin := chromium(t)
	s := startStack(t, stackOptions{})
	id := s.createOrder(t)
	page := s.url + "/#/tasks/" + id

	dom := string(browse(t, bin, page, "--dump-dom"))
	mustContain(t, dom,
		`id="task-status" data-status="complete"`, // the task header
		`<svg class="dag"`,                        // the DAG, drawn client-side
		`class="legend"`,                          // the state legend
		id,                                        // the task id in the facts
	)
	for _, step := range orderSteps {
		node := regexp.MustCompile(`<g class="node st-complete"[^>]* data-step="` + step + `" data-state="complete">`)
		if !node.MatchString(dom) {
			t.Errorf("no complete graph node for %s", step)
		}
		if !strings.Contains(dom, `<text class="name"`) || !regexp.MustCompile(`<text class="name"[^>]*>`+step+`</text>`).MatchString(dom) {
			t.Errorf("graph shows no label %s", step)
		}
		row := regexp.MustCompile(`<tr data-step="` + step + `">.*?</tr>`).FindString(dom)
		if !strings.Contains(row, `data-status="complete"`) {
			t.Errorf("steps table row of %s is not complete: %s", step, row)
		}
	}
	if strings.Contains(dom, `id="auth"`) || strings.Contains(dom, "error-card") {
		t.Errorf("page shows an error or the token box:\n%s", tail(dom, 3000))
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", tail(dom, 6000))
	}

	shot := filepath.Join(t.TempDir(), "task-view.png")
	browse(t, bin, page, "--screenshot="+shot)
	img := checkPNG(t, shot)
	// The DAG's nodes are filled with the "complete" colour.
	if n := countColour(img, graph.StyleOf("complete").Fill, 6); n < 5000 {
		t.Errorf("screenshot has %d pixels of the complete fill %s; the DAG is not drawn", n, graph.StyleOf("complete").Fill)
	}
	keep := filepath.Join(os.TempDir(), "tasker-webui", "task-view.png")
	copyFile(t, shot, keep)
	t.Logf("screenshot: %s", keep)
	if os.Getenv("UPDATE_SCREENSHOT") == "1" {
		doc := filepath.Join("..", "..", "docs", "img", "task-view.png")
		copyFile(t, shot, doc)
		t.Logf("updated %s", doc)
	}
}

// The step page shows the step's attempts, result and transitions.
func TestBrowserStepView(t *testing.T) {
	t.Parallel()
	bin := chromium(t)
	s := startStack(t, stackOptions{})
	id := s.createOrder(t)
	dom := string(browse(t, bin, s.url+"/#/tasks/"+id+"/steps/process_payment", "--dump-dom"))
	mustContain(t, dom,
		`class="card step-card" data-step="process_payment"`,
		`<g class="node st-complete selected"`, // the step is highlighted in the graph
		`<pre class="json result">`,            // its result
		"Transitions", "Attempts",
		`ecommerce.process_payment`,
	)
	// Transitions: pending → in_progress → complete, attempt 1.
	for _, want := range []string{`data-status="pending"`, `data-status="in_progress"`, `data-status="complete"`} {
		if strings.Count(dom, want) < 1 {
			t.Errorf("no %s in the transitions", want)
		}
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", tail(dom, 6000))
	}
}

// The task list shows the task with its status, the counts by status, and
// filters; the template list draws every shipped workflow's graph; a
// template page shows its levels and steps.
func TestBrowserListsAndTemplates(t *testing.T) {
	t.Parallel()
	bin := chromium(t)
	s := startStack(t, stackOptions{})
	id := s.createOrder(t)

	dom := string(browse(t, bin, s.url+"/#/tasks?namespace=ecommerce&status=complete", "--dump-dom"))
	mustContain(t, dom, `<tr data-task="`+id+`">`, `data-count="complete"`, `data-count="all"`,
		`<form class="filters"`, `<option value="complete" selected="">`)
	if !regexp.MustCompile(`data-count="complete"><span[^>]*></span><span>complete</span><strong>1</strong>`).MatchString(dom) {
		t.Errorf("counts do not show 1 complete task:\n%s", tail(dom, 4000))
	}
	dom = string(browse(t, bin, s.url+"/#/tasks?status=error", "--dump-dom"))
	mustContain(t, dom, "No tasks match these filters.")

	dom = string(browse(t, bin, s.url+"/#/templates", "--dump-dom"))
	for _, tpl := range []string{"ecommerce/process_order", "onboarding/customer", "data/etl_pipeline", "payments/process_refund",
		"payments/refund_with_approval", "travel/book_trip", "media/transcode"} {
		card := regexp.MustCompile(`(?s)<article class="card template-card" data-template="` + tpl + `">.*?</article>`).FindString(dom)
		if !strings.Contains(card, `<svg class="dag"`) || !strings.Contains(card, `class="node st-none"`) {
			t.Errorf("template %s has no graph: %s", tpl, tail(card, 2000))
		}
	}

	// A callback step has the callback look in its template's graph.
	if card := regexp.MustCompile(`(?s)<article class="card template-card" data-template="payments/refund_with_approval">.*?</article>`).FindString(dom); !strings.Contains(card, `data-kind="callback" data-step="manager_approval"`) {
		t.Errorf("the approval template's graph has no callback node: %s", tail(card, 2000))
	}

	dom = string(browse(t, bin, s.url+"/#/templates/ecommerce/process_order", "--dump-dom"))
	mustContain(t, dom, `<ol class="levels"`, "in parallel", `<tr data-step="fraud_check">`, `<svg class="dag"`,
		`data-step="send_confirmation" data-state=""`, "Start a task",
		// Analytics of the last 24 hours: the order created above.
		"Last 24 hours", `<svg class="chart"`, `<tr data-analytics="fraud_check"`, "slowest path")
}

// gatedTemplate's middle step runs until the test opens the gate.
const gatedTemplate = `
namespace: webui
name: gated
version: 1.0.0
description: A workflow whose middle step waits for the test
steps:
  - name: start
    handler: tasker.noop
  - name: gate
    handler: webui.gate
    depends_on: [start]
  - name: finish
    handler: tasker.noop
    depends_on: [gate]
`

// A live task's page refreshes until the task finishes, then stops: the
// page is loaded while a step is running, the step is let go after the
// page has polled twice, and the page ends showing the task complete
// without having asked again once it saw it finished.
func TestBrowserAutoRefresh(t *testing.T) {
	t.Parallel()
	bin := chromium(t)
	gate := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(gate) }) }
	reg := sdk.NewRegistry()
	if err := reg.Register("webui.gate", func(ctx context.Context, _ sdk.Input) (any, error) {
		select {
		case <-gate:
			return map[string]any{"opened": true}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}); err != nil {
		t.Fatal(err)
	}

	// Count the page's polls of the task and what they answered; slow each
	// down so the page's virtual time spans real time.
	var (
		mu                        sync.Mutex
		taskPath                  string
		polls, afterDone, running int
		done                      bool
	)
	wrap := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			p := taskPath
			mu.Unlock()
			if r.Method != "GET" || r.URL.Path != p {
				next.ServeHTTP(w, r)
				return
			}
			time.Sleep(200 * time.Millisecond)
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			var task struct{ Status string }
			_ = json.Unmarshal(rec.Body.Bytes(), &task)
			mu.Lock()
			polls++
			if done {
				afterDone++
			}
			switch task.Status {
			case "complete":
				done = true
			case "in_progress":
				running++
				if running == 2 {
					open()
				}
			}
			mu.Unlock()
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
		})
	}
	s := startStack(t, stackOptions{
		templates: fstest.MapFS{"gated.yaml": {Data: []byte(gatedTemplate)}}, registry: reg, wrap: wrap,
	})
	t.Cleanup(open) // runs before the stack's cleanup: a failed test must not leave the step hanging
	code, task := s.call(t, "POST", "/v1/tasks", map[string]any{"namespace": "webui", "name": "gated", "context": map[string]any{}})
	if code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, task)
	}
	id := task["id"].(string)
	// Wait until the gate step runs.
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, st := s.call(t, "GET", "/v1/tasks/"+id+"/steps/gate", nil)
		if st["status"] == "in_progress" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gate step never started: %v", st["status"])
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	taskPath = "/v1/tasks/" + id
	mu.Unlock()

	dom := string(browseFor(t, bin, s.url+"/#/tasks/"+id, 60*time.Second, "--dump-dom"))
	mu.Lock()
	defer mu.Unlock()
	t.Logf("polls: %d (%d while running), after the task finished: %d", polls, running, afterDone)
	if running < 2 || !done {
		t.Errorf("the page polled %d times while running and saw the task done: %v; want ≥ 2 and true", running, done)
	}
	if afterDone != 0 {
		t.Errorf("the page polled %d times after it saw the task complete; want 0", afterDone)
	}
	mustContain(t, dom, `id="task-status" data-status="complete"`, `data-live="false"`,
		`data-step="gate" data-state="complete"`, `data-step="finish" data-state="complete"`)
}

// With auth on, the page asks for a bearer token instead of failing.
func TestBrowserAsksForToken(t *testing.T) {
	t.Parallel()
	bin := chromium(t)
	v, err := auth.New(context.Background(), auth.Config{HS256Secret: bytes.Repeat([]byte("k"), 32)})
	if err != nil {
		t.Fatal(err)
	}
	s := startStack(t, stackOptions{auth: v})
	dom := string(browse(t, bin, s.url+"/#/tasks", "--dump-dom"))
	mustContain(t, dom, `id="auth"`, `<form class="token-form"`, `type="password"`, "Sign in with an API token")
}

func mustContain(t *testing.T, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Errorf("page lacks %q", w)
		}
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", tail(s, 6000))
	}
}

// checkPNG decodes a screenshot and checks it is a real picture: the
// window's size and far more than one colour.
func checkPNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	b := img.Bounds()
	if b.Dx() < 1000 || b.Dy() < 700 {
		t.Fatalf("screenshot is %dx%d, want about 1280x900", b.Dx(), b.Dy())
	}
	colours := map[[3]uint32]bool{}
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
		}
	}
	if len(colours) < 50 {
		t.Fatalf("screenshot has %d colours; it is (nearly) blank", len(colours))
	}
	return img
}

// countColour counts pixels within tol of the #rrggbb colour hex.
func countColour(img image.Image, hex string, tol int) int {
	var want [3]int
	if _, err := fmt.Sscanf(hex, "#%02x%02x%02x", &want[0], &want[1], &want[2]); err != nil {
		panic(err)
	}
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			got := [3]int{int(r >> 8), int(g >> 8), int(bl >> 8)}
			ok := true
			for i := range got {
				if d := got[i] - want[i]; d > tol || d < -tol {
					ok = false
				}
			}
			if ok {
				n++
			}
		}
	}
	return n
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// The schedules page lists each schedule with its next fire times, and its
// Pause button pauses it through the API.
func TestBrowserSchedules(t *testing.T) {
	t.Parallel()
	bin := chromium(t)
	s := startStack(t, stackOptions{templates: fstest.MapFS{"nightly.yaml": {Data: []byte(`
namespace: webui
name: nightly
steps:
  - {name: run, handler: tasker.noop}
schedules:
  - {cron: "0 2 * * *", timezone: Europe/Berlin}
  - {rate: "1 day", catch_up: none}
`)}}})
	code, list := s.call(t, "GET", "/v1/schedules", nil)
	if code != http.StatusOK {
		t.Fatalf("list: %d %v", code, list)
	}
	first := list["schedules"].([]any)[1].(map[string]any)
	if code, _ := s.call(t, "POST", fmt.Sprintf("/v1/schedules/%v/pause", first["id"]), map[string]any{}); code != http.StatusOK {
		t.Fatalf("pause: %d", code)
	}
	dom := string(browse(t, bin, s.url+"/#/schedules", "--dump-dom"))
	mustContain(t, dom, "cron(0 2 * * *) Europe/Berlin", "rate(24h0m0s)", `data-paused="true"`, `data-paused="false"`,
		">Resume</button>", ">Pause</button>", `href="#/templates/webui/nightly"`)
	if t.Failed() {
		t.Logf("DOM:\n%s", tail(dom, 6000))
	}
	// The template page shows the same schedules with their state and next
	// fire times (GET /v1/templates/{namespace}/{name}).
	dom = string(browse(t, bin, s.url+"/#/templates/webui/nightly", "--dump-dom"))
	mustContain(t, dom, `<tr data-schedule="0">`, "<code>0 2 * * *</code>", "Europe/Berlin", `<tr data-schedule="1">`,
		"every <code>24h0m0s</code>", `<td class="schedule-state">active</td>`, `<td class="schedule-state">paused</td>`, "<time datetime=")
	if t.Failed() {
		t.Logf("template page DOM:\n%s", tail(dom, 6000))
	}
}
