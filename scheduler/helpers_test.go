package scheduler

import (
	"context"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rouse-dev/rouse/agent/store"
	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/wire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// closeTimeout bounds a test store's Close at cleanup.
const closeTimeout = 10 * time.Second

// testStore is the real store (agent/store, SQLite) in the test's temporary
// directory, with read helpers for assertions. Our own parts are never
// faked in tests; a store that is down is this one, closed.
type testStore struct {
	*store.Store
	tb testing.TB
}

var _ Store = (*testStore)(nil)

// openStore opens a new store in tb.TempDir() and closes it at tb's
// cleanup (closing it earlier is allowed). Inside a synctest bubble, call it
// inside the bubble with the bubble's t: database/sql starts goroutines at
// open, and they belong to the bubble and must end (at Close, run by the
// bubble's cleanup) before it returns.
func openStore(tb testing.TB) *testStore {
	tb.Helper()
	st, err := store.Open(context.Background(), filepath.Join(tb.TempDir(), "rouse.db"),
		store.Options{Logger: quietLogger()})
	if err != nil {
		tb.Fatalf("open the store: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		if err := st.Close(ctx); err != nil {
			tb.Errorf("close the store: %v", err)
		}
	})
	return &testStore{Store: st, tb: tb}
}

// down closes the store, as the agent does around a suspend: every call
// then fails with an error wrapping store.ErrClosed until up.
func (s *testStore) down() {
	s.tb.Helper()
	if err := s.Close(context.Background()); err != nil {
		s.tb.Fatalf("close the store: %v", err)
	}
}

// up opens the closed store again.
func (s *testStore) up() {
	s.tb.Helper()
	if err := s.Reopen(context.Background()); err != nil {
		s.tb.Fatalf("reopen the store: %v", err)
	}
}

// all returns every run of job, oldest first.
func (s *testStore) all(job string) []wire.JobRun {
	runs, err := s.JobRuns(context.Background(), job, math.MaxInt32)
	if err != nil {
		s.tb.Errorf("runs of %s: %v", job, err)
	}
	slices.Reverse(runs)
	return runs
}

// made returns the runs of job that were actually made (not skipped).
func (s *testStore) made(job string) []wire.JobRun {
	var out []wire.JobRun
	for _, r := range s.all(job) {
		if r.Result != ResultSkipped {
			out = append(out, r)
		}
	}
	return out
}

func (s *testStore) skipped(job, reason string) []wire.JobRun {
	var out []wire.JobRun
	for _, r := range s.all(job) {
		if r.Result == ResultSkipped && r.Reason == reason {
			out = append(out, r)
		}
	}
	return out
}

// fakeHost records reports.
type fakeHost struct {
	mu      sync.Mutex
	reports []trackers.State
}

func (h *fakeHost) Report(s trackers.State, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reports = append(h.reports, s)
}

func (h *fakeHost) Logger() *slog.Logger { return quietLogger() }

func (h *fakeHost) readyCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, s := range h.reports {
		if s == trackers.StateReady {
			n++
		}
	}
	return n
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// wallClock is a wall clock that can be moved apart from the runtime's
// (monotonic, timer) clock: moving it forward with no time passing is a
// suspend as the process sees it; moving it back is the clock set back.
type wallClock struct {
	off atomic.Int64
}

// at makes the clock read t now.
func (c *wallClock) at(t time.Time) { c.off.Store(int64(time.Until(t))) }

func (c *wallClock) now() time.Time { return time.Now().Add(time.Duration(c.off.Load())) }

func (c *wallClock) jump(d time.Duration) { c.off.Add(int64(d)) }

// harness runs one Scheduler inside a synctest bubble.
type harness struct {
	t      *testing.T
	clock  *wallClock
	store  *testStore
	host   *fakeHost
	s      *Scheduler
	cancel context.CancelFunc
	done   chan error
}

// newHarness builds a scheduler on st whose wall clock reads start. Call it
// (and openStore) inside synctest.Test.
func newHarness(t *testing.T, start time.Time, st *testStore, jobs []Job, tweak func(*Options)) *harness {
	t.Helper()
	h := &harness{t: t, clock: &wallClock{}, store: st, host: &fakeHost{}}
	h.clock.at(start)
	o := Options{Store: st, Logger: quietLogger(), Now: h.clock.now}
	if tweak != nil {
		tweak(&o)
	}
	s, err := New(jobs, o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.s = s
	return h
}

// start runs the scheduler and waits until it reported ready.
func (h *harness) start() {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- h.s.Run(ctx, h.host) }()
	h.settle()
	if h.host.readyCount() == 0 {
		h.t.Fatal("scheduler did not report ready")
	}
	h.t.Cleanup(h.stop)
}

// stop cancels Run and waits for it.
func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	if err := <-h.done; err != nil {
		h.t.Errorf("Run returned %v", err)
	}
}

// settle lets every goroutine in the bubble run until it blocks.
func (h *harness) settle() { synctestWait() }

// advance lets d of (fake) time pass, awake.
func (h *harness) advance(d time.Duration) {
	time.Sleep(d)
	h.settle()
}

// suspend simulates a sleep of d the way the agent drives it: Pause, the
// wall clock jumps while no timer moves, Resume.
func (h *harness) suspend(d time.Duration) {
	h.s.Pause(context.Background())
	h.settle()
	h.clock.jump(d)
	h.s.Resume(context.Background())
	h.settle()
}

func scheduledTimes(runs []wire.JobRun) []time.Time {
	out := make([]time.Time, 0, len(runs))
	for _, r := range runs {
		out = append(out, r.ScheduledAt.UTC())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out
}

func wantTimes(t *testing.T, what string, got []time.Time, want ...time.Time) {
	t.Helper()
	for i := range want {
		want[i] = want[i].UTC()
	}
	if !slices.EqualFunc(got, want, time.Time.Equal) {
		t.Fatalf("%s: scheduled times\n got %v\nwant %v", what, got, want)
	}
}

func okFunc(ctx context.Context) (string, error) { return "done", nil }

func utc(y int, mo time.Month, d, h, mi, s int) time.Time {
	return time.Date(y, mo, d, h, mi, s, 0, time.UTC)
}
