package lambdaapp_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/lambdaapp"
	"github.com/taskerhq/tasker/internal/lambdaapp/lambdatest"
	"github.com/taskerhq/tasker/internal/queue/sqs"
	"github.com/taskerhq/tasker/internal/testenv"
)

type apiHandler = func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error)

func apiRequest(t *testing.T, raw json.RawMessage) events.APIGatewayV2HTTPRequest {
	t.Helper()
	var req events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		t.Fatal(err)
	}
	return req
}

func createRequest(t *testing.T, tok, idemKey string, body any) events.APIGatewayV2HTTPRequest {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return apiRequest(t, lambdatest.Event(t, "apigw-v2-request-create-task.json", map[string]string{
		"TOKEN": tok, "BODY": string(b), "BODY_LENGTH": strconv.Itoa(len(b)), "IDEMPOTENCY_KEY": idemKey,
	}))
}

func getRequest(t *testing.T, tok, path, query string) events.APIGatewayV2HTTPRequest {
	t.Helper()
	return apiRequest(t, lambdatest.Event(t, "apigw-v2-request-get.json", map[string]string{"TOKEN": tok, "PATH": path, "QUERY": query}))
}

// TestAPIFunction serves API Gateway HTTP API v2 events with the API
// function set up as in Lambda: a task is created (201, then 200 for the
// same idempotency key), its wake-up reaches the SQS queue, the task is
// read back, and a missing token is refused.
func TestAPIFunction(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := ctxFor(t)
	e := w.env()
	e["TASKER_AUTH_HS256_SECRET"] = hsSecret
	h := handlerOf[apiHandler](t, lambdaapp.API, w.deps(e))
	tok := token(t, "tasks:create tasks:read")

	body := map[string]any{"namespace": "ecommerce", "name": "process_order", "context": orderContext(t)}
	resp, err := h(ctx, createRequest(t, tok, "order-ORD-10001", body))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusCreated || !strings.HasPrefix(resp.Headers["Content-Type"], "application/json") {
		t.Fatalf("create: %d %v %s", resp.StatusCode, resp.Headers, resp.Body)
	}
	if resp.Headers["X-Correlation-Id"] != "corr-apigw-1" {
		t.Errorf("correlation id header %q", resp.Headers["X-Correlation-Id"])
	}
	var task struct {
		ID             string `json:"id"`
		Status         string `json:"status"`
		IdempotencyKey string `json:"idempotency_key"`
		Steps          []struct {
			Name string `json:"name"`
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(resp.Body), &task); err != nil {
		t.Fatal(err)
	}
	if task.ID == "" || task.Status != "pending" || task.IdempotencyKey != "order-ORD-10001" || len(task.Steps) != 6 {
		t.Errorf("created task %s", resp.Body)
	}
	if resp.Headers["Location"] != "/v1/tasks/"+task.ID {
		t.Errorf("Location %q", resp.Headers["Location"])
	}

	// The same key again: the same task, 200.
	again, err := h(ctx, createRequest(t, tok, "order-ORD-10001", body))
	if err != nil || again.StatusCode != http.StatusOK || !strings.Contains(again.Body, task.ID) {
		t.Errorf("repeat: %d %s %v", again.StatusCode, again.Body, err)
	}

	// The wake-up went to the scheduler queue.
	q := sqs.New(awssqs.NewFromConfig(testenv.AWSConfig(w.moto)), w.queueURL)
	ds, err := q.Receive(ctx, 10, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 {
		t.Fatalf("%d messages on the queue, want the one wake-up", len(ds))
	}
	msg, err := contract.ParseMessage(ds[0].Body)
	if err != nil || msg.Wake == nil || msg.Wake.TaskID.String() != task.ID {
		t.Errorf("queue message %s: %v", ds[0].Body, err)
	}

	got, err := h(ctx, getRequest(t, tok, "/v1/tasks/"+task.ID, ""))
	if err != nil || got.StatusCode != http.StatusOK || !strings.Contains(got.Body, `"process_payment"`) {
		t.Errorf("get: %d %s %v", got.StatusCode, got.Body, err)
	}
	list, err := h(ctx, getRequest(t, tok, "/v1/tasks", "namespace=ecommerce&limit=5"))
	if err != nil || list.StatusCode != http.StatusForbidden {
		t.Errorf("list without tasks:list: %d %s %v", list.StatusCode, list.Body, err)
	}
	anon, err := h(ctx, getRequest(t, "", "/v1/tasks/"+task.ID, ""))
	if err != nil || anon.StatusCode != http.StatusUnauthorized {
		t.Errorf("without a token: %d %s %v", anon.StatusCode, anon.Body, err)
	}
	live, err := h(ctx, getRequest(t, "", "/v1/health/live", ""))
	if err != nil || live.StatusCode != http.StatusOK {
		t.Errorf("live: %d %s %v", live.StatusCode, live.Body, err)
	}
	ready, err := h(ctx, getRequest(t, "", "/v1/health/ready", ""))
	if err != nil || ready.StatusCode != http.StatusOK {
		t.Errorf("ready: %d %s %v", ready.StatusCode, ready.Body, err)
	}
}

func TestAPIAuthConfiguration(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := ctxFor(t)

	// No key source: the function refuses to start.
	if _, err := lambdaapp.API.Handler(ctx, w.deps(w.env())); err == nil || !strings.Contains(err.Error(), "TASKER_AUTH_DISABLED") {
		t.Errorf("setup without auth: %v", err)
	}
	e := w.env()
	e["TASKER_AUTH_DISABLED"] = "false"
	if _, err := lambdaapp.API.Handler(ctx, w.deps(e)); err == nil {
		t.Error("setup with TASKER_AUTH_DISABLED=false and no key source succeeded")
	}

	// Explicitly open: no token needed, and the log says so.
	e["TASKER_AUTH_DISABLED"] = "true"
	open := handlerOf[apiHandler](t, lambdaapp.API, w.deps(e))
	resp, err := open(ctx, getRequest(t, "", "/v1/templates", ""))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("open API: %d %s %v", resp.StatusCode, resp.Body, err)
	}
	if !strings.Contains(w.logs.String(), "AUTHENTICATION IS DISABLED") {
		t.Error("no warning logged for an open API")
	}

	// The secret from Secrets Manager.
	e = w.env()
	e["TASKER_AUTH_HS256_SECRET_ARN"] = "arn:aws:secretsmanager:us-east-1:123456789012:secret:tasker-api-AbCdEf"
	d := w.deps(e)
	var asked string
	d.GetSecret = func(_ context.Context, arn string) (string, error) { asked = arn; return hsSecret, nil }
	h := handlerOf[apiHandler](t, lambdaapp.API, d)
	if asked != e["TASKER_AUTH_HS256_SECRET_ARN"] {
		t.Errorf("secret read: %q", asked)
	}
	resp, err = h(ctx, getRequest(t, token(t, "templates:read"), "/v1/templates", ""))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("with the secret from Secrets Manager: %d %s %v", resp.StatusCode, resp.Body, err)
	}
	d.GetSecret = func(context.Context, string) (string, error) { return "", errors.New("AccessDeniedException") }
	if _, err := lambdaapp.API.Handler(ctx, d); err == nil || !strings.Contains(err.Error(), "AccessDeniedException") {
		t.Errorf("unreadable secret: %v", err)
	}
}
