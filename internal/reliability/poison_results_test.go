package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/lambdaapp"
	qlocal "github.com/taskerhq/tasker/internal/queue/local"
	"github.com/taskerhq/tasker/sdk"
)

// poisonResultsYAML: b's handler returns what the context asks for, so a
// task can carry a result PostgreSQL cannot store.
const poisonResultsYAML = `
namespace: rel
name: poison
version: 1.0.0
steps:
  - {name: a, handler: rel.result}
  - {name: b, handler: rel.result, depends_on: [a]}
`

// unstorable are handler results PostgreSQL's jsonb refuses.
var unstorable = []string{
	`{"a":"x\u0000y"}`, `{"k\u0000":1}`, `"\ud800"`, `{"s":"\udc00"}`, `["\ud800\u0041"]`,
	`{"n":1e200000}`, `{"n":1e-20000}`, `[0e-16384]`, "{\"s\":\"\xff\"}", `{"deep":[[{"x":"\u0000"}]]}`,
}

type poisonCtx struct {
	Poison int `json:"poison"` // 1-based index into unstorable; 0 is a good task
}

// resultHandlers: rel.result returns {"ok":true}, or on step b the
// unstorable result the context names.
func resultHandlers() map[string]sdk.Handler {
	return map[string]sdk.Handler{"rel.result": func(_ context.Context, in sdk.Input) (any, error) {
		var c poisonCtx
		if err := json.Unmarshal(in.Payload().Context, &c); err != nil {
			return nil, sdk.Permanent(err)
		}
		if c.Poison > 0 && in.Meta().Step == "b" {
			return json.RawMessage(unstorable[c.Poison-1]), nil
		}
		return map[string]bool{"ok": true}, nil
	}}
}

// checkPoisonOutcome asserts that exactly the poison tasks ended in error,
// their step b failed permanently with result_invalid after one attempt,
// and every other task completed.
func checkPoisonOutcome(t *testing.T, r *rig, poison map[uuid.UUID]bool, tasks int) {
	t.Helper()
	complete, invalid := 0, 0
	for _, s := range loadSteps(t, r.pool) {
		switch {
		case !poison[s.TaskID]:
			if s.State != "complete" || s.Task != "complete" {
				t.Fatalf("good task %s: step %s is %s, task %s (%s)", s.TaskID, s.Name, s.State, s.Task, s.LastErr)
			}
			complete++
		case s.Name == "b":
			var he contract.HandlerError
			_ = json.Unmarshal(s.LastErr, &he)
			if s.State != "error" || s.Task != "error" || s.Attempts != 1 || he.Code != "result_invalid" || !he.Permanent {
				t.Fatalf("poison task %s: b is %s after %d attempts, task %s, last_error %s", s.TaskID, s.State, s.Attempts, s.Task, s.LastErr)
			}
			invalid++
		}
	}
	if complete != 2*(tasks-len(poison)) || invalid != len(poison) {
		t.Fatalf("%d good steps complete, %d result_invalid; want %d and %d", complete, invalid, 2*(tasks-len(poison)), len(poison))
	}
}

// 300 tasks share scheduler batches with 10 results PostgreSQL cannot
// store: no pass fails, no message is reported failed, the 290 good tasks
// complete and each poison result fails only its own step.
func TestPoisonResultsHarmOnlyThemselves(t *testing.T) {
	t.Parallel()
	const tasks = 300
	r := newRig(t, rigOptions{templates: []string{poisonResultsYAML}, handlers: resultHandlers(), noAPI: true, consumers: 2})
	start := time.Now()
	poison := map[uuid.UUID]bool{}
	for i := range tasks {
		c := poisonCtx{}
		if i%30 == 0 {
			c.Poison = i/30 + 1
		}
		id := r.create("rel", "poison", c)
		if c.Poison > 0 {
			poison[id] = true
		}
	}
	waitFinished(t, r.pool, 60*time.Second)
	elapsed := time.Since(start)
	checkPoisonOutcome(t, r, poison, tasks)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.passErrs != 0 || len(r.failures) != 0 {
		t.Fatalf("%d scheduler passes failed, %d messages reported failed", r.passErrs, len(r.failures))
	}
	t.Logf("RESULT poison results: %d tasks with %d unstorable results finished in %s; %d result_invalid, no pass failed",
		tasks, len(poison), elapsed.Round(time.Millisecond), len(poison))
}

// recordTrap holds back destination records so a test can deliver them as
// one SQS batch; wake-ups pass through.
type recordTrap struct {
	engine.Queue
	mu      sync.Mutex
	records [][]byte
}

func (q *recordTrap) Send(ctx context.Context, msgs []engine.Message) error {
	var pass []engine.Message
	q.mu.Lock()
	for _, m := range msgs {
		if bytes.Contains(m.Body, []byte(`"requestContext"`)) {
			q.records = append(q.records, m.Body)
			continue
		}
		pass = append(pass, m)
	}
	q.mu.Unlock()
	if len(pass) == 0 {
		return nil
	}
	return q.Queue.Send(ctx, pass)
}

func (q *recordTrap) take(t *testing.T, n int) [][]byte {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		q.mu.Lock()
		if len(q.records) >= n {
			out := q.records
			q.records = nil
			q.mu.Unlock()
			return out
		}
		q.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d destination records arrived", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// On the SQS path, a batch whose results include ones PostgreSQL cannot
// store reports no batch item failure: every result is recorded, the
// unstorable ones as result_invalid failures of their own steps.
func TestPoisonResultsSQSBatch(t *testing.T) {
	t.Parallel()
	const tasks = 10
	var trap *recordTrap
	r := newRig(t, rigOptions{templates: []string{poisonResultsYAML}, handlers: resultHandlers(), noAPI: true, consumers: 1,
		wrap: func(q *qlocal.Queue) engine.Queue {
			trap = &recordTrap{Queue: q}
			return trap
		}})
	poison := map[uuid.UUID]bool{}
	for i := range tasks {
		c := poisonCtx{}
		if i%3 == 0 {
			c.Poison = i/3*3 + 1
		}
		id := r.create("rel", "poison", c)
		if c.Poison > 0 {
			poison[id] = true
		}
	}
	h := &lambdaapp.SchedulerHandler{Engine: r.eng, Logger: testLogger()}
	for _, step := range []string{"a", "b"} {
		var ev events.SQSEvent
		for i, body := range trap.take(t, tasks) {
			ev.Records = append(ev.Records, events.SQSMessage{MessageId: fmt.Sprint(step, i), Body: string(body)})
		}
		raw, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		out, err := h.Handle(context.Background(), raw)
		if err != nil {
			t.Fatal(err)
		}
		if resp := out.(events.SQSEventResponse); len(resp.BatchItemFailures) != 0 {
			t.Fatalf("step %s batch: item failures %v, want none", step, resp.BatchItemFailures)
		}
	}
	waitFinished(t, r.pool, 20*time.Second)
	checkPoisonOutcome(t, r, poison, tasks)
}
