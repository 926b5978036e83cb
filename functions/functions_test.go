package functions_test

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/lambdaapp/lambdatest"
	"github.com/taskerhq/tasker/internal/migrate"
	"github.com/taskerhq/tasker/internal/pgtest"
	"github.com/taskerhq/tasker/internal/testenv"
	"github.com/taskerhq/tasker/internal/trigger"
	"github.com/taskerhq/tasker/sdk"
)

// TestFunctions builds every function once and runs each under the Lambda
// Runtime Interface Emulator, then all of them together on the AWS path.
func TestFunctions(t *testing.T) {
	bins := buildAll(t)
	t.Run("api", func(t *testing.T) { t.Parallel(); testAPI(t, bins["api"]) })
	t.Run("scheduler", func(t *testing.T) { t.Parallel(); testScheduler(t, bins) })
	t.Run("handlers", func(t *testing.T) { t.Parallel(); testHandlers(t, bins["handlers"]) })
	t.Run("trigger", func(t *testing.T) { t.Parallel(); testTrigger(t, bins["trigger"]) })
	t.Run("migrate", func(t *testing.T) { t.Parallel(); testMigrate(t, bins["migrate"]) })
	t.Run("aws-path", func(t *testing.T) { t.Parallel(); testAWSPath(t, bins) })
}

func testAPI(t *testing.T, bootstrap string) {
	w := newWorld(t, pgtest.URL(t))
	env := w.engineEnv("")
	env["TASKER_AUTH_HS256_SECRET"] = hsSecret
	api := startRIE(t, "api", bootstrap, env)
	tok := token(t, "tasks:create tasks:read")

	create := apiCreate(t, tok, "rie-order-1", map[string]any{"namespace": "ecommerce", "name": "process_order", "context": orderContext(t)})
	resp := api.http(t, create)
	if resp.StatusCode != http.StatusCreated || !strings.HasPrefix(resp.Headers["Content-Type"], "application/json") {
		t.Fatalf("create: %d %v %s", resp.StatusCode, resp.Headers, resp.Body)
	}
	var task struct {
		ID, Status, IdempotencyKey, CorrelationID string
		Steps                                     []struct{ Name, Status string }
	}
	if err := json.Unmarshal([]byte(resp.Body), &task); err != nil {
		t.Fatal(err)
	}
	// encoding/json matches the snake_case keys case-insensitively only
	// without underscores; read those two by hand.
	var keys map[string]any
	_ = json.Unmarshal([]byte(resp.Body), &keys)
	if task.ID == "" || task.Status != "pending" || len(task.Steps) != 6 || keys["idempotency_key"] != "rie-order-1" || keys["correlation_id"] != "corr-apigw-1" {
		t.Errorf("created %s", resp.Body)
	}
	if again := api.http(t, create); again.StatusCode != http.StatusOK || !strings.Contains(again.Body, task.ID) {
		t.Errorf("repeat: %d %s", again.StatusCode, again.Body)
	}

	// The new task's wake-up is on the scheduler queue.
	ctx := ctxFor(t, 30*time.Second)
	ds, err := w.queue.Receive(ctx, 10, 5*time.Second)
	if err != nil || len(ds) != 1 {
		t.Fatalf("queue: %d messages, %v", len(ds), err)
	}
	if msg, err := contract.ParseMessage(ds[0].Body); err != nil || msg.Wake == nil || msg.Wake.TaskID.String() != task.ID {
		t.Errorf("queue message %s: %v", ds[0].Body, err)
	}

	if got := api.http(t, apiGet(t, tok, "/v1/tasks/"+task.ID)); got.StatusCode != http.StatusOK || !strings.Contains(got.Body, `"send_confirmation"`) {
		t.Errorf("get: %d %s", got.StatusCode, got.Body)
	}
	if got := api.http(t, apiGet(t, "", "/v1/tasks/"+task.ID)); got.StatusCode != http.StatusUnauthorized ||
		!strings.HasPrefix(got.Headers["Content-Type"], "application/problem+json") {
		t.Errorf("without a token: %d %v %s", got.StatusCode, got.Headers, got.Body)
	}
	if got := api.http(t, apiGet(t, token(t, "tasks:read"), "/v1/tasks?limit=1")); got.StatusCode != http.StatusForbidden {
		t.Errorf("list without tasks:list: %d %s", got.StatusCode, got.Body)
	}
	if got := api.http(t, apiGet(t, "", "/v1/health/ready")); got.StatusCode != http.StatusOK {
		t.Errorf("ready: %d %s", got.StatusCode, got.Body)
	}
	if got := api.http(t, apiGet(t, "", "/v1/nope")); got.StatusCode != http.StatusNotFound {
		t.Errorf("unknown route: %d %s", got.StatusCode, got.Body)
	}
}

