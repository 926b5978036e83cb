package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskerhq/tasker/internal/api"
	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/engine"
)

func TestTaskLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})

	r := e.do(req{method: "POST", path: "/v1/tasks", body: orderBody(map[string]any{
		"initiator": "alice", "source_system": "web", "reason": "checkout", "tags": []string{"vip", "eu"},
	}), header: map[string]string{"X-Correlation-ID": "corr-123"}})
	wantStatus(t, r, http.StatusCreated)
	var task api.Task
	r.decode(t, &task)
	if r.header.Get("Location") != "/v1/tasks/"+task.ID || r.header.Get(api.HeaderCorrelationID) != "corr-123" {
		t.Fatalf("headers = %v", r.header)
	}
	if task.Status != "pending" || task.CorrelationID != "corr-123" || task.Initiator != "alice" || task.SourceSystem != "web" ||
		task.Reason != "checkout" || strings.Join(task.Tags, ",") != "vip,eu" || task.IdempotencyKey != nil ||
		task.Version != "1.0.0" || len(task.Steps) != 4 || task.CompletedAt != nil {
		t.Fatalf("created task = %+v", task)
	}
	if !strings.HasSuffix(task.CreatedAt, "Z") {
		t.Fatalf("created_at %q is not UTC", task.CreatedAt)
	}
	if s := task.Steps[3]; s.Name != "ship" || strings.Join(s.DependsOn, ",") != "charge,reserve" || s.Status != "pending" ||
		s.Result != nil && string(s.Result) != "null" {
		t.Fatalf("ship = %+v", s)
	}

	e.drain(succeed)

	r = e.get("/v1/tasks/"+task.ID, "")
	wantStatus(t, r, http.StatusOK)
	r.decode(t, &task)
	if task.Status != "complete" || task.CompletedAt == nil {
		t.Fatalf("task = %+v", task)
	}
	for _, s := range task.Steps {
		if s.Status != "complete" || s.Attempts != 1 || s.StartedAt == nil || s.CompletedAt == nil ||
			!strings.Contains(string(s.Result), `"step":"`+s.Name+`"`) && !strings.Contains(string(s.Result), `"step": "`+s.Name+`"`) {
			t.Fatalf("step = %+v (result %s)", s, s.Result)
		}
	}

	r = e.get("/v1/tasks/"+task.ID+"/steps/charge", "")
	wantStatus(t, r, http.StatusOK)
	var sd api.StepDetail
	r.decode(t, &sd)
	if sd.Name != "charge" || sd.Status != "complete" || len(sd.Transitions) < 2 {
		t.Fatalf("step detail = %+v", sd)
	}
	last := sd.Transitions[len(sd.Transitions)-1]
	if last.To != "complete" || last.From == nil || *last.From != "in_progress" || last.Attempt == nil || *last.Attempt != 1 {
		t.Fatalf("last transition = %+v", last)
	}

	// Cancelling a finished task is a conflict, and so is retrying it.
	p := wantProblem(t, e.post("/v1/tasks/"+task.ID+"/cancel", nil, ""), http.StatusConflict, "conflict")
	if !strings.Contains(p.Detail, "complete") {
		t.Fatalf("detail = %q", p.Detail)
	}
	wantProblem(t, e.post("/v1/tasks/"+task.ID+"/retry", nil, ""), http.StatusConflict, "conflict")
	wantProblem(t, e.post("/v1/tasks/"+task.ID+"/steps/charge/resolve", nil, ""), http.StatusConflict, "conflict")
}

func TestCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	id := e.createTask(orderBody(nil), "")
	r := e.post("/v1/tasks/"+id+"/cancel", map[string]any{"reason": "customer changed their mind"}, "")
	wantStatus(t, r, http.StatusOK)
	var task api.Task
	r.decode(t, &task)
	if task.Status != "cancelled" || task.CompletedAt == nil {
		t.Fatalf("task = %+v", task)
	}
	for _, s := range task.Steps {
		if s.Status != "cancelled" {
			t.Fatalf("step %s is %s", s.Name, s.Status)
		}
	}
	r = e.get("/v1/tasks/"+id+"/steps/validate", "")
	var sd api.StepDetail
	r.decode(t, &sd)
	if tr := sd.Transitions[len(sd.Transitions)-1]; tr.To != "cancelled" || tr.Reason != "customer changed their mind" || tr.Actor != "api" {
		t.Fatalf("transition = %+v", tr)
	}
	wantProblem(t, e.post("/v1/tasks/"+id+"/cancel", "", ""), http.StatusConflict, "conflict")
}

