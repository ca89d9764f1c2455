package network

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/rouse-dev/rouse/internal/promreg"
	"github.com/rouse-dev/rouse/platform/netwatch"
	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/trackers/internal/teststore"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeSource is a channel-driven Source.
type fakeSource struct {
	mu     sync.Mutex
	status netwatch.Status
	subs   map[chan netwatch.Status]struct{}
}

func newFakeSource(online bool) *fakeSource {
	s := &fakeSource{subs: map[chan netwatch.Status]struct{}{}}
	s.status = status(online)
	return s
}

func status(online bool) netwatch.Status {
	st := netwatch.Status{Online: online, At: time.Now(), Reason: "no default route"}
	if online {
		st.Reason = "default route via eth0"
		st.Addresses = []string{"10.0.0.2"}
	}
	return st
}

func (s *fakeSource) Status() netwatch.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

func (s *fakeSource) Subscribe() (<-chan netwatch.Status, func()) {
	ch := make(chan netwatch.Status, 1)
	s.mu.Lock()
	s.subs[ch] = struct{}{}
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		delete(s.subs, ch)
		s.mu.Unlock()
	}
}

// set publishes a transition at the current (fake) time.
func (s *fakeSource) set(online bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = status(online)
	for ch := range s.subs {
		select {
		case <-ch:
		default:
		}
		ch <- s.status
	}
}

func (s *fakeSource) subscribers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs)
}

// testStore is the real store (SQLite) behind a thin wrapper that fails
// or hangs on command: fail makes the next fail writes fail, block makes
// writes hang until their context ends. Open it inside the bubble.
type testStore struct {
	*teststore.Faulty
	real *teststore.Store

	mu     sync.Mutex
	fail   int // the next fail writes fail
	block  bool
	writes int // writes that were not blocked, failed ones included
}

func newTestStore(t *testing.T) *testStore {
	st := &testStore{real: teststore.Open(t)}
	st.Faulty = &teststore.Faulty{Store: st.real, BeforeSave: st.beforeSave}
	return st
}

func (m *testStore) beforeSave(ctx context.Context, _ string, _ []trackers.Item, _ string) error {
	m.mu.Lock()
	block := m.block
	m.mu.Unlock()
	if block {
		<-ctx.Done()
		return ctx.Err()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writes++
	if m.fail > 0 {
		m.fail--
		return errors.New("database is locked")
	}
	return nil
}

// items returns the tracker's stored items in store order.
func (m *testStore) items() []trackers.Item { return m.real.All("net") }

// cursor returns the tracker's stored cursor.
func (m *testStore) cursor() string { return m.real.CursorOf("net") }

// saved returns the stored items' data, decoded.
func (m *testStore) saved(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, it := range m.items() {
		var d map[string]any
		if err := json.Unmarshal(it.Data, &d); err != nil {
			t.Fatalf("item %s: %v", it.ID, err)
		}
		out = append(out, d)
	}
	return out
}

// fakeHost records reports.
type fakeHost struct {
	mu      sync.Mutex
	reports []report
}

type report struct {
	state trackers.State
	err   error
}

func (h *fakeHost) Report(s trackers.State, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reports = append(h.reports, report{s, err})
}

func (h *fakeHost) Logger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func (h *fakeHost) list() []report {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.reports)
}

// runTracker runs tr inside the current bubble; stop cancels and checks Run
// returned nil.
func runTracker(t *testing.T, tr *Tracker) (*fakeHost, func()) {
	t.Helper()
	h := &fakeHost{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx, h) }()
	synctest.Wait()
	return h, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	}
}

