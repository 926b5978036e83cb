package service_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskerhq/tasker/internal/service"
	"github.com/taskerhq/tasker/internal/service/servicetest"
)

// ticker is a minimal service: one goroutine until Stop.
type ticker struct {
	service.Base
	runs atomic.Int64
}

func (s *ticker) Start(ctx context.Context) error {
	ctx, ok, started, stopped := s.StartInit(ctx)
	if !ok {
		return nil
	}
	s.runs.Add(1)
	go func() {
		defer stopped()
		started()
		<-ctx.Done()
	}()
	return nil
}

func TestBase(t *testing.T) {
	servicetest.Run(t, func(*testing.T) service.Service { return &ticker{} }, servicetest.Options{})
}

func TestStartTwiceRunsOnce(t *testing.T) {
	s := &ticker{}
	for range 3 {
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	<-s.Started()
	if n := s.runs.Load(); n != 1 {
		t.Fatalf("runs = %d, want 1", n)
	}
	s.Stop()
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if n := s.runs.Load(); n != 2 {
		t.Fatalf("runs after a restart = %d, want 2", n)
	}
}

// A service whose start context is cancelled ends by itself and can be
// started again without an explicit Stop.
func TestStartContextCancelled(t *testing.T) {
	s := &ticker{}
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	<-s.Started()
	stopping := s.Stopping()
	cancel()
	select {
	case <-stopping:
	case <-time.After(5 * time.Second):
		t.Fatal("service did not end with its context")
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if n := s.runs.Load(); n != 2 {
		t.Fatalf("runs = %d, want 2", n)
	}
}

type failing struct{ stopped bool }

func (f *failing) Start(context.Context) error { return errors.New("boom") }
func (f *failing) Stop()                       { f.stopped = true }

func TestGroupStopsStartedOnFailure(t *testing.T) {
	a := &ticker{}
	g := service.Group{a, &failing{}}
	if err := g.Start(context.Background()); err == nil {
		t.Fatal("Group.Start succeeded with a failing service")
	}
	if a.Stopping() != nil {
		t.Fatal("the started service is still running after the group failed to start")
	}
}
