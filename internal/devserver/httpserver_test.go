package devserver

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/taskerhq/tasker/internal/service"
	"github.com/taskerhq/tasker/internal/service/servicetest"
)

func listenLocal(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func TestHTTPServerService(t *testing.T) {
	t.Parallel()
	servicetest.Run(t, func(t *testing.T) service.Service {
		return NewHTTPServer(listenLocal(t), http.NotFoundHandler(), HTTPLimits{}, nil)
	}, servicetest.Options{Rounds: 20})
}

// A restarted server listens on the same address again.
func TestHTTPServerRestart(t *testing.T) {
	t.Parallel()
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	s := NewHTTPServer(listenLocal(t), ok, HTTPLimits{}, nil)
	get := func() {
		t.Helper()
		res, err := http.Get("http://" + s.Addr() + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		if string(b) != "ok" {
			t.Fatalf("body %q", b)
		}
	}
	for range 2 {
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		get()
		s.Stop()
		if _, err := http.Get("http://" + s.Addr() + "/"); err == nil {
			t.Fatal("served after Stop")
		}
	}
}
