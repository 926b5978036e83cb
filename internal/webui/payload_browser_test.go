package webui_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// A task whose context is stored out of line and can no longer be read
// still opens: the page shows the stored reference and the API's
// context_error above it, where the API used to answer 500.
func TestBrowserUnreadableContext(t *testing.T) {
	t.Parallel()
	bin := chromium(t)
	s := startStack(t, stackOptions{})
	pad := strings.Repeat("x", 300<<10) // over the inline threshold: stored out of line
	code, task := s.call(t, "POST", "/v1/tasks", map[string]any{"namespace": "data", "name": "file_batch",
		"context": map[string]any{"bucket": "tasker-data-exports", "prefix": "exports/x/", "file_count": 0, "pad": pad}})
	if code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, task)
	}
	id := task["id"].(string)
	tag, err := s.srv.Pool.Exec(context.Background(),
		`UPDATE tasker_tasks SET context = jsonb_set(context, '{tasker_ref,sha256}', to_jsonb(repeat('0', 64)))
		  WHERE id = $1 AND context ? 'tasker_ref'`, uuid.MustParse(id))
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("corrupt the context reference: %v, %d rows", err, tag.RowsAffected())
	}
	c := openCDP(t, bin, s.url+"/#/tasks/"+id)
	c.waitFor("the context error", `(document.querySelector('.context-error') || {}).textContent ===
	  'the context stored out of line at pg:tasks/`+id+`/context cannot be read: the stored value does not match its reference\'s size and sha256'`,
		20*time.Second)
	var shown string
	c.eval(`document.querySelector('#task-status').dataset.status`, &shown)
	if shown == "" {
		t.Error("the task's status is not shown")
	}
}
