package exec

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
	"gopkg.in/yaml.v3"

	"github.com/rouse-dev/rouse/internal/promreg"
	"github.com/rouse-dev/rouse/trackers"
)

func TestMain(m *testing.M) {
	if mode := helperMode(); mode != "" {
		helperMain(mode)
		return
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		reapTestOrphans()
		os.Exit(code)
	}))
}

// report is one Host.Report call.
type report struct {
	at    time.Time
	state trackers.State
	err   error
}

// fakeHost records reports; waitFor lets real-time tests block on them.
type fakeHost struct {
	log     *slog.Logger // nil: discard
	mu      sync.Mutex
	reports []report
	changed chan struct{}
}

func newHost() *fakeHost { return &fakeHost{changed: make(chan struct{}, 1)} }

func (h *fakeHost) Report(s trackers.State, err error) {
	h.mu.Lock()
	h.reports = append(h.reports, report{at: time.Now(), state: s, err: err})
	h.mu.Unlock()
	select {
	case h.changed <- struct{}{}:
	default:
	}
}

func (h *fakeHost) Logger() *slog.Logger {
	if h.log != nil {
		return h.log
	}
	return slog.New(slog.DiscardHandler)
}

// captureHandler keeps every log record's message and attributes.
type captureHandler struct {
	mu      sync.Mutex
	records []map[string]any
}

func (c *captureHandler) Enabled(context.Context, slog.Level) bool { return true }
func (c *captureHandler) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *captureHandler) WithGroup(string) slog.Handler            { return c }
func (c *captureHandler) Handle(_ context.Context, r slog.Record) error {
	m := map[string]any{"msg": r.Message}
	r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.Any(); return true })
	c.mu.Lock()
	c.records = append(c.records, m)
	c.mu.Unlock()
	return nil
}

func (c *captureHandler) byMsg(msg string) []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []map[string]any
	for _, r := range c.records {
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

func (h *fakeHost) all() []report {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]report(nil), h.reports...)
}

func (h *fakeHost) count(match func(report) bool) int {
	n := 0
	for _, r := range h.all() {
		if match(r) {
			n++
		}
	}
	return n
}

// waitFor blocks until at least n reports match, failing the test after a
// generous guard (it never asserts speed).
func (h *fakeHost) waitFor(t *testing.T, n int, what string, match func(report) bool) {
	t.Helper()
	guard := time.NewTimer(20 * time.Second)
	defer guard.Stop()
	for h.count(match) < n {
		select {
		case <-h.changed:
		case <-guard.C:
			t.Fatalf("timed out waiting for %d× %s; reports: %v", n, what, h.all())
		}
	}
}

func isState(s trackers.State) func(report) bool {
	return func(r report) bool { return r.state == s }
}

func exitedReport(r report) bool {
	return r.state == trackers.StateStarting && r.err != nil && strings.Contains(r.err.Error(), "child exited")
}

// fakeProc is a process that lives in fake time.
type fakeProc struct {
	pid     int
	done    chan struct{}
	once    sync.Once
	err     error
	mu      sync.Mutex
	stopped bool
}

func (p *fakeProc) Pid() int              { return p.pid }
func (p *fakeProc) Done() <-chan struct{} { return p.done }
func (p *fakeProc) Err() error            { return p.err }
func (p *fakeProc) LastLine() string      { return "" }
func (p *fakeProc) exit(err error) {
	p.once.Do(func() { p.err = err; close(p.done) })
}
func (p *fakeProc) Stop(time.Duration) {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	p.exit(errors.New("signal: terminated"))
}
func (p *fakeProc) wasStopped() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopped
}

// fakeStarter hands out fakeProcs and remembers when each started.
type fakeStarter struct {
	mu     sync.Mutex
	procs  []*fakeProc
	starts []time.Time
	life   func(n int) time.Duration // how long the n-th process lives (<0: forever)
	// exitErr is the n-th process's exit error; nil: "exit status 1".
	exitErr func(n int) error
	wg      sync.WaitGroup
}

