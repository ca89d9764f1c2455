package websocket

import (
	"context"
	"net"
	nethttp "net/http"
	"strings"
	"testing"
	"time"

	ws "github.com/coder/websocket"

	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/trackers/internal/fakehost"
	"github.com/rouse-dev/rouse/trackers/internal/teststore"
)

// TestRealSockets runs the tracker over real loopback TCP: a server that
// drops the stream abruptly, then restarts on the same port.
func TestRealSockets(t *testing.T) {
	type conn struct {
		c   *ws.Conn
		sub string
	}
	accepted := make(chan conn, 8)
	handler := nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		c, err := ws.Accept(w, r, nil)
		if err != nil {
			return
		}
		_, sub, err := c.Read(r.Context())
		if err != nil {
			c.CloseNow()
			return
		}
		accepted <- conn{c, string(sub)}
	})
	serve := func(addr string) (*nethttp.Server, string, chan struct{}) {
		var ln net.Listener
		var err error
		for i := 0; i < 100; i++ { // the port may linger for a moment
			if ln, err = net.Listen("tcp", addr); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
		srv := &nethttp.Server{Handler: handler}
		done := make(chan struct{})
		go func() { defer close(done); _ = srv.Serve(ln) }()
		return srv, ln.Addr().String(), done
	}
	wait := func() conn {
		t.Helper()
		select {
		case c := <-accepted:
			return c
		case <-time.After(30 * time.Second):
			t.Fatal("no connection")
			return conn{}
		}
	}
	srv, addr, done := serve("127.0.0.1:0")

	st := teststore.Open(t)
	o := DefaultOptions()
	o.URL = "ws://" + addr + "/stream"
	o.Subscribe = `{"since":"{{.Since}}"}`
	o.Items = ItemsOptions{ID: "id", Time: "t"}
	o.CursorFrom = CursorID
	o.Backoff = BackoffOptions{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}
	tr, err := New(*o, trackers.Deps{Name: "rt", Store: st})
	if err != nil {
		t.Fatal(err)
	}
	h := fakehost.New()
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- tr.Run(ctx, h) }()

	c := wait()
	if c.sub != `{"since":""}` {
		t.Fatalf("first subscribe %s", c.sub)
	}
	for _, m := range []string{`{"id":"1","t":1000}`, `{"id":"2","t":2000}`} {
		if err := c.c.Write(ctx, ws.MessageText, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for st.Len("rt") < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	c.c.CloseNow() // abrupt: no close frame
	c = wait()
	if !strings.Contains(c.sub, `"since":"3"`) {
		t.Fatalf("resubscribe %s, want since 3", c.sub)
	}
	if s := tr.Stats(); s.LastCode != "1006" {
		t.Fatalf("stats %+v", s)
	}

	// Restart: the server goes away and comes back on the same port.
	srv.Close()
	c.c.CloseNow()
	<-done
	srv, _, done = serve(addr)
	c = wait()
	if !strings.Contains(c.sub, `"since":"3"`) {
		t.Fatalf("after restart: %s", c.sub)
	}
	c.c.CloseRead(ctx)
	cancel()
	if err := <-runDone; err != nil {
		t.Fatal(err)
	}
	c.c.CloseNow()
	srv.Close()
	<-done
	if st.Len("rt") != 2 {
		t.Fatalf("stored %d", st.Len("rt"))
	}
}
