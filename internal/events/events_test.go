package events_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/events"
	"github.com/taskerhq/tasker/internal/service"
	"github.com/taskerhq/tasker/internal/service/servicetest"
	"github.com/taskerhq/tasker/internal/telemetry"
)

func TestLogCarriesTaskFields(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	id := uuid.New()
	events.Multi{events.Log{Logger: log}, nil}.Publish(context.Background(), []engine.Event{
		{Name: engine.TaskCreated, TaskID: id, CorrelationID: "c-1", Workflow: "w", Namespace: "n", To: "pending"},
		{Name: engine.StepRetryScheduled, TaskID: id, CorrelationID: "c-1", Step: "s", Attempt: 2, From: "in_progress", To: "waiting_for_retry"},
	})
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("lines: %q", buf.String())
	}
	for i, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		if m["correlation_id"] != "c-1" || m["task_id"] != id.String() {
			t.Fatalf("line %d: %v", i, m)
		}
		if i == 1 && (m["step"] != "s" || m["attempt"] != 2.0 || m["level"] != "DEBUG" || m["event"] != "step.retry_scheduled") {
			t.Fatalf("step line: %v", m)
		}
		if i == 0 && m["level"] != "INFO" {
			t.Fatalf("task line: %v", m)
		}
	}
}

func TestFieldsCoverEvent(t *testing.T) {
	b, err := json.Marshal(engine.Event{Name: "x", Time: time.Now(), TaskID: uuid.New(), Namespace: "n", Workflow: "w",
		CorrelationID: "c", Step: "s", StepID: uuid.New(), Attempt: 1, Handler: "h", From: "a", To: "b", Reason: "r",
		DurationMS: 1, Data: json.RawMessage(`{}`), Custom: true})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	documented := map[string]bool{}
	for _, f := range events.Fields {
		documented[f.Name] = true
	}
	for k := range m {
		if !documented[k] {
			t.Errorf("event field %q is not documented in events.Fields", k)
		}
	}
	if len(documented) != len(m) {
		t.Errorf("events.Fields documents %d fields; the event has %d", len(documented), len(m))
	}
}

// fakeBus records PutEvents calls; fail decides per entry failures.
type fakeBus struct {
	mu    sync.Mutex
	calls [][]types.PutEventsRequestEntry
	fail  func(call int, e types.PutEventsRequestEntry) bool
	block chan struct{}
}

