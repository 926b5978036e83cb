package reliability

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskerhq/tasker/sdk"
)

const overloadYAML = `
namespace: rel
name: load
version: 1.0.0
steps:
  - {name: fetch, handler: rel.work}
  - {name: store, handler: rel.work, depends_on: [fetch]}
`

// overloadReport is what an overload run measured.
type overloadReport struct {
	tasks, clients, cap             int
	createP50, createP99, createMax time.Duration
	readP50, readP99                time.Duration
	maxHandlers, maxInFlightDB      int
	createdIn, completedIn          time.Duration
	errors                          int64
}

func (r overloadReport) String() string {
	return fmt.Sprintf("%d tasks by %d clients: created in %s, all complete after %s; POST /v1/tasks p50 %s p99 %s max %s; GET /v1/tasks/{id} p50 %s p99 %s; "+
		"in-flight cap %d: max concurrent handlers %d, max in_progress steps in Postgres %d; client errors %d",
		r.tasks, r.clients, r.createdIn.Round(time.Millisecond), r.completedIn.Round(time.Millisecond),
		r.createP50.Round(time.Microsecond), r.createP99.Round(time.Microsecond), r.createMax.Round(time.Microsecond),
		r.readP50.Round(time.Microsecond), r.readP99.Round(time.Microsecond), r.cap, r.maxHandlers, r.maxInFlightDB, r.errors)
}

// runOverload creates tasks through the HTTP API from concurrent clients
// against an in-process server with an in-flight cap, and checks that all
// complete and the cap holds, both in the handlers and in Postgres.
func runOverload(t *testing.T, tasks, clients, capN int, timeout time.Duration) overloadReport {
	t.Helper()
	var running, maxRunning atomic.Int64
	work := func(context.Context, sdk.Input) (any, error) {
		n := running.Add(1)
		for {
			m := maxRunning.Load()
			if n <= m || maxRunning.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(2 * time.Millisecond)
		running.Add(-1)
		return map[string]bool{"ok": true}, nil
	}
	r := newRig(t, rigOptions{templates: []string{overloadYAML}, handlers: map[string]sdk.Handler{"rel.work": work},
		maxInFlight: capN, poolSize: 32})
	srv := httptest.NewServer(r.h)
	defer srv.Close()

	// Watch the in-flight count in Postgres while the load runs.
	watchCtx, stopWatch := context.WithCancel(context.Background())
	var maxDB atomic.Int64
	var watchWG sync.WaitGroup
	watchWG.Add(1)
	go func() {
		defer watchWG.Done()
		for watchCtx.Err() == nil {
			var n int64
			if err := r.pool.QueryRow(watchCtx, `SELECT count(*) FROM tasker_steps WHERE state = 'in_progress'`).Scan(&n); err == nil && n > maxDB.Load() {
				maxDB.Store(n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}, Timeout: 30 * time.Second}
	var (
		mu      sync.Mutex
		creates []time.Duration
		reads   []time.Duration
		errs    atomic.Int64
		next    atomic.Int64
		wg      sync.WaitGroup
	)
	body := []byte(`{"namespace":"rel","name":"load","context":{"n":1}}`)
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var myCreates, myReads []time.Duration
			for next.Add(1) <= int64(tasks) {
				t0 := time.Now()
				resp, err := client.Post(srv.URL+"/v1/tasks", "application/json", bytes.NewReader(body))
				if err != nil {
					errs.Add(1)
					continue
				}
				loc := resp.Header.Get("Location")
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				myCreates = append(myCreates, time.Since(t0))
				if resp.StatusCode != http.StatusCreated {
					errs.Add(1)
					continue
				}
				t1 := time.Now()
				resp, err = client.Get(srv.URL + loc)
				if err != nil {
					errs.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				myReads = append(myReads, time.Since(t1))
				if resp.StatusCode != http.StatusOK {
					errs.Add(1)
				}
			}
			mu.Lock()
			creates = append(creates, myCreates...)
			reads = append(reads, myReads...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	createdIn := time.Since(start)
	waitFinished(t, r.pool, timeout)
	completedIn := time.Since(start)
	stopWatch()
	watchWG.Wait()

	rep := overloadReport{
		tasks: tasks, clients: clients, cap: capN, createdIn: createdIn, completedIn: completedIn,
		createP50: percentile(creates, 50), createP99: percentile(creates, 99), createMax: percentile(creates, 100),
		readP50: percentile(reads, 50), readP99: percentile(reads, 99),
		maxHandlers: int(maxRunning.Load()), maxInFlightDB: int(maxDB.Load()), errors: errs.Load(),
	}
	if rep.errors > 0 {
		t.Fatalf("%d client requests failed: %s", rep.errors, rep)
	}
	var done, steps int
	if err := r.pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM tasker_tasks WHERE status = 'complete'),
		(SELECT count(*) FROM tasker_steps WHERE state = 'complete' AND attempts = 1)`).Scan(&done, &steps); err != nil {
		t.Fatal(err)
	}
	if done != tasks || steps != 2*tasks {
		t.Fatalf("%d of %d tasks complete, %d of %d steps complete in one attempt: %s", done, tasks, steps, 2*tasks, rep)
	}
	if rep.maxHandlers > capN || rep.maxInFlightDB > capN {
		t.Fatalf("in-flight cap %d exceeded: %s", capN, rep)
	}
	if dl := r.q.DeadLetters(); len(dl) > 0 {
		t.Fatalf("%d dead letters", len(dl))
	}
	return rep
}

// Overload, fast edition: 1,000 tasks from 64 concurrent clients (the
// 10,000-task run is TestSoakOverload).
func TestOverload(t *testing.T) {
	t.Parallel()
	rep := runOverload(t, 1000, 64, 32, 90*time.Second)
	t.Logf("RESULT overload: %s", rep)
}
