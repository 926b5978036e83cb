package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/lambdaapp"
	qlocal "github.com/taskerhq/tasker/internal/queue/local"
)

const noopYAML = `
namespace: rel
name: noop
version: 1.0.0
steps:
  - {name: a, handler: tasker.noop}
  - {name: b, handler: tasker.noop, depends_on: [a]}
`

// poisonBodies are scheduler messages that can never be processed.
var poisonBodies = map[string]string{
	"not-json":       `this is not JSON {`,
	"unknown-kind":   `{"kind":"explode","task_id":"` + uuid.NewString() + `"}`,
	"wake-no-task":   `{"kind":"wake"}`,
	"array":          `[1,2,3]`,
	"record-no-meta": `{"version":"1.0","requestContext":{"condition":"Success"},"requestPayload":{"hello":1}}`,
}

// A poison message on the SQS path: the scheduler Lambda reports exactly
// the poison messages as batch item failures, each once, and processes
// the good messages of the same batch.
func TestPoisonSQSBatch(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{templates: []string{noopYAML}, noAPI: true, consumers: 1})
	// Tasks whose wake-ups go only through the Lambda handler below.
	var good []uuid.UUID
	for range 5 {
		good = append(good, r.create("rel", "noop", map[string]any{}))
	}
	var ev events.SQSEvent
	var want []string
	for name, body := range poisonBodies {
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: "poison-" + name, Body: body})
		want = append(want, "poison-"+name)
	}
	for i, id := range good {
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: fmt.Sprint("good-", i), Body: string(contract.NewWake(id))})
	}
	raw, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	h := &lambdaapp.SchedulerHandler{Engine: r.eng, Logger: testLogger()}
	out, err := h.Handle(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	resp, ok := out.(events.SQSEventResponse)
	if !ok {
		t.Fatalf("response %T", out)
	}
	var got []string
	for _, f := range resp.BatchItemFailures {
		got = append(got, f.ItemIdentifier)
	}
	sort.Strings(got)
	sort.Strings(want)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("batch item failures = %v, want exactly %v", got, want)
	}
	waitFinished(t, r.pool, 20*time.Second)
	for _, s := range loadSteps(t, r.pool) {
		if s.State != "complete" {
			t.Fatalf("task %s step %s is %s", s.TaskID, s.Name, s.State)
		}
	}
}

// Poison messages on the local queue: each delivery reports them once,
// they reach the dead-letter list after the receive limit, exactly once
// each, and never block the good messages around them.
func TestPoisonDeadLetters(t *testing.T) {
	t.Parallel()
	const maxReceives = 3
	r := newRig(t, rigOptions{templates: []string{noopYAML}, noAPI: true,
		queueOpts: []qlocal.Option{qlocal.WithMaxReceives(maxReceives), qlocal.WithVisibilityTimeout(100 * time.Millisecond)}})
	ctx := context.Background()
	var msgs []engine.Message
	for _, body := range poisonBodies {
		msgs = append(msgs, engine.Message{Body: []byte(body)})
	}
	if err := r.q.Send(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		r.create("rel", "noop", map[string]any{})
	}
	waitFinished(t, r.pool, 20*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for len(r.q.DeadLetters()) < len(poisonBodies) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	dead := r.q.DeadLetters()
	bodies := map[string]int{}
	for _, d := range dead {
		bodies[string(d.Body)]++
		if d.Receives != maxReceives {
			t.Errorf("dead letter %s after %d receives, want %d", d.Body, d.Receives, maxReceives)
		}
	}
	for name, b := range poisonBodies {
		if bodies[b] != 1 {
			t.Errorf("poison %s dead-lettered %d times, want once", name, bodies[b])
		}
	}
	if len(dead) != len(poisonBodies) {
		t.Fatalf("%d dead letters, want %d (only the poison)", len(dead), len(poisonBodies))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.passErrs != 0 {
		t.Fatalf("%d scheduler passes failed", r.passErrs)
	}
	for _, d := range dead {
		if n := r.failures[d.ID]; n != maxReceives {
			t.Errorf("poison %s reported failed %d times over %d deliveries", d.Body, n, maxReceives)
		}
	}
	if total := len(r.failures); total != len(poisonBodies) {
		t.Fatalf("%d distinct messages reported failed, want only the %d poison ones", total, len(poisonBodies))
	}
	for _, s := range loadSteps(t, r.pool) {
		if s.State != "complete" {
			t.Fatalf("task %s step %s is %s", s.TaskID, s.Name, s.State)
		}
	}
	t.Logf("RESULT poison: %d poison messages, each reported once per delivery, dead-lettered after %d receives; 50 tasks complete", len(poisonBodies), maxReceives)
}
