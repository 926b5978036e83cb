package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"runtime"
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
	port, err := freePort()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return port
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
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
	p := newProcess(cmd)
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
	if err := p.waitReady(name, ready); err != nil {
		return nil, err
	}
	return p, nil
}

// startShared runs cmd for the rest of the test binary's life: no test
// owns it, and the kernel kills it when the test process exits (see
// setProcAttrs). It is killed at once if it never becomes ready.
func startShared(name string, cmd *exec.Cmd, ready func(ctx context.Context) error) (*Process, error) {
	p := newProcess(cmd)
	started := make(chan error, 1)
	go func() {
		// On Linux the parent-death signal fires when the thread that
		// started the child ends, not the process; a goroutine locked to
		// its thread for the server's whole life keeps that thread alive
		// until the process exits (the runtime ends a locked thread only
		// when its goroutine returns).
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.exited)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	if err := p.waitReady(name, ready); err != nil {
		_ = cmd.Process.Kill()
		<-p.exited
		return nil, err
	}
	return p, nil
}

func newProcess(cmd *exec.Cmd) *Process {
	p := &Process{cmd: cmd, output: &tailBuffer{max: 64 << 10}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.output, p.output
	setProcAttrs(cmd)
	return p
}

// waitReady polls ready until it returns nil, the process exits or
// startTimeout passes; then it kills the process.
func (p *Process) waitReady(name string, ready func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	var lastErr error
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited before it was ready (%v):\n%s", name, p.err, p.Output())
		default:
		}
		attempt, cancelAttempt := context.WithTimeout(ctx, time.Second)
		lastErr = ready(attempt)
		cancelAttempt()
		if lastErr == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			_ = p.cmd.Process.Kill()
			return fmt.Errorf("%s not ready after %v: %v\n%s", name, startTimeout, lastErr, p.Output())
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
