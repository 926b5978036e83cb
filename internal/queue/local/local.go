// Package local is the in-process scheduler queue of local mode (DESIGN
// §10): a delayed queue with SQS-like semantics — per-message delays capped
// at 900 s, redelivery of failed messages after a visibility timeout, a
// maximum receive count and a dead-letter list.
//
// Consumers pull: Consume delivers batches of ready messages to a handler
// as soon as they are ready; Receive and Delete give explicit
// receive/acknowledge for tests. A Queue has no goroutines and needs no
// closing; Consumers is the service (docs/architecture.md, "Services")
// that runs Consume loops.
package local

import (
	"bytes"
	"container/heap"
	"context"
	"log/slog"
	"maps"
	"strconv"
	"sync"
	"time"

	"github.com/taskerhq/tasker/internal/engine"
)

// Defaults.
const (
	DefaultVisibilityTimeout = time.Second
	DefaultMaxReceives       = 10
	DefaultMaxDelay          = 900 * time.Second
	// DefaultMaxDeadLetters bounds the dead-letter list; beyond it the
	// oldest entries are dropped (Stats.DeadDropped counts them).
	DefaultMaxDeadLetters = 10000
)

// Option configures New.
type Option func(*Queue)

// WithVisibilityTimeout sets how long a failed (Consume) or unacknowledged
// (Receive) message stays invisible before redelivery (default 1 s).
func WithVisibilityTimeout(d time.Duration) Option {
	return func(q *Queue) {
		if d > 0 {
			q.visibility = d
		}
	}
}

// WithMaxReceives sets how many deliveries a message gets before it moves
// to the dead-letter list (default 10; like SQS maxReceiveCount).
func WithMaxReceives(n int) Option {
	return func(q *Queue) {
		if n > 0 {
			q.maxReceives = n
		}
	}
}

// WithMaxDeadLetters bounds the dead-letter list (default
// DefaultMaxDeadLetters; n <= 0 keeps the default). When it is full the
// oldest entry is dropped, counted in Stats.DeadDropped and logged as a
// warning.
func WithMaxDeadLetters(n int) Option {
	return func(q *Queue) {
		if n > 0 {
			q.maxDead = n
		}
	}
}

// WithLogger sets where dropped dead letters are reported (default: nowhere).
func WithLogger(l *slog.Logger) Option {
	return func(q *Queue) {
		if l != nil {
			q.log = l
		}
	}
}

// WithMaxDelay caps message delays (default 900 s, as SQS does; d <= 0
// means no cap).
func WithMaxDelay(d time.Duration) Option { return func(q *Queue) { q.maxDelay = d } }

// Queue is an in-process delayed queue implementing engine.Queue. It is
// safe for concurrent producers and consumers.
type Queue struct {
	visibility  time.Duration
	maxReceives int
	maxDelay    time.Duration
	maxDead     int
	log         *slog.Logger

	mu       sync.Mutex
	ready    fifo
	delayed  itemHeap         // delayed, failed and received-but-unacknowledged messages
	received map[string]*item // receipt → item, for Delete
	taken    int              // messages handed to Consume handlers
	dead     []DeadLetter
	dropped  int // dead letters dropped because the list was full
	seq      uint64
	changed  chan struct{} // closed when messages may have become available
	waiting  bool          // someone waits on changed
}

type item struct {
	id        string
	body      []byte
	attrs     map[string]string
	visibleAt time.Time
	readyAt   time.Time // when it was first available: sent, or its delay ended
	receives  int
	seq       uint64 // arrival order, breaks ties in the heap
	receipt   string // set while received via Receive and not deleted
	index     int    // position in the heap, -1 when not in it
}

// DeadLetter is a message that exhausted its receives.
type DeadLetter struct {
	ID         string
	Body       []byte
	Attributes map[string]string
	Receives   int
	At         time.Time
}

// Delivery is one message handed out by Receive.
type Delivery struct {
	ID         string
	Receipt    string
	Body       []byte
	Attributes map[string]string
	// ReceiveCount counts deliveries of this message, this one included.
	ReceiveCount int
}

// Stats counts messages by state.
type Stats struct {
	Ready    int // deliverable now
	Delayed  int // waiting for their delay or a redelivery
	InFlight int // delivered and not yet settled
	Dead     int
	// DeadDropped counts dead letters dropped, oldest first, because the
	// list held WithMaxDeadLetters entries.
	DeadDropped int
}

// New returns an empty queue.
func New(opts ...Option) *Queue {
	q := &Queue{
		visibility:  DefaultVisibilityTimeout,
		maxReceives: DefaultMaxReceives,
		maxDelay:    DefaultMaxDelay,
		maxDead:     DefaultMaxDeadLetters,
		log:         slog.New(slog.DiscardHandler),
		received:    map[string]*item{},
		changed:     make(chan struct{}),
	}
	for _, o := range opts {
		o(q)
	}
	return q
}

