// Package faulty wraps an engine.Queue and injects the faults a real queue
// may produce (docs/architecture.md, "Invariants" 1: a message may arrive twice, late, out of order,
// or never): it duplicates, reorders, delays, holds back and drops
// messages, driven by a seeded random source so a failing run can be
// replayed with the same seed.
//
// It is a test tool: the reliability scenarios put it between the engine
// (wake-ups) and the local invoker (destination records) on one side and
// the in-process queue on the other.
package faulty

import (
	"bytes"
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/taskerhq/tasker/internal/engine"
)

// Kind classifies a scheduler message for per-kind fault rates and stats.
type Kind int

// Message kinds.
const (
	Wake   Kind = iota // {"kind":"wake",…}
	Result             // a Lambda destination record
	Other              // anything else
)

func (k Kind) String() string {
	switch k {
	case Wake:
		return "wake"
	case Result:
		return "result"
	}
	return "other"
}

// KindOf classifies a message body without decoding it fully.
func KindOf(body []byte) Kind {
	switch {
	case bytes.Contains(body, []byte(`"requestContext"`)):
		return Result
	case bytes.Contains(body, []byte(`"kind":"wake"`)):
		return Wake
	}
	return Other
}

// Faults are the probabilities (0..1) of each fault for one message. They
// are independent: a message may be duplicated and each copy delayed.
type Faults struct {
	// Drop loses the message.
	Drop float64
	// Duplicate sends one extra copy.
	Duplicate float64
	// Reorder delays the message by up to ReorderWindow so messages sent
	// after it overtake it; batches are also shuffled.
	Reorder float64
	// Delay adds up to MaxDelay to the message's delay.
	Delay float64
	// Hold keeps the message back until Release is called: a delay of any
	// length (minutes, hours) without the test waiting for it.
	Hold float64
}

// Config configures a Queue.
type Config struct {
	// Seed makes the fault sequence reproducible.
	Seed uint64
	// Wake and Result are the fault rates of wake-ups and destination
	// records; Other applies to anything else.
	Wake, Result, Other Faults
	// ReorderWindow bounds a reordering delay (default 250 ms).
	ReorderWindow time.Duration
	// MaxDelay bounds an injected delay (default 2 s).
	MaxDelay time.Duration
}

// Stats counts what the wrapper did, per kind.
type Stats struct {
	Sent       [3]int // messages handed to Send
	Forwarded  [3]int // copies passed to the inner queue (including released ones)
	Dropped    [3]int
	Duplicated [3]int
	Reordered  [3]int
	Delayed    [3]int
	Held       [3]int // currently held back
	Released   [3]int
}

// Queue is a fault-injecting engine.Queue. It is safe for concurrent use.
type Queue struct {
	inner engine.Queue
	cfg   Config

	mu       sync.Mutex
	rng      *rand.Rand
	disabled bool
	held     []engine.Message
	stats    Stats
}

var _ engine.Queue = (*Queue)(nil)

// New wraps inner.
func New(inner engine.Queue, cfg Config) *Queue {
	if cfg.ReorderWindow <= 0 {
		cfg.ReorderWindow = 250 * time.Millisecond
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = 2 * time.Second
	}
	return &Queue{inner: inner, cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}
}

func (q *Queue) faults(k Kind) Faults {
	switch k {
	case Wake:
		return q.cfg.Wake
	case Result:
		return q.cfg.Result
	}
	return q.cfg.Other
}

// Send applies the faults to msgs and forwards what survives. Held
// messages wait for Release; dropped ones are gone.
func (q *Queue) Send(ctx context.Context, msgs []engine.Message) error {
	q.mu.Lock()
	out := make([]engine.Message, 0, len(msgs)+1)
	for _, m := range msgs {
		k := KindOf(m.Body)
		q.stats.Sent[k]++
		if q.disabled {
			out = append(out, m)
			continue
		}
		f := q.faults(k)
		if q.hit(f.Drop) {
			q.stats.Dropped[k]++
			continue
		}
		copies := 1
		if q.hit(f.Duplicate) {
			copies = 2
			q.stats.Duplicated[k]++
		}
		for range copies {
			c := m
			c.Body = bytes.Clone(m.Body)
			if q.hit(f.Hold) {
				q.held = append(q.held, c)
				q.stats.Held[k]++
				continue
			}
			if q.hit(f.Reorder) {
				c.Delay += time.Duration(q.rng.Int64N(int64(q.cfg.ReorderWindow)) + 1)
				q.stats.Reordered[k]++
			}
			if q.hit(f.Delay) {
				c.Delay += time.Duration(q.rng.Int64N(int64(q.cfg.MaxDelay)) + 1)
				q.stats.Delayed[k]++
			}
			out = append(out, c)
		}
	}
	if !q.disabled && len(out) > 1 {
		q.rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	}
	for _, m := range out {
		q.stats.Forwarded[KindOf(m.Body)]++
	}
	q.mu.Unlock()
	if len(out) == 0 {
		return nil
	}
	return q.inner.Send(ctx, out)
}

func (q *Queue) hit(p float64) bool { return p > 0 && q.rng.Float64() < p }

// Release forwards every held message at once (in random order, with no
// delay): the late arrival of messages delayed for minutes or more.
func (q *Queue) Release(ctx context.Context) (int, error) {
	q.mu.Lock()
	held := q.held
	q.held = nil
	q.rng.Shuffle(len(held), func(i, j int) { held[i], held[j] = held[j], held[i] })
	for i := range held {
		k := KindOf(held[i].Body)
		held[i].Delay = 0
		q.stats.Held[k]--
		q.stats.Released[k]++
		q.stats.Forwarded[k]++
	}
	q.mu.Unlock()
	if len(held) == 0 {
		return 0, nil
	}
	return len(held), q.inner.Send(ctx, held)
}

// SetEnabled turns fault injection on or off (messages pass unchanged
// while off; held messages stay held).
func (q *Queue) SetEnabled(on bool) {
	q.mu.Lock()
	q.disabled = !on
	q.mu.Unlock()
}

// Stats returns a snapshot of the counters.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.stats
}
