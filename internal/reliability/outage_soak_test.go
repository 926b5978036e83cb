//go:build soak

package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"github.com/taskerhq/tasker/internal/devserver"
	"github.com/taskerhq/tasker/internal/embeddedpg"
	"github.com/taskerhq/tasker/sdk"
)

const outageYAML = `
namespace: outage
name: chain
version: 1.0.0
steps:
  - {name: one, handler: rel.slow, timeout_seconds: 3}
  - {name: two, handler: rel.slow, timeout_seconds: 3, depends_on: [one]}
  - {name: three, handler: rel.slow, timeout_seconds: 3, depends_on: [two]}
`

// Postgres is stopped in the middle of a run and started again on the same
// data directory and port: /v1/health/ready answers 503 throughout the
// outage and 200 after it, the engine reconnects on its own, and every task
// completes — also those whose messages were dead-lettered while the
// database was away (the sweep finds them: Postgres is the truth).
func TestSoakDatabaseOutage(t *testing.T) {
	const (
		tasks  = 200
		outage = 15 * time.Second
	)
	dir, err := os.MkdirTemp("", "tasker-outage-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { // postgres may run as another user
		t.Fatal(err)
	}
	ctx := context.Background()
	opts := embeddedpg.Options{DataDir: filepath.Join(dir, "pgdata"), Logger: testLogger()}
	pg, err := embeddedpg.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Stop(context.Background()) })
	if err := pg.EnsureDatabase(ctx, "tasker"); err != nil {
		t.Fatal(err)
	}
	opts.Port = pg.Port()
	url := pg.URL("tasker")

	reg := sdk.NewRegistry()
	if err := reg.Register("rel.slow", func(context.Context, sdk.Input) (any, error) {
		time.Sleep(300 * time.Millisecond)
		return map[string]bool{"ok": true}, nil
	}); err != nil {
		t.Fatal(err)
	}
	srv, err := devserver.Start(ctx, devserver.Options{
		DatabaseURL: url, Templates: fstest.MapFS{"chain.yaml": {Data: []byte(outageYAML)}}, Registry: reg,
		Addr: "127.0.0.1:0", Logger: testLogger(), SweepInterval: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Close(cctx)
	}()
	base := "http://" + srv.Addr
	ready := func() int {
		c := http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get(base + "/v1/health/ready")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := range tasks {
		body, _ := json.Marshal(map[string]any{"namespace": "outage", "name": "chain", "context": map[string]int{"i": i}})
		resp, err := http.Post(base+"/v1/tasks", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("create: %d", resp.StatusCode)
		}
	}
	countComplete := func() int {
		var n int
		if err := srv.Pool.QueryRow(ctx, `SELECT count(*) FROM tasker_steps WHERE state = 'complete'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for countComplete() < tasks/2 {
		time.Sleep(50 * time.Millisecond)
	}
	before := countComplete()

	// Outage.
	if err := pg.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	probes, notReady := 0, 0
	for time.Since(down) < outage {
		probes++
		if code := ready(); code == http.StatusServiceUnavailable {
			notReady++
		} else {
			t.Errorf("ready during the outage: %d", code)
		}
		time.Sleep(250 * time.Millisecond)
	}
	pg, err = embeddedpg.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Stop(context.Background()) })
	up := time.Now()
	for ready() != http.StatusOK {
		if time.Since(up) > 30*time.Second {
			t.Fatal("not ready 30 s after the database came back")
		}
		time.Sleep(100 * time.Millisecond)
	}
	readyAfter := time.Since(up)
	waitFinished(t, srv.Pool, 3*time.Minute)
	finished := time.Since(up)
	var complete, steps, interrupted, timedOut int
	if err := srv.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM tasker_tasks WHERE status = 'complete'),
		(SELECT count(*) FROM tasker_steps WHERE state = 'complete' AND result IS NOT NULL),
		(SELECT count(*) FROM tasker_transitions WHERE reason = 'interrupted'),
		(SELECT count(*) FROM tasker_transitions WHERE reason = 'timed out')`).Scan(&complete, &steps, &interrupted, &timedOut); err != nil {
		t.Fatal(err)
	}
	if complete != tasks || steps != 3*tasks {
		t.Fatalf("%d of %d tasks and %d of %d steps complete", complete, tasks, steps, 3*tasks)
	}
	dead := len(srv.Queue.DeadLetters())
	t.Logf("RESULT outage: %d tasks × 3 steps, Postgres down %s with %d of %d steps complete; /v1/health/ready 503 on %d of %d probes during the outage, "+
		"200 again %s after restart; %d messages dead-lettered during the outage; all %d tasks complete %s after restart (%d attempts timed out and retried)",
		tasks, outage, before, 3*tasks, notReady, probes, readyAfter.Round(time.Millisecond), dead, tasks, finished.Round(time.Second), timedOut)
	if notReady != probes {
		t.Fatalf("ready answered other than 503 during the outage")
	}
}