func (f *fakeBus) PutEvents(_ context.Context, in *eventbridge.PutEventsInput, _ ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	if f.block != nil {
		<-f.block
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	call := len(f.calls)
	f.calls = append(f.calls, in.Entries)
	out := &eventbridge.PutEventsOutput{}
	for _, e := range in.Entries {
		if f.fail != nil && f.fail(call, e) {
			out.FailedEntryCount++
			out.Entries = append(out.Entries, types.PutEventsResultEntry{ErrorCode: aws.String("InternalFailure"), ErrorMessage: aws.String("boom")})
		} else {
			out.Entries = append(out.Entries, types.PutEventsResultEntry{EventId: aws.String(uuid.NewString())})
		}
	}
	return out, nil
}

func evs(n int) []engine.Event {
	out := make([]engine.Event, n)
	for i := range out {
		out[i] = engine.Event{Name: engine.StepCompleted, Time: time.Now(), TaskID: uuid.New(), Step: "s", Attempt: i + 1, CorrelationID: "c"}
	}
	return out
}

func TestEventBridgeBatchesAndRetries(t *testing.T) {
	bus := &fakeBus{fail: func(call int, e types.PutEventsRequestEntry) bool {
		// The first entry of every call fails: retried once, then dropped.
		return strings.Contains(aws.ToString(e.Detail), `"attempt":1}`)
	}}
	var logs bytes.Buffer
	p := events.NewEventBridge(bus, "tasker-bus", events.EventBridgeOptions{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	p.Publish(context.Background(), evs(23))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	sent := 0
	for _, c := range bus.calls {
		if len(c) > events.MaxEntriesPerCall {
			t.Fatalf("a call has %d entries", len(c))
		}
		for _, e := range c {
			if aws.ToString(e.EventBusName) != "tasker-bus" || aws.ToString(e.Source) != "tasker" || aws.ToString(e.DetailType) != "step.completed" {
				t.Fatalf("entry: %+v", e)
			}
			var ev engine.Event
			if err := json.Unmarshal([]byte(aws.ToString(e.Detail)), &ev); err != nil || ev.CorrelationID != "c" {
				t.Fatalf("detail %s: %v", aws.ToString(e.Detail), err)
			}
		}
		sent += len(c)
	}
	// 23 entries + 2 retries of the always-failing entry (sent once more).
	if sent != 24 {
		t.Fatalf("entries sent = %d over %d calls, want 24", sent, len(bus.calls))
	}
	if !strings.Contains(logs.String(), "dropped") {
		t.Fatalf("no warning about the dropped entry: %s", logs.String())
	}
}

func TestEventBridgeNeverBlocks(t *testing.T) {
	bus := &fakeBus{block: make(chan struct{})}
	var logs bytes.Buffer
	p := events.NewEventBridge(bus, "b", events.EventBridgeOptions{Buffer: 5, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		for range 10 {
			p.Publish(context.Background(), evs(10))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Publish blocked on a stuck EventBridge")
	}
	close(bus.block)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "buffer full") {
		t.Fatalf("no warning about dropped events: %s", logs.String())
	}
}

func TestEventBridgeCallError(t *testing.T) {
	var calls int
	var mu sync.Mutex
	api := apiFunc(func(in *eventbridge.PutEventsInput) (*eventbridge.PutEventsOutput, error) {
		mu.Lock()
		calls++
		mu.Unlock()
		return nil, errors.New("unavailable")
	})
	p := events.NewEventBridge(api, "b", events.EventBridgeOptions{})
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	p.Publish(context.Background(), evs(3))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Fatalf("calls = %d, want 2 (one retry)", calls)
	}
}

type apiFunc func(in *eventbridge.PutEventsInput) (*eventbridge.PutEventsOutput, error)

func (f apiFunc) PutEvents(_ context.Context, in *eventbridge.PutEventsInput, _ ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	return f(in)
}

func TestMetrics(t *testing.T) {
	reg := telemetry.NewRegistry()
	m := events.NewMetrics(reg)
	step := uuid.New()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m.Publish(context.Background(), []engine.Event{
		{Name: engine.TaskCreated, Namespace: "n", Workflow: "w"},
		{Name: engine.StepDispatched, StepID: step, Attempt: 1, Handler: "h", Time: t0, DurationMS: 2},
		{Name: engine.StepRetryScheduled, StepID: step, Attempt: 1, Time: t0.Add(1500 * time.Millisecond)},
		{Name: engine.StepDispatched, StepID: step, Attempt: 2, Handler: "h", Time: t0.Add(3 * time.Second), DurationMS: 2},
		{Name: engine.StepCompleted, StepID: step, Attempt: 2, Time: t0.Add(4 * time.Second)},
		{Name: engine.TaskCompleted, Namespace: "n", Workflow: "w"},
		{Name: engine.BatchProcessed, DurationMS: 10, Data: json.RawMessage(`{"messages":3,"queue_lag_ms":250}`)},
		{Name: engine.StepSkipped, StepID: uuid.New(), Attempt: 1, From: "in_progress", To: "skipped"},
		{Name: engine.StepSkipped, StepID: uuid.New(), From: "pending", To: "skipped"},
		{Name: engine.StepSkipped, StepID: uuid.New(), From: "pending", To: "skipped"},
	})
	var b bytes.Buffer
	if err := reg.WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`tasker_tasks_created_total{namespace="n",workflow="w"} 1`,
		`tasker_tasks_completed_total{namespace="n",workflow="w"} 1`,
		`tasker_step_attempts_total{handler="h",outcome="completed"} 1`,
		`tasker_step_attempts_total{handler="h",outcome="retry_scheduled"} 1`,
		`tasker_step_duration_seconds_sum{handler="h"} 2.5`,
		`tasker_dispatch_latency_seconds_count{handler="h"} 2`,
		`tasker_queue_lag_seconds_sum 0.25`,
		`tasker_steps_in_flight 0`,
		`tasker_steps_skipped_total{cause="condition"} 1`,
		`tasker_steps_skipped_total{cause="trigger_rule"} 2`,
	} {
		if !strings.Contains(b.String(), want+"\n") {
			t.Errorf("missing %s in\n%s", want, b.String())
		}
	}
}

func TestEventBridgeService(t *testing.T) {
	servicetest.Run(t, func(*testing.T) service.Service {
		return events.NewEventBridge(apiFunc(func(in *eventbridge.PutEventsInput) (*eventbridge.PutEventsOutput, error) {
			return &eventbridge.PutEventsOutput{}, nil
		}), "b", events.EventBridgeOptions{})
	}, servicetest.Options{})
}

// Events published before Start wait in the buffer; Stop sends what is
// buffered.
func TestEventBridgeStartStop(t *testing.T) {
	bus := &fakeBus{}
	p := events.NewEventBridge(bus, "b", events.EventBridgeOptions{})
	p.Publish(context.Background(), evs(3))
	if err := p.Flush(context.Background()); err == nil {
		t.Fatal("Flush before Start succeeded")
	}
	if n := bus.sent(); n != 0 {
		t.Fatalf("%d entries sent before Start", n)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	p.Stop()
	if n := bus.sent(); n != 3 {
		t.Fatalf("%d entries sent by Start and Stop, want 3", n)
	}
}

func (f *fakeBus) sent() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		n += len(c)
	}
	return n
}

// TestMetricsParallelSiblings replays the order in which a pass publishes
// the events of two sibling steps dispatched together, when the first
// sibling's result is recorded before the dispatch round ends: the
// durations stay non-negative and nothing stays in flight.
func TestMetricsParallelSiblings(t *testing.T) {
	t.Parallel()
	reg := telemetry.NewRegistry()
	m := events.NewMetrics(reg)
	a, b := uuid.New(), uuid.New()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ctx := context.Background()
	m.Publish(ctx, []engine.Event{
		{Name: engine.StepClaimed, StepID: a, Attempt: 1, Handler: "h", Time: t0},
		{Name: engine.StepClaimed, StepID: b, Attempt: 1, Handler: "h", Time: t0},
	})
	// a's result pass runs while b is still being dispatched.
	m.Publish(ctx, []engine.Event{{Name: engine.StepCompleted, StepID: a, Attempt: 1, Time: t0.Add(time.Second)}})
	m.Publish(ctx, []engine.Event{
		{Name: engine.StepDispatched, StepID: a, Attempt: 1, Handler: "h", Time: t0.Add(3 * time.Second), DurationMS: 1},
		{Name: engine.StepDispatched, StepID: b, Attempt: 1, Handler: "h", Time: t0.Add(3 * time.Second), DurationMS: 1},
	})
	// A result stamped before the claim (clocks of different passes).
	m.Publish(ctx, []engine.Event{{Name: engine.StepCompleted, StepID: b, Attempt: 1, Time: t0.Add(-time.Second)}})
	var buf bytes.Buffer
	if err := reg.WritePrometheus(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`tasker_step_duration_seconds_sum{handler="h"} 1`,
		`tasker_step_duration_seconds_count{handler="h"} 2`,
		`tasker_step_attempts_total{handler="h",outcome="completed"} 2`,
		`tasker_steps_in_flight 0`,
	} {
		if !strings.Contains(buf.String(), want+"\n") {
			t.Errorf("missing %s in\n%s", want, buf.String())
		}
	}
}

func TestMetricsInFlightLimit(t *testing.T) {
	t.Parallel()
	reg := telemetry.NewRegistry()
	m := events.NewMetrics(reg)
	m.Publish(context.Background(), []engine.Event{
		{Name: engine.ConcurrencyChanged, Data: json.RawMessage(`{"limit":50,"previous":50,"reason":"healthy"}`)},
		{Name: engine.ConcurrencyChanged, Data: json.RawMessage(`{"limit":25,"previous":50,"reason":"pressure"}`)},
	})
	var b bytes.Buffer
	if err := reg.WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`tasker_in_flight_limit 25`,
		`tasker_in_flight_limit_reason{reason="pressure"} 1`,
		`tasker_in_flight_limit_reason{reason="healthy"} 0`,
	} {
		if !strings.Contains(b.String(), want+"\n") {
			t.Errorf("missing %s in\n%s", want, b.String())
		}
	}
}

