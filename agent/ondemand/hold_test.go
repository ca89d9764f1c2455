package ondemand

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rouse-dev/rouse/wire"
)

// TestHoldFollowsTheChainsDeadline: a client is held for the chain's
// deadline as the view says it now, not the Hold the Front was built with
// (which is only the upper bound): when the start under way learned a
// shorter `deadline: auto`, the view's deadline_ms changes during the wait
// and the hold follows it, counted from the client's arrival.
func TestHoldFollowsTheChainsDeadline(t *testing.T) {
	t.Run("HTTP", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c := newFake("blog", wire.ChainIdle, comps()...)
			c.view.DeadlineMS = 20000 // what the view said before the start
			c.onDemand = func(c *fakeChains) {
				c.update(func(v *wire.Chain) { v.State = wire.ChainStarting })
				go func() {
					time.Sleep(time.Second) // the start learns its deadline
					c.update(func(v *wire.Chain) { v.DeadlineMS = 6000 })
				}()
			}
			_, ln, stop := pipeFront(t, Options{Name: "blog", Upstream: "127.0.0.1:9", Hold: 5 * time.Minute}, c, func(net.Conn) {})
			defer stop()
			tr := &http.Transport{DialContext: ln.Dial}
			defer tr.CloseIdleConnections()
			start := time.Now()
			resp, err := (&http.Client{Transport: tr}).Get("http://127.0.0.1:8080/")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if waited := time.Since(start); waited != 6*time.Second {
				t.Errorf("held %s, want the chain's deadline now, 6s from arrival", waited)
			}
			if e := errorCode(t, resp); resp.StatusCode != 503 || !strings.Contains(e.Message, "not ready after 6s") {
				t.Errorf("got %d %+v", resp.StatusCode, e)
			}
		})
	})
	t.Run("TCP", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c := newFake("cache", wire.ChainIdle, comps()...)
			c.view.DeadlineMS = 45000
			_, ln, stop := pipeFront(t, Options{Name: "cache", Upstream: "127.0.0.1:9", Mode: ModeTCP, Hold: 5 * time.Minute}, c, pipeEcho)
			defer stop()
			if held := heldUntilClosed(t, ln); held != 45*time.Second {
				t.Errorf("held %s, want the chain's deadline, 45s", held)
			}
		})
	})
	t.Run("HoldIsTheUpperBound", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c := newFake("cache", wire.ChainIdle, comps()...)
			c.view.DeadlineMS = (10 * time.Minute).Milliseconds()
			_, ln, stop := pipeFront(t, Options{Name: "cache", Upstream: "127.0.0.1:9", Mode: ModeTCP, Hold: time.Minute}, c, pipeEcho)
			defer stop()
			if held := heldUntilClosed(t, ln); held != time.Minute {
				t.Errorf("held %s, want Hold, 1m", held)
			}
		})
	})
}