// stepState reads one step of a task.
func (w *world) stepState(t *testing.T, taskID uuid.UUID, name string) (string, int, string) {
	t.Helper()
	var state string
	var attempts int
	var lastErr *string
	if err := w.pool.QueryRow(context.Background(), `SELECT state, attempts, last_error::text FROM tasker_steps WHERE task_id = $1 AND name = $2`,
		taskID, name).Scan(&state, &attempts, &lastErr); err != nil {
		t.Fatalf("step %s: %v", name, err)
	}
	if lastErr == nil {
		return state, attempts, ""
	}
	return state, attempts, *lastErr
}

func testScheduler(t *testing.T, bins map[string]string) {
	w := newWorld(t, pgtest.URL(t))
	fake := lambdatest.NewFakeLambda(t, nil)
	sched := startRIE(t, "scheduler", bins["scheduler"], w.engineEnv(fake.URL))
	handlers := startRIE(t, "handlers", bins["handlers"], nil)
	trig := startRIE(t, "trigger", bins["trigger"], w.engineEnv(""))

	var sum trigger.Summary
	trig.invokeOK(t, lambdatest.Event(t, "eventbridge-order-placed.json", nil), &sum)
	if len(sum.Tasks) != 1 {
		t.Fatalf("trigger: %+v", sum)
	}
	taskID := uuid.MustParse(sum.Tasks[0].TaskID)

	batch := func(msgs ...lambdatest.Message) events.SQSEventResponse {
		t.Helper()
		var resp struct {
			BatchItemFailures *[]events.SQSBatchItemFailure `json:"batchItemFailures"`
		}
		sched.invokeOK(t, lambdatest.SQSEvent(t, msgs...), &resp)
		if resp.BatchItemFailures == nil {
			t.Fatal("the scheduler's answer to a batch has no batchItemFailures list")
		}
		return events.SQSEventResponse{BatchItemFailures: *resp.BatchItemFailures}
	}
	resp := batch(
		lambdatest.Message{ID: "wake-1", Body: string(contract.NewWake(taskID))},
		lambdatest.Message{ID: "poison-1", Body: `{"requestContext":{"condition":"Success"},"requestPayload":{}}`},
	)
	if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != "poison-1" {
		t.Errorf("failures %+v, want only poison-1", resp.BatchItemFailures)
	}
	invs := fake.WaitFor(t, 1, 10*time.Second)
	var p contract.Payload
	if err := json.Unmarshal(invs[0].Payload, &p); err != nil || invs[0].Function != "tasker-handlers" || invs[0].Type != "Event" ||
		p.Tasker.Step != "validate_order" || p.Tasker.TaskID != taskID || p.Tasker.Attempt != 1 {
		t.Fatalf("invocation %+v: %s", invs[0], invs[0].Payload)
	}

	// The handlers function computes the real result; Lambda's success
	// record carries it back.
	result, failed := handlers.invoke(t, invs[0].Payload)
	if failed {
		t.Fatalf("handlers: %s", result)
	}
	if resp := batch(lambdatest.Message{ID: "ok-1", Body: lambdatest.DestinationSuccess(t, invs[0].Payload, result)}); len(resp.BatchItemFailures) != 0 {
		t.Errorf("failures after a success record: %+v", resp.BatchItemFailures)
	}
	if st, n, _ := w.stepState(t, taskID, "validate_order"); st != "complete" || n != 1 {
		t.Errorf("validate_order %s after %d attempts", st, n)
	}
	invs = fake.WaitFor(t, 3, 10*time.Second)
	var payment []byte
	for _, inv := range invs[1:] {
		var p contract.Payload
		_ = json.Unmarshal(inv.Payload, &p)
		if p.Tasker.Step == "process_payment" {
			payment = inv.Payload
		}
	}
	if payment == nil {
		t.Fatalf("process_payment not invoked: %d invocations", len(invs))
	}

	// Lambda's failure record (the handler timed out) schedules a retry.
	if resp := batch(lambdatest.Message{ID: "fail-1", Body: lambdatest.DestinationFailure(t, payment)}); len(resp.BatchItemFailures) != 0 {
		t.Errorf("failures after a failure record: %+v", resp.BatchItemFailures)
	}
	if st, n, le := w.stepState(t, taskID, "process_payment"); st != "waiting_for_retry" || n != 1 || !strings.Contains(le, "Task timed out") {
		t.Errorf("process_payment %s after %d attempts, last error %s", st, n, le)
	}

	var sweep struct {
		Sweep *struct {
			Tasks       *int `json:"tasks"`
			TimedOut    *int `json:"timed_out"`
			Interrupted *int `json:"interrupted"`
		} `json:"sweep"`
	}
	sched.invokeOK(t, lambdatest.Event(t, "cloudwatch-scheduled-event.json", nil), &sweep)
	if sweep.Sweep == nil || sweep.Sweep.Tasks == nil || sweep.Sweep.TimedOut == nil || *sweep.Sweep.TimedOut != 0 {
		t.Errorf("sweep answer %+v", sweep)
	}
	if body, failed := sched.invoke(t, []byte(`{"source":"aws.events","detail-type":"Something Else"}`)); !failed {
		t.Errorf("an unknown event did not fail: %s", body)
	}
}

