package webui_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/taskerhq/tasker/sdk"
)

// A ready step held back by its concurrency key says so on the task page
// and on the step page (docs/control-flow.md, "Flow control").
func TestBrowserHeldStep(t *testing.T) {
	t.Parallel()
	bin := chromium(t)
	gate := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(gate) }) }
	reg := sdk.NewRegistry()
	if err := reg.Register("webui.hold", func(ctx context.Context, _ sdk.Input) (any, error) {
		select {
		case <-gate:
			return map[string]any{}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}); err != nil {
		t.Fatal(err)
	}
	s := startStack(t, stackOptions{registry: reg, templates: fstest.MapFS{"keyed.yaml": {Data: []byte(`
namespace: webui
name: keyed
steps:
  - name: work
    handler: webui.hold
    concurrency: {limit: 1, key: "${context.customer}"}
`)}}})
	t.Cleanup(open) // before the stack's cleanup: the held handler must not outlive the test
	start := func() string {
		t.Helper()
		code, task := s.call(t, "POST", "/v1/tasks", map[string]any{"namespace": "webui", "name": "keyed",
			"context": map[string]any{"customer": "acme"}})
		if code != http.StatusCreated {
			t.Fatalf("create: %d %v", code, task)
		}
		return task["id"].(string)
	}
	waitStep := func(id string, ok func(map[string]any) bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, st := s.call(t, "GET", "/v1/tasks/"+id+"/steps/work", nil)
			if ok(st) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("step work of %s: %v", id, st)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	first := start()
	waitStep(first, func(st map[string]any) bool { return st["status"] == "in_progress" })
	second := start()
	waitStep(second, func(st map[string]any) bool { r, _ := st["blocked_reason"].(string); return r != "" })

	dom := string(browse(t, bin, s.url+"/#/tasks/"+second, "--dump-dom"))
	mustContain(t, dom, `data-step="work" data-state="pending"`, "held: concurrency limit 1 for key acme")
	dom = string(browse(t, bin, s.url+"/#/tasks/"+second+"/steps/work", "--dump-dom"))
	mustContain(t, dom, "Held back", "concurrency limit 1 for key acme")
	if t.Failed() {
		t.Logf("DOM:\n%s", tail(dom, 6000))
	}
}
