package sqs_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/queue/queuetest"
	"github.com/taskerhq/tasker/internal/queue/sqs"
	"github.com/taskerhq/tasker/internal/testenv"
)

// motoQueue creates a fresh queue on the test binary's moto server.
func motoQueue(t *testing.T, attrs map[string]string, opts ...sqs.Option) (*sqs.Queue, testenv.Queue) {
	t.Helper()
	endpoint := testenv.Moto(t)
	q := testenv.CreateQueue(t, endpoint, "tasker-test", attrs)
	return sqs.New(awssqs.NewFromConfig(testenv.AWSConfig(endpoint)), q.URL, opts...), q
}

// harness adapts the queue to the conformance suite.
type harness struct{ q *sqs.Queue }

func (h harness) Send(ctx context.Context, msgs []engine.Message) error { return h.q.Send(ctx, msgs) }

func (h harness) Receive(ctx context.Context, max int, wait time.Duration) ([]queuetest.Received, error) {
	ds, err := h.q.Receive(ctx, max, wait)
	if err != nil {
		return nil, err
	}
	out := make([]queuetest.Received, len(ds))
	for i, d := range ds {
		out[i] = queuetest.Received{ID: d.ID, Body: d.Body, Attributes: d.Attributes, Receipt: d.Receipt}
	}
	return out, nil
}

func (h harness) Delete(ctx context.Context, msgs []queuetest.Received) error {
	receipts := make([]string, len(msgs))
	for i, m := range msgs {
		receipts[i] = m.Receipt
	}
	return h.q.Delete(ctx, receipts...)
}

func TestConformanceMoto(t *testing.T) {
	t.Parallel()
	queuetest.Run(t, func(t *testing.T) queuetest.Harness {
		q, _ := motoQueue(t, nil)
		return harness{q}
	})
}

// TestTraceHeaderRoundTrips: the AWSTraceHeader system attribute sent with
// SendMessage comes back on receive next to the message attributes, as SQS
// delivers it to Lambda. moto 5.2.1 drops the system attributes of
// SendMessageBatch entries (SQS keeps them); the test pins that so it is
// tightened when moto is fixed.
func TestTraceHeaderRoundTrips(t *testing.T) {
	t.Parallel()
	q, _ := motoQueue(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
	attrs := map[string]string{sqs.TraceHeaderAttribute: trace, "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	if err := q.Send(ctx, []engine.Message{{Body: []byte(`{"one":1}`), Attributes: attrs}}); err != nil {
		t.Fatalf("SendMessage with AWSTraceHeader: %v", err)
	}
	if err := q.Send(ctx, []engine.Message{{Body: []byte(`{"two":2}`), Attributes: attrs}, {Body: []byte(`{"three":3}`), Attributes: attrs}}); err != nil {
		t.Fatalf("SendMessageBatch with AWSTraceHeader: %v", err)
	}
	var got []sqs.Delivery
	for len(got) < 3 && ctx.Err() == nil {
		ds, err := q.Receive(ctx, 10, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ds...)
	}
	if len(got) != 3 {
		t.Fatalf("received %d of 3", len(got))
	}
	for _, d := range got {
		batched := string(d.Body) != `{"one":1}`
		if th, ok := d.Attributes[sqs.TraceHeaderAttribute]; batched && ok {
			t.Errorf("%s: moto now keeps AWSTraceHeader of batch entries (%q); check it here too", d.Body, th)
		}
		for k, v := range attrs {
			if batched && k == sqs.TraceHeaderAttribute {
				continue
			}
			if d.Attributes[k] != v {
				t.Errorf("%s: %s = %q, want %q", d.Body, k, d.Attributes[k], v)
			}
		}
		if d.ReceiveCount != 1 {
			t.Errorf("%s: ReceiveCount = %d, want 1", d.Body, d.ReceiveCount)
		}
	}
}

// TestRedriveToDeadLetterQueue: a message received maxReceiveCount times
// without being deleted moves to the dead-letter queue, as the template's
// scheduler queue is configured (docs/architecture.md, "Flow").
func TestRedriveToDeadLetterQueue(t *testing.T) {
	t.Parallel()
	dlq, dlqInfo := motoQueue(t, nil)
	q, _ := motoQueue(t, map[string]string{
		"VisibilityTimeout": "1",
		"RedrivePolicy":     fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"2"}`, dlqInfo.ARN),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := q.Send(ctx, []engine.Message{{Body: []byte(`"poison"`)}}); err != nil {
		t.Fatal(err)
	}
	for want := 1; want <= 2; want++ {
		var ds []sqs.Delivery
		for len(ds) == 0 && ctx.Err() == nil {
			var err error
			if ds, err = q.Receive(ctx, 10, time.Second); err != nil {
				t.Fatal(err)
			}
		}
		if len(ds) != 1 || ds[0].ReceiveCount != want {
			t.Fatalf("receive %d: %+v", want, ds)
		}
	}
	var dead []sqs.Delivery
	for len(dead) == 0 && ctx.Err() == nil {
		// Receiving from the source after the visibility timeout is what
		// moves the message.
		if ds, err := q.Receive(ctx, 10, time.Second); err != nil || len(ds) != 0 {
			t.Fatalf("source queue after %d receives: %d messages, %v", 2, len(ds), err)
		}
		var err error
		if dead, err = dlq.Receive(ctx, 10, 0); err != nil {
			t.Fatal(err)
		}
	}
	if len(dead) != 1 || string(dead[0].Body) != `"poison"` {
		t.Fatalf("dead-letter queue holds %+v", dead)
	}
}

// TestMotoSenderFaultQuirk pins why batch-failure handling is tested
// against the in-process fake (sqs_test.go) and not moto: moto 5.2.1
// answers a partly failed SendMessageBatch with "SenderFault": "true" (a
// string), which the SDK cannot decode. If this fails, moto was fixed:
// move TestSendReportsEntriesThatStillFail and its kin onto moto.
func TestMotoSenderFaultQuirk(t *testing.T) {
	t.Parallel()
	endpoint := testenv.Moto(t)
	info := testenv.CreateQueue(t, endpoint, "tasker-quirk", nil)
	client := awssqs.NewFromConfig(testenv.AWSConfig(endpoint), func(o *awssqs.Options) { o.RetryMaxAttempts = 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := client.SendMessageBatch(ctx, &awssqs.SendMessageBatchInput{
		QueueUrl: aws.String(info.URL),
		Entries: []types.SendMessageBatchRequestEntry{
			{Id: aws.String("ok"), MessageBody: aws.String(`"ok"`)},
			{Id: aws.String("bad"), MessageBody: aws.String(`"bad"`), DelaySeconds: 901},
		},
	})
	if err == nil {
		t.Fatal("moto now answers a partial batch failure in a shape the SDK decodes; move the batch-failure tests onto moto")
	}
	if !strings.Contains(err.Error(), "deserialization failed") {
		t.Fatalf("SendMessageBatch with one bad entry: %v; want the SDK's deserialization error", err)
	}
}