var _ engine.Queue = (*Queue)(nil)

// Send enqueues copies of msgs. A Delay <= 0 makes a message ready at once;
// delays over the maximum are capped. It fails only when ctx is done.
func (q *Queue) Send(ctx context.Context, msgs []engine.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(msgs) == 0 {
		return nil
	}
	now := time.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, m := range msgs {
		q.seq++
		it := &item{seq: q.seq, id: strconv.FormatUint(q.seq, 10)}
		it.body = bytes.Clone(m.Body)
		if it.body == nil {
			it.body = []byte{}
		}
		if len(m.Attributes) > 0 {
			it.attrs = maps.Clone(m.Attributes)
		}
		it.index = -1
		d := m.Delay
		if q.maxDelay > 0 && d > q.maxDelay {
			d = q.maxDelay
		}
		it.readyAt = now.Add(max(d, 0))
		if d > 0 {
			it.visibleAt = now.Add(d)
			heap.Push(&q.delayed, it)
		} else {
			q.ready.push(it)
		}
	}
	q.broadcastLocked()
	return nil
}

// Consume delivers ready messages to handle, at most maxBatch at a time,
// until ctx is done. A batch is whatever is ready, handed over at once
// without waiting to fill it. Messages whose IDs handle returns as failed
// are redelivered after the visibility timeout, or dead-lettered once they
// reached the maximum receive count; the others are deleted. Several
// Consume loops may run concurrently.
func (q *Queue) Consume(ctx context.Context, maxBatch int, handle func(ctx context.Context, msgs []engine.InMessage) (failedIDs []string)) {
	if maxBatch < 1 {
		maxBatch = 1
	}
	var (
		batch []*item
		msgs  []engine.InMessage
	)
	for {
		batch = q.take(ctx, maxBatch, -1, batch[:0])
		if len(batch) == 0 {
			return // ctx done
		}
		msgs = msgs[:0]
		for _, it := range batch {
			msgs = append(msgs, engine.InMessage{ID: it.id, Body: it.body, Attributes: it.attrs, ReadyAt: it.readyAt})
		}
		failed := handle(ctx, msgs)
		q.settle(batch, failed)
		clear(batch)
	}
}

// Receive returns up to limit ready messages, waiting up to wait for at least
// one; it returns none when the wait ends or ctx is done. Received messages
// become visible again after the visibility timeout unless deleted.
func (q *Queue) Receive(ctx context.Context, limit int, wait time.Duration) ([]Delivery, error) {
	if limit < 1 {
		limit = 1
	}
	if wait < 0 {
		wait = 0
	}
	batch := q.take(ctx, limit, wait, nil)
	if len(batch) == 0 {
		return nil, ctx.Err()
	}
	out := make([]Delivery, len(batch))
	now := time.Now()
	q.mu.Lock()
	for i, it := range batch {
		q.taken--
		it.receipt = it.id + "#" + strconv.Itoa(it.receives)
		it.visibleAt = now.Add(q.visibility)
		q.received[it.receipt] = it
		heap.Push(&q.delayed, it)
		out[i] = Delivery{
			ID: it.id, Receipt: it.receipt, Body: bytes.Clone(it.body),
			Attributes: maps.Clone(it.attrs), ReceiveCount: it.receives,
		}
	}
	q.broadcastLocked()
	q.mu.Unlock()
	return out, nil
}

// Delete acknowledges deliveries by receipt. Unknown or expired receipts
// are ignored, as SQS does.
func (q *Queue) Delete(receipts ...string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, r := range receipts {
		it, ok := q.received[r]
		if !ok {
			continue
		}
		delete(q.received, r)
		if it.index >= 0 {
			heap.Remove(&q.delayed, it.index)
		}
	}
}

// DeadLetters returns copies of the dead-lettered messages, oldest first.
func (q *Queue) DeadLetters() []DeadLetter {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]DeadLetter, len(q.dead))
	for i, d := range q.dead {
		d.Body = bytes.Clone(d.Body)
		d.Attributes = maps.Clone(d.Attributes)
		out[i] = d
	}
	return out
}

// Stats counts the queue's messages by state.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return Stats{
		Ready:    q.ready.len(),
		Delayed:  q.delayed.Len() - len(q.received),
		InFlight: q.taken + len(q.received),
		Dead:     len(q.dead),

		DeadDropped: q.dropped,
	}
}

