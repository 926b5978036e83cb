package engine_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/enginetest"
	"github.com/taskerhq/tasker/internal/jsonb"
	"github.com/taskerhq/tasker/internal/template"
)

const singleYAML = `
namespace: test
name: single
version: 1.0.0
steps:
  - {name: a, handler: tasker.noop}
`

// poisonResults are handler results PostgreSQL's jsonb refuses, with what
// the Go check says about each.
var poisonResults = []struct{ body, problem string }{
	{`{"a":"x\u0000y"}`, `string at $.a contains a NUL character (\u0000)`},
	{`{"k\u0000":1}`, `object key at $ contains a NUL character`},
	{`{"list":[1,{"deep":"\u0000"}]}`, `string at $.list[1].deep contains a NUL character`},
	{`"\ud800"`, `string at $ contains a lone surrogate escape (\ud800)`},
	{`{"s":"\udc00"}`, `string at $.s contains a lone surrogate escape (\udc00)`},
	{`["\ud800\u0041"]`, `string at $[0] contains a lone surrogate escape (\ud800)`},
	{`{"n":1e200000}`, `number at $.n 1e200000 is out of the range PostgreSQL numeric can store`},
	{`{"n":1e-20000}`, `number at $.n 1e-20000 is out of the range`},
	{`[0e-16384]`, `number at $[0] 0e-16384 is out of the range`},
	{"{\"s\":\"\xff\xfe\"}", `string at $.s is not valid UTF-8`},
}

// rawRecord is a success destination record carrying body verbatim (the
// encoding/json encoder would repair some of the bytes under test).
func rawRecord(t *testing.T, inv engine.Invocation, body string) []byte {
	t.Helper()
	rec := enginetest.Record(t, inv, enginetest.Outcome{Result: "PLACEHOLDER"})
	return bytes.Replace(rec, []byte(`"responsePayload":"PLACEHOLDER"`), []byte(`"responsePayload":`+body), 1)
}

// A batch of 30 results of which 10 PostgreSQL cannot store, whether the Go
// check catches them or the database refuses them: the pass succeeds, the
// 20 good results are recorded, and each poison result fails its own step
// permanently with code result_invalid.
func TestPoisonResultsFailOnlyTheirStep(t *testing.T) {
	t.Parallel()
	for _, mode := range []struct {
		name    string
		opt     func(*engine.Engine)
		message func(problem string) string
	}{
		{"go check", func(*engine.Engine) {}, func(p string) string { return "result: " + p }},
		{"database fallback", engine.SkipResultCheck, func(string) string { return "result: PostgreSQL cannot store it: " }},
	} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, engine.Config{}, singleYAML)
			mode.opt(h.eng)
			var wakes []engine.InMessage
			for range 30 {
				wakes = append(wakes, engine.InMessage{ID: uuid.NewString(), Body: contract.NewWake(h.create("single", `{}`))})
			}
			h.queue.Take()
			if failed, err := h.eng.HandleMessages(h.ctx, wakes); err != nil || len(failed) > 0 {
				t.Fatalf("wake-ups: failed %v, %v", failed, err)
			}
			invs := h.inv.Take()
			if len(invs) != 30 {
				t.Fatalf("%d invocations, want 30", len(invs))
			}
			var batch []engine.InMessage
			poison := map[uuid.UUID]string{} // task → expected message prefix
			for i, inv := range invs {
				body := fmt.Sprintf(`{"n":%d}`, i)
				if i%3 == 0 {
					p := poisonResults[i/3]
					body = p.body
					poison[inv.TaskID] = mode.message(p.problem)
				}
				batch = append(batch, engine.InMessage{ID: fmt.Sprint("m", i), Body: rawRecord(t, inv, body)})
			}
			failed, err := h.eng.HandleMessages(h.ctx, batch)
			if err != nil || len(failed) > 0 {
				t.Fatalf("batch: failed %v, %v", failed, err)
			}
			rows, err := h.pool.Query(h.ctx, `SELECT s.task_id, s.state, s.attempts, coalesce(s.last_error, 'null'), t.status
				FROM tasker_steps s JOIN tasker_tasks t ON t.id = s.task_id`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var complete, invalid int
			for rows.Next() {
				var id uuid.UUID
				var state, status string
				var attempts int
				var lastErr json.RawMessage
				if err := rows.Scan(&id, &state, &attempts, &lastErr, &status); err != nil {
					t.Fatal(err)
				}
				want, bad := poison[id]
				if !bad {
					if state != "complete" || status != "complete" {
						t.Errorf("good task %s: step %s, task %s", id, state, status)
					}
					complete++
					continue
				}
				var he contract.HandlerError
				if err := json.Unmarshal(lastErr, &he); err != nil {
					t.Fatalf("last_error %s: %v", lastErr, err)
				}
				if state != "error" || status != "error" || attempts != 1 || he.Code != "result_invalid" || !he.Permanent ||
					!strings.HasPrefix(he.Message, want) {
					t.Errorf("poison task %s: step %s after %d attempts, task %s, last_error %s; want error, result_invalid, %q…",
						id, state, attempts, status, lastErr, want)
				}
				if err := jsonb.Check(lastErr); err != nil {
					t.Errorf("stored error: %v", err)
				}
				invalid++
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if complete != 20 || invalid != 10 {
				t.Fatalf("%d complete, %d result_invalid; want 20 and 10", complete, invalid)
			}
			if failedEvents := h.pub.Count(engine.StepFailed); failedEvents != 10 {
				t.Errorf("%d step.failed events, want 10", failedEvents)
			}
		})
	}
}

