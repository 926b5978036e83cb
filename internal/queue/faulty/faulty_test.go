package faulty_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/queue/faulty"
)

type sink struct {
	mu   sync.Mutex
	msgs []engine.Message
}

func (s *sink) Send(_ context.Context, msgs []engine.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, msgs...)
	return nil
}

func wakes(n int) []engine.Message {
	out := make([]engine.Message, n)
	for i := range out {
		out[i] = engine.Message{Body: contract.NewWake(uuid.New())}
	}
	return out
}

func TestKindOf(t *testing.T) {
	if k := faulty.KindOf(contract.NewWake(uuid.New())); k != faulty.Wake {
		t.Fatalf("wake: %v", k)
	}
	if k := faulty.KindOf([]byte(`{"version":"1.0","requestContext":{},"requestPayload":{"context":{"kind":"wake"}}}`)); k != faulty.Result {
		t.Fatalf("record: %v", k)
	}
	if k := faulty.KindOf([]byte(`not json`)); k != faulty.Other {
		t.Fatalf("other: %v", k)
	}
}

// The same seed gives the same faults; the rates are roughly honoured.
func TestSeededFaults(t *testing.T) {
	run := func(seed uint64) (faulty.Stats, string) {
		s := &sink{}
		q := faulty.New(s, faulty.Config{Seed: seed, Wake: faulty.Faults{Drop: 0.1, Duplicate: 0.2, Reorder: 0.2, Delay: 0.1, Hold: 0.05}})
		for range 100 {
			if err := q.Send(context.Background(), wakes(10)); err != nil {
				t.Fatal(err)
			}
		}
		var sig string
		for _, m := range s.msgs {
			sig += fmt.Sprint(m.Delay, ";")
		}
		return q.Stats(), sig
	}
	a, sigA := run(7)
	b, sigB := run(7)
	if a != b || sigA != sigB {
		t.Fatalf("same seed, different faults:\n%+v\n%+v", a, b)
	}
	w := faulty.Wake
	if a.Sent[w] != 1000 {
		t.Fatalf("sent %d", a.Sent[w])
	}
	for name, got := range map[string][2]int{
		"dropped": {a.Dropped[w], 100}, "duplicated": {a.Duplicated[w], 180}, "held": {a.Held[w], 54},
	} {
		if got[0] < got[1]/2 || got[0] > got[1]*2 {
			t.Errorf("%s = %d, want about %d", name, got[0], got[1])
		}
	}
	// Every message sent is dropped, forwarded or held (duplicates add one).
	if a.Sent[w]-a.Dropped[w]+a.Duplicated[w] != a.Forwarded[w]+a.Held[w] {
		t.Fatalf("accounting: %+v", a)
	}
}

func TestHoldAndRelease(t *testing.T) {
	s := &sink{}
	q := faulty.New(s, faulty.Config{Seed: 1, Wake: faulty.Faults{Hold: 1}})
	ctx := context.Background()
	if err := q.Send(ctx, wakes(5)); err != nil {
		t.Fatal(err)
	}
	if len(s.msgs) != 0 || q.Stats().Held[faulty.Wake] != 5 {
		t.Fatalf("held: %d forwarded, %+v", len(s.msgs), q.Stats())
	}
	n, err := q.Release(ctx)
	if err != nil || n != 5 || len(s.msgs) != 5 {
		t.Fatalf("release: %d %v, %d forwarded", n, err, len(s.msgs))
	}
	for _, m := range s.msgs {
		if m.Delay != 0 {
			t.Fatalf("released message delayed %s", m.Delay)
		}
	}
	q.SetEnabled(false)
	if err := q.Send(ctx, wakes(3)); err != nil || len(s.msgs) != 8 {
		t.Fatalf("disabled: %v %d", err, len(s.msgs))
	}
}

func TestDelayBounds(t *testing.T) {
	s := &sink{}
	q := faulty.New(s, faulty.Config{Seed: 3, MaxDelay: time.Second, ReorderWindow: 100 * time.Millisecond,
		Wake: faulty.Faults{Delay: 1, Reorder: 1}})
	if err := q.Send(context.Background(), wakes(200)); err != nil {
		t.Fatal(err)
	}
	for _, m := range s.msgs {
		if m.Delay <= 0 || m.Delay > 1100*time.Millisecond {
			t.Fatalf("delay %s out of bounds", m.Delay)
		}
	}
}
