package api_test

import (
	"fmt"
	"net/http"
	"testing"
)

// An unknown workflow or version is one error (template.ErrNotFound): REST
// and GraphQL answer the same detail, each in its own shape.
func TestUnknownTemplateSameInBothAPIs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	for _, c := range []struct {
		name, ns, wf, version, field, detail string
	}{
		{"unknown workflow", "shop", "nope", "", "name", "no workflow shop/nope"},
		{"unknown version", "shop", "order", "3.0.0", "version", "no version 3.0.0 of shop/order (versions: 1.0.0, 2.0.0)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := "/v1/templates/" + c.ns + "/" + c.wf
			if c.version != "" {
				path += "?version=" + c.version
			}
			if p := wantProblem(t, e.get(path, ""), http.StatusNotFound, "not-found"); p.Detail != c.detail {
				t.Errorf("GET %s: detail %q, want %q", path, p.Detail, c.detail)
			}
			apath := "/v1/analytics/templates/" + c.ns + "/" + c.wf
			if c.version != "" {
				apath += "?version=" + c.version
			}
			if p := wantProblem(t, e.get(apath, ""), http.StatusNotFound, "not-found"); p.Detail != c.detail {
				t.Errorf("GET %s: detail %q, want %q", apath, p.Detail, c.detail)
			}
			body := map[string]any{"namespace": c.ns, "name": c.wf, "version": c.version}
			p := wantProblem(t, e.post("/v1/tasks", body, ""), http.StatusUnprocessableEntity, "validation")
			wantPointers(t, p, "/"+c.field)
			restCreate := p.Errors[0].Detail

			gql := func(query string) (msg, code string, fields []any) {
				t.Helper()
				r := e.post("/v1/graphql", map[string]any{"query": query}, "")
				errs, _ := r.json(t)["errors"].([]any)
				if len(errs) != 1 {
					t.Fatalf("GraphQL %s: %s", query, r.body)
				}
				e := errs[0].(map[string]any)
				ext, _ := e["extensions"].(map[string]any)
				fields, _ = ext["errors"].([]any)
				return fmt.Sprint(e["message"]), fmt.Sprint(ext["code"]), fields
			}
			version := ""
			if c.version != "" {
				version = fmt.Sprintf(", version: %q", c.version)
			}
			if msg, code, _ := gql(fmt.Sprintf(`{ template(namespace: %q, name: %q%s) { name } }`, c.ns, c.wf, version)); msg != c.detail || code != "not-found" {
				t.Errorf("GraphQL template: %s %q, want not-found %q", code, msg, c.detail)
			}
			if msg, code, _ := gql(fmt.Sprintf(`{ templateAnalytics(namespace: %q, name: %q%s) { version } }`, c.ns, c.wf, version)); msg != c.detail || code != "not-found" {
				t.Errorf("GraphQL templateAnalytics: %s %q, want not-found %q", code, msg, c.detail)
			}
			_, code, fields := gql(fmt.Sprintf(`mutation { createTask(input: {namespace: %q, name: %q%s}) { created } }`, c.ns, c.wf, version))
			f, _ := fields[0].(map[string]any)
			if code != "validation" || len(fields) != 1 || f["field"] != "input."+c.field {
				t.Fatalf("GraphQL createTask: %s %v", code, fields)
			}
			// The same sentence; each API points at the catalogue its own way.
			gqlCreate := fmt.Sprint(f["detail"])
			if c.field == "name" {
				if restCreate != c.detail+"; see GET /v1/templates" || gqlCreate != c.detail+"; see the templates query" {
					t.Errorf("create: REST %q, GraphQL %q", restCreate, gqlCreate)
				}
			} else if restCreate != c.detail || gqlCreate != c.detail {
				t.Errorf("create: REST %q, GraphQL %q, want %q", restCreate, gqlCreate, c.detail)
			}
		})
	}
}
