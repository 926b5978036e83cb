package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"
)

// startTimeout bounds how long a server may take to answer.
const startTimeout = 15 * time.Second

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(bytes.TrimSpace(b.buf))
}

// Process is a server started by this package.
type Process struct {
	cmd    *exec.Cmd
	output *tailBuffer
	exited chan struct{}
	err    error // set when exited is closed
}

// Output returns the tail of the server's combined stdout and stderr.
func (p *Process) Output() string { return p.output.String() }

// start runs cmd, kills it in t.Cleanup and logs its output if the test
// failed. ready is polled until it returns nil, the process exits or
// startTimeout passes; a server that never becomes ready fails the test.
func start(t testing.TB, name string, cmd *exec.Cmd, ready func(ctx context.Context) error) (*Process, error) {
	t.Helper()
	p := &Process{cmd: cmd, output: &tailBuffer{max: 64 << 10}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.output, p.output
	setProcAttrs(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("testenv: %s output (tail):\n%s", name, p.Output())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	var lastErr error
	for {
		select {
		case <-p.exited:
			return nil, fmt.Errorf("%s exited before it was ready (%v):\n%s", name, p.err, p.Output())
		default:
		}
		attempt, cancelAttempt := context.WithTimeout(ctx, time.Second)
		lastErr = ready(attempt)
		cancelAttempt()
		if lastErr == nil {
			return p, nil
		}
		select {
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			return nil, fmt.Errorf("%s not ready after %v: %v\n%s", name, startTimeout, lastErr, p.Output())
		case <-p.exited:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// dialReady succeeds once something accepts TCP connections on addr.
func dialReady(addr string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
