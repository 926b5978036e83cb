package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// tasker run --watch shows a step waiting for its callback (with its
// expiry) until someone completes it, and skipped steps with their
// reason; tasker show and validate show the same (docs/control-flow.md).
func TestRunWatchWaitingAndSkipped(t *testing.T) {
	t.Parallel()
	base := startAPI(t, nil)
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	go func() {
		done <- run(ctx, []string{"run", "payments/refund_with_approval", "--context", "@../../examples/refund_large.json",
			"--watch", "--interval", "50ms", "--url", base}, &stdout, &stderr)
	}()
	// The manager approves once the watch has shown the step waiting.
	id := ""
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stdout.String(), "⏸ manager_approval") {
		if time.Now().After(deadline) {
			t.Fatalf("the watch never showed manager_approval waiting:\n%s\n%s", stdout.String(), stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	id = uuidRe.FindString(stdout.String())
	tasker(t, base, "show", id).want(t, 0, []string{"manager_approval", "waiting", "callback: expires"}, nil)
	body := bytes.NewReader([]byte(`{"result": {"approved": true}}`))
	res, err := http.Post(base+"/v1/tasks/"+id+"/steps/manager_approval/complete", "application/json", body)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("complete: %s", res.Status)
	}
	r := result{code: <-done, stdout: stdout.String(), stderr: stderr.String()}
	r.want(t, 0, []string{"⏸ manager_approval", "callback: expires", "✓ manager_approval", "↷ notify_rejection",
		"skipped: when was false: ", "complete"}, nil)
	tasker(t, base, "show", id).want(t, 0, []string{"notify_rejection", "skipped", "skipped: when was false"}, nil)
}

// syncBuffer is a bytes.Buffer the test reads while the command writes.
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

// tasker run --watch and tasker show list a map step once, with its
// instances counted by state (docs/control-flow.md, "Map").
func TestRunWatchMap(t *testing.T) {
	t.Parallel()
	base := startAPI(t, nil)
	r := tasker(t, base, "run", "data/file_batch", "--context", "@../../examples/files.json", "--watch", "--interval", "50ms")
	r.want(t, 0, []string{"✓ convert", "map 12/12 complete", "✓ summarise", "complete"}, nil)
	id := uuidRe.FindString(r.stdout)
	s := tasker(t, base, "show", id)
	s.want(t, 0, []string{"convert", "complete", "map 12/12 complete"}, nil)
	for _, out := range []string{r.stdout, s.stdout} {
		if strings.Contains(out, "convert[") {
			t.Errorf("an instance is listed on its own:\n%s", out)
		}
	}
}
