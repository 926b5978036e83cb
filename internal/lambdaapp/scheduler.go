package lambdaapp

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/telemetry"
)

// SchedulerEngine is what the scheduler function needs of the engine.
type SchedulerEngine interface {
	HandleMessages(ctx context.Context, msgs []engine.InMessage) (failed []string, err error)
	Sweep(ctx context.Context) (engine.SweepReport, error)
}

// VisibilityChanger is the part of the SQS client that returns a failed
// message to the queue early.
type VisibilityChanger interface {
	ChangeMessageVisibility(ctx context.Context, in *awssqs.ChangeMessageVisibilityInput, opts ...func(*awssqs.Options)) (*awssqs.ChangeMessageVisibilityOutput, error)
}

// Retry pauses of a failed scheduler message: the first, doubling with
// each receive, at most the last.
const (
	FailedVisibilityFirst = 5 * time.Second
	FailedVisibilityMax   = 5 * time.Minute
)

// SchedulerHandler handles the scheduler function's events.
type SchedulerHandler struct {
	Engine SchedulerEngine
	Logger *slog.Logger
	// Visibility, with QueueURL, makes a message reported failed visible
	// again after FailedVisibility(receive count) instead of the queue's
	// visibility timeout (sized for Lambda, minutes), so a result in a
	// failed batch is recorded before its step's deadline times it out.
	Visibility VisibilityChanger
	QueueURL   string
}

// FailedVisibility is how long a message that failed on its n-th receive
// stays invisible: 5 s, 10 s, 20 s … at most 5 minutes, so that a
// database outage does not burn the queue's receive limit in seconds.
func FailedVisibility(receiveCount int) time.Duration {
	d := FailedVisibilityFirst
	for i := 1; i < receiveCount && d < FailedVisibilityMax; i++ {
		d *= 2
	}
	return min(d, FailedVisibilityMax)
}

// SweepResponse is the scheduler's answer to a Scheduled Event.
type SweepResponse struct {
	Sweep struct {
		Tasks       int `json:"tasks"`
		TimedOut    int `json:"timed_out"`
		Interrupted int `json:"interrupted"`
	} `json:"sweep"`
}

// Handle dispatches on the event's shape, decoded into a raw map first:
//
//   - {"Records":[…]} is an SQS batch: the bodies go to
//     engine.HandleMessages with their message ids, and the answer is an
//     events.SQSEventResponse listing the messages that failed (the event
//     source mapping reports batch item failures, so only those return to
//     the queue; poison messages reach the DLQ after the redrive limit);
//   - {"source":"aws.events","detail-type":"Scheduled Event"} is the
//     EventBridge schedule: the sweep runs, and an error is returned if it
//     fails (the next schedule tries again);
//   - anything else is an error: the function is wired to something it
//     does not understand.
func (s *SchedulerHandler) Handle(ctx context.Context, event json.RawMessage) (any, error) {
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(event, &raw); err != nil {
		return nil, fmt.Errorf("scheduler: event is not a JSON object: %w", err)
	}
	if _, ok := raw["Records"]; ok {
		var batch events.SQSEvent
		if err := json.Unmarshal(event, &batch); err != nil {
			return nil, fmt.Errorf("scheduler: undecodable SQS event: %w", err)
		}
		return s.batch(ctx, log, batch), nil
	}
	var source, detailType string
	_ = json.Unmarshal(raw["source"], &source)
	_ = json.Unmarshal(raw["detail-type"], &detailType)
	if source == "aws.events" && detailType == "Scheduled Event" {
		rep, err := s.Engine.Sweep(ctx)
		if err != nil {
			log.ErrorContext(ctx, "sweep failed", "error", err)
			return nil, fmt.Errorf("sweep: %w", err)
		}
		var out SweepResponse
		out.Sweep.Tasks, out.Sweep.TimedOut, out.Sweep.Interrupted = rep.Tasks, rep.TimedOut, rep.Interrupted
		log.InfoContext(ctx, "sweep done", "tasks", rep.Tasks, "timed_out", rep.TimedOut, "interrupted", rep.Interrupted)
		return out, nil
	}
	return nil, fmt.Errorf("scheduler: unrecognised event (source %q, detail-type %q): want an SQS batch or the EventBridge Scheduled Event", source, detailType)
}

func (s *SchedulerHandler) batch(ctx context.Context, log *slog.Logger, batch events.SQSEvent) events.SQSEventResponse {
	msgs := make([]engine.InMessage, 0, len(batch.Records))
	for _, r := range batch.Records {
		msgs = append(msgs, inMessage(r))
	}
	failed, err := s.Engine.HandleMessages(ctx, msgs)
	if err != nil {
		// Every message is reported failed and comes back after the
		// visibility timeout; Postgres still holds the truth.
		log.ErrorContext(ctx, "scheduler batch failed", "messages", len(msgs), "error", err)
	}
	resp := events.SQSEventResponse{BatchItemFailures: make([]events.SQSBatchItemFailure, 0, len(failed))}
	for _, id := range failed {
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: id})
	}
	s.shortenVisibility(ctx, log, batch, failed)
	log.InfoContext(ctx, "scheduler batch done", "messages", len(msgs), "failed", len(failed))
	return resp
}

// shortenVisibility sets the visibility of the failed messages. It is
// best effort: a message it cannot change returns after the queue's
// visibility timeout, as without it.
func (s *SchedulerHandler) shortenVisibility(ctx context.Context, log *slog.Logger, batch events.SQSEvent, failed []string) {
	if s.Visibility == nil || s.QueueURL == "" || len(failed) == 0 {
		return
	}
	isFailed := make(map[string]bool, len(failed))
	for _, id := range failed {
		isFailed[id] = true
	}
	for _, r := range batch.Records {
		if !isFailed[r.MessageId] || r.ReceiptHandle == "" {
			continue
		}
		n, _ := strconv.Atoi(r.Attributes["ApproximateReceiveCount"])
		vis := FailedVisibility(n)
		_, err := s.Visibility.ChangeMessageVisibility(ctx, &awssqs.ChangeMessageVisibilityInput{
			QueueUrl: aws.String(s.QueueURL), ReceiptHandle: aws.String(r.ReceiptHandle), VisibilityTimeout: int32(vis / time.Second),
		})
		if err != nil {
			log.WarnContext(ctx, "could not shorten a failed message's visibility; it returns after the queue's visibility timeout",
				"message_id", r.MessageId, "error", err)
		}
	}
}

// inMessage converts an SQS record: its String and Number message
// attributes and the AWSTraceHeader system attribute (trace context), and
// its SentTimestamp as ReadyAt (SQS does not say when a delayed message
// became visible, so a delayed wake-up's lag includes its delay).
func inMessage(r events.SQSMessage) engine.InMessage {
	m := engine.InMessage{ID: r.MessageId, Body: []byte(r.Body)}
	for k, v := range r.MessageAttributes {
		if v.StringValue != nil {
			if m.Attributes == nil {
				m.Attributes = make(map[string]string, len(r.MessageAttributes)+1)
			}
			m.Attributes[k] = *v.StringValue
		}
	}
	if th := r.Attributes["AWSTraceHeader"]; th != "" {
		if m.Attributes == nil {
			m.Attributes = make(map[string]string, 1)
		}
		m.Attributes[telemetry.AttrAWSTraceHeader] = th
	}
	if ms, err := strconv.ParseInt(r.Attributes["SentTimestamp"], 10, 64); err == nil && ms > 0 {
		m.ReadyAt = time.UnixMilli(ms).UTC()
	}
	return m
}
