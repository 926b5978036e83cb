package lambdaapp_test

// Tests of the behaviour issue 16 asks of the deployed functions: expired
// invocations, early return of failed scheduler messages, the migrator's
// patience with a database that is not up yet, and RDS Proxy's query mode.

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/examples"
	"github.com/taskerhq/tasker/internal/lambdaapp"
	"github.com/taskerhq/tasker/internal/lambdaapp/lambdatest"
	"github.com/taskerhq/tasker/internal/pgtest"
	"github.com/taskerhq/tasker/sdk"
)

// TestEventExpired runs the order workflow with the functions connected
// the way RDS Proxy needs (TASKER_DB_PROXY=true: the simple protocol, no
// prepared statements): a real success record is recorded with its output,
// then Lambda's EventAgeExceeded OnFailure record for the next attempt
// fails it retryably with code event_expired, never as a success, even
// when the record arrives twice; the API lists the task in that mode too.
func TestEventExpired(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := ctxFor(t)
	e := w.env()
	e["TASKER_DB_PROXY"] = "true"
	e["TASKER_AUTH_HS256_SECRET"] = hsSecret
	batch := batchOf(t)
	trig := handlerOf[triggerHandler](t, lambdaapp.Trigger, w.deps(e))
	sum, err := trig(ctx, lambdatest.Event(t, "eventbridge-order-placed.json", nil))
	if err != nil || len(sum.Tasks) != 1 || !sum.Tasks[0].Created {
		t.Fatalf("trigger: %+v, %v", sum, err)
	}
	taskID := uuid.MustParse(sum.Tasks[0].TaskID)
	sched := handlerOf[rawHandler](t, lambdaapp.Scheduler, w.deps(e))
	resp := batch(sched(ctx, lambdatest.SQSEvent(t, lambdatest.Message{ID: "wake-1", Body: string(contract.NewWake(taskID))})))
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("wake failed: %s", failedIDs(resp))
	}
	first := w.lambda.WaitFor(t, 1, 10*time.Second)[0]
	if m := stepOf(t, first.Payload); m.Step != "validate_order" || m.Attempt != 1 {
		t.Fatalf("first invocation %+v", m)
	}

	// A real success, output included.
	reg := sdk.NewRegistry()
	if err := examples.Register(reg); err != nil {
		t.Fatal(err)
	}
	result := sdk.Run(ctx, reg, first.Payload)
	resp = batch(sched(ctx, lambdatest.SQSEvent(t, lambdatest.Message{ID: "dest-ok", Body: lambdatest.DestinationSuccess(t, first.Payload, result)})))
	if len(resp.BatchItemFailures) != 0 {
		t.Errorf("success record failed: %s", failedIDs(resp))
	}
	if st, n, _ := w.step(t, taskID, "validate_order"); st != "complete" || n != 1 {
		t.Fatalf("validate_order %s after %d attempts", st, n)
	}
	var stored json.RawMessage
	if err := w.pool.QueryRow(ctx, `SELECT result FROM tasker_steps WHERE task_id = $1 AND name = 'validate_order'`, taskID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	var want, got any
	if json.Unmarshal(result, &want) != nil || json.Unmarshal(stored, &got) != nil || !reflect.DeepEqual(want, got) {
		t.Errorf("stored result %s, handler answered %s", stored, result)
	}

	var payment []byte
	for _, inv := range w.lambda.WaitFor(t, 3, 10*time.Second)[1:] {
		if stepOf(t, inv.Payload).Step == "process_payment" {
			payment = inv.Payload
		}
	}
	if payment == nil {
		t.Fatal("process_payment was not invoked")
	}
	expired := string(lambdatest.Event(t, "destination-event-age-exceeded.json", map[string]string{"REQUEST_PAYLOAD": string(payment)}))
	for i, id := range []string{"expired-1", "expired-again"} {
		resp = batch(sched(ctx, lambdatest.SQSEvent(t, lambdatest.Message{ID: id, Body: expired})))
		if len(resp.BatchItemFailures) != 0 {
			t.Errorf("delivery %d: failures %s", i, failedIDs(resp))
		}
		st, n, lastErr := w.step(t, taskID, "process_payment")
		if st != "waiting_for_retry" || n != 1 || !strings.Contains(lastErr, contract.CodeEventExpired) || !strings.Contains(lastErr, "EventAgeExceeded") {
			t.Errorf("delivery %d: process_payment %s after %d attempts, last error %s; want waiting_for_retry with event_expired", i, st, n, lastErr)
		}
	}

	api := handlerOf[apiHandler](t, lambdaapp.API, w.deps(e))
	list, err := api(ctx, getRequest(t, token(t, "tasks:list"), "/v1/tasks", "namespace=ecommerce&status=in_progress"))
	if err != nil || list.StatusCode != 200 || !strings.Contains(list.Body, taskID.String()) {
		t.Errorf("list in the simple protocol: %v %d %s", err, list.StatusCode, list.Body)
	}
}

