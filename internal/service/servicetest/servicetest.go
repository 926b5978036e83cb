// Package servicetest checks that a service.Service keeps the contract of
// docs/architecture.md, "Services": idempotent Start and Stop, Stop without
// Start, and Start and Stop called concurrently many times (run it with
// -race).
package servicetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/taskerhq/tasker/internal/service"
)

// Options adjust the checks.
type Options struct {
	// Rounds is how many Start/Stop rounds each goroutine makes (50).
	Rounds int
}

// Run checks the contract on fresh services built by newService, one per
// check.
func Run(t *testing.T, newService func(t *testing.T) service.Service, opts Options) {
	t.Helper()
	if opts.Rounds <= 0 {
		opts.Rounds = 50
	}
	t.Run("StopWithoutStart", func(t *testing.T) {
		s := newService(t)
		done := make(chan struct{})
		go func() { s.Stop(); s.Stop(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Stop without Start blocked")
		}
	})
	t.Run("Idempotent", func(t *testing.T) {
		s := newService(t)
		ctx := context.Background()
		if err := s.Start(ctx); err != nil {
			t.Fatalf("Start: %v", err)
		}
		if err := s.Start(ctx); err != nil {
			t.Fatalf("second Start: %v", err)
		}
		s.Stop()
		s.Stop()
		if err := s.Start(ctx); err != nil {
			t.Fatalf("Start after Stop: %v", err)
		}
		s.Stop()
	})
	t.Run("StartedChannel", func(t *testing.T) {
		s := newService(t)
		st, ok := s.(interface{ Started() <-chan struct{} })
		if !ok {
			t.Skip("no Started channel")
		}
		if err := s.Start(context.Background()); err != nil {
			t.Fatalf("Start: %v", err)
		}
		defer s.Stop()
		select {
		case <-st.Started():
		case <-time.After(5 * time.Second):
			t.Fatal("Started not closed after Start")
		}
	})
	t.Run("Stress", func(t *testing.T) {
		s := newService(t)
		ctx := context.Background()
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range opts.Rounds {
					if err := s.Start(ctx); err != nil {
						t.Errorf("Start: %v", err)
						return
					}
					s.Stop()
				}
			}()
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Fatal("concurrent Start/Stop did not finish")
		}
		s.Stop()
	})
}