func (s *fakeStarter) start(*slog.Logger) (process, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.procs)
	p := &fakeProc{pid: 1000 + n, done: make(chan struct{})}
	s.procs = append(s.procs, p)
	s.starts = append(s.starts, time.Now())
	if s.life != nil {
		if d := s.life(n); d >= 0 {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				select {
				case <-time.After(d):
					err := errors.New("exit status 1")
					if s.exitErr != nil {
						err = s.exitErr(n)
					}
					p.exit(err)
				case <-p.done:
				}
			}()
		}
	}
	return p, nil
}

func (s *fakeStarter) get() ([]*fakeProc, []time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*fakeProc(nil), s.procs...), append([]time.Time(nil), s.starts...)
}

// newFake builds a Tracker with a fake starter and an optional fake check.
func newFake(t *testing.T, mut func(*Options), check checker) (*Tracker, *fakeStarter) {
	t.Helper()
	o := DefaultOptions()
	o.Command = []string{"fake"}
	if mut != nil {
		mut(o)
	}
	tr, err := New(*o, trackers.Deps{Name: "fake", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	fs := &fakeStarter{}
	tr.start = fs.start
	tr.check = check
	return tr, fs
}

// runInBubble starts Run and returns a stop function that cancels it and
// returns Run's error.
func runInBubble(tr *Tracker, h trackers.Host) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- tr.Run(ctx, h) }()
	return func() error {
		cancel()
		return <-errc
	}
}

func TestReadyAfterDefault(t *testing.T) {
	t.Run("ReportsReadyOnceTheProcessRanOneSecond", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tr, _ := newFake(t, nil, nil)
			h := newHost()
			start := time.Now()
			stop := runInBubble(tr, h)
			time.Sleep(999 * time.Millisecond)
			synctest.Wait()
			if n := h.count(isState(trackers.StateReady)); n != 0 {
				t.Fatalf("ready before 1s: %v", h.all())
			}
			time.Sleep(time.Millisecond)
			synctest.Wait()
			rs := h.all()
			if len(rs) != 2 || rs[0].state != trackers.StateStarting || rs[1].state != trackers.StateReady {
				t.Fatalf("want starting then ready, got %v", rs)
			}
			if got := rs[1].at.Sub(start); got != DefaultReadyAfter {
				t.Fatalf("ready after %s, want %s", got, DefaultReadyAfter)
			}
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
		})
	})
}

func TestNeverReadyStaysStarting(t *testing.T) {
	t.Run("AFailingCheckKeepsRunningAndNeverReportsReady", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var mu sync.Mutex
			checks := 0
			check := func(ctx context.Context) error {
				mu.Lock()
				checks++
				mu.Unlock()
				return errors.New("ready.tcp: connection refused")
			}
			tr, fs := newFake(t, nil, check)
			h := newHost()
			stop := runInBubble(tr, h)
			time.Sleep(time.Minute)
			synctest.Wait()
			if n := h.count(isState(trackers.StateReady)); n != 0 {
				t.Fatalf("reported ready: %v", h.all())
			}
			mu.Lock()
			got := checks
			mu.Unlock()
			// five ramping checks in the first 310ms, then one every ready_interval
			if want := 5 + int((time.Minute-310*time.Millisecond)/DefaultReadyInterval); got < want-1 || got > want {
				t.Fatalf("check ran %d times in a minute, want about %d", got, want)
			}
			// The same error is reported once, not on every check.
			if n := h.count(func(r report) bool { return r.err != nil }); n != 1 {
				t.Fatalf("check error reported %d times, want 1: %v", n, h.all())
			}
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			procs, _ := fs.get()
			if len(procs) != 1 || !procs[0].wasStopped() {
				t.Fatalf("want the one process stopped, got %d procs", len(procs))
			}
		})
	})
}

