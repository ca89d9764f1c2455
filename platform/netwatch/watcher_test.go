package netwatch

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// fakeMon is an osMon driven by the test: each value sent on events is one
// kernel message; closing broken makes Receive fail as a broken socket.
type fakeMon struct {
	events chan struct{}
	broken chan struct{}
	closed chan struct{}
	once   sync.Once
}

func newFakeMon() *fakeMon {
	return &fakeMon{events: make(chan struct{}), broken: make(chan struct{}), closed: make(chan struct{})}
}

func (m *fakeMon) Receive() error {
	select {
	case <-m.events:
		return nil
	case <-m.broken:
		return errors.New("socket broke")
	case <-m.closed:
		return errors.New("closed")
	}
}

func (m *fakeMon) Close() error { m.once.Do(func() { close(m.closed) }); return nil }

func (m *fakeMon) probe() (snapshot, error) { return snapshot{}, errors.New("tests use Options.Probe") }

// fakeProbe is an Options.Probe whose answer the test sets; it counts calls.
type fakeProbe struct {
	mu     sync.Mutex
	online bool
	calls  atomic.Int64
}

func (p *fakeProbe) set(online bool) { p.mu.Lock(); p.online = online; p.mu.Unlock() }

func (p *fakeProbe) probe() (bool, string) {
	p.calls.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.online {
		return true, "fake online"
	}
	return false, "fake offline"
}

// start runs a watcher over mon (nil: no change notification) inside the
// current synctest bubble and returns it with a stop func.
func start(t *testing.T, mon osMon, p *fakeProbe, o Options) (*Watcher, func()) {
	t.Helper()
	o.Logger = testLogger(t)
	o.Probe = p.probe
	w := New(o)
	w.newMon = func() (osMon, error) {
		if mon == nil {
			return nil, errPollOnly
		}
		return mon, nil
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	synctest.Wait()
	return w, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v, want nil", err)
		}
	}
}