// TestHandlersRefuseExpiredInvocations: an invocation that reaches the
// handlers function after its attempt's deadline (it waited in Lambda's
// queue) answers a retryable event_expired failure without running the
// handler; one in time runs.
func TestHandlersRefuseExpiredInvocations(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var ran atomic.Int32
	fn := lambdaapp.Handlers(func(r *sdk.Registry) error {
		if err := examples.Register(r); err != nil {
			return err
		}
		return r.Register("test.count", func(context.Context, sdk.Input) (any, error) {
			ran.Add(1)
			return map[string]int{"ok": 1}, nil
		})
	})
	h := handlerOf[func(context.Context, json.RawMessage) (json.RawMessage, error)](t, fn,
		lambdaapp.Deps{Getenv: env{}.get, Logs: &logBuffer{}, Now: func() time.Time { return now }})
	payload := func(deadline time.Time) json.RawMessage {
		b, err := json.Marshal(contract.Payload{Tasker: contract.Meta{Version: contract.PayloadVersion, TaskID: uuid.New(), StepID: uuid.New(),
			Step: "count", Handler: "test.count", Attempt: 1, MaxAttempts: 3, Deadline: deadline}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, c := range []struct {
		name     string
		deadline time.Time
		expired  bool
	}{
		{"past deadline", now.Add(-time.Second), true},
		{"at deadline", now, true},
		{"in time", now.Add(time.Minute), false},
	} {
		before := ran.Load()
		out, err := h(ctxFor(t), payload(c.deadline))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		he, isErr := contract.AsHandlerError(out)
		switch {
		case c.expired && (!isErr || he.Code != contract.CodeEventExpired || he.Permanent || ran.Load() != before):
			t.Errorf("%s: answered %s (handler ran %d times); want a retryable event_expired failure without running it", c.name, out, ran.Load()-before)
		case !c.expired && (isErr || ran.Load() != before+1):
			t.Errorf("%s: answered %s, handler ran %d times", c.name, out, ran.Load()-before)
		}
	}
}

// TestFailedSchedulerMessagesReturnSoon: when a batch fails (here the
// database is unreachable), the failed messages become visible again after
// seconds, not after the queue's six-minute visibility timeout.
func TestFailedSchedulerMessagesReturnSoon(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := ctxFor(t)
	cfg := lambdatest.AWSConfig(w.moto, nil)
	client := awssqs.NewFromConfig(cfg)
	if _, err := client.SetQueueAttributes(ctx, &awssqs.SetQueueAttributesInput{QueueUrl: aws.String(w.queueURL),
		Attributes: map[string]string{"VisibilityTimeout": "360"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(w.queueURL), MessageBody: aws.String(string(contract.NewWake(uuid.New())))}); err != nil {
		t.Fatal(err)
	}
	recv := func(wait int32) []types.Message {
		out, err := client.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: aws.String(w.queueURL), MaxNumberOfMessages: 10,
			WaitTimeSeconds: wait, MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll}})
		if err != nil {
			t.Fatal(err)
		}
		return out.Messages
	}
	msgs := recv(5)
	if len(msgs) != 1 {
		t.Fatalf("received %d messages", len(msgs))
	}
	m := msgs[0]
	e := w.env()
	e["DATABASE_URL"] = "postgres://tasker@127.0.0.1:1/tasker?connect_timeout=2" // nothing listens on port 1
	sched := handlerOf[rawHandler](t, lambdaapp.Scheduler, w.deps(e))
	ev, err := json.Marshal(map[string]any{"Records": []map[string]any{{
		"messageId": aws.ToString(m.MessageId), "receiptHandle": aws.ToString(m.ReceiptHandle), "body": aws.ToString(m.Body),
		"attributes":  map[string]string{"ApproximateReceiveCount": "1", "SentTimestamp": "1714557600000"},
		"eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:100010001000:tasker-scheduler", "awsRegion": "us-east-1",
	}}})
	if err != nil {
		t.Fatal(err)
	}
	resp := batchOf(t)(sched(ctx, ev))
	if failedIDs(resp) != aws.ToString(m.MessageId) {
		t.Fatalf("failed %q, want the message", failedIDs(resp))
	}
	// Visible again within FailedVisibility(1) = 5 s (a long poll of 15 s
	// returns as soon as it is), where the queue would hide it 360 s.
	if again := recv(15); len(again) != 1 || aws.ToString(again[0].MessageId) != aws.ToString(m.MessageId) {
		t.Errorf("the failed message did not return within 15 s (got %d messages)", len(again))
	}
}

func TestFailedVisibility(t *testing.T) {
	t.Parallel()
	for n, want := range map[int]time.Duration{0: 5 * time.Second, 1: 5 * time.Second, 2: 10 * time.Second, 3: 20 * time.Second,
		6: 160 * time.Second, 7: 5 * time.Minute, 50: 5 * time.Minute} {
		if got := lambdaapp.FailedVisibility(n); got != want {
			t.Errorf("FailedVisibility(%d) = %s, want %s", n, got, want)
		}
	}
}

// flakyListener forwards connections to a real database, after refusing
// (closing) the first refuse ones: a database that is not up yet.
func flakyListener(t *testing.T, dbURL string, refuse int) (string, *atomic.Int32) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var seen atomic.Int32
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	target := u.Host
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if int(seen.Add(1)) <= refuse {
				c.Close()
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				d, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer d.Close()
				go func() { _, _ = io.Copy(d, c); d.Close() }()
				_, _ = io.Copy(c, d)
			}()
		}
	}()
	u.Host = ln.Addr().String()
	return u.String(), &seen
}

