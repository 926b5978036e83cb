package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/taskerhq/tasker/internal/wire"
)

// tasker show --instances lists a map step's instances in index order,
// paging through GET /v1/tasks/{id}/steps/{step}/instances.
func TestShowInstances(t *testing.T) {
	t.Parallel()
	base := startAPI(t, nil)
	r := tasker(t, base, "run", "data/file_batch", "--context", "@../../examples/files.json", "--watch", "--json")
	r.want(t, 0, nil, nil)
	var task wire.Task
	if err := json.Unmarshal([]byte(r.stdout), &task); err != nil || task.Status != "complete" {
		t.Fatalf("run: %v %.300s", err, r.stdout)
	}
	r = tasker(t, base, "show", task.ID, "--instances", "convert", "--limit", "5")
	r.want(t, 0, []string{"INDEX", "INSTANCE", "0  ", "convert[0]", "convert[4]", "complete", "1/3", "more instances after these; raise --limit (now 5)"}, nil)
	if strings.Contains(r.stdout, "convert[5]") {
		t.Errorf("--limit 5 listed more:\n%s", r.stdout)
	}
	r = tasker(t, base, "show", task.ID, "--instances", "convert", "--json")
	r.want(t, 0, nil, nil)
	var l wire.MapInstanceList
	if err := json.Unmarshal([]byte(r.stdout), &l); err != nil || len(l.Instances) != 12 || l.Instances[11].Index != 11 || l.NextCursor != nil {
		t.Errorf("--json: %v %.300s", err, r.stdout)
	}
	tasker(t, base, "show", task.ID, "--instances", "convert", "--state", "error").want(t, 0, []string{"no instances in state error"}, nil)
	tasker(t, base, "show", task.ID, "--instances", "list_files").want(t, 1, nil, []string{`step "list_files" of task`, "is not a map step"})
	tasker(t, base, "show", task.ID, "--state", "error").want(t, 2, nil, []string{"go with --instances STEP"})
	tasker(t, base, "show", task.ID, "--instances", "convert", "--state", "done").want(t, 1, nil, []string{`state "done" is not a step state`})
}
