package local

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/queue/queuetest"
)

type harness struct{ q *Queue }

func (h harness) Send(ctx context.Context, msgs []engine.Message) error { return h.q.Send(ctx, msgs) }

func (h harness) Receive(ctx context.Context, max int, wait time.Duration) ([]queuetest.Received, error) {
	ds, err := h.q.Receive(ctx, max, wait)
	out := make([]queuetest.Received, len(ds))
	for i, d := range ds {
		out[i] = queuetest.Received{ID: d.ID, Body: d.Body, Attributes: d.Attributes, Receipt: d.Receipt}
	}
	return out, err
}

func (h harness) Delete(_ context.Context, msgs []queuetest.Received) error {
	for _, m := range msgs {
		h.q.Delete(m.Receipt)
	}
	return nil
}

func TestConformance(t *testing.T) {
	t.Parallel()
	queuetest.Run(t, func(t *testing.T) queuetest.Harness { return harness{New()} })
}

// consume runs q.Consume in the background until the test ends.
func consume(t *testing.T, q *Queue, maxBatch int, handle func(ctx context.Context, msgs []engine.InMessage) []string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		q.Consume(ctx, maxBatch, handle)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestConsumeBatchesWhatIsReady(t *testing.T) {
	t.Parallel()
	q := New()
	msgs := make([]engine.Message, 7)
	for i := range msgs {
		msgs[i] = engine.Message{Body: fmt.Appendf(nil, "%d", i)}
	}
	if err := q.Send(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		batches [][]string
	)
	consume(t, q, 3, func(_ context.Context, in []engine.InMessage) []string {
		var b []string
		for _, m := range in {
			b = append(b, string(m.Body))
		}
		mu.Lock()
		batches = append(batches, b)
		mu.Unlock()
		return nil
	})
	waitFor(t, "three batches", func() bool { mu.Lock(); defer mu.Unlock(); return len(batches) == 3 })
	mu.Lock()
	got := fmt.Sprint(batches)
	mu.Unlock()
	if want := "[[0 1 2] [3 4 5] [6]]"; got != want {
		t.Errorf("batches %s, want %s (FIFO, at most 3, no waiting to fill)", got, want)
	}
	if s := q.Stats(); s != (Stats{}) {
		t.Errorf("stats after acking everything: %+v", s)
	}
}

func TestConsumeWakesForNewAndDelayedMessages(t *testing.T) {
	t.Parallel()
	q := New()
	got := make(chan string, 10)
	consume(t, q, 10, func(_ context.Context, in []engine.InMessage) []string {
		for _, m := range in {
			got <- string(m.Body)
		}
		return nil
	})
	ctx := context.Background()
	start := time.Now()
	if err := q.Send(ctx, []engine.Message{{Body: []byte("late"), Delay: 300 * time.Millisecond}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // the consumer is now asleep until "late" is due
	if err := q.Send(ctx, []engine.Message{{Body: []byte("early"), Delay: 50 * time.Millisecond}, {Body: []byte("now")}}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		body  string
		after time.Duration
	}{{"now", 0}, {"early", 50 * time.Millisecond}, {"late", 300 * time.Millisecond}} {
		select {
		case b := <-got:
			if b != want.body {
				t.Fatalf("got %q, want %q", b, want.body)
			}
			if el := time.Since(start); el < want.after {
				t.Errorf("%q delivered after %v, before its delay %v", b, el, want.after)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no delivery of %q", want.body)
		}
	}
}

func TestConsumeRedeliversFailuresThenDeadLetters(t *testing.T) {
	t.Parallel()
	q := New(WithVisibilityTimeout(20*time.Millisecond), WithMaxReceives(3))
	var deliveries atomic.Int32
	var okDeliveries atomic.Int32
	consume(t, q, 10, func(_ context.Context, in []engine.InMessage) []string {
		var failed []string
		for _, m := range in {
			if string(m.Body) == "poison" {
				deliveries.Add(1)
				failed = append(failed, m.ID)
			} else {
				okDeliveries.Add(1)
			}
		}
		return append(failed, "unknown-id")
	})
	err := q.Send(context.Background(), []engine.Message{
		{Body: []byte("poison"), Attributes: map[string]string{"a": "b"}},
		{Body: []byte("fine")},
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "dead letter", func() bool { return len(q.DeadLetters()) == 1 })
	dl := q.DeadLetters()[0]
	if string(dl.Body) != "poison" || dl.Receives != 3 || dl.Attributes["a"] != "b" || dl.ID == "" || dl.At.IsZero() {
		t.Errorf("dead letter %+v", dl)
	}
	if n := deliveries.Load(); n != 3 {
		t.Errorf("poison delivered %d times, want 3", n)
	}
	if n := okDeliveries.Load(); n != 1 {
		t.Errorf("fine delivered %d times, want 1", n)
	}
	if s := q.Stats(); s != (Stats{Dead: 1}) {
		t.Errorf("stats %+v", s)
	}
}

func TestReceiveUnackedComesBack(t *testing.T) {
	t.Parallel()
	q := New(WithVisibilityTimeout(50*time.Millisecond), WithMaxReceives(2))
	ctx := context.Background()
	if err := q.Send(ctx, []engine.Message{{Body: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	first, err := q.Receive(ctx, 10, time.Second)
	if err != nil || len(first) != 1 || first[0].ReceiveCount != 1 {
		t.Fatalf("first receive: %+v %v", first, err)
	}
	if s := q.Stats(); s.InFlight != 1 || s.Delayed != 0 {
		t.Errorf("stats while received: %+v", s)
	}
	second, err := q.Receive(ctx, 10, 2*time.Second)
	if err != nil || len(second) != 1 || second[0].ReceiveCount != 2 || second[0].ID != first[0].ID {
		t.Fatalf("redelivery: %+v %v", second, err)
	}
	q.Delete(first[0].Receipt) // stale receipt: ignored
	if s := q.Stats(); s.InFlight != 1 {
		t.Errorf("a stale receipt deleted the message: %+v", s)
	}
	// Not deleted a second time: it reached the max receive count.
	none, err := q.Receive(ctx, 10, 200*time.Millisecond)
	if err != nil || len(none) != 0 {
		t.Fatalf("after max receives: %+v %v", none, err)
	}
	if dl := q.DeadLetters(); len(dl) != 1 || dl[0].Receives != 2 {
		t.Errorf("dead letters %+v", dl)
	}
}

func TestMaxDelayCap(t *testing.T) {
	t.Parallel()
	q := New(WithMaxDelay(100 * time.Millisecond))
	ctx := context.Background()
	if err := q.Send(ctx, []engine.Message{{Body: []byte("x"), Delay: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	got, err := q.Receive(ctx, 1, 5*time.Second)
	if err != nil || len(got) != 1 {
		t.Fatalf("capped message: %+v %v", got, err)
	}
}

func TestCancelledContext(t *testing.T) {
	t.Parallel()
	q := New()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := q.Send(ctx, []engine.Message{{Body: []byte("x")}}); err == nil {
		t.Error("Send with a done context succeeded")
	}
	if got, err := q.Receive(ctx, 1, time.Second); err == nil || len(got) != 0 {
		t.Errorf("Receive with a done context: %v %v", got, err)
	}
	done := make(chan struct{})
	go func() {
		q.Consume(ctx, 1, func(context.Context, []engine.InMessage) []string { t.Error("handled"); return nil })
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Consume did not return on a done context")
	}
}

func TestConcurrentProducersAndConsumers(t *testing.T) {
	t.Parallel()
	q := New()
	const producers, perProducer = 8, 500
	var (
		mu   sync.Mutex
		seen = map[string]int{}
	)
	for range 4 {
		consume(t, q, 10, func(_ context.Context, in []engine.InMessage) []string {
			mu.Lock()
			for _, m := range in {
				seen[string(m.Body)]++
			}
			mu.Unlock()
			return nil
		})
	}
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := range perProducer {
				d := time.Duration(0)
				if i%10 == 0 {
					d = time.Duration(i%7) * time.Millisecond
				}
				if err := q.Send(context.Background(), []engine.Message{{Body: fmt.Appendf(nil, "%d-%d", p, i), Delay: d}}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	waitFor(t, "all messages", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == producers*perProducer })
	mu.Lock()
	defer mu.Unlock()
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%s delivered %d times", k, n)
		}
	}
}

func BenchmarkSendConsume(b *testing.B) {
	q := New()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var n atomic.Int64
	done := make(chan struct{})
	go func() {
		q.Consume(ctx, 10, func(_ context.Context, in []engine.InMessage) []string {
			if n.Add(int64(len(in))) >= int64(b.N) {
				select {
				case done <- struct{}{}:
				default:
				}
			}
			return nil
		})
	}()
	body := []byte(`{"kind":"wake","task_id":"7a1f3c9e-2b4d-4e6f-8a0b-1c2d3e4f5a6b"}`)
	b.ResetTimer()
	for range b.N {
		_ = q.Send(ctx, []engine.Message{{Body: body}})
	}
	<-done
}

// The dead-letter list is bounded: beyond WithMaxDeadLetters the oldest
// entries are dropped, counted and logged.
func TestDeadLettersAreBounded(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewJSONHandler(lockedWriter{&mu, &logs}, nil))
	q := New(WithMaxReceives(1), WithVisibilityTimeout(20*time.Millisecond), WithMaxDeadLetters(3), WithLogger(log))
	ctx := context.Background()
	for i := range 5 {
		if err := q.Send(ctx, []engine.Message{{Body: []byte(fmt.Sprint("m", i))}}); err != nil {
			t.Fatal(err)
		}
		// One at a time, so they are dead-lettered in order.
		if got, err := q.Receive(ctx, 1, time.Second); err != nil || len(got) != 1 {
			t.Fatalf("receive %d: %+v %v", i, got, err)
		}
		time.Sleep(25 * time.Millisecond)
		if none, err := q.Receive(ctx, 1, 0); err != nil || len(none) != 0 {
			t.Fatalf("redelivered past max receives: %+v %v", none, err)
		}
	}
	dl := q.DeadLetters()
	var ids []string
	for _, d := range dl {
		ids = append(ids, string(d.Body))
	}
	if fmt.Sprint(ids) != "[m2 m3 m4]" {
		t.Errorf("dead letters %v, want the newest three [m2 m3 m4]", ids)
	}
	if s := q.Stats(); s.Dead != 3 || s.DeadDropped != 2 {
		t.Errorf("stats %+v, want Dead 3, DeadDropped 2", s)
	}
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(logs.String(), `"level":"WARN","msg":"dead-letter list full: dropped the oldest entry"`); n != 2 {
		t.Errorf("%d drop warnings, want 2:\n%s", n, logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