func deps(st trackers.Store) trackers.Deps {
	return trackers.Deps{Name: "net", Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func TestNetworkTracker(t *testing.T) {
	t.Run("ItRecordsTheCurrentStatusAndIsReadyAtOnce", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := newTestStore(t)
			h, stop := runTracker(t, NewWithSource("net", newFakeSource(true), deps(st)))
			defer stop()
			got := st.saved(t)
			if len(got) != 1 || got[0]["event"] != "online" || got[0]["online"] != true || got[0]["reason"] != "default route via eth0" {
				t.Fatalf("items = %v, want one online transition", got)
			}
			if _, ok := got[0]["addresses"]; ok {
				t.Errorf("addresses recorded without record_addresses: %v", got[0])
			}
			if c := st.cursor(); c != "online" {
				t.Errorf("cursor = %q, want online", c)
			}
			if r := h.list(); len(r) != 1 || r[0].state != trackers.StateReady || r[0].err != nil {
				t.Errorf("reports = %v, want one clean ready", r)
			}
		})
	})

	t.Run("ARestartDoesNotRecordTheSameStateAgain", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := newTestStore(t)
			st.real.SetCursor("net", "online") // the last run saw it online
			h, stop := runTracker(t, NewWithSource("net", newFakeSource(true), deps(st)))
			defer stop()
			if got := st.saved(t); len(got) != 0 {
				t.Errorf("items = %v, want none (state unchanged since the last run)", got)
			}
			if r := h.list(); len(r) != 1 || r[0].state != trackers.StateReady {
				t.Errorf("reports = %v, want ready", r)
			}
		})
	})

	t.Run("EachTransitionIsOneItemWithATimeOrderedID", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := newTestStore(t)
			src := newFakeSource(false)
			_, stop := runTracker(t, NewWithSource("net", src, deps(st)))
			defer stop()
			for _, online := range []bool{true, false, true} {
				time.Sleep(time.Second)
				src.set(online)
				synctest.Wait()
			}
			got := st.saved(t)
			var events []string
			for _, d := range got {
				events = append(events, d["event"].(string))
			}
			if want := "offline,online,offline,online"; strings.Join(events, ",") != want {
				t.Errorf("events = %v, want %s", events, want)
			}
			items := st.items()
			for i := 1; i < len(items); i++ {
				if items[i].ID <= items[i-1].ID || !items[i].Time.After(items[i-1].Time) {
					t.Errorf("item %d (%s) does not sort after %s", i, items[i].ID, items[i-1].ID)
				}
			}
			if c := st.cursor(); c != "online" {
				t.Errorf("cursor = %q, want online", c)
			}
		})
	})

	t.Run("RecordAddressesAddsTheAddresses", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := newTestStore(t)
			src := newFakeSource(true)
			_, stop := runTracker(t, NewTracker(Options{RecordAddresses: true}, src, deps(st)))
			defer stop()
			got := st.saved(t)
			if len(got) != 1 {
				t.Fatalf("items = %v", got)
			}
			if a, _ := got[0]["addresses"].([]any); len(a) != 1 || a[0] != "10.0.0.2" {
				t.Errorf("addresses = %v, want [10.0.0.2]", got[0]["addresses"])
			}
		})
	})

	t.Run("AWakeMeasuresHowLongTheNetworkTookToComeBack", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := newTestStore(t)
			src := newFakeSource(false)
			tr := NewWithSource("net", src, deps(st))
			h, stop := runTracker(t, tr)
			defer stop()
			woke := time.Now()
			tr.Resume(t.Context())
			synctest.Wait()
			if r := h.list(); len(r) != 2 || r[1].state != trackers.StateReady {
				t.Errorf("reports after Resume = %v, want ready again", r)
			}
			time.Sleep(1500 * time.Millisecond)
			src.set(true)
			synctest.Wait()
			got := st.saved(t)
			if len(got) != 3 {
				t.Fatalf("items = %v, want offline, online, wake_network", got)
			}
			w := got[2]
			if w["event"] != "wake_network" || w["after_ms"] != float64(1500) || w["already_online"] != false {
				t.Errorf("wake item = %v, want after_ms 1500, not already online", w)
			}
			if w["woke_at"] != woke.UTC().Format(time.RFC3339Nano) {
				t.Errorf("woke_at = %v, want %v", w["woke_at"], woke.UTC().Format(time.RFC3339Nano))
			}
			// Later transitions do not measure the same wake twice.
			time.Sleep(time.Second)
			src.set(false)
			time.Sleep(time.Second)
			src.set(true)
			synctest.Wait()
			if n := countEvent(st.saved(t), "wake_network"); n != 1 {
				t.Errorf("wake items = %d, want 1", n)
			}
		})
	})

	t.Run("AWakeWhileOnlineIsRecordedAsAlreadyOnline", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := newTestStore(t)
			tr := NewWithSource("net", newFakeSource(true), deps(st))
			_, stop := runTracker(t, tr)
			defer stop()
			time.Sleep(time.Minute)
			tr.Resume(t.Context())
			synctest.Wait()
			got := st.saved(t)
			if len(got) != 2 || got[1]["event"] != "wake_network" || got[1]["after_ms"] != float64(0) || got[1]["already_online"] != true {
				t.Errorf("items = %v, want online then an already-online wake", got)
			}
		})
	})

	t.Run("PauseHoldsWritesUntilResume", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := newTestStore(t)
			src := newFakeSource(true)
			tr := NewWithSource("net", src, deps(st))
			_, stop := runTracker(t, tr)
			defer stop()
			tr.Pause(t.Context())
			src.set(false) // the link drops as the machine goes to sleep
			time.Sleep(time.Hour)
			if got := st.saved(t); len(got) != 1 {
				t.Fatalf("items while paused = %v, want only the first", got)
			}
			st.mu.Lock()
			writes := st.writes
			st.mu.Unlock()
			if writes != 1 {
				t.Errorf("store writes while paused = %d, want 1 (none during the pause)", writes)
			}
			tr.Resume(t.Context())
			synctest.Wait()
			got := st.saved(t)
			if len(got) != 2 || got[1]["event"] != "offline" {
				t.Fatalf("items after Resume = %v, want the held offline transition", got)
			}
			time.Sleep(2 * time.Second)
			src.set(true)
			synctest.Wait()
			got = st.saved(t)
			if len(got) != 4 || got[3]["event"] != "wake_network" || got[3]["after_ms"] != float64(2000) {
				t.Errorf("items = %v, want online then a 2000 ms wake", got)
			}
		})
	})

	t.Run("PauseReturnsByItsDeadlineWhenAWriteIsStuck", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := newTestStore(t)
			src := newFakeSource(true)
			tr := NewWithSource("net", src, deps(st))
			_, stop := runTracker(t, tr)
			defer stop()
			st.mu.Lock()
			st.block = true
			st.mu.Unlock()
			src.set(false)
			synctest.Wait() // the write hangs
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			began := time.Now()
			tr.Pause(ctx)
			if d := time.Since(began); d != 2*time.Second {
				t.Errorf("Pause took %v, want its 2s deadline", d)
			}
			st.mu.Lock()
			st.block = false
			st.mu.Unlock()
		})
	})

	t.Run("AFailedWriteIsRetriedAndReported", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := newTestStore(t)
			st.fail = 2
			h, stop := runTracker(t, NewWithSource("net", newFakeSource(true), deps(st)))
			defer stop()
			if r := h.list(); len(r) != 1 || r[0].state != trackers.StateReady || r[0].err == nil {
				t.Errorf("reports = %v, want ready with the write error", r)
			}
			time.Sleep(retryDelay)
			synctest.Wait()
			if got := st.saved(t); len(got) != 0 {
				t.Fatalf("saved after the second failure: %v", got)
			}
			time.Sleep(retryDelay)
			synctest.Wait()
			if got := st.saved(t); len(got) != 1 || got[0]["event"] != "online" {
				t.Errorf("items after retries = %v, want the online transition", got)
			}
			// Nothing pending: no more writes however long it idles.
			time.Sleep(24 * time.Hour)
			st.mu.Lock()
			defer st.mu.Unlock()
			if st.writes != 3 {
				t.Errorf("writes = %d, want 3", st.writes)
			}
		})
	})

	t.Run("MetricsShowTheStateAndTheWakeDelay", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			reg := promreg.New()
			d := deps(newTestStore(t))
			d.Metrics = reg
			src := newFakeSource(false)
			tr := NewTracker(Options{}, src, d)
			// A rebuilt tracker (config reload) shares the collectors.
			tr2 := NewTracker(Options{}, src, d)
			_, stop := runTracker(t, tr)
			defer stop()
			if v := gauge(t, tr.online); v != 0 {
				t.Errorf("online gauge = %v, want 0", v)
			}
			tr.Resume(t.Context())
			time.Sleep(3 * time.Second)
			src.set(true)
			synctest.Wait()
			if v := gauge(t, tr2.online); v != 1 {
				t.Errorf("online gauge = %v, want 1", v)
			}
			count := histogram(t, reg, "rouse_network_after_wake_seconds_count")
			sum := histogram(t, reg, "rouse_network_after_wake_seconds_sum")
			if count != 1 || sum != 3 {
				t.Errorf("wake histogram count=%v sum=%v, want 1 observation of 3s", count, sum)
			}
		})
	})

	t.Run("ItUnsubscribesWhenStopped", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			src := newFakeSource(true)
			_, stop := runTracker(t, NewWithSource("net", src, deps(newTestStore(t))))
			if n := src.subscribers(); n != 1 {
				t.Errorf("subscribers while running = %d, want 1", n)
			}
			stop()
			if n := src.subscribers(); n != 0 {
				t.Errorf("subscribers after stop = %d, want 0", n)
			}
		})
	})
}

