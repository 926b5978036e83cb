//go:build soak

package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/taskerhq/tasker/internal/pgtest"
)

// buildTasker compiles the tasker CLI once per test.
func buildTasker(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tasker")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/taskerhq/tasker/cmd/tasker")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// devProcess is a running `tasker dev`.
type devProcess struct {
	cmd  *exec.Cmd
	log  string
	addr string
	done chan error
}

func startDev(t *testing.T, bin, addr, dbURL, tplDir, logPath string) *devProcess {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "dev", "--addr", addr, "--database-url", dbURL, "--templates", tplDir)
	cmd.Dir = t.TempDir() // no ./templates, no .tasker/ of the repository
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TASKER_") && !strings.HasPrefix(kv, "DATABASE_URL=") && !strings.HasPrefix(kv, "OTEL_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "LOG_LEVEL=info")
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &devProcess{cmd: cmd, log: logPath, addr: addr, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); f.Close() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v1/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case err := <-p.done:
			t.Fatalf("tasker dev exited: %v\n%s", err, tailFile(logPath, 4000))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("tasker dev not ready at %s\n%s", addr, tailFile(logPath, 4000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tailFile(path string, n int) string {
	b, _ := os.ReadFile(path)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// A `tasker dev` process is killed with SIGKILL while 200 three-step tasks
// are mid-flight, then started again on the same database. Every task
// completes; every step's result is the one of its final attempt; no two
// executions of a step overlap; a step runs exactly once unless the crash
// interrupted it, and then at most once more.
func TestSoakCrash(t *testing.T) {
	const tasks = 200
	bin := buildTasker(t)
	dbURL := pgtest.URL(t)
	s := newSink(t, func() time.Duration { return time.Duration(200+rand.IntN(400)) * time.Millisecond })
	tplDir := t.TempDir()
	var steps strings.Builder
	prev := ""
	for _, name := range []string{"reserve", "charge", "notify"} {
		fmt.Fprintf(&steps, "  - name: %s\n    handler: tasker.http\n    config: {url: '%s/%s', timeout_seconds: 30}\n"+
			"    retry: {max_attempts: 5, backoff_base_seconds: 0.2, max_backoff_seconds: 1}\n", name, s.srv.URL, name)
		if prev != "" {
			fmt.Fprintf(&steps, "    depends_on: [%s]\n", prev)
		}
		prev = name
	}
	yaml := "namespace: crash\nname: pipeline\nversion: 1.0.0\nsteps:\n" + steps.String()
	if err := os.WriteFile(filepath.Join(tplDir, "pipeline.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	logDir := t.TempDir()
	addr := freeAddr(t)
	p1 := startDev(t, bin, addr, dbURL, tplDir, filepath.Join(logDir, "dev1.log"))

	for i := range tasks {
		body, _ := json.Marshal(map[string]any{"namespace": "crash", "name": "pipeline", "context": map[string]int{"i": i}})
		resp, err := http.Post("http://"+addr+"/v1/tasks", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("create: %d", resp.StatusCode)
		}
	}
	// Kill once the work is well under way: some steps finished, many in
	// flight at the sink, many claimed and queued in the invoker.
	deadline := time.Now().Add(60 * time.Second)
	for s.finished.Load() < tasks+tasks/4 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d executions finished\n%s", s.finished.Load(), tailFile(p1.log, 4000))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := p1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	<-p1.done
	receivedAtKill := s.received.Load()
	inFlightAtKill := receivedAtKill - s.finished.Load()
	pool := openPool(t, dbURL)
	var claimed, completeAtKill int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE state = 'in_progress'), count(*) FILTER (WHERE state = 'complete') FROM tasker_steps`).Scan(&claimed, &completeAtKill); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed after %d executions finished, %d at the sink, %d steps in_progress, %d complete", s.finished.Load(), inFlightAtKill, claimed, completeAtKill)
	if claimed == 0 || inFlightAtKill == 0 {
		t.Fatalf("nothing was in flight at the kill (%d claimed, %d at the sink)", claimed, inFlightAtKill)
	}

	p2 := startDev(t, bin, addr, dbURL, tplDir, filepath.Join(logDir, "dev2.log"))
	waitFinished(t, pool, 120*time.Second)
	recovered := time.Since(killedAt)
	if err := p2.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p2.done:
	case <-time.After(30 * time.Second):
		t.Error("tasker dev did not stop on SIGINT")
	}
	time.Sleep(time.Second) // let the sink finish any stragglers

	// Verify.
	rows := loadSteps(t, pool)
	interrupted := map[string]bool{}
	trs, err := pool.Query(context.Background(), `SELECT s.task_id::text || '/' || s.name FROM tasker_transitions tr JOIN tasker_steps s ON s.id = tr.step_id WHERE tr.reason = 'interrupted'`)
	if err != nil {
		t.Fatal(err)
	}
	for trs.Next() {
		var k string
		if err := trs.Scan(&k); err != nil {
			t.Fatal(err)
		}
		interrupted[k] = true
	}
	trs.Close()
	execs := s.executions()
	perStep := map[string]int{}
	perKey := map[string]int{}
	for _, e := range execs {
		perStep[e.Task+"/"+e.Step]++
		perKey[e.Key]++
	}
	reran := 0
	for _, r := range rows {
		k := r.TaskID.String() + "/" + r.Name
		if r.Task != "complete" || r.State != "complete" {
			t.Fatalf("%s: task %s, step %s", k, r.Task, r.State)
		}
		var res struct {
			Key     string `json:"key"`
			Attempt int    `json:"attempt"`
		}
		if err := json.Unmarshal(r.Result, &res); err != nil || res.Key != fmt.Sprintf("%s/%d", k, r.Attempts) {
			t.Fatalf("%s: result %s is not the final attempt's (%d): %v", k, r.Result, r.Attempts, err)
		}
		n := perStep[k]
		switch {
		case n > r.Attempts:
			t.Fatalf("%s: %d executions for %d attempts", k, n, r.Attempts)
		case interrupted[k] && n > 2:
			t.Fatalf("%s: interrupted once but executed %d times", k, n)
		case !interrupted[k] && n != 1:
			t.Fatalf("%s: not interrupted but executed %d times (attempts %d)", k, n, r.Attempts)
		}
		if n == 2 {
			reran++
		}
	}
	for key, n := range perKey {
		if n != 1 {
			t.Fatalf("attempt %s executed %d times", key, n)
		}
	}
	// A step runs again only if its request reached the sink and its result
	// was not recorded before the kill.
	if bound := int(receivedAtKill) - completeAtKill; reran > bound {
		t.Fatalf("%d steps re-executed, but only %d side effects were unrecorded at the kill", reran, bound)
	}
	if ov := overlapping(execs); len(ov) > 0 {
		t.Fatalf("%d overlapping executions of one step, e.g. %+v", len(ov), ov[0])
	}
	if len(rows) != 3*tasks {
		t.Fatalf("%d steps, want %d", len(rows), 3*tasks)
	}
	t.Logf("RESULT crash: %d tasks × 3 steps; SIGKILL with %d steps in_progress (%d requests at the sink); all %d tasks complete %s after the kill; "+
		"%d steps interrupted and recovered, %d re-executed once (side effect done, result lost with the process), 0 lost results, 0 overlapping executions, %d executions in all",
		tasks, claimed, inFlightAtKill, tasks, recovered.Round(time.Second), len(interrupted), reran, len(execs))
}
