package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/taskerhq/tasker/internal/api"
	"github.com/taskerhq/tasker/internal/auth"
	"github.com/taskerhq/tasker/internal/blob"
	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/enginetest"
	"github.com/taskerhq/tasker/internal/pgtest"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/template"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// Templates every test server knows.
const (
	orderYAML = `
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
  - {name: reserve, handler: tasker.noop, depends_on: [validate], concurrency: 5}
  - {name: ship, handler: tasker.noop, depends_on: [charge, reserve]}
`
	orderV2YAML = `
namespace: shop
name: order
version: 2.0.0
description: Take an order, v2
steps:
  - {name: only, handler: tasker.noop}
`
	flakyYAML = `
namespace: shop
name: flaky
version: 1.0.0
steps:
  - {name: fetch, handler: tasker.noop, retry: {max_attempts: 1}}
  - {name: after, handler: tasker.noop, depends_on: [fetch]}
`
)

// env is one API over its own database.
type env struct {
	t      *testing.T
	h      http.Handler
	eng    *engine.Engine
	pool   *pgxpool.Pool
	clock  *enginetest.Clock
	queue  *enginetest.Queue
	inv    *enginetest.Invoker
	secret []byte // set when auth is on
}

type envOptions struct {
	auth        bool
	maxBody     int64
	maxResponse int
	hosts       []string // api.Config.AllowedHosts
	metrics     http.Handler
	maxPayload  int      // engine.Config.MaxPayloadBytes
	templates   []string // more templates (YAML) beside the shared ones
	// blobInline, when set, stores contexts and results over this many
	// bytes out of line, in the database (blob.Local, as tasker dev does).
	blobInline int
}

var testSecret = []byte("0123456789abcdef0123456789abcdef-tasker-api-tests")

