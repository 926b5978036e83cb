package local

import (
	"context"
	"sync"

	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/service"
)

// Handler handles a batch of messages and returns the IDs of those that
// failed (see Consume).
type Handler func(ctx context.Context, msgs []engine.InMessage) (failedIDs []string)

// Consumers is the service running n Consume loops over a queue: local
// mode's stand-in for the SQS event source mapping that invokes the
// scheduler function (docs/architecture.md, "Services").
type Consumers struct {
	service.Base
	q        *Queue
	n        int
	maxBatch int
	handle   Handler
}

var _ service.Service = (*Consumers)(nil)

// NewConsumers returns the service that runs n (at least 1) Consume loops
// of batches of up to maxBatch messages. It starts nothing.
func NewConsumers(q *Queue, n, maxBatch int, handle Handler) *Consumers {
	return &Consumers{q: q, n: max(n, 1), maxBatch: maxBatch, handle: handle}
}

// Start starts the loops; they run until Stop or until ctx ends. A batch
// being handled when Stop is called sees its context cancelled and is
// settled as the handler reports.
func (c *Consumers) Start(ctx context.Context) error {
	ctx, ok, started, stopped := c.StartInit(ctx)
	if !ok {
		return nil
	}
	var wg sync.WaitGroup
	wg.Add(c.n)
	for range c.n {
		go func() {
			defer wg.Done()
			c.q.Consume(ctx, c.maxBatch, c.handle)
		}()
	}
	started()
	go func() {
		wg.Wait()
		stopped()
	}()
	return nil
}