func TestRestartBackoff(t *testing.T) {
	t.Run("DelaysDoubleUpToTheCapWithTheUpperJitter", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tr, fs := newFake(t, func(o *Options) {
				o.RestartBackoff = Backoff{Initial: time.Second, Max: 8 * time.Second}
			}, nil)
			tr.randN = func(n int64) int64 { return n - 1 } // the top of each range
			fs.life = func(int) time.Duration { return 0 }
			h := newHost()
			t0 := time.Now()
			stop := runInBubble(tr, h)
			time.Sleep(30 * time.Second)
			synctest.Wait()
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			fs.wg.Wait()
			_, starts := fs.get()
			want := []time.Duration{0, 1, 3, 7, 15, 23} // +1, +2, +4, +8, +8
			if len(starts) < len(want) {
				t.Fatalf("only %d starts", len(starts))
			}
			for i, w := range want {
				if got := starts[i].Sub(t0); got != w*time.Second {
					t.Errorf("start %d at %s, want %s", i, got, w*time.Second)
				}
			}
		})
	})
	t.Run("RandomDelaysStayWithinFullJitterBounds", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tr, fs := newFake(t, func(o *Options) {
				o.RestartBackoff = Backoff{Initial: 100 * time.Millisecond, Max: 2 * time.Second}
			}, nil)
			fs.life = func(int) time.Duration { return 0 }
			h := newHost()
			stop := runInBubble(tr, h)
			time.Sleep(2 * time.Minute)
			synctest.Wait()
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			fs.wg.Wait()
			_, starts := fs.get()
			if len(starts) < 20 {
				t.Fatalf("only %d restarts in 2 minutes", len(starts))
			}
			var sum time.Duration
			for i := 1; i < len(starts); i++ {
				gap := starts[i].Sub(starts[i-1])
				ceil := min(100*time.Millisecond<<(i-1), 2*time.Second)
				if i > 6 {
					ceil = 2 * time.Second
				}
				if gap < 0 || gap > ceil {
					t.Errorf("gap %d = %s, want within [0, %s]", i, gap, ceil)
				}
				if i > 6 {
					sum += gap
				}
			}
			// Full jitter averages half the cap; a fixed delay would not.
			if avg := sum / time.Duration(len(starts)-7); avg < 500*time.Millisecond || avg > 1500*time.Millisecond {
				t.Errorf("average capped delay %s, want about 1s", avg)
			}
			if n := h.count(exitedReport); n < len(starts)-1 {
				t.Errorf("%d exit reports for %d starts", n, len(starts))
			}
		})
	})
	t.Run("ResetsAfterTheProcessStayedUpAMinute", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tr, fs := newFake(t, func(o *Options) {
				o.RestartBackoff = Backoff{Initial: time.Second, Max: 30 * time.Second}
			}, nil)
			tr.randN = func(n int64) int64 { return n - 1 }
			fs.life = func(n int) time.Duration {
				if n == 3 {
					return time.Minute // a long good run
				}
				if n > 4 {
					return -1
				}
				return 0
			}
			h := newHost()
			stop := runInBubble(tr, h)
			time.Sleep(5 * time.Minute)
			synctest.Wait()
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			fs.wg.Wait()
			_, s := fs.get()
			if len(s) != 6 {
				t.Fatalf("want 6 starts, got %d", len(s))
			}
			gaps := []time.Duration{s[1].Sub(s[0]), s[2].Sub(s[1]), s[3].Sub(s[2]), s[4].Sub(s[3]) - time.Minute, s[5].Sub(s[4])}
			want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, time.Second, 2 * time.Second}
			for i := range want {
				if gaps[i] != want[i] {
					t.Errorf("delay %d = %s, want %s", i, gaps[i], want[i])
				}
			}
		})
	})
	t.Run("AWakeDuringTheDelayRestartsAtOnce", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tr, fs := newFake(t, func(o *Options) {
				o.RestartBackoff = Backoff{Initial: time.Hour, Max: time.Hour}
			}, nil)
			tr.randN = func(n int64) int64 { return n - 1 }
			fs.life = func(n int) time.Duration {
				if n == 0 {
					return 0
				}
				return -1
			}
			h := newHost()
			stop := runInBubble(tr, h)
			time.Sleep(time.Second)
			synctest.Wait()
			if _, s := fs.get(); len(s) != 1 {
				t.Fatalf("want one start before the wake, got %d", len(s))
			}
			woke := time.Now()
			tr.Resume(context.Background())
			synctest.Wait()
			_, s := fs.get()
			if len(s) != 2 || !s[1].Equal(woke) {
				t.Fatalf("want a restart at the wake, got starts %v", s)
			}
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			fs.wg.Wait()
		})
	})
}