func countEvent(items []map[string]any, event string) int {
	n := 0
	for _, d := range items {
		if d["event"] == event {
			n++
		}
	}
	return n
}

func TestKind(t *testing.T) {
	k := Kind
	if k.Name != "network" {
		t.Fatalf("Kind.Name = %q, want network", k.Name)
	}
	if k.NeedsNetwork {
		t.Errorf("NeedsNetwork = true; the network tracker must run offline")
	}
	opts := k.NewOptions()
	if o, ok := opts.(*Options); !ok || o.RecordAddresses {
		t.Fatalf("NewOptions = %#v, want *Options with record_addresses false", opts)
	}
	if errs := opts.(trackers.Validator).Validate(); len(errs) != 0 {
		t.Errorf("default options invalid: %v", errs)
	}

	t.Run("WithoutASourceRunSaysWhatIsMissing", func(t *testing.T) {
		c, err := k.New(opts, deps(newTestStore(t)))
		if err != nil {
			t.Fatal(err)
		}
		err = c.Run(t.Context(), &fakeHost{})
		if err == nil || !strings.Contains(err.Error(), "no network source") {
			t.Errorf("Run = %v, want an error saying there is no network source", err)
		}
	})

	t.Run("ItUsesTheSourceInItsDeps", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := newTestStore(t)
			d := deps(st)
			d.Network = newFakeSource(false)
			c, err := k.New(opts, d)
			if err != nil {
				t.Fatal(err)
			}
			_, stop := runTracker(t, c.(*Tracker))
			defer stop()
			if got := st.saved(t); len(got) != 1 || got[0]["event"] != "offline" {
				t.Errorf("items = %v, want the offline status", got)
			}
		})
	})

	t.Run("WrongOptionsAreAnError", func(t *testing.T) {
		if _, err := k.New(struct{}{}, deps(newTestStore(t))); err == nil {
			t.Errorf("New with foreign options = nil error")
		}
	})
}

func gauge(t *testing.T, g *promreg.Gauge) float64 {
	t.Helper()
	return g.Get()
}

// histogram returns the one sample of name (a histogram's _count or
// _sum), checking its labels are tracker=net.
func histogram(t *testing.T, reg *promreg.Registry, name string) float64 {
	t.Helper()
	samples := reg.Samples(name)
	if len(samples) != 1 {
		t.Fatalf("no single %s in the registry: %v", name, samples)
	}
	for series, v := range samples {
		if want := name + `{tracker="net"}`; series != want {
			t.Errorf("series %s, want %s", series, want)
		}
		return v
	}
	return 0
}