// A handler error whose text PostgreSQL cannot store (a NUL character,
// invalid UTF-8, a long multi-byte message cut mid-character) is recorded
// as the failure it reports, retryable as the handler said.
func TestUnstorableErrorTextIsRecorded(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, retryYAML)
	id := h.create("retry", `{}`)
	h.drain(func(p contract.Payload) outcome {
		if p.Tasker.Step == "flaky" && p.Tasker.Attempt == 1 {
			return fail(&contract.HandlerError{Message: "bad\x00byte \xff " + strings.Repeat("é", 400), Code: "x\x00"})
		}
		return ok(map[string]any{})
	})
	if s := h.step(id, "flaky"); s.State != "waiting_for_retry" || s.Attempts != 1 {
		t.Fatalf("flaky: %s after %d attempts, want waiting_for_retry after 1", s.State, s.Attempts)
	}
	var lastErr json.RawMessage
	var reason string
	if err := h.pool.QueryRow(h.ctx, `SELECT s.last_error, tr.reason FROM tasker_steps s
		JOIN tasker_transitions tr ON tr.step_id = s.id AND tr.to_state = 'waiting_for_retry'
		WHERE s.task_id = $1 AND s.name = 'flaky'`, id).Scan(&lastErr, &reason); err != nil {
		t.Fatal(err)
	}
	var he contract.HandlerError
	if err := json.Unmarshal(lastErr, &he); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(he.Message, "bad\uFFFDbyte \uFFFD é") || he.Code != "x\uFFFD" {
		t.Fatalf("last_error = %.80s", lastErr)
	}
	if !strings.HasPrefix(reason, "failed: bad\uFFFDbyte") || !strings.HasSuffix(reason, "é…") {
		t.Fatalf("reason = %q", reason)
	}
}

// A context PostgreSQL cannot store is a *template.ContextError pointing at
// the value, as a schema violation is, so callers without the API's checks
// (the trigger) drop it instead of retrying forever.
func TestUnstorableContextIsAContextError(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, singleYAML)
	for _, c := range []struct{ ctx, pointer string }{
		{`{"a":{"b":"x\u0000"}}`, "/a/b"},
		{`{"l":["\ud800"]}`, "/l/0"},
		{`{"n":1e200000}`, "/n"},
	} {
		_, err := h.eng.CreateTask(h.ctx, engine.CreateRequest{Namespace: "test", Name: "single", Context: json.RawMessage(c.ctx)})
		var ce *template.ContextError
		if !errors.As(err, &ce) || len(ce.Violations) != 1 || ce.Violations[0].Pointer != c.pointer {
			t.Errorf("CreateTask(%s) = %v, want a ContextError at %s", c.ctx, err, c.pointer)
		}
	}
	var n int
	if err := h.pool.QueryRow(h.ctx, "SELECT count(*) FROM tasker_tasks").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d tasks created (%v)", n, err)
	}
}

// When the pass fails for a reason that is no value's fault (the database
// is gone), every message is reported failed, to come back later.
func TestInfrastructureFailureReportsEveryMessage(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, singleYAML)
	id := h.create("single", `{}`)
	h.pool.Close()
	failed, err := h.eng.HandleMessages(h.ctx, []engine.InMessage{
		{ID: "wake", Body: contract.NewWake(id)},
		{ID: "bad", Body: []byte("not json")},
	})
	if err == nil || strings.Join(failed, ",") != "bad,wake" {
		t.Fatalf("failed %v, err %v; want both messages and an error", failed, err)
	}
}

// A context that alone cannot fit in a handler payload is refused at
// creation, naming the limit, instead of failing every dispatch later
// with payload_too_large.
func TestContextOverPayloadLimitIsAContextError(t *testing.T) {
	t.Parallel()
	const limit = 8 << 10
	h := newHarness(t, engine.Config{MaxPayloadBytes: limit}, singleYAML)
	big := `{"blob":"` + strings.Repeat("x", limit) + `"}`
	_, err := h.eng.CreateTask(h.ctx, engine.CreateRequest{Namespace: "test", Name: "single", Context: json.RawMessage(big)})
	var ce *template.ContextError
	if !errors.As(err, &ce) || len(ce.Violations) != 1 || ce.Violations[0].Pointer != "" ||
		!strings.Contains(ce.Violations[0].Message, "8192-byte payload limit") {
		t.Fatalf("CreateTask(%d-byte context) = %v, want a ContextError naming the 8192-byte limit", len(big), err)
	}
	var n int
	if err := h.pool.QueryRow(h.ctx, "SELECT count(*) FROM tasker_tasks").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d tasks created (%v)", n, err)
	}
	// Just under the limit with the reserve still fits.
	fits := `{"blob":"` + strings.Repeat("x", limit-engine.PayloadReserve-12) + `"}`
	if _, err := h.eng.CreateTask(h.ctx, engine.CreateRequest{Namespace: "test", Name: "single", Context: json.RawMessage(fits)}); err != nil {
		t.Fatalf("CreateTask(%d-byte context) = %v, want it created", len(fits), err)
	}
}
