package websocket

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	ws "github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/rouse-dev/rouse/internal/promreg"
	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/trackers/internal/fakehost"
	"github.com/rouse-dev/rouse/trackers/internal/teststore"
	"github.com/rouse-dev/rouse/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type rig struct {
	t      *testing.T
	net    *pipeNet
	store  *teststore.Store  // the real store
	saves  *teststore.Faulty // the tracker's view of it, counting writes
	host   *fakehost.Host
	tr     *Tracker
	reg    *promreg.Registry
	cancel context.CancelFunc
	done   chan error
}

// newRig builds a tracker on a pipe network; call inside a bubble.
func newRig(t *testing.T, mod func(*Options)) *rig {
	r := &rig{t: t, net: newPipeNet(t), host: fakehost.New(), reg: promreg.New()}
	r.store = teststore.Open(t)
	r.saves = &teststore.Faulty{Store: r.store} // counts the tracker's writes
	o := DefaultOptions()
	o.URL = "ws://stream.test/s"
	o.Subscribe = `{"op":"subscribe","since":"{{.Since}}"}`
	o.Items = ItemsOptions{ID: "id", Time: "t", TimeFormat: "unix_ms"}
	if mod != nil {
		mod(o)
	}
	tr, err := New(*o, trackers.Deps{Name: "s", Store: r.saves, Metrics: r.reg})
	if err != nil {
		t.Fatal(err)
	}
	client := r.net.client()
	t.Cleanup(client.CloseIdleConnections)
	tr.httpClient = client
	tr.rand = func(n int64) int64 { return n - 1 } // the ceiling: deterministic
	r.tr = tr
	return r
}

func (r *rig) start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan error, 1)
	go func() { r.done <- r.tr.Run(ctx, r.host) }()
}

func (r *rig) stop() {
	r.cancel()
	if err := <-r.done; err != nil {
		r.t.Errorf("Run returned %v", err)
	}
	r.net.down()
}

func (r *rig) accept() *sconn {
	select {
	case sc := <-r.net.accepted:
		synctest.Wait() // let the client finish its side of the connect
		return sc
	case <-time.After(24 * time.Hour):
		r.t.Fatal("no connection within a (fake) day")
		return nil
	}
}

func send(t *testing.T, sc *sconn, id int, ms int64) {
	t.Helper()
	msg := fmt.Sprintf(`{"id":"%d","t":%d}`, id, ms)
	if err := sc.c.Write(context.Background(), ws.MessageText, []byte(msg)); err != nil {
		t.Fatalf("server write: %v", err)
	}
}

func (r *rig) states() []trackers.State { return r.host.States() }

func TestResubscribeAndFreshSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, nil)
		r.start()
		sc := r.accept()
		if sc.sub != `{"op":"subscribe","since":""}` {
			t.Fatalf("first subscribe = %s, want a fresh sync", sc.sub)
		}
		sc.pong()
		base := time.Now().UnixMilli()
		for i := 1; i <= 3; i++ {
			send(t, sc, i, base+int64(i))
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if n := r.store.Len("s"); n != 3 {
			t.Fatalf("stored %d of 3", n)
		}

		t.Log("the server drops the stream with no close frame; a quick reconnect resubscribes from the cursor")
		sc.c.CloseNow()
		sc = r.accept()
		if want := fmt.Sprintf(`"since":"%d"`, base+4); !strings.Contains(sc.sub, want) {
			t.Fatalf("resubscribe = %s, want %s", sc.sub, want)
		}
		sc.pong()
		st := r.tr.Stats()
		if st.LastCode != "1006" || st.Disconnects != 1 || st.Resubscribes != 1 {
			t.Fatalf("stats %+v", st)
		}
		if st.CleanupsCancelled != 1 || st.Cleanups != 0 {
			t.Fatalf("a quick reconnect tore the stream down: %+v", st)
		}
		if got := r.states(); len(got) != 1 || got[0] != trackers.StateReady {
			t.Fatalf("states %v: a quick reconnect must not flap readiness", got)
		}
		if v := counterValue(t, r.tr.disconnects.With("s", "1006")); v != 1 {
			t.Fatalf("metric = %v", v)
		}
		if notes := r.host.Notes(); len(notes) != 1 || !strings.HasPrefix(notes[0], "disconnect: code 1006") {
			t.Fatalf("notes %q, want the disconnect noted as an event with its close code", notes)
		}

		t.Log("the server goes away for longer than the resume window: a fresh sync")
		r.net.down()
		time.Sleep(16 * time.Minute)
		synctest.Wait()
		st = r.tr.Stats()
		if st.Cleanups != 1 {
			t.Fatalf("cleanup did not run after the grace: %+v", st)
		}
		if last := r.host.Last(); last.State != trackers.StateStarting || last.Err == nil {
			t.Fatalf("after cleanup: %+v", last)
		}
		r.net.up()
		sc = r.accept()
		if sc.sub != `{"op":"subscribe","since":""}` {
			t.Fatalf("subscribe after the window = %s, want a fresh sync", sc.sub)
		}
		sc.pong()
		synctest.Wait()
		if r.host.Last().State != trackers.StateReady {
			t.Fatalf("not ready again: %v", r.states())
		}
		if st := r.tr.Stats(); st.FreshSyncs != 2 {
			t.Fatalf("stats %+v", st)
		}
		r.stop()
	})
}

