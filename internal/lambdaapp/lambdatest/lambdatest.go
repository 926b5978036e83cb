// Package lambdatest holds what the Lambda function tests share: the
// real-shaped event samples of functions/testdata with their placeholders
// filled in, a fake Lambda service, a recorder of CloudFormation custom
// resource responses, and helpers for SQS queues, EventBridge buses and
// secrets on moto (internal/testenv).
package lambdatest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/taskerhq/tasker/internal/testenv"
)

// Event reads functions/testdata/<name> and fills its {{KEY}} placeholders:
// REQUEST_PAYLOAD and RESPONSE_PAYLOAD take raw JSON, every other key a
// string escaped for a JSON string. The result must be valid JSON.
func Event(t testing.TB, name string, vars map[string]string) json.RawMessage {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "functions", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for k, v := range vars {
		if k != "REQUEST_PAYLOAD" && k != "RESPONSE_PAYLOAD" {
			q, _ := json.Marshal(v)
			v = string(q[1 : len(q)-1])
		}
		s = strings.ReplaceAll(s, "{{"+k+"}}", v)
	}
	if i := strings.Index(s, "{{"); i >= 0 {
		t.Fatalf("%s: placeholder left unfilled near %q", name, s[i:min(len(s), i+30)])
	}
	if !json.Valid([]byte(s)) {
		t.Fatalf("%s: not valid JSON after filling placeholders:\n%s", name, s)
	}
	return json.RawMessage(s)
}

// Message is one SQS message for SQSEvent.
type Message struct {
	ID   string // default: a random UUID
	Body string
}

// SQSEvent builds the event an SQS event source mapping sends to Lambda,
// one record per message, from functions/testdata/sqs-record.json.
func SQSEvent(t testing.TB, msgs ...Message) json.RawMessage {
	t.Helper()
	recs := make([]json.RawMessage, len(msgs))
	for i, m := range msgs {
		if m.ID == "" {
			m.ID = uuid.NewString()
		}
		sum := md5.Sum([]byte(m.Body))
		recs[i] = Event(t, "sqs-record.json", map[string]string{
			"MESSAGE_ID": m.ID, "BODY": m.Body, "BODY_MD5": hex.EncodeToString(sum[:]),
		})
	}
	b, err := json.Marshal(map[string]any{"Records": recs})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// DestinationSuccess is the record Lambda sends to OnSuccess after an
// asynchronous invocation with requestPayload returned responsePayload.
func DestinationSuccess(t testing.TB, requestPayload, responsePayload []byte) string {
	t.Helper()
	return string(Event(t, "destination-success.json", map[string]string{
		"REQUEST_PAYLOAD": string(requestPayload), "RESPONSE_PAYLOAD": string(responsePayload),
	}))
}

// DestinationFailure is the record Lambda sends to OnFailure when the
// invocation with requestPayload failed with an unhandled error (a
// timeout) and no retries were left.
func DestinationFailure(t testing.TB, requestPayload []byte) string {
	t.Helper()
	return string(Event(t, "destination-failure.json", map[string]string{"REQUEST_PAYLOAD": string(requestPayload)}))
}

// Invocation is one Invoke request a FakeLambda accepted.
type Invocation struct {
	Function string
	Type     string // X-Amz-Invocation-Type
	Payload  []byte
}

// FakeLambda is the Lambda Invoke API on a local server: it accepts
// invocations (202 for InvocationType Event) and records them. Forward, if
// set, runs each accepted asynchronous invocation afterwards, one at a
// time and in order, as Lambda's asynchronous queue would.
type FakeLambda struct {
	URL     string
	Forward func(inv Invocation)

	mu      sync.Mutex
	invs    []Invocation
	changed chan struct{}
	work    chan Invocation
}

const invokePrefix, invokeSuffix = "/2015-03-31/functions/", "/invocations"

// NewFakeLambda starts a fake Lambda service, stopped when t ends.
func NewFakeLambda(t testing.TB, forward func(Invocation)) *FakeLambda {
	t.Helper()
	f := &FakeLambda{Forward: forward, changed: make(chan struct{}), work: make(chan Invocation, 1024)}
	srv := httptest.NewServer(f)
	f.URL = srv.URL
	done := make(chan struct{})
	go func() {
		defer close(done)
		for inv := range f.work {
			if f.Forward != nil {
				f.Forward(inv)
			}
		}
	}()
	t.Cleanup(func() {
		srv.Close()
		close(f.work)
		<-done
	})
	return f
}

func (f *FakeLambda) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, invokePrefix) || !strings.HasSuffix(r.URL.Path, invokeSuffix) {
		w.Header().Set("X-Amzn-Errortype", "UnknownOperationException")
		w.WriteHeader(http.StatusNotFound)
		return
	}
	fn, _ := url.PathUnescape(strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, invokePrefix), invokeSuffix))
	inv := Invocation{Function: fn, Type: r.Header.Get("X-Amz-Invocation-Type"), Payload: body}
	f.mu.Lock()
	f.invs = append(f.invs, inv)
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
	if inv.Type == "Event" {
		f.work <- inv
		w.WriteHeader(http.StatusAccepted)
		return
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("null"))
}

