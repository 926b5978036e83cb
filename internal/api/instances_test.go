package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/taskerhq/tasker/internal/apiclient"
	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/wire"
)

const batchYAML = `
namespace: shop
name: batch
version: 1.0.0
steps:
  - name: each
    handler: tasker.noop
    retry: {max_attempts: 1}
    map: {over: context.items, max_concurrency: 50, tolerated_failures: 100}
  - {name: after, handler: tasker.noop, depends_on: [each]}
`

// A map step's instances page in index order through
// GET /v1/tasks/{id}/steps/{step}/instances, filtered by state, with large
// results left out (docs/control-flow.md, "Map").
func TestMapInstancesRoute(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{templates: []string{batchYAML}})
	const n = 120
	items := make([]int, n)
	for i := range items {
		items[i] = i
	}
	body := map[string]any{"namespace": "shop", "name": "batch", "context": map[string]any{"items": items}}
	id := e.createTask(body, "")
	e.drain(func(p contract.Payload) (any, *contract.HandlerError) {
		var m struct{ Index int }
		_ = json.Unmarshal(p.Map, &m)
		switch {
		case p.Tasker.Step == "after":
			return map[string]any{"done": true}, nil
		case m.Index%10 == 3:
			return nil, &contract.HandlerError{Message: fmt.Sprintf("item %d is broken", m.Index), Permanent: true}
		case m.Index == 5:
			return map[string]any{"blob": strings.Repeat("b", 5000)}, nil
		}
		return map[string]any{"n": m.Index}, nil
	})
	base := "/v1/tasks/" + id + "/steps/each/instances"
	page := func(q url.Values) wire.MapInstanceList {
		t.Helper()
		r := e.get(base+"?"+q.Encode(), "")
		wantStatus(t, r, http.StatusOK)
		var l wire.MapInstanceList
		r.decode(t, &l)
		return l
	}

	// Every page in order, each instance once.
	var all []wire.MapInstance
	q := url.Values{"limit": {"50"}}
	for pages := 1; ; pages++ {
		l := page(q)
		all = append(all, l.Instances...)
		if l.NextCursor == nil {
			if pages != 3 {
				t.Errorf("%d pages of 50, want 3", pages)
			}
			break
		}
		q.Set("cursor", *l.NextCursor)
	}
	if len(all) != n {
		t.Fatalf("%d instances listed, want %d", len(all), n)
	}
	for i, v := range all {
		wantStatus := "complete"
		if i%10 == 3 {
			wantStatus = "error"
		}
		if v.Index != i || v.Name != fmt.Sprintf("each[%d]", i) || v.Status != wantStatus || v.Attempts != 1 || v.MaxAttempts != 1 ||
			v.StartedAt == nil || v.CompletedAt == nil {
			t.Fatalf("instance %d: %+v", i, v)
		}
	}
	if string(all[7].Result) != `{"n":7}` || all[7].ResultOmitted {
		t.Errorf("instance 7 result %s omitted %v", all[7].Result, all[7].ResultOmitted)
	}
	if string(all[5].Result) != "null" || !all[5].ResultOmitted {
		t.Errorf("instance 5 (a 5 kB result): result %.40s omitted %v, want it left out", all[5].Result, all[5].ResultOmitted)
	}
	if !strings.Contains(string(all[13].LastError), "item 13 is broken") {
		t.Errorf("instance 13 last error %s", all[13].LastError)
	}
	// The left-out result is read with the instance's own route.
	r := e.get("/v1/tasks/"+id+"/steps/"+url.PathEscape("each[5]"), "")
	wantStatus(t, r, http.StatusOK)
	if res, _ := r.json(t)["result"].(map[string]any); len(fmt.Sprint(res["blob"])) != 5000 {
		t.Errorf("instance 5 read alone: %.100s", r.body)
	}

	// A state filter.
	l := page(url.Values{"state": {"error"}, "limit": {"5"}})
	var got []int
	for _, v := range l.Instances {
		got = append(got, v.Index)
	}
	if fmt.Sprint(got) != "[3 13 23 33 43]" || l.NextCursor == nil {
		t.Errorf("failed instances %v, next %v", got, l.NextCursor)
	}
	l = page(url.Values{"state": {"error"}, "limit": {"500"}, "cursor": {*l.NextCursor}})
	if len(l.Instances) != 7 || l.Instances[0].Index != 53 || l.NextCursor != nil {
		t.Errorf("the rest of the failed instances: %d from %v, next %v", len(l.Instances), l.Instances[0].Index, l.NextCursor)
	}
	if l := page(url.Values{"state": {"in_progress"}}); len(l.Instances) != 0 || l.NextCursor != nil {
		t.Errorf("in progress: %+v", l)
	}

	// The API client walks the same pages.
	srv := httptest.NewServer(e.h)
	defer srv.Close()
	c, err := apiclient.New(srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	var failed []int
	for cursor := ""; ; {
		l, _, err := c.MapInstances(t.Context(), id, "each", "error", cursor, 4)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range l.Instances {
			failed = append(failed, v.Index)
		}
		if l.NextCursor == nil {
			break
		}
		cursor = *l.NextCursor
	}
	if fmt.Sprint(failed) != "[3 13 23 33 43 53 63 73 83 93 103 113]" {
		t.Errorf("the client's walk of failed instances: %v", failed)
	}
	if _, _, err := c.MapInstances(t.Context(), id, "after", "", "", 0); err == nil || !strings.Contains(err.Error(), "is not a map step") {
		t.Errorf("the client on a step that is no map: %v", err)
	}

	// A map step that has not run lists nothing.
	pending := e.createTask(body, "") // never drained
	r = e.get("/v1/tasks/"+pending+"/steps/each/instances", "")
	wantStatus(t, r, http.StatusOK)
	if string(r.body) != "{\"instances\":[],\"next_cursor\":null}\n" {
		t.Errorf("a map step that has not run: %s", r.body)
	}

	for _, c := range []struct {
		name, path string
		code       int
		typ, has   string
	}{
		{"a step that is no map", "/v1/tasks/" + id + "/steps/after/instances", 404, "not-found", `step "after" of task ` + id + " is not a map step"},
		{"an unknown step", "/v1/tasks/" + id + "/steps/nope/instances", 404, "not-found", `has no step "nope"`},
		{"an unknown task", "/v1/tasks/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/steps/each/instances", 404, "not-found", "no task"},
		{"an instance's instances", "/v1/tasks/" + id + "/steps/each%5B1%5D/instances", 400, "invalid-parameter", "step name"},
		{"an unknown state", base + "?state=done", 400, "invalid-parameter", `state "done" is not a step state; one of pending`},
		{"limit 0", base + "?limit=0", 400, "invalid-parameter", "limit must be an integer from 1 to 500"},
		{"limit 501", base + "?limit=501", 400, "invalid-parameter", "limit must be an integer from 1 to 500"},
		{"a forged cursor", base + "?cursor=NTA", 400, "invalid-parameter", "the cursor is not one this route returned"},
		{"an unknown parameter", base + "?status=error", 400, "invalid-parameter", `unknown query parameter "status"`},
	} {
		p := wantProblem(t, e.get(c.path, ""), c.code, c.typ)
		if !strings.Contains(p.Detail, c.has) {
			t.Errorf("%s: detail %q, want %q in it", c.name, p.Detail, c.has)
		}
	}
}
