package trigger_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/template"
	"github.com/taskerhq/tasker/internal/trigger"
)

const (
	ingestV1 = `
namespace: data
name: ingest
version: 1.0.0
context_schema:
  type: object
  required: [bucket, key]
  properties:
    bucket: {type: string}
    key: {type: string}
    size: {type: integer}
steps: [{name: load, handler: tasker.noop}]
triggers:
  - type: s3
    bucket: in-bucket
    prefix: exports/
    suffix: .csv
    context: {bucket: $.bucket, key: $.key, size: $.size, etag: $.etag}
`
	// An older version with another trigger: never considered.
	ingestV0 = `
namespace: data
name: ingest
version: 0.9.0
steps: [{name: load, handler: tasker.noop}]
triggers:
  - type: s3
    bucket: old-bucket
`
	audit = `
namespace: ops
name: audit
version: 2.0.0
steps: [{name: record, handler: tasker.noop}]
triggers:
  - type: s3
    bucket: in-bucket
`
	orders = `
namespace: shop
name: order_placed
version: 1.0.0
context_schema:
  type: object
  required: [order_id]
steps: [{name: handle, handler: tasker.noop}]
triggers:
  - type: eventbridge
    source: [shop.storefront]
    detail_type: [Order Placed]
    detail: {channel: [web, app], total: [{numeric: [">", 0]}]}
    context: {order_id: $.detail.order_id, event_id: $.id, first_sku: "$.detail.items[0].sku", total: $.detail.total}
`
	// Matches S3's own EventBridge events with an eventbridge trigger.
	s3Watch = `
namespace: ops
name: s3_watch
version: 1.0.0
steps: [{name: note, handler: tasker.noop}]
triggers:
  - type: eventbridge
    source: aws.s3
    detail_type: Object Created
    detail: {bucket: {name: [watched-bucket]}}
`
	broken = `
namespace: ops
name: broken
version: 1.0.0
steps: [{name: x, handler: tasker.noop}]
triggers:
  - type: eventbridge
    source: broken.source
    context: {x: "$.detail["}
`
)

