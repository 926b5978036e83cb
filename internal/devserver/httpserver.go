package devserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/taskerhq/tasker/internal/service"
)

// httpStopTimeout bounds how long Stop lets in-flight requests finish;
// Shutdown takes the bound from its caller instead.
const httpStopTimeout = 5 * time.Second

// HTTPServer serves a handler with the local limits as a service
// (docs/architecture.md, "Services"). It is built on a listener that is
// already bound, because the API's allowed hosts name the bound address
// (":0" picks a port) before the server starts; binding opens a socket
// and starts no goroutine. Start serves; Stop closes the listener and lets
// in-flight requests finish (bounded). A restart binds the same address
// again.
type HTTPServer struct {
	service.Base
	handler http.Handler
	limits  HTTPLimits
	log     *slog.Logger
	addr    string // as bound

	mu  sync.Mutex
	ln  net.Listener // bound and not yet served
	srv *http.Server // the last one started
}

var _ service.Service = (*HTTPServer)(nil)

// NewHTTPServer returns the server for h on ln, which it owns. It starts
// nothing.
func NewHTTPServer(ln net.Listener, h http.Handler, lim HTTPLimits, log *slog.Logger) *HTTPServer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &HTTPServer{ln: ln, addr: ln.Addr().String(), handler: h, limits: lim.withDefaults(), log: log}
}

// Start serves until Stop or until ctx ends.
func (s *HTTPServer) Start(ctx context.Context) error {
	ctx, ok, started, stopped := s.StartInit(ctx)
	if !ok {
		return nil
	}
	s.mu.Lock()
	ln := s.ln
	s.ln = nil
	s.mu.Unlock()
	if ln == nil { // a restart: the last Stop closed the listener
		var err error
		if ln, err = net.Listen("tcp", s.addr); err != nil {
			stopped()
			s.Base.Stop()
			return fmt.Errorf("listen on %s: %w", s.addr, err)
		}
	}
	srv, cl := newHTTPServer(s.handler, ln, s.limits, s.log)
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(cl); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped", "error", err)
		}
	}()
	started()
	go func() {
		defer stopped()
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), httpStopTimeout)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			_ = srv.Close()
		}
		<-served
	}()
	return nil
}

// Stop stops serving; a listener never served is closed.
func (s *HTTPServer) Stop() {
	s.Base.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		_ = s.ln.Close()
		s.ln = nil
	}
}

// Shutdown stops accepting connections and waits, bounded by ctx, for
// in-flight requests; then it stops the service.
func (s *HTTPServer) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	var err error
	if srv != nil && s.Stopping() != nil {
		err = srv.Shutdown(ctx)
	}
	s.Stop()
	return err
}

// Addr is the address the server listens on.
func (s *HTTPServer) Addr() string { return s.addr }

// Limits are the limits the server runs with.
func (s *HTTPServer) Limits() HTTPLimits { return s.limits }
