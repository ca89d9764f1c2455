package ondemand

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rouse-dev/rouse/wire"
)

// echoServer is a real TCP service that answers only after the client
// half-closed: it reads everything, then writes it back and closes.
func echoServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				b, err := io.ReadAll(c)
				if err != nil {
					return
				}
				_, _ = c.Write(append([]byte("echo: "), b...))
			})
		}
	})
	return ln.Addr().String()
}

func dialFront(t *testing.T, f *Front) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", f.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

func TestTCP(t *testing.T) {
	t.Run("HeldUntilReadyThenSplicedWithHalfClose", func(t *testing.T) {
		c := newFake("cache", wire.ChainIdle, comps()...)
		f := runFront(t, Options{Name: "cache", Upstream: echoServer(t), Mode: ModeTCP}, c)
		conn := dialFront(t, f)
		msg := bytes.Repeat([]byte("0123456789"), 100000) // 1 MB, both ways
		wrote := make(chan error, 1)
		go func() {
			_, err := conn.Write(msg)
			if err == nil {
				err = conn.CloseWrite() // the echo answers only after this EOF
			}
			wrote <- err
		}()
		c.waitWatches(t, 1)
		if d, _ := c.counts(); d != 1 {
			t.Fatalf("%d demands, want 1", d)
		}
		c.setState(wire.ChainReady, "")
		got, err := io.ReadAll(conn)
		if err != nil {
			t.Fatal(err)
		}
		if err := <-wrote; err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, append([]byte("echo: "), msg...)) {
			t.Errorf("got %d bytes back, want %d", len(got), len("echo: ")+len(msg))
		}
	})

	t.Run("ClosedWhenTheChainFails", func(t *testing.T) {
		c := newFake("cache", wire.ChainIdle, comps()...)
		f := runFront(t, Options{Name: "cache", Upstream: echoServer(t), Mode: ModeTCP}, c)
		conn := dialFront(t, f)
		c.waitWatches(t, 1)
		c.setState(wire.ChainFailed, "db: exited with status 1")
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(conn)
		if err != nil || len(b) != 0 {
			t.Errorf("got %q, %v; want a clean close with nothing sent", b, err)
		}
	})

	t.Run("TooManyWaitingAreClosed", func(t *testing.T) {
		c := newFake("cache", wire.ChainIdle, comps()...)
		f := runFront(t, Options{Name: "cache", Upstream: echoServer(t), Mode: ModeTCP, MaxHeld: 1}, c)
		first := dialFront(t, f)
		c.waitWatches(t, 1)
		second := dialFront(t, f)
		_ = second.SetReadDeadline(time.Now().Add(10 * time.Second))
		if b, err := io.ReadAll(second); err != nil || len(b) != 0 {
			t.Errorf("second connection beyond the cap: %q %v, want closed", b, err)
		}
		c.setState(wire.ChainReady, "")
		_, _ = first.Write([]byte("still here"))
		_ = first.CloseWrite()
		if b, _ := io.ReadAll(first); string(b) != "echo: still here" {
			t.Errorf("first connection got %q", b)
		}
	})

	t.Run("ListenErrorIsReturned", func(t *testing.T) {
		taken, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer taken.Close()
		f, err := New(Options{Name: "cache", Listen: taken.Addr().String(), Upstream: "127.0.0.1:1", Mode: ModeTCP}, newFake("cache", wire.ChainIdle), testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		err = f.Run(t.Context())
		if err == nil || !strings.Contains(err.Error(), "listen on "+taken.Addr().String()) || !strings.Contains(err.Error(), "address already in use") {
			t.Errorf("Run on a taken port: %v", err)
		}
	})
}