// Invocations returns the invocations accepted so far.
func (f *FakeLambda) Invocations() []Invocation {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Invocation(nil), f.invs...)
}

// WaitFor waits until at least n invocations have been accepted and
// returns them; it fails the test after timeout.
func (f *FakeLambda) WaitFor(t testing.TB, n int, timeout time.Duration) []Invocation {
	t.Helper()
	deadline := time.After(timeout)
	for {
		f.mu.Lock()
		invs, ch := append([]Invocation(nil), f.invs...), f.changed
		f.mu.Unlock()
		if len(invs) >= n {
			return invs
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("fake Lambda: %d invocations after %v, want %d", len(invs), timeout, n)
		}
	}
}

// CFNResponse is one response a custom resource PUT to its ResponseURL.
type CFNResponse struct {
	Path        string
	ContentType []string // the Content-Type header values sent
	Body        map[string]any
}

// CFNServer stands in for the pre-signed S3 URL CloudFormation gives a
// custom resource: it records each PUT and answers 200, or the status
// codes of Fail first, one per request.
type CFNServer struct {
	URL  string
	Fail []int

	mu   sync.Mutex
	resp []CFNResponse
	hits int
}

// NewCFNServer starts a response recorder, stopped when t ends.
func NewCFNServer(t testing.TB) *CFNServer {
	t.Helper()
	c := &CFNServer{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		defer c.mu.Unlock()
		c.hits++
		if r.Method != http.MethodPut {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		if c.hits <= len(c.Fail) {
			w.WriteHeader(c.Fail[c.hits-1])
			return
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		c.resp = append(c.resp, CFNResponse{Path: r.URL.Path, ContentType: r.Header.Values("Content-Type"), Body: m})
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	c.URL = srv.URL
	return c
}

// Responses returns the responses recorded so far.
func (c *CFNServer) Responses() []CFNResponse {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]CFNResponse(nil), c.resp...)
}

// Hits is the number of requests received, failed ones included.
func (c *CFNServer) Hits() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits
}

// Post sends body to url and returns the status, headers and body.
func Post(t testing.TB, url string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s: read body: %v", url, err)
	}
	return resp.StatusCode, resp.Header, b
}

// AWSConfig is an SDK configuration for in-process tests: static dummy
// credentials, region us-east-1, every service at the moto endpoint
// except those given by SDK id in others (e.g. "Lambda": a FakeLambda).
func AWSConfig(moto string, others map[string]string) aws.Config {
	cfg := testenv.AWSConfig(moto)
	eps := serviceEndpoints{}
	for k, v := range others {
		eps[k] = v
	}
	cfg.ConfigSources = append(cfg.ConfigSources, eps)
	return cfg
}

// serviceEndpoints is an SDK configuration source of per-service base
// endpoints, as AWS_ENDPOINT_URL_<SERVICE> would give.
type serviceEndpoints map[string]string

func (s serviceEndpoints) GetServiceBaseEndpoint(_ context.Context, sdkID string) (string, bool, error) {
	v := s[sdkID]
	return v, v != "", nil
}

// CreateQueue creates a queue named after prefix (testenv.UniqueName) on
// the moto server at endpoint and returns its URL; it is deleted when t
// ends.
func CreateQueue(t testing.TB, moto, prefix string) string {
	t.Helper()
	return testenv.CreateQueue(t, moto, prefix, nil).URL
}

// EventRoute routes events of an EventBridge bus on moto to a new SQS
// queue through a rule with an SQS target, as a deployment would route
// them to a consumer. Bus is the bus name ("default" or a fresh name,
// which EventRoute creates).
type EventRoute struct {
	Bus   string
	Queue testenv.Queue
	moto  string
}

