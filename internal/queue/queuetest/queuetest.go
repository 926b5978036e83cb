// Package queuetest is the conformance suite for scheduler queue adapters
// (engine.Queue plus a way to receive and delete): the in-process queue
// runs it in its tests, the SQS adapter runs it against moto.
package queuetest

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/taskerhq/tasker/internal/engine"
)

// Received is one delivered message.
type Received struct {
	ID   string
	Body []byte
	// Attributes are the message attributes; adapters may add their own,
	// the suite checks only that the sent ones arrive.
	Attributes map[string]string
	// Receipt identifies this delivery for Delete (SQS: the receipt handle).
	Receipt string
}

// Harness is a queue under test.
type Harness interface {
	// Send is engine.Queue.Send.
	Send(ctx context.Context, msgs []engine.Message) error
	// Receive returns up to max (≤ 10) visible messages, waiting up to wait
	// (≤ 2 s in the suite) for at least one; it may return none. Received
	// messages stay invisible until deleted or their visibility times out
	// (the suite deletes everything it receives at once).
	Receive(ctx context.Context, max int, wait time.Duration) ([]Received, error)
	// Delete acknowledges deliveries (SQS: DeleteMessageBatch).
	Delete(ctx context.Context, msgs []Received) error
}

// Run runs the suite. Subtests run in parallel, each on a fresh queue from
// newQueue, which must therefore be safe to call concurrently and should
// register its own cleanup with t.Cleanup.
func Run(t *testing.T, newQueue func(t *testing.T) Harness) {
	t.Helper()
	cases := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"SendReceiveBodyAndAttributes", testSendReceive},
		{"EmptySend", testEmptySend},
		{"DelayedNotBefore", testDelayed},
		{"NonPositiveDelayIsImmediate", testNonPositiveDelay},
		{"Batch25ExactlyOnce", testBatch25},
		{"DelayOver900sAccepted", testLongDelay},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.fn(t, newQueue(t))
		})
	}
}

const receiveWait = time.Second

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// collect receives and deletes until n messages arrived or ctx ends.
func collect(ctx context.Context, t *testing.T, h Harness, n int) []Received {
	t.Helper()
	var got []Received
	for len(got) < n && ctx.Err() == nil {
		msgs, err := h.Receive(ctx, 10, receiveWait)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			t.Fatalf("Receive: %v", err)
		}
		if len(msgs) > 10 {
			t.Fatalf("Receive(max 10) returned %d messages", len(msgs))
		}
		if len(msgs) > 0 {
			if err := h.Delete(ctx, msgs); err != nil {
				t.Fatalf("Delete: %v", err)
			}
		}
		got = append(got, msgs...)
	}
	if len(got) < n {
		t.Fatalf("received %d of %d messages before the deadline", len(got), n)
	}
	return got
}

// expectNothing asserts that no message is received within wait.
func expectNothing(ctx context.Context, t *testing.T, h Harness, wait time.Duration) {
	t.Helper()
	end := time.Now().Add(wait)
	for time.Now().Before(end) {
		msgs, err := h.Receive(ctx, 10, min(receiveWait, time.Until(end)))
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		if len(msgs) > 0 {
			t.Fatalf("unexpected message(s): first body %q", msgs[0].Body)
		}
	}
}

