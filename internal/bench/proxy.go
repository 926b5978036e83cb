package bench

import (
	"net"
	"sync"
	"sync/atomic"
)

// countingProxy sits between the engine and PostgreSQL and counts round
// trips: a round trip begins each time a client sends after the server
// last spoke (pipelined messages and batches count once). It also counts
// bytes each way. It is used only for scenario 7, never while timing.
type countingProxy struct {
	ln       net.Listener
	target   string
	trips    atomic.Int64
	upBytes  atomic.Int64
	dnBytes  atomic.Int64
	conns    atomic.Int64
	wg       sync.WaitGroup
	mu       sync.Mutex
	open     map[net.Conn]struct{}
	isClosed atomic.Bool
}

func newCountingProxy(target string) (*countingProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &countingProxy{ln: ln, target: target, open: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func (p *countingProxy) addr() string { return p.ln.Addr().String() }

func (p *countingProxy) reset() {
	p.trips.Store(0)
	p.upBytes.Store(0)
	p.dnBytes.Store(0)
}

func (p *countingProxy) close() {
	p.isClosed.Store(true)
	p.ln.Close()
	p.mu.Lock()
	for c := range p.open {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *countingProxy) track(c net.Conn, add bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		p.open[c] = struct{}{}
	} else {
		delete(p.open, c)
	}
}

func (p *countingProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.conns.Add(1)
		p.track(c, true)
		p.track(s, true)
		var serverSpoke atomic.Bool
		serverSpoke.Store(true)
		p.wg.Add(2)
		go func() { // client → server
			defer p.wg.Done()
			defer s.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if serverSpoke.Swap(false) {
						p.trips.Add(1)
					}
					p.upBytes.Add(int64(n))
					if _, werr := s.Write(buf[:n]); werr != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			p.track(s, false)
		}()
		go func() { // server → client
			defer p.wg.Done()
			defer c.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := s.Read(buf)
				if n > 0 {
					serverSpoke.Store(true)
					p.dnBytes.Add(int64(n))
					if _, werr := c.Write(buf[:n]); werr != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			p.track(c, false)
		}()
	}
}