func TestNewRefusesBadOptions(t *testing.T) {
	good := Options{Name: "blog", Listen: "127.0.0.1:8080", Upstream: "127.0.0.1:9002"}
	for _, c := range []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"NoName", func(o *Options) { o.Name = "" }, "no component name"},
		{"BadMode", func(o *Options) { o.Mode = "udp" }, `mode "udp"`},
		{"BadListen", func(o *Options) { o.Listen = "8080" }, `listen address "8080"`},
		{"UpstreamWithoutPort", func(o *Options) { o.Upstream = "127.0.0.1" }, `upstream "127.0.0.1"`},
		{"UpstreamWithoutHost", func(o *Options) { o.Upstream = ":9002" }, "missing host or port"},
		{"NegativeIdle", func(o *Options) { o.IdleStop = -time.Second }, "idle_stop -1s is negative"},
		{"NegativeHold", func(o *Options) { o.Hold = -time.Second }, "hold -1s is negative"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := good
			c.edit(&o)
			_, err := New(o, newFake("blog", wire.ChainIdle), nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error with %q", err, c.want)
			}
		})
	}
	f, err := New(good, newFake("blog", wire.ChainIdle), nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.o.Mode != ModeHTTP || f.o.Hold != DefaultHold || f.o.MaxHeld != DefaultMaxHeld {
		t.Errorf("defaults: %+v", f.o)
	}
}

// heldUntilClosed connects to a Front on ln whose chain never becomes
// ready, checks the Front closes the connection with nothing sent, and
// returns how long it was held.
func heldUntilClosed(t *testing.T, ln *pipeListener) time.Duration {
	t.Helper()
	conn, err := ln.Dial(t.Context(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	n, err := conn.Read(make([]byte, 1))
	if n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("read %d, %v; want the connection closed", n, err)
	}
	return time.Since(start)
}

// idleStopsAfter lets d pass in the bubble, once everything settled, and
// returns how many idle stops the chain has had.
func idleStopsAfter(c *fakeChains, d time.Duration) int {
	time.Sleep(d)
	synctest.Wait()
	_, s := c.counts()
	return s
}

// stopsOnceAfter checks that c gets its one idle stop exactly idle after
// now, when since (its start, its return to ready) began its quiet period.
func stopsOnceAfter(t *testing.T, c *fakeChains, idle time.Duration, since string) {
	t.Helper()
	if s := idleStopsAfter(c, idle-time.Nanosecond); s != 0 {
		t.Fatalf("stopped before idle_stop after %s", since)
	}
	if s := idleStopsAfter(c, time.Nanosecond); s != 1 {
		t.Fatalf("%d idle stops, want 1", s)
	}
}

// pipeEcho answers like echoServer, on a net.Pipe (which cannot
// half-close: it echoes each read at once).
func pipeEcho(c net.Conn) {
	defer c.Close()
	_, _ = io.Copy(c, c)
}

func TestTCPHoldRunsOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newFake("cache", wire.ChainIdle, comps()...)
		_, ln, stop := pipeFront(t, Options{Name: "cache", Upstream: "127.0.0.1:9", Mode: ModeTCP, Hold: 90 * time.Second}, c, pipeEcho)
		defer stop()
		if held := heldUntilClosed(t, ln); held != 90*time.Second {
			t.Errorf("held %s, want the hold, 1m30s", held)
		}
	})
}

