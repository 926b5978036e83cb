package graphql

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/vektah/gqlparser/v2/ast"
)

// operations is the one table of what each GraphQL operation mirrors: the
// REST route whose permission it needs. The permission itself is never
// written here; it is looked up in the REST route table (internal/api,
// routes), so the two APIs cannot drift apart. Every field of Query and
// Mutation, and every other field that takes arguments (it loads something
// of its own), must appear here: Permissions fails otherwise, so does
// NewHandler, and so does the test that walks the schema.
var operations = map[string]string{
	"Query.task":              "GET /v1/tasks/{id}",
	"Query.tasks":             "GET /v1/tasks",
	"Query.step":              "GET /v1/tasks/{id}/steps/{step}",
	"Query.templates":         "GET /v1/templates",
	"Query.template":          "GET /v1/templates/{namespace}/{name}",
	"Query.templateAnalytics": "GET /v1/analytics/templates/{namespace}/{name}",
	"Task.step":               "GET /v1/tasks/{id}/steps/{step}",
	"Mutation.createTask":     "POST /v1/tasks",
	"Mutation.cancelTask":     "POST /v1/tasks/{id}/cancel",
	"Mutation.retryTask":      "POST /v1/tasks/{id}/retry",
	"Mutation.resolveStep":    "POST /v1/tasks/{id}/steps/{step}/resolve",
	"Mutation.completeStep":   "POST /v1/tasks/{id}/steps/{step}/complete",
}

// Operations returns a copy of the table: "Type.field" -> the REST route
// it mirrors ("GET /v1/tasks/{id}").
func Operations() map[string]string {
	out := make(map[string]string, len(operations))
	for k, v := range operations {
		out[k] = v
	}
	return out
}

// Permissions walks schema and returns the permission of every field that
// needs one ("Query.task" -> "tasks:read"), looked up through permission
// from the REST route it mirrors. It fails, naming each, on a field that
// needs a mapping and has none, a mapping to a field the schema lacks, and
// a mapping to a route that does not exist or is public.
func Permissions(schema *ast.Schema, permission func(route string) (string, bool)) (map[string]string, error) {
	var problems []string
	perms := map[string]string{}
	for _, key := range NeedsPermission(schema) {
		route, ok := operations[key]
		if !ok {
			problems = append(problems, key+" has no entry in the operations table (internal/graphql/permissions.go)")
			continue
		}
		perm, ok := permission(route)
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s mirrors %q, which is not a REST route", key, route))
		case perm == "":
			problems = append(problems, fmt.Sprintf("%s mirrors %q, which is public; a GraphQL operation needs a permission", key, route))
		default:
			perms[key] = perm
		}
	}
	for key := range operations {
		if _, ok := perms[key]; !ok && !hasField(schema, key) {
			problems = append(problems, key+" is in the operations table but not in the schema")
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, errors.New("graphql: operation permissions: " + strings.Join(problems, "; "))
	}
	return perms, nil
}

// NeedsPermission lists, sorted, the fields of schema that must be mapped:
// every field of the query and mutation types, and every field that takes
// arguments. Introspection fields (__schema, __type) are public, as the
// schema itself is.
func NeedsPermission(schema *ast.Schema) []string {
	var out []string
	for name, def := range schema.Types {
		if def.Kind != ast.Object || strings.HasPrefix(name, "__") {
			continue
		}
		root := (schema.Query != nil && def == schema.Query) || (schema.Mutation != nil && def == schema.Mutation) ||
			(schema.Subscription != nil && def == schema.Subscription)
		for _, f := range def.Fields {
			if strings.HasPrefix(f.Name, "__") {
				continue
			}
			if root || len(f.Arguments) > 0 {
				out = append(out, name+"."+f.Name)
			}
		}
	}
	sort.Strings(out)
	return out
}

func hasField(schema *ast.Schema, key string) bool {
	typ, field, _ := strings.Cut(key, ".")
	def := schema.Types[typ]
	return def != nil && def.Fields.ForName(field) != nil
}