func TestCursorSurvivesARestartOfTheTracker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, func(o *Options) { o.CursorFrom = CursorID })
		r.start()
		sc := r.accept()
		sc.pong()
		send(t, sc, 41, time.Now().UnixMilli())
		time.Sleep(time.Second)
		r.cancel()
		<-r.done
		// The store closes and opens again, as around a sleep; a new Run
		// (after the agent restarted it) within the window resubscribes
		// from the persisted cursor.
		if err := r.store.Reopen(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		r.start()
		sc = r.accept()
		if !strings.Contains(sc.sub, `"since":"42"`) {
			t.Fatalf("subscribe = %s, want since 42", sc.sub)
		}
		r.stop()
	})
}

func TestKeepalive(t *testing.T) {
	t.Run("A half-open server is dropped after ping_interval plus ping_timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newRig(t, nil)
			start := time.Now()
			r.net.halfOpen.Store(true)
			r.start()
			_ = r.accept() // pings go unanswered
			r.net.halfOpen.Store(false)
			sc := r.accept()
			// 20s to the ping, 60s without a pong, 1s backoff.
			if got := time.Since(start); got != 81*time.Second {
				t.Fatalf("reconnected after %v, want 81s", got)
			}
			if st := r.tr.Stats(); st.LastCode != "timeout" {
				t.Fatalf("stats %+v", st)
			}
			if v := counterValue(t, r.tr.disconnects.With("s", "timeout")); v != 1 {
				t.Fatalf("metric = %v", v)
			}
			sc.pong()
			r.stop()
		})
	})
	t.Run("A wake pings at once and reconnects when the socket is half-open", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newRig(t, nil)
			r.net.halfOpen.Store(true)
			r.start()
			_ = r.accept()
			r.net.halfOpen.Store(false)
			time.Sleep(10 * time.Second)
			r.tr.Pause(context.Background())
			time.Sleep(time.Hour) // asleep: no pings, no drop
			if st := r.tr.Stats(); st.Disconnects != 0 {
				t.Fatalf("dropped while paused: %+v", st)
			}
			woke := time.Now()
			r.tr.Resume(context.Background())
			sc := r.accept()
			// 5s wake ping timeout, then 1s backoff — not 20s + 60s.
			if got := time.Since(woke); got != 6*time.Second {
				t.Fatalf("reconnected %v after the wake, want 6s", got)
			}
			sc.pong()
			synctest.Wait()
			if r.host.Last().State != trackers.StateReady {
				t.Fatalf("states %v", r.states())
			}
			r.stop()
		})
	})
	t.Run("A wake on a live socket reports ready without reconnecting", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newRig(t, nil)
			r.start()
			sc := r.accept()
			sc.pong()
			time.Sleep(time.Second)
			r.tr.Resume(context.Background())
			time.Sleep(time.Second)
			synctest.Wait()
			st := r.tr.Stats()
			if st.Connects != 1 || st.Disconnects != 0 {
				t.Fatalf("stats %+v", st)
			}
			if got := r.states(); len(got) != 2 || got[1] != trackers.StateReady {
				t.Fatalf("states %v, want ready after the wake ping", got)
			}
			r.stop()
		})
	})
}

func TestCloseCodesAreRecorded(t *testing.T) {
	for _, c := range []struct {
		code   ws.StatusCode
		reason string
	}{{ws.StatusNormalClosure, "bye"}, {ws.StatusGoingAway, "restart"}, {ws.StatusInternalError, "boom"}} {
		t.Run(fmt.Sprintf("Code %d is counted with its reason", int(c.code)), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newRig(t, nil)
				r.start()
				sc := r.accept()
				sc.pong()
				sc.c.Close(c.code, c.reason)
				sc = r.accept()
				sc.pong()
				st := r.tr.Stats()
				if st.LastCode != fmt.Sprint(int(c.code)) || st.LastReason != c.reason {
					t.Fatalf("stats %+v", st)
				}
				if v := counterValue(t, r.tr.disconnects.With("s", fmt.Sprint(int(c.code)))); v != 1 {
					t.Fatalf("metric = %v", v)
				}
				// The API's detail says the same.
				d := r.tr.Detail().(wire.StreamDetail)
				code := fmt.Sprint(int(c.code))
				if d.Connects != 2 || d.Reconnects != 1 || d.DisconnectsByCode[code] != 1 || len(d.DisconnectsByCode) != 1 ||
					d.LastDisconnect == nil || d.LastDisconnect.Code != code || d.LastDisconnect.Reason != c.reason || d.LastDisconnect.At.IsZero() {
					t.Fatalf("detail %+v (last %+v)", d, d.LastDisconnect)
				}
				r.stop()
			})
		})
	}
}