// Map instances ("<step>[<i>]") count by final outcome; the map step
// itself and retried attempts do not (docs/control-flow.md, "Map").
func TestMetricsMapInstances(t *testing.T) {
	t.Parallel()
	reg := telemetry.NewRegistry()
	m := events.NewMetrics(reg)
	ev := func(name engine.EventName, step string) engine.Event {
		return engine.Event{Name: name, Step: step, StepID: uuid.New(), Attempt: 1}
	}
	m.Publish(context.Background(), []engine.Event{
		ev(engine.StepCompleted, "convert[0]"),
		ev(engine.StepCompleted, "convert[11]"),
		ev(engine.StepRetryScheduled, "convert[2]"),
		ev(engine.StepFailed, "convert[2]"),
		ev(engine.StepRetriesExhausted, "convert[3]"),
		ev(engine.StepCancelled, "convert[4]"),
		ev(engine.StepCompleted, "convert"),   // the map step itself
		ev(engine.StepCompleted, "summarise"), // a plain step
		ev(engine.StepCompleted, "odd[x]"),    // not an instance name
		ev(engine.StepCancelled, "list_files"),
	})
	var b bytes.Buffer
	if err := reg.WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`tasker_map_instances_total{outcome="completed"} 2`,
		`tasker_map_instances_total{outcome="failed"} 2`,
		`tasker_map_instances_total{outcome="cancelled"} 1`,
	} {
		if !strings.Contains(b.String(), want+"\n") {
			t.Errorf("missing %s in\n%s", want, b.String())
		}
	}
}

// Held steps are counted by limit from scheduler.steps_held, once per pass
// that held them (docs/observability.md).
func TestMetricsFlowControlHeld(t *testing.T) {
	t.Parallel()
	reg := telemetry.NewRegistry()
	m := events.NewMetrics(reg)
	m.Publish(context.Background(), []engine.Event{
		{Name: engine.StepsHeld, Data: json.RawMessage(`{"rate_limit":3}`)},
		{Name: engine.StepsHeld, Data: json.RawMessage(`{"rate_limit":2,"concurrency":4}`)},
		{Name: engine.StepsHeld, Data: json.RawMessage(`not json`)},
	})
	var b bytes.Buffer
	if err := reg.WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`tasker_flow_control_held_total{limit="rate_limit"} 5`,
		`tasker_flow_control_held_total{limit="concurrency"} 4`,
	} {
		if !strings.Contains(b.String(), want+"\n") {
			t.Errorf("missing %s in\n%s", want, b.String())
		}
	}
}
