// Package sqs is the scheduler queue on AWS (docs/architecture.md, "Flow" and
// "Queue messages"): an
// engine.Queue that sends JSON bodies to a standard SQS queue.
//
// Sending. One message goes with SendMessage; more go with SendMessageBatch
// in chunks of at most 10 entries and at most WithMaxBatchBytes bytes
// (default 256 KiB), chunks in parallel. Entries a batch reports as failed
// are sent once more (except sender faults, which cannot succeed); if some
// still fail, Send returns an error saying how many of how many failed and
// why (the first failure). Wake-ups are idempotent, so a caller may simply
// send the whole lot again.
//
// Delays. Message.Delay becomes DelaySeconds = ceil(delay in seconds),
// at most 900 (the SQS limit; later work is found by the sweep, DESIGN
// §1); zero or negative delays send at once.
//
// Attributes. Message.Attributes become String message attributes, except
// the key AWSTraceHeader, which goes as the AWSTraceHeader message system
// attribute so X-Ray links the trace across the queue (SQS delivers it back
// to Lambda in the record's attributes, and Receive reports it under the
// same key). SQS allows 10 message attributes; Send refuses more (without
// counting AWSTraceHeader) rather than fail a whole batch. Empty values
// are dropped: SQS rejects them.
//
// Receive and Delete are for tests and tools (on AWS the scheduler Lambda
// is fed by an event source mapping): long-poll ReceiveMessage with all
// message attributes, and DeleteMessageBatch.
//
// Tests run against moto (internal/testenv), which behaves as SQS for
// batches, entry delays, limits and redrive; batch-failure handling is
// tested against an in-process fake because moto encodes SenderFault in a
// way the SDK cannot decode. The adapter has no emulator switches. An
// entry a batch response lists neither as successful nor as failed counts
// as failed (and is retried once).
package sqs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/taskerhq/tasker/internal/engine"
)

// Limits of SQS.
const (
	// MaxDelay is the longest per-message delay SQS accepts.
	MaxDelay = 900 * time.Second
	// MaxBatchEntries is the most entries one batch call takes.
	MaxBatchEntries = 10
	// MaxMessageAttributes is the most message attributes of a message.
	MaxMessageAttributes = 10
	// DefaultMaxBatchBytes caps the summed size of the messages of one
	// SendMessageBatch: the classic SQS limit (256 KiB; SQS raised message
	// and batch sizes to 1 MiB in 2025, see WithMaxBatchBytes).
	DefaultMaxBatchBytes = 256 << 10
	// TraceHeaderAttribute is the Message.Attributes key sent as the
	// AWSTraceHeader message system attribute.
	TraceHeaderAttribute = "AWSTraceHeader"
	// sendParallelism bounds concurrent batch calls of one Send.
	sendParallelism = 4
)

