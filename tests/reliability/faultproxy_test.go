//go:build linux

package reliability

import (
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
)

// Fault modes of the proxy.
const (
	modePass      = "pass"
	modeLatency   = "latency"   // each chunk delayed by latency ± jitter
	modeReset     = "reset"     // accept, then RST
	modeSlowClose = "slowclose" // forward, then hold the client side open a while after the server closed
	modeBlackhole = "blackhole" // accept, read, never answer
	modeBandwidth = "bandwidth" // server→client limited to bytesPerSec
)

// faultProxy is a TCP proxy on 127.0.0.1 in front of target whose mode
// can change at any time (new connections take the new mode). It records
// when each connection was accepted.
type faultProxy struct {
	l      net.Listener
	target string

	mu          sync.Mutex
	mode        string
	latency     time.Duration
	jitter      time.Duration
	slowClose   time.Duration
	bytesPerSec int
	accepted    []time.Time
	conns       map[net.Conn]bool
	closed      bool
	wg          sync.WaitGroup
}

func newFaultProxy(t *testing.T, target string) *faultProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{l: l, target: target, mode: modePass, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *faultProxy) Addr() string { return p.l.Addr().String() }

// set changes the fault and ends every open connection: a mode is taken
// per connection, so a kept-alive connection from before would otherwise
// go on under the old one (the blackhole test once got its answer through
// the previous phase's connection).
func (p *faultProxy) set(f func(p *faultProxy)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
	for c := range p.conns {
		c.Close()
	}
}

func (p *faultProxy) acceptedSince(t0 time.Time) []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []time.Time
	for _, at := range p.accepted {
		if !at.Before(t0) {
			out = append(out, at)
		}
	}
	return out
}

func (p *faultProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = true
	return true
}

func (p *faultProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

// close stops accepting, ends every connection and waits for the copies.
func (p *faultProxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.l.Close()
	p.wg.Wait()
}

func (p *faultProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.accepted = append(p.accepted, time.Now())
		p.mu.Unlock()
		if !p.track(c) {
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(c)
		}()
	}
}

func (p *faultProxy) handle(c net.Conn) {
	defer p.untrack(c)
	p.mu.Lock()
	mode, lat, jit, slow, bps := p.mode, p.latency, p.jitter, p.slowClose, p.bytesPerSec
	p.mu.Unlock()
	switch mode {
	case modeReset:
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		return
	case modeBlackhole:
		_, _ = io.Copy(io.Discard, c)
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	if !p.track(up) {
		return
	}
	defer p.untrack(up)
	delay := func() {
		if mode == modeLatency {
			d := lat
			if jit > 0 {
				d += time.Duration(rand.Int64N(int64(2*jit))) - jit
			}
			time.Sleep(d)
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // client → server
		defer wg.Done()
		buf := make([]byte, 32<<10)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				delay()
				if _, werr := up.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		if tc, ok := up.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	// server → client
	chunk := 32 << 10
	if mode == modeBandwidth && bps > 0 {
		chunk = max(1, bps/20) // 20 chunks a second
	}
	buf := make([]byte, chunk)
	for {
		n, err := up.Read(buf)
		if n > 0 {
			delay()
			if mode == modeBandwidth && bps > 0 {
				time.Sleep(time.Duration(n) * time.Second / time.Duration(bps))
			}
			if _, werr := c.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	if mode == modeSlowClose {
		time.Sleep(slow)
	}
	c.Close()
	up.Close()
	wg.Wait()
}
