package devserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/taskerhq/tasker/internal/devserver"
	"github.com/taskerhq/tasker/internal/examples"
	"github.com/taskerhq/tasker/internal/pgtest"
	"github.com/taskerhq/tasker/sdk"
	"github.com/taskerhq/tasker/templates"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func start(t *testing.T) *devserver.Server {
	t.Helper()
	reg := sdk.NewRegistry()
	if err := examples.Register(reg); err != nil {
		t.Fatal(err)
	}
	srv, err := devserver.Start(context.Background(), devserver.Options{
		DatabaseURL: pgtest.URL(t), Templates: templates.FS, Registry: reg, SweepInterval: 200 * time.Millisecond,
	})
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

func call(t *testing.T, h http.Handler, method, path string, body any) (int, map[string]any) {
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
	req := httptest.NewRequest(method, path, rd)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("%s %s: %d %s", method, path, rec.Code, rec.Body)
	}
	return rec.Code, out
}

func waitDone(t *testing.T, h http.Handler, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		_, task := call(t, h, "GET", "/v1/tasks/"+id, nil)
		switch task["status"] {
		case "complete", "error", "cancelled", "resolved_manually":
			return task
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("task %s did not finish", id)
	return nil
}

// Every shipped example workflow runs to completion in local mode with its
// example context, through the API, the local queue and the local invoker.
func TestShippedWorkflowsComplete(t *testing.T) {
	t.Parallel()
	srv := start(t)
	tests := []struct{ ns, name, file string }{
		{"ecommerce", "process_order", "order.json"},
		{"onboarding", "customer", "onboarding.json"},
		{"data", "etl_pipeline", "etl.json"},
		{"data", "file_batch", "files.json"},
		{"data", "nightly_export", "files.json"},
		{"payments", "process_refund", "refund.json"},
	}
	for _, tc := range tests {
		t.Run(tc.ns+"/"+tc.name, func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile(filepath.Join("..", "..", "examples", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			code, task := call(t, srv.Handler, "POST", "/v1/tasks", map[string]any{
				"namespace": tc.ns, "name": tc.name, "context": json.RawMessage(raw),
			})
			if code != http.StatusCreated {
				t.Fatalf("create: %d %v", code, task)
			}
			done := waitDone(t, srv.Handler, task["id"].(string))
			if done["status"] != "complete" {
				var b bytes.Buffer
				for _, s := range done["steps"].([]any) {
					st := s.(map[string]any)
					fmt.Fprintf(&b, "\n  %s: %s %v", st["name"], st["status"], st["last_error"])
				}
				t.Fatalf("task ended %s:%s", done["status"], b.String())
			}
		})
	}
}

// A step failing retryably is retried with backoff and the task completes.
func TestRetriedStepCompletes(t *testing.T) {
	t.Parallel()
	srv := start(t)
	raw, err := os.ReadFile(filepath.Join("..", "..", "examples", "order.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ctx map[string]any
	if err := json.Unmarshal(raw, &ctx); err != nil {
		t.Fatal(err)
	}
	ctx["simulate_payment_failures"] = 1
	code, task := call(t, srv.Handler, "POST", "/v1/tasks", map[string]any{"namespace": "ecommerce", "name": "process_order", "context": ctx})
	if code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, task)
	}
	done := waitDone(t, srv.Handler, task["id"].(string))
	if done["status"] != "complete" {
		t.Fatalf("status %v", done["status"])
	}
	_, step := call(t, srv.Handler, "GET", fmt.Sprintf("/v1/tasks/%s/steps/process_payment", task["id"]), nil)
	if step["attempts"].(float64) != 2 {
		t.Fatalf("process_payment attempts = %v, want 2", step["attempts"])
	}
}
