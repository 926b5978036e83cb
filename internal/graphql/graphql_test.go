package graphql_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/taskerhq/tasker/internal/auth"
)

const taskFields = `id namespace name version status context tags idempotencyKey createdAt steps { name state attempts dependsOn result }`

func TestQueries(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 0)
	admin := e.token("admin", "*")
	var ids []string
	for i := range 3 {
		d := ok(t, e.do(admin, `mutation($in: CreateTaskInput!) { createTask(input: $in) { created task { id } } }`,
			map[string]any{"in": map[string]any{"namespace": "shop", "name": "order", "tags": []string{"t"},
				"context": map[string]any{"payment_info": map[string]any{"amount": float64(i) + 0.5}}}}))
		ids = append(ids, dig(d, "createTask", "task", "id").(string))
	}
	e.drain(succeed)

	d := ok(t, e.do(admin, `query($id: ID!) { task(id: $id) { `+taskFields+` step(name: "charge") { step { state } transitions { from to actor } } } }`,
		map[string]any{"id": ids[0]}))
	task := d["task"].(map[string]any)
	if task["status"] != "complete" || dig(task, "context", "payment_info", "amount") != 0.5 || len(task["steps"].([]any)) != 2 {
		t.Fatalf("task = %v", task)
	}
	if st := dig(task, "step", "step", "state"); st != "complete" {
		t.Fatalf("task.step = %v", task["step"])
	}
	if trs := dig(task, "step", "transitions").([]any); len(trs) < 2 {
		t.Fatalf("transitions = %v", trs)
	}

	// Pages of 2, newest first, continued by the cursor.
	d = ok(t, e.do(admin, `{ tasks(namespace: "shop", status: [complete], limit: 2) { tasks { id } nextCursor } }`, nil))
	page := d["tasks"].(map[string]any)
	if got := page["tasks"].([]any); len(got) != 2 || dig(got[0], "id") != ids[2] || page["nextCursor"] == nil {
		t.Fatalf("page 1 = %v", page)
	}
	d = ok(t, e.do(admin, `query($c: String) { tasks(limit: 2, cursor: $c) { tasks { id } nextCursor } }`,
		map[string]any{"c": page["nextCursor"]}))
	page = d["tasks"].(map[string]any)
	if got := page["tasks"].([]any); len(got) != 1 || dig(got[0], "id") != ids[0] || page["nextCursor"] != nil {
		t.Fatalf("page 2 = %v", page)
	}

	// The context is read only when selected, through any fragment.
	d = ok(t, e.do(admin, `{ tasks(limit: 1) { ...P } } fragment P on TaskPage { tasks { id context } }`, nil))
	if got := dig(d, "tasks", "tasks").([]any); dig(got[0], "context", "payment_info", "amount") != 2.5 {
		t.Fatalf("context in a page = %v", got)
	}
	d = ok(t, e.do(admin, `{ tasks(limit: 1) { tasks { id } } }`, nil))
	if got := dig(d, "tasks", "tasks").([]any); len(got) != 1 || len(got[0].(map[string]any)) != 1 {
		t.Fatalf("page without context = %v", got)
	}

	d = ok(t, e.do(admin, `query($id: ID!) { step(taskId: $id, name: "validate") { step { name state result } transitions { to } } }`,
		map[string]any{"id": ids[1]}))
	if dig(d, "step", "step", "result", "step") != "validate" {
		t.Fatalf("step = %v", d)
	}

	d = ok(t, e.do(admin, `{ templates { namespace name version versions stepCount } template(namespace: "shop", name: "flaky") { version contextSchema steps { name handler dependsOn maxAttempts } } }`, nil))
	if n := len(d["templates"].([]any)); n != 3 {
		t.Fatalf("templates = %v", d["templates"])
	}
	if steps := dig(d, "template", "steps").([]any); len(steps) != 2 || dig(steps[0], "maxAttempts") != float64(1) {
		t.Fatalf("template = %v", d["template"])
	}

	// Introspection works: the schema is public.
	d = ok(t, e.do(admin, `{ __schema { mutationType { fields { name } } } }`, nil))
	if n := len(dig(d, "__schema", "mutationType", "fields").([]any)); n != 5 {
		t.Fatalf("mutations = %d", n)
	}
}

func TestQueryErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 0)
	admin := e.token("admin", "*")
	missing := "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
	for _, tc := range []struct {
		name, query string
		status      int
		code        string
	}{
		{"unknown task", `{ task(id: "` + missing + `") { id } }`, http.StatusOK, "not-found"},
		{"bad id", `{ task(id: "nope") { id } }`, http.StatusOK, "invalid-parameter"},
		{"unknown step's task", `{ step(taskId: "` + missing + `", name: "x") { step { name } } }`, http.StatusOK, "not-found"},
		{"limit too large", `{ tasks(limit: 101) { nextCursor } }`, http.StatusOK, "invalid-parameter"},
		{"bad cursor", `{ tasks(cursor: "zzz") { nextCursor } }`, http.StatusOK, "invalid-parameter"},
		{"unknown template", `{ template(namespace: "shop", name: "nope") { name } }`, http.StatusOK, "not-found"},
		{"unknown field", `{ task(id: "` + missing + `") { secret } }`, http.StatusUnprocessableEntity, "validation"},
		{"syntax", `{ task(`, http.StatusBadRequest, "malformed-request"},
		{"unknown enum", `{ tasks(status: [done]) { nextCursor } }`, http.StatusUnprocessableEntity, "validation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(admin, tc.query, nil)
			if r.status != tc.status || r.code() != tc.code {
				t.Fatalf("status %d code %q, want %d %q: %+v", r.status, r.code(), tc.status, tc.code, r.Errors)
			}
			if typ := r.Errors[0].Extensions["type"]; typ != "https://tasker.dev/problems/"+tc.code {
				t.Fatalf("type = %v", typ)
			}
		})
	}
}