func TestIdleStop(t *testing.T) {
	ping := func(t *testing.T, conn net.Conn) {
		t.Helper()
		if _, err := conn.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 4)
		if _, err := io.ReadFull(conn, b); err != nil || string(b) != "ping" {
			t.Fatalf("echo: %q %v", b, err)
		}
	}
	t.Run("StopsOnceAfterTheLastConnectionAndStartsAgain", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c := newFake("cache", wire.ChainIdle, comps()...)
			_, ln, stop := pipeFront(t, Options{Name: "cache", Upstream: "127.0.0.1:9", Mode: ModeTCP, IdleStop: 30 * time.Minute}, c, pipeEcho)
			defer stop()
			c.onDemand = func(c *fakeChains) {
				now := time.Now()
				c.update(func(v *wire.Chain) { v.State, v.StartedAt = wire.ChainReady, &now })
			}
			conn, _ := ln.Dial(t.Context(), "", "")
			ping(t, conn)
			if s := idleStopsAfter(c, 2*time.Hour); s != 0 { // an open connection is activity, however quiet
				t.Fatalf("stopped %d times with a connection open", s)
			}
			conn.Close()
			synctest.Wait()
			if s := idleStopsAfter(c, 30*time.Minute-time.Nanosecond); s != 0 {
				t.Fatalf("stopped before idle_stop passed")
			}
			if s := idleStopsAfter(c, time.Nanosecond); s != 1 {
				t.Fatalf("%d idle stops at idle_stop, want 1", s)
			}
			if s := idleStopsAfter(c, 5*time.Hour); s != 1 {
				t.Fatalf("%d idle stops after a long quiet, want still 1", s)
			}
			conn, _ = ln.Dial(t.Context(), "", "")
			ping(t, conn)
			if d, _ := c.counts(); d != 2 {
				t.Errorf("%d demands, want the next connection to demand again (2)", d)
			}
			conn.Close()
			synctest.Wait()
			if s := idleStopsAfter(c, 30*time.Minute); s != 2 {
				t.Errorf("%d idle stops after the second quiet period, want 2", s)
			}
		})
	})
	t.Run("AChainStartedElsewhereIsStoppedWhenUnused", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c := newFake("cache", wire.ChainIdle, comps()...)
			_, _, stop := pipeFront(t, Options{Name: "cache", Upstream: "127.0.0.1:9", Mode: ModeTCP, IdleStop: 10 * time.Minute}, c, pipeEcho)
			defer stop()
			if s := idleStopsAfter(c, time.Hour); s != 0 { // idle and nothing to stop
				t.Fatalf("an idle chain was stopped %d times", s)
			}
			now := time.Now()
			c.update(func(v *wire.Chain) { v.State, v.StartedAt, v.Trigger = wire.ChainReady, &now, "manual" })
			synctest.Wait()
			stopsOnceAfter(t, c, 10*time.Minute, "its start")
		})
	})
	t.Run("NotWhileItStartsAndCountedFromReady", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c := newFake("cache", wire.ChainIdle, comps()...)
			_, ln, stop := pipeFront(t, Options{Name: "cache", Upstream: "127.0.0.1:9", Mode: ModeTCP, IdleStop: 10 * time.Minute, Hold: time.Second}, c, pipeEcho)
			defer stop()
			// A client demands a slow start and goes away (the hold
			// runs out); a waiting page would be watching without
			// activity.
			conn, _ := ln.Dial(t.Context(), "", "")
			_, _ = conn.Read(make([]byte, 1))
			conn.Close()
			if s := idleStopsAfter(c, 3*time.Hour); s != 0 {
				t.Fatalf("stopped %d times while starting", s)
			}
			c.setState(wire.ChainReady, "")
			synctest.Wait()
			stopsOnceAfter(t, c, 10*time.Minute, "it became ready")
		})
	})
	t.Run("NotWhileItWaitsForADependency", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c := newFake("cache", wire.ChainIdle, comps()...)
			_, _, stop := pipeFront(t, Options{Name: "cache", Upstream: "127.0.0.1:9", Mode: ModeTCP, IdleStop: 10 * time.Minute}, c, pipeEcho)
			defer stop()
			now := time.Now()
			c.update(func(v *wire.Chain) { v.State, v.StartedAt, v.Trigger = wire.ChainReady, &now, "manual" })
			synctest.Wait()
			// Its db turns unhealthy and restarts: the chain waits for
			// it, as it would while starting.
			c.setState(wire.ChainWaiting, "cache is waiting for db, which is unhealthy")
			synctest.Wait()
			if s := idleStopsAfter(c, 3*time.Hour); s != 0 {
				t.Fatalf("stopped %d times while it waited for db", s)
			}
			c.setState(wire.ChainReady, "")
			synctest.Wait()
			stopsOnceAfter(t, c, 10*time.Minute, "it was ready again")
		})
	})
	t.Run("ZeroNeverStops", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c := newFake("cache", wire.ChainReady, comps()...)
			_, _, stop := pipeFront(t, Options{Name: "cache", Upstream: "127.0.0.1:9", Mode: ModeTCP}, c, pipeEcho)
			defer stop()
			if s := idleStopsAfter(c, 1000*time.Hour); s != 0 {
				t.Errorf("idle_stop 0 stopped the chain %d times", s)
			}
		})
	})
}

