package devserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/internal/devserver"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/pgtest"
	"github.com/taskerhq/tasker/sdk"
)

// bigTemplate: produce → check; mid_a, mid_b → join (two parents within
// the inline threshold whose sum is over the invocation payload limit);
// huge (a result over the limit) and forge (a reference to data it did not
// upload) fail alone.
const bigTemplate = `namespace: big
name: roundtrip
version: 1.0.0
steps:
  - {name: produce, handler: big.produce, retry: {max_attempts: 1}}
  - {name: check, handler: big.check, depends_on: [produce], retry: {max_attempts: 1}}
  - {name: mid_a, handler: big.mid, retry: {max_attempts: 1}}
  - {name: mid_b, handler: big.mid, retry: {max_attempts: 1}}
  - {name: join, handler: big.join, depends_on: [mid_a, mid_b], retry: {max_attempts: 1}}
  - {name: huge, handler: big.huge, retry: {max_attempts: 1}}
  - {name: forge, handler: big.forge, retry: {max_attempts: 1}}
  - {name: liar, handler: big.liar, retry: {max_attempts: 1}}
  - {name: pause, handler: tasker.wait, config: {until: "${context.until}"}}
  - name: gated
    handler: tasker.noop
    depends_on: [produce]
    when: "context.tag == 'ctx' && results.produce.tag == 'result' && size(results.produce.blob) > 1000"
`

const (
	fiveMiB  = 5 << 20
	limitMiB = 6 << 20 // TASKER_PAYLOAD_MAX_BYTES of these tests
)

type bigValue struct {
	Blob string `json:"blob"`
	Tag  string `json:"tag"`
	// Until is read by the wait step from the (stored out of line) context.
	Until string `json:"until,omitempty"`
}

func bigRegistry(t *testing.T) *sdk.Registry {
	t.Helper()
	reg := sdk.NewRegistry()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(reg.Register("big.produce", func(_ context.Context, in sdk.Input) (any, error) {
		var c bigValue
		if err := in.Context(&c); err != nil {
			return nil, err
		}
		if len(c.Blob) != fiveMiB || c.Tag != "ctx" {
			return nil, sdk.Permanent(fmt.Errorf("context arrived with %d bytes, tag %q", len(c.Blob), c.Tag))
		}
		return bigValue{Blob: strings.Repeat("r", fiveMiB), Tag: "result"}, nil
	}))
	must(reg.Register("big.check", func(_ context.Context, in sdk.Input) (any, error) {
		var r bigValue
		if err := in.Result("produce", &r); err != nil {
			return nil, err
		}
		if len(r.Blob) != fiveMiB || r.Tag != "result" || strings.Trim(r.Blob, "r") != "" {
			return nil, sdk.Permanent(fmt.Errorf("parent result arrived with %d bytes, tag %q", len(r.Blob), r.Tag))
		}
		return map[string]int{"checked": len(r.Blob)}, nil
	}))
	must(reg.Register("big.mid", func(context.Context, sdk.Input) (any, error) {
		return bigValue{Blob: strings.Repeat("m", 150<<10), Tag: "mid"}, nil
	}))
	must(reg.Register("big.join", func(_ context.Context, in sdk.Input) (any, error) {
		n := 0
		for _, p := range []string{"mid_a", "mid_b"} {
			var r bigValue
			if err := in.Result(p, &r); err != nil {
				return nil, err
			}
			n += len(r.Blob)
		}
		return map[string]int{"joined": n}, nil
	}))
	must(reg.Register("big.huge", func(context.Context, sdk.Input) (any, error) {
		return bigValue{Blob: strings.Repeat("h", limitMiB+1)}, nil
	}))
	must(reg.Register("big.forge", func(context.Context, sdk.Input) (any, error) {
		other := "pg:tasks/" + uuid.NewString() + "/context"
		return map[string]any{"tasker_ref": map[string]any{"uri": other, "size": 2, "sha256": strings.Repeat("0", 64)}}, nil
	}))
	// liar uploads 100 KiB to its own upload URL and claims 50 bytes.
	must(reg.Register("big.liar", func(ctx context.Context, in sdk.Input) (any, error) {
		up := in.Meta().ResultUpload
		if up == nil {
			return nil, sdk.Permanent(fmt.Errorf("no result_upload in the payload"))
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, up.URL, bytes.NewReader(bytes.Repeat([]byte("1"), 100<<10)))
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		return map[string]any{"tasker_ref": map[string]any{"uri": up.URI, "size": 50, "sha256": strings.Repeat("0", 64)}}, nil
	}))
	return reg
}

