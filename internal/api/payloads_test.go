package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// A task or step whose large value cannot be read stays readable: the
// value is its stored reference and context_error or result_error names
// the reference and what went wrong (docs/architecture.md, "Large
// payloads"), where a 500 used to hide it.
func TestUnreadableLargeValues(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{blobInline: 1024})
	pad := strings.Repeat("p", 4000)
	id := e.createTask(orderBody(map[string]any{"context": map[string]any{
		"payment_info": map[string]any{"amount": 12.5}, "pad": pad}}), "")
	tid := uuid.MustParse(id)
	ctx := context.Background()
	var stored string
	if err := e.pool.QueryRow(ctx, `SELECT context::text FROM tasker_tasks WHERE id = $1`, tid).Scan(&stored); err != nil ||
		!strings.Contains(stored, `"tasker_ref"`) {
		t.Fatalf("the context is stored as %.200s, %v; want a reference", stored, err)
	}
	uri := "pg:tasks/" + id + "/context"

	task := e.get("/v1/tasks/"+id, "").json(t)
	if c, _ := task["context"].(map[string]any); c["pad"] != pad || task["context_error"] != nil {
		t.Fatalf("a readable context: %.200v, context_error %v", task["context"], task["context_error"])
	}

	// Its bytes no longer match the reference.
	if _, err := e.pool.Exec(ctx, `UPDATE tasker_tasks SET context = jsonb_set(context, '{tasker_ref,sha256}', to_jsonb(repeat('0', 64)))
	                               WHERE id = $1`, tid); err != nil {
		t.Fatal(err)
	}
	r := e.get("/v1/tasks/"+id, "")
	wantStatus(t, r, http.StatusOK)
	task = r.json(t)
	ref, _ := task["context"].(map[string]any)["tasker_ref"].(map[string]any)
	if ref["uri"] != uri || task["context_error"] != "the context stored out of line at "+uri+
		" cannot be read: the stored value does not match its reference's size and sha256" {
		t.Errorf("a corrupted context: context %v, context_error %q", task["context"], task["context_error"])
	}
	if steps, _ := task["steps"].([]any); len(steps) != 4 {
		t.Errorf("the task's steps are still shown: %v", task["steps"])
	}
	// ?fields=context brings the error with it; other fields do not.
	if task := e.get("/v1/tasks/"+id+"?fields=context", "").json(t); task["context_error"] == nil {
		t.Errorf("fields=context: %v", task)
	}
	if task := e.get("/v1/tasks/"+id+"?fields=status", "").json(t); task["context_error"] != nil || task["context"] != nil {
		t.Errorf("fields=status: %v", task)
	}

	// The value is gone (expired).
	if _, err := e.pool.Exec(ctx, `DELETE FROM tasker_blobs WHERE key = $1`, "tasks/"+id+"/context"); err != nil {
		t.Fatal(err)
	}
	task = e.get("/v1/tasks/"+id, "").json(t)
	if task["context_error"] != "the context was stored out of line at "+uri+" and is no longer there (expired or deleted)" {
		t.Errorf("an expired context: context_error %q", task["context_error"])
	}

	// A step's result, in the task and on the step route alike.
	resURI := "pg:tasks/" + id + "/steps/x/1/result"
	if _, err := e.pool.Exec(ctx, `UPDATE tasker_steps SET state = 'complete', attempts = 1,
	        result = jsonb_build_object('tasker_ref', jsonb_build_object('uri', $2::text, 'size', 5000, 'sha256', repeat('1', 64)))
	        WHERE task_id = $1 AND name = 'validate'`, tid, resURI); err != nil {
		t.Fatal(err)
	}
	want := "the result of step validate was stored out of line at " + resURI + " and is no longer there (expired or deleted)"
	task = e.get("/v1/tasks/"+id, "").json(t)
	if st := task["steps"].([]any)[0].(map[string]any); st["name"] != "validate" || st["result_error"] != want {
		t.Errorf("the task's step: %v", st)
	}
	st := e.get("/v1/tasks/"+id+"/steps/validate", "").json(t)
	if st["result_error"] != want || st["result"].(map[string]any)["tasker_ref"] == nil {
		t.Errorf("the step route: result %v, result_error %q", st["result"], st["result_error"])
	}
	if st := e.get("/v1/tasks/"+id+"/steps/validate?fields=status", "").json(t); st["result_error"] != nil {
		t.Errorf("fields=status: %v", st)
	}
}
