package main

import (
	"encoding/json"
	"testing"

	"github.com/taskerhq/tasker/internal/pgtest"
	"github.com/taskerhq/tasker/internal/wire"
)

// Bulk actions from the CLI: a dry run counts, no confirmation without
// --yes, then the selection is cancelled in batches.
func TestBulkCancelCLI(t *testing.T) {
	t.Parallel()
	base := startAPI(t, nil)
	var ids []string
	for range 3 {
		r := tasker(t, base, "run", "payments/process_refund", "--context", failingRefund, "--watch", "--json")
		r.want(t, 1, nil, nil)
		var task wire.Task
		if err := json.Unmarshal([]byte(r.stdout), &task); err != nil || task.Status != "error" {
			t.Fatalf("run: %v %s", err, r.stdout)
		}
		ids = append(ids, task.ID)
	}
	tasker(t, base, "tasks", "--correlation-id", "nope").want(t, 0, []string{"no tasks"}, nil)
	tasker(t, base, "retry", "--all", "--name", "process_refund", "--dry-run").
		want(t, 0, []string{"3 tasks match (name process_refund); nothing changed"}, nil)
	// No --yes and no "yes" typed (stdin is /dev/null or a pipe here): nothing changes.
	if r := tasker(t, base, "cancel", "--all", "--status", "error", "--name", "process_refund"); r.code == 0 {
		t.Fatalf("cancel --all without confirmation: %+v", r)
	}
	tasker(t, base, "cancel", "--all", "--status", "error", "--dry-run").want(t, 0, []string{"3 tasks match"}, nil)
	tasker(t, base, "cancel", ids[0], "--status", "error").want(t, 2, nil, []string{"go with --all"})
	tasker(t, base, "cancel", "--all", "--status", "error", "--name", "process_refund", "--yes", "--reason", "cleanup").
		want(t, 0, []string{"3 tasks cancelled, 0 skipped"}, nil)
	for _, id := range ids {
		tasker(t, base, "show", id).want(t, 0, []string{"cancelled"}, nil)
	}
	tasker(t, base, "cancel", "--all", "--status", "sleeping", "--yes").want(t, 1, nil, []string{"sleeping"})
}

func TestPruneCLI(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	tasker(t, "", "migrate", "--database-url", url).want(t, 0, nil, nil)
	tasker(t, "", "prune", "--older-than", "90d", "--dry-run", "--database-url", url).
		want(t, 0, []string{"0 tasks finished before", "nothing changed (--dry-run)"}, nil)
	tasker(t, "", "prune", "--older-than", "1h", "--database-url", url, "--export", t.TempDir()).
		want(t, 0, []string{"0 tasks finished before"}, nil)
	for _, bad := range [][]string{{"prune"}, {"prune", "--older-than", "0d"}, {"prune", "--older-than", "soon"},
		{"prune", "--older-than", "3d", "--batch", "0"}, {"prune", "--older-than", "3d", "--export", "s3://"}} {
		tasker(t, "", bad...).want(t, 2, nil, []string{"tasker prune:"})
	}
}
