package lambdaapp_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/examples"
	"github.com/taskerhq/tasker/internal/lambdaapp"
	"github.com/taskerhq/tasker/internal/lambdaapp/lambdatest"
	"github.com/taskerhq/tasker/internal/pgtest"
	"github.com/taskerhq/tasker/internal/testenv"
	"github.com/taskerhq/tasker/internal/trigger"
	"github.com/taskerhq/tasker/sdk"
)

type (
	rawHandler     = func(context.Context, json.RawMessage) (any, error)
	triggerHandler = func(context.Context, json.RawMessage) (trigger.Summary, error)
)

// awsWorld is moto with a scheduler queue and a lifecycle event bus routed
// to a queue, a fake Lambda and a database.
type awsWorld struct {
	moto, queueURL, dbURL string
	lambda                *lambdatest.FakeLambda
	bus                   *lambdatest.EventRoute
	pool                  *pgxpool.Pool
	logs                  *logBuffer
}

func newWorld(t *testing.T) *awsWorld {
	t.Helper()
	w := &awsWorld{dbURL: pgtest.URL(t), logs: &logBuffer{}}
	w.moto = testenv.Moto(t)
	w.queueURL = lambdatest.CreateQueue(t, w.moto, "tasker-scheduler")
	w.lambda = lambdatest.NewFakeLambda(t, nil)
	w.bus = lambdatest.RouteEvents(t, w.moto, testenv.UniqueName("tasker-lifecycle"), `{"source":["tasker"]}`)
	pool, err := pgxpool.New(context.Background(), w.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	w.pool = pool
	return w
}

func (w *awsWorld) env() env {
	return env{
		"DATABASE_URL":               w.dbURL,
		"TASKER_SCHEDULER_QUEUE_URL": w.queueURL,
		"TASKER_HANDLERS_FUNCTION":   "tasker-handlers",
		"AWS_LAMBDA_FUNCTION_NAME":   "tasker-test",
	}
}

func (w *awsWorld) deps(e env) lambdaapp.Deps {
	return lambdaapp.Deps{Getenv: e.get, Logs: w.logs, AWSConfig: func(context.Context) (aws.Config, error) {
		return lambdatest.AWSConfig(w.moto, map[string]string{"Lambda": w.lambda.URL}), nil
	}}
}

func (w *awsWorld) step(t *testing.T, taskID uuid.UUID, name string) (state string, attempts int, lastError string) {
	t.Helper()
	var le *string
	err := w.pool.QueryRow(context.Background(),
		`SELECT state, attempts, last_error::text FROM tasker_steps WHERE task_id = $1 AND name = $2`, taskID, name).Scan(&state, &attempts, &le)
	if err != nil {
		t.Fatalf("step %s: %v", name, err)
	}
	if le != nil {
		lastError = *le
	}
	return state, attempts, lastError
}

func handlerOf[H any](t *testing.T, f lambdaapp.Function, d lambdaapp.Deps) H {
	t.Helper()
	h, err := f.Handler(ctxFor(t), d)
	if err != nil {
		t.Fatalf("%s setup: %v", f.Name, err)
	}
	typed, ok := h.(H)
	if !ok {
		t.Fatalf("%s handler is a %T", f.Name, h)
	}
	return typed
}

func batchResponse(t *testing.T, out any, err error) events.SQSEventResponse {
	t.Helper()
	if err != nil {
		t.Fatalf("scheduler: %v", err)
	}
	resp, ok := out.(events.SQSEventResponse)
	if !ok {
		t.Fatalf("scheduler answered a %T to an SQS batch", out)
	}
	if resp.BatchItemFailures == nil {
		t.Error("batchItemFailures is null; want a list")
	}
	return resp
}

func failedIDs(resp events.SQSEventResponse) string {
	var ids []string
	for _, f := range resp.BatchItemFailures {
		ids = append(ids, f.ItemIdentifier)
	}
	return strings.Join(ids, ",")
}

func stepOf(t *testing.T, payload []byte) contract.Meta {
	t.Helper()
	var p contract.Payload
	if err := json.Unmarshal(payload, &p); err != nil {
		t.Fatalf("invocation payload: %v: %s", err, payload)
	}
	return p.Tasker
}

// TestSchedulerFunction drives the scheduler function, set up as in
// Lambda, with real-shaped events: a batch with a wake-up and poison
// messages, destination records of a success and of a failure, a
// redelivered record, and the sweep's Scheduled Event. The task comes from
// the trigger function.
func TestSchedulerFunction(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := ctxFor(t)
	trig := handlerOf[triggerHandler](t, lambdaapp.Trigger, w.deps(w.env()))
	sum, err := trig(ctx, lambdatest.Event(t, "eventbridge-order-placed.json", nil))
	if err != nil || len(sum.Tasks) != 1 || !sum.Tasks[0].Created {
		t.Fatalf("trigger: %+v, %v", sum, err)
	}
	taskID := uuid.MustParse(sum.Tasks[0].TaskID)

	sched := handlerOf[rawHandler](t, lambdaapp.Scheduler, w.deps(w.env()))
	batch := func(out any, err error) events.SQSEventResponse { return batchResponse(t, out, err) }
	resp := batch(sched(ctx, lambdatest.SQSEvent(t,
		lambdatest.Message{ID: "wake-1", Body: string(contract.NewWake(taskID))},
		lambdatest.Message{ID: "poison-1", Body: "not json"},
		lambdatest.Message{ID: "poison-2", Body: `{"kind":"bogus"}`},
	)))
	if got := failedIDs(resp); got != "poison-1,poison-2" {
		t.Errorf("batch item failures %q, want the two poison messages", got)
	}
	invs := w.lambda.WaitFor(t, 1, 10*time.Second)
	first := invs[0]
	if first.Function != "tasker-handlers" || first.Type != "Event" {
		t.Fatalf("invocation %+v", first)
	}
	if m := stepOf(t, first.Payload); m.Step != "validate_order" || m.Attempt != 1 || m.TaskID != taskID || m.Handler != "ecommerce.validate_order" {
		t.Fatalf("first invocation %+v", m)
	}

	// The handler's real answer comes back as a destination record.
	reg := sdk.NewRegistry()
	if err := examples.Register(reg); err != nil {
		t.Fatal(err)
	}
	result := sdk.Run(ctx, reg, first.Payload)
	if _, isErr := contract.AsHandlerError(result); isErr {
		t.Fatalf("validate_order failed: %s", result)
	}
	success := lambdatest.DestinationSuccess(t, first.Payload, result)
	resp = batch(sched(ctx, lambdatest.SQSEvent(t, lambdatest.Message{ID: "dest-ok", Body: success})))
	if len(resp.BatchItemFailures) != 0 {
		t.Errorf("failures %q after a success record", failedIDs(resp))
	}
	if st, n, _ := w.step(t, taskID, "validate_order"); st != "complete" || n != 1 {
		t.Errorf("validate_order %s after %d attempts", st, n)
	}
	invs = w.lambda.WaitFor(t, 3, 10*time.Second)
	next := map[string][]byte{}
	for _, inv := range invs[1:] {
		next[stepOf(t, inv.Payload).Step] = inv.Payload
	}
	if len(next) != 2 || next["process_payment"] == nil || next["fraud_check"] == nil {
		t.Fatalf("after validate_order, invoked %v; want process_payment and fraud_check", keys(next))
	}

	// The payment attempt timed out: Lambda's failure record.
	failure := lambdatest.DestinationFailure(t, next["process_payment"])
	resp = batch(sched(ctx, lambdatest.SQSEvent(t, lambdatest.Message{ID: "dest-fail", Body: failure})))
	if len(resp.BatchItemFailures) != 0 {
		t.Errorf("failures %q after a failure record", failedIDs(resp))
	}
	st, n, lastErr := w.step(t, taskID, "process_payment")
	if st != "waiting_for_retry" || n != 1 || !strings.Contains(lastErr, "Sandbox.Timedout") {
		t.Errorf("process_payment: %s after %d attempts, last error %s", st, n, lastErr)
	}

	// A redelivered record changes nothing.
	resp = batch(sched(ctx, lambdatest.SQSEvent(t, lambdatest.Message{ID: "dest-ok-again", Body: success})))
	if len(resp.BatchItemFailures) != 0 {
		t.Errorf("failures %q after a redelivery", failedIDs(resp))
	}
	if st, n, _ := w.step(t, taskID, "validate_order"); st != "complete" || n != 1 {
		t.Errorf("validate_order %s after %d attempts after a redelivery", st, n)
	}

	// The EventBridge schedule runs the sweep.
	out, err := sched(ctx, lambdatest.Event(t, "cloudwatch-scheduled-event.json", nil))
	if err != nil {
		t.Fatalf("sweep: %v", err)
	}
	if _, ok := out.(lambdaapp.SweepResponse); !ok {
		t.Errorf("sweep answered %T", out)
	}
	b, _ := json.Marshal(out)
	if !strings.Contains(string(b), `"sweep":{"tasks":`) {
		t.Errorf("sweep response %s", b)
	}

	// Anything else is an error.
	for _, ev := range []string{`{"source":"aws.events","detail-type":"Other"}`, `[]`} {
		if _, err := sched(ctx, json.RawMessage(ev)); err == nil {
			t.Errorf("%s: no error", ev)
		}
	}
	if !strings.Contains(w.logs.String(), `"msg":"scheduler batch done"`) {
		t.Errorf("no batch log line in:\n%s", w.logs)
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// failingEngine fails every pass.
type failingEngine struct{ err error }

func (f failingEngine) HandleMessages(_ context.Context, msgs []engine.InMessage) ([]string, error) {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	return ids, f.err
}

func (f failingEngine) Sweep(context.Context) (engine.SweepReport, error) {
	return engine.SweepReport{}, f.err
}

func TestSchedulerReportsEveryMessageWhenThePassFails(t *testing.T) {
	t.Parallel()
	down := errors.New("database down")
	h := &lambdaapp.SchedulerHandler{Engine: failingEngine{down}}
	out, err := h.Handle(context.Background(), lambdatest.SQSEvent(t,
		lambdatest.Message{ID: "a", Body: string(contract.NewWake(uuid.New()))},
		lambdatest.Message{ID: "b", Body: string(contract.NewWake(uuid.New()))}))
	if got := failedIDs(batchResponse(t, out, err)); got != "a,b" {
		t.Errorf("failures %q, want a,b", got)
	}
	if _, err := h.Handle(context.Background(), lambdatest.Event(t, "cloudwatch-scheduled-event.json", nil)); !errors.Is(err, down) {
		t.Errorf("sweep error %v, want %v", err, down)
	}
	// The response is the JSON the event source mapping expects.
	b, _ := json.Marshal(out)
	if want := `{"batchItemFailures":[{"itemIdentifier":"a"},{"itemIdentifier":"b"}]}`; string(b) != want {
		t.Errorf("response %s, want %s", b, want)
	}
}