func startBig(t *testing.T) *devserver.Server {
	t.Helper()
	srv, err := devserver.Start(context.Background(), devserver.Options{
		DatabaseURL: pgtest.URL(t), Templates: fstest.MapFS{"big.yaml": {Data: []byte(bigTemplate)}},
		Registry: bigRegistry(t), Addr: "127.0.0.1:0", Consumers: 1, Workers: 4, SweepInterval: 200 * time.Millisecond,
		Payload: engine.PayloadLimits{InlineBytes: engine.DefaultPayloadInlineBytes, MaxBytes: limitMiB},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return srv
}

// post sends body to the server over real HTTP.
func post(t *testing.T, srv *devserver.Server, path string, body []byte) (int, []byte) {
	t.Helper()
	resp, err := http.Post("http://"+srv.Addr+path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// A 5 MiB context and a 5 MiB result round-trip through a real workflow:
// the API stores the context out of line, the Go handler resolves it
// through the SDK, uploads its 5 MiB result, its dependent reads it, and
// the API returns both whole, while the rows hold only references.
func TestLargePayloadsRoundTrip(t *testing.T) {
	t.Parallel()
	srv := startBig(t)
	ctxBody, _ := json.Marshal(map[string]any{"name": "roundtrip", "namespace": "big",
		"context": bigValue{Blob: strings.Repeat("c", fiveMiB), Tag: "ctx", Until: "2020-01-01T00:00:00Z"}})
	code, body := post(t, srv, "/v1/tasks", ctxBody)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %.500s", code, body)
	}
	var created struct {
		ID      string   `json:"id"`
		Context bigValue `json:"context"`
	}
	if err := json.Unmarshal(body, &created); err != nil {
		t.Fatal(err)
	}
	if len(created.Context.Blob) != fiveMiB {
		t.Fatalf("create returned a context of %d bytes, want it whole", len(created.Context.Blob))
	}
	task := waitFinished(t, srv, created.ID)
	steps := map[string]map[string]any{}
	for _, s := range task["steps"].([]any) {
		st := s.(map[string]any)
		steps[st["name"].(string)] = st
	}
	for name, want := range map[string]string{"produce": "complete", "check": "complete", "mid_a": "complete",
		"mid_b": "complete", "join": "complete", "huge": "error", "forge": "error", "liar": "error", "pause": "complete", "gated": "complete"} {
		if got := steps[name]["status"]; got != want {
			t.Errorf("step %s: %v (last error %v), want %s", name, got, steps[name]["last_error"], want)
		}
	}
	result := func(step string) any {
		return get(t, srv, "/v1/tasks/"+created.ID+"/steps/"+step)["result"]
	}
	if got := result("join"); fmt.Sprint(got) != "map[joined:307200]" {
		t.Errorf("join result %v", got)
	}
	if got, _ := result("check").(map[string]any); got == nil || got["checked"] != float64(fiveMiB) {
		t.Errorf("check result %v", got)
	}
	// An oversize result and a forged reference fail their own step only,
	// permanently, naming what is wrong.
	for name, want := range map[string]string{
		"huge":  fmt.Sprintf("over the %d-byte limit on step results (TASKER_PAYLOAD_MAX_BYTES)", limitMiB),
		"forge": "is not this attempt's upload",
		"liar":  fmt.Sprintf("result reference says 50 bytes, %d were uploaded", 100<<10),
	} {
		le, _ := json.Marshal(steps[name]["last_error"])
		if !strings.Contains(string(le), want) || !strings.Contains(string(le), `"permanent":true`) {
			t.Errorf("step %s last_error %s, want a permanent error containing %q", name, le, want)
		}
	}

	// The API returns the context (task read) and the result (step read)
	// whole. A task read keeps to its byte budget by leaving out the
	// largest step results (Tasker-Omitted: steps.result).
	if c := task["context"].(map[string]any); len(c["blob"].(string)) != fiveMiB {
		t.Errorf("task read: context of %d bytes", len(c["blob"].(string)))
	}
	if r, _ := result("produce").(map[string]any); r == nil || len(r["blob"].(string)) != fiveMiB || r["tag"] != "result" {
		t.Errorf("step read: produce result not whole")
	}

	// The rows hold references, so scheduler passes never carry megabytes.
	pool := srv.Pool
	var ctxLen, resLen int
	var ref string
	id := uuid.MustParse(created.ID)
	q := func(pool *pgxpool.Pool, sql string, dst ...any) {
		t.Helper()
		if err := pool.QueryRow(context.Background(), sql, id).Scan(dst...); err != nil {
			t.Fatal(err)
		}
	}
	q(pool, "SELECT octet_length(context::text) FROM tasker_tasks WHERE id = $1", &ctxLen)
	q(pool, "SELECT octet_length(result::text), result::text FROM tasker_steps WHERE task_id = $1 AND name = 'produce'", &resLen, &ref)
	if ctxLen > 512 || resLen > 512 || !strings.Contains(ref, `"tasker_ref"`) || !strings.Contains(ref, `pg:tasks/`+created.ID) {
		t.Errorf("stored context %d bytes, produce result %d bytes (%s): want small references", ctxLen, resLen, ref)
	}
}

// Contexts over the limit are refused with the limit named: 422 up to the
// request body limit (the limit and room for the request), 413 past it;
// nothing is created.
func TestLargeContextRefused(t *testing.T) {
	t.Parallel()
	srv := startBig(t)
	for _, c := range []struct {
		size int
		code int
		want string
	}{
		{limitMiB + 1, http.StatusUnprocessableEntity, fmt.Sprintf("over the %d-byte limit on task contexts (TASKER_PAYLOAD_MAX_BYTES)", limitMiB)},
		{limitMiB + 1<<20, http.StatusRequestEntityTooLarge, fmt.Sprintf("larger than the limit of %d bytes", limitMiB+64<<10)},
	} {
		body, _ := json.Marshal(map[string]any{"name": "roundtrip", "namespace": "big",
			"context": map[string]string{"blob": strings.Repeat("x", c.size-len(`{"blob":""}`))}})
		code, out := post(t, srv, "/v1/tasks", body)
		if code != c.code || !strings.Contains(string(out), c.want) {
			t.Errorf("context of %d bytes: %d %.300s; want %d naming %q", c.size, code, out, c.code, c.want)
		}
	}
	var n int
	if err := srv.Pool.QueryRow(context.Background(), "SELECT count(*) FROM tasker_tasks").Scan(&n); err != nil || n != 0 {
		t.Fatalf("tasks after refused creates: %d, %v", n, err)
	}
}

// waitFinished waits for a task to finish; on timeout it reports the
// steps' states and errors.
func waitFinished(t *testing.T, srv *devserver.Server, id string) map[string]any {
	t.Helper()
	var task map[string]any
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		task = get(t, srv, "/v1/tasks/"+id+"?fields=status,steps")
		switch task["status"] {
		case "complete", "error", "cancelled", "resolved_manually":
			task = get(t, srv, "/v1/tasks/"+id)
			return task
		}
	}
	steps, _ := task["steps"].([]any)
	if steps == nil {
		t.Logf("task: %.1000v", task)
	}
	for _, s := range steps {
		st := s.(map[string]any)
		t.Logf("step %v: %v %v", st["name"], st["status"], st["last_error"])
	}
	t.Fatalf("task %s did not finish: %v", id, task["status"])
	return nil
}

// get reads path from the server over real HTTP.
func get(t *testing.T, srv *devserver.Server, path string) map[string]any {
	t.Helper()
	resp, err := http.Get("http://" + srv.Addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
	}
	return out
}
