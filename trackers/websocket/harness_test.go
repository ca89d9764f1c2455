package websocket

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"io"
	"net"
	nethttp "net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	ws "github.com/coder/websocket"
)

// pipeNet is an in-memory network for synctest bubbles: dials become
// net.Pipe pairs handed to an http.Server, and the server can go down
// (dials refused) and up again.
type pipeNet struct {
	mu       sync.Mutex
	ln       *pipeListener
	srv      *nethttp.Server
	served   sync.WaitGroup
	handler  nethttp.Handler
	dials    int
	dialAt   []time.Time
	accepted chan *sconn
	conns    []*sconn
	halfOpen atomic.Bool
	// serve, when set, handles each accepted stream (in a goroutine the
	// network owns) instead of handing it to accepted.
	serve func(*sconn)
}

type sconn struct {
	c    *ws.Conn
	raw  net.Conn // half-open conns: handshake done, then only drained
	path string
	sub  string
}

type pipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// newPipeNet starts a stream server whose accepted connections (after the
// subscribe message is read) arrive on accepted. With reads set, each
// server conn answers pings; otherwise it is half-open.
func newPipeNet(t *testing.T) *pipeNet {
	p := &pipeNet{accepted: make(chan *sconn, 256)}
	p.handler = nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		if p.halfOpen.Load() {
			p.acceptHalfOpen(w, r)
			return
		}
		c, err := ws.Accept(w, r, nil)
		if err != nil {
			return
		}
		_, sub, err := c.Read(context.Background())
		if err != nil {
			c.CloseNow()
			return
		}
		sc := &sconn{c: c, path: r.URL.Path, sub: string(sub)}
		p.mu.Lock()
		p.conns = append(p.conns, sc)
		serve := p.serve
		p.mu.Unlock()
		if serve != nil {
			p.served.Go(func() { serve(sc) })
			return
		}
		p.accepted <- sc
	})
	p.up()
	t.Cleanup(p.shutdown)
	return p
}

func (p *pipeNet) up() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		return
	}
	p.ln = &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
	p.srv = &nethttp.Server{Handler: p.handler}
	srv, ln := p.srv, p.ln
	p.served.Go(func() { _ = srv.Serve(ln) })
}

// down refuses new dials and drops every live stream abruptly.
func (p *pipeNet) down() {
	p.mu.Lock()
	srv := p.srv
	p.ln, p.srv = nil, nil
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
	for _, c := range conns {
		if c.raw != nil {
			c.raw.Close()
		} else {
			c.c.CloseNow()
		}
	}
	p.served.Wait()
}

func (p *pipeNet) shutdown() { p.down() }

func (p *pipeNet) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	p.mu.Lock()
	p.dials++
	p.dialAt = append(p.dialAt, time.Now())
	ln := p.ln
	p.mu.Unlock()
	if ln == nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	}
	a, b := net.Pipe()
	select {
	case ln.conns <- b:
		return a, nil
	case <-ln.closed:
	case <-ctx.Done():
	}
	a.Close()
	b.Close()
	return nil, errors.New("dial: server went away")
}

// client is an http.Client that dials this network. Call
// CloseIdleConnections when done.
func (p *pipeNet) client() *nethttp.Client {
	return &nethttp.Client{Transport: &nethttp.Transport{DialContext: p.dial}}
}

// pong makes a server conn answer pings (and notice the client closing).
func (s *sconn) pong() { s.c.CloseRead(context.Background()) }

// acceptHalfOpen completes the handshake by hand and then only drains the
// socket: like a peer that vanished behind a NAT, it never answers a ping
// and never pushes back on writes (a real socket buffers them).
func (p *pipeNet) acceptHalfOpen(w nethttp.ResponseWriter, r *nethttp.Request) {
	key := r.Header.Get("Sec-WebSocket-Key")
	h := sha1.New()
	io.WriteString(h, key+"258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
	conn, brw, err := w.(nethttp.Hijacker).Hijack()
	if err != nil {
		return
	}
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(h.Sum(nil)) + "\r\n\r\n")
	brw.Flush()
	sc := &sconn{raw: conn, path: r.URL.Path}
	p.mu.Lock()
	p.conns = append(p.conns, sc)
	p.mu.Unlock()
	p.accepted <- sc
	p.served.Go(func() { _, _ = io.Copy(io.Discard, brw) })
}