func TestCleanupGrace(t *testing.T) {
	t.Run("A reconnect within the grace cancels the cleanup", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var ran atomic.Int32
			r := newRig(t, nil)
			r.tr.onCleanup = func() { ran.Add(1) }
			r.start()
			for i := 0; i < 5; i++ {
				sc := r.accept()
				sc.pong()
				time.Sleep(time.Minute)
				sc.c.CloseNow()
			}
			sc := r.accept()
			sc.pong()
			time.Sleep(time.Minute) // well past any grace
			synctest.Wait()
			st := r.tr.Stats()
			if ran.Load() != 0 || st.Cleanups != 0 || st.CleanupsCancelled != 5 {
				t.Fatalf("cleanup ran %d times; stats %+v", ran.Load(), st)
			}
			r.stop()
		})
	})
	t.Run("A stream gone longer than the grace is cleaned up once", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var ran atomic.Int32
			r := newRig(t, nil)
			r.tr.onCleanup = func() { ran.Add(1) }
			r.start()
			sc := r.accept()
			sc.pong()
			r.net.down()
			time.Sleep(4 * time.Second)
			synctest.Wait()
			if ran.Load() != 0 {
				t.Fatal("cleanup ran before the grace")
			}
			time.Sleep(2 * time.Second)
			synctest.Wait()
			if ran.Load() != 1 {
				t.Fatalf("cleanup ran %d times after the grace", ran.Load())
			}
			r.stop()
		})
	})
}

func TestBackoffStaysInsideItsBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, nil)
		r.tr.rand = nil // real jitter
		r.net.down()
		r.start()
		time.Sleep(10 * time.Minute)
		r.stop()
		r.net.mu.Lock()
		at := r.net.dialAt
		r.net.mu.Unlock()
		if len(at) < 12 {
			t.Fatalf("%d dials in 10 minutes", len(at))
		}
		for i := 1; i < len(at); i++ {
			gap := at[i].Sub(at[i-1])
			ceil := min(time.Second<<(i-1), 60*time.Second)
			if gap < ceil/2 || gap > ceil {
				t.Errorf("gap %d = %v, want within [%v, %v]", i, gap, ceil/2, ceil)
			}
		}
	})
}

func TestPauseStopsWritingUntilResume(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, nil)
		r.start()
		sc := r.accept()
		sc.pong()
		r.tr.Pause(context.Background())
		saves := r.saves.Calls()
		go func() {
			for i := 1; i <= 3; i++ {
				send(t, sc, i, int64(i))
			}
		}()
		time.Sleep(time.Minute)
		synctest.Wait()
		if r.saves.Calls() != saves || r.store.Len("s") != 0 {
			t.Fatal("stored while paused")
		}
		r.tr.Resume(context.Background())
		time.Sleep(time.Second)
		synctest.Wait()
		if r.store.Len("s") != 3 {
			t.Fatalf("stored %d of 3 after resume", r.store.Len("s"))
		}
		r.stop()
	})
}

func TestOptions(t *testing.T) {
	t.Run("Defaults plus a URL are valid", func(t *testing.T) {
		o := DefaultOptions()
		o.URL = "wss://example.com/stream"
		if errs := o.Validate(); len(errs) != 0 {
			t.Fatal(errs)
		}
	})
	t.Run("Bad values name their keys", func(t *testing.T) {
		o := DefaultOptions()
		o.URL = "ftp://x"
		o.Subscribe = "{{.Nope}}"
		o.PingInterval = 0
		o.Backoff.Max = time.Millisecond
		o.CursorFrom = "page"
		got := map[string]bool{}
		for _, e := range o.Validate() {
			got[e.Key] = true
		}
		for _, k := range []string{"url", "subscribe", "ping_interval", "backoff.max", "cursor_from"} {
			if !got[k] {
				t.Errorf("no error for %s: %v", k, got)
			}
		}
	})
	t.Run("The kind needs the network", func(t *testing.T) {
		if Kind.Name != "websocket" || !Kind.NeedsNetwork {
			t.Fatal(Kind)
		}
	})
	t.Run("Two trackers share one metric on a registry", func(t *testing.T) {
		reg := promreg.New()
		a := disconnectsCounter(reg)
		b := disconnectsCounter(reg)
		if a != b {
			t.Fatal("second registration made a new counter")
		}
		if disconnectsCounter(nil) == nil {
			t.Fatal("nil registry")
		}
	})
}

func counterValue(t *testing.T, c *promreg.Counter) float64 {
	t.Helper()
	return float64(c.Get())
}

func TestDialErrorsHideCredentials(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, func(o *Options) {
			o.URL = "ws://stream.test/s?token=tok-SECRET-1"
			o.Headers = map[string]string{"Authorization": "Bearer hdr-SECRET-2"}
		})
		r.net.down()
		r.start()
		time.Sleep(10 * time.Second)
		synctest.Wait()
		last := r.host.Last()
		if last.Err == nil || !strings.Contains(last.Err.Error(), "REDACTED") {
			t.Fatalf("last report %+v", last)
		}
		for _, s := range []string{last.Err.Error(), r.host.Logs()} {
			if strings.Contains(s, "SECRET") {
				t.Fatalf("a secret leaked: %s", s)
			}
		}
		r.stop()
	})
}