func testHandlers(t *testing.T, bootstrap string) {
	h := startRIE(t, "handlers", bootstrap, nil)
	payload := func(handler, ctx string) []byte {
		b, _ := json.Marshal(contract.Payload{
			Tasker: contract.Meta{Version: 1, TaskID: uuid.New(), StepID: uuid.New(), Step: "s", Handler: handler, Attempt: 1, MaxAttempts: 3,
				Namespace: "ecommerce", Workflow: "process_order", WorkflowVersion: "1.0.0", IdempotencyKey: "k/s/1",
				Deadline: time.Now().Add(time.Minute).UTC()},
			Context: json.RawMessage(ctx), Config: json.RawMessage(`{}`),
		})
		return b
	}
	if out, failed := h.invoke(t, payload("tasker.noop", `{}`)); failed || string(out) != `{}` {
		t.Errorf("tasker.noop: %s", out)
	}
	out, failed := h.invoke(t, payload("ecommerce.validate_order", string(orderContext(t))))
	var res map[string]any
	if failed || json.Unmarshal(out, &res) != nil || res["tasker_error"] != nil || len(res) == 0 {
		t.Errorf("ecommerce.validate_order: %s", out)
	}
	// Handled failures are successful invocations carrying the envelope.
	for _, c := range []struct{ payload, code string }{
		{string(payload("nobody.home", `{}`)), "unknown_handler"},
		{`{"tasker":{"handler":""}}`, "invalid_payload"},
		{string(payload("ecommerce.validate_order", `{"order_id":"x"}`)), ""},
	} {
		out, failed := h.invoke(t, []byte(c.payload))
		he, ok := contract.AsHandlerError(out)
		if failed || !ok || (c.code != "" && (he.Code != c.code || !he.Permanent)) {
			t.Errorf("%s: %s", c.payload, out)
		}
	}
}

