package http

import (
	"context"
	"net"
	nethttp "net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/trackers/internal/fakehost"
	"github.com/rouse-dev/rouse/trackers/internal/teststore"
)

// A manual wake (Resume without a Pause before it) polls on the pooled
// connection; a wake after a sleep (Pause, then Resume) drops the pool
// first, since its connections died with the sleep.
func TestResumeKeepsConnectionsUnlessPaused(t *testing.T) {
	var conns, polls atomic.Int32
	srv := httptest.NewUnstartedServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		polls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("[]"))
	}))
	srv.Config.ConnState = func(_ net.Conn, s nethttp.ConnState) {
		if s == nethttp.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	o := DefaultOptions()
	o.URL = srv.URL + "/items"
	o.Cursor.From = "none"
	tr, err := New(*o, trackers.Deps{Name: "x", Store: teststore.Open(t)})
	if err != nil {
		t.Fatal(err)
	}
	h := fakehost.New()
	r := start(tr, h)
	eventually(t, "the first poll", func() bool { return h.Last().State == trackers.StateReady })

	tr.Resume(context.Background()) // a manual wake
	eventually(t, "the wake's poll", func() bool { return polls.Load() == 2 })
	if n := conns.Load(); n != 1 {
		t.Errorf("a manual wake opened a new connection: %d connections for 2 polls", n)
	}

	tr.Pause(context.Background()) // the machine sleeps
	tr.Resume(context.Background())
	eventually(t, "the poll after the sleep", func() bool { return polls.Load() == 3 })
	if n := conns.Load(); n != 2 {
		t.Errorf("a wake after a sleep reused a pooled connection: %d connections for 3 polls", n)
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
}
