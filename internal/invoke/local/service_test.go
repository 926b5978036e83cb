package local

import (
	"context"
	"errors"
	"testing"

	"github.com/taskerhq/tasker/internal/invoke/invoketest"
	"github.com/taskerhq/tasker/internal/service"
	"github.com/taskerhq/tasker/internal/service/servicetest"
	"github.com/taskerhq/tasker/sdk"
)

func TestService(t *testing.T) {
	t.Parallel()
	servicetest.Run(t, func(*testing.T) service.Service {
		return New(sdk.NewRegistry(), newCapture(), WithWorkers(4), WithLogger(quiet()))
	}, servicetest.Options{})
}

// New starts nothing: an invoker that was never started refuses work.
func TestNotStartedRefuses(t *testing.T) {
	t.Parallel()
	inv := New(sdk.NewRegistry(), newCapture(), WithLogger(quiet()))
	if err := inv.Invoke(context.Background(), invoketest.NewInvocation(t, "tasker.noop", 0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Invoke before Start = %v, want ErrClosed", err)
	}
	if err := inv.Close(context.Background()); err != nil {
		t.Fatalf("Close before Start: %v", err)
	}
}

// A restarted invoker runs invocations again.
func TestRestart(t *testing.T) {
	t.Parallel()
	inv, dest, _ := newInvoker(t)
	inv.Stop()
	if err := inv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := inv.Invoke(context.Background(), invoketest.NewInvocation(t, "test.ok", 0)); err != nil {
		t.Fatal(err)
	}
	if recs, err := dest.wait(context.Background(), 1); err != nil || len(recs) != 1 {
		t.Fatalf("records after restart: %d, %v", len(recs), err)
	}
}