func testTrigger(t *testing.T, bootstrap string) {
	w := newWorld(t, pgtest.URL(t))
	trig := startRIE(t, "trigger", bootstrap, w.engineEnv(""))
	run := func(event []byte) trigger.Summary {
		t.Helper()
		var s trigger.Summary
		trig.invokeOK(t, event, &s)
		return s
	}
	s3 := run(lambdatest.Event(t, "s3-event.json", nil))
	if s3.Kind != "s3" || len(s3.Tasks) != 1 || !s3.Tasks[0].Created || s3.Tasks[0].Name != "etl_pipeline" ||
		s3.Tasks[0].IdempotencyKey != "s3:tasker-data-exports/exports/2024-05-01/Daily Orders(1).csv/0055AED6DCD90281E5#data/etl_pipeline" {
		t.Errorf("S3 notification: %+v", s3)
	}
	if again := run(lambdatest.Event(t, "s3-event.json", nil)); len(again.Tasks) != 1 || again.Tasks[0].Created || again.Tasks[0].TaskID != s3.Tasks[0].TaskID {
		t.Errorf("redelivered S3 notification: %+v", again)
	}
	eb := run(lambdatest.Event(t, "eventbridge-s3-object-created.json", nil))
	if eb.Kind != "eventbridge" || len(eb.Tasks) != 1 || !eb.Tasks[0].Created ||
		eb.Tasks[0].IdempotencyKey != "s3:tasker-data-exports/exports/2024-05-02/orders.csv/617f08299329d189#data/etl_pipeline" {
		t.Errorf("EventBridge Object Created: %+v", eb)
	}
	order := run(lambdatest.Event(t, "eventbridge-order-placed.json", nil))
	if len(order.Tasks) != 1 || order.Tasks[0].Name != "process_order" ||
		order.Tasks[0].IdempotencyKey != "eventbridge:6a7e8feb-b491-4cf7-a9f1-bf3703467718#ecommerce/process_order" {
		t.Errorf("custom EventBridge event: %+v", order)
	}
	if again := run(lambdatest.Event(t, "eventbridge-order-placed.json", nil)); len(again.Tasks) != 1 || again.Tasks[0].Created {
		t.Errorf("redelivered custom event: %+v", again)
	}
	for name, ev := range map[string]string{
		"unmatched EventBridge event": `{"version":"0","id":"u-1","detail-type":"Order Shipped","source":"shop.storefront","detail":{}}`,
		"S3 test event":               `{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2024-05-01T10:00:00.000Z","Bucket":"tasker-data-exports","RequestId":"R","HostId":"H"}`,
		"object in another bucket":    strings.Replace(string(lambdatest.Event(t, "s3-event.json", nil)), `"name": "tasker-data-exports"`, `"name": "other"`, 1),
	} {
		if s := run([]byte(ev)); s.Matched != 0 || len(s.Tasks) != 0 {
			t.Errorf("%s: %+v", name, s)
		}
	}
	// A matched event whose context fails the schema is dropped, not retried.
	bad := run([]byte(`{"version":"0","id":"b-1","detail-type":"Order Placed","source":"shop.storefront","detail":{"order_id":"O-1"}}`))
	if bad.Matched != 1 || len(bad.Tasks) != 0 || len(bad.Rejected) != 1 || !strings.Contains(bad.Rejected[0].Error, "context_schema") {
		t.Errorf("schema-refused event: %+v", bad)
	}
	var n int
	var sources string
	if err := w.pool.QueryRow(context.Background(), `SELECT count(*), string_agg(DISTINCT source_system, ',' ORDER BY source_system) FROM tasker_tasks`).Scan(&n, &sources); err != nil {
		t.Fatal(err)
	}
	if n != 3 || sources != "eventbridge,s3" {
		t.Errorf("%d tasks from %s, want 3 from eventbridge and s3", n, sources)
	}
}