func TestMetrics(t *testing.T) {
	t.Run("CountsExitsAndSharesTheCounterAcrossRebuilds", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			reg := promreg.New()
			o := DefaultOptions()
			o.Command = []string{"fake"}
			deps := trackers.Deps{Name: "tunnel", Logger: slog.New(slog.DiscardHandler), Metrics: reg}
			if _, err := New(*o, deps); err != nil {
				t.Fatal(err)
			}
			tr, err := New(*o, deps) // a rebuild under the same name
			if err != nil {
				t.Fatal(err)
			}
			fs := &fakeStarter{life: func(n int) time.Duration {
				if n < 3 {
					return 0
				}
				return -1
			}}
			tr.start = fs.start
			tr.randN = func(n int64) int64 { return n - 1 }
			stop := runInBubble(tr, newHost())
			time.Sleep(time.Minute)
			synctest.Wait()
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			fs.wg.Wait()
			var values []float64
			for _, v := range reg.Samples("rouse_exec_child_exits_total") {
				values = append(values, v)
			}
			if fmt.Sprint(values) != "[3]" {
				t.Fatalf("exit counter series %v, want one at 3", values)
			}
		})
	})
}

func TestResumeInFakeTime(t *testing.T) {
	t.Run("WithoutRestartOnWakeItRechecksAndKeepsTheProcess", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var mu sync.Mutex
			healthy := true
			check := func(ctx context.Context) error {
				mu.Lock()
				defer mu.Unlock()
				if !healthy {
					return errors.New("ready.tcp: connection refused")
				}
				return nil
			}
			tr, fs := newFake(t, nil, check)
			h := newHost()
			stop := runInBubble(tr, h)
			time.Sleep(time.Second)
			synctest.Wait()
			if n := h.count(isState(trackers.StateReady)); n != 1 {
				t.Fatalf("want ready once, got %v", h.all())
			}
			mu.Lock()
			healthy = false // the tunnel is down after the wake
			mu.Unlock()
			tr.Resume(context.Background())
			time.Sleep(10 * time.Second)
			synctest.Wait()
			if n := h.count(isState(trackers.StateReady)); n != 1 {
				t.Fatalf("ready again while the check fails: %v", h.all())
			}
			mu.Lock()
			healthy = true
			mu.Unlock()
			time.Sleep(DefaultReadyInterval)
			synctest.Wait()
			if n := h.count(isState(trackers.StateReady)); n != 2 {
				t.Fatalf("want ready again after the check passed, got %v", h.all())
			}
			if procs, _ := fs.get(); len(procs) != 1 || procs[0].wasStopped() {
				t.Fatalf("the process was restarted: %d procs", len(procs))
			}
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
		})
	})
	t.Run("WithRestartOnWakeItStopsAndStartsTheProcess", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tr, fs := newFake(t, func(o *Options) { o.RestartOnWake = true }, nil)
			h := newHost()
			stop := runInBubble(tr, h)
			time.Sleep(2 * time.Second)
			synctest.Wait()
			tr.Resume(context.Background())
			time.Sleep(2 * time.Second)
			synctest.Wait()
			procs, _ := fs.get()
			if len(procs) != 2 || !procs[0].wasStopped() || procs[1].wasStopped() {
				t.Fatalf("want the first process stopped and a second one running, got %d", len(procs))
			}
			if n := h.count(isState(trackers.StateReady)); n != 2 {
				t.Fatalf("want ready twice, got %v", h.all())
			}
			if n := h.count(exitedReport); n != 0 {
				t.Fatalf("a wake restart is not an exit: %v", h.all())
			}
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
		})
	})
	t.Run("AWakeBeforeRunIsIgnored", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tr, fs := newFake(t, func(o *Options) { o.RestartOnWake = true }, nil)
			tr.Resume(context.Background())
			tr.Resume(context.Background()) // never blocks
			h := newHost()
			stop := runInBubble(tr, h)
			time.Sleep(5 * time.Second)
			synctest.Wait()
			if procs, _ := fs.get(); len(procs) != 1 {
				t.Fatalf("want one process, got %d", len(procs))
			}
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
		})
	})
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		mut  func(*Options)
		keys []string
	}{
		{"DefaultsWithACommandAreValid", func(o *Options) {}, nil},
		{"CommandIsRequired", func(o *Options) { o.Command = nil }, []string{"command"}},
		{"ProgramMustNotBeEmpty", func(o *Options) { o.Command = []string{" "} }, []string{"command"}},
		{"TCPNeedsHostAndPort", func(o *Options) { o.Ready.TCP = "localhost" }, []string{"ready.tcp"}},
		{"HTTPNeedsAnHTTPURL", func(o *Options) { o.Ready.HTTP = "ftp://x/y" }, []string{"ready.http"}},
		{"ReadyCommandMustNotBeEmpty", func(o *Options) { o.Ready.Command = []string{} }, []string{"ready.command"}},
		{"AtMostOneReadyCheck", func(o *Options) {
			o.Ready.TCP = "127.0.0.1:1"
			o.Ready.HTTP = "http://127.0.0.1:1/"
		}, []string{"ready"}},
		{"ReadyIntervalMustBePositive", func(o *Options) { o.ReadyInterval = 0 }, []string{"ready_interval"}},
		{"ReadyAfterMustNotBeNegative", func(o *Options) { o.ReadyAfter = -time.Second }, []string{"ready_after"}},
		{"BackoffMaxAtLeastInitial", func(o *Options) { o.RestartBackoff = Backoff{Initial: 2 * time.Second, Max: time.Second} }, []string{"restart_backoff.max"}},
		{"BackoffInitialMustBePositive", func(o *Options) { o.RestartBackoff.Initial = 0 }, []string{"restart_backoff.initial"}},
		{"StopTimeoutMustBePositive", func(o *Options) { o.StopTimeout = 0 }, []string{"stop_timeout"}},
		{"OutputLinesMustBeInRange", func(o *Options) { o.OutputLines = -1 }, []string{"output_lines"}},
		{"EnvNamesMustBeValid", func(o *Options) { o.Env = map[string]string{"A=B": "x"} }, []string{"env"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := DefaultOptions()
			o.Command = []string{"true"}
			c.mut(o)
			var keys []string
			for _, e := range o.Validate() {
				keys = append(keys, e.Key)
				if e.Msg == "" {
					t.Errorf("%s: empty message", e.Key)
				}
			}
			if fmt.Sprint(keys) != fmt.Sprint(c.keys) {
				t.Fatalf("keys %v, want %v", keys, c.keys)
			}
			_, err := New(*o, trackers.Deps{Name: "x"})
			if (err != nil) != (len(c.keys) > 0) {
				t.Fatalf("New error %v, want error: %v", err, len(c.keys) > 0)
			}
		})
	}
}

