// Tests of the Lambda functions as deployed: each functions/* binary is
// built once per test binary, booted under the AWS Lambda Runtime
// Interface Emulator and fed real-shaped events (functions/testdata); the
// AWS path runs tasks end to end with moto as the queue. The template
// test checks template.yaml against the code.
package functions_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/internal/auth"
	"github.com/taskerhq/tasker/internal/lambdaapp/lambdatest"
	"github.com/taskerhq/tasker/internal/pgtest"
	"github.com/taskerhq/tasker/internal/queue/sqs"
	"github.com/taskerhq/tasker/internal/testenv"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// functionDirs are the functions under functions/.
var functionDirs = []string{"api", "scheduler", "handlers", "trigger", "migrate"}

// buildAll builds every function for this platform, in parallel, into a
// directory that lives as long as t, and returns the bootstrap paths.
func buildAll(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	out := map[string]string{}
	for _, fn := range functionDirs {
		out[fn] = filepath.Join(dir, fn, "bootstrap")
	}
	t.Run("build", func(t *testing.T) {
		for _, fn := range functionDirs {
			t.Run(fn, func(t *testing.T) {
				t.Parallel()
				bin := testenv.BuildLambda(t, "./"+fn)
				if err := os.MkdirAll(filepath.Dir(out[fn]), 0o755); err != nil {
					t.Fatal(err)
				}
				b, err := os.ReadFile(bin)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(out[fn], b, 0o755); err != nil {
					t.Fatal(err)
				}
			})
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	return out
}

// rie is one function under the emulator.
type rie struct {
	name     string
	endpoint string
}

// baseEnv is the environment every function gets under the emulator:
// dummy credentials and no shared AWS configuration of the machine.
func baseEnv() map[string]string {
	return map[string]string{
		"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_SESSION_TOKEN": "",
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
		"AWS_PROFILE": "", "AWS_ENDPOINT_URL": "", "LOG_LEVEL": "debug",
	}
}

func startRIE(t *testing.T, name, bootstrap string, env map[string]string) *rie {
	t.Helper()
	all := baseEnv()
	for k, v := range env {
		all[k] = v
	}
	ep := testenv.StartRIE(t, testenv.RIEOptions{
		Bootstrap: []string{bootstrap}, Env: all, FunctionName: "tasker-" + name, Timeout: 60 * time.Second,
	})
	return &rie{name: name, endpoint: ep}
}

// invoke sends one event and returns the function's answer; a Lambda
// function error (errorType/errorMessage) is returned as failed.
func (r *rie) invoke(t *testing.T, event []byte) (body []byte, failed bool) {
	t.Helper()
	status, _, b := lambdatest.Post(t, r.endpoint+testenv.RIEInvokePath, event)
	if status != http.StatusOK {
		t.Fatalf("%s: emulator answered %d: %s", r.name, status, b)
	}
	var le struct {
		ErrorType    string `json:"errorType"`
		ErrorMessage string `json:"errorMessage"`
	}
	if json.Unmarshal(b, &le) == nil && le.ErrorType != "" && le.ErrorMessage != "" {
		return b, true
	}
	return b, false
}

// invokeOK invokes and decodes a successful answer into out.
func (r *rie) invokeOK(t *testing.T, event []byte, out any) {
	t.Helper()
	b, failed := r.invoke(t, event)
	if failed {
		t.Fatalf("%s failed: %s", r.name, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s answered %s: %v", r.name, b, err)
		}
	}
}

// world is moto with a scheduler queue, a database and a fake Lambda.
type world struct {
	moto, queueURL, dbURL string
	queue                 *sqs.Queue
	pool                  *pgxpool.Pool
}

func newWorld(t *testing.T, dbURL string) *world {
	t.Helper()
	w := &world{dbURL: dbURL}
	w.moto = testenv.Moto(t)
	w.queueURL = lambdatest.CreateQueue(t, w.moto, "tasker-scheduler")
	w.queue = sqs.New(awssqs.NewFromConfig(testenv.AWSConfig(w.moto)), w.queueURL)
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	w.pool = pool
	return w
}

// engineEnv is what the API, scheduler and trigger functions need.
func (w *world) engineEnv(lambdaURL string) map[string]string {
	e := map[string]string{
		"DATABASE_URL": w.dbURL, "TASKER_SCHEDULER_QUEUE_URL": w.queueURL, "AWS_ENDPOINT_URL_SQS": w.moto,
		"AWS_ENDPOINT_URL_SECRETS_MANAGER": w.moto,
		"TASKER_HANDLERS_FUNCTION":         "tasker-handlers",
	}
	if lambdaURL != "" {
		e["AWS_ENDPOINT_URL_LAMBDA"] = lambdaURL
	}
	return e
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

const hsSecret = "functions-test-secret-0123456789abcdef"

func token(t *testing.T, scope string) string {
	t.Helper()
	tok, err := auth.SignHS256([]byte(hsSecret), map[string]any{"sub": "functions-test", "scope": scope, "exp": time.Now().Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// apiCall is one HTTP API request as an API Gateway v2 event, and the
// function's proxy response.
func apiCreate(t *testing.T, tok, idemKey string, body any) []byte {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return lambdatest.Event(t, "apigw-v2-request-create-task.json", map[string]string{
		"TOKEN": tok, "BODY": string(b), "BODY_LENGTH": strconv.Itoa(len(b)), "IDEMPOTENCY_KEY": idemKey,
	})
}

func apiGet(t *testing.T, tok, path string) []byte {
	t.Helper()
	p, q, _ := strings.Cut(path, "?")
	return lambdatest.Event(t, "apigw-v2-request-get.json", map[string]string{"TOKEN": tok, "PATH": p, "QUERY": q})
}

func (r *rie) http(t *testing.T, event []byte) events.APIGatewayV2HTTPResponse {
	t.Helper()
	var resp events.APIGatewayV2HTTPResponse
	r.invokeOK(t, event, &resp)
	return resp
}

func orderContext(t *testing.T) json.RawMessage {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "examples", "order.json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// eventSourceMapping plays Lambda's SQS event source mapping for the
// scheduler: it long-polls the queue, invokes the function with batches of
// up to 10 records shaped as Lambda sends them, and deletes the messages
// the function did not report as failed. Every sweepEvery it invokes the
// function with the EventBridge Scheduled Event instead. It stops when ctx
// ends.
func eventSourceMapping(ctx context.Context, t *testing.T, w *world, sched *rie, sweepEvery time.Duration) <-chan struct{} {
	done := make(chan struct{})
	sweep := lambdatest.Event(t, "cloudwatch-scheduled-event.json", nil)
	go func() {
		defer close(done)
		lastSweep := time.Now()
		for ctx.Err() == nil {
			if time.Since(lastSweep) >= sweepEvery {
				lastSweep = time.Now()
				if _, _, err := post(ctx, sched.endpoint+testenv.RIEInvokePath, sweep); err != nil && ctx.Err() == nil {
					t.Errorf("sweep: %v", err)
				}
			}
			ds, err := w.queue.Receive(ctx, 10, time.Second)
			if err != nil || len(ds) == 0 {
				continue
			}
			recs := make([]events.SQSMessage, len(ds))
			for i, d := range ds {
				recs[i] = events.SQSMessage{
					MessageId: d.ID, ReceiptHandle: d.Receipt, Body: string(d.Body), EventSource: "aws:sqs",
					EventSourceARN: "arn:aws:sqs:us-east-1:000000000000:tasker-scheduler", AWSRegion: "us-east-1",
					Attributes: map[string]string{
						"ApproximateReceiveCount": strconv.Itoa(max(1, d.ReceiveCount)),
						"SentTimestamp":           strconv.FormatInt(time.Now().UnixMilli(), 10),
					},
				}
			}
			ev, _ := json.Marshal(events.SQSEvent{Records: recs})
			status, body, err := post(ctx, sched.endpoint+testenv.RIEInvokePath, ev)
			if err != nil {
				continue // ctx ended
			}
			var resp events.SQSEventResponse
			if status != http.StatusOK || json.Unmarshal(body, &resp) != nil {
				t.Errorf("scheduler answered %d %s to a batch", status, body)
				continue
			}
			failed := map[string]bool{}
			for _, f := range resp.BatchItemFailures {
				failed[f.ItemIdentifier] = true
			}
			var receipts []string
			for _, d := range ds {
				if !failed[d.ID] {
					receipts = append(receipts, d.Receipt)
				}
			}
			if len(failed) > 0 {
				t.Errorf("scheduler reported failures %v for %s", resp.BatchItemFailures, body)
			}
			if err := w.queue.Delete(ctx, receipts...); err != nil && ctx.Err() == nil {
				t.Errorf("delete: %v", err)
			}
		}
	}()
	return done
}

func post(ctx context.Context, url string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(string(body)))
	if err != nil {
		return 0, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// destinationRecord is the record Lambda sends to a destination after an
// asynchronous invocation of the handlers function answered status/body.
func destinationRecord(payload, body []byte, failed bool) []byte {
	rec := map[string]any{
		"version":   "1.0",
		"timestamp": time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
		"requestContext": map[string]any{
			"requestId": uuid.NewString(), "functionArn": "arn:aws:lambda:us-east-1:000000000000:function:tasker-handlers:$LATEST",
			"condition": "Success", "approximateInvokeCount": 1,
		},
		"requestPayload":  json.RawMessage(payload),
		"responseContext": map[string]any{"statusCode": 200, "executedVersion": "$LATEST"},
		"responsePayload": json.RawMessage(body),
	}
	if failed {
		rec["requestContext"].(map[string]any)["condition"] = "RetriesExhausted"
		rec["responseContext"].(map[string]any)["functionError"] = "Unhandled"
	}
	b, _ := json.Marshal(rec)
	return b
}
