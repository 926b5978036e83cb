package reliability

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/taskerhq/tasker/sdk"
)

// A real Go handler hands its step over to a callback (tasker_pending
// through sdk.Pending), a tasker.callback step notifies an HTTP
// endpoint with its token, and both are completed through the API's
// callback routes, on the local stack: queue, invoker, sweeper and API.
func TestRealHandlerPendingAndNotifiedCallback(t *testing.T) {
	t.Parallel()
	notified := make(chan string, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var p struct {
			Tasker struct {
				CallbackToken string `json:"callback_token"`
			} `json:"tasker"`
		}
		_ = json.Unmarshal(body, &p)
		if h := r.Header.Get(sdk.CallbackTokenHeader); h == "" || h != p.Tasker.CallbackToken {
			t.Errorf("notify: header token %q, payload token %q", h, p.Tasker.CallbackToken)
		}
		notified <- r.Header.Get(sdk.CallbackTokenHeader)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	started := make(chan string, 4)
	r := newRig(t, rigOptions{
		templates: []string{`
namespace: rel
name: handover
version: 1.0.0
steps:
  - {name: job, handler: rel.start_job}
  - name: approve
    handler: tasker.callback
    config: {timeout_seconds: 600, notify: {url: "` + srv.URL + `/approvals"}}
  - {name: after, handler: tasker.noop, depends_on: [job, approve]}
`},
		handlers: map[string]sdk.Handler{
			"rel.start_job": func(_ context.Context, in sdk.Input) (any, error) {
				started <- in.CallbackToken()
				return sdk.Pending(10 * time.Minute), nil
			},
		},
	})
	id := r.create("rel", "handover", map[string]any{})
	recv := func(ch chan string) string {
		select {
		case tok := <-ch:
			return tok
		case <-time.After(20 * time.Second):
			t.Fatal("no token")
			return ""
		}
	}
	jobToken, approveToken := recv(started), recv(notified)
	// Both steps wait without holding an in-flight slot.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var waiting int
		if err := r.pool.QueryRow(t.Context(), `SELECT count(*) FROM tasker_steps WHERE task_id = $1 AND state = 'waiting'`, id).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d steps waiting, want 2\n%s", waiting, describeOpen(r.pool))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for tok, body := range map[string]string{jobToken: `{"job_id":"j-1"}`, approveToken: `{"approved":true}`} {
		res := call(r.h, http.MethodPost, "/v1/callbacks/"+tok+"/success", strings.NewReader(body), nil)
		if res.code != http.StatusAccepted {
			t.Fatalf("callback: %d %s", res.code, res.body)
		}
	}
	waitFinished(t, r.pool, 20*time.Second)
	var status string
	if err := r.pool.QueryRow(t.Context(), `SELECT status FROM tasker_tasks WHERE id = $1`, id).Scan(&status); err != nil || status != "complete" {
		t.Fatalf("task = %s %v, want complete", status, err)
	}
	res := call(r.h, http.MethodPost, "/v1/callbacks/"+jobToken+"/success", strings.NewReader(`1`), nil)
	if res.code != http.StatusConflict {
		t.Fatalf("reused token: %d, want 409", res.code)
	}
}

// A short tasker.wait on the local stack: parked without an invocation,
// woken by its delayed wake-up, then its dependent runs.
func TestLocalTimerWait(t *testing.T) {
	t.Parallel()
	ran := make(chan string, 4)
	r := newRig(t, rigOptions{
		templates: []string{`
namespace: rel
name: pause
version: 1.0.0
steps:
  - {name: pause, handler: tasker.wait, config: {seconds: 1}}
  - {name: after, handler: rel.after, depends_on: [pause]}
`},
		handlers: map[string]sdk.Handler{
			"rel.after": func(_ context.Context, in sdk.Input) (any, error) {
				var w struct {
					WaitedUntil string `json:"waited_until"`
				}
				if err := in.Result("pause", &w); err != nil || w.WaitedUntil == "" {
					t.Errorf("pause result: %+v %v", w, err)
				}
				ran <- in.Step()
				return map[string]any{}, nil
			},
		},
		sweep: time.Hour, // the delayed wake-up alone must do it
	})
	start := time.Now()
	id := r.create("rel", "pause", map[string]any{})
	waitFinished(t, r.pool, 20*time.Second)
	if took := time.Since(start); took < time.Second {
		t.Fatalf("the task finished after %s, before its 1 s wait", took)
	}
	var status string
	if err := r.pool.QueryRow(t.Context(), `SELECT status FROM tasker_tasks WHERE id = $1`, id).Scan(&status); err != nil || status != "complete" {
		t.Fatalf("task = %s %v", status, err)
	}
	if len(ran) != 1 {
		t.Fatalf("handlers ran %d times, want only after's", len(ran))
	}
}
