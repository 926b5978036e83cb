package api_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/taskerhq/tasker/internal/api"
	"github.com/taskerhq/tasker/internal/auth"
	"github.com/taskerhq/tasker/internal/contract"
)

func failFetch(p contract.Payload) (any, *contract.HandlerError) {
	if p.Tasker.Step == "fetch" {
		return nil, &contract.HandlerError{Message: "no", Permanent: true}
	}
	return succeed(p)
}

func TestBulkActions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	var flaky []string
	for range 3 {
		flaky = append(flaky, e.createTask(map[string]any{"namespace": "shop", "name": "flaky", "tags": []string{"team:x"}}, ""))
	}
	order := e.createTask(orderBody(nil), "")
	e.drain(failFetch)

	var res api.BulkResult
	// A dry run counts and changes nothing.
	r := e.post("/v1/tasks/bulk/retry", map[string]any{"filter": map[string]any{"name": "flaky"}, "dry_run": true}, "")
	wantStatus(t, r, http.StatusOK)
	r.decode(t, &res)
	if !res.DryRun || res.Matched != 3 || res.Changed != 0 || res.Batches != 0 {
		t.Fatalf("dry run = %+v", res)
	}
	var task api.Task
	e.get("/v1/tasks/"+flaky[0], "").decode(t, &task)
	if task.Status != "error" {
		t.Fatalf("dry run changed the task: %s", task.Status)
	}

	// Retry every task in error tagged team:x (the order task is not in error).
	r = e.post("/v1/tasks/bulk/retry", map[string]any{"filter": map[string]any{"tag": "team:x"}, "reason": "fixed upstream"}, "")
	wantStatus(t, r, http.StatusOK)
	r.decode(t, &res)
	if res.DryRun || res.Matched != 3 || res.Changed != 3 || res.Skipped != 0 || res.Batches != 1 || res.NextCursor != nil {
		t.Fatalf("retry = %+v", res)
	}
	e.drain(failFetch)

	// Cancel them two at a time: the cursor continues the selection.
	body := map[string]any{"filter": map[string]any{"status": []string{"error"}, "name": "flaky"}, "max_tasks": 2}
	r = e.post("/v1/tasks/bulk/cancel", body, "")
	wantStatus(t, r, http.StatusOK)
	r.decode(t, &res)
	if res.Changed != 2 || res.NextCursor == nil {
		t.Fatalf("first cancel = %+v", res)
	}
	body["cursor"] = *res.NextCursor
	r = e.post("/v1/tasks/bulk/cancel", body, "")
	wantStatus(t, r, http.StatusOK)
	r.decode(t, &res)
	if res.Changed != 1 || res.NextCursor != nil {
		t.Fatalf("second cancel = %+v", res)
	}
	for _, id := range flaky {
		e.get("/v1/tasks/"+id, "").decode(t, &task)
		if task.Status != "cancelled" {
			t.Fatalf("task %s is %s", id, task.Status)
		}
	}
	e.get("/v1/tasks/"+order, "").decode(t, &task)
	if task.Status != "complete" {
		t.Fatalf("unselected task is %s", task.Status)
	}

	// The whole audit of one: task and step rows interleaved, paged.
	var all []api.TaskTransition
	cursor := ""
	for range 50 {
		path := "/v1/tasks/" + flaky[0] + "/transitions?limit=3"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		var page api.TaskTransitionList
		r := e.get(path, "")
		wantStatus(t, r, http.StatusOK)
		r.decode(t, &page)
		all = append(all, page.Transitions...)
		if page.NextCursor == nil {
			break
		}
		cursor = *page.NextCursor
	}
	steps, tasks := 0, 0
	for i, tr := range all {
		if i > 0 && tr.Seq <= all[i-1].Seq {
			t.Fatalf("out of order: %+v", all)
		}
		if tr.Step == "" {
			tasks++
		} else {
			steps++
		}
	}
	last := all[len(all)-1]
	if tasks < 4 || steps < 4 || last.Step != "" || last.To != "cancelled" || last.Actor != "api" {
		t.Fatalf("audit (%d task, %d step rows) ends with %+v", tasks, steps, last)
	}
	wantStatus(t, e.get("/v1/tasks/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/transitions", ""), http.StatusNotFound)
	wantProblem(t, e.get("/v1/tasks/"+flaky[0]+"/transitions?cursor=nope", ""), http.StatusBadRequest, "invalid-parameter")
}

func TestBulkBadRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	id := e.createTask(orderBody(nil), "")
	for _, tc := range []struct {
		name    string
		body    any
		pointer string
	}{
		{"no filter", map[string]any{}, "/filter"},
		{"unknown filter", map[string]any{"filter": map[string]any{"colour": "red"}}, "/filter/colour"},
		{"bad status", map[string]any{"filter": map[string]any{"status": "sleeping"}}, "/filter/status"},
		{"bad time", map[string]any{"filter": map[string]any{"created_from": "yesterday"}}, "/filter/created_from"},
		{"max_tasks", map[string]any{"filter": map[string]any{}, "max_tasks": 0}, "/max_tasks"},
		{"dry_run", map[string]any{"filter": map[string]any{}, "dry_run": "yes"}, "/dry_run"},
		{"cursor", map[string]any{"filter": map[string]any{}, "cursor": "zz"}, "/cursor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := wantProblem(t, e.post("/v1/tasks/bulk/cancel", tc.body, ""), http.StatusUnprocessableEntity, "validation")
			wantPointers(t, p, tc.pointer)
		})
	}
	var task api.Task
	e.get("/v1/tasks/"+id, "").decode(t, &task)
	if task.Status == "cancelled" {
		t.Fatal("a refused bulk request changed a task")
	}
}

func TestListSearchFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.createTask(orderBody(map[string]any{"tags": []string{"env:prod", "team:x"}}), "")
	e.clock.Advance(time.Second)
	b := e.createTask(orderBody(map[string]any{"tags": []string{"env:prod"}}), "")
	list := func(q string) []string {
		t.Helper()
		var l api.TaskList
		r := e.get("/v1/tasks?"+q, "")
		wantStatus(t, r, http.StatusOK)
		r.decode(t, &l)
		var ids []string
		for _, t := range l.Tasks {
			ids = append(ids, t.ID)
		}
		return ids
	}
	if got := list("tag=env:prod"); len(got) != 2 || got[0] != b || got[1] != a {
		t.Fatalf("tag=env:prod: %v", got)
	}
	if got := list("tag=env:prod&tag=team:x"); len(got) != 1 || got[0] != a {
		t.Fatalf("two tags: %v", got)
	}
	var task api.Task
	e.get("/v1/tasks/"+a, "").decode(t, &task)
	if got := list("correlation_id=" + url.QueryEscape(task.CorrelationID)); len(got) != 1 || got[0] != a {
		t.Fatalf("correlation id: %v", got)
	}
	from := url.QueryEscape(task.CreatedAt)
	if got := list("created_to=" + from); len(got) != 0 {
		t.Fatalf("created_to: %v", got)
	}
	if got := list("updated_from=" + from + "&limit=1"); len(got) != 1 || got[0] != b {
		t.Fatalf("updated_from: %v", got)
	}
	for _, q := range []string{"tag=", "created_from=soon", "created_from=2026-01-02T00:00:00Z&created_to=2026-01-01T00:00:00Z", "correlation_id="} {
		wantProblem(t, e.get("/v1/tasks?"+q, ""), http.StatusBadRequest, "invalid-parameter")
	}
}

func TestBulkPermissions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{auth: true})
	reader := e.token("bob", auth.TasksRead, auth.TasksList)
	canceller := e.token("carol", auth.TasksCancel)
	body := map[string]any{"filter": map[string]any{}, "dry_run": true}
	wantProblem(t, e.post("/v1/tasks/bulk/cancel", body, reader), http.StatusForbidden, "forbidden")
	wantProblem(t, e.post("/v1/tasks/bulk/retry", body, canceller), http.StatusForbidden, "forbidden")
	wantStatus(t, e.post("/v1/tasks/bulk/cancel", body, canceller), http.StatusOK)
	wantStatus(t, e.get("/v1/tasks/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/transitions", reader), http.StatusNotFound)
}