func TestValidateDir(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		dir    string
		errMsg string
	}{
		{tmp, ""},
		{filepath.Join(tmp, "gone"), "does not exist"},
		{file, "not a directory"},
		{"relative/gone", ""}, // checked at start
		{"~/gone-" + filepath.Base(tmp), ""},
	} {
		o := DefaultOptions()
		o.Command = []string{"true"}
		o.Dir = c.dir
		errs := o.Validate()
		switch {
		case c.errMsg == "" && len(errs) != 0:
			t.Errorf("dir %q: %v", c.dir, errs)
		case c.errMsg != "" && (len(errs) != 1 || errs[0].Key != "dir" || !strings.Contains(errs[0].Msg, c.errMsg) || !strings.Contains(errs[0].Msg, c.dir)):
			t.Errorf("dir %q: %v, want one dir error with %q", c.dir, errs, c.errMsg)
		}
	}
}

func TestKind(t *testing.T) {
	t.Run("DecodesTheDocumentedYAMLIntoDefaults", func(t *testing.T) {
		k := Kind
		if k.Name != "exec" || k.NeedsNetwork {
			t.Fatalf("exec kind: %+v", k)
		}
		opts := k.NewOptions()
		src := `
command: [ssh, -N, -L, "9330:localhost:9330", nas]
env: {KEY: value}
ready: {tcp: "127.0.0.1:9330"}
ready_interval: 300ms
restart_on_wake: true
restart_backoff: {initial: 2s, max: 1m}
`
		dec := yaml.NewDecoder(strings.NewReader(src))
		dec.KnownFields(true)
		if err := dec.Decode(opts); err != nil {
			t.Fatal(err)
		}
		o := opts.(*Options)
		if o.Ready.TCP != "127.0.0.1:9330" || o.ReadyInterval != 300*time.Millisecond || !o.RestartOnWake ||
			o.RestartBackoff != (Backoff{2 * time.Second, time.Minute}) || o.Env["KEY"] != "value" || len(o.Command) != 5 {
			t.Fatalf("decoded %+v", o)
		}
		if o.StopTimeout != DefaultStopTimeout || o.OutputLines != DefaultOutputLines || o.ReadyAfter != DefaultReadyAfter {
			t.Fatalf("defaults lost: %+v", o)
		}
		if errs := o.Validate(); len(errs) != 0 {
			t.Fatalf("valid options rejected: %v", errs)
		}
		c, err := k.New(opts, trackers.Deps{Name: "tunnel"})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := c.(trackers.Resumer); !ok {
			t.Fatal("exec component is not a Resumer")
		}
	})
	t.Run("RejectsForeignOptions", func(t *testing.T) {
		if _, err := Kind.New(struct{}{}, trackers.Deps{Name: "x"}); err == nil {
			t.Fatal("want an error")
		}
	})
}

