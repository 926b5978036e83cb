package api_test

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/taskerhq/tasker/internal/api"
)

// The embedded OpenAPI document lists every route with the permission it
// needs; public routes need none, and POST /v1/graphql needs a valid token
// and, per field, the permission of the route the field mirrors.
func ExampleOpenAPI() {
	var doc struct {
		Paths map[string]map[string]struct {
			Permission    string `json:"x-permission"`
			Authenticated bool   `json:"x-authenticated"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		panic(err)
	}
	var lines []string
	for path, ops := range doc.Paths {
		for method, op := range ops {
			perm := op.Permission
			switch {
			case op.Authenticated:
				perm = "token, then per field"
			case perm == "":
				perm = "public"
			}
			lines = append(lines, fmt.Sprintf("%-4s %-38s %s", strings.ToUpper(method), path, perm))
		}
	}
	sort.Strings(lines)
	fmt.Println(strings.Join(lines, "\n"))
	// Output:
	// DELETE /v1/subscriptions/{id}                 system:admin
	// GET  /v1/analytics/templates/{namespace}/{name} system:read
	// GET  /v1/graphql/schema.graphqls            public
	// GET  /v1/health/live                        public
	// GET  /v1/health/ready                       public
	// GET  /v1/health/status                      system:read
	// GET  /v1/metrics                            system:read
	// GET  /v1/openapi.json                       public
	// GET  /v1/schedules                          schedules:read
	// GET  /v1/subscriptions                      system:admin
	// GET  /v1/subscriptions/{id}/deliveries      system:admin
	// GET  /v1/tasks                              tasks:list
	// GET  /v1/tasks/{id}                         tasks:read
	// GET  /v1/tasks/{id}/graph                   tasks:read
	// GET  /v1/tasks/{id}/steps/{step}            steps:read
	// GET  /v1/tasks/{id}/steps/{step}/instances  steps:read
	// GET  /v1/tasks/{id}/transitions             tasks:read
	// GET  /v1/templates                          templates:read
	// GET  /v1/templates/{namespace}/{name}       templates:read
	// POST /v1/callbacks/{token}/failure          public
	// POST /v1/callbacks/{token}/heartbeat        public
	// POST /v1/callbacks/{token}/success          public
	// POST /v1/graphql                            token, then per field
	// POST /v1/schedules/{id}/pause               schedules:manage
	// POST /v1/schedules/{id}/resume              schedules:manage
	// POST /v1/subscriptions                      system:admin
	// POST /v1/tasks                              tasks:create
	// POST /v1/tasks/bulk/cancel                  tasks:cancel
	// POST /v1/tasks/bulk/retry                   tasks:retry
	// POST /v1/tasks/{id}/cancel                  tasks:cancel
	// POST /v1/tasks/{id}/retry                   tasks:retry
	// POST /v1/tasks/{id}/steps/{step}/complete   steps:complete
	// POST /v1/tasks/{id}/steps/{step}/resolve    steps:resolve
}
