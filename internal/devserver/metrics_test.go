package devserver_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/taskerhq/tasker/internal/devserver"
	"github.com/taskerhq/tasker/internal/pgtest"
	"github.com/taskerhq/tasker/sdk"
)

const fanYAML = `
namespace: obs
name: fan
version: 1.0.0
steps:
  - {name: start, handler: obs.fast}
  - {name: b1, handler: obs.fast, depends_on: [start]}
  - {name: b2, handler: obs.fast, depends_on: [start]}
  - {name: b3, handler: obs.fast, depends_on: [start]}
  - {name: b4, handler: obs.fast, depends_on: [start]}
  - {name: b5, handler: obs.fast, depends_on: [start]}
  - {name: end, handler: obs.fast, depends_on: [b1, b2, b3, b4, b5]}
`

// TestStepDurationsWithParallelSiblings runs tasks whose siblings are
// dispatched together by the real local invoker (a fast sibling's result
// is recorded while the others are still being dispatched) and checks the
// scheduler's step metrics: no negative duration, every attempt attributed
// to its handler, nothing left in flight.
func TestStepDurationsWithParallelSiblings(t *testing.T) {
	t.Parallel()
	reg := sdk.NewRegistry()
	if err := reg.Register("obs.fast", func(context.Context, sdk.Input) (any, error) {
		return map[string]bool{"ok": true}, nil
	}); err != nil {
		t.Fatal(err)
	}
	srv, err := devserver.Start(context.Background(), devserver.Options{
		DatabaseURL: pgtest.URL(t), Templates: fstest.MapFS{"fan.yaml": {Data: []byte(fanYAML)}},
		Registry: reg, SweepInterval: 200 * time.Millisecond, Workers: 8,
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
	var ids []string
	for range 5 {
		req := httptest.NewRequest("POST", "/v1/tasks", strings.NewReader(`{"namespace":"obs","name":"fan","context":{}}`))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		srv.Handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated {
			t.Fatalf("create: %d %s", rec.Code, rec.Body)
		}
		ids = append(ids, regexp.MustCompile(`"id":"([^"]+)"`).FindStringSubmatch(rec.Body.String())[1])
	}
	for _, id := range ids {
		if done := waitDone(t, srv.Handler, id); done["status"] != "complete" {
			t.Fatalf("task %s: %v", id, done["status"])
		}
	}
	rec := httptest.NewRecorder()
	srv.Handler.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/metrics", nil))
	body := rec.Body.String()
	sum := regexp.MustCompile(`(?m)^tasker_step_duration_seconds_sum\{handler="([^"]*)"\} (\S+)$`).FindAllStringSubmatch(body, -1)
	if len(sum) == 0 {
		t.Fatalf("no step duration in\n%s", body)
	}
	for _, m := range sum {
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil || v < 0 || m[1] != "obs.fast" {
			t.Errorf("step duration sum for %q = %s", m[1], m[2])
		}
	}
	for _, want := range []string{
		`tasker_step_duration_seconds_count{handler="obs.fast"} 35`,
		`tasker_step_attempts_total{handler="obs.fast",outcome="completed"} 35`,
		`tasker_steps_in_flight 0`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/v1/metrics lacks %s:\n%s", want, body)
		}
	}
	if strings.Contains(body, `handler="unknown"`) {
		t.Errorf("attempts not attributed to their handler:\n%s", body)
	}
}
