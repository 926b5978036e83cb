package engine

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskerhq/tasker/internal/service"
	"github.com/taskerhq/tasker/internal/service/servicetest"
)

type fakeSweeps struct{ heartbeats, sweeps atomic.Int64 }

func (f *fakeSweeps) Heartbeat(context.Context) error { f.heartbeats.Add(1); return nil }
func (f *fakeSweeps) Sweep(context.Context) (SweepReport, error) {
	f.sweeps.Add(1)
	return SweepReport{}, nil
}

func TestSweeperService(t *testing.T) {
	t.Parallel()
	servicetest.Run(t, func(*testing.T) service.Service {
		return newSweeper(&fakeSweeps{}, time.Millisecond, slog.New(slog.DiscardHandler))
	}, servicetest.Options{})
}

func TestSweeperSweepsAtStartAndEveryInterval(t *testing.T) {
	t.Parallel()
	f := &fakeSweeps{}
	s := newSweeper(f, time.Millisecond, slog.New(slog.DiscardHandler))
	if f.sweeps.Load() != 0 {
		t.Fatal("NewSweeper swept")
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.sweeps.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	s.Stop()
	n := f.sweeps.Load()
	if n < 3 || f.heartbeats.Load() < 3 {
		t.Fatalf("sweeps %d, heartbeats %d; want at least 3 each", n, f.heartbeats.Load())
	}
	time.Sleep(10 * time.Millisecond)
	if f.sweeps.Load() != n {
		t.Fatal("swept after Stop")
	}
}
