package api_test

import (
	"net/http"
	"strings"
	"testing"
)

// Input PostgreSQL cannot store (NUL characters, lone surrogates, numbers
// beyond numeric) in any body field is a 422 naming the field, never a 500.
func TestUnstorableInputIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	id := e.createTask(orderBody(nil), "")
	const (
		create  = `{"namespace":"shop","name":"order","context":{"payment_info":{"amount":1}}, %s}`
		nul     = `"a\u0000b"`
		lone    = `"x\ud800"`
		low     = `"\udc00y"`
		bigNum  = `1e200000`
		tinyNum = `-1e-20000`
	)
	tests := []struct {
		name, path, body, pointer, detail string
	}{
		{"context NUL", "/v1/tasks", `{"namespace":"shop","name":"order","context":{"payment_info":{"amount":1,"note":` + nul + `}}}`,
			"/context/payment_info/note", "NUL character"},
		{"context key NUL", "/v1/tasks", `{"namespace":"shop","name":"order","context":{"payment_info":{"amount":1},"k\u0000":1}}`,
			"/context", "object key contains a NUL character"},
		{"context surrogate", "/v1/tasks", `{"namespace":"shop","name":"order","context":{"payment_info":{"amount":1},"l":[1,` + lone + `]}}`,
			"/context/l/1", "lone surrogate"},
		{"context number", "/v1/tasks", `{"namespace":"shop","name":"order","context":{"payment_info":{"amount":` + bigNum + `}}}`,
			"/context/payment_info/amount", "out of the range"},
		{"context small number", "/v1/tasks", `{"namespace":"shop","name":"order","context":{"payment_info":{"amount":1,"x":` + tinyNum + `}}}`,
			"/context/payment_info/x", "out of the range"},
		{"tags", "/v1/tasks", strings.Replace(create, "%s", `"tags":["ok",`+nul+`]`, 1), "/tags/1", "NUL character"},
		{"tags surrogate", "/v1/tasks", strings.Replace(create, "%s", `"tags":[`+low+`]`, 1), "/tags/0", "lone surrogate"},
		{"initiator", "/v1/tasks", strings.Replace(create, "%s", `"initiator":`+nul, 1), "/initiator", "NUL character"},
		{"initiator surrogate", "/v1/tasks", strings.Replace(create, "%s", `"initiator":`+lone, 1), "/initiator", "lone surrogate"},
		{"source system", "/v1/tasks", strings.Replace(create, "%s", `"source_system":`+nul, 1), "/source_system", "NUL character"},
		{"reason", "/v1/tasks", strings.Replace(create, "%s", `"reason":`+low, 1), "/reason", "lone surrogate"},
		{"idempotency key", "/v1/tasks", strings.Replace(create, "%s", `"idempotency_key":`+nul, 1), "/idempotency_key", "NUL character"},
		{"idempotency key surrogate", "/v1/tasks", strings.Replace(create, "%s", `"idempotency_key":`+lone, 1), "/idempotency_key", "lone surrogate"},
		{"namespace", "/v1/tasks", `{"namespace":` + nul + `,"name":"order"}`, "/namespace", "NUL character"},
		{"version", "/v1/tasks", `{"namespace":"shop","name":"order","version":` + lone + `}`, "/version", "lone surrogate"},
		{"cancel reason", "/v1/tasks/" + id + "/cancel", `{"reason":` + nul + `}`, "/reason", "NUL character"},
		{"retry reason", "/v1/tasks/" + id + "/retry", `{"reason":` + lone + `}`, "/reason", "lone surrogate"},
		{"resolve reason", "/v1/tasks/" + id + "/steps/charge/resolve", `{"reason":` + nul + `}`, "/reason", "NUL character"},
		{"resolve result", "/v1/tasks/" + id + "/steps/charge/resolve", `{"result":{"v":` + nul + `}}`, "/result/v", "NUL character"},
		{"resolve result surrogate", "/v1/tasks/" + id + "/steps/charge/resolve", `{"result":[` + low + `]}`, "/result/0", "lone surrogate"},
		{"resolve result number", "/v1/tasks/" + id + "/steps/charge/resolve", `{"result":{"n":` + bigNum + `}}`, "/result/n", "out of the range"},
		{"unknown field", "/v1/tasks/" + id + "/cancel", `{"why":` + nul + `}`, "/why", "NUL character"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := wantProblem(t, e.post(tc.path, tc.body, ""), http.StatusUnprocessableEntity, "validation")
			wantPointers(t, p, tc.pointer)
			if !strings.Contains(p.Errors[0].Detail, tc.detail) {
				t.Fatalf("detail %q does not say %q", p.Errors[0].Detail, tc.detail)
			}
		})
	}
}

// Header values reach the database too: an Idempotency-Key that is not
// valid UTF-8 is a 400 naming the header.
func TestUnstorableIdempotencyHeader(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	r := e.do(req{method: "POST", path: "/v1/tasks", body: orderBody(nil), header: map[string]string{"Idempotency-Key": "key-\xff"}})
	p := wantProblem(t, r, http.StatusBadRequest, "invalid-parameter")
	if len(p.Errors) != 1 || p.Errors[0].Header != "Idempotency-Key" {
		t.Fatalf("errors = %+v", p.Errors)
	}
}

// A context that cannot fit in a handler payload is a 422 at /context
// naming the limit, not a task whose every dispatch fails later.
func TestContextOverPayloadLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{maxPayload: 16 << 10})
	body := orderBody(map[string]any{"context": map[string]any{
		"payment_info": map[string]any{"amount": 12.5}, "blob": strings.Repeat("x", 16<<10)}})
	p := wantProblem(t, e.post("/v1/tasks", body, ""), http.StatusUnprocessableEntity, "validation")
	wantPointers(t, p, "/context")
	if !strings.Contains(p.Errors[0].Detail, "16384-byte payload limit") {
		t.Fatalf("detail %q does not name the limit", p.Errors[0].Detail)
	}
	// A context that fits is accepted.
	wantStatus(t, e.post("/v1/tasks", orderBody(nil), ""), http.StatusCreated)
}
