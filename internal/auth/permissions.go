package auth

import (
	"errors"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// Permissions checked by the API (docs/auth.md, "Permissions").
const (
	TasksCreate   = "tasks:create"
	TasksRead     = "tasks:read"
	TasksList     = "tasks:list"
	TasksCancel   = "tasks:cancel"
	TasksRetry    = "tasks:retry"
	StepsRead     = "steps:read"
	StepsResolve  = "steps:resolve"
	StepsComplete = "steps:complete"
	TemplatesRead = "templates:read"
	// Schedules: reading them, and pausing or resuming one (an operator's
	// right, like cancelling a task).
	SchedulesRead   = "schedules:read"
	SchedulesManage = "schedules:manage"
	SystemRead      = "system:read"
	// SystemAdmin manages webhook subscriptions.
	SystemAdmin = "system:admin"
)

// AllPermissions lists every permission, e.g. for `tasker token --all`.
var AllPermissions = []string{
	TasksCreate, TasksRead, TasksList, TasksCancel, TasksRetry,
	StepsRead, StepsResolve, StepsComplete,
	TemplatesRead,
	SchedulesRead, SchedulesManage,
	SystemRead, SystemAdmin,
}

// Principal is the verified caller.
type Principal struct {
	Subject     string   // the `sub` claim; may be empty
	Permissions []string // union of `scope` and `permissions`, deduplicated, in token order
}

// Allows reports whether p holds permission: exactly, through a
// "resource:*" wildcard (e.g. "tasks:*" allows "tasks:create"), or through
// "*". A nil Principal allows nothing.
func (p *Principal) Allows(permission string) bool {
	if p == nil || permission == "" {
		return false
	}
	for _, g := range p.Permissions {
		switch {
		case g == "*", g == permission:
			return true
		case strings.HasSuffix(g, ":*") && len(g) > 2 && strings.HasPrefix(permission, g[:len(g)-1]):
			return true
		}
	}
	return false
}

// permissionsFrom collects the `scope` and `permissions` claims. Each may be
// a space-separated string or an array of strings.
func permissionsFrom(claims jwt.MapClaims) ([]string, error) {
	var out []string
	for _, name := range []string{"scope", "permissions"} {
		raw, ok := claims[name]
		if !ok || raw == nil {
			continue
		}
		var items []string
		switch x := raw.(type) {
		case string:
			items = strings.Fields(x)
		case []any:
			for _, e := range x {
				s, ok := e.(string)
				if !ok {
					return nil, errors.New("malformed " + name + " claim: want a string or an array of strings")
				}
				items = append(items, strings.Fields(s)...)
			}
		default:
			return nil, errors.New("malformed " + name + " claim: want a string or an array of strings")
		}
		for _, it := range items {
			if !slices.Contains(out, it) {
				out = append(out, it)
			}
		}
	}
	return out, nil
}
