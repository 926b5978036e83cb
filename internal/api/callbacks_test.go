package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/taskerhq/tasker/internal/auth"
	"github.com/taskerhq/tasker/internal/contract"
)

// approvalYAML: job is handed over to a callback (its handler answers
// tasker_pending), approve waits for a person (tasker.callback).
const approvalYAML = `
namespace: shop
name: approval
version: 1.0.0
steps:
  - name: job
    handler: tasker.noop
    retry: {max_attempts: 2, backoff_base_seconds: 1, max_backoff_seconds: 1, jitter: 0}
  - {name: approve, handler: tasker.callback, config: {timeout_seconds: 3600}}
  - {name: after, handler: tasker.noop, depends_on: [job, approve]}
`

// pending answers tasker_pending for step job and keeps its tokens.
type pending struct{ tokens []string }

func (p *pending) handle(pl contract.Payload) (any, *contract.HandlerError) {
	if pl.Tasker.Step == "job" {
		p.tokens = append(p.tokens, pl.Tasker.CallbackToken)
		return map[string]any{"tasker_pending": map[string]any{"timeout_seconds": 60}}, nil
	}
	return map[string]any{}, nil
}

func stepOf(t *testing.T, e *env, id, name, token string) map[string]any {
	t.Helper()
	r := e.get("/v1/tasks/"+id+"/steps/"+name, token)
	wantStatus(t, r, http.StatusOK)
	return r.json(t)
}

func TestCallbackRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{auth: true, templates: []string{approvalYAML}})
	admin := e.token("admin", "*")
	id := e.createTask(map[string]any{"namespace": "shop", "name": "approval", "context": map[string]any{}}, admin)
	p := &pending{}
	e.drain(p.handle)
	if len(p.tokens) != 1 {
		t.Fatalf("tokens = %v", p.tokens)
	}
	tok := p.tokens[0]

	// Both wait, with their due time in the step view.
	for name, kind := range map[string]string{"job": "callback", "approve": "callback"} {
		st := stepOf(t, e, id, name, admin)
		if st["status"] != "waiting" || st["wait_kind"] != kind || st["waiting_until"] == nil {
			t.Fatalf("%s = %v, want waiting with waiting_until", name, st)
		}
	}

	// Callback routes need no bearer token: the callback token is enough.
	hb := e.post("/v1/callbacks/"+tok+"/heartbeat", nil, "")
	wantStatus(t, hb, http.StatusAccepted)
	if b := hb.json(t); b["status"] != "waiting" || b["step"] != "job" || b["waiting_until"] == nil {
		t.Fatalf("heartbeat = %v", b)
	}
	// Bad input changes nothing: a value PostgreSQL cannot store, a body
	// that is not JSON, a failure without a message.
	wantProblem(t, e.post("/v1/callbacks/"+tok+"/success", `{"x":"\u0000"}`, ""), http.StatusUnprocessableEntity, "validation")
	wantProblem(t, e.post("/v1/callbacks/"+tok+"/success", `{"x":`, ""), http.StatusBadRequest, "malformed-request")
	pr := wantProblem(t, e.post("/v1/callbacks/"+tok+"/failure", map[string]any{"code": "x"}, ""), http.StatusUnprocessableEntity, "validation")
	wantPointers(t, pr, "/message")
	if st := stepOf(t, e, id, "job", admin); st["status"] != "waiting" {
		t.Fatalf("job after refused callbacks = %v", st["status"])
	}

	ok := e.post("/v1/callbacks/"+tok+"/success", `{"invoice":"INV-1"}`, "")
	wantStatus(t, ok, http.StatusAccepted)
	if b := ok.json(t); b["status"] != "complete" || b["attempt"] != float64(1) || b["task_id"] != id {
		t.Fatalf("success = %v", b)
	}
	if st := stepOf(t, e, id, "job", admin); st["status"] != "complete" || st["result"].(map[string]any)["invoice"] != "INV-1" {
		t.Fatalf("job = %v", st)
	}
	// Reuse: 409 for every action; unknown or malformed tokens: 404.
	for _, action := range []string{"success", "heartbeat"} {
		wantProblem(t, e.post("/v1/callbacks/"+tok+"/"+action, `{}`, ""), http.StatusConflict, "conflict")
	}
	wantProblem(t, e.post("/v1/callbacks/"+tok+"/failure", map[string]any{"message": "late"}, ""), http.StatusConflict, "conflict")
	wantProblem(t, e.post("/v1/callbacks/"+strings.Repeat("A", 70)+"/success", `{}`, ""), http.StatusNotFound, "not-found")
	wantProblem(t, e.post("/v1/callbacks/not-a-token/success", `{}`, ""), http.StatusNotFound, "not-found")

	// steps/complete needs steps:complete.
	body := map[string]any{"result": map[string]any{"approved_by": "carol"}}
	wantProblem(t, e.post("/v1/tasks/"+id+"/steps/approve/complete", body, e.token("eve", "steps:resolve", "steps:read")), http.StatusForbidden, "forbidden")
	if st := stepOf(t, e, id, "approve", admin); st["status"] != "waiting" {
		t.Fatalf("approve after a forbidden complete = %v", st["status"])
	}
	wantProblem(t, e.post("/v1/tasks/"+id+"/steps/nope/complete", body, e.token("carol", auth.StepsComplete)), http.StatusNotFound, "not-found")
	wantProblem(t, e.post("/v1/tasks/"+id+"/steps/after/complete", body, e.token("carol", auth.StepsComplete)), http.StatusConflict, "conflict")
	done := e.post("/v1/tasks/"+id+"/steps/approve/complete", body, e.token("carol", auth.StepsComplete))
	wantStatus(t, done, http.StatusOK)
	if b := done.json(t); b["status"] != "complete" {
		t.Fatalf("complete = %v", b)
	}
	wantProblem(t, e.post("/v1/tasks/"+id+"/steps/approve/complete", body, e.token("carol", auth.StepsComplete)), http.StatusConflict, "conflict")
	e.drain(p.handle)
	if r := e.get("/v1/tasks/"+id, admin); r.json(t)["status"] != "complete" {
		t.Fatalf("task = %s", r.body)
	}
}

func TestCallbackFailureAndExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{templates: []string{approvalYAML}})
	id := e.createTask(map[string]any{"namespace": "shop", "name": "approval", "context": map[string]any{}}, "")
	p := &pending{}
	e.drain(p.handle)
	// A retryable failure: the step's retry policy applies.
	r := e.post("/v1/callbacks/"+p.tokens[0]+"/failure", map[string]any{"message": "render farm down", "code": "farm", "retry_after_seconds": 1}, "")
	wantStatus(t, r, http.StatusAccepted)
	if b := r.json(t); b["status"] != "waiting_for_retry" {
		t.Fatalf("failure = %v", b)
	}
	st := stepOf(t, e, id, "job", "")
	if st["last_error"].(map[string]any)["code"] != "farm" {
		t.Fatalf("job = %v", st)
	}
	// The retry gets a new token; the old one is refused.
	e.clock.Advance(2 * time.Second)
	if _, err := e.eng.Sweep(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.drain(p.handle)
	if len(p.tokens) != 2 {
		t.Fatalf("tokens = %d, want 2", len(p.tokens))
	}
	wantProblem(t, e.post("/v1/callbacks/"+p.tokens[0]+"/success", `1`, ""), http.StatusConflict, "conflict")
	// No callback within the 60 s timeout: the attempt fails with
	// callback_timeout and its token is gone (410).
	e.clock.Advance(61 * time.Second)
	if _, err := e.eng.Sweep(t.Context()); err != nil {
		t.Fatal(err)
	}
	st = stepOf(t, e, id, "job", "")
	if st["status"] != "error" || st["last_error"].(map[string]any)["code"] != "callback_timeout" {
		t.Fatalf("job = %v, want error with callback_timeout", st)
	}
	wantProblem(t, e.post("/v1/callbacks/"+p.tokens[1]+"/success", `1`, ""), http.StatusGone, "gone")
	// Cancelling a task with a waiting step: the step is cancelled.
	if r := e.post("/v1/tasks/"+id+"/cancel", nil, ""); r.code != http.StatusOK {
		t.Fatalf("cancel = %d %s", r.code, r.body)
	}
	if st := stepOf(t, e, id, "approve", ""); st["status"] != "cancelled" || st["waiting_until"] != nil {
		t.Fatalf("approve = %v", st)
	}
}
