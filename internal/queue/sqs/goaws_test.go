package sqs_test

import (
	"context"
	"fmt"
	"sync/atomic"
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

var queueSeq atomic.Int64

// goawsQueue starts a goaws server of its own (see testenv: goaws v0.5.4
// is not safe for CreateQueue concurrent with other calls) and creates a
// fresh queue on it.
func goawsQueue(t *testing.T, opts ...sqs.Option) *sqs.Queue {
	t.Helper()
	endpoint := testenv.StartGoaws(t)
	client := awssqs.NewFromConfig(testenv.GoawsConfig(endpoint))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	name := fmt.Sprintf("tasker-test-%d-%d", time.Now().UnixNano(), queueSeq.Add(1))
	out, err := client.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String(name)})
	if err != nil {
		t.Fatalf("CreateQueue on goaws: %v", err)
	}
	return sqs.New(client, aws.ToString(out.QueueUrl), opts...)
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

func TestConformanceGoaws(t *testing.T) {
	t.Parallel()
	queuetest.Run(t, func(t *testing.T) queuetest.Harness {
		return harness{goawsQueue(t)}
	})
}

// TestGoawsAcceptsTraceHeader: goaws takes the AWSTraceHeader system
// attribute without complaint (and, being no X-Ray, drops it), so sending
// trace context never breaks local runs; other attributes still arrive.
func TestGoawsAcceptsTraceHeader(t *testing.T) {
	t.Parallel()
	q := goawsQueue(t)
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
		if d.Attributes["traceparent"] != attrs["traceparent"] {
			t.Errorf("%s: traceparent = %q", d.Body, d.Attributes["traceparent"])
		}
		if _, ok := d.Attributes[sqs.TraceHeaderAttribute]; ok {
			t.Logf("goaws now returns AWSTraceHeader; update the package doc")
		}
		if d.ReceiveCount != 1 {
			t.Errorf("%s: ReceiveCount = %d, want 1", d.Body, d.ReceiveCount)
		}
	}
}

// TestGoawsBatchQuirks pins the goaws v0.5.4 behaviour that
// testenv.GoawsConfig corrects: talking to goaws directly, a batch response
// lists no successful entry and delayed entries are visible at once. If
// this fails, goaws was fixed: simplify testenv.GoawsConfig.
func TestGoawsBatchQuirks(t *testing.T) {
	t.Parallel()
	endpoint := testenv.StartGoaws(t)
	client := awssqs.NewFromConfig(testenv.AWSConfig(endpoint))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cq, err := client.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String("quirks")})
	if err != nil {
		t.Fatal(err)
	}
	out, err := client.SendMessageBatch(ctx, &awssqs.SendMessageBatchInput{
		QueueUrl: cq.QueueUrl,
		Entries: []types.SendMessageBatchRequestEntry{
			{Id: aws.String("a"), MessageBody: aws.String(`"a"`), DelaySeconds: 60},
			{Id: aws.String("b"), MessageBody: aws.String(`"b"`), DelaySeconds: 60},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Successful)+len(out.Failed) != 0 {
		t.Errorf("goaws now answers SendMessageBatch properly: %d successful, %d failed", len(out.Successful), len(out.Failed))
	}
	q := sqs.New(client, aws.ToString(cq.QueueUrl))
	ds, err := q.Receive(ctx, 10, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 {
		t.Errorf("received %d of the two batch entries delayed by 60 s at once; goaws now honours entry delays?", len(ds))
	}
}
