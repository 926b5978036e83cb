package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/template"
)

type nop struct{}

func (nop) Send(context.Context, []engine.Message) error    { return nil }
func (nop) Invoke(context.Context, engine.Invocation) error { return nil }

// newOffline builds the handler without a database: routing and the
// document need none.
func newOffline(t *testing.T) *server {
	t.Helper()
	st, err := store.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	set, err := template.NewSet()
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Config{Store: st, Templates: set, Queue: nop{}, Invoker: nop{}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{Engine: eng, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	return h.(*server)
}

// sample fills a documented path template with plausible parameters.
func sample(path string) string {
	r := strings.NewReplacer("{id}", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "{step}", "charge",
		"{namespace}", "shop", "{name}", "order")
	return r.Replace(path)
}

// Every route is documented and every documented route is served, with
// the documented permission.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	s := newOffline(t)
	var doc struct {
		OpenAPI string `json:"openapi"`
		Paths   map[string]map[string]struct {
			OperationID string `json:"operationId"`
			Permission  string `json:"x-permission"`
			// Authenticated marks a route that needs a valid token and
			// checks permissions itself (POST /v1/graphql).
			Authenticated bool                  `json:"x-authenticated"`
			Security      []map[string][]string `json:"security"`
			Responses     map[string]any        `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(openAPIJSON, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi = %q", doc.OpenAPI)
	}

	documented := map[string]string{} // pattern -> permission
	ops := map[string]bool{}
	for path, methods := range doc.Paths {
		for m, op := range methods {
			pattern := strings.ToUpper(m) + " " + path
			documented[pattern] = op.Permission
			if op.Authenticated {
				documented[pattern] = authenticatedOnly
				if op.Permission != "" || len(op.Security) != 1 || len(op.Security[0]["bearerAuth"]) != 0 ||
					op.Responses["401"] == nil || op.Responses["403"] == nil {
					t.Errorf("%s: an authenticated route needs security [{bearerAuth: []}], 401 and 403, no x-permission", pattern)
				}
			}
			if op.OperationID == "" || ops[op.OperationID] {
				t.Errorf("%s: missing or duplicate operationId %q", pattern, op.OperationID)
			}
			ops[op.OperationID] = true
			if op.Permission == "" && !op.Authenticated && (len(op.Security) != 0) {
				t.Errorf("%s: public but has security %v", pattern, op.Security)
			}
			if op.Permission != "" && (len(op.Security) != 1 || !slices.Equal(op.Security[0]["bearerAuth"], []string{op.Permission})) {
				t.Errorf("%s: security %v does not name %s", pattern, op.Security, op.Permission)
			}
			if op.Permission != "" && (op.Responses["401"] == nil || op.Responses["403"] == nil) {
				t.Errorf("%s: 401/403 not documented", pattern)
			}
			// The documented route is served by the mux under that pattern.
			r := httptest.NewRequest(strings.ToUpper(m), sample(path), nil)
			if _, got := s.mux.Handler(r); got != pattern {
				t.Errorf("documented %s is served as %q", pattern, got)
			}
		}
	}
	var served []string
	for _, rt := range s.routes {
		served = append(served, rt.pattern())
		perm, ok := documented[rt.pattern()]
		if !ok {
			t.Errorf("route %s is not documented", rt.pattern())
			continue
		}
		if perm != rt.perm {
			t.Errorf("route %s needs %q, documented %q", rt.pattern(), rt.perm, perm)
		}
		// And the mux really has it.
		r := httptest.NewRequest(rt.method, sample(rt.path), nil)
		if _, got := s.mux.Handler(r); got != rt.pattern() {
			t.Errorf("route %s is matched as %q", rt.pattern(), got)
		}
	}
	if len(served) != len(documented) {
		sort.Strings(served)
		t.Errorf("%d routes served, %d documented: %v", len(served), len(documented), served)
	}
}

func TestOpenAPIServedAndPublic(t *testing.T) {
	t.Parallel()
	s := newOffline(t)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest("GET", "/v1/openapi.json", nil))
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" || !json.Valid(w.Body.Bytes()) {
		t.Fatalf("GET /v1/openapi.json = %d %q", w.Code, w.Header().Get("Content-Type"))
	}
}
