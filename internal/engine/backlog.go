package engine

import (
	"sync"

	"github.com/google/uuid"
)

// maxBacklog bounds the tasks remembered as waiting for capacity; beyond it
// the sweep still finds them.
const maxBacklog = 100_000

// backlog remembers, while an in-flight cap is set, tasks a pass evaluated
// without claiming anything, so that they are woken as soon as results free
// slots instead of at the next sweep. A task that was not waiting for
// capacity (its steps were waiting on siblings) costs one cheap pass when
// woken; each recorded result wakes at most one task, in FIFO order.
type backlog struct {
	mu  sync.Mutex
	ids []uuid.UUID
	in  map[uuid.UUID]struct{}
}

func (b *backlog) push(ids []uuid.UUID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.in == nil {
		b.in = map[uuid.UUID]struct{}{}
	}
	for _, id := range ids {
		if _, ok := b.in[id]; ok || len(b.ids) >= maxBacklog {
			continue
		}
		b.in[id] = struct{}{}
		b.ids = append(b.ids, id)
	}
}

func (b *backlog) pop(n int) []uuid.UUID {
	b.mu.Lock()
	defer b.mu.Unlock()
	n = min(n, len(b.ids))
	out := append([]uuid.UUID(nil), b.ids[:n]...)
	b.ids = b.ids[n:]
	for _, id := range out {
		delete(b.in, id)
	}
	return out
}