func TestRetryAndResolve(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	fail := func(p contract.Payload) (any, *contract.HandlerError) {
		if p.Tasker.Step == "fetch" {
			return nil, &contract.HandlerError{Message: "upstream said no", Permanent: true, Code: "E42"}
		}
		return succeed(p)
	}
	id := e.createTask(map[string]any{"namespace": "shop", "name": "flaky"}, "")
	e.drain(fail)

	var task api.Task
	e.get("/v1/tasks/"+id, "").decode(t, &task)
	if task.Status != "error" || task.Steps[0].Status != "error" || task.Steps[1].Status != "skipped" ||
		task.Steps[1].SkipReason == nil || *task.Steps[1].SkipReason != "trigger rule all_success cannot hold: parent fetch failed" {
		t.Fatalf("task = %+v", task)
	}
	var le map[string]any
	if err := json.Unmarshal(task.Steps[0].LastError, &le); err != nil || le["message"] != "upstream said no" || le["code"] != "E42" {
		t.Fatalf("last_error = %s", task.Steps[0].LastError)
	}
	// Resolving a step that is not in error is a conflict.
	p := wantProblem(t, e.post("/v1/tasks/"+id+"/steps/after/resolve", nil, ""), http.StatusConflict, "conflict")
	if !strings.Contains(p.Detail, "skipped") {
		t.Fatalf("detail = %q", p.Detail)
	}

	// Retry: the failed step runs again (and fails again).
	r := e.post("/v1/tasks/"+id+"/retry", map[string]any{"reason": "upstream fixed"}, "")
	wantStatus(t, r, http.StatusOK)
	r.decode(t, &task)
	if task.Status != "in_progress" || task.Steps[0].Status != "pending" {
		t.Fatalf("after retry = %+v", task)
	}
	e.drain(fail)
	e.get("/v1/tasks/"+id, "").decode(t, &task)
	if task.Status != "error" || task.Steps[0].Attempts != 2 {
		t.Fatalf("after second failure = %+v", task)
	}

	// Resolve with a result: the dependent runs and the task finishes.
	r = e.post("/v1/tasks/"+id+"/steps/fetch/resolve", map[string]any{"result": map[string]any{"manual": true}, "reason": "fetched by hand"}, "")
	wantStatus(t, r, http.StatusOK)
	var sd api.StepDetail
	r.decode(t, &sd)
	if sd.Status != "resolved_manually" || string(sd.Result) != `{"manual":true}` {
		t.Fatalf("resolved step = %+v result %s", sd, sd.Result)
	}
	if tr := sd.Transitions[len(sd.Transitions)-1]; tr.To != "resolved_manually" || tr.Reason != "fetched by hand" {
		t.Fatalf("transition = %+v", tr)
	}
	e.drain(succeed)
	e.get("/v1/tasks/"+id, "").decode(t, &task)
	if task.Steps[1].Status != "complete" || (task.Status != "complete" && task.Status != "resolved_manually") {
		t.Fatalf("final = %+v", task)
	}
	wantProblem(t, e.post("/v1/tasks/"+id+"/steps/fetch/resolve", nil, ""), http.StatusConflict, "conflict")
}