func TestMutations(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 0)
	admin := e.token("admin", "*")
	create := `mutation($in: CreateTaskInput!) { createTask(input: $in) { created task { id status idempotencyKey initiator } } }`

	// Idempotent by key, shared with POST /v1/tasks (same scope).
	in := map[string]any{"namespace": "shop", "name": "flaky", "idempotencyKey": "k-1", "initiator": "me"}
	first := ok(t, e.do(admin, create, map[string]any{"in": in}))
	again := ok(t, e.do(admin, create, map[string]any{"in": in}))
	id := dig(first, "createTask", "task", "id").(string)
	if dig(first, "createTask", "created") != true || dig(again, "createTask", "created") != false || dig(again, "createTask", "task", "id") != id {
		t.Fatalf("first %v again %v", first, again)
	}
	in2 := map[string]any{"namespace": "shop", "name": "flaky", "idempotencyKey": "k-1", "initiator": "someone else"}
	if r := e.do(admin, create, map[string]any{"in": in2}); r.code() != "conflict" || r.Data["createTask"] != nil {
		t.Fatalf("reused key = %+v", r)
	}

	// Bad input names its fields and creates nothing.
	bad := e.do(admin, create, map[string]any{"in": map[string]any{"namespace": "shop", "name": "order", "context": map[string]any{"payment_info": map[string]any{"amount": -1}}}})
	if bad.code() != "validation" || !strings.Contains(bad.Errors[0].Message, "context_schema") {
		t.Fatalf("bad context = %+v", bad.Errors)
	}
	if errs := bad.Errors[0].Extensions["errors"].([]any); dig(errs[0], "field") != "input.context/payment_info/amount" {
		t.Fatalf("errors = %v", errs)
	}
	for _, in := range []map[string]any{
		{"namespace": "shop", "name": "nope"},
		{"namespace": "shop", "name": "order", "version": "9.9.9"},
		{"namespace": "-bad", "name": "order"},
		{"namespace": "shop", "name": "flaky", "context": []any{1}},
		{"namespace": "shop", "name": "flaky", "idempotencyKey": " "},
	} {
		if r := e.do(admin, create, map[string]any{"in": in}); r.code() != "validation" {
			t.Errorf("%v: %+v", in, r.Errors)
		}
	}
	if d := ok(t, e.do(admin, `{ tasks { tasks { id } } }`, nil)); len(dig(d, "tasks", "tasks").([]any)) != 1 {
		t.Fatalf("tasks after bad input = %v", d)
	}

	// fetch fails for good: the task is in error; retry, then resolve.
	e.drain(failFetch)
	retry := `mutation($id: ID!) { retryTask(id: $id, reason: "again") { status } }`
	if d := ok(t, e.do(admin, retry, map[string]any{"id": id})); dig(d, "retryTask", "status") == "error" {
		t.Fatalf("retry = %v", d)
	}
	e.drain(failFetch)
	resolve := `mutation($id: ID!) { resolveStep(taskId: $id, step: "fetch", result: {ok: true, n: 1234567890123}, reason: "by hand") { step { state result } transitions { to actor reason } } }`
	d := ok(t, e.do(admin, resolve, map[string]any{"id": id}))
	if dig(d, "resolveStep", "step", "state") != "resolved_manually" {
		t.Fatalf("resolve = %v", d)
	}
	trs := dig(d, "resolveStep", "transitions").([]any)
	if last := trs[len(trs)-1]; dig(last, "actor") != "admin" || dig(last, "reason") != "by hand" {
		t.Fatalf("transition = %v", last)
	}
	if r := e.do(admin, strings.Replace(resolve, "1234567890123", "12345678901234567890", 1), map[string]any{"id": id}); r.status != http.StatusUnprocessableEntity || r.code() != "validation" {
		t.Fatalf("a literal beyond 64 bits = %d %+v", r.status, r.Errors)
	}
	if r := e.do(admin, resolve, map[string]any{"id": id}); r.code() != "conflict" {
		t.Fatalf("resolve twice = %+v", r.Errors)
	}
	if r := e.do(admin, retry, map[string]any{"id": id}); r.code() != "conflict" || !strings.Contains(r.Errors[0].Message, "only a task in error") {
		t.Fatalf("retry not in error = %+v", r.Errors)
	}

	// Cancel a live task; cancelling it again is a conflict.
	approval := ok(t, e.do(admin, create, map[string]any{"in": map[string]any{"namespace": "shop", "name": "approval"}}))
	aid := dig(approval, "createTask", "task", "id").(string)
	e.drain(succeed)
	complete := `mutation($id: ID!, $step: String!) { completeStep(taskId: $id, step: $step, result: {approved: true}) { step { state result } } }`
	if r := e.do(admin, complete, map[string]any{"id": aid, "step": "after"}); r.code() != "conflict" {
		t.Fatalf("complete a pending step = %+v", r.Errors)
	}
	if r := e.do(admin, complete, map[string]any{"id": aid, "step": "nope"}); r.code() != "not-found" {
		t.Fatalf("complete an unknown step = %+v", r.Errors)
	}
	d = ok(t, e.do(admin, complete, map[string]any{"id": aid, "step": "approve"}))
	if dig(d, "completeStep", "step", "state") != "complete" || dig(d, "completeStep", "step", "result", "approved") != true {
		t.Fatalf("complete = %v", d)
	}
	approval = ok(t, e.do(admin, create, map[string]any{"in": map[string]any{"namespace": "shop", "name": "approval"}}))
	aid = dig(approval, "createTask", "task", "id").(string)
	cancel := `mutation($id: ID!) { cancelTask(id: $id, reason: "no longer needed") { status reason } }`
	if d := ok(t, e.do(admin, cancel, map[string]any{"id": aid})); dig(d, "cancelTask", "status") != "cancelled" {
		t.Fatalf("cancel = %v", d)
	}
	if r := e.do(admin, cancel, map[string]any{"id": aid}); r.code() != "conflict" {
		t.Fatalf("cancel twice = %+v", r.Errors)
	}
}

