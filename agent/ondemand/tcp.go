package ondemand

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/rouse-dev/rouse/wire"
)

// serveTCP accepts connections until ctx ends, then closes the listener
// and every connection and waits for their goroutines.
func (f *Front) serveTCP(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { f.ln.Close() })
	defer stop()
	var conns sync.WaitGroup
	defer conns.Wait()
	var delay time.Duration // after a temporary accept error (too many open files)
	for {
		c, err := f.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if temporary(err) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				f.log.Warn("on-demand accept failed, retrying", "err", err, "in", delay)
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(delay):
				}
				continue
			}
			f.ln.Close()
			return fmt.Errorf("ondemand: %s: accepting on %s: %w", f.o.Name, f.o.Listen, err)
		}
		delay = 0
		conns.Go(func() { f.serveConn(ctx, c) })
	}
}

// temporary reports whether an accept error passes (out of file
// descriptors, a connection aborted before accept), as net/http judges it.
func temporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// serveConn holds c until the chain is ready, then splices it to the
// upstream. It closes c when the chain fails, the hold runs out, or the
// Front stops.
func (f *Front) serveConn(ctx context.Context, c net.Conn) {
	f.begin()
	defer f.end()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()

	v := wire.Chain{State: wire.ChainReady}
	if !f.ready.Load() {
		v = f.chains.Chain(f.o.Name)
	}
	up, ok := f.upstreamFor(ctx, v)
	if !ok {
		return
	}
	stopUp := context.AfterFunc(ctx, func() { up.Close() })
	defer stopUp()
	defer up.Close()
	splice(c, up)
}

// upstreamFor waits for the chain when it is not ready and dials the
// upstream. When the dial fails because the chain stopped meanwhile, it
// waits for the chain once more.
func (f *Front) upstreamFor(ctx context.Context, v wire.Chain) (net.Conn, bool) {
	for try := 0; ; try++ {
		if !f.readyFor(v) {
			f.demand(v, "tcp")
			if !f.acquire() {
				f.log.Warn("on-demand connection refused: too many waiting", "max_held", f.o.MaxHeld)
				return nil, false
			}
			var out outcome
			v, out = f.await(ctx, v)
			f.release()
			switch out {
			case outFailed:
				f.log.Info("on-demand connection closed: chain failed", "reason", failure(v))
				return nil, false
			case outTimeout:
				f.log.Info("on-demand connection held too long", "hold", f.holdFor(v), "state", v.State)
				return nil, false
			case outGone:
				return nil, false
			}
		}
		up, err := f.dial(ctx)
		if err == nil {
			return up, true
		}
		if ctx.Err() != nil {
			return nil, false
		}
		if v = f.chains.Chain(f.o.Name); try > 0 || v.State == wire.ChainReady {
			f.log.Warn("on-demand upstream unreachable", "upstream", f.o.Upstream, "err", err)
			return nil, false
		}
	}
}

// splice copies both ways until both sides are done. When one side ends
// its writing (EOF), the other side's writing half is closed, so a client
// that half-closes still gets the rest of the answer. An error on either
// side closes both.
func splice(a, b net.Conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		pipe(b, a)
	}()
	pipe(a, b)
	<-done
}

// pipe copies from src to dst, then closes dst's writing half (or, when it
// cannot, or the copy failed, both connections).
func pipe(dst, src net.Conn) {
	_, err := io.Copy(dst, src)
	if cw, ok := dst.(interface{ CloseWrite() error }); ok && err == nil {
		if cw.CloseWrite() == nil {
			return
		}
	}
	dst.Close()
	src.Close()
}