func TestGraph(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	id := e.createTask(orderBody(nil), "")
	e.drain(func(p contract.Payload) (any, *contract.HandlerError) {
		if p.Tasker.Step == "reserve" {
			return nil, &contract.HandlerError{Message: "out of stock", Permanent: true}
		}
		return succeed(p)
	})

	tests := []struct {
		format, ctype string
		want          []string
	}{
		{"", "application/json", []string{`"id":"validate","state":"complete","level":0,"attempts":1`, `{"from":"charge","to":"ship"}`,
			`"id":"ship","state":"skipped","level":2`}},
		{"json", "application/json", []string{`"id":"reserve","state":"error","level":1`}},
		{"mermaid", "text/plain; charset=utf-8", []string{"flowchart LR", "classDef error fill:#fee2e2", "s0 --> s1", "class s2 error", `s3["ship<br/>skipped · 0/3"]`}},
		{"dot", "text/plain; charset=utf-8", []string{"digraph ", `"reserve" [label="reserve\nerror · 1/3", fillcolor="#fee2e2"`, `"validate" -> "charge";`, `{ rank=same; "charge"; "reserve"; }`}},
		{"svg", "image/svg+xml", []string{`<svg xmlns="http://www.w3.org/2000/svg"`, `data-step="reserve" data-state="error"`, "#fee2e2", "waiting for retry", "</svg>"}},
	}
	for _, tc := range tests {
		t.Run("format="+tc.format, func(t *testing.T) {
			path := "/v1/tasks/" + id + "/graph"
			if tc.format != "" {
				path += "?format=" + tc.format
			}
			r := e.get(path, "")
			wantStatus(t, r, http.StatusOK)
			if ct := r.header.Get("Content-Type"); ct != tc.ctype {
				t.Fatalf("Content-Type = %q, want %q", ct, tc.ctype)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(r.body), w) {
					t.Errorf("body lacks %q:\n%s", w, r.body)
				}
			}
			if tc.format == "svg" && (strings.Contains(string(r.body), "href") || strings.Contains(string(r.body), "<script")) {
				t.Errorf("svg is not self-contained:\n%s", r.body)
			}
		})
	}
	wantProblem(t, e.get("/v1/tasks/"+id+"/graph?format=png", ""), http.StatusBadRequest, "invalid-parameter")
	wantProblem(t, e.get("/v1/tasks/01900000-0000-7000-8000-000000000000/graph", ""), http.StatusNotFound, "not-found")
}

func TestIdempotentCreate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	body := orderBody(map[string]any{"idempotency_key": "order-42"})

	const n = 20
	var wg sync.WaitGroup
	codes := make([]int, n)
	ids := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.post("/v1/tasks", body, "")
			codes[i] = r.code
			if r.code == http.StatusOK || r.code == http.StatusCreated {
				var task api.Task
				if err := json.Unmarshal(r.body, &task); err == nil {
					ids[i] = task.ID
				}
			}
		}()
	}
	wg.Wait()
	created, repeated := 0, 0
	for i, c := range codes {
		switch c {
		case http.StatusCreated:
			created++
		case http.StatusOK:
			repeated++
		default:
			t.Fatalf("request %d: status %d", i, c)
		}
		if ids[i] == "" || ids[i] != ids[0] {
			t.Fatalf("ids differ: %v", ids)
		}
	}
	if created != 1 || repeated != n-1 {
		t.Fatalf("created %d, repeated %d; want 1 and %d", created, repeated, n-1)
	}
	var count int
	if err := e.pool.QueryRow(context.Background(), "SELECT count(*) FROM tasker_tasks").Scan(&count); err != nil || count != 1 {
		t.Fatalf("tasks in database = %d (%v)", count, err)
	}

	// The Idempotency-Key header stands in for the body's key.
	hdr := map[string]string{"Idempotency-Key": "from-header"}
	r1 := e.do(req{method: "POST", path: "/v1/tasks", body: orderBody(nil), header: hdr})
	r2 := e.do(req{method: "POST", path: "/v1/tasks", body: orderBody(nil), header: hdr})
	wantStatus(t, r1, http.StatusCreated)
	wantStatus(t, r2, http.StatusOK)
	if a, b := r1.json(t), r2.json(t); a["id"] != b["id"] || a["idempotency_key"] != "from-header" {
		t.Fatalf("header key: %v vs %v", a, b)
	}
	if r2.header.Get("Location") != "/v1/tasks/"+r1.json(t)["id"].(string) {
		t.Fatalf("Location = %q", r2.header.Get("Location"))
	}
	// Body and header disagreeing, and a key reused for another workflow
	// (another request: see TestIdempotencyKeyScopedToCaller).
	p := wantProblem(t, e.do(req{method: "POST", path: "/v1/tasks", body: orderBody(map[string]any{"idempotency_key": "a"}),
		header: map[string]string{"Idempotency-Key": "b"}}), http.StatusUnprocessableEntity, "validation")
	wantPointers(t, p, "/idempotency_key")
	wantProblem(t, e.post("/v1/tasks", map[string]any{"namespace": "shop", "name": "flaky", "idempotency_key": "order-42"}, ""),
		http.StatusConflict, "conflict")
}

