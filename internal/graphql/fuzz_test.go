package graphql

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/taskerhq/tasker/internal/auth"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/template"
)

type nop struct{}

func (nop) Send(context.Context, []engine.Message) error    { return nil }
func (nop) Invoke(context.Context, engine.Invocation) error { return nil }

// FuzzHandler feeds arbitrary bodies to the endpoint for a caller that may
// read templates only, so no operation reaches the database (the others
// are refused before they run) while parsing, validation, the limits and
// the permission walk see everything. It must never panic nor answer 5xx,
// and every error must carry a code.
func FuzzHandler(f *testing.F) {
	st, err := store.New(nil)
	if err != nil {
		f.Fatal(err)
	}
	tpl, err := template.Parse("t.yaml", []byte("namespace: shop\nname: order\nversion: 1.0.0\nsteps:\n  - {name: a, handler: tasker.noop}\n"), template.Options{})
	if err != nil {
		f.Fatal(err)
	}
	set, err := template.NewSet(tpl)
	if err != nil {
		f.Fatal(err)
	}
	eng, err := engine.New(engine.Config{Store: st, Templates: set, Queue: nop{}, Invoker: nop{}})
	if err != nil {
		f.Fatal(err)
	}
	h, err := NewHandler(Options{Engine: eng, Reader: st, Permission: func(route string) (string, bool) {
		if strings.HasPrefix(route, "GET /v1/templates") {
			return auth.TemplatesRead, true
		}
		return "other:" + route, true
	}})
	if err != nil {
		f.Fatal(err)
	}
	caller := Caller{Principal: &auth.Principal{Subject: "fuzz", Permissions: []string{auth.TemplatesRead}}, Actor: "fuzz"}
	for _, q := range []string{
		`{ templates { name versions } template(namespace: "shop", name: "order") { steps { name } } }`,
		`{ __schema { types { name fields { name } } } }`,
		`query($n: String) { templates(namespace: $n) { name } }`,
		`mutation { cancelTask(id: "x") { id } }`,
		`{ template(namespace: "shop", name: "order", version: "` + strings.Repeat("9", 100) + `") { name } }`,
		`{ tasks(limit: 99999999999999999999999) { nextCursor } }`,
		`{ ...F } fragment F on Query { ...F }`,
		`{ templates { name } } { templates { name } }`,
		`{` + strings.Repeat(`templates { name } `, 300) + `}`,
		`{ __type(name: "Task") { fields { type { ofType { ofType { ofType { name } } } } } } }`,
	} {
		body, _ := json.Marshal(map[string]any{"query": q, "variables": map[string]any{"n": "shop"}})
		f.Add(body)
	}
	f.Add([]byte(`{"query": 1}`))
	f.Add([]byte(`{"query": "{ templates { name } }", "variables": [1]}`))
	f.Add([]byte("\xff"))
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/v1/graphql", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r = r.WithContext(WithCaller(r.Context(), caller))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("status %d for %q: %s", w.Code, body, w.Body)
		}
		var resp struct {
			Errors []struct {
				Message    string         `json:"message"`
				Extensions map[string]any `json:"extensions"`
			} `json:"errors"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
			t.Fatalf("response is not JSON: %v: %s", err, w.Body)
		}
		if w.Code != http.StatusOK && len(resp.Errors) == 0 {
			t.Fatalf("status %d without errors", w.Code)
		}
		for _, e := range resp.Errors {
			if c, _ := e.Extensions["code"].(string); !isCode(c) || c == CodeInternal || e.Message == "" {
				t.Fatalf("error without a clear code: %+v (status %d, body %q)", e, w.Code, body)
			}
		}
	})
}