// TestIdleStopCountsHTTPRequests: in http mode a request in flight (here a
// proxied one the app takes an hour to answer) is activity and an idle
// keep-alive connection is not.
func TestIdleStopCountsHTTPRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newFake("blog", wire.ChainReady, comps()...)
		slowApp := okApp(func(req *http.Request) {
			_, _ = io.Copy(io.Discard, req.Body)
			time.Sleep(time.Hour)
		})
		_, ln, stop := pipeFront(t, Options{Name: "blog", Upstream: "127.0.0.1:9", IdleStop: time.Minute}, c, slowApp)
		defer stop()
		tr := &http.Transport{DialContext: ln.Dial}
		defer tr.CloseIdleConnections()
		done := make(chan struct{})
		go func() {
			defer close(done)
			resp, err := (&http.Client{Transport: tr}).Get("http://127.0.0.1:8080/")
			if err != nil {
				t.Error(err)
				return
			}
			if b, _ := io.ReadAll(resp.Body); string(b) != "ok" {
				t.Errorf("got %q from the app", b)
			}
			resp.Body.Close() // the connection stays open, idle
		}()
		synctest.Wait()
		if s := idleStopsAfter(c, 59*time.Minute); s != 0 {
			t.Fatalf("stopped with a request in flight")
		}
		<-done // the app answers after the hour
		if s := idleStopsAfter(c, time.Minute-time.Nanosecond); s != 0 {
			t.Fatalf("stopped too early")
		}
		if s := idleStopsAfter(c, time.Nanosecond); s != 1 {
			t.Fatalf("%d idle stops with only an idle keep-alive connection, want 1", s)
		}
	})
}

// A request that arrives once the idle stop is asked, before the stop
// shows in the chain's view, does not reach the upstream being stopped
// (a POST could not be sent again): it waits for the chain like one that
// found it idle, and is forwarded once, to the next start.
func TestARequestRacingTheIdleStopWaitsForTheNextStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		started := time.Now()
		c := newFake("blog", wire.ChainReady, comps()...)
		c.view.StartedAt = &started
		c.onIdleStop = func(*fakeChains) {} // asked; the agent has not acted yet
		var mu sync.Mutex
		var got []string
		app := okApp(func(req *http.Request) {
			b, _ := io.ReadAll(req.Body)
			mu.Lock()
			got = append(got, req.Method+" "+string(b))
			mu.Unlock()
		})
		seen := func() []string {
			mu.Lock()
			defer mu.Unlock()
			return append([]string(nil), got...)
		}
		_, ln, stop := pipeFront(t, Options{Name: "blog", Upstream: "127.0.0.1:9", IdleStop: time.Minute}, c, app)
		defer stop()
		if s := idleStopsAfter(c, time.Minute); s != 1 {
			t.Fatalf("%d idle stops after idle_stop, want 1", s)
		}
		tr := &http.Transport{DialContext: ln.Dial}
		defer tr.CloseIdleConnections()
		done := make(chan struct{})
		go func() {
			defer close(done)
			resp, err := (&http.Client{Transport: tr}).Post("http://127.0.0.1:8080/comment", "text/plain", strings.NewReader("hello"))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			if b, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK || string(b) != "ok" {
				t.Errorf("%d %q, want the app's 200 ok", resp.StatusCode, b)
			}
		}()
		synctest.Wait()
		if g := seen(); len(g) != 0 {
			t.Fatalf("the upstream being stopped got %v", g)
		}
		// The stop takes effect; the held request demands the chain again.
		c.setState(wire.ChainStopping, "idle")
		c.update(func(v *wire.Chain) { v.State, v.Reason, v.StartedAt = wire.ChainIdle, "idle", nil })
		synctest.Wait()
		if v := c.Chain("blog"); v.State != wire.ChainStarting {
			t.Fatalf("chain %s after the stop, want the held request to start it again", v.State)
		}
		c.setState(wire.ChainReady, "")
		<-done
		if g := seen(); len(g) != 1 || g[0] != "POST hello" {
			t.Errorf("the upstream got %v, want the POST once, body and all", g)
		}
	})
}

// okApp is an HTTP upstream on a pipe: each request is handed to handle,
// then answered 200 "ok", until the connection ends.
func okApp(handle func(*http.Request)) func(net.Conn) {
	return func(conn net.Conn) {
		defer conn.Close()
		br := bufio.NewReader(conn)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			handle(req)
			if _, err := io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
				return
			}
		}
	}
}
