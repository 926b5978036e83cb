package graphql_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/api"
	"github.com/taskerhq/tasker/internal/auth"
	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/enginetest"
	"github.com/taskerhq/tasker/internal/pgtest"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/template"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// Templates every test server knows.
var templates = []string{`
namespace: shop
name: order
version: 1.0.0
description: Take an order
context_schema:
  type: object
  required: [payment_info]
  properties:
    payment_info:
      type: object
      required: [amount]
      properties:
        amount: {type: number, minimum: 0}
steps:
  - {name: validate, handler: tasker.noop}
  - {name: charge, handler: tasker.noop, depends_on: [validate]}
`, `
namespace: shop
name: flaky
version: 1.0.0
steps:
  - {name: fetch, handler: tasker.noop, retry: {max_attempts: 1}}
  - {name: after, handler: tasker.noop, depends_on: [fetch]}
`, `
namespace: shop
name: approval
version: 1.0.0
steps:
  - {name: approve, handler: tasker.callback, config: {timeout_seconds: 3600}}
  - {name: after, handler: tasker.noop, depends_on: [approve]}
`}

// env is the whole HTTP API, with auth, over its own database.
type env struct {
	t     *testing.T
	h     http.Handler
	eng   *engine.Engine
	clock *enginetest.Clock
	queue *enginetest.Queue
	inv   *enginetest.Invoker
}

var secret = []byte("0123456789abcdef0123456789abcdef-tasker-graphql-tests")

func newEnv(t *testing.T, maxBody int64) *env {
	t.Helper()
	pool := pgtest.Pool(t)
	st, err := store.New(pool)
	if err != nil {
		t.Fatal(err)
	}
	var ts []*template.Template
	for i, y := range templates {
		tpl, err := template.Parse(fmt.Sprintf("t%d.yaml", i), []byte(y), template.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, tpl)
	}
	set, err := template.NewSet(ts...)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, clock: enginetest.NewClock(time.Now().Truncate(time.Microsecond)), queue: &enginetest.Queue{}, inv: &enginetest.Invoker{}}
	e.eng, err = engine.New(engine.Config{Store: st, Templates: set, Queue: e.queue, Invoker: e.inv, Clock: e.clock, MaxInFlight: 50})
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.New(t.Context(), auth.Config{HS256Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	e.h, err = api.New(api.Config{Engine: e.eng, Store: st, Auth: v, MaxBodyBytes: maxBody,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// token mints a token for sub with perms.
func (e *env) token(sub string, perms ...string) string {
	e.t.Helper()
	tok, err := auth.SignHS256(secret, map[string]any{"sub": sub, "permissions": perms,
		"exp": time.Now().Add(time.Hour).Unix()})
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// gqlError is one error of a response.
type gqlError struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions"`
}

type result struct {
	status int
	Data   map[string]any `json:"data"`
	Errors []gqlError     `json:"errors"`
}

// code is the first error's extensions.code.
func (r result) code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

// do posts a GraphQL request.
func (e *env) do(token, query string, vars map[string]any) result {
	e.t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		e.t.Fatal(err)
	}
	return e.raw(token, "application/json", body)
}

func (e *env) raw(token, ctype string, body []byte) result {
	e.t.Helper()
	rq := httptest.NewRequest(http.MethodPost, "/v1/graphql", bytes.NewReader(body))
	rq.Header.Set("Content-Type", ctype)
	if token != "" {
		rq.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, rq)
	out := result{status: w.Code}
	if ct := w.Header().Get("Content-Type"); ct == "application/json" {
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			e.t.Fatalf("response %s: %v", w.Body, err)
		}
	} else {
		out.Errors = []gqlError{{Message: w.Body.String(), Extensions: map[string]any{"content-type": ct}}}
	}
	return out
}

// ok fails unless r ran without errors.
func ok(t *testing.T, r result) map[string]any {
	t.Helper()
	if r.status != http.StatusOK || len(r.Errors) > 0 {
		t.Fatalf("status %d, errors %+v", r.status, r.Errors)
	}
	return r.Data
}

// drain delivers immediate queue messages and runs invocations with fn
// until the engine has nothing left to do now.
func (e *env) drain(fn func(p contract.Payload) (any, *contract.HandlerError)) {
	e.t.Helper()
	for range 1000 {
		var in []engine.InMessage
		for _, m := range e.queue.Take() {
			if m.Delay <= 0 {
				in = append(in, engine.InMessage{ID: uuid.NewString(), Body: m.Body})
			}
		}
		for _, inv := range e.inv.Take() {
			res, herr := fn(enginetest.Payload(e.t, inv))
			in = append(in, engine.InMessage{ID: uuid.NewString(), Body: enginetest.Record(e.t, inv, enginetest.Outcome{Result: res, Err: herr})})
		}
		if len(in) == 0 {
			return
		}
		e.clock.Advance(time.Millisecond)
		failed, err := e.eng.HandleMessages(context.Background(), in)
		if err != nil || len(failed) > 0 {
			e.t.Fatalf("handle messages: %v %v", failed, err)
		}
	}
	e.t.Fatal("drain did not settle")
}

func succeed(p contract.Payload) (any, *contract.HandlerError) {
	return map[string]any{"step": p.Tasker.Step}, nil
}

// failFetch fails step fetch for good and succeeds the others.
func failFetch(p contract.Payload) (any, *contract.HandlerError) {
	if p.Tasker.Step == "fetch" {
		return nil, &contract.HandlerError{Message: "upstream down", Permanent: true}
	}
	return succeed(p)
}

// dig walks a decoded JSON value by keys.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v
}