func newEnv(t *testing.T, opts envOptions) *env {
	t.Helper()
	pool := pgtest.Pool(t)
	st, err := store.New(pool)
	if err != nil {
		t.Fatal(err)
	}
	var ts []*template.Template
	for i, y := range append([]string{orderYAML, orderV2YAML, flakyYAML}, opts.templates...) {
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
	e := &env{t: t, pool: pool, clock: enginetest.NewClock(time.Now().Truncate(time.Microsecond)), queue: &enginetest.Queue{}, inv: &enginetest.Invoker{}}
	e.eng, err = engine.New(engine.Config{Store: st, Templates: set, Queue: e.queue, Invoker: e.inv, Clock: e.clock, MaxInFlight: 50,
		// A fixed cap: adaptive concurrency (engine tests) would move it under load.
		Adaptive:        engine.AdaptiveConfig{Disabled: true},
		MaxPayloadBytes: opts.maxPayload, Blobs: blobsFor(t, st, opts.blobInline), PayloadInlineBytes: opts.blobInline})
	if err != nil {
		t.Fatal(err)
	}
	cfg := api.Config{Engine: e.eng, Store: st, MaxBodyBytes: opts.maxBody, Metrics: opts.metrics,
		MaxResponseBytes: opts.maxResponse, AllowedHosts: opts.hosts}
	if opts.auth {
		e.secret = testSecret
		cfg.Auth, err = auth.New(t.Context(), auth.Config{HS256Secret: testSecret})
		if err != nil {
			t.Fatal(err)
		}
	}
	e.h, err = api.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// blobsFor is the large-payload store of an env: none without inline.
func blobsFor(t *testing.T, st *store.Store, inline int) engine.Blobs {
	t.Helper()
	if inline <= 0 {
		return nil
	}
	b, err := blob.NewLocal(st, "http://127.0.0.1:1", []byte("0123456789abcdef0123456789abcdef-blobs"), 10<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// token mints a token with the given permissions.
func (e *env) token(sub string, perms ...string) string {
	e.t.Helper()
	tok, err := auth.SignHS256(e.secret, map[string]any{
		"sub": sub, "exp": time.Now().Add(time.Hour).Unix(), "scope": strings.Join(perms, " "),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

type resp struct {
	code   int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v\n%s", err, r.body)
	}
	return m
}

func (r resp) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, r.body)
	}
}

// req is one request to send.
type req struct {
	method, path string
	body         any               // string, []byte, io.Reader or a value to marshal
	header       map[string]string // extra headers; "" leaves the header out
	host         string            // Host header; default example.com
	token        string
}

// do sends a request through the handler and checks what every response
// must satisfy: a correlation id, no leaked internals, and a documented
// status and body shape.
func (e *env) do(rq req) resp {
	e.t.Helper()
	var body io.Reader
	switch b := rq.body.(type) {
	case nil:
	case string:
		body = strings.NewReader(b)
	case []byte:
		body = bytes.NewReader(b)
	case io.Reader:
		body = b
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		body = bytes.NewReader(data)
	}
	r := httptest.NewRequest(rq.method, rq.path, body)
	if body != nil || rq.method == http.MethodPost {
		// As a client should; with auth off a POST without it is a 415.
		r.Header.Set("Content-Type", "application/json")
	}
	for k, v := range rq.header {
		r.Header.Set(k, v)
		if v == "" { // an empty value sends no such header
			r.Header.Del(k)
		}
	}
	if rq.token != "" {
		r.Header.Set("Authorization", "Bearer "+rq.token)
	}
	if rq.host != "" {
		r.Host = rq.host
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	res := resp{code: w.Code, header: w.Header(), body: w.Body.Bytes()}
	checkResponse(e.t, rq.method, r.URL.Path, res)
	return res
}

func (e *env) get(path, token string) resp { return e.do(req{method: "GET", path: path, token: token}) }

func (e *env) post(path string, body any, token string) resp {
	return e.do(req{method: "POST", path: path, body: body, token: token})
}

func wantStatus(t *testing.T, r resp, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("status = %d, want %d\n%s", r.code, code, r.body)
	}
}

// wantProblem checks a problem response and returns it.
func wantProblem(t *testing.T, r resp, code int, typ string) api.Problem {
	t.Helper()
	wantStatus(t, r, code)
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q", ct)
	}
	var p api.Problem
	r.decode(t, &p)
	if p.Type != api.ProblemBase+typ || p.Status != code || p.Title == "" || p.Detail == "" {
		t.Fatalf("problem = %+v, want type %s", p, typ)
	}
	return p
}

func wantPointers(t *testing.T, p api.Problem, pointers ...string) {
	t.Helper()
	var got []string
	for _, e := range p.Errors {
		got = append(got, e.Pointer)
		if e.Detail == "" {
			t.Errorf("field error without detail: %+v", e)
		}
	}
	if strings.Join(got, " ") != strings.Join(pointers, " ") {
		t.Fatalf("pointers = %v, want %v (%+v)", got, pointers, p.Errors)
	}
}

// handlerFunc decides a step's outcome: a result, or a handled error.
type handlerFunc func(p contract.Payload) (any, *contract.HandlerError)

func succeed(p contract.Payload) (any, *contract.HandlerError) {
	return map[string]any{"step": p.Tasker.Step}, nil
}

// drain delivers immediate queue messages and runs invocations until the
// engine has nothing left to do now.
func (e *env) drain(fn handlerFunc) {
	e.t.Helper()
	ctx := context.Background()
	for range 1000 {
		var in []engine.InMessage
		for _, m := range e.queue.Take() {
			if m.Delay <= 0 {
				in = append(in, engine.InMessage{ID: uuid.NewString(), Body: m.Body})
			}
		}
		for _, inv := range e.inv.Take() {
			res, herr := fn(enginetest.Payload(e.t, inv))
			rec := enginetest.Record(e.t, inv, enginetest.Outcome{Result: res, Err: herr})
			in = append(in, engine.InMessage{ID: uuid.NewString(), Body: rec})
		}
		if len(in) == 0 {
			return
		}
		e.clock.Advance(time.Millisecond)
		failed, err := e.eng.HandleMessages(ctx, in)
		if err != nil || len(failed) > 0 {
			e.t.Fatalf("handle messages: %v %v", failed, err)
		}
	}
	e.t.Fatal("drain did not settle")
}

// createTask creates a task through the API and returns its id.
func (e *env) createTask(body map[string]any, token string) string {
	e.t.Helper()
	r := e.post("/v1/tasks", body, token)
	wantStatus(e.t, r, http.StatusCreated)
	return r.json(e.t)["id"].(string)
}

func orderBody(extra map[string]any) map[string]any {
	b := map[string]any{"namespace": "shop", "name": "order", "version": "1.0.0",
		"context": map[string]any{"payment_info": map[string]any{"amount": 12.5}}}
	for k, v := range extra {
		b[k] = v
	}
	return b
}

// --- OpenAPI conformance of every response ---------------------------------

type openapiDoc struct {
	Paths map[string]map[string]struct {
		Responses map[string]struct {
			Ref     string `json:"$ref"`
			Content map[string]json.RawMessage
		}
	}
	Components struct {
		Responses map[string]struct {
			Content map[string]json.RawMessage
		}
	}
}

var (
	docOnce  sync.Once
	doc      openapiDoc
	compiler *jsonschema.Compiler
	schemaMu sync.Mutex
	schemas  = map[string]*jsonschema.Schema{}
)

const docURL = "https://tasker.dev/openapi.json"

func loadDoc(t *testing.T) {
	t.Helper()
	docOnce.Do(func() {
		raw := api.OpenAPI()
		if err := json.Unmarshal(raw, &doc); err != nil {
			panic(err)
		}
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			panic(err)
		}
		compiler = jsonschema.NewCompiler()
		compiler.DefaultDraft(jsonschema.Draft2020)
		compiler.AssertFormat()
		if err := compiler.AddResource(docURL, v); err != nil {
			panic(err)
		}
	})
}

// matchPath finds the documented path template for a concrete path.
func matchPath(path string) (string, bool) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	// The most specific template wins, as in ServeMux: the fewest
	// wildcards (/v1/tasks/bulk/cancel over /v1/tasks/{id}/cancel).
	best, bestWild := "", -1
	for tmpl := range doc.Paths {
		ts := strings.Split(strings.Trim(tmpl, "/"), "/")
		if len(ts) != len(segs) {
			continue
		}
		ok, wild := true, 0
		for i := range ts {
			if strings.HasPrefix(ts[i], "{") {
				wild++
			} else if ts[i] != segs[i] {
				ok = false
				break
			}
		}
		if ok && (bestWild < 0 || wild < bestWild) {
			best, bestWild = tmpl, wild
		}
	}
	return best, bestWild >= 0
}