func TestListPagination(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	all := map[string]bool{}
	for i := range 25 {
		if i%3 == 0 { // several tasks share a creation time: the id breaks ties
			e.clock.Advance(time.Millisecond)
		}
		req := engine.CreateRequest{Namespace: "shop", Name: "order", Context: json.RawMessage(`{"payment_info":{"amount":1}}`)}
		if i%5 == 0 {
			req = engine.CreateRequest{Namespace: "shop", Name: "flaky"}
		}
		c, err := e.eng.CreateTask(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		all[c.TaskID.String()] = true
	}

	seen := map[string]bool{}
	var order []api.Task
	cursor := ""
	sizes := []int{}
	for page := 0; ; page++ {
		if page > 5 {
			t.Fatal("too many pages")
		}
		path := "/v1/tasks?limit=10"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		r := e.get(path, "")
		wantStatus(t, r, http.StatusOK)
		var list api.TaskList
		r.decode(t, &list)
		if strings.Contains(string(r.body), `"steps"`) {
			t.Fatal("list items carry steps")
		}
		sizes = append(sizes, len(list.Tasks))
		for _, tk := range list.Tasks {
			if seen[tk.ID] {
				t.Fatalf("task %s on two pages", tk.ID)
			}
			seen[tk.ID] = true
			order = append(order, tk)
		}
		if list.NextCursor == nil {
			break
		}
		cursor = *list.NextCursor
	}
	if fmt.Sprint(sizes) != "[10 10 5]" || len(seen) != len(all) {
		t.Fatalf("page sizes %v, seen %d of %d", sizes, len(seen), len(all))
	}
	for id := range all {
		if !seen[id] {
			t.Fatalf("task %s never listed", id)
		}
	}
	for i := 1; i < len(order); i++ {
		a, b := order[i-1], order[i]
		if a.CreatedAt < b.CreatedAt || a.CreatedAt == b.CreatedAt && a.ID < b.ID {
			t.Fatalf("not newest first: %s %s then %s %s", a.CreatedAt, a.ID, b.CreatedAt, b.ID)
		}
	}

	filters := []struct {
		query string
		want  int
	}{
		{"name=flaky&namespace=shop", 5},
		{"name=order", 20},
		{"status=pending", 25},
		{"status=complete,error", 0},
		{"status=complete&status=pending", 25},
		{"namespace=other", 0},
	}
	for _, f := range filters {
		r := e.get("/v1/tasks?limit=100&"+f.query, "")
		wantStatus(t, r, http.StatusOK)
		var list api.TaskList
		r.decode(t, &list)
		if len(list.Tasks) != f.want || list.NextCursor != nil {
			t.Errorf("%s: %d tasks (next %v), want %d", f.query, len(list.Tasks), list.NextCursor, f.want)
		}
	}
	// The default page is 20.
	var list api.TaskList
	e.get("/v1/tasks", "").decode(t, &list)
	if len(list.Tasks) != 20 || list.NextCursor == nil {
		t.Fatalf("default page: %d tasks", len(list.Tasks))
	}
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{maxBody: 4096})
	id := e.createTask(orderBody(nil), "")
	tests := []struct {
		name     string
		rq       req
		code     int
		typ      string
		pointers []string
		param    string
	}{
		{"malformed json", req{method: "POST", path: "/v1/tasks", body: `{"namespace": "shop",`}, 400, "malformed-request", nil, ""},
		{"syntax error", req{method: "POST", path: "/v1/tasks", body: `{"namespace": shop}`}, 400, "malformed-request", nil, ""},
		{"two values", req{method: "POST", path: "/v1/tasks", body: `{"namespace":"shop","name":"order"} {}`}, 400, "malformed-request", nil, ""},
		{"array", req{method: "POST", path: "/v1/tasks", body: `[1]`}, 400, "malformed-request", nil, ""},
		{"empty", req{method: "POST", path: "/v1/tasks", body: ``}, 400, "malformed-request", nil, ""},
		{"not json", req{method: "POST", path: "/v1/tasks", body: `{}`, header: map[string]string{"Content-Type": "text/plain"}}, 415, "unsupported-media-type", nil, ""},
		{"unknown field", req{method: "POST", path: "/v1/tasks", body: orderBody(map[string]any{"colour": "red", "a/b": 1})}, 422, "validation", []string{"/a~1b", "/colour"}, ""},
		{"wrong types", req{method: "POST", path: "/v1/tasks", body: map[string]any{"namespace": 7, "name": "order", "tags": []any{"ok", 3}, "context": []int{1}}},
			422, "validation", []string{"/namespace", "/context", "/tags/1"}, ""},
		{"missing fields", req{method: "POST", path: "/v1/tasks", body: map[string]any{"context": map[string]any{}}}, 422, "validation", []string{"/namespace", "/name"}, ""},
		{"duplicate member", req{method: "POST", path: "/v1/tasks", body: `{"namespace":"shop","name":"order","name":"flaky"}`}, 422, "validation", []string{"/name"}, ""},
		{"bad name", req{method: "POST", path: "/v1/tasks", body: map[string]any{"namespace": "shop", "name": "../etc"}}, 422, "validation", []string{"/name"}, ""},
		{"unknown template", req{method: "POST", path: "/v1/tasks", body: map[string]any{"namespace": "shop", "name": "nope"}}, 422, "validation", []string{"/name"}, ""},
		{"unknown version", req{method: "POST", path: "/v1/tasks", body: orderBody(map[string]any{"version": "9.9.9"})}, 422, "validation", []string{"/version"}, ""},
		{"context schema", req{method: "POST", path: "/v1/tasks", body: orderBody(map[string]any{"context": map[string]any{"payment_info": map[string]any{"amount": -1}}})},
			422, "validation", []string{"/context/payment_info/amount"}, ""},
		{"context missing property", req{method: "POST", path: "/v1/tasks", body: orderBody(map[string]any{"context": map[string]any{}})},
			422, "validation", []string{"/context/payment_info"}, ""},
		{"too long", req{method: "POST", path: "/v1/tasks", body: orderBody(map[string]any{"reason": strings.Repeat("x", 1025)})}, 422, "validation", []string{"/reason"}, ""},
		{"too large", req{method: "POST", path: "/v1/tasks", body: orderBody(map[string]any{"context": map[string]any{"pad": strings.Repeat("x", 5000)}})}, 413, "payload-too-large", nil, ""},
		{"too large chunked", req{method: "POST", path: "/v1/tasks", body: struct{ *strings.Reader }{strings.NewReader(`{"namespace":"` + strings.Repeat("x", 5000) + `"}`)}}, 413, "payload-too-large", nil, ""},
		{"cancel unknown field", req{method: "POST", path: "/v1/tasks/" + id + "/cancel", body: map[string]any{"why": "x"}}, 422, "validation", []string{"/why"}, ""},
		{"resolve wrong type", req{method: "POST", path: "/v1/tasks/" + id + "/steps/charge/resolve", body: map[string]any{"reason": 1}}, 422, "validation", []string{"/reason"}, ""},
		{"bad task id", req{method: "GET", path: "/v1/tasks/42"}, 400, "invalid-parameter", nil, "id"},
		{"unknown task", req{method: "GET", path: "/v1/tasks/01900000-0000-7000-8000-000000000000"}, 404, "not-found", nil, ""},
		{"cancel unknown task", req{method: "POST", path: "/v1/tasks/01900000-0000-7000-8000-000000000000/cancel"}, 404, "not-found", nil, ""},
		{"retry unknown task", req{method: "POST", path: "/v1/tasks/01900000-0000-7000-8000-000000000000/retry"}, 404, "not-found", nil, ""},
		{"resolve unknown step", req{method: "POST", path: "/v1/tasks/" + id + "/steps/nope/resolve"}, 404, "not-found", nil, ""},
		{"unknown step", req{method: "GET", path: "/v1/tasks/" + id + "/steps/nope"}, 404, "not-found", nil, ""},
		{"bad step name", req{method: "GET", path: "/v1/tasks/" + id + "/steps/" + url.PathEscape("a'--")}, 400, "invalid-parameter", nil, "step"},
		{"unknown query parameter", req{method: "GET", path: "/v1/tasks?stauts=error"}, 400, "invalid-parameter", nil, "stauts"},
		{"bad limit", req{method: "GET", path: "/v1/tasks?limit=101"}, 400, "invalid-parameter", nil, "limit"},
		{"zero limit", req{method: "GET", path: "/v1/tasks?limit=0"}, 400, "invalid-parameter", nil, "limit"},
		{"repeated limit", req{method: "GET", path: "/v1/tasks?limit=1&limit=2"}, 400, "invalid-parameter", nil, "limit"},
		{"bad cursor", req{method: "GET", path: "/v1/tasks?cursor=bm9wZQ"}, 400, "invalid-parameter", nil, "cursor"},
		{"bad status", req{method: "GET", path: "/v1/tasks?status=done"}, 400, "invalid-parameter", nil, "status"},
		{"unknown template detail", req{method: "GET", path: "/v1/templates/shop/nope"}, 404, "not-found", nil, ""},
		{"unknown template version", req{method: "GET", path: "/v1/templates/shop/order?version=3.0.0"}, 404, "not-found", nil, ""},
		{"unknown route", req{method: "GET", path: "/v1/nope"}, 404, "not-found", nil, ""},
		{"wrong method", req{method: "DELETE", path: "/v1/tasks/" + id}, 405, "method-not-allowed", nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := e.do(tc.rq)
			p := wantProblem(t, r, tc.code, tc.typ)
			if tc.pointers != nil {
				wantPointers(t, p, tc.pointers...)
			}
			if tc.param != "" && (len(p.Errors) != 1 || p.Errors[0].Parameter != tc.param) {
				t.Fatalf("errors = %+v, want parameter %s", p.Errors, tc.param)
			}
			if p.Instance != strings.Split(tc.rq.path, "?")[0] && tc.name != "bad step name" || p.CorrelationID == "" {
				t.Fatalf("instance/correlation: %+v", p)
			}
			if tc.code == 405 && r.header.Get("Allow") == "" {
				t.Fatal("405 without Allow")
			}
		})
	}
}

