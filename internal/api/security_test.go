package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskerhq/tasker/internal/api"
	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/engine"
)

// bigContext is an order context padded to about n bytes.
func bigContext(n int) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"payment_info":{"amount":1},"pad":%q}`, strings.Repeat("x", n)))
}

// seedTasks creates n order tasks with contexts of about size bytes,
// through the engine (a 1 MiB context is over the API's body limit).
func (e *env) seedTasks(n, size int) []string {
	e.t.Helper()
	ctx := bigContext(size)
	ids := make([]string, n)
	for i := range n {
		c, err := e.eng.CreateTask(context.Background(), engine.CreateRequest{
			Namespace: "shop", Name: "order", Version: "1.0.0", Context: ctx, Actor: "seed"})
		if err != nil {
			e.t.Fatal(err)
		}
		ids[i] = c.TaskID.String()
		e.clock.Advance(time.Millisecond)
	}
	return ids
}

func members(t *testing.T, raw json.RawMessage) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// A page stops early with a cursor at the byte budget; walking the pages
// still sees every task once, and each response keeps to the budget.
func TestListByteBudget(t *testing.T) {
	t.Parallel()
	const budget = 64 << 10
	e := newEnv(t, envOptions{maxResponse: budget})
	ids := e.seedTasks(12, 20<<10)

	tests := []struct {
		name      string
		query     string
		wantPages int
		context   bool
	}{
		{name: "full items stop at the budget", query: "limit=100", wantPages: 4, context: true},
		{name: "without context one page holds all", query: "limit=100&fields=status,created_at", wantPages: 1},
		{name: "limit still applies", query: "limit=5&fields=status", wantPages: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var seen []string
			pages, cursor := 0, ""
			for {
				path := "/v1/tasks?" + tc.query
				if cursor != "" {
					path += "&cursor=" + cursor
				}
				r := e.get(path, "")
				wantStatus(t, r, http.StatusOK)
				if len(r.body) > budget {
					t.Fatalf("page of %d bytes, budget %d", len(r.body), budget)
				}
				var page struct {
					Tasks      []json.RawMessage `json:"tasks"`
					NextCursor *string           `json:"next_cursor"`
				}
				r.decode(t, &page)
				pages++
				for _, raw := range page.Tasks {
					var task struct {
						ID      string          `json:"id"`
						Context json.RawMessage `json:"context"`
					}
					if err := json.Unmarshal(raw, &task); err != nil {
						t.Fatal(err)
					}
					if (task.Context != nil) != tc.context {
						t.Fatalf("context present = %v, want %v", task.Context != nil, tc.context)
					}
					seen = append(seen, task.ID)
				}
				if page.NextCursor == nil {
					break
				}
				cursor = *page.NextCursor
				if pages > 20 {
					t.Fatal("pagination does not end")
				}
			}
			if pages != tc.wantPages {
				t.Errorf("%d pages, want %d", pages, tc.wantPages)
			}
			want := slices.Clone(ids)
			slices.Reverse(want) // newest first
			if !slices.Equal(seen, want) {
				t.Fatalf("walked %d tasks %v, want %d %v", len(seen), seen, len(want), want)
			}
		})
	}
}

// One task larger than the budget still comes, alone, so paging advances.
func TestListBudgetKeepsOneTask(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{maxResponse: 8 << 10})
	e.seedTasks(2, 20<<10)
	r := e.get("/v1/tasks", "")
	wantStatus(t, r, http.StatusOK)
	var page api.TaskList
	r.decode(t, &page)
	if len(page.Tasks) != 1 || page.NextCursor == nil {
		t.Fatalf("%d tasks, next %v; want 1 and a cursor", len(page.Tasks), page.NextCursor)
	}
}

func TestFields(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	id := e.createTask(orderBody(nil), "")
	e.drain(succeed)
	tests := []struct {
		name   string
		path   string
		code   int
		want   []string // members of the object (or of the first list item)
		inList bool
	}{
		{name: "list", path: "/v1/tasks?fields=status,created_at", code: 200, want: []string{"created_at", "id", "status"}, inList: true},
		{name: "list, spaces and empty names", path: "/v1/tasks?fields=%20status,,", code: 200, want: []string{"id", "status"}, inList: true},
		{name: "list, empty keeps only id", path: "/v1/tasks?fields=", code: 200, want: []string{"id"}, inList: true},
		{name: "list, unknown field", path: "/v1/tasks?fields=status,secret", code: 400},
		{name: "list, steps are not in list items", path: "/v1/tasks?fields=steps", code: 400},
		{name: "list, twice", path: "/v1/tasks?fields=id&fields=status", code: 400},
		{name: "task", path: "/v1/tasks/" + id + "?fields=status,steps", code: 200, want: []string{"id", "status", "steps"}},
		{name: "task without context", path: "/v1/tasks/" + id + "?fields=status,tags", code: 200, want: []string{"id", "status", "tags"}},
		{name: "task, unknown field", path: "/v1/tasks/" + id + "?fields=nope", code: 400},
		{name: "task, unknown parameter", path: "/v1/tasks/" + id + "?field=status", code: 400},
		{name: "step", path: "/v1/tasks/" + id + "/steps/charge?fields=status,attempts", code: 200, want: []string{"attempts", "name", "status"}},
		{name: "step without result", path: "/v1/tasks/" + id + "/steps/charge?fields=transitions", code: 200, want: []string{"name", "transitions"}},
		{name: "step, unknown field", path: "/v1/tasks/" + id + "/steps/charge?fields=context", code: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := e.get(tc.path, "")
			if tc.code != http.StatusOK {
				p := wantProblem(t, r, tc.code, "invalid-parameter")
				if len(p.Errors) != 1 || (p.Errors[0].Parameter != "fields" && p.Errors[0].Parameter != "field") {
					t.Fatalf("errors = %+v", p.Errors)
				}
				return
			}
			wantStatus(t, r, tc.code)
			raw := json.RawMessage(r.body)
			if tc.inList {
				var page struct {
					Tasks []json.RawMessage `json:"tasks"`
				}
				r.decode(t, &page)
				if len(page.Tasks) == 0 {
					t.Fatal("no tasks")
				}
				raw = page.Tasks[0]
			}
			if got := members(t, raw); !slices.Equal(got, tc.want) {
				t.Fatalf("members = %v, want %v\n%s", got, tc.want, raw)
			}
		})
	}
}

// A task read over the budget leaves out its largest step results and
// says so; each step still has its result in full.
func TestTaskReadByteBudget(t *testing.T) {
	t.Parallel()
	const budget = 96 << 10
	e := newEnv(t, envOptions{maxResponse: budget})
	id := e.createTask(orderBody(nil), "")
	e.drain(func(p contract.Payload) (any, *contract.HandlerError) {
		return map[string]any{"blob": strings.Repeat("r", 40<<10)}, nil
	})
	r := e.get("/v1/tasks/"+id, "")
	wantStatus(t, r, http.StatusOK)
	if len(r.body) > budget {
		t.Fatalf("task read of %d bytes, budget %d", len(r.body), budget)
	}
	if got := r.header.Get(api.HeaderOmitted); got != "steps.result" {
		t.Fatalf("%s = %q", api.HeaderOmitted, got)
	}
	var task api.Task
	r.decode(t, &task)
	var omitted, kept int
	for _, st := range task.Steps {
		if string(st.Result) == "null" {
			omitted++
			s := e.get("/v1/tasks/"+id+"/steps/"+st.Name, "")
			wantStatus(t, s, http.StatusOK)
			var sd api.StepDetail
			s.decode(t, &sd)
			if len(sd.Result) < 40<<10 {
				t.Fatalf("step %s result has %d bytes", st.Name, len(sd.Result))
			}
		} else {
			kept++
		}
	}
	if omitted == 0 || kept == 0 {
		t.Fatalf("%d results omitted, %d kept; want some of each", omitted, kept)
	}
	// Under the budget nothing is left out.
	small := newEnv(t, envOptions{})
	sid := small.createTask(orderBody(nil), "")
	if r := small.get("/v1/tasks/"+sid, ""); r.header.Get(api.HeaderOmitted) != "" {
		t.Fatalf("%s set on a small task", api.HeaderOmitted)
	}
}

// discard is a ResponseWriter that keeps only the status and the size.
type discard struct {
	header http.Header
	code   int
	n      int
}

func (d *discard) Header() http.Header         { return d.header }
func (d *discard) WriteHeader(code int)        { d.code = code }
func (d *discard) Write(b []byte) (int, error) { d.n += len(b); return len(b), nil }

// The worst case of issue 15: 100 tasks with 1 MiB contexts and 8
// concurrent GET /v1/tasks?limit=100. Each response used to be 105 MB,
// built in memory (3.1 GB for the server); now each page stops at the
// 4 MiB budget and the heap grows by tens of megabytes.
func TestListPeakMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 100 MiB of contexts")
	}
	e := newEnv(t, envOptions{})
	e.seedTasks(100, 1<<20)

	list := func() *discard {
		d := &discard{header: http.Header{}}
		e.h.ServeHTTP(d, httptest.NewRequest("GET", "/v1/tasks?limit=100", nil))
		return d
	}
	list() // warm up: connections, plans
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	const concurrent = 8
	var wg sync.WaitGroup
	sizes := make([]int, concurrent)
	for i := range concurrent {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := list()
			if d.code != http.StatusOK {
				t.Errorf("status %d", d.code)
			}
			sizes[i] = d.n
		}()
	}
	wg.Wait()
	close(stop)
	<-sampled
	growth := int64(peak.Load()) - int64(base)
	t.Logf("8 concurrent lists of 100 × 1 MiB contexts: responses %v bytes, peak heap growth %.1f MiB", sizes, float64(growth)/(1<<20))
	for _, n := range sizes {
		if n > api.DefaultMaxResponseBytes {
			t.Errorf("response of %d bytes, budget %d", n, api.DefaultMaxResponseBytes)
		}
	}
	if growth > 150<<20 {
		t.Fatalf("peak heap growth %d MiB, want well under 300 MiB", growth>>20)
	}
}

// With auth off, a state change must come as JSON: the cross-site requests
// a browser sends without a preflight cannot.
func TestAuthOffRequiresJSON(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	id := e.createTask(orderBody(nil), "")
	body, err := json.Marshal(orderBody(nil))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		rq   req
		code int
	}{
		{"create without Content-Type", req{method: "POST", path: "/v1/tasks", body: body, header: map[string]string{"Content-Type": ""}}, 415},
		{"create as text/plain", req{method: "POST", path: "/v1/tasks", body: body, header: map[string]string{"Content-Type": "text/plain"}}, 415},
		{"create as a form", req{method: "POST", path: "/v1/tasks", body: "a=b", header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}, 415},
		{"create as multipart", req{method: "POST", path: "/v1/tasks", body: body, header: map[string]string{"Content-Type": "multipart/form-data; boundary=x"}}, 415},
		{"empty cancel without Content-Type", req{method: "POST", path: "/v1/tasks/" + id + "/cancel", header: map[string]string{"Content-Type": ""}}, 415},
		{"empty retry as text/plain", req{method: "POST", path: "/v1/tasks/" + id + "/retry", header: map[string]string{"Content-Type": "text/plain"}}, 415},
		{"resolve without Content-Type", req{method: "POST", path: "/v1/tasks/" + id + "/steps/charge/resolve", body: `{}`, header: map[string]string{"Content-Type": ""}}, 415},
		{"create as JSON", req{method: "POST", path: "/v1/tasks", body: body}, 201},
		{"create as JSON with charset", req{method: "POST", path: "/v1/tasks", body: body, header: map[string]string{"Content-Type": "application/json; charset=utf-8"}}, 201},
		{"create as +json", req{method: "POST", path: "/v1/tasks", body: body, header: map[string]string{"Content-Type": "application/vnd.tasker+json"}}, 201},
		{"empty cancel as JSON", req{method: "POST", path: "/v1/tasks/" + id + "/cancel"}, 200},
		{"reads need none", req{method: "GET", path: "/v1/tasks/" + id}, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.rq)
			if tc.code == http.StatusUnsupportedMediaType {
				wantProblem(t, r, tc.code, "unsupported-media-type")
				return
			}
			wantStatus(t, r, tc.code)
		})
	}

	// With auth on, the token is the defence: an empty POST needs no type.
	ae := newEnv(t, envOptions{auth: true})
	tok := ae.token("alice", "tasks:*")
	aid := ae.createTask(orderBody(nil), tok)
	r := ae.do(req{method: "POST", path: "/v1/tasks/" + aid + "/cancel", token: tok, header: map[string]string{"Content-Type": ""}})
	wantStatus(t, r, http.StatusOK)
}

// With auth off, only the server's own names may be in Host (DNS rebinding).
func TestAuthOffChecksHost(t *testing.T) {
	t.Parallel()
	hosts := api.LocalHosts("127.0.0.1:8080", api.ParseAllowedHosts(" tasker.internal, box.lan:9000 ,"))
	e := newEnv(t, envOptions{hosts: hosts})
	tests := []struct {
		host string
		code int
	}{
		{"127.0.0.1:8080", 200},
		{"localhost:8080", 200},
		{"LocalHost:8080", 200},
		{"[::1]:8080", 200},
		{"tasker.internal", 200},
		{"tasker.internal:8080", 200},
		{"box.lan:9000", 200},
		{"box.lan:9001", 421},
		{"box.lan", 421},
		{"127.0.0.1:9999", 421},
		{"localhost", 421},
		{"attacker.example:8080", 421},
		{"attacker.example", 421},
		{"127.0.0.1.attacker.example:8080", 421},
		{"", 421},
	}
	for _, tc := range tests {
		for _, path := range []string{"/v1/health/live", "/v1/tasks"} {
			t.Run(tc.host+path, func(t *testing.T) {
				t.Parallel()
				r := e.do(req{method: "GET", path: path, host: tc.host})
				if tc.code == http.StatusMisdirectedRequest {
					wantProblem(t, r, tc.code, "misdirected-request")
					return
				}
				wantStatus(t, r, tc.code)
			})
		}
	}
	// A POST from a rebound page is refused before its body is read.
	r := e.do(req{method: "POST", path: "/v1/tasks", body: orderBody(nil), host: "attacker.example:8080"})
	wantProblem(t, r, http.StatusMisdirectedRequest, "misdirected-request")

	// With auth on the token is the defence and any Host is served (the
	// API Lambda sits behind API Gateway's own names).
	ae := newEnv(t, envOptions{auth: true, hosts: hosts})
	wantStatus(t, ae.do(req{method: "GET", path: "/v1/health/live", host: "api.example.com"}), http.StatusOK)
}

func TestLocalHosts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr  string
		extra []string
		want  []string
	}{
		{"127.0.0.1:8080", nil, []string{"localhost:8080", "127.0.0.1:8080", "[::1]:8080"}},
		{"0.0.0.0:8080", []string{"box.lan"}, []string{"localhost:8080", "127.0.0.1:8080", "[::1]:8080", "box.lan"}},
		{"[::]:8080", nil, []string{"localhost:8080", "127.0.0.1:8080", "[::1]:8080"}},
		{"192.168.1.5:80", nil, []string{"localhost:80", "localhost", "127.0.0.1:80", "127.0.0.1", "[::1]:80", "[::1]", "192.168.1.5:80", "192.168.1.5"}},
		{"[fe80::1]:8080", nil, []string{"localhost:8080", "127.0.0.1:8080", "[::1]:8080", "[fe80::1]:8080"}},
	}
	for _, tc := range tests {
		if got := api.LocalHosts(tc.addr, tc.extra); !slices.Equal(got, tc.want) {
			t.Errorf("LocalHosts(%q, %q) = %q, want %q", tc.addr, tc.extra, got, tc.want)
		}
	}
}
