package reliability

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/enginetest"
	"github.com/taskerhq/tasker/internal/pgtest"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/sdk"
)

func oneStep(name, handler, extra string) string {
	return `
namespace: faults
name: ` + name + `
version: 1.0.0
steps:
  - name: s
    handler: ` + handler + `
    timeout_seconds: 1
    retry: {max_attempts: 3, backoff_base_seconds: 0.05, max_backoff_seconds: 0.1}
` + extra
}

type attemptResult struct {
	Attempt int `json:"attempt"`
}

// transitionsOf returns "attempt:to:reason" lines of a task's step s.
func transitionsOf(t *testing.T, pool *pgxpool.Pool, task uuid.UUID) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT coalesce(attempt,0), to_state, reason FROM tasker_transitions
		WHERE task_id = $1 AND step_id IS NOT NULL ORDER BY id`, task)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var a int
		var to, reason string
		if err := rows.Scan(&a, &to, &reason); err != nil {
			t.Fatal(err)
		}
		out = append(out, strconv.Itoa(a)+":"+to+":"+reason)
	}
	return out
}

func stepOf(t *testing.T, pool *pgxpool.Pool, task uuid.UUID) stepRow {
	t.Helper()
	for _, s := range loadSteps(t, pool) {
		if s.TaskID == task {
			return s
		}
	}
	t.Fatalf("no step for task %s", task)
	return stepRow{}
}

func errorCode(t *testing.T, raw json.RawMessage) (code, msg string, permanent bool) {
	t.Helper()
	var e struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		Permanent bool   `json:"permanent"`
	}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatalf("last_error %s: %v", raw, err)
		}
	}
	return e.Code, e.Message, e.Permanent
}

// Handler faults in local mode: a handler that hangs past its timeout, one
// that honours its deadline, a panicking Go handler, results over the
// limit (from Go and from tasker.http), and invalid JSON from an HTTP
// endpoint. Each ends in a clear, correct state.
func TestHandlerFaults(t *testing.T) {
	t.Parallel()
	var lateDone sync.WaitGroup
	lateDone.Add(1)
	huge := strings.Repeat("x", 300<<10)
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/huge":
			_ = json.NewEncoder(w).Encode(map[string]string{"blob": huge})
		case "/badjson":
			_, _ = w.Write([]byte(`{"oops": [1, 2,`))
		}
	}))
	defer sink.Close()
	handlers := map[string]sdk.Handler{
		// Ignores its context and answers 2.5 s after the deadline (1 s
		// timeout + 0.5 s grace), leaving the sweep ample time under load.
		"faults.hang": func(_ context.Context, in sdk.Input) (any, error) {
			if in.Meta().Attempt == 1 {
				defer lateDone.Done()
				time.Sleep(4 * time.Second)
			}
			return attemptResult{in.Meta().Attempt}, nil
		},
		// Honours its context: gives up at the deadline.
		"faults.wait": func(ctx context.Context, in sdk.Input) (any, error) {
			if in.Meta().Attempt == 1 {
				<-ctx.Done()
				return nil, ctx.Err()
			}
			return attemptResult{in.Meta().Attempt}, nil
		},
		"faults.panic": func(_ context.Context, in sdk.Input) (any, error) {
			if in.Meta().Attempt == 1 {
				var m map[string]int
				m["boom"]++ // nil map write
			}
			return attemptResult{in.Meta().Attempt}, nil
		},
		"faults.huge": func(context.Context, sdk.Input) (any, error) {
			return map[string]string{"blob": huge}, nil
		},
	}
	r := newRig(t, rigOptions{
		noAPI:    true,
		handlers: handlers,
		templates: []string{
			oneStep("hang", "faults.hang", ""),
			oneStep("wait", "faults.wait", ""),
			oneStep("panic", "faults.panic", ""),
			oneStep("huge", "faults.huge", ""),
			oneStep("hugehttp", "tasker.http", "    config: {url: '"+sink.URL+"/huge'}\n"),
			oneStep("badjson", "tasker.http", "    config: {url: '"+sink.URL+"/badjson', method: GET}\n"),
		},
	})
	ids := map[string]uuid.UUID{}
	for _, n := range []string{"hang", "wait", "panic", "huge", "hugehttp", "badjson"} {
		ids[n] = r.create("faults", n, map[string]any{})
	}
	waitFinished(t, r.pool, 30*time.Second)
	lateDone.Wait()             // the hung attempt has answered…
	time.Sleep(time.Second / 2) // …and its late record was processed

	t.Run("timeout ignored by handler", func(t *testing.T) {
		s := stepOf(t, r.pool, ids["hang"])
		var res attemptResult
		_ = json.Unmarshal(s.Result, &res)
		if s.State != "complete" || s.Attempts != 2 || res.Attempt != 2 {
			t.Fatalf("step %s after %d attempts, result %s; want complete by attempt 2", s.State, s.Attempts, s.Result)
		}
		if tr := strings.Join(transitionsOf(t, r.pool, ids["hang"]), "\n"); !strings.Contains(tr, "1:waiting_for_retry:timed out") {
			t.Fatalf("attempt 1 not timed out:\n%s", tr)
		}
	})
	t.Run("timeout honoured by handler", func(t *testing.T) {
		s := stepOf(t, r.pool, ids["wait"])
		if s.State != "complete" || s.Attempts != 2 {
			t.Fatalf("step %s after %d attempts", s.State, s.Attempts)
		}
		tr := strings.Join(transitionsOf(t, r.pool, ids["wait"]), "\n")
		if !strings.Contains(tr, "1:waiting_for_retry:") {
			t.Fatalf("attempt 1 not retried:\n%s", tr)
		}
	})
	t.Run("panic is a retryable failure", func(t *testing.T) {
		s := stepOf(t, r.pool, ids["panic"])
		if s.State != "complete" || s.Attempts != 2 {
			t.Fatalf("step %s after %d attempts", s.State, s.Attempts)
		}
		tr := strings.Join(transitionsOf(t, r.pool, ids["panic"]), "\n")
		if !strings.Contains(tr, "1:waiting_for_retry:failed: handler panicked: assignment to entry in nil map") {
			t.Fatalf("panic not reported as retryable:\n%s", tr)
		}
	})
	for _, name := range []string{"huge", "hugehttp"} {
		t.Run("result over the limit: "+name, func(t *testing.T) {
			s := stepOf(t, r.pool, ids[name])
			code, msg, permanent := errorCode(t, s.LastErr)
			if s.Task != "error" || s.State != "error" || s.Attempts != 1 || code != "result_too_large" || !permanent ||
				!strings.Contains(msg, "over the 262144-byte limit") || len(s.Result) > 0 && string(s.Result) != "null" {
				t.Fatalf("task %s, step %s after %d attempts, error %s", s.Task, s.State, s.Attempts, s.LastErr)
			}
		})
	}
	t.Run("invalid JSON from an HTTP handler", func(t *testing.T) {
		s := stepOf(t, r.pool, ids["badjson"])
		var res struct {
			Status int    `json:"status"`
			Body   string `json:"body"`
		}
		if err := json.Unmarshal(s.Result, &res); err != nil || s.State != "complete" || res.Status != 200 || res.Body != `{"oops": [1, 2,` {
			t.Fatalf("step %s, result %s (%v)", s.State, s.Result, err)
		}
	})
	t.Logf("RESULT handler faults: hang→timed out, attempt 2 complete; ctx-honouring→retried, complete; panic→retryable, complete; " +
		"300 KiB result (Go and tasker.http)→permanent result_too_large; invalid JSON over HTTP→{status,body} result")
}

// takeOne returns the single invocation the engine dispatched.
func takeOne(t *testing.T, inv *enginetest.Invoker) engine.Invocation {
	t.Helper()
	invs := inv.Take()
	if len(invs) != 1 {
		t.Fatalf("%d invocations, want 1", len(invs))
	}
	return invs[0]
}

// manualEngine is an engine with a manual clock and recording adapters, for
// feeding it hand-made destination records.
func manualEngine(t *testing.T, yaml string) (*engine.Engine, *enginetest.Clock, *enginetest.Invoker, *pgxpool.Pool) {
	t.Helper()
	pool := pgtest.Pool(t)
	st, err := store.New(pool)
	if err != nil {
		t.Fatal(err)
	}
	clk := enginetest.NewClock(time.Now().Truncate(time.Microsecond))
	inv := &enginetest.Invoker{}
	eng, err := engine.New(engine.Config{Store: st, Templates: parseTemplates(t, []string{yaml}), Queue: &enginetest.Queue{},
		Invoker: inv, Clock: clk, DeadlineGrace: time.Second, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return eng, clk, inv, pool
}

// record builds a destination record for inv, as Lambda would send it.
func record(inv engine.Invocation, condition, functionError string, response []byte) []byte {
	head, _ := json.Marshal(contract.RequestContext{RequestID: uuid.NewString(),
		FunctionArn: "arn:aws:lambda:us-east-1:123456789012:function:py-handler", Condition: condition, ApproximateInvokeCount: 1})
	rc, _ := json.Marshal(contract.ResponseContext{StatusCode: 200, ExecutedVersion: "$LATEST", FunctionError: functionError})
	b := []byte(`{"version":"1.0","timestamp":"2026-01-01T00:00:00Z","requestContext":`)
	b = append(b, head...)
	b = append(b, `,"requestPayload":`...)
	b = append(b, inv.Payload...)
	b = append(b, `,"responseContext":`...)
	b = append(b, rc...)
	b = append(b, `,"responsePayload":`...)
	b = append(b, response...)
	return append(b, '}')
}

// A non-Go (Lambda) handler answering with invalid JSON: an unserialisable
// return value is Lambda's Runtime.MarshalError (an unhandled error, so
// retryable); a record that is not JSON at all is reported as a batch
// failure and the attempt is recovered by the deadline sweep; a plain-text
// answer that Lambda wrapped as a JSON string is a result.
func TestLambdaInvalidJSON(t *testing.T) {
	t.Parallel()
	eng, clk, inv, pool := manualEngine(t, oneStep("lambda", "arn:aws:lambda:us-east-1:123456789012:function:py-handler", ""))
	ctx := context.Background()
	out, err := eng.CreateTask(ctx, engine.CreateRequest{Namespace: "faults", Name: "lambda", Context: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.ProcessTasks(ctx, out.TaskID); err != nil {
		t.Fatal(err)
	}

	// Attempt 1: Runtime.MarshalError.
	in := takeOne(t, inv)
	failed, err := eng.HandleMessages(ctx, []engine.InMessage{{ID: "m1", Body: record(in, contract.ConditionRetriesExhausted, "Unhandled",
		[]byte(`{"errorMessage":"Unable to marshal response: Object of type bytes is not JSON serializable","errorType":"Runtime.MarshalError"}`))}})
	if err != nil || len(failed) != 0 {
		t.Fatalf("attempt 1: %v %v", failed, err)
	}
	s := stepOf(t, pool, out.TaskID)
	code, msg, permanent := errorCode(t, s.LastErr)
	if s.State != "waiting_for_retry" || code != "unhandled" || permanent || !strings.Contains(msg, "Runtime.MarshalError") {
		t.Fatalf("after MarshalError: %s %s", s.State, s.LastErr)
	}

	// Attempt 2: the record itself is not JSON (a truncated response).
	clk.Advance(time.Second)
	if err := eng.ProcessTasks(ctx, out.TaskID); err != nil {
		t.Fatal(err)
	}
	in = takeOne(t, inv)
	bad := record(in, contract.ConditionSuccess, "", []byte(`{"ok": tru`))
	failed, err = eng.HandleMessages(ctx, []engine.InMessage{{ID: "m2", Body: bad}})
	if err != nil || len(failed) != 1 || failed[0] != "m2" {
		t.Fatalf("invalid record: failed %v, err %v; want m2 reported once", failed, err)
	}
	if s := stepOf(t, pool, out.TaskID); s.State != "in_progress" || s.Attempts != 2 {
		t.Fatalf("invalid record changed the step: %s/%d", s.State, s.Attempts)
	}
	clk.Advance(3 * time.Second) // past timeout (1 s) + grace (1 s)
	rep, err := eng.Sweep(ctx)
	if err != nil || rep.TimedOut != 1 {
		t.Fatalf("sweep: %+v %v", rep, err)
	}
	s = stepOf(t, pool, out.TaskID)
	if code, _, _ := errorCode(t, s.LastErr); s.State != "waiting_for_retry" || code != "timeout" {
		t.Fatalf("after sweep: %s %s", s.State, s.LastErr)
	}

	// Attempt 3: the function returned text, which Lambda passes on as a
	// JSON string: any JSON value is a result.
	clk.Advance(time.Second)
	if err := eng.ProcessTasks(ctx, out.TaskID); err != nil {
		t.Fatal(err)
	}
	in = takeOne(t, inv)
	failed, err = eng.HandleMessages(ctx, []engine.InMessage{{ID: "m3", Body: record(in, contract.ConditionSuccess, "", []byte(`"<html>502 Bad Gateway</html>"`))}})
	if err != nil || len(failed) != 0 {
		t.Fatalf("attempt 3: %v %v", failed, err)
	}
	s = stepOf(t, pool, out.TaskID)
	if s.State != "complete" || s.Task != "complete" || string(s.Result) != `"<html>502 Bad Gateway</html>"` || s.Attempts != 3 {
		t.Fatalf("final: task %s step %s attempts %d result %s", s.Task, s.State, s.Attempts, s.Result)
	}
	// A late copy of the invalid record changes nothing either.
	before := snapshot(t, pool)
	if failed, _ := eng.HandleMessages(ctx, []engine.InMessage{{ID: "m2", Body: bad}}); len(failed) != 1 {
		t.Fatalf("late invalid record: %v", failed)
	}
	if snapshot(t, pool) != before {
		t.Fatal("a late invalid record changed the database")
	}
}