// RouteEvents creates the bus (unless it is "default"), a queue and a
// rule matching pattern (an EventBridge event pattern) whose target is the
// queue, all removed when t ends.
func RouteEvents(t testing.TB, moto, bus, pattern string) *EventRoute {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	eb := eventbridge.NewFromConfig(testenv.AWSConfig(moto))
	if bus != "default" {
		if _, err := eb.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String(bus)}); err != nil {
			t.Fatalf("CreateEventBus %s on moto: %v", bus, err)
		}
	}
	r := &EventRoute{Bus: bus, Queue: testenv.CreateQueue(t, moto, "events", nil), moto: moto}
	rule := testenv.UniqueName("to-queue")
	if _, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String(rule), EventBusName: aws.String(bus), EventPattern: aws.String(pattern)}); err != nil {
		t.Fatalf("PutRule %s on moto: %v", rule, err)
	}
	if _, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{
		Rule: aws.String(rule), EventBusName: aws.String(bus),
		Targets: []ebtypes.Target{{Id: aws.String("queue"), Arn: aws.String(r.Queue.ARN)}},
	}); err != nil {
		t.Fatalf("PutTargets %s on moto: %v", rule, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = eb.RemoveTargets(ctx, &eventbridge.RemoveTargetsInput{Rule: aws.String(rule), EventBusName: aws.String(bus), Ids: []string{"queue"}})
		_, _ = eb.DeleteRule(ctx, &eventbridge.DeleteRuleInput{Name: aws.String(rule), EventBusName: aws.String(bus)})
		if bus != "default" {
			_, _ = eb.DeleteEventBus(ctx, &eventbridge.DeleteEventBusInput{Name: aws.String(bus)})
		}
	})
	return r
}

// BusEvent is an EventBridge event as a rule delivers it to a target.
type BusEvent struct {
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Detail     json.RawMessage `json:"detail"`
	Raw        json.RawMessage `json:"-"`
}

// Receive returns the events delivered to the route's queue, deleting
// them, until at least n arrived or wait passed (then it returns what it
// has).
func (r *EventRoute) Receive(t testing.TB, n int, wait time.Duration) []BusEvent {
	t.Helper()
	var out []BusEvent
	for _, body := range ReceiveBodies(t, r.moto, r.Queue.URL, n, wait) {
		var ev BusEvent
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Fatalf("event on %s: %v: %s", r.Queue.Name, err, body)
		}
		ev.Raw = body
		out = append(out, ev)
	}
	return out
}

// ReceiveBodies receives and deletes messages from the queue at url on
// moto until at least n arrived or wait passed, and returns their bodies.
func ReceiveBodies(t testing.TB, moto, url string, n int, wait time.Duration) [][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait+10*time.Second)
	defer cancel()
	client := awssqs.NewFromConfig(testenv.AWSConfig(moto))
	var out [][]byte
	for deadline := time.Now().Add(wait); len(out) < n && time.Now().Before(deadline); {
		resp, err := client.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{
			QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
		})
		if err != nil {
			t.Fatalf("ReceiveMessage %s: %v", url, err)
		}
		for _, m := range resp.Messages {
			out = append(out, []byte(aws.ToString(m.Body)))
			if _, err := client.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatalf("DeleteMessage %s: %v", url, err)
			}
		}
	}
	return out
}

// Secret creates a Secrets Manager secret named after prefix on moto
// holding value, and returns its ARN; it is deleted when t ends.
func Secret(t testing.TB, moto, prefix, value string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := secretsmanager.NewFromConfig(testenv.AWSConfig(moto))
	out, err := client.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(testenv.UniqueName(prefix)), SecretString: aws.String(value)})
	if err != nil {
		t.Fatalf("CreateSecret on moto: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = client.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: out.ARN, ForceDeleteWithoutRecovery: aws.Bool(true)})
	})
	return aws.ToString(out.ARN)
}

// DBSecret creates a secret in the shape RDS writes
// ({"username","password","host","port","dbname","engine"}) for the
// database at dbURL on moto, and returns its ARN.
func DBSecret(t testing.TB, moto, dbURL string) string {
	t.Helper()
	cc, err := pgx.ParseConfig(dbURL)
	if err != nil {
		t.Fatalf("DBSecret: %v", err)
	}
	b, err := json.Marshal(map[string]any{
		"username": cc.User, "password": cc.Password, "host": cc.Host, "port": cc.Port,
		"dbname": cc.Database, "engine": "postgres",
	})
	if err != nil {
		t.Fatal(err)
	}
	return Secret(t, moto, "tasker-db", string(b))
}
