package scheduler

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/wire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// memStore is an in-memory Store.
type memStore struct {
	mu     sync.Mutex
	states map[string][2]time.Time
	runs   []wire.JobRun
	fail   atomic.Bool // every call fails
}

func newMemStore() *memStore { return &memStore{states: map[string][2]time.Time{}} }

var errStoreDown = errors.New("store closed")

func (m *memStore) JobState(ctx context.Context, job string) (time.Time, time.Time, error) {
	if m.fail.Load() {
		return time.Time{}, time.Time{}, errStoreDown
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.states[job]
	return st[0], st[1], nil
}

func (m *memStore) SetJobState(ctx context.Context, job string, last, next time.Time) error {
	if m.fail.Load() {
		return errStoreDown
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.states[job] = [2]time.Time{last, next}
	return nil
}

func (m *memStore) AddJobRun(ctx context.Context, r wire.JobRun) (int64, error) {
	if m.fail.Load() {
		return 0, errStoreDown
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r.ID = int64(len(m.runs) + 1)
	m.runs = append(m.runs, r)
	return r.ID, nil
}

func (m *memStore) UpdateJobRun(ctx context.Context, r wire.JobRun) error {
	if m.fail.Load() {
		return errStoreDown
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if r.ID < 1 || int(r.ID) > len(m.runs) {
		return errors.New("no such run")
	}
	m.runs[r.ID-1] = r
	return nil
}

func (m *memStore) JobRuns(ctx context.Context, job string, limit int) ([]wire.JobRun, error) {
	if m.fail.Load() {
		return nil, errStoreDown
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []wire.JobRun
	for i := len(m.runs) - 1; i >= 0 && (limit <= 0 || len(out) < limit); i-- {
		if m.runs[i].Job == job {
			out = append(out, m.runs[i])
		}
	}
	return out, nil
}

// all returns every run of job, oldest first.
func (m *memStore) all(job string) []wire.JobRun {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []wire.JobRun
	for _, r := range m.runs {
		if r.Job == job {
			out = append(out, r)
		}
	}
	return out
}

// made returns the runs of job that were actually made (not skipped).
func (m *memStore) made(job string) []wire.JobRun {
	var out []wire.JobRun
	for _, r := range m.all(job) {
		if r.Result != ResultSkipped {
			out = append(out, r)
		}
	}
	return out
}

func (m *memStore) skipped(job, reason string) []wire.JobRun {
	var out []wire.JobRun
	for _, r := range m.all(job) {
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
	store  *memStore
	host   *fakeHost
	s      *Scheduler
	cancel context.CancelFunc
	done   chan error
}

// newHarness builds a scheduler whose wall clock reads start. Call it
// inside synctest.Test.
func newHarness(t *testing.T, start time.Time, store *memStore, jobs []Job, tweak func(*Options)) *harness {
	t.Helper()
	h := &harness{t: t, clock: &wallClock{}, store: store, host: &fakeHost{}}
	h.clock.at(start)
	o := Options{Store: store, Logger: quietLogger(), Now: h.clock.now}
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