func TestWatcher(t *testing.T) {
	t.Run("TheFirstEvaluationHappensAtOnce", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := &fakeProbe{online: true}
			w, stop := start(t, newFakeMon(), p, Options{})
			defer stop()
			s := w.Status()
			if !s.Known() || !s.Online || s.Reason != "fake online" || !s.At.Equal(time.Now()) {
				t.Errorf("Status = %+v, want known, online, at now", s)
			}
		})
	})

	t.Run("ABurstOfEventsCostsOneEvaluationAfterTheDebounce", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := &fakeProbe{}
			mon := newFakeMon()
			w, stop := start(t, mon, p, Options{Debounce: 200 * time.Millisecond})
			defer stop()
			if got := p.calls.Load(); got != 1 {
				t.Fatalf("probe calls after start = %d, want 1", got)
			}
			p.set(true)
			for range 20 {
				mon.events <- struct{}{}
				time.Sleep(5 * time.Millisecond)
			}
			synctest.Wait()
			if got := p.calls.Load(); got != 1 {
				t.Errorf("probe calls during the debounce = %d, want 1", got)
			}
			if w.Status().Online {
				t.Errorf("online before the debounce ended")
			}
			time.Sleep(200 * time.Millisecond)
			synctest.Wait()
			if got := p.calls.Load(); got != 2 {
				t.Errorf("probe calls after the burst = %d, want 2", got)
			}
			if !w.Status().Online {
				t.Errorf("still offline after the burst was evaluated")
			}
		})
	})

	t.Run("AnIdleWatcherNeverEvaluates", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := &fakeProbe{}
			_, stop := start(t, newFakeMon(), p, Options{})
			defer stop()
			time.Sleep(24 * time.Hour)
			if got := p.calls.Load(); got != 1 {
				t.Errorf("probe calls in a quiet day = %d, want 1", got)
			}
		})
	})

	t.Run("SubscribersSeeTransitionsOnlyAndTheLatestWins", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := &fakeProbe{}
			mon := newFakeMon()
			w, stop := start(t, mon, p, Options{Debounce: 10 * time.Millisecond})
			defer stop()
			ch, unsub := w.Subscribe()
			defer unsub()
			if s := <-ch; s.Online || s.Reason != "fake offline" {
				t.Fatalf("first status = %+v, want the current offline one", s)
			}
			// An event that changes nothing publishes nothing.
			mon.events <- struct{}{}
			time.Sleep(time.Second)
			select {
			case s := <-ch:
				t.Fatalf("got %+v without a transition", s)
			default:
			}
			// Three transitions unread: only the last is delivered.
			for _, online := range []bool{true, false, true} {
				p.set(online)
				mon.events <- struct{}{}
				time.Sleep(time.Second)
			}
			if s := <-ch; !s.Online {
				t.Errorf("latest = %+v, want online", s)
			}
			select {
			case s := <-ch:
				t.Errorf("got a backlog entry %+v", s)
			default:
			}
		})
	})

	t.Run("WaitOnlineReturnsAtOnceWhenOnline", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w, stop := start(t, newFakeMon(), &fakeProbe{online: true}, Options{})
			defer stop()
			if err := w.WaitOnline(t.Context()); err != nil {
				t.Errorf("WaitOnline = %v", err)
			}
		})
	})

	t.Run("WaitOnlineReturnsWhenTheNetworkComesBack", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := &fakeProbe{}
			mon := newFakeMon()
			w, stop := start(t, mon, p, Options{Debounce: 100 * time.Millisecond})
			defer stop()
			began := time.Now()
			go func() {
				time.Sleep(3 * time.Second)
				p.set(true)
				mon.events <- struct{}{}
			}()
			if err := w.WaitOnline(t.Context()); err != nil {
				t.Fatalf("WaitOnline = %v", err)
			}
			if got, want := time.Since(began), 3100*time.Millisecond; got != want {
				t.Errorf("WaitOnline returned after %v, want %v (event + debounce)", got, want)
			}
		})
	})

	t.Run("WaitOnlineGivesUpWithItsContext", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w, stop := start(t, newFakeMon(), &fakeProbe{}, Options{})
			defer stop()
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			if err := w.WaitOnline(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("WaitOnline = %v, want deadline exceeded", err)
			}
		})
	})

	t.Run("WithoutChangeNotificationItPollsAtTheInterval", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := &fakeProbe{}
			w, stop := start(t, nil, p, Options{PollInterval: 2 * time.Second})
			defer stop()
			p.set(true)
			time.Sleep(1999 * time.Millisecond)
			synctest.Wait()
			if w.Status().Online {
				t.Errorf("online before the first poll")
			}
			time.Sleep(time.Millisecond)
			synctest.Wait()
			if !w.Status().Online {
				t.Errorf("still offline after the first poll")
			}
			time.Sleep(10 * time.Second)
			synctest.Wait()
			if got := p.calls.Load(); got != 7 {
				t.Errorf("probe calls = %d, want 7 (start + one per 2s for 12s)", got)
			}
		})
	})

	t.Run("ABrokenMonitorFallsBackToPolling", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := &fakeProbe{}
			mon := newFakeMon()
			w, stop := start(t, mon, p, Options{PollInterval: time.Second})
			defer stop()
			close(mon.broken)
			synctest.Wait()
			p.set(true)
			time.Sleep(time.Second)
			synctest.Wait()
			if !w.Status().Online {
				t.Errorf("the change was not seen by polling after the monitor broke")
			}
		})
	})

	t.Run("RecheckEvaluatesAfterTheDebounce", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := &fakeProbe{}
			w, stop := start(t, newFakeMon(), p, Options{Debounce: 100 * time.Millisecond})
			defer stop()
			p.set(true)
			w.Recheck()
			w.Recheck()
			time.Sleep(100 * time.Millisecond)
			synctest.Wait()
			if !w.Status().Online || p.calls.Load() != 2 {
				t.Errorf("online=%v after %d probes, want online after 2", w.Status().Online, p.calls.Load())
			}
		})
	})

	t.Run("RecheckEvaluatesAtOnceWhenPolling", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := &fakeProbe{}
			w, stop := start(t, nil, p, Options{PollInterval: time.Minute})
			defer stop()
			time.Sleep(30 * time.Second)
			p.set(true)
			w.Recheck()
			synctest.Wait()
			if !w.Status().Online {
				t.Errorf("Recheck did not evaluate at once")
			}
			// The poll restarts from the recheck: next at +1 min.
			time.Sleep(59 * time.Second)
			synctest.Wait()
			if got := p.calls.Load(); got != 2 {
				t.Errorf("probe calls = %d, want 2", got)
			}
			time.Sleep(time.Second)
			synctest.Wait()
			if got := p.calls.Load(); got != 3 {
				t.Errorf("probe calls = %d, want 3", got)
			}
		})
	})

	t.Run("UnsubscribeClosesTheChannelAndIsIdempotent", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := &fakeProbe{}
			mon := newFakeMon()
			w, stop := start(t, mon, p, Options{})
			defer stop()
			ch, unsub := w.Subscribe()
			unsub()
			unsub()
			<-ch // the current status, buffered before unsubscribing
			if _, ok := <-ch; ok {
				t.Errorf("channel still open after unsubscribe")
			}
			// A transition after unsubscribing must not panic or block.
			p.set(true)
			mon.events <- struct{}{}
			time.Sleep(time.Second)
			if !w.Status().Online {
				t.Errorf("the watcher stopped working after an unsubscribe")
			}
		})
	})

	t.Run("StatusBeforeRunIsUnknownAndOffline", func(t *testing.T) {
		w := New(Options{})
		if s := w.Status(); s.Known() || s.Online {
			t.Errorf("Status before Run = %+v", s)
		}
		ch, unsub := w.Subscribe()
		defer unsub()
		select {
		case s := <-ch:
			t.Errorf("Subscribe before Run delivered %+v", s)
		default:
		}
	})
}
