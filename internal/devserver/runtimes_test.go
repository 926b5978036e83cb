package devserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/taskerhq/tasker/internal/devserver"
	"github.com/taskerhq/tasker/internal/invoke/lambdalocal"
	"github.com/taskerhq/tasker/internal/pgtest"
	"github.com/taskerhq/tasker/sdk"
)

// requireInterpreters fails, never skips: python3 and node are part of the
// machine the tests run on (docs/handlers.md).
func requireInterpreters(t *testing.T) {
	t.Helper()
	for _, c := range []string{"python3", "node"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Fatalf("%s is not on PATH: the Python and Node.js handler tests need python3 (3.11+) and node (20+) installed", c)
		}
	}
}

func startWith(t *testing.T, opts devserver.Options) *devserver.Server {
	t.Helper()
	opts.DatabaseURL = pgtest.URL(t)
	if opts.Registry == nil {
		opts.Registry = sdk.NewRegistry()
	}
	opts.SweepInterval = 200 * time.Millisecond
	srv, err := devserver.Start(context.Background(), opts)
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
	return srv
}

func stepOf(t *testing.T, h http.Handler, task, step string) map[string]any {
	t.Helper()
	code, s := call(t, h, "GET", fmt.Sprintf("/v1/tasks/%s/steps/%s", task, step), nil)
	if code != http.StatusOK {
		t.Fatalf("step %s: %d %v", step, code, s)
	}
	return s
}

// The shipped Python and Node.js example (examples/handlers) runs under
// tasker dev, each handler called as Lambda calls it.
func TestPythonAndNodeExampleUnderDev(t *testing.T) {
	t.Parallel()
	requireInterpreters(t)
	dir := filepath.Join("..", "..", "examples", "handlers")
	fns, err := lambdalocal.LoadFile(filepath.Join(dir, lambdalocal.File))
	if err != nil {
		t.Fatal(err)
	}
	srv := startWith(t, devserver.Options{Templates: os.DirFS(filepath.Join(dir, "templates")), Lambdas: lambdalocal.New(fns)})
	raw, err := os.ReadFile(filepath.Join(dir, "order.json"))
	if err != nil {
		t.Fatal(err)
	}
	code, task := call(t, srv.Handler, "POST", "/v1/tasks", map[string]any{"namespace": "examples", "name": "order_pricing", "context": json.RawMessage(raw)})
	if code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, task)
	}
	id := task["id"].(string)
	if done := waitDone(t, srv.Handler, id); done["status"] != "complete" {
		t.Fatalf("task ended %v: %v", done["status"], done["steps"])
	}
	price := stepOf(t, srv.Handler, id, "price_order")["result"].(map[string]any)
	if price["total"] != "52.18" || price["priced_by"] != "tasker-example-pricing" || price["had_time_left"] != true || len(price["request_id"].(string)) != 36 {
		t.Fatalf("price_order result = %v", price)
	}
	confirm := stepOf(t, srv.Handler, id, "confirm_order")["result"].(map[string]any)
	if confirm["total"] != "52.18" || confirm["confirmation"] != "ORD-7-1" || confirm["confirmed_by"] != "tasker-example-confirm" || confirm["had_time_left"] != true {
		t.Fatalf("confirm_order result = %v", confirm)
	}
	notify := stepOf(t, srv.Handler, id, "notify_customer")["result"].(map[string]any)
	if notify["notified"] != "ada@example.com" || notify["confirmation"] != "ORD-7-1" {
		t.Fatalf("notify_customer result = %v", notify)
	}
}

// Crashes, timeouts, exceptions, non-JSON and oversized results of a
// Python or Node.js handler fail their step as on AWS (docs/handlers.md,
// "Failures").
func TestLambdaFailuresUnderDev(t *testing.T) {
	t.Parallel()
	requireInterpreters(t)
	base, err := filepath.Abs(filepath.Join("..", "invoke", "lambdalocal", "testdata"))
	if err != nil {
		t.Fatal(err)
	}
	fns, err := lambdalocal.Parse("lambdas.local.yaml", []byte(`
py-raises: {runtime: python3.11, path: python, handler: cases.raises}
py-crashes: {runtime: python3.11, path: python, handler: cases.crashes}
py-sleeps: {runtime: python3.11, path: python, handler: cases.sleeps, timeout: 1}
py-not-json: {runtime: python3.11, path: python, handler: cases.not_json}
py-over-limit: {runtime: python3.11, path: python, handler: cases.over_result_limit}
py-handled: {runtime: python3.11, path: python, handler: cases.handled}
node-huge: {runtime: nodejs20.x, path: node, handler: cases.huge}
node-raises: {runtime: nodejs20.x, path: node, handler: cases.raises}
`), base)
	if err != nil {
		t.Fatal(err)
	}
	tpl := "namespace: t\nname: failures\nsteps:\n"
	steps := map[string]string{
		"raises": "py-raises", "crashes": "py-crashes", "sleeps": "py-sleeps", "not_json": "py-not-json",
		"over_limit": "py-over-limit", "handled": "py-handled", "huge": "node-huge", "node_raises": "node-raises", "unmapped": "nowhere",
	}
	for s, fn := range steps {
		tpl += fmt.Sprintf("  - {name: %s, handler: 'lambda:%s', retry: {max_attempts: 1}}\n", s, fn)
	}
	srv := startWith(t, devserver.Options{Templates: fstest.MapFS{"f.yaml": {Data: []byte(tpl)}}, Lambdas: lambdalocal.New(fns)})
	code, task := call(t, srv.Handler, "POST", "/v1/tasks", map[string]any{"namespace": "t", "name": "failures"})
	if code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, task)
	}
	id := task["id"].(string)
	if done := waitDone(t, srv.Handler, id); done["status"] != "error" {
		t.Fatalf("task ended %v", done["status"])
	}
	want := map[string]struct {
		code, msg string
		permanent bool
	}{
		"raises":      {"unhandled", "PaymentDeclined: card declined", false},
		"node_raises": {"unhandled", "PaymentDeclined: card declined", false},
		"crashes":     {"unhandled", "Runtime.ExitError: RequestId: ", false},
		"sleeps":      {"unhandled", "Sandbox.Timedout: ", false},
		"not_json":    {"unhandled", "Runtime.MarshalError: Unable to marshal response", false},
		"huge":        {"unhandled", "Function.ResponseSizeTooLarge: ", false},
		"over_limit":  {"result_too_large", "over the", true},
		"handled":     {"out_of_stock", "no stock", true},
		"unmapped":    {"not_runnable_locally", "lambdas.local.yaml", true},
	}
	for s, w := range want {
		step := stepOf(t, srv.Handler, id, s)
		le, _ := step["last_error"].(map[string]any)
		if step["status"] != "error" || le["code"] != w.code || !strings.Contains(fmt.Sprint(le["message"]), w.msg) {
			t.Errorf("step %s: %v %v, want error %s containing %q", s, step["status"], le, w.code, w.msg)
		}
		if p, _ := le["permanent"].(bool); p != w.permanent {
			t.Errorf("step %s: permanent %v, want %v", s, p, w.permanent)
		}
	}
}