// TestMigrateWaitsForTheDatabase: the custom resource retries its
// connection with growing pauses (1 s, 2 s, 4 s …) until the database
// answers, then migrates; a database that never answers fails the deploy
// once the pauses reach ConnectPatience, with the cause in the reason.
func TestMigrateWaitsForTheDatabase(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	srv := lambdatest.NewCFNServer(t)
	var mu sync.Mutex
	var pauses []time.Duration
	sleep := func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		pauses = append(pauses, d)
		mu.Unlock()
		return ctx.Err()
	}

	dbURL, seen := flakyListener(t, pgtest.EmptyURL(t), 3)
	h := handlerOf[cfnHandler](t, lambdaapp.Migrate, lambdaapp.Deps{Getenv: env{"DATABASE_URL": withParam(dbURL, "sslmode", "disable")}.get, Logs: &logBuffer{}, Sleep: sleep})
	if _, err := h(ctx, cfnEvent(t, "Create", srv.URL+"/create", "")); err != nil {
		t.Fatal(err)
	}
	if b := lastResponse(t, srv); b["Status"] != "SUCCESS" {
		t.Fatalf("create after 3 refused connections: %v", b)
	}
	mu.Lock()
	got := append([]time.Duration(nil), pauses...)
	pauses = nil
	mu.Unlock()
	// Each refused connection costs one attempt (pgx may try a connection
	// twice in one attempt), so at most three pauses, doubling from 1 s.
	if len(got) == 0 || len(got) > 3 || seen.Load() < 4 {
		t.Errorf("pauses %v over %d connections; want 1 to 3", got, seen.Load())
	}
	for i, p := range got {
		if p != time.Second<<i {
			t.Errorf("pause %d is %s, want %s", i, p, time.Second<<i)
		}
	}

	never, _ := flakyListener(t, pgtest.EmptyURL(t), 1<<30)
	h = handlerOf[cfnHandler](t, lambdaapp.Migrate, lambdaapp.Deps{Getenv: env{"DATABASE_URL": withParam(never, "sslmode", "disable")}.get, Logs: &logBuffer{}, Sleep: sleep})
	if _, err := h(ctx, cfnEvent(t, "Update", srv.URL+"/update", lambdaapp.SchemaResourceID)); err != nil {
		t.Fatal(err)
	}
	b := lastResponse(t, srv)
	if reason, _ := b["Reason"].(string); b["Status"] != "FAILED" || !strings.Contains(reason, "database not reachable after") {
		t.Errorf("never reachable: %v", b)
	}
	var total time.Duration
	mu.Lock()
	for _, p := range pauses {
		total += p
		if p > 30*time.Second {
			t.Errorf("pause %s longer than 30 s", p)
		}
	}
	mu.Unlock()
	if total < lambdaapp.ConnectPatience || total > lambdaapp.ConnectPatience+30*time.Second {
		t.Errorf("waited %s in all, want about %s", total, lambdaapp.ConnectPatience)
	}
}

func withParam(raw, k, v string) string {
	u, err := url.Parse(raw)
	if err != nil {
		panic(err)
	}
	q := u.Query()
	q.Set(k, v)
	u.RawQuery = q.Encode()
	return u.String()
}

func batchOf(t *testing.T) func(any, error) events.SQSEventResponse {
	return func(out any, err error) events.SQSEventResponse { t.Helper(); return batchResponse(t, out, err) }
}
