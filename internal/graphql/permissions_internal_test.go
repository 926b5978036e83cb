package graphql

import (
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
)

// routes stands in for the REST route table (internal/api tests the real
// one): every route the operations table names, with a permission.
func routes(route string) (string, bool) {
	for _, r := range operations {
		if r == route {
			return "perm of " + route, true
		}
	}
	return "", false
}

func loadSchema(t *testing.T, extra string) *ast.Schema {
	t.Helper()
	s, err := gqlparser.LoadSchema(&ast.Source{Name: "schema.graphqls", Input: string(Schema)},
		&ast.Source{Name: "extra.graphqls", Input: extra})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSchemaWalk: the walk finds every field that needs a mapping, and a
// field without one, a mapping without a field, or a mapping to a public
// or unknown route fails, naming what is wrong.
func TestSchemaWalk(t *testing.T) {
	t.Parallel()
	if _, err := Permissions(loadSchema(t, ""), routes); err != nil {
		t.Fatalf("the schema as shipped: %v", err)
	}
	for _, tc := range []struct {
		name, extra string
		perm        func(string) (string, bool)
		want        string
	}{
		{"unmapped query", "extend type Query { secrets: [String!]! }", routes, "Query.secrets has no entry"},
		{"unmapped mutation", "extend type Mutation { dropAll: Boolean! }", routes, "Mutation.dropAll has no entry"},
		{"unmapped field with arguments", "extend type Step { logs(last: Int): [String!]! }", routes, "Step.logs has no entry"},
		{"unknown route", "", func(r string) (string, bool) {
			if r == "GET /v1/templates" {
				return "", false
			}
			return routes(r)
		}, `Query.templates mirrors "GET /v1/templates", which is not a REST route`},
		{"public route", "", func(r string) (string, bool) {
			if r == "POST /v1/tasks" {
				return "", true
			}
			return routes(r)
		}, "Mutation.createTask mirrors \"POST /v1/tasks\", which is public"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Permissions(loadSchema(t, tc.extra), tc.perm)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// A mapping whose field left the schema fails too.
	s := loadSchema(t, "")
	s.Query.Fields = s.Query.Fields[1:] // drop Query.task
	if _, err := Permissions(s, routes); err == nil || !strings.Contains(err.Error(), "Query.task is in the operations table but not in the schema") {
		t.Fatalf("err = %v", err)
	}
	// Plain members of a type need no mapping: their parent's covers them.
	for _, f := range NeedsPermission(loadSchema(t, "")) {
		if !strings.HasPrefix(f, "Query.") && !strings.HasPrefix(f, "Mutation.") && f != "Task.step" {
			t.Errorf("%s needs a permission: it has arguments; map it", f)
		}
	}
}
