package devserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/taskerhq/tasker/internal/devserver"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/pgtest"
	"github.com/taskerhq/tasker/internal/telemetry"
	"github.com/taskerhq/tasker/sdk"
)

const flakyYAML = `
namespace: obs
name: flaky
version: 1.0.0
steps:
  - {name: first, handler: obs.work}
  - name: flaky
    handler: obs.work
    depends_on: [first]
    retry: {max_attempts: 3, backoff_base_seconds: 1, max_backoff_seconds: 1, jitter: 0.1}
  - {name: last, handler: obs.work, depends_on: [flaky]}
`

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A task whose step fails and is retried logs every line about it with the
// creating request's correlation id (and task_id, step, attempt on step
// lines), one trace follows it from the API request to every handler run,
// and /v1/metrics counts it, the handler runs included.
func TestObservabilityOfRetriedTask(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	exp := tracetest.NewInMemoryExporter()
	tp := telemetry.NewTracerProvider(nil, nil, sdktrace.WithSyncer(exp))

	reg := sdk.NewRegistry()
	if err := reg.Register("obs.work", func(ctx context.Context, in sdk.Input) (any, error) {
		sdk.Logger(ctx).InfoContext(ctx, "working")
		if in.Step() == "flaky" && in.Attempt() == 1 {
			return nil, errors.New("upstream unavailable")
		}
		return map[string]int{"attempt": in.Attempt()}, nil
	}); err != nil {
		t.Fatal(err)
	}
	srv, err := devserver.Start(context.Background(), devserver.Options{
		DatabaseURL: pgtest.URL(t), Templates: fstest.MapFS{"flaky.yaml": {Data: []byte(flakyYAML)}},
		Registry: reg, SweepInterval: 200 * time.Millisecond, Logger: log, TracerProvider: tp,
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

	const cid = "req-7f3a"
	req := httptest.NewRequest("POST", "/v1/tasks", strings.NewReader(`{"namespace":"obs","name":"flaky","context":{}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Correlation-ID", cid)
	// The caller's trace continues (W3C traceparent; X-Amzn-Trace-Id works too).
	const callerTrace, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req.Header.Set("traceparent", "00-"+callerTrace+"-"+callerSpan+"-01")
	rec := httptest.NewRecorder()
	srv.Handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	var task map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &task); err != nil {
		t.Fatal(err)
	}
	id := task["id"].(string)
	if done := waitDone(t, srv.Handler, id); done["status"] != "complete" {
		t.Fatalf("status %v", done["status"])
	}
	// The engine reports the task's end (its event, log line and metrics)
	// just after the commit the API has already seen; wait for it.
	metrics := func() string {
		rec := httptest.NewRecorder()
		srv.Handler.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/metrics", nil))
		return rec.Body.String()
	}
	reported := func() bool {
		m := metrics()
		return strings.Contains(logs.String(), `"task.completed"`) &&
			strings.Contains(m, `tasker_tasks_completed_total{namespace="obs",workflow="flaky"} 1`+"\n") &&
			strings.Contains(m, "tasker_steps_in_flight 0\n")
	}
	for deadline := time.Now().Add(30 * time.Second); !reported(); {
		if time.Now().After(deadline) {
			break // the checks below report what is missing
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Logs: every line naming the task carries the correlation id.
	var lines, stepLines int
	seen := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %s", l)
		}
		if m["task_id"] != id {
			if m["correlation_id"] == cid && m["task_id"] != nil {
				t.Errorf("line with the task's correlation id names another task: %s", l)
			}
			continue // e.g. the access log line of the creating request
		}
		lines++
		if m["correlation_id"] != cid {
			t.Errorf("line about the task lacks its correlation_id: %s", l)
		}
		if step, ok := m["step"].(string); ok {
			stepLines++
			if a, _ := m["attempt"].(float64); a < 1 {
				t.Errorf("step line without attempt: %s", l)
			}
			seen[step+"/"+m["msg"].(string)] = true
		}
		if ev, ok := m["event"].(string); ok {
			seen[ev] = true
		}
	}
	for _, want := range []string{"task.created", "task.completed", "step.retry_scheduled", "step.completed",
		"flaky/step handler failed", "flaky/working", "last/working"} {
		if !seen[want] {
			t.Errorf("no log line for %s of the task (saw %v)", want, seen)
		}
	}
	if stepLines == 0 || lines <= stepLines {
		t.Errorf("lines about the task: %d (step lines %d)", lines, stepLines)
	}

	// Traces: the API request span roots the task's trace.
	var apiTrace string
	count := map[string]int{}
	for _, s := range exp.GetSpans() {
		if s.Name == "POST /v1/tasks" {
			apiTrace = s.SpanContext.TraceID().String()
			if apiTrace != callerTrace || s.Parent.SpanID().String() != callerSpan || !s.Parent.IsRemote() {
				t.Errorf("request span does not continue the caller's trace: parent %v", s.Parent)
			}
		}
	}
	for _, s := range exp.GetSpans() {
		count[s.Name]++
		switch s.Name {
		case engine.SpanTaskCreate, engine.SpanTaskEvaluate, engine.SpanStepDispatch, sdk.SpanStepExecute:
			if s.SpanContext.TraceID().String() != apiTrace {
				t.Errorf("%s span in trace %s, want the request's %s", s.Name, s.SpanContext.TraceID(), apiTrace)
			}
		}
	}
	if apiTrace == "" || count[engine.SpanTaskCreate] != 1 || count[engine.SpanStepDispatch] != 4 || count[sdk.SpanStepExecute] != 4 {
		t.Errorf("spans: %v", count)
	}

	// Metrics.
	body := metrics()
	for _, want := range []string{
		`tasker_tasks_created_total{namespace="obs",workflow="flaky"} 1`,
		`tasker_tasks_completed_total{namespace="obs",workflow="flaky"} 1`,
		`tasker_step_attempts_total{handler="obs.work",outcome="retry_scheduled"} 1`,
		`tasker_step_attempts_total{handler="obs.work",outcome="completed"} 3`,
		`tasker_steps_in_flight 0`,
		// The handler SDK's own metrics (sdk.WithMetrics).
		`tasker_handler_executions_total{handler="obs.work",outcome="error"} 1`,
		`tasker_handler_executions_total{handler="obs.work",outcome="ok"} 3`,
		`tasker_handler_duration_seconds_count{handler="obs.work"} 4`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/v1/metrics lacks %s:\n%s", want, body)
		}
	}
}
