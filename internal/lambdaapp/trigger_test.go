package lambdaapp_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/lambdaapp"
	"github.com/taskerhq/tasker/internal/lambdaapp/lambdatest"
)

// TestTriggerFunction feeds the trigger function, set up as in Lambda, an
// S3 notification, S3's EventBridge "Object Created", a custom EventBridge
// event and events that match nothing; with TASKER_EVENT_BUS set, the
// lifecycle events reach the bus before each invocation returns, and the
// metrics are in the log as EMF.
func TestTriggerFunction(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := ctxFor(t)
	e := w.env()
	e["TASKER_EVENT_BUS"] = w.bus.Bus
	trig := handlerOf[triggerHandler](t, lambdaapp.Trigger, w.deps(e))

	s3, err := trig(ctx, lambdatest.Event(t, "s3-event.json", nil))
	if err != nil || s3.Kind != "s3" || len(s3.Tasks) != 1 || !s3.Tasks[0].Created {
		t.Fatalf("s3 notification: %+v, %v", s3, err)
	}
	if want := "s3:tasker-data-exports/exports/2024-05-01/Daily Orders(1).csv/0055AED6DCD90281E5#data/etl_pipeline"; s3.Tasks[0].IdempotencyKey != want {
		t.Errorf("key %q, want %q", s3.Tasks[0].IdempotencyKey, want)
	}
	var src, ctxJSON string
	if err := w.pool.QueryRow(ctx, `SELECT source_system, context::text FROM tasker_tasks WHERE id = $1`, s3.Tasks[0].TaskID).Scan(&src, &ctxJSON); err != nil {
		t.Fatal(err)
	}
	if src != "s3" || !strings.Contains(ctxJSON, `"source_key": "exports/2024-05-01/Daily Orders(1).csv"`) {
		t.Errorf("task source %q context %s", src, ctxJSON)
	}
	again, err := trig(ctx, lambdatest.Event(t, "s3-event.json", nil))
	if err != nil || len(again.Tasks) != 1 || again.Tasks[0].Created || again.Tasks[0].TaskID != s3.Tasks[0].TaskID {
		t.Errorf("redelivered notification: %+v, %v", again, err)
	}

	ebS3, err := trig(ctx, lambdatest.Event(t, "eventbridge-s3-object-created.json", nil))
	if err != nil || ebS3.Kind != "eventbridge" || len(ebS3.Tasks) != 1 || ebS3.Tasks[0].Name != "etl_pipeline" || ebS3.Tasks[0].TaskID == s3.Tasks[0].TaskID {
		t.Errorf("EventBridge Object Created: %+v, %v", ebS3, err)
	}
	order, err := trig(ctx, lambdatest.Event(t, "eventbridge-order-placed.json", nil))
	if err != nil || len(order.Tasks) != 1 || order.Tasks[0].Name != "process_order" ||
		order.Tasks[0].IdempotencyKey != "eventbridge:6a7e8feb-b491-4cf7-a9f1-bf3703467718#ecommerce/process_order" {
		t.Errorf("order event: %+v, %v", order, err)
	}
	none, err := trig(ctx, json.RawMessage(`{"version":"0","id":"x","detail-type":"Order Shipped","source":"shop.storefront","detail":{}}`))
	if err != nil || none.Matched != 0 {
		t.Errorf("unmatched event: %+v, %v", none, err)
	}
	// An order whose detail fails the schema is dropped, not an error.
	bad, err := trig(ctx, json.RawMessage(`{"version":"0","id":"y","detail-type":"Order Placed","source":"shop.storefront","detail":{"order_id":"O"}}`))
	if err != nil || bad.Matched != 1 || len(bad.Tasks) != 0 || len(bad.Rejected) != 1 {
		t.Errorf("invalid order: %+v, %v", bad, err)
	}

	created := 0
	evs := w.bus.Receive(t, 3, 5*time.Second)
	for _, ev := range evs {
		if ev.DetailType == string(engine.TaskCreated) && ev.Source == "tasker" {
			created++
		}
	}
	if created != 3 {
		t.Errorf("%d task.created events delivered from the bus, want 3: %+v", created, evs)
	}
	emf := false
	for _, rec := range w.logs.records(t) {
		if _, ok := rec["_aws"]; ok && rec["tasker_tasks_created_total"] != nil {
			emf = true
		}
	}
	if !emf {
		t.Errorf("no EMF line with tasker_tasks_created_total in the log:\n%s", w.logs)
	}
}

// recEngine records the messages of a batch.
type recEngine struct{ msgs []engine.InMessage }

func (r *recEngine) HandleMessages(_ context.Context, msgs []engine.InMessage) ([]string, error) {
	r.msgs = append(r.msgs, msgs...)
	return nil, nil
}

func (r *recEngine) Sweep(context.Context) (engine.SweepReport, error) {
	return engine.SweepReport{}, nil
}

func TestSchedulerPassesTraceContextAndSentTime(t *testing.T) {
	t.Parallel()
	rec := &recEngine{}
	h := &lambdaapp.SchedulerHandler{Engine: rec}
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ev := events.SQSEvent{Records: []events.SQSMessage{{
		MessageId: "m1", Body: `{"kind":"wake","task_id":"` + uuid.NewString() + `"}`, EventSource: "aws:sqs",
		Attributes: map[string]string{"SentTimestamp": "1714557600000", "AWSTraceHeader": "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"},
		MessageAttributes: map[string]events.SQSMessageAttribute{
			"traceparent": {StringValue: &tp, DataType: "String"},
		},
	}}}
	b, _ := json.Marshal(ev)
	if _, err := h.Handle(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if len(rec.msgs) != 1 {
		t.Fatalf("%d messages", len(rec.msgs))
	}
	m := rec.msgs[0]
	if m.ID != "m1" || m.Attributes["traceparent"] != tp || !strings.HasPrefix(m.Attributes["AWSTraceHeader"], "Root=1-5759e988") {
		t.Errorf("message %+v", m)
	}
	if want := time.UnixMilli(1714557600000).UTC(); !m.ReadyAt.Equal(want) {
		t.Errorf("ReadyAt %v, want %v", m.ReadyAt, want)
	}
}