// take removes up to max ready messages, waiting until at least one is
// ready, ctx is done or wait elapses (wait < 0: no limit).
func (q *Queue) take(ctx context.Context, limit int, wait time.Duration, buf []*item) []*item {
	if ctx.Err() != nil {
		return buf
	}
	var (
		timer    *time.Timer
		deadline time.Time
	)
	if wait >= 0 {
		deadline = time.Now().Add(wait)
	}
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	q.mu.Lock()
	for {
		now := time.Now()
		q.promoteLocked(now)
		if q.ready.len() > 0 {
			for len(buf) < limit && q.ready.len() > 0 {
				it := q.ready.pop()
				it.receives++
				buf = append(buf, it)
			}
			q.taken += len(buf)
			q.mu.Unlock()
			return buf
		}
		// Sleep until the next message is due, something changes, the
		// wait ends or ctx is done.
		sleep := time.Duration(-1)
		if q.delayed.Len() > 0 {
			sleep = max(q.delayed[0].visibleAt.Sub(now), 0)
		}
		if wait >= 0 {
			left := time.Until(deadline)
			if left <= 0 {
				q.mu.Unlock()
				return buf
			}
			if sleep < 0 || left < sleep {
				sleep = left
			}
		}
		ch := q.changed
		q.waiting = true
		q.mu.Unlock()

		var tc <-chan time.Time
		if sleep >= 0 {
			if timer == nil {
				timer = time.NewTimer(sleep)
			} else {
				timer.Reset(sleep)
			}
			tc = timer.C
		}
		select {
		case <-ctx.Done():
			return buf
		case <-ch:
		case <-tc:
		}
		if timer != nil {
			timer.Stop()
		}
		q.mu.Lock()
	}
}

// settle finishes a Consume batch.
func (q *Queue) settle(batch []*item, failedIDs []string) {
	var failed map[string]struct{}
	if len(failedIDs) > 0 {
		failed = make(map[string]struct{}, len(failedIDs))
		for _, id := range failedIDs {
			failed[id] = struct{}{}
		}
	}
	now := time.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	q.taken -= len(batch)
	requeued := false
	for _, it := range batch {
		if _, ok := failed[it.id]; !ok {
			continue
		}
		if it.receives >= q.maxReceives {
			q.deadLocked(it, now)
			continue
		}
		it.visibleAt = now.Add(q.visibility)
		heap.Push(&q.delayed, it)
		requeued = true
	}
	if requeued {
		q.broadcastLocked()
	}
}

// promoteLocked moves due messages from the heap to the ready list; a
// received message that was never deleted is redelivered or dead-lettered.
func (q *Queue) promoteLocked(now time.Time) {
	for q.delayed.Len() > 0 && !q.delayed[0].visibleAt.After(now) {
		it := heap.Pop(&q.delayed).(*item)
		if it.receipt != "" {
			delete(q.received, it.receipt)
			it.receipt = ""
			if it.receives >= q.maxReceives {
				q.deadLocked(it, now)
				continue
			}
		}
		q.ready.push(it)
	}
}

func (q *Queue) deadLocked(it *item, now time.Time) {
	if len(q.dead) >= q.maxDead {
		old := q.dead[0]
		q.dead[0] = DeadLetter{} // let the body be collected
		q.dead = q.dead[1:]
		q.dropped++
		q.log.Warn("dead-letter list full: dropped the oldest entry",
			"message_id", old.ID, "dead_lettered_at", old.At, "max_dead_letters", q.maxDead, "dropped_total", q.dropped)
	}
	q.dead = append(q.dead, DeadLetter{ID: it.id, Body: it.body, Attributes: it.attrs, Receives: it.receives, At: now})
}

func (q *Queue) broadcastLocked() {
	if q.waiting {
		close(q.changed)
		q.changed = make(chan struct{})
		q.waiting = false
	}
}

// fifo is a slice-backed queue of items.
type fifo struct {
	items []*item
	head  int
}

func (f *fifo) len() int { return len(f.items) - f.head }

func (f *fifo) push(it *item) {
	if f.head > 0 && f.head == len(f.items) {
		f.items, f.head = f.items[:0], 0
	} else if f.head >= 1024 && f.head*2 >= len(f.items) {
		n := copy(f.items, f.items[f.head:])
		clear(f.items[n:])
		f.items, f.head = f.items[:n], 0
	}
	f.items = append(f.items, it)
}

func (f *fifo) pop() *item {
	it := f.items[f.head]
	f.items[f.head] = nil
	f.head++
	if f.head == len(f.items) {
		f.items, f.head = f.items[:0], 0
	}
	return it
}

// itemHeap orders items by visibleAt, then by id order of arrival.
type itemHeap []*item

func (h itemHeap) Len() int { return len(h) }
func (h itemHeap) Less(i, j int) bool {
	if h[i].visibleAt.Equal(h[j].visibleAt) {
		return h[i].seq < h[j].seq
	}
	return h[i].visibleAt.Before(h[j].visibleAt)
}
func (h itemHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *itemHeap) Push(x any) {
	it := x.(*item)
	it.index = len(*h)
	*h = append(*h, it)
}
func (h *itemHeap) Pop() any {
	old := *h
	n := len(old)
	it := old[n-1]
	old[n-1] = nil
	it.index = -1
	*h = old[:n-1]
	return it
}
