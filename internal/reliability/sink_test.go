package reliability

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// execution is one request the HTTP sink received: one side effect.
type execution struct {
	Key        string // Idempotency-Key: <task>/<step>/<attempt>
	Task, Step string
	Attempt    int
	Start, End time.Time
}

// sink is an HTTP endpoint for tasker.http steps that records every
// request (its side effects) with start and end times, and takes a while
// to answer so that work is in flight.
type sink struct {
	srv   *httptest.Server
	delay func() time.Duration

	mu       sync.Mutex
	execs    []execution
	received atomic.Int64
	finished atomic.Int64
}

func newSink(t *testing.T, delay func() time.Duration) *sink {
	s := &sink{delay: delay}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attempt, _ := strconv.Atoi(r.Header.Get("X-Tasker-Attempt"))
		e := execution{Key: r.Header.Get("Idempotency-Key"), Task: r.Header.Get("X-Tasker-Task-Id"),
			Step: r.Header.Get("X-Tasker-Step"), Attempt: attempt, Start: time.Now()}
		s.received.Add(1)
		// The side effect runs to its end even if the caller has gone away.
		time.Sleep(s.delay())
		e.End = time.Now()
		s.mu.Lock()
		s.execs = append(s.execs, e)
		s.mu.Unlock()
		s.finished.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"key": e.Key, "attempt": attempt})
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) executions() []execution {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]execution(nil), s.execs...)
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

// overlapping returns pairs of executions of the same step whose
// [Start, End] intervals overlap: two attempts running at once.
func overlapping(execs []execution) [][2]execution {
	by := map[string][]execution{}
	for _, e := range execs {
		k := e.Task + "/" + e.Step
		by[k] = append(by[k], e)
	}
	var out [][2]execution
	for _, es := range by {
		for i := 1; i < len(es); i++ {
			if es[i].Start.Before(es[i-1].End) {
				out = append(out, [2]execution{es[i-1], es[i]})
			}
		}
	}
	return out
}
