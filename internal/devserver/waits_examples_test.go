package devserver_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestApprovalWorkflow(t *testing.T) {
	t.Parallel()
	srv := start(t)
	h := srv.Handler

	t.Run("small refund skips the approval", func(t *testing.T) {
		t.Parallel()
		id := createTask(t, h, "payments", "refund_with_approval", exampleContext(t, "refund.json", nil))
		task := waitDone(t, h, id)
		if task["status"] != "complete" {
			t.Fatalf("task ended %v", task["status"])
		}
		wantStates(t, task, map[string]string{
			"validate_refund": "complete", "manager_approval": "skipped", "process_gateway_refund": "complete",
			"update_records": "complete", "notify_customer": "complete", "notify_rejection": "skipped",
		})
		if r, _ := steps(task)["manager_approval"]["skip_reason"].(string); r == "" {
			t.Errorf("skipped manager_approval has no skip_reason")
		}
	})

	for _, tc := range []struct {
		decision bool
		states   map[string]string
	}{
		{true, map[string]string{"manager_approval": "complete", "process_gateway_refund": "complete",
			"update_records": "complete", "notify_customer": "complete", "notify_rejection": "skipped"}},
		{false, map[string]string{"manager_approval": "complete", "process_gateway_refund": "skipped",
			"update_records": "skipped", "notify_customer": "skipped", "notify_rejection": "complete"}},
	} {
		name := "large refund approved"
		if !tc.decision {
			name = "large refund rejected"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			id := createTask(t, h, "payments", "refund_with_approval", exampleContext(t, "refund_large.json", nil))
			st := waitStep(t, h, id, "manager_approval", "waiting")
			if st["waiting_until"] == nil || st["wait_kind"] != "callback" {
				t.Errorf("waiting step: waiting_until %v, wait_kind %v; want a time and callback", st["waiting_until"], st["wait_kind"])
			}
			// The graph draws the waiting callback step with its expiry.
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/tasks/"+id+"/graph?format=svg", nil))
			if svg := rec.Body.String(); !strings.Contains(svg, `data-step="manager_approval" data-state="waiting" data-kind="callback"`) ||
				!strings.Contains(svg, "callback expires ") {
				t.Errorf("graph of the waiting task:\n%s", svg)
			}
			body := map[string]any{"result": map[string]any{"approved": tc.decision, "comment": "checked"}}
			path := "/v1/tasks/" + id + "/steps/manager_approval/complete"
			if code, out := call(t, h, "POST", path, body); code/100 != 2 {
				t.Fatalf("complete: %d %v", code, out)
			}
			if code, out := call(t, h, "POST", path, body); code != http.StatusConflict {
				t.Errorf("second complete: %d %v, want 409", code, out)
			}
			task := waitDone(t, h, id)
			if task["status"] != "complete" {
				t.Fatalf("task ended %v", task["status"])
			}
			wantStates(t, task, tc.states)
			res, _ := steps(task)["manager_approval"]["result"].(map[string]any)
			if res["approved"] != tc.decision || res["comment"] != "checked" {
				t.Errorf("manager_approval result = %v", res)
			}
		})
	}
}

// TestMediaTranscodeCallback: the job runner (an outside process) gets the
// job with its callback token, heartbeats and reports the outputs; the
// token is good for one answer.
func TestMediaTranscodeCallback(t *testing.T) {
	t.Parallel()
	srv := start(t)
	h := srv.Handler
	jobs := make(chan map[string]any, 4)
	runner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var job map[string]any
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &job); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		jobs <- job
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(runner.Close)
	id := createTask(t, h, "media", "transcode", exampleContext(t, "transcode.json", func(c map[string]any) { c["runner_url"] = runner.URL }))
	var job map[string]any
	select {
	case job = <-jobs:
	case <-time.After(30 * time.Second):
		t.Fatal("the runner never got the job")
	}
	token, _ := job["callback_token"].(string)
	if token == "" || job["video_id"] != "vid_7781" {
		t.Fatalf("job = %v", job)
	}
	st := waitStep(t, h, id, "transcode", "waiting")
	if st["wait_kind"] != "callback" || st["waiting_until"] == nil {
		t.Errorf("waiting transcode: wait_kind %v waiting_until %v", st["wait_kind"], st["waiting_until"])
	}
	// The runner: one heartbeat, then the outputs.
	if code, out := call(t, h, "POST", "/v1/callbacks/"+token+"/heartbeat", nil); code != http.StatusAccepted {
		t.Errorf("heartbeat: %d %v", code, out)
	}
	outputs := map[string]any{"outputs": []any{map[string]any{"format": "1080p", "url": "s3://media-out/vid_7781-1080p.mp4"}}}
	if code, out := call(t, h, "POST", "/v1/callbacks/"+token+"/success", outputs); code != http.StatusAccepted {
		t.Fatalf("success: %d %v", code, out)
	}
	if code, out := call(t, h, "POST", "/v1/callbacks/"+token+"/success", outputs); code != http.StatusConflict {
		t.Errorf("second success: %d %v, want 409", code, out)
	}
	// The durable timer waits before publish runs.
	wst := waitStep(t, h, id, "propagate", "waiting")
	if wst["wait_kind"] != "timer" || wst["waiting_until"] == nil {
		t.Errorf("waiting propagate: wait_kind %v waiting_until %v", wst["wait_kind"], wst["waiting_until"])
	}
	task := waitDone(t, h, id)
	if task["status"] != "complete" {
		t.Fatalf("task ended %v", task["status"])
	}
	wantStates(t, task, map[string]string{"probe": "complete", "transcode": "complete", "propagate": "complete", "publish": "complete"})
	if r, _ := steps(task)["propagate"]["result"].(map[string]any); r["waited_until"] == nil {
		t.Errorf("propagate result = %v, want waited_until", r)
	}
	pub, _ := steps(task)["publish"]["result"].(map[string]any)
	if outs, _ := pub["outputs"].([]any); len(outs) != 1 {
		t.Errorf("publish result = %v", pub)
	}
}