func testSendReceive(t *testing.T, h Harness) {
	ctx := ctxFor(t, 30*time.Second)
	body := []byte(`{"kind":"wake","task_id":"7a1f3c9e-2b4d-4e6f-8a0b-1c2d3e4f5a6b"}`)
	attrs := map[string]string{
		"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"source":      "queuetest",
	}
	sent := engine.Message{Body: bytes.Clone(body), Attributes: map[string]string{}}
	for k, v := range attrs {
		sent.Attributes[k] = v
	}
	if err := h.Send(ctx, []engine.Message{sent}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	// The queue must have copied what it was given.
	sent.Body[2] = 'X'
	sent.Attributes["source"] = "mutated"

	got := collect(ctx, t, h, 1)
	if len(got) != 1 {
		t.Fatalf("received %d messages, want 1", len(got))
	}
	m := got[0]
	if !bytes.Equal(m.Body, body) {
		t.Errorf("body = %s, want %s", m.Body, body)
	}
	if m.ID == "" {
		t.Error("message without an ID")
	}
	for k, v := range attrs {
		if m.Attributes[k] != v {
			t.Errorf("attribute %s = %q, want %q", k, m.Attributes[k], v)
		}
	}
	expectNothing(ctx, t, h, receiveWait)
}

func testEmptySend(t *testing.T, h Harness) {
	ctx := ctxFor(t, 10*time.Second)
	if err := h.Send(ctx, nil); err != nil {
		t.Errorf("Send(nil): %v", err)
	}
	if err := h.Send(ctx, []engine.Message{}); err != nil {
		t.Errorf("Send(empty): %v", err)
	}
}

func testDelayed(t *testing.T, h Harness) {
	ctx := ctxFor(t, 30*time.Second)
	const delay = 2 * time.Second
	// Timers and clocks may round; "not before" allows this much.
	const slack = 100 * time.Millisecond
	start := time.Now()
	err := h.Send(ctx, []engine.Message{
		{Body: []byte(`"delayed"`), Delay: delay},
		{Body: []byte(`"immediate"`)},
	})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	seen := map[string]time.Duration{}
	for len(seen) < 2 && ctx.Err() == nil {
		msgs, err := h.Receive(ctx, 10, receiveWait)
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		at := time.Since(start)
		for _, m := range msgs {
			if _, dup := seen[string(m.Body)]; dup {
				t.Errorf("%s delivered twice", m.Body)
			}
			seen[string(m.Body)] = at
		}
		if len(msgs) > 0 {
			if err := h.Delete(ctx, msgs); err != nil {
				t.Fatalf("Delete: %v", err)
			}
		}
	}
	if len(seen) < 2 {
		t.Fatalf("received %v before the deadline, want both messages", seen)
	}
	if at := seen[`"delayed"`]; at < delay-slack {
		t.Errorf("delayed message visible after %v, before its %v delay", at, delay)
	}
	if seen[`"immediate"`] > seen[`"delayed"`] {
		t.Errorf("the undelayed message arrived after the delayed one: %v", seen)
	}
}

func testNonPositiveDelay(t *testing.T, h Harness) {
	ctx := ctxFor(t, 30*time.Second)
	err := h.Send(ctx, []engine.Message{
		{Body: []byte(`"zero"`)},
		{Body: []byte(`"negative"`), Delay: -5 * time.Second},
	})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	collect(ctx, t, h, 2)
}

func testBatch25(t *testing.T, h Harness) {
	ctx := ctxFor(t, 60*time.Second)
	const n = 25
	msgs := make([]engine.Message, n)
	for i := range msgs {
		msgs[i] = engine.Message{
			Body:       fmt.Appendf(nil, `{"n":%d}`, i),
			Attributes: map[string]string{"n": fmt.Sprint(i)},
		}
	}
	if err := h.Send(ctx, msgs); err != nil {
		t.Fatalf("Send(25): %v", err)
	}
	got := collect(ctx, t, h, n)
	count := map[string]int{}
	for _, m := range got {
		count[string(m.Body)]++
		if want := fmt.Sprintf(`{"n":%s}`, m.Attributes["n"]); string(m.Body) != want {
			t.Errorf("attributes of %s belong to another message: n=%q", m.Body, m.Attributes["n"])
		}
	}
	for i := range n {
		if c := count[fmt.Sprintf(`{"n":%d}`, i)]; c != 1 {
			t.Errorf("message %d received %d times, want once", i, c)
		}
	}
	if len(got) != n {
		t.Errorf("received %d messages, want %d", len(got), n)
	}
	// Deleted messages never come back.
	expectNothing(ctx, t, h, 2*receiveWait)
}

func testLongDelay(t *testing.T, h Harness) {
	ctx := ctxFor(t, 30*time.Second)
	err := h.Send(ctx, []engine.Message{
		{Body: []byte(`"much later"`), Delay: 20 * time.Minute},
		{Body: []byte(`"exactly 900s"`), Delay: 900 * time.Second},
	})
	if err != nil {
		t.Fatalf("Send with a delay over 900 s: %v", err)
	}
	expectNothing(ctx, t, h, receiveWait)
}