// Every operation needs the permission of the REST route it mirrors: a
// token with every other permission is refused as a whole (403, before
// anything runs), and the same operation passes with that permission.
func TestPermissionPerOperation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 0)
	admin := e.token("admin", "*")
	d := ok(t, e.do(admin, `mutation { createTask(input: {namespace: "shop", name: "approval"}) { task { id } } }`, nil))
	id := dig(d, "createTask", "task", "id").(string)
	all := []string{auth.TasksCreate, auth.TasksList, auth.TasksRead, auth.TasksCancel, auth.TasksRetry,
		auth.StepsRead, auth.StepsResolve, auth.StepsComplete, auth.TemplatesRead, auth.SystemRead}
	for _, tc := range []struct {
		op, perm, query string
	}{
		{"Query.task", auth.TasksRead, `{ task(id: "` + id + `") { id } }`},
		{"Query.tasks", auth.TasksList, `{ tasks { nextCursor } }`},
		{"Query.step", auth.StepsRead, `{ step(taskId: "` + id + `", name: "approve") { step { name } } }`},
		{"Task.step", auth.StepsRead, `{ task(id: "` + id + `") { step(name: "approve") { step { name } } } }`},
		{"Query.templates", auth.TemplatesRead, `{ templates { name } }`},
		{"Query.template", auth.TemplatesRead, `{ template(namespace: "shop", name: "order") { name } }`},
		{"Query.templateAnalytics", auth.SystemRead, `{ templateAnalytics(namespace: "shop", name: "order") { tasks } }`},
		{"Mutation.createTask", auth.TasksCreate, `mutation { createTask(input: {namespace: "shop", name: "flaky"}) { created } }`},
		{"Mutation.retryTask", auth.TasksRetry, `mutation { retryTask(id: "` + id + `") { id } }`},
		{"Mutation.resolveStep", auth.StepsResolve, `mutation { resolveStep(taskId: "` + id + `", step: "approve") { step { name } } }`},
		{"Mutation.completeStep", auth.StepsComplete, `mutation { completeStep(taskId: "` + id + `", step: "after") { step { name } } }`},
		{"Mutation.cancelTask", auth.TasksCancel, `mutation { cancelTask(id: "` + id + `") { id } }`},
	} {
		var others []string
		for _, p := range all {
			if p != tc.perm {
				others = append(others, p)
			}
		}
		r := e.do(e.token("eve", others...), tc.query, nil)
		if r.status != http.StatusForbidden || r.code() != "forbidden" || r.Data != nil ||
			r.Errors[0].Extensions["permission"] != tc.perm || r.Errors[0].Extensions["field"] != tc.op {
			t.Errorf("%s without %s: status %d %+v", tc.op, tc.perm, r.status, r.Errors)
		}
		// With the permission (and tasks:read for Task.step) it runs: any
		// error now is the operation's own, never forbidden.
		r = e.do(e.token("bob", tc.perm, auth.TasksRead), tc.query, nil)
		if r.status != http.StatusOK || r.code() == "forbidden" {
			t.Errorf("%s with %s: status %d %+v", tc.op, tc.perm, r.status, r.Errors)
		}
	}
	// The refused cancel changed nothing before the allowed one ran last.
	// A document with an allowed and a refused mutation runs neither.
	d = ok(t, e.do(admin, `mutation { createTask(input: {namespace: "shop", name: "approval"}) { task { id } } }`, nil))
	id2 := dig(d, "createTask", "task", "id").(string)
	r := e.do(e.token("eve", auth.TasksCancel), `mutation { cancelTask(id: "`+id2+`") { id } completeStep(taskId: "`+id2+`", step: "approve") { step { name } } }`, nil)
	if r.status != http.StatusForbidden || r.Errors[0].Extensions["permission"] != auth.StepsComplete {
		t.Fatalf("mixed = %d %+v", r.status, r.Errors)
	}
	if d := ok(t, e.do(admin, `{ task(id: "`+id2+`") { status } }`, nil)); dig(d, "task", "status") == "cancelled" {
		t.Fatal("a refused document cancelled the task")
	}

	// No token, a bad token: the REST middleware's 401.
	for _, tok := range []string{"", "not-a-token"} {
		rq := e.raw(tok, "application/json", []byte(`{"query":"{ templates { name } }"}`))
		if rq.status != http.StatusUnauthorized {
			t.Errorf("token %q: status %d", tok, rq.status)
		}
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 4096)
	admin := e.token("admin", "*")
	// The deepest query of the schema, and the introspection query of
	// GraphQL tools, pass; introspection nested into itself does not.
	deepest := `mutation { createTask(input: {namespace: "shop", name: "flaky"}) { task { step(name: "fetch") { transitions { to } } } } }`
	if r := e.do(admin, deepest, nil); r.status != http.StatusOK {
		t.Fatalf("the deepest query is refused: %d %+v", r.status, r.Errors)
	}
	if r := e.do(admin, introspectionQuery, nil); r.status != http.StatusOK {
		t.Fatalf("the introspection query is refused: %d %+v", r.status, r.Errors)
	}
	// gqlparser refuses nesting fields inside fields; the depth limit
	// bounds the rest, e.g. ofType chains longer than any type has.
	nested := `{ __type(name: "Task") { fields { type { name } } } }`
	for range 14 {
		nested = strings.Replace(nested, "{ name }", "{ name ofType { name } }", 1)
	}
	if r := e.do(admin, nested, nil); r.status != http.StatusUnprocessableEntity || r.code() != "validation" ||
		r.Errors[0].Extensions["limit"] != "depth" || !strings.Contains(r.Errors[0].Message, "limit of 15") {
		t.Fatalf("a query 18 deep = %d %+v", r.status, r.Errors)
	}

	r := e.do(admin, `{ tasks(limit: 100) { tasks { `+taskFields+` } } }`, nil)
	if r.status != http.StatusUnprocessableEntity || r.code() != "validation" || r.Errors[0].Extensions["limit"] != "complexity" {
		t.Fatalf("complex query = %d %+v", r.status, r.Errors)
	}
	if r := e.do(admin, `{ tasks(limit: 5) { tasks { `+taskFields+` } } }`, nil); r.status != http.StatusOK {
		t.Fatalf("a small page is refused: %+v", r.Errors)
	}

	// The body cap of the REST API applies.
	big := `{"query":"{ templates { name } }","variables":{"pad":"` + strings.Repeat("x", 5000) + `"}}`
	if r := e.raw(admin, "application/json", []byte(big)); r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("big body = %d %+v", r.status, r.Errors)
	}
	for _, tc := range []struct {
		name, ctype, body string
		status            int
		code              string
	}{
		{"not json", "application/json", `{"query":`, http.StatusBadRequest, "malformed-request"},
		{"unknown member", "application/json", `{"query":"{ templates { name } }","x":1}`, http.StatusBadRequest, "malformed-request"},
		{"no query", "application/json", `{}`, http.StatusBadRequest, "malformed-request"},
		{"text", "text/plain", `{"query":"{ templates { name } }"}`, http.StatusUnsupportedMediaType, "unsupported-media-type"},
	} {
		r := e.raw(admin, tc.ctype, []byte(tc.body))
		if r.status != tc.status || r.code() != tc.code {
			t.Errorf("%s: %d %+v", tc.name, r.status, r.Errors)
		}
	}
}