func set(t *testing.T, docs ...string) *template.Set {
	t.Helper()
	var ts []*template.Template
	for i, d := range docs {
		tpl, err := template.Parse(fmt.Sprintf("doc%d.yaml", i), []byte(d), template.Options{})
		if err != nil {
			t.Fatalf("parse template %d: %v", i, err)
		}
		ts = append(ts, tpl)
	}
	s, err := template.NewSet(ts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func allTemplates(t *testing.T) *template.Set {
	return set(t, ingestV1, ingestV0, audit, orders, s3Watch, broken)
}

func s3Notification(bucket, rawKey, eventName, sequencer string) string {
	return fmt.Sprintf(`{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"eu-west-1",
	"eventTime":"2024-05-01T10:00:00.000Z","eventName":%q,"userIdentity":{"principalId":"AWS:X"},
	"requestParameters":{"sourceIPAddress":"10.0.0.1"},"responseElements":{"x-amz-request-id":"R1","x-amz-id-2":"I2"},
	"s3":{"s3SchemaVersion":"1.0","configurationId":"tasker","bucket":{"name":%q,"ownerIdentity":{"principalId":"O"},
	"arn":"arn:aws:s3:::%s"},"object":{"key":%q,"size":1048576,"eTag":"0123abcd","sequencer":%q}}}]}`,
		eventName, bucket, bucket, rawKey, sequencer)
}

func eventBridgeS3(id, bucket, key string) string {
	return fmt.Sprintf(`{"version":"0","id":%q,"detail-type":"Object Created","source":"aws.s3","account":"111122223333",
	"time":"2024-05-01T10:00:00Z","region":"eu-west-1","resources":["arn:aws:s3:::%s"],
	"detail":{"version":"0","bucket":{"name":%q},"object":{"key":%q,"size":5,"etag":"b1946ac9","version-id":"v1",
	"sequencer":"617f08299329d189"},"request-id":"N4N7","requester":"111122223333","source-ip-address":"1.2.3.4","reason":"PutObject"}}`,
		id, bucket, bucket, key)
}

func orderEvent(id, channel string, total float64) string {
	return fmt.Sprintf(`{"version":"0","id":%q,"detail-type":"Order Placed","source":"shop.storefront","account":"111122223333",
	"time":"2024-05-01T10:00:00Z","region":"eu-west-1","resources":[],
	"detail":{"order_id":"ORD-1","channel":%q,"total":%v,"items":[{"sku":"BOOK-1","quantity":2}]}}`, id, channel, total)
}

func match(t *testing.T, s *template.Set, event string) trigger.Result {
	t.Helper()
	res, err := trigger.Match(s, json.RawMessage(event))
	if err != nil {
		t.Fatalf("Match: %v", err)
	}
	return res
}

func byWorkflow(reqs []engine.CreateRequest) map[string]engine.CreateRequest {
	out := map[string]engine.CreateRequest{}
	for _, r := range reqs {
		out[r.Namespace+"/"+r.Name] = r
	}
	return out
}

func keysOf(m map[string]engine.CreateRequest) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func jsonEq(t *testing.T, got json.RawMessage, want string) {
	t.Helper()
	var a, b any
	if err := json.Unmarshal(got, &a); err != nil {
		t.Fatalf("got %s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &b); err != nil {
		t.Fatalf("want %s: %v", want, err)
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Errorf("got %s, want %s", ja, jb)
	}
}

func TestS3Notification(t *testing.T) {
	t.Parallel()
	s := allTemplates(t)
	res := match(t, s, s3Notification("in-bucket", "exports/Daily+Report%282024%29.csv", "ObjectCreated:Put", "0055AED6DCD90281E5"))
	if res.Kind != trigger.SourceS3 || len(res.Rejected) != 0 {
		t.Fatalf("kind %q, rejected %v", res.Kind, res.Rejected)
	}
	got := byWorkflow(res.Requests)
	if ks := keysOf(got); strings.Join(ks, ",") != "data/ingest,ops/audit" {
		t.Fatalf("matched %v, want data/ingest and ops/audit", ks)
	}
	in := got["data/ingest"]
	if in.Version != "1.0.0" || in.SourceSystem != "s3" || in.Initiator != "trigger" || in.Actor != "trigger" {
		t.Errorf("ingest request %+v", in)
	}
	if want := "s3:in-bucket/exports/Daily Report(2024).csv/0055AED6DCD90281E5#data/ingest"; in.IdempotencyKey != want {
		t.Errorf("idempotency key %q, want %q", in.IdempotencyKey, want)
	}
	if !strings.Contains(in.Reason, "s3://in-bucket/exports/Daily Report(2024).csv") {
		t.Errorf("reason %q", in.Reason)
	}
	// The key is URL-decoded; the size stays an exact number.
	jsonEq(t, in.Context, `{"bucket":"in-bucket","key":"exports/Daily Report(2024).csv","size":1048576,"etag":"0123abcd"}`)
	// Without a mapping, the context is the object's fields.
	au := got["ops/audit"]
	if !strings.HasSuffix(au.IdempotencyKey, "#ops/audit") || au.IdempotencyKey == in.IdempotencyKey {
		t.Errorf("audit key %q", au.IdempotencyKey)
	}
	jsonEq(t, au.Context, `{"bucket":"in-bucket","key":"exports/Daily Report(2024).csv","size":1048576,"etag":"0123abcd",
		"sequencer":"0055AED6DCD90281E5","region":"eu-west-1","time":"2024-05-01T10:00:00.000Z"}`)

	// Same object, same sequencer: same keys (a redelivery).
	again := byWorkflow(match(t, s, s3Notification("in-bucket", "exports/Daily+Report%282024%29.csv", "ObjectCreated:Put", "0055AED6DCD90281E5")).Requests)
	if again["data/ingest"].IdempotencyKey != in.IdempotencyKey {
		t.Errorf("redelivery key %q != %q", again["data/ingest"].IdempotencyKey, in.IdempotencyKey)
	}
	// The object written again: a new sequencer, a new key.
	next := byWorkflow(match(t, s, s3Notification("in-bucket", "exports/Daily+Report%282024%29.csv", "ObjectCreated:Put", "0055AED6DCD90281F0")).Requests)
	if next["data/ingest"].IdempotencyKey == in.IdempotencyKey {
		t.Error("a new write of the object got the same idempotency key")
	}
}

func TestS3NotificationFilters(t *testing.T) {
	t.Parallel()
	s := allTemplates(t)
	cases := []struct {
		name, event string
		want        string // matched workflows
	}{
		{"prefix mismatch", s3Notification("in-bucket", "imports/a.csv", "ObjectCreated:Put", "1"), "ops/audit"},
		{"suffix mismatch", s3Notification("in-bucket", "exports/a.json", "ObjectCreated:Put", "1"), "ops/audit"},
		{"other bucket", s3Notification("elsewhere", "exports/a.csv", "ObjectCreated:Put", "1"), ""},
		{"removed", s3Notification("in-bucket", "exports/a.csv", "ObjectRemoved:Delete", "1"), ""},
		{"multipart", s3Notification("in-bucket", "exports/a.csv", "ObjectCreated:CompleteMultipartUpload", "1"), "data/ingest,ops/audit"},
		{"old version's trigger", s3Notification("old-bucket", "x", "ObjectCreated:Put", "1"), ""},
	}
	for _, c := range cases {
		res := match(t, s, c.event)
		if got := strings.Join(keysOf(byWorkflow(res.Requests)), ","); got != c.want {
			t.Errorf("%s: matched %q, want %q", c.name, got, c.want)
		}
		if res.Kind != trigger.SourceS3 {
			t.Errorf("%s: kind %q", c.name, res.Kind)
		}
	}
}

func TestEventBridgeObjectCreated(t *testing.T) {
	t.Parallel()
	s := allTemplates(t)
	res := match(t, s, eventBridgeS3("17793124-05d4-b198-2fde-7ededc63b103", "in-bucket", "exports/2024 report.csv"))
	if res.Kind != trigger.SourceEventBridge {
		t.Fatalf("kind %q", res.Kind)
	}
	got := byWorkflow(res.Requests)
	if ks := strings.Join(keysOf(got), ","); ks != "data/ingest,ops/audit" {
		t.Fatalf("matched %s", ks)
	}
	in := got["data/ingest"]
	// EventBridge keys arrive as they are; S3 triggers key by sequencer.
	if want := "s3:in-bucket/exports/2024 report.csv/617f08299329d189#data/ingest"; in.IdempotencyKey != want || in.SourceSystem != "s3" {
		t.Errorf("key %q source %q", in.IdempotencyKey, in.SourceSystem)
	}
	jsonEq(t, in.Context, `{"bucket":"in-bucket","key":"exports/2024 report.csv","size":5,"etag":"b1946ac9"}`)

	// An eventbridge trigger on S3's events: keyed by the event id.
	w := byWorkflow(match(t, s, eventBridgeS3("e-1", "watched-bucket", "k")).Requests)
	if ks := strings.Join(keysOf(w), ","); ks != "ops/s3_watch" {
		t.Fatalf("matched %s, want ops/s3_watch", ks)
	}
	if r := w["ops/s3_watch"]; r.IdempotencyKey != "eventbridge:e-1#ops/s3_watch" || r.SourceSystem != "eventbridge" {
		t.Errorf("s3_watch request %+v", r)
	}
	// Its default context is the event's detail.
	jsonEq(t, w["ops/s3_watch"].Context, `{"version":"0","bucket":{"name":"watched-bucket"},"object":{"key":"k","size":5,"etag":"b1946ac9",
		"version-id":"v1","sequencer":"617f08299329d189"},"request-id":"N4N7","requester":"111122223333","source-ip-address":"1.2.3.4","reason":"PutObject"}`)
}

func TestEventBridgeCustom(t *testing.T) {
	t.Parallel()
	s := allTemplates(t)
	res := match(t, s, orderEvent("ev-1", "web", 59.99))
	if res.Kind != trigger.SourceEventBridge || len(res.Requests) != 1 {
		t.Fatalf("result %+v", res)
	}
	r := res.Requests[0]
	if r.Namespace != "shop" || r.Name != "order_placed" || r.IdempotencyKey != "eventbridge:ev-1#shop/order_placed" || r.SourceSystem != "eventbridge" {
		t.Errorf("request %+v", r)
	}
	jsonEq(t, r.Context, `{"order_id":"ORD-1","event_id":"ev-1","first_sku":"BOOK-1","total":59.99}`)
	if !strings.Contains(r.Reason, "ev-1") || !strings.Contains(r.Reason, "Order Placed") {
		t.Errorf("reason %q", r.Reason)
	}
	for name, ev := range map[string]string{
		"channel not in the pattern": orderEvent("ev-2", "phone", 10),
		"numeric condition fails":    orderEvent("ev-3", "web", 0),
		"other source":               strings.Replace(orderEvent("ev-4", "web", 1), "shop.storefront", "shop.backoffice", 1),
		"other detail-type":          strings.Replace(orderEvent("ev-5", "web", 1), "Order Placed", "Order Shipped", 1),
	} {
		if res := match(t, s, ev); len(res.Requests)+len(res.Rejected) != 0 || res.Kind != trigger.SourceEventBridge {
			t.Errorf("%s: %+v", name, res)
		}
	}
}

func TestBrokenMappingIsRejected(t *testing.T) {
	t.Parallel()
	res := match(t, allTemplates(t), `{"id":"b-1","source":"broken.source","detail-type":"x","detail":{}}`)
	if len(res.Requests) != 0 || len(res.Rejected) != 1 {
		t.Fatalf("result %+v", res)
	}
	if rj := res.Rejected[0]; rj.Namespace != "ops" || rj.Name != "broken" || !strings.Contains(rj.Error, "context.x") {
		t.Errorf("rejection %+v", rj)
	}
}

func TestNotTriggerEvents(t *testing.T) {
	t.Parallel()
	s := allTemplates(t)
	for name, ev := range map[string]string{
		"s3 test event":  `{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2024-05-01T10:00:00.000Z","Bucket":"in-bucket","RequestId":"R","HostId":"H"}`,
		"sqs records":    `{"Records":[{"messageId":"m","eventSource":"aws:sqs","body":"{}"}]}`,
		"empty object":   `{}`,
		"detail without": `{"detail":{}}`,
	} {
		res := match(t, s, ev)
		if res.Kind != "" || len(res.Requests) != 0 {
			t.Errorf("%s: %+v", name, res)
		}
	}
	for _, bad := range []string{`[1]`, `"x"`, `{`, `{} {}`} {
		if _, err := trigger.Match(s, json.RawMessage(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestLongKeysAreHashed(t *testing.T) {
	t.Parallel()
	key := "exports/" + strings.Repeat("deep/", 60) + "x.csv"
	res := match(t, allTemplates(t), s3Notification("in-bucket", key, "ObjectCreated:Put", "1"))
	in := byWorkflow(res.Requests)["data/ingest"]
	if !strings.HasPrefix(in.IdempotencyKey, "s3:sha256:") || len(in.IdempotencyKey) != len("s3:sha256:")+64 {
		t.Errorf("key %q", in.IdempotencyKey)
	}
	au := byWorkflow(res.Requests)["ops/audit"]
	if au.IdempotencyKey == in.IdempotencyKey {
		t.Error("two workflows share a hashed key")
	}
	if got := trigger.IdempotencyKey("s3", "short"); got != "short" {
		t.Errorf("short key changed: %q", got)
	}
}

// fakeCreator records requests and answers from a function.
type fakeCreator struct {
	reqs   []engine.CreateRequest
	answer func(engine.CreateRequest) (engine.Created, error)
}

func (f *fakeCreator) CreateTask(_ context.Context, req engine.CreateRequest) (engine.Created, error) {
	f.reqs = append(f.reqs, req)
	return f.answer(req)
}

func TestHandlerOutcomes(t *testing.T) {
	t.Parallel()
	s := allTemplates(t)
	id := uuid.New()
	dbDown := errors.New("connection refused")
	fc := &fakeCreator{answer: func(r engine.CreateRequest) (engine.Created, error) {
		switch r.Name {
		case "ingest":
			return engine.Created{}, &template.ContextError{Violations: []template.Violation{{Pointer: "/key", Message: "missing"}}}
		case "audit":
			return engine.Created{TaskID: id, Version: "2.0.0", Created: true}, nil
		}
		return engine.Created{}, dbDown
	}}
	h := &trigger.Handler{Creator: fc, Templates: s}
	sum, err := h.Handle(context.Background(), json.RawMessage(s3Notification("in-bucket", "exports/a.csv", "ObjectCreated:Put", "9")))
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	if sum.Kind != "s3" || sum.Matched != 2 || len(sum.Tasks) != 1 || len(sum.Rejected) != 1 {
		t.Fatalf("summary %+v", sum)
	}
	if sum.Tasks[0].TaskID != id.String() || !sum.Tasks[0].Created || sum.Rejected[0].Name != "ingest" {
		t.Errorf("summary %+v", sum)
	}

	// A database failure is returned so that Lambda retries the event.
	sum, err = h.Handle(context.Background(), json.RawMessage(orderEvent("ev-9", "web", 3)))
	if !errors.Is(err, dbDown) || sum.Matched != 1 || len(sum.Tasks) != 0 {
		t.Errorf("summary %+v, error %v; want the database error", sum, err)
	}

	// Unmatched and undecodable events are dropped without an error.
	for _, ev := range []string{`{"source":"nobody","detail-type":"x","id":"1","detail":{}}`, `not json`} {
		sum, err := h.Handle(context.Background(), json.RawMessage(ev))
		if err != nil || sum.Matched != 0 || sum.Tasks == nil || sum.Rejected == nil {
			t.Errorf("%s: %+v %v", ev, sum, err)
		}
	}
}

// Trigger keys live in their own idempotency scope; a redelivery that maps
// to another request (a conflict) is dropped, not retried forever.
func TestHandlerIdempotencyScopeAndConflict(t *testing.T) {
	t.Parallel()
	s := allTemplates(t)
	fc := &fakeCreator{answer: func(engine.CreateRequest) (engine.Created, error) {
		return engine.Created{}, fmt.Errorf("create: %w", engine.ErrIdempotencyConflict)
	}}
	h := &trigger.Handler{Creator: fc, Templates: s}
	sum, err := h.Handle(context.Background(), json.RawMessage(orderEvent("ev-10", "web", 3)))
	if err != nil {
		t.Fatalf("Handle: %v, want the conflict dropped", err)
	}
	if sum.Matched != 1 || len(sum.Tasks) != 0 || len(sum.Rejected) != 1 {
		t.Fatalf("summary %+v", sum)
	}
	if len(fc.reqs) != 1 || fc.reqs[0].IdempotencyScope != engine.TriggerScope || fc.reqs[0].IdempotencyKey == "" {
		t.Fatalf("requests %+v", fc.reqs)
	}
}