func TestRing(t *testing.T) {
	t.Run("KeepsTheLastLinesOldestFirst", func(t *testing.T) {
		r := newRing(3)
		if got := r.snapshot(); len(got) != 0 {
			t.Fatalf("empty ring: %v", got)
		}
		for i := range 5 {
			r.add(fmt.Sprint(i))
		}
		if got := fmt.Sprint(r.snapshot()); got != "[2 3 4]" {
			t.Fatalf("snapshot %s", got)
		}
	})
	t.Run("ZeroKeepsNothing", func(t *testing.T) {
		r := newRing(0)
		r.add("x")
		if len(r.snapshot()) != 0 {
			t.Fatal("kept a line")
		}
	})
}

func TestLimiter(t *testing.T) {
	t.Run("LetsTwentyLinesASecondThroughAndCountsTheRest", func(t *testing.T) {
		l := &limiter{rate: logRate}
		t0 := time.Unix(1000, 0)
		passed := 0
		for i := range 100 {
			ok, dropped := l.allow(t0.Add(time.Duration(i) * time.Millisecond))
			if dropped != 0 {
				t.Fatalf("dropped reported inside the window")
			}
			if ok {
				passed++
			}
		}
		if passed != logRate {
			t.Fatalf("%d passed, want %d", passed, logRate)
		}
		ok, dropped := l.allow(t0.Add(time.Second))
		if !ok || dropped != 100-logRate {
			t.Fatalf("new window: ok=%v dropped=%d", ok, dropped)
		}
		if n := l.flush(); n != 0 {
			t.Fatalf("flush %d", n)
		}
	})
}

func TestReadLines(t *testing.T) {
	t.Run("CutsOverlongLinesAndKeepsAPartialLastLine", func(t *testing.T) {
		s := &sink{log: slog.New(slog.DiscardHandler), ring: newRing(10), lim: &limiter{rate: logRate}}
		long := strings.Repeat("x", 3*maxLineBytes)
		readLines(strings.NewReader("a\r\n"+long+"\nb\nno newline"), "stdout", s)
		got := s.ring.snapshot()
		if len(got) != 4 || got[0] != "a" || len(got[1]) != maxLineBytes || got[2] != "b" || got[3] != "no newline" {
			t.Fatalf("lines %q", got)
		}
	})
}

