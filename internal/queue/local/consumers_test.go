package local

import (
	"context"
	"testing"
	"time"

	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/service"
	"github.com/taskerhq/tasker/internal/service/servicetest"
)

func TestConsumersService(t *testing.T) {
	t.Parallel()
	servicetest.Run(t, func(*testing.T) service.Service {
		return NewConsumers(New(), 3, 10, func(context.Context, []engine.InMessage) []string { return nil })
	}, servicetest.Options{})
}

func TestConsumersDeliver(t *testing.T) {
	t.Parallel()
	q := New()
	got := make(chan string, 1)
	c := NewConsumers(q, 2, 10, func(_ context.Context, msgs []engine.InMessage) []string {
		for _, m := range msgs {
			got <- string(m.Body)
		}
		return nil
	})
	if err := q.Send(context.Background(), []engine.Message{{Body: []byte(`"before start"`)}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	select {
	case b := <-got:
		if b != `"before start"` {
			t.Fatalf("body %s", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no delivery after Start")
	}
}
