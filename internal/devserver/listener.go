package devserver

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// connLimiter is a listener that holds at most max connections open. At
// the limit, a new connection takes the place of the one that has waited
// longest without a request in progress (new, or idle between keep-alive
// requests): a flood of idle or slow connections cannot lock out the next
// caller, such as a health check. When every connection is serving a
// request, the new one is closed at once.
//
// The http.Server's ConnState hook must call track so the limiter knows
// which connections are serving requests.
type connLimiter struct {
	net.Listener
	max int

	mu    sync.Mutex
	conns map[*limitedConn]connState
}

type connState struct {
	state http.ConnState
	since time.Time
}

func newConnLimiter(ln net.Listener, max int) *connLimiter {
	return &connLimiter{Listener: ln, max: max, conns: make(map[*limitedConn]connState)}
}

// limitedConn leaves the limiter when it is closed, once.
type limitedConn struct {
	net.Conn
	l    *connLimiter
	once sync.Once
}

func (c *limitedConn) Close() error {
	c.once.Do(func() { c.l.forget(c) })
	return c.Conn.Close()
}

// Accept returns the next connection it admits.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		lc := &limitedConn{Conn: c, l: l}
		victim, ok := l.admit(lc)
		if victim != nil {
			_ = victim.Close()
		}
		if ok {
			return lc, nil
		}
		_ = c.Close()
	}
}

// admit registers c, choosing a connection to close when at the limit; ok
// is false when none can make room.
func (l *connLimiter) admit(c *limitedConn) (victim *limitedConn, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.conns) >= l.max {
		var oldest time.Time
		for vc, st := range l.conns {
			if st.state != http.StateActive && (victim == nil || st.since.Before(oldest)) {
				victim, oldest = vc, st.since
			}
		}
		if victim == nil {
			return nil, false
		}
		delete(l.conns, victim)
	}
	l.conns[c] = connState{state: http.StateNew, since: time.Now()}
	return victim, true
}

func (l *connLimiter) forget(c *limitedConn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// track is the http.Server's ConnState hook.
func (l *connLimiter) track(c net.Conn, state http.ConnState) {
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, open := l.conns[lc]; !open {
		return
	}
	switch state {
	case http.StateClosed, http.StateHijacked:
		delete(l.conns, lc)
	default:
		l.conns[lc] = connState{state: state, since: time.Now()}
	}
}

// open is the number of connections held.
func (l *connLimiter) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}
