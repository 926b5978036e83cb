package devserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/devserver"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/invoke/lambdalocal"
	"github.com/taskerhq/tasker/sdk"
)

// shimTemplates: python → node → python, each step reading the large
// context and its parent's large result and returning a large result; and
// a gate (Go) before one step of each runtime, so a test can corrupt the
// stored context's reference before they run.
var shimTemplates = fstest.MapFS{
	"big.yaml": {Data: []byte(`namespace: shims
name: big
steps:
  - {name: py_first, handler: 'lambda:py-big', retry: {max_attempts: 1}}
  - {name: node_second, handler: 'lambda:node-big', depends_on: [py_first], retry: {max_attempts: 1}}
  - {name: py_third, handler: 'lambda:py-big', depends_on: [node_second], retry: {max_attempts: 1}}
`)},
	"corrupt.yaml": {Data: []byte(`namespace: shims
name: corrupt
steps:
  - {name: gate, handler: shims.gate, timeout_seconds: 300}
  - {name: py_ctx, handler: 'lambda:py-big', depends_on: [gate], retry: {max_attempts: 3}}
  - {name: node_ctx, handler: 'lambda:node-big', depends_on: [gate], retry: {max_attempts: 3}}
`)},
}

// startShims starts tasker dev with large payloads on (bound address, so
// the blob URLs work) and the Python and Node.js test handlers; the gate
// handler closes entered when it runs (its context resolved) and returns
// once release is closed.
func startShims(t *testing.T, entered chan<- struct{}, release <-chan struct{}) *devserver.Server {
	t.Helper()
	requireInterpreters(t)
	base, err := filepath.Abs(filepath.Join("..", "invoke", "lambdalocal", "testdata"))
	if err != nil {
		t.Fatal(err)
	}
	fns, err := lambdalocal.Parse("lambdas.local.yaml", []byte(`
py-big: {runtime: python3.11, path: python, handler: cases.big}
node-big: {runtime: nodejs20.x, path: node, handler: cases.big}
`), base)
	if err != nil {
		t.Fatal(err)
	}
	reg := sdk.NewRegistry()
	var once sync.Once
	if err := reg.Register("shims.gate", func(ctx context.Context, _ sdk.Input) (any, error) {
		if entered != nil {
			once.Do(func() { close(entered) })
		}
		select {
		case <-release:
			return "open", nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}); err != nil {
		t.Fatal(err)
	}
	return startWith(t, devserver.Options{Templates: shimTemplates, Lambdas: lambdalocal.New(fns), Registry: reg,
		Addr: "127.0.0.1:0", Workers: 4,
		Payload: engine.PayloadLimits{InlineBytes: engine.DefaultPayloadInlineBytes, MaxBytes: 4 << 20}})
}

// A context of over 1 MiB reaches a Python and a Node.js handler resolved
// by their shims, and their results of over 1 MiB are uploaded by the
// shims and reach the next handler and the API whole, while the rows hold
// references (docs/handlers.md, "Large payloads").
func TestShimsLargePayloadsRoundTrip(t *testing.T) {
	t.Parallel()
	srv := startShims(t, nil, nil)
	const n = 1<<20 + 300<<10
	tag := "ünïcode ✓" // multi-byte UTF-8: sizes and digests are of the bytes
	body, _ := json.Marshal(map[string]any{"namespace": "shims", "name": "big",
		"context": map[string]any{"blob": strings.Repeat("c", n), "size": n, "tag": tag}})
	code, out := post(t, srv, "/v1/tasks", body)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %.500s", code, out)
	}
	var created struct{ ID string }
	if err := json.Unmarshal(out, &created); err != nil {
		t.Fatal(err)
	}
	if task := waitFinished(t, srv, created.ID); task["status"] != "complete" {
		for _, s := range task["steps"].([]any) {
			st := s.(map[string]any)
			t.Errorf("step %v: %v %v", st["name"], st["status"], st["last_error"])
		}
		t.Fatalf("task ended %v", task["status"])
	}
	for _, c := range []struct{ step, by, letter, parents string }{
		{"py_first", "python", "p", "[]"},
		{"node_second", "node", "n", "[py_first]"},
		{"py_third", "python", "p", "[node_second]"},
	} {
		r, _ := get(t, srv, "/v1/tasks/"+created.ID+"/steps/"+c.step)["result"].(map[string]any)
		blob, _ := r["blob"].(string)
		if len(blob) != n || strings.Trim(blob, c.letter) != "" || r["tag"] != tag || r["by"] != c.by || fmt.Sprint(r["parents"]) != c.parents {
			t.Errorf("step %s: result of %d bytes, tag %v, by %v, parents %v", c.step, len(blob), r["tag"], r["by"], r["parents"])
		}
		var stored string
		if err := srv.Pool.QueryRow(context.Background(), "SELECT result::text FROM tasker_steps WHERE task_id = $1 AND name = $2",
			uuid.MustParse(created.ID), c.step).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if len(stored) > 512 || !strings.Contains(stored, `"tasker_ref"`) {
			t.Errorf("step %s: stored result %.200s, want the shim's reference", c.step, stored)
		}
	}
}