// API is the part of the SQS client the queue uses; *sqs.Client has it.
type API interface {
	SendMessage(ctx context.Context, in *awssqs.SendMessageInput, optFns ...func(*awssqs.Options)) (*awssqs.SendMessageOutput, error)
	SendMessageBatch(ctx context.Context, in *awssqs.SendMessageBatchInput, optFns ...func(*awssqs.Options)) (*awssqs.SendMessageBatchOutput, error)
	ReceiveMessage(ctx context.Context, in *awssqs.ReceiveMessageInput, optFns ...func(*awssqs.Options)) (*awssqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(ctx context.Context, in *awssqs.DeleteMessageBatchInput, optFns ...func(*awssqs.Options)) (*awssqs.DeleteMessageBatchOutput, error)
}

var _ API = (*awssqs.Client)(nil)

// Option configures New.
type Option func(*Queue)

// WithMaxBatchBytes sets the most bytes (bodies plus attribute names and
// values) one SendMessageBatch carries (default DefaultMaxBatchBytes; up to
// 1 MiB on SQS since 2025).
func WithMaxBatchBytes(n int) Option {
	return func(q *Queue) {
		if n > 0 {
			q.maxBatchBytes = n
		}
	}
}

// Queue is an engine.Queue on one SQS queue. It is safe for concurrent use.
type Queue struct {
	client        API
	url           string
	maxBatchBytes int
}

var _ engine.Queue = (*Queue)(nil)

// New returns the queue at queueURL (TASKER_SCHEDULER_QUEUE_URL on AWS).
func New(client API, queueURL string, opts ...Option) *Queue {
	q := &Queue{client: client, url: queueURL, maxBatchBytes: DefaultMaxBatchBytes}
	for _, o := range opts {
		o(q)
	}
	return q
}

// URL returns the queue URL.
func (q *Queue) URL() string { return q.url }

// DelaySeconds is the SQS DelaySeconds for a delay: whole seconds rounded
// up, 0 for d <= 0, at most 900.
func DelaySeconds(d time.Duration) int32 {
	if d <= 0 {
		return 0
	}
	if d >= MaxDelay {
		return int32(MaxDelay / time.Second)
	}
	return int32((d + time.Second - 1) / time.Second)
}

// entry is one message ready to send.
type entry struct {
	index  int // position in the Send call, for errors
	body   string
	delay  int32
	attrs  map[string]types.MessageAttributeValue
	system map[string]types.MessageSystemAttributeValue
	size   int
}

// Send sends msgs; see the package doc for batching, delays and attributes.
func (q *Queue) Send(ctx context.Context, msgs []engine.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	entries := make([]entry, len(msgs))
	for i, m := range msgs {
		e, err := toEntry(i, m)
		if err != nil {
			return fmt.Errorf("sqs send to %s: %w", q.url, err)
		}
		entries[i] = e
	}
	if len(entries) == 1 {
		if err := q.sendOne(ctx, entries[0]); err != nil {
			return fmt.Errorf("sqs send to %s: %w", q.url, err)
		}
		return nil
	}
	type job struct {
		single *entry
		chunk  []entry
	}
	var jobs []job
	for _, c := range chunk(entries, q.maxBatchBytes) {
		if len(c) == 1 {
			jobs = append(jobs, job{single: &c[0]})
		} else {
			jobs = append(jobs, job{chunk: c})
		}
	}

	var (
		mu       sync.Mutex
		failures []failure
		wg       sync.WaitGroup
		sem      = make(chan struct{}, sendParallelism)
	)
	for _, j := range jobs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			var fs []failure
			if j.single != nil {
				if err := q.sendOne(ctx, *j.single); err != nil {
					fs = []failure{{index: j.single.index, err: err}}
				}
			} else {
				fs = q.sendBatch(ctx, j.chunk)
			}
			if len(fs) > 0 {
				mu.Lock()
				failures = append(failures, fs...)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(failures) == 0 {
		return nil
	}
	first := failures[0]
	for _, f := range failures[1:] {
		if f.index < first.index {
			first = f
		}
	}
	return fmt.Errorf("sqs send to %s: %d of %d messages failed; message %d: %w",
		q.url, len(failures), len(msgs), first.index, first.err)
}

type failure struct {
	index int
	err   error
}

func toEntry(i int, m engine.Message) (entry, error) {
	if len(m.Body) == 0 {
		return entry{}, fmt.Errorf("message %d has an empty body", i)
	}
	e := entry{index: i, body: string(m.Body), delay: DelaySeconds(m.Delay), size: len(m.Body)}
	for k, v := range m.Attributes {
		if v == "" {
			continue
		}
		if k == TraceHeaderAttribute {
			e.system = map[string]types.MessageSystemAttributeValue{
				string(types.MessageSystemAttributeNameForSendsAWSTraceHeader): {DataType: aws.String("String"), StringValue: aws.String(v)},
			}
		} else {
			if e.attrs == nil {
				e.attrs = make(map[string]types.MessageAttributeValue, len(m.Attributes))
			}
			e.attrs[k] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
		}
		e.size += len(k) + len("String") + len(v)
	}
	if len(e.attrs) > MaxMessageAttributes {
		return entry{}, fmt.Errorf("message %d has %d attributes; SQS allows %d", i, len(e.attrs), MaxMessageAttributes)
	}
	return e, nil
}

// chunk splits entries into batches of at most MaxBatchEntries entries and
// maxBytes bytes (an entry larger than maxBytes goes alone).
func chunk(entries []entry, maxBytes int) [][]entry {
	var (
		out  [][]entry
		cur  []entry
		size int
	)
	for _, e := range entries {
		if len(cur) == MaxBatchEntries || (len(cur) > 0 && size+e.size > maxBytes) {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, e)
		size += e.size
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func (q *Queue) sendOne(ctx context.Context, e entry) error {
	_, err := q.client.SendMessage(ctx, &awssqs.SendMessageInput{
		QueueUrl:                aws.String(q.url),
		MessageBody:             aws.String(e.body),
		DelaySeconds:            e.delay,
		MessageAttributes:       e.attrs,
		MessageSystemAttributes: e.system,
	})
	if err != nil {
		return fmt.Errorf("SendMessage: %w", err)
	}
	return nil
}

// sendBatch sends one chunk, sending entries that failed for a reason
// other than a sender fault once more, and returns the entries that
// still failed.
func (q *Queue) sendBatch(ctx context.Context, c []entry) []failure {
	retry, failed := q.batchOnce(ctx, c, false)
	if len(retry) > 0 {
		_, again := q.batchOnce(ctx, retry, true)
		failed = append(failed, again...)
	}
	return failed
}

// batchOnce makes one SendMessageBatch call. Entries that failed and may
// succeed on a retry are returned in retry unless last; the others that
// failed are returned in failed. An error of the whole call (which the SDK
// has already retried) fails every entry.
func (q *Queue) batchOnce(ctx context.Context, pending []entry, last bool) (retry []entry, failed []failure) {
	in := &awssqs.SendMessageBatchInput{QueueUrl: aws.String(q.url), Entries: make([]types.SendMessageBatchRequestEntry, len(pending))}
	byID := make(map[string]entry, len(pending))
	for i, e := range pending {
		id := strconv.Itoa(e.index)
		byID[id] = e
		in.Entries[i] = types.SendMessageBatchRequestEntry{
			Id:                      aws.String(id),
			MessageBody:             aws.String(e.body),
			DelaySeconds:            e.delay,
			MessageAttributes:       e.attrs,
			MessageSystemAttributes: e.system,
		}
	}
	out, err := q.client.SendMessageBatch(ctx, in)
	if err != nil {
		for _, e := range pending {
			failed = append(failed, failure{index: e.index, err: fmt.Errorf("SendMessageBatch: %w", err)})
		}
		return nil, failed
	}
	answered := make(map[string]bool, len(pending))
	for _, ok := range out.Successful {
		answered[aws.ToString(ok.Id)] = true
	}
	for _, f := range out.Failed {
		id := aws.ToString(f.Id)
		e, known := byID[id]
		if !known || answered[id] {
			continue
		}
		answered[id] = true
		if f.SenderFault || last {
			failed = append(failed, failure{index: e.index, err: fmt.Errorf("%s: %s", aws.ToString(f.Code), aws.ToString(f.Message))})
		} else {
			retry = append(retry, e)
		}
	}
	for _, e := range pending { // neither successful nor failed
		if id := strconv.Itoa(e.index); !answered[id] {
			if last {
				failed = append(failed, failure{index: e.index, err: errors.New("SendMessageBatch returned no result for the entry")})
			} else {
				retry = append(retry, e)
			}
		}
	}
	return retry, failed
}

// Delivery is one received message.
type Delivery struct {
	ID   string
	Body []byte
	// Attributes holds the String and Number message attributes and, when
	// present, the AWSTraceHeader system attribute.
	Attributes map[string]string
	// Receipt is the receipt handle, for Delete.
	Receipt string
	// ReceiveCount is ApproximateReceiveCount (0 if not reported).
	ReceiveCount int
}

// shortPollInterval spaces short polls when the wait is under a second.
const shortPollInterval = 100 * time.Millisecond

// Receive returns up to limit (1–10) messages, long-polling up to wait
// (whole seconds, at most 20; a wait under a second short-polls until it
// ends). It returns none when the wait ends without messages.
func (q *Queue) Receive(ctx context.Context, limit int, wait time.Duration) ([]Delivery, error) {
	limit = min(MaxBatchEntries, max(1, limit))
	deadline := time.Now().Add(wait)
	for {
		secs := int32(min(20, max(0, time.Until(deadline)/time.Second)))
		out, err := q.client.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(q.url),
			MaxNumberOfMessages:         int32(limit),
			WaitTimeSeconds:             secs,
			MessageAttributeNames:       []string{"All"},
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAWSTraceHeader, types.MessageSystemAttributeNameApproximateReceiveCount},
		})
		if err != nil {
			return nil, fmt.Errorf("sqs ReceiveMessage from %s: %w", q.url, err)
		}
		if len(out.Messages) > 0 {
			ds := make([]Delivery, len(out.Messages))
			for i, m := range out.Messages {
				ds[i] = toDelivery(m)
			}
			return ds, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, nil
		}
		if secs == 0 {
			select {
			case <-ctx.Done():
				return nil, nil
			case <-time.After(min(shortPollInterval, left)):
			}
		}
	}
}

func toDelivery(m types.Message) Delivery {
	d := Delivery{ID: aws.ToString(m.MessageId), Body: []byte(aws.ToString(m.Body)), Receipt: aws.ToString(m.ReceiptHandle)}
	d.Attributes = make(map[string]string, len(m.MessageAttributes)+1)
	for k, v := range m.MessageAttributes {
		if v.StringValue != nil {
			d.Attributes[k] = *v.StringValue
		}
	}
	if th, ok := m.Attributes[string(types.MessageSystemAttributeNameAWSTraceHeader)]; ok {
		d.Attributes[TraceHeaderAttribute] = th
	}
	if n, err := strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)]); err == nil {
		d.ReceiveCount = n
	}
	return d
}

// Delete acknowledges deliveries by receipt handle with DeleteMessageBatch,
// 10 at a time. It reports entries SQS could not delete.
func (q *Queue) Delete(ctx context.Context, receipts ...string) error {
	var errs []error
	for start := 0; start < len(receipts); start += MaxBatchEntries {
		part := receipts[start:min(len(receipts), start+MaxBatchEntries)]
		in := &awssqs.DeleteMessageBatchInput{QueueUrl: aws.String(q.url), Entries: make([]types.DeleteMessageBatchRequestEntry, len(part))}
		for i, r := range part {
			in.Entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(start + i)), ReceiptHandle: aws.String(r)}
		}
		out, err := q.client.DeleteMessageBatch(ctx, in)
		if err != nil {
			errs = append(errs, fmt.Errorf("sqs DeleteMessageBatch on %s: %w", q.url, err))
			continue
		}
		for _, f := range out.Failed {
			errs = append(errs, fmt.Errorf("sqs delete of receipt %s failed: %s: %s", aws.ToString(f.Id), aws.ToString(f.Code), aws.ToString(f.Message)))
		}
	}
	return errors.Join(errs...)
}