func testMigrate(t *testing.T, bootstrap string) {
	srv := lambdatest.NewCFNServer(t)
	dbURL := pgtest.EmptyURL(t)
	ms, err := migrate.Load()
	if err != nil {
		t.Fatal(err)
	}
	latest := ms[len(ms)-1].Version
	m := startRIE(t, "migrate", bootstrap, map[string]string{"DATABASE_URL": dbURL})
	request := func(fn *rie, kind, physicalID, path string) map[string]any {
		t.Helper()
		before := len(srv.Responses())
		var answered map[string]any
		fn.invokeOK(t, lambdatest.Event(t, "cloudformation-request.json", map[string]string{
			"REQUEST_TYPE": kind, "RESPONSE_URL": srv.URL + path, "REQUEST_ID": kind + "-" + path, "PHYSICAL_RESOURCE_ID": physicalID,
		}), &answered)
		rs := srv.Responses()
		if len(rs) != before+1 {
			t.Fatalf("%s %s: %d responses sent, want 1", fn.name, kind, len(rs)-before)
		}
		r := rs[len(rs)-1]
		if r.Path != path || r.Body["RequestId"] != kind+"-"+path || r.Body["StackId"] == "" || r.Body["LogicalResourceId"] != "DatabaseMigration" {
			t.Errorf("%s: response %s %v", kind, r.Path, r.Body)
		}
		if answered["Status"] != r.Body["Status"] {
			t.Errorf("%s: the function returned %v but sent %v", kind, answered, r.Body)
		}
		return r.Body
	}
	create := request(m, "Create", "", "/create")
	data, _ := create["Data"].(map[string]any)
	if create["Status"] != "SUCCESS" || create["PhysicalResourceId"] != "tasker-schema" || data["SchemaVersion"] != latest {
		t.Errorf("create: %v", create)
	}
	var tables int
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM information_schema.tables WHERE table_name = 'tasker_tasks'`).Scan(&tables); err != nil || tables != 1 {
		t.Errorf("tasker_tasks after Create: %d, %v", tables, err)
	}
	update := request(m, "Update", "tasker-schema", "/update")
	data, _ = update["Data"].(map[string]any)
	if update["Status"] != "SUCCESS" || data["Applied"] != "" || data["SchemaVersion"] != latest {
		t.Errorf("update: %v", update)
	}
	if del := request(m, "Delete", "tasker-schema", "/delete"); del["Status"] != "SUCCESS" || del["PhysicalResourceId"] != "tasker-schema" {
		t.Errorf("delete: %v", del)
	}

	// An unreachable database fails Create and Update with the reason; Delete
	// still succeeds.
	down := startRIE(t, "migrate-down", bootstrap, map[string]string{"DATABASE_URL": "postgres://tasker@127.0.0.1:1/tasker?connect_timeout=2"})
	fail := request(down, "Create", "", "/down-create")
	if fail["Status"] != "FAILED" || !strings.Contains(fail["Reason"].(string), "127.0.0.1") {
		t.Errorf("create without a database: %v", fail)
	}
	if del := request(down, "Delete", "tasker-schema", "/down-delete"); del["Status"] != "SUCCESS" {
		t.Errorf("delete without a database: %v", del)
	}
	bare := startRIE(t, "migrate-bare", bootstrap, nil)
	if fail := request(bare, "Update", "tasker-schema", "/bare"); fail["Status"] != "FAILED" || !strings.Contains(fail["Reason"].(string), "DATABASE_URL") {
		t.Errorf("update with no database configured: %v", fail)
	}
}

// testAWSPath runs Tasker as deployed, on local stand-ins: the migrate
// function creates the schema through a CloudFormation request; the API,
// scheduler, handlers and trigger functions run under the emulator; moto
// is the scheduler queue, fed to the scheduler by an event source mapping
// stand-in, and holds the secrets in Secrets Manager (the scheduler's
// database secret, the API's token key); a fake Lambda service runs
// asynchronous invocations of the handlers function and delivers their
// destination records to the queue. A task created through the API, whose
// payment step fails once and is retried after a delay, and one started
// by an EventBridge event both complete, through the parallel payment and
// fraud check and their join.
func testAWSPath(t *testing.T, bins map[string]string) {
	dbURL := pgtest.EmptyURL(t)
	srv := lambdatest.NewCFNServer(t)
	mig := startRIE(t, "migrate", bins["migrate"], map[string]string{"DATABASE_URL": dbURL})
	var answered map[string]any
	mig.invokeOK(t, lambdatest.Event(t, "cloudformation-request.json", map[string]string{
		"REQUEST_TYPE": "Create", "RESPONSE_URL": srv.URL + "/create", "REQUEST_ID": "r1", "PHYSICAL_RESOURCE_ID": "",
	}), &answered)
	if answered["Status"] != "SUCCESS" {
		t.Fatalf("migration: %v", answered)
	}

	w := newWorld(t, dbURL)
	// The callback's notify request goes to a local server.
	handlers := startRIE(t, "handlers", bins["handlers"], map[string]string{"TASKER_HTTP_DENY_PRIVATE": "false"})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	fake := lambdatest.NewFakeLambda(t, func(inv lambdatest.Invocation) {
		if inv.Function != "tasker-handlers" {
			t.Errorf("invoked %q", inv.Function)
			return
		}
		status, body, err := post(ctx, handlers.endpoint+testenv.RIEInvokePath, inv.Payload)
		if err != nil {
			return // the test is over
		}
		var le struct{ ErrorType, ErrorMessage string }
		failed := status != http.StatusOK || (json.Unmarshal(body, &le) == nil && le.ErrorType != "")
		if err := w.queue.Send(ctx, []engine.Message{{Body: destinationRecord(inv.Payload, body, failed)}}); err != nil && ctx.Err() == nil {
			t.Errorf("destination: %v", err)
		}
	})
	notified := make(chan string, 4) // callback tokens
	notify := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		notified <- r.Header.Get(sdk.CallbackTokenHeader)
		rw.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(notify.Close)
	env := w.engineEnv(fake.URL)
	env["TASKER_TEMPLATES_DIR"] = templatesWith(t, "awspath_wait_callback.yaml", waitCallbackTemplate(notify.URL))
	apiEnv := maps.Clone(env)
	apiEnv["TASKER_AUTH_HS256_SECRET_ARN"] = lambdatest.Secret(t, w.moto, "tasker-api-token", hsSecret)
	api := startRIE(t, "api", bins["api"], apiEnv)
	// The scheduler reads its database from an RDS-shaped secret.
	schedEnv := maps.Clone(env)
	delete(schedEnv, "DATABASE_URL")
	schedEnv["TASKER_DB_SECRET_ARN"] = lambdatest.DBSecret(t, w.moto, dbURL)
	schedEnv["TASKER_DB_SSLMODE"] = "disable"
	sched := startRIE(t, "scheduler", bins["scheduler"], schedEnv)
	trig := startRIE(t, "trigger", bins["trigger"], env)
	esm := eventSourceMapping(ctx, t, w, sched, 3*time.Second)
	defer func() { cancel(); <-esm }()

	tok := token(t, "tasks:create tasks:read")
	// The first payment attempt fails (a retryable gateway timeout); the
	// retry waits out its backoff as a delayed queue message.
	var order map[string]any
	if err := json.Unmarshal(orderContext(t), &order); err != nil {
		t.Fatal(err)
	}
	order["simulate_payment_failures"] = 1
	created := api.http(t, apiCreate(t, tok, "aws-path-1", map[string]any{"namespace": "ecommerce", "name": "process_order", "context": order}))
	if created.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", created.StatusCode, created.Body)
	}
	var viaAPI struct{ ID string }
	_ = json.Unmarshal([]byte(created.Body), &viaAPI)
	var viaEvent trigger.Summary
	trig.invokeOK(t, lambdatest.Event(t, "eventbridge-order-placed.json", nil), &viaEvent)
	if len(viaEvent.Tasks) != 1 {
		t.Fatalf("trigger: %+v", viaEvent)
	}
	waitStart := time.Now()
	created = api.http(t, apiCreate(t, tok, "aws-path-wait", map[string]any{"namespace": "awspath", "name": "wait_callback", "context": map[string]any{}}))
	if created.StatusCode != http.StatusCreated {
		t.Fatalf("create the wait task: %d %s", created.StatusCode, created.Body)
	}
	var waiting struct{ ID string }
	_ = json.Unmarshal([]byte(created.Body), &waiting)

	for _, id := range []string{viaAPI.ID, viaEvent.Tasks[0].TaskID} {
		var task struct {
			Status string
			Steps  []struct {
				Name, Status string
				Attempts     int
				Result       json.RawMessage
			}
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			got := api.http(t, apiGet(t, tok, "/v1/tasks/"+id))
			if got.StatusCode != http.StatusOK {
				t.Fatalf("get %s: %d %s", id, got.StatusCode, got.Body)
			}
			if err := json.Unmarshal([]byte(got.Body), &task); err != nil {
				t.Fatal(err)
			}
			if task.Status == "complete" || task.Status == "error" || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if task.Status != "complete" {
			t.Fatalf("task %s is %s: %+v", id, task.Status, task.Steps)
		}
		for _, s := range task.Steps {
			if s.Status != "complete" || s.Attempts < 1 || len(s.Result) == 0 || string(s.Result) == "null" {
				t.Errorf("task %s step %s: %s after %d attempts, result %s", id, s.Name, s.Status, s.Attempts, s.Result)
			}
			if id == viaAPI.ID && s.Name == "process_payment" && s.Attempts != 2 {
				t.Errorf("process_payment ran %d times, want 2 (one simulated failure, one retry)", s.Attempts)
			}
		}
	}
	// Every step ran in the handlers function through the fake Lambda.
	if n := len(fake.Invocations()); n < 13 {
		t.Errorf("%d handler invocations for two six-step tasks and a retry", n)
	}

	// The wait task: the tasker.wait step parks for 2 s, then the callback
	// step's notify request carries the token, and POST
	// /v1/callbacks/{token}/success through the API function completes the
	// step with the posted result.
	var cbToken string
	select {
	case cbToken = <-notified:
	case <-ctx.Done():
		t.Fatal("the callback step sent no notify request")
	}
	if since := time.Since(waitStart); since < 2*time.Second {
		t.Errorf("the callback was notified %v after the task was created, before the 2 s wait ended", since)
	}
	if cbToken == "" {
		t.Fatal("notify request without a callback token")
	}
	const approval = `{"approved_by":"ops@example.com"}`
	done := api.http(t, apiPost(t, "/v1/callbacks/"+cbToken+"/success", approval))
	if done.StatusCode/100 != 2 {
		t.Fatalf("callback success: %d %s", done.StatusCode, done.Body)
	}
	var task struct {
		Status string
		Steps  []struct {
			Name, Status string
			Result       json.RawMessage
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := api.http(t, apiGet(t, tok, "/v1/tasks/"+waiting.ID))
		if err := json.Unmarshal([]byte(got.Body), &task); err != nil {
			t.Fatalf("get %s: %d %s", waiting.ID, got.StatusCode, got.Body)
		}
		if task.Status == "complete" || task.Status == "error" || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if task.Status != "complete" {
		t.Fatalf("wait task %s is %s: %+v", waiting.ID, task.Status, task.Steps)
	}
	for _, s := range task.Steps {
		if s.Status != "complete" {
			t.Errorf("wait task step %s: %s", s.Name, s.Status)
		}
		if s.Name == "approve" && !jsonEqual(s.Result, []byte(approval)) {
			t.Errorf("approve step result %s, want the callback's %s", s.Result, approval)
		}
	}
	// The token is spent.
	if again := api.http(t, apiPost(t, "/v1/callbacks/"+cbToken+"/success", approval)); again.StatusCode/100 == 2 {
		t.Errorf("a used callback token was accepted again: %d %s", again.StatusCode, again.Body)
	}
}

// waitCallbackTemplate is a workflow with a durable wait and a callback
// whose notify request goes to notifyURL.
func waitCallbackTemplate(notifyURL string) string {
	return `namespace: awspath
name: wait_callback
version: 1.0.0
steps:
  - name: start
    handler: tasker.noop
  - name: pause
    handler: tasker.wait
    depends_on: [start]
    config: {seconds: 2}
  - name: approve
    handler: tasker.callback
    depends_on: [pause]
    config:
      timeout_seconds: 300
      notify: {method: POST, url: "` + notifyURL + `/approvals"}
`
}

// templatesWith returns a directory holding the shipped templates and one
// more, for TASKER_TEMPLATES_DIR.
func templatesWith(t *testing.T, name, yaml string) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	shipped, err := filepath.Glob(filepath.Join(root, "templates", "*.yaml"))
	if err != nil || len(shipped) == 0 {
		t.Fatalf("shipped templates: %v %v", shipped, err)
	}
	for _, p := range shipped {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(p)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// apiPost is an API Gateway v2 POST of body to path, without credentials.
func apiPost(t *testing.T, path, body string) []byte {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal(apiCreate(t, "", "", json.RawMessage(body)), &ev); err != nil {
		t.Fatal(err)
	}
	ev["rawPath"] = path
	ev["requestContext"].(map[string]any)["http"].(map[string]any)["path"] = path
	headers := ev["headers"].(map[string]any)
	delete(headers, "authorization")
	delete(headers, "idempotency-key")
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return string(xb) == string(yb)
}
