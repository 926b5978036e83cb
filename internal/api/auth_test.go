package api_test

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/taskerhq/tasker/internal/api"
	"github.com/taskerhq/tasker/internal/auth"
)

// countingBody records whether the handler read the request body.
type countingBody struct {
	r    *strings.Reader
	read *atomic.Bool
}

func (b countingBody) Read(p []byte) (int, error) {
	b.read.Store(true)
	return b.r.Read(p)
}

func TestAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{auth: true})
	admin := e.token("alice", "tasks:*", "steps:*", "templates:read", "system:read")
	reader := e.token("bob", auth.TasksRead)
	id := e.createTask(orderBody(nil), admin)

	tests := []struct {
		name       string
		method     string
		path       string
		token      string
		code       int
		permission string
		challenge  string
	}{
		{"live is public", "GET", "/v1/health/live", "", 200, "", ""},
		{"ready is public", "GET", "/v1/health/ready", "", 200, "", ""},
		{"openapi is public", "GET", "/v1/openapi.json", "", 200, "", ""},
		{"status needs a token", "GET", "/v1/health/status", "", 401, "", `Bearer realm="tasker"`},
		{"status needs system:read", "GET", "/v1/health/status", reader, 403, auth.SystemRead, `error="insufficient_scope"`},
		{"status with system:read", "GET", "/v1/health/status", admin, 200, "", ""},
		{"no token", "GET", "/v1/tasks/" + id, "", 401, "", `Bearer realm="tasker"`},
		{"garbage token", "GET", "/v1/tasks/" + id, "not.a.jwt", 401, "", `error="invalid_token"`},
		{"wrong secret", "GET", "/v1/tasks/" + id, forged(t), 401, "", `error="invalid_token"`},
		{"read with tasks:read", "GET", "/v1/tasks/" + id, reader, 200, "", ""},
		{"list needs tasks:list", "GET", "/v1/tasks", reader, 403, auth.TasksList, `scope="tasks:list"`},
		{"step needs steps:read", "GET", "/v1/tasks/" + id + "/steps/charge", reader, 403, auth.StepsRead, ""},
		{"graph with tasks:read", "GET", "/v1/tasks/" + id + "/graph", reader, 200, "", ""},
		{"templates need templates:read", "GET", "/v1/templates", reader, 403, auth.TemplatesRead, ""},
		{"template detail", "GET", "/v1/templates/shop/order", admin, 200, "", ""},
		{"metrics need system:read", "GET", "/v1/metrics", reader, 403, auth.SystemRead, ""},
		{"wildcard lists", "GET", "/v1/tasks", admin, 200, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := e.get(tc.path, tc.token)
			wantStatus(t, r, tc.code)
			if tc.code == 401 || tc.code == 403 {
				p := wantProblem(t, r, tc.code, map[int]string{401: "unauthorized", 403: "forbidden"}[tc.code])
				if p.Permission != tc.permission || tc.permission != "" && !strings.Contains(p.Detail, tc.permission) {
					t.Fatalf("problem = %+v, want permission %q named", p, tc.permission)
				}
				if h := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer ") || !strings.Contains(h, tc.challenge) {
					t.Fatalf("WWW-Authenticate = %q, want %q", h, tc.challenge)
				}
			}
		})
	}

	// Auth runs before the body is read: refused requests never touch it.
	for _, tc := range []struct {
		token string
		code  int
	}{{"", 401}, {"garbage", 401}, {reader, 403}} {
		var read atomic.Bool
		body := countingBody{r: strings.NewReader(`{"namespace":"shop","name":"order"}`), read: &read}
		r := e.do(req{method: "POST", path: "/v1/tasks", body: body, token: tc.token})
		wantStatus(t, r, tc.code)
		if read.Load() {
			t.Fatalf("body read before %d", tc.code)
		}
	}
	// A too-large body from an unauthenticated caller is a 401, not a 413.
	big := strings.Repeat("x", 2<<20)
	wantStatus(t, e.do(req{method: "POST", path: "/v1/tasks", body: big}), 401)

	// The token's subject is the actor on transitions.
	wantStatus(t, e.post("/v1/tasks/"+id+"/cancel", map[string]any{"reason": "test"}, admin), 200)
	var sd api.StepDetail
	e.get("/v1/tasks/"+id+"/steps/charge", admin).decode(t, &sd)
	if tr := sd.Transitions[len(sd.Transitions)-1]; tr.Actor != "alice" {
		t.Fatalf("actor = %q", tr.Actor)
	}
	wantStatus(t, e.post("/v1/tasks/"+id+"/cancel", nil, reader), 403)
}

func forged(t *testing.T) string {
	t.Helper()
	tok, err := auth.SignHS256([]byte(strings.Repeat("k", 40)), map[string]any{"sub": "mallory", "exp": 9999999999, "scope": "*"})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