// A reference whose sha256 does not match the stored bytes fails the
// Python and the Node.js step permanently with payload_ref_invalid, after
// one attempt, and the handlers never run.
func TestShimsCorruptReference(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}), make(chan struct{})
	srv := startShims(t, entered, release)
	const n = 300 << 10 // over the inline threshold: stored out of line
	body, _ := json.Marshal(map[string]any{"namespace": "shims", "name": "corrupt",
		"context": map[string]any{"blob": strings.Repeat("c", n), "size": n, "tag": "t"}})
	code, out := post(t, srv, "/v1/tasks", body)
	if code != http.StatusCreated {
		close(release)
		t.Fatalf("create: %d %.500s", code, out)
	}
	var created struct{ ID string }
	if err := json.Unmarshal(out, &created); err != nil {
		close(release)
		t.Fatal(err)
	}
	// Corrupt the reference only once the gate runs: the gate's own
	// payload carries the context too, and must resolve.
	select {
	case <-entered:
	case <-time.After(120 * time.Second):
		close(release)
		t.Fatal("the gate step never ran")
	}
	tag, err := srv.Pool.Exec(context.Background(),
		`UPDATE tasker_tasks SET context = jsonb_set(context, '{tasker_ref,sha256}', to_jsonb(repeat('0', 64)))
		  WHERE id = $1 AND context ? 'tasker_ref'`, uuid.MustParse(created.ID))
	close(release)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("corrupt the context reference: %v, %d rows (want the context stored as a reference)", err, tag.RowsAffected())
	}
	// Only the steps are read: a task read resolves the (corrupted)
	// context.
	for _, step := range []string{"py_ctx", "node_ctx"} {
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			s := get(t, srv, "/v1/tasks/"+created.ID+"/steps/"+step)
			if s["status"] == "error" {
				break
			}
			if time.Now().After(deadline) {
				gate := get(t, srv, "/v1/tasks/"+created.ID+"/steps/gate")
				t.Fatalf("step %s: %v %v (skip reason %v), never error; gate %v %v", step, s["status"], s["last_error"],
					s["skip_reason"], gate["status"], gate["last_error"])
			}
		}
	}
	for _, step := range []string{"py_ctx", "node_ctx"} {
		s := get(t, srv, "/v1/tasks/"+created.ID+"/steps/"+step)
		le, _ := s["last_error"].(map[string]any)
		if s["status"] != "error" || le["code"] != "payload_ref_invalid" || le["permanent"] != true ||
			!strings.Contains(fmt.Sprint(le["message"]), "does not match the sha256 of its reference") {
			t.Errorf("step %s: %v, last error %v; want a permanent payload_ref_invalid naming the sha256", step, s["status"], le)
		}
		if a, _ := s["attempts"].(float64); a != 1 {
			t.Errorf("step %s: %v attempts, want 1 (permanent)", step, s["attempts"])
		}
	}
}
