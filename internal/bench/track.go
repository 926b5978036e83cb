package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing/fstest"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/sdk"
)

// handlerName is the benchmark's no-op handler. It returns {} like
// tasker.noop and, while recording, notes when it started and returned.
const handlerName = "bench.noop"

// maxTimedSteps bounds the steps per task whose timings are recorded (the
// linear workflow has four).
const maxTimedSteps = 4

// stepTimes are the observed instants of one task's steps, indexed by the
// step number (s1 → 0).
type stepTimes struct {
	start, end, committed [maxTimedSteps]time.Time
}

// tracker observes the engine from the outside: the handler records its own
// start and return, the lifecycle publisher (called by the engine after a
// scheduler pass commits) records when results and tasks were committed.
type tracker struct {
	recording atomic.Bool

	mu      sync.Mutex
	done    map[uuid.UUID]time.Time
	status  map[uuid.UUID]engine.EventName
	waiters map[uuid.UUID]chan struct{}
	steps   map[uuid.UUID]*stepTimes
	counts  map[engine.EventName]int
}

func newTracker() *tracker {
	return &tracker{
		done:    map[uuid.UUID]time.Time{},
		status:  map[uuid.UUID]engine.EventName{},
		waiters: map[uuid.UUID]chan struct{}{},
		steps:   map[uuid.UUID]*stepTimes{},
		counts:  map[engine.EventName]int{},
	}
}

// Publish implements engine.Publisher.
func (t *tracker) Publish(_ context.Context, events []engine.Event) {
	now := time.Now()
	rec := t.recording.Load()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ev := range events {
		t.counts[ev.Name]++
		switch ev.Name {
		case engine.TaskCompleted, engine.TaskFailed, engine.TaskResolved:
			t.done[ev.TaskID] = now
			t.status[ev.TaskID] = ev.Name
			if ch, ok := t.waiters[ev.TaskID]; ok {
				close(ch)
				delete(t.waiters, ev.TaskID)
			}
		case engine.StepCompleted:
			if rec {
				if i := stepIndex(ev.Step); i >= 0 {
					t.stepsLocked(ev.TaskID).committed[i] = now
				}
			}
		}
	}
}

func (t *tracker) stepsLocked(id uuid.UUID) *stepTimes {
	st := t.steps[id]
	if st == nil {
		st = &stepTimes{}
		t.steps[id] = st
	}
	return st
}

// handler is the no-op step handler.
func (t *tracker) handler(_ context.Context, in sdk.Input) (any, error) {
	if !t.recording.Load() {
		return struct{}{}, nil
	}
	start := time.Now()
	i := stepIndex(in.Step())
	id := in.TaskID()
	if i >= 0 {
		t.mu.Lock()
		t.stepsLocked(id).start[i] = start
		t.mu.Unlock()
	}
	end := time.Now()
	if i >= 0 {
		t.mu.Lock()
		t.stepsLocked(id).end[i] = end
		t.mu.Unlock()
	}
	return struct{}{}, nil
}

// stepIndex maps "s1".."s4" to 0..3, anything else to -1.
func stepIndex(name string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(name, "s"))
	if err != nil || n < 1 || n > maxTimedSteps {
		return -1
	}
	return n - 1
}

// wait blocks until the task finished and returns when the engine
// published that.
func (t *tracker) wait(ctx context.Context, id uuid.UUID) (time.Time, error) {
	t.mu.Lock()
	if at, ok := t.done[id]; ok {
		t.mu.Unlock()
		return at, nil
	}
	ch, ok := t.waiters[id]
	if !ok {
		ch = make(chan struct{})
		t.waiters[id] = ch
	}
	t.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
		return time.Time{}, fmt.Errorf("task %s did not finish: %w", id, ctx.Err())
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.done[id], nil
}

// waitAll waits for every task and returns their finish times.
func (t *tracker) waitAll(ctx context.Context, ids []uuid.UUID) ([]time.Time, error) {
	out := make([]time.Time, len(ids))
	for i, id := range ids {
		at, err := t.wait(ctx, id)
		if err != nil {
			return nil, err
		}
		out[i] = at
	}
	return out, nil
}

// finished reports whether and when the task finished.
func (t *tracker) finished(id uuid.UUID) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.done[id]
	return at, ok
}

// failures counts finished tasks that did not complete.
func (t *tracker) failures(ids []uuid.UUID) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, id := range ids {
		if s, ok := t.status[id]; ok && s != engine.TaskCompleted {
			n++
		}
	}
	return n
}

func (t *tracker) count(name engine.EventName) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.counts[name]
}

func (t *tracker) times(id uuid.UUID) stepTimes {
	t.mu.Lock()
	defer t.mu.Unlock()
	if st := t.steps[id]; st != nil {
		return *st
	}
	return stepTimes{}
}

// Workflow names of the generated templates.
const (
	wfLinear  = "linear4"
	wfFanout  = "fanout"
	wfMap     = "map"
	namespace = "bench"
)

// templatesFS generates the benchmark workflows: a 4-step chain and a
// fan-out of width fanout with a root and a join.
func templatesFS(fanout int) fstest.MapFS {
	var lin strings.Builder
	fmt.Fprintf(&lin, "namespace: %s\nname: %s\nversion: 1.0.0\nsteps:\n", namespace, wfLinear)
	for i := 1; i <= 4; i++ {
		fmt.Fprintf(&lin, "  - name: s%d\n    handler: %s\n", i, handlerName)
		if i > 1 {
			fmt.Fprintf(&lin, "    depends_on: [s%d]\n", i-1)
		}
	}
	var fan strings.Builder
	fmt.Fprintf(&fan, "namespace: %s\nname: %s\nversion: 1.0.0\nsteps:\n  - name: root\n    handler: %s\n", namespace, wfFanout, handlerName)
	names := make([]string, fanout)
	for i := range fanout {
		names[i] = fmt.Sprintf("f%04d", i+1)
		fmt.Fprintf(&fan, "  - name: %s\n    handler: %s\n    depends_on: [root]\n", names[i], handlerName)
	}
	fmt.Fprintf(&fan, "  - name: join\n    handler: %s\n    depends_on: [%s]\n", handlerName, strings.Join(names, ", "))
	// The same fan-out as a map step: one instance per item of
	// context.items, at most 50 in flight (docs/control-flow.md, "Map").
	mp := fmt.Sprintf("namespace: %s\nname: %s\nversion: 1.0.0\nsteps:\n  - name: root\n    handler: %s\n"+
		"  - name: each\n    handler: %s\n    depends_on: [root]\n    map: {over: context.items, max_concurrency: 50}\n"+
		"  - name: join\n    handler: %s\n    depends_on: [each]\n", namespace, wfMap, handlerName, handlerName, handlerName)
	return fstest.MapFS{
		wfLinear + ".yaml": {Data: []byte(lin.String())},
		wfFanout + ".yaml": {Data: []byte(fan.String())},
		wfMap + ".yaml":    {Data: []byte(mp)},
	}
}