// SQL-looking input is refused or matches nothing, and changes nothing.
func TestInjectionLookingInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	id := e.createTask(orderBody(nil), "")
	evil := []string{
		"/v1/tasks?namespace=" + url.QueryEscape("shop'; DROP TABLE tasker_tasks; --"),
		"/v1/tasks?name=" + url.QueryEscape("x' OR '1'='1"),
		"/v1/tasks?status=" + url.QueryEscape("pending' OR 1=1 --"),
		"/v1/tasks?cursor=" + url.QueryEscape("' UNION SELECT * FROM tasker_tasks --"),
		"/v1/tasks/" + url.PathEscape("1 OR 1=1"),
		"/v1/tasks/" + id + "/steps/" + url.PathEscape("x' OR '1'='1"),
		"/v1/templates/" + url.PathEscape("shop;--") + "/order",
	}
	for _, p := range evil {
		r := e.get(p, "")
		if r.code != http.StatusBadRequest && r.code != http.StatusNotFound {
			t.Errorf("%s: status %d\n%s", p, r.code, r.body)
		}
	}
	r := e.post("/v1/tasks", map[string]any{"namespace": "shop", "name": "order'; DELETE FROM tasker_tasks; --"}, "")
	wantProblem(t, r, http.StatusUnprocessableEntity, "validation")

	var list api.TaskList
	e.get("/v1/tasks", "").decode(t, &list)
	if len(list.Tasks) != 1 || list.Tasks[0].ID != id {
		t.Fatalf("tasks changed: %+v", list.Tasks)
	}
}

