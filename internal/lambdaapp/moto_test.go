package lambdaapp_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/taskerhq/tasker/internal/lambdaapp"
	"github.com/taskerhq/tasker/internal/lambdaapp/lambdatest"
	"github.com/taskerhq/tasker/internal/testenv"
)

// exportsBucket is the bucket of the data pipeline template's S3 trigger.
const exportsBucket = "tasker-data-exports"

// s3Request sends one S3 REST call to moto, path-style. moto takes the
// service from the credential scope and checks no signature, so a bare
// Authorization header does (the module has no S3 client).
func s3Request(t *testing.T, moto, method, path, body string) {
	t.Helper()
	req, err := http.NewRequest(method, moto+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=test/20260101/"+testenv.MotoRegion+"/s3/aws4_request, SignedHeaders=host, Signature=0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("S3 %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("S3 %s %s: %s %s", method, path, resp.Status, b)
	}
}

// TestTriggerFromMotoS3 uploads an export to the template's bucket on moto
// with both notification routes a deployment may use: a notification to a
// queue (the shape S3 sends a Lambda function too) and S3's EventBridge
// "Object Created", routed by a rule on the default bus to a queue as
// TriggerObjectCreatedRule routes it to the trigger function. Each
// delivered event, fed to the trigger function, starts the pipeline for
// that object; S3's test event starts nothing.
func TestTriggerFromMotoS3(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := ctxFor(t)
	trig := handlerOf[triggerHandler](t, lambdaapp.Trigger, w.deps(w.env()))

	notified := testenv.CreateQueue(t, w.moto, "s3-notifications", nil)
	routed := lambdatest.RouteEvents(t, w.moto, "default",
		`{"source":["aws.s3"],"detail-type":["Object Created"],"detail":{"bucket":{"name":["`+exportsBucket+`"]}}}`)
	s3Request(t, w.moto, http.MethodPut, "/"+exportsBucket, "")
	s3Request(t, w.moto, http.MethodPut, "/"+exportsBucket+"?notification", `<NotificationConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <QueueConfiguration>
    <Id>tasker-trigger</Id>
    <Queue>`+notified.ARN+`</Queue>
    <Event>s3:ObjectCreated:*</Event>
    <Filter><S3Key><FilterRule><Name>prefix</Name><Value>exports/</Value></FilterRule></S3Key></Filter>
  </QueueConfiguration>
  <EventBridgeConfiguration></EventBridgeConfiguration>
</NotificationConfiguration>`)
	key := "exports/" + testenv.UniqueName("run") + "/Daily Orders(1).csv"
	s3Request(t, w.moto, http.MethodPut, "/"+exportsBucket+"/"+(&url.URL{Path: key}).EscapedPath(), "id,amount\n1,2.50\n")

	sourceKey := func(taskID string) string {
		t.Helper()
		var k string
		if err := w.pool.QueryRow(ctx, `SELECT context->>'source_key' FROM tasker_tasks WHERE id = $1`, taskID).Scan(&k); err != nil {
			t.Fatal(err)
		}
		return k
	}

	var viaNotification string
	for _, body := range lambdatest.ReceiveBodies(t, w.moto, notified.URL, 2, 10*time.Second) {
		t.Logf("notification: %s", body)
		sum, err := trig(ctx, body)
		if err != nil {
			t.Fatalf("trigger on %s: %v", body, err)
		}
		if strings.Contains(string(body), `"s3:TestEvent"`) {
			if sum.Matched != 0 {
				t.Errorf("S3 test event matched: %+v", sum)
			}
			continue
		}
		if sum.Kind != "s3" || len(sum.Tasks) != 1 || !sum.Tasks[0].Created || sum.Tasks[0].Name != "etl_pipeline" {
			t.Fatalf("S3 notification %s: %+v", body, sum)
		}
		viaNotification = sum.Tasks[0].TaskID
		if got := sourceKey(viaNotification); got != key {
			t.Errorf("task from the notification has source_key %q, want %q", got, key)
		}
	}
	if viaNotification == "" {
		t.Fatal("no S3 notification arrived on the queue")
	}

	evs := routed.Receive(t, 1, 10*time.Second)
	if len(evs) != 1 {
		t.Fatalf("%d Object Created events routed, want 1", len(evs))
	}
	sum, err := trig(ctx, evs[0].Raw)
	if err != nil || sum.Kind != "eventbridge" || len(sum.Tasks) != 1 || !sum.Tasks[0].Created || sum.Tasks[0].Name != "etl_pipeline" {
		t.Fatalf("Object Created %s: %+v, %v", evs[0].Raw, sum, err)
	}
	if sum.Tasks[0].TaskID == viaNotification {
		t.Error("the EventBridge event and the notification started one task; they are separate deliveries")
	}
	if got := sourceKey(sum.Tasks[0].TaskID); got != key {
		t.Errorf("task from EventBridge has source_key %q, want %q", got, key)
	}
}

// TestTriggerFromMotoEventBridge puts an application's events on its bus
// on moto, where a rule with an SQS target (in place of the trigger
// function) takes the orders; the trigger function starts one task per
// delivered order and none again for a redelivery.
func TestTriggerFromMotoEventBridge(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := ctxFor(t)
	trig := handlerOf[triggerHandler](t, lambdaapp.Trigger, w.deps(w.env()))
	bus := testenv.UniqueName("shop")
	route := lambdatest.RouteEvents(t, w.moto, bus, `{"source":["shop.storefront"],"detail-type":["Order Placed"]}`)

	var sample struct{ Detail json.RawMessage }
	if err := json.Unmarshal(lambdatest.Event(t, "eventbridge-order-placed.json", nil), &sample); err != nil {
		t.Fatal(err)
	}
	out, err := eventbridge.NewFromConfig(testenv.AWSConfig(w.moto)).PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{
		{EventBusName: aws.String(bus), Source: aws.String("shop.storefront"), DetailType: aws.String("Order Placed"), Detail: aws.String(string(sample.Detail))},
		{EventBusName: aws.String(bus), Source: aws.String("shop.storefront"), DetailType: aws.String("Order Shipped"), Detail: aws.String(`{"order_id":"ORD-20001"}`)},
	}})
	if err != nil || out.FailedEntryCount != 0 {
		t.Fatalf("PutEvents: %+v, %v", out, err)
	}
	evs := route.Receive(t, 1, 10*time.Second)
	evs = append(evs, route.Receive(t, 1, time.Second)...) // anything the rule should not have routed
	if len(evs) != 1 || evs[0].DetailType != "Order Placed" {
		t.Fatalf("routed %d events, want the one Order Placed: %+v", len(evs), evs)
	}
	sum, err := trig(ctx, evs[0].Raw)
	if err != nil || sum.Kind != "eventbridge" || len(sum.Tasks) != 1 || !sum.Tasks[0].Created || sum.Tasks[0].Name != "process_order" {
		t.Fatalf("Order Placed %s: %+v, %v", evs[0].Raw, sum, err)
	}
	if want := fmt.Sprintf("eventbridge:%s#ecommerce/process_order", evs[0].ID); sum.Tasks[0].IdempotencyKey != want {
		t.Errorf("idempotency key %q, want %q", sum.Tasks[0].IdempotencyKey, want)
	}
	again, err := trig(ctx, evs[0].Raw)
	if err != nil || len(again.Tasks) != 1 || again.Tasks[0].Created || again.Tasks[0].TaskID != sum.Tasks[0].TaskID {
		t.Errorf("redelivered order: %+v, %v", again, err)
	}
}
