package graphql_test

import (
	"fmt"
	"sort"

	"github.com/taskerhq/tasker/internal/graphql"
)

// Every GraphQL operation names the REST route it mirrors; its permission
// is that route's (docs/graphql.md).
func ExampleOperations() {
	ops := graphql.Operations()
	fields := make([]string, 0, len(ops))
	for f := range ops {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	for _, f := range fields {
		fmt.Printf("%-24s %s\n", f, ops[f])
	}
	// Output:
	// Mutation.cancelTask      POST /v1/tasks/{id}/cancel
	// Mutation.completeStep    POST /v1/tasks/{id}/steps/{step}/complete
	// Mutation.createTask      POST /v1/tasks
	// Mutation.resolveStep     POST /v1/tasks/{id}/steps/{step}/resolve
	// Mutation.retryTask       POST /v1/tasks/{id}/retry
	// Query.step               GET /v1/tasks/{id}/steps/{step}
	// Query.task               GET /v1/tasks/{id}
	// Query.tasks              GET /v1/tasks
	// Query.template           GET /v1/templates/{namespace}/{name}
	// Query.templateAnalytics  GET /v1/analytics/templates/{namespace}/{name}
	// Query.templates          GET /v1/templates
	// Task.step                GET /v1/tasks/{id}/steps/{step}
}