// A database failure is a generic 500 that leaks nothing.
func TestInternalErrorsLeakNothing(t *testing.T) {
	t.Parallel()
	panicking := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("metrics exploded") })
	e := newEnv(t, envOptions{metrics: panicking})
	id := e.createTask(orderBody(nil), "")
	if _, err := e.pool.Exec(context.Background(), "ALTER TABLE tasker_steps RENAME TO tasker_steps_gone"); err != nil {
		t.Fatal(err)
	}
	p := wantProblem(t, e.get("/v1/tasks/"+id, ""), http.StatusInternalServerError, "internal")
	if strings.Contains(p.Detail, "tasker_steps") || strings.Contains(p.Detail, "does not exist") {
		t.Fatalf("detail leaks: %q", p.Detail)
	}
	wantProblem(t, e.get("/v1/metrics", ""), http.StatusInternalServerError, "internal")
}

func TestTemplates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	r := e.get("/v1/templates", "")
	wantStatus(t, r, http.StatusOK)
	var list api.TemplateList
	r.decode(t, &list)
	if len(list.Templates) != 2 {
		t.Fatalf("templates = %+v", list.Templates)
	}
	o := list.Templates[1]
	if o.Name != "order" || o.Version != "2.0.0" || strings.Join(o.Versions, ",") != "1.0.0,2.0.0" || o.StepCount != 1 || o.Description != "Take an order, v2" {
		t.Fatalf("order = %+v", o)
	}
	var none api.TemplateList
	e.get("/v1/templates?namespace=other", "").decode(t, &none)
	if len(none.Templates) != 0 {
		t.Fatalf("namespace filter: %+v", none)
	}

	r = e.get("/v1/templates/shop/order?version=1.0.0", "")
	wantStatus(t, r, http.StatusOK)
	var d api.TemplateDetail
	r.decode(t, &d)
	if d.Version != "1.0.0" || len(d.Steps) != 4 || fmt.Sprint(d.Levels) != "[[validate] [charge reserve] [ship]]" ||
		len(d.Graph.Nodes) != 4 || len(d.Graph.Edges) != 4 || d.Graph.Nodes[3].Level != 2 || len(d.ContextSchema) == 0 {
		t.Fatalf("detail = %+v", d)
	}
	if s := d.Steps[2]; s.Name != "reserve" || s.Concurrency == nil || *s.Concurrency != 5 || s.Retry.MaxAttempts != 3 ||
		s.Retry.BackoffBaseSeconds != 1 || s.TimeoutSeconds != 300 {
		t.Fatalf("reserve = %+v", s)
	}
	e.get("/v1/templates/shop/order", "").decode(t, &d)
	if d.Version != "2.0.0" || string(d.ContextSchema) != "null" {
		t.Fatalf("latest = %+v", d)
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintln(w, "tasker_up 1")
	})
	e := newEnv(t, envOptions{metrics: metrics})
	e.createTask(orderBody(nil), "")
	id := e.createTask(orderBody(nil), "")
	e.post("/v1/tasks/"+id+"/cancel", nil, "")

	wantStatus(t, e.get("/v1/health/live", ""), http.StatusOK)
	wantStatus(t, e.get("/v1/health/ready", ""), http.StatusOK)
	r := e.get("/v1/health/status", "")
	wantStatus(t, r, http.StatusOK)
	var st api.SystemStatus
	r.decode(t, &st)
	if st.Tasks["pending"] != 1 || st.Tasks["cancelled"] != 1 || st.Steps["pending"] != 4 || st.InFlight.Cap == nil ||
		*st.InFlight.Cap != 50 || st.Templates != 3 || st.Status != "ok" || st.Recent.WindowSeconds != 300 || st.Engine.InstanceID == "" {
		t.Fatalf("status = %+v", st)
	}
	r = e.get("/v1/metrics", "")
	wantStatus(t, r, http.StatusOK)
	if string(r.body) != "tasker_up 1\n" {
		t.Fatalf("metrics = %q", r.body)
	}
	r = e.get("/v1/openapi.json", "")
	wantStatus(t, r, http.StatusOK)
	if !strings.Contains(string(r.body), `"openapi": "3.1.0"`) {
		t.Fatal("openapi document not served")
	}

	// Without a metrics handler the route is a 404 problem.
	e2 := newEnv(t, envOptions{})
	wantProblem(t, e2.get("/v1/metrics", ""), http.StatusNotFound, "not-found")

	// The database going away: ready is 503, live stays 200.
	e2.pool.Close()
	wantProblem(t, e2.get("/v1/health/ready", ""), http.StatusServiceUnavailable, "unavailable")
	wantStatus(t, e2.get("/v1/health/live", ""), http.StatusOK)
}
