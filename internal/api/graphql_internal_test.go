package api

import (
	"slices"
	"strings"
	"testing"

	"github.com/taskerhq/tasker/internal/graphql"
)

// TestGraphQLOperationsMirrorRoutes walks the GraphQL schema: every field
// that needs a permission (each query and mutation, each field with
// arguments) has an entry in the operations table that names a REST route
// with a permission, and that permission is the one the field needs.
// Adding a field without a mapping fails here (and NewHandler refuses it).
func TestGraphQLOperationsMirrorRoutes(t *testing.T) {
	t.Parallel()
	s := newOffline(t)
	schema := graphql.NewExecutableSchema(graphql.Config{}).Schema()
	perms, err := graphql.Permissions(schema, s.routePermission)
	if err != nil {
		t.Fatal(err)
	}
	need := graphql.NeedsPermission(schema)
	if len(need) == 0 || len(perms) != len(need) {
		t.Fatalf("%d fields need a permission, %d mapped: %v", len(need), len(perms), need)
	}
	for _, root := range []string{"Query.", "Mutation."} {
		n := 0
		for _, f := range need {
			if strings.HasPrefix(f, root) {
				n++
			}
		}
		if n == 0 {
			t.Errorf("no %s fields found: the walk missed them", root)
		}
	}
	ops := graphql.Operations()
	for _, field := range need {
		perm, ok := s.routePermission(ops[field])
		if !ok || perm == "" || perms[field] != perm {
			t.Errorf("%s mirrors %q (permission %q), mapped to %q", field, ops[field], perm, perms[field])
		}
	}
	// Every permission of a REST route with a GraphQL twin is covered.
	for _, want := range []string{"tasks:read", "tasks:list", "tasks:create", "tasks:cancel", "tasks:retry",
		"steps:read", "steps:resolve", "steps:complete", "templates:read"} {
		found := false
		for _, p := range perms {
			found = found || p == want
		}
		if !found {
			t.Errorf("no GraphQL operation needs %s", want)
		}
	}
}

// TestGraphQLCodesAreProblemTypes keeps extensions.code the slug of a
// REST problem type.
func TestGraphQLCodesAreProblemTypes(t *testing.T) {
	t.Parallel()
	if graphql.ProblemBase != ProblemBase {
		t.Fatalf("ProblemBase %q != %q", graphql.ProblemBase, ProblemBase)
	}
	for _, c := range graphql.Codes() {
		if _, ok := titles[ProblemBase+c]; !ok {
			t.Errorf("code %q is not a REST problem type", c)
		}
	}
	if !slices.Contains(graphql.Codes(), "forbidden") {
		t.Error("no forbidden code")
	}
}