func checkResponse(t *testing.T, method, path string, r resp) {
	t.Helper()
	for _, bad := range []string{"SQLSTATE", "goroutine", "panic(", "pgx", ".go:"} {
		if bytes.Contains(r.body, []byte(bad)) {
			t.Fatalf("%s %s: response leaks %q:\n%s", method, path, bad, r.body)
		}
	}
	if r.header.Get(api.HeaderCorrelationID) == "" {
		t.Fatalf("%s %s: no %s header", method, path, api.HeaderCorrelationID)
	}
	loadDoc(t)
	tmpl, ok := matchPath(path)
	if !ok {
		return // unrouted: checked by the tests that make such requests
	}
	op, ok := doc.Paths[tmpl][strings.ToLower(method)]
	if !ok {
		if method == "HEAD" {
			return
		}
		if r.code != http.StatusMethodNotAllowed {
			t.Fatalf("%s %s: undocumented method answered %d", method, path, r.code)
		}
		return
	}
	rs, ok := op.Responses[strconv.Itoa(r.code)]
	if !ok {
		t.Fatalf("%s %s: status %d is not documented for %s %s\n%s", method, path, r.code, method, tmpl, r.body)
	}
	content := rs.Content
	schemaBase := fmt.Sprintf("#/paths/%s/%s/responses/%d/content/", pointerEscape(tmpl), strings.ToLower(method), r.code)
	if rs.Ref != "" {
		name := strings.TrimPrefix(rs.Ref, "#/components/responses/")
		content = doc.Components.Responses[name].Content
		schemaBase = "#/components/responses/" + name + "/content/"
	}
	if r.code == http.StatusNoContent {
		if len(r.body) > 0 {
			t.Fatalf("%s %s: 204 with a body", method, path)
		}
		return
	}
	mt, _, err := mime.ParseMediaType(r.header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("%s %s: Content-Type %q: %v", method, path, r.header.Get("Content-Type"), err)
	}
	if _, ok := content[mt]; !ok {
		t.Fatalf("%s %s: media type %s is not documented for status %d", method, path, mt, r.code)
	}
	if mt != "application/json" && mt != "application/problem+json" {
		return
	}
	if tmpl == "/v1/openapi.json" {
		return
	}
	sch := compileSchema(t, schemaBase+pointerEscape(mt)+"/schema")
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("%s %s: body is not JSON: %v", method, path, err)
	}
	if err := sch.Validate(v); err != nil {
		t.Fatalf("%s %s: %d body does not match the documented schema: %v\n%s", method, path, r.code, err, r.body)
	}
}

func compileSchema(t *testing.T, ptr string) *jsonschema.Schema {
	t.Helper()
	schemaMu.Lock()
	defer schemaMu.Unlock()
	if s, ok := schemas[ptr]; ok {
		return s
	}
	s, err := compiler.Compile(docURL + ptr)
	if err != nil {
		t.Fatalf("compile %s: %v", ptr, err)
	}
	schemas[ptr] = s
	return s
}

func pointerEscape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// The conformance check itself must bite: a body that breaks the
// documented shape is caught.
func TestSchemaCheckBites(t *testing.T) {
	t.Parallel()
	loadDoc(t)
	sch := compileSchema(t, "#/components/schemas/Task")
	for _, bad := range []string{`{"id": 1}`, `{}`} {
		v, err := jsonschema.UnmarshalJSON(strings.NewReader(bad))
		if err != nil {
			t.Fatal(err)
		}
		if sch.Validate(v) == nil {
			t.Errorf("%s passed the Task schema", bad)
		}
	}
	ptr := fmt.Sprintf("#/paths/%s/get/responses/200/content/application~1json/schema", pointerEscape("/v1/tasks/{id}"))
	v, _ := jsonschema.UnmarshalJSON(strings.NewReader(`{"tasks": []}`))
	if compileSchema(t, ptr).Validate(v) == nil {
		t.Error("a task list passed as a task")
	}
}
