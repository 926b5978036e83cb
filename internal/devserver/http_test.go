package devserver_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskerhq/tasker/internal/devserver"
	"github.com/taskerhq/tasker/internal/examples"
	"github.com/taskerhq/tasker/internal/pgtest"
	"github.com/taskerhq/tasker/sdk"
	"github.com/taskerhq/tasker/templates"
)

// listen starts a local server on a loopback port with the given limits.
func listen(t *testing.T, lim devserver.HTTPLimits) *devserver.Server {
	t.Helper()
	reg := sdk.NewRegistry()
	if err := examples.Register(reg); err != nil {
		t.Fatal(err)
	}
	srv, err := devserver.Start(context.Background(), devserver.Options{
		DatabaseURL: pgtest.URL(t), Templates: templates.FS, Registry: reg,
		Addr: "127.0.0.1:0", HTTP: lim, Consumers: 1, Workers: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return srv
}

// live checks that GET /v1/health/live answers 200 within a second on a
// new connection.
func live(t *testing.T, addr string) time.Duration {
	t.Helper()
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	start := time.Now()
	resp, err := c.Get("http://" + addr + "/v1/health/live")
	if err != nil {
		t.Fatalf("health/live: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("health/live = %d", resp.StatusCode)
	}
	return time.Since(start)
}

// closedWithin reports whether the server closes conn within d while
// send trickles bytes into it.
func closedWithin(conn net.Conn, d time.Duration, send func(i int) string) bool {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(io.Discard, conn) // returns when the server closes
	}()
	deadline := time.After(d)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-done:
			return true
		case <-deadline:
			return false
		case <-tick.C:
			_, _ = conn.Write([]byte(send(i)))
		}
	}
}

// Slow clients are cut off: trickled headers by ReadHeaderTimeout, a
// trickled body by ReadTimeout.
func TestSlowClientsAreClosed(t *testing.T) {
	t.Parallel()
	srv := listen(t, devserver.HTTPLimits{ReadHeaderTimeout: time.Second, ReadTimeout: 2 * time.Second})
	tests := []struct {
		name   string
		opener string
		send   func(i int) string
		within time.Duration
	}{
		{name: "slowloris headers", opener: "GET /v1/health/live HTTP/1.1\r\nHost: " + srv.Addr + "\r\n",
			send: func(i int) string { return fmt.Sprintf("X-Slow-%d: x\r\n", i) }, within: 4 * time.Second},
		{name: "silent connection", opener: "", send: func(int) string { return "" }, within: 4 * time.Second},
		{name: "trickled body", opener: "POST /v1/tasks HTTP/1.1\r\nHost: " + srv.Addr +
			"\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{",
			send: func(int) string { return " " }, within: 5 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			conn, err := net.Dial("tcp", srv.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write([]byte(tc.opener)); err != nil {
				t.Fatal(err)
			}
			if !closedWithin(conn, tc.within, tc.send) {
				t.Fatalf("the server kept the connection open for %s", tc.within)
			}
			live(t, srv.Addr)
		})
	}
}

// A flood of idle connections, more than the connection cap, leaves
// /v1/health/live answering within a second: the oldest idle connections
// make room. Some have made a request and idle between keep-alive
// requests; the others never sent a byte.
func TestIdleConnectionFlood(t *testing.T) {
	t.Parallel()
	const maxConns, flood, used = 256, 2000, 100
	srv := listen(t, devserver.HTTPLimits{MaxConns: maxConns})
	var conns []net.Conn
	var mu sync.Mutex
	t.Cleanup(func() {
		for _, c := range conns {
			_ = c.Close()
		}
	})
	var wg sync.WaitGroup
	errs := make(chan error, flood)
	for i := range flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", srv.Addr, 5*time.Second)
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			if i < used { // one keep-alive request, then idle
				fmt.Fprintf(c, "GET /v1/health/live HTTP/1.1\r\nHost: %s\r\n\r\n", srv.Addr)
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					errs <- fmt.Errorf("keep-alive request: %w", err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		// The server may close flood connections as it makes room.
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !strings.Contains(err.Error(), "reset") {
			t.Fatal(err)
		}
	}
	var slowest time.Duration
	for range 5 {
		slowest = max(slowest, live(t, srv.Addr))
	}
	// The server holds no more than the cap: the rest were closed.
	var open sync.WaitGroup
	var mu2 sync.Mutex
	held := 0
	for _, c := range conns {
		open.Add(1)
		go func() {
			defer open.Done()
			_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			_, err := c.Read(make([]byte, 1))
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				mu2.Lock()
				held++
				mu2.Unlock()
			}
		}()
	}
	open.Wait()
	t.Logf("%d idle connections against a cap of %d: %d still held, health/live answered in at most %s", flood, maxConns, held, slowest)
	if held > maxConns {
		t.Errorf("the server holds %d connections, cap %d", held, maxConns)
	}
	if slowest > time.Second {
		t.Fatalf("health/live took %s", slowest)
	}
}

// The default limits are set on the real server.
func TestDefaultLimits(t *testing.T) {
	t.Parallel()
	srv := listen(t, devserver.HTTPLimits{})
	got := srv.HTTPLimits()
	for name, v := range map[string]time.Duration{
		"ReadHeaderTimeout": got.ReadHeaderTimeout, "ReadTimeout": got.ReadTimeout,
		"WriteTimeout": got.WriteTimeout, "IdleTimeout": got.IdleTimeout,
	} {
		if v <= 0 || v > time.Minute {
			t.Errorf("%s = %s", name, v)
		}
	}
	if got.MaxConns <= 0 || got.MaxHeaderBytes <= 0 {
		t.Errorf("limits = %+v", got)
	}
	live(t, srv.Addr)
}