func TestOneshot(t *testing.T) {
	// oneshotFake is a Tracker whose n-th run lives life(n) and exits with
	// exit(n).
	oneshotFake := func(t *testing.T, restartOnWake bool, life func(int) time.Duration, exit func(int) error) (*Tracker, *fakeStarter) {
		tr, fs := newFake(t, func(o *Options) { o.Oneshot = true; o.RestartOnWake = restartOnWake }, nil)
		fs.life, fs.exitErr = life, exit
		return tr, fs
	}
	ok := func(int) error { return nil }
	t.Run("ReadyWhenItExits0AndStaysReady", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tr, fs := oneshotFake(t, false, func(int) time.Duration { return 3 * time.Second }, ok)
			h := newHost()
			stop := runInBubble(tr, h)
			time.Sleep(3*time.Second - time.Millisecond)
			synctest.Wait()
			if n := h.count(isState(trackers.StateReady)); n != 0 {
				t.Fatalf("ready while running: %v", h.all())
			}
			time.Sleep(time.Hour)
			synctest.Wait()
			rs := h.all()
			if len(rs) != 2 || rs[0].state != trackers.StateStarting || rs[1].state != trackers.StateReady || rs[1].err != nil {
				t.Fatalf("want starting then ready, got %v", rs)
			}
			if procs, _ := fs.get(); len(procs) != 1 || tr.Pid() != 0 {
				t.Fatalf("ran %d times (pid %d now), want once and none running", len(procs), tr.Pid())
			}
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
		})
	})
	t.Run("ANonZeroExitFailsRunWithTheExitInTheError", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tr, _ := oneshotFake(t, false, func(int) time.Duration { return time.Second }, func(int) error { return errors.New("exit status 3") })
			h := newHost()
			err := tr.Run(context.Background(), h)
			if err == nil || !strings.Contains(err.Error(), "oneshot failed: exit status 3") {
				t.Fatalf("Run: %v, want the exit status", err)
			}
			if n := h.count(isState(trackers.StateReady)); n != 0 {
				t.Fatalf("a failed oneshot was reported ready: %v", h.all())
			}
		})
	})
	t.Run("AWakeWithoutRestartOnWakeReportsReadyAgainWithoutRunning", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tr, fs := oneshotFake(t, false, func(int) time.Duration { return time.Second }, ok)
			h := newHost()
			stop := runInBubble(tr, h)
			time.Sleep(2 * time.Second)
			tr.Resume(context.Background())
			time.Sleep(time.Second)
			synctest.Wait()
			if n := h.count(isState(trackers.StateReady)); n != 2 {
				t.Fatalf("want ready twice, got %v", h.all())
			}
			if procs, _ := fs.get(); len(procs) != 1 {
				t.Fatalf("ran %d times, want once", len(procs))
			}
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
		})
	})
	t.Run("RestartOnWakeRunsItAgain", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tr, fs := oneshotFake(t, true, func(int) time.Duration { return time.Second }, ok)
			h := newHost()
			stop := runInBubble(tr, h)
			time.Sleep(2 * time.Second)
			tr.Resume(context.Background())
			time.Sleep(500 * time.Millisecond)
			synctest.Wait()
			if procs, _ := fs.get(); len(procs) != 2 || tr.Pid() == 0 {
				t.Fatalf("ran %d times, want a second run going", len(procs))
			}
			time.Sleep(time.Second)
			synctest.Wait()
			if n := h.count(isState(trackers.StateReady)); n != 2 {
				t.Fatalf("want ready after each run, got %v", h.all())
			}
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
		})
	})
	t.Run("AWakeWhileItRunsRunsItOnceMoreAfterItCompletes", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tr, fs := oneshotFake(t, true, func(int) time.Duration { return 10 * time.Second }, ok)
			h := newHost()
			stop := runInBubble(tr, h)
			time.Sleep(time.Second)
			tr.Resume(context.Background())
			time.Sleep(8 * time.Second)
			synctest.Wait()
			procs, _ := fs.get()
			if len(procs) != 1 || procs[0].wasStopped() {
				t.Fatal("a wake stopped the step half-way")
			}
			time.Sleep(2 * time.Second) // the first run completes; the second starts
			synctest.Wait()
			if n := h.count(isState(trackers.StateReady)); n != 0 {
				t.Fatalf("ready before the run the wake asked for: %v", h.all())
			}
			time.Sleep(10 * time.Second)
			synctest.Wait()
			if procs, _ := fs.get(); len(procs) != 2 || h.count(isState(trackers.StateReady)) != 1 {
				t.Fatalf("want two runs and one ready, got %d runs, %v", len(procs), h.all())
			}
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
		})
	})
	t.Run("StoppingARunningStepStopsItAndReturnsNil", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tr, fs := oneshotFake(t, false, func(int) time.Duration { return -1 }, ok)
			h := newHost()
			stop := runInBubble(tr, h)
			time.Sleep(time.Second)
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if procs, _ := fs.get(); len(procs) != 1 || !procs[0].wasStopped() {
				t.Fatal("the running step was not stopped")
			}
		})
	})
	t.Run("ReadyChecksDoNotApply", func(t *testing.T) {
		o := DefaultOptions()
		o.Command = []string{"true"}
		o.Oneshot = true
		o.Ready.TCP = "127.0.0.1:1"
		if errs := o.Validate(); len(errs) != 1 || errs[0].Key != "ready" {
			t.Fatalf("Validate: %v", errs)
		}
	})
}