// introspectionQuery is the query GraphQL tools send (graphql-js's
// getIntrospectionQuery, with TypeRef nine levels deep).
const introspectionQuery = `query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name
    ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } } }
}`

func TestTemplateAnalytics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 0)
	admin := e.token("admin", "*")
	for range 2 {
		ok(t, e.do(admin, `mutation { createTask(input: {namespace: "shop", name: "flaky"}) { created } }`, nil))
	}
	e.drain(failFetch)
	d := ok(t, e.do(admin, `{ templateAnalytics(namespace: "shop", name: "flaky", window: "1h") {
  namespace name version windowSeconds tasks truncated slowestPath slowestPathMs
  steps { step runs failures retries failureRate durationMs { p50 p95 p99 } queueWaitMs { p50 } }
} }`, nil))
	a := d["templateAnalytics"].(map[string]any)
	if a["tasks"] != float64(2) || a["windowSeconds"] != float64(3600) || a["version"] != "1.0.0" {
		t.Fatalf("analytics = %v", a)
	}
	steps := a["steps"].([]any)
	if len(steps) == 0 || dig(steps[0], "step") != "fetch" || dig(steps[0], "failures") != float64(2) {
		t.Fatalf("steps = %v", steps)
	}
	for _, tc := range []struct{ q, code string }{
		{`{ templateAnalytics(namespace: "shop", name: "nope") { tasks } }`, "not-found"},
		{`{ templateAnalytics(namespace: "shop", name: "flaky", window: "1s") { tasks } }`, "invalid-parameter"},
		{`{ templateAnalytics(namespace: "shop", name: "flaky", window: "soon") { tasks } }`, "invalid-parameter"},
	} {
		if r := e.do(admin, tc.q, nil); r.code() != tc.code {
			t.Errorf("%s: %+v", tc.q, r.Errors)
		}
	}
}
