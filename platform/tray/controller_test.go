package tray

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rouse-dev/rouse/wire"
)

// fakeAgent is an Agent whose stream the test drives.
type fakeAgent struct {
	mu          sync.Mutex
	health      wire.Health
	healthErr   error
	healthCalls int
	wakes       int

	events  chan wire.Event
	connect chan struct{}
	lose    chan error
	fatal   chan error
}

func newFakeAgent(h wire.Health) *fakeAgent {
	return &fakeAgent{health: h, events: make(chan wire.Event), connect: make(chan struct{}), lose: make(chan error), fatal: make(chan error)}
}

func (a *fakeAgent) BaseURL() string { return "http://127.0.0.1:8000" }

func (a *fakeAgent) Health(context.Context) (wire.Health, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.healthCalls++
	return a.health, a.healthErr
}

func (a *fakeAgent) set(f func(a *fakeAgent)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f(a)
}

func (a *fakeAgent) calls() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.healthCalls
}

func (a *fakeAgent) Wake(context.Context) (wire.Wake, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.wakes++
	return wire.Wake{ID: 9, DetectedBy: "manual"}, nil
}

func (a *fakeAgent) LoginCode(context.Context) (wire.LoginCode, error) {
	return wire.LoginCode{Code: "c0de", URL: "http://127.0.0.1:8000/login?code=c0de"}, nil
}

func (a *fakeAgent) Follow(ctx context.Context, fn func(wire.Event) error, connected func(), lost func(error)) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev := <-a.events:
			if err := fn(ev); err != nil {
				return err
			}
		case <-a.connect:
			connected()
		case err := <-a.lose:
			lost(err)
		case err := <-a.fatal:
			return err
		}
	}
}

// fakeView records what is shown.
type fakeView struct {
	mu    sync.Mutex
	shown []Model
}

func (v *fakeView) Show(m Model) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.shown = append(v.shown, m)
}

func (v *fakeView) last() Model {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.shown) == 0 {
		return Model{}
	}
	return v.shown[len(v.shown)-1]
}

// logBuf is a concurrency-safe log sink (and a child process's output).
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuf) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

type rig struct {
	agent    *fakeAgent
	view     *fakeView
	logs     *logBuf
	alerts   []Alert
	opened   []string
	ctrl     *controller
	amu      sync.Mutex
	dialErrs int
}

// start runs a controller in the bubble until the test ends.
func start(t *testing.T, h wire.Health, dialErrs int) *rig {
	r := &rig{agent: newFakeAgent(h), view: &fakeView{}, logs: &logBuf{}, dialErrs: dialErrs}
	dial := func() (Agent, error) {
		r.amu.Lock()
		defer r.amu.Unlock()
		if r.dialErrs > 0 {
			r.dialErrs--
			return nil, errors.New("no API token yet")
		}
		return r.agent, nil
	}
	notify := func(a Alert) error {
		r.amu.Lock()
		defer r.amu.Unlock()
		r.alerts = append(r.alerts, a)
		return nil
	}
	open := func(u string) error {
		r.amu.Lock()
		defer r.amu.Unlock()
		r.opened = append(r.opened, u)
		return nil
	}
	log := slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	r.ctrl = newController(dial, r.view, notify, open, log, DefaultGrace)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.ctrl.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	synctest.Wait()
	return r
}

func (r *rig) nAlerts() int {
	r.amu.Lock()
	defer r.amu.Unlock()
	return len(r.alerts)
}

// settle lets the debounce pass and everything run.
func settle() {
	time.Sleep(debounce + time.Millisecond)
	synctest.Wait()
}

func readyHealth() wire.Health {
	return wire.Health{Status: wire.StatusOK, Store: wire.StoreHealth{State: "open"},
		Components: []wire.Service{svc("a", "ready"), svc("b", "ready")},
		LastWake:   &wire.WakeSummary{ID: 1, DetectedBy: "logind", WokeAt: time.Now().Add(-2 * time.Minute), Done: true, Restore: wire.RestoreSummary{DurationMS: 1300, Ready: 2}}}
}

func TestController(t *testing.T) {
	t.Run("ShowsTheHealthReadWhenTheStreamConnects", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := start(t, readyHealth(), 0)
			if m := r.view.last(); m.Look != LookOffline || m.Tooltip != "connecting to the agent…" {
				t.Fatalf("before contact: %v %q", m.Look, m.Tooltip)
			}
			r.agent.connect <- struct{}{}
			synctest.Wait()
			m := r.view.last()
			if m.Look != LookReady || m.Tooltip != "2/2 ready · woke 2 min ago · recovered in 1.3 s" || !m.CanRecover || !m.CanOpen {
				t.Fatalf("after contact: %+v", m)
			}
		})
	})

	t.Run("ABurstOfEventsIsOneHealthRead", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := start(t, readyHealth(), 0)
			r.agent.connect <- struct{}{}
			synctest.Wait()
			r.agent.set(func(a *fakeAgent) { a.health.Components[1].State = "degraded" })
			for i := range 10 {
				r.agent.events <- wire.Event{ID: int64(i + 1), Type: wire.EventState, State: &wire.StateEvent{Name: "b", State: "degraded"}}
			}
			settle()
			if n := r.agent.calls(); n != 2 {
				t.Errorf("health read %d times, want 2 (connect, then one for the burst)", n)
			}
			if m := r.view.last(); m.Look != LookDegraded || !strings.HasPrefix(m.Tooltip, "1/2 ready") {
				t.Errorf("after the burst: %v %q", m.Look, m.Tooltip)
			}
		})
	})

	t.Run("StaysQuietForTheGracePeriodAfterLosingTheAgent", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := start(t, readyHealth(), 0)
			r.agent.connect <- struct{}{}
			synctest.Wait()
			r.agent.set(func(a *fakeAgent) { a.healthErr = errors.New("connection refused") })
			r.agent.lose <- errors.New("event stream ended")
			time.Sleep(DefaultGrace - time.Second)
			synctest.Wait()
			if m := r.view.last(); m.Look != LookReady {
				t.Errorf("within the grace period: look %v, want the last known (ready)", m.Look)
			}
			if n := r.logs.count("cannot reach"); n != 0 {
				t.Errorf("%d warnings within the grace period", n)
			}
			time.Sleep(2 * time.Second)
			synctest.Wait()
			if m := r.view.last(); m.Look != LookOffline || !strings.HasPrefix(m.Tooltip, "cannot reach the agent") {
				t.Errorf("after the grace period: %v %q", m.Look, m.Tooltip)
			}
			for range 5 {
				r.agent.lose <- errors.New("connection refused")
				time.Sleep(15 * time.Second)
			}
			synctest.Wait()
			if n := r.logs.count("cannot reach"); n != 1 {
				t.Errorf("said %d times it cannot reach the agent, want once", n)
			}
			r.agent.set(func(a *fakeAgent) { a.healthErr = nil })
			r.agent.connect <- struct{}{}
			synctest.Wait()
			if m := r.view.last(); m.Look != LookReady {
				t.Errorf("back: look %v", m.Look)
			}
			if n := r.logs.count("agent reachable again"); n != 1 {
				t.Errorf("said %d times the agent is back, want once", n)
			}
		})
	})

	t.Run("ALossShorterThanTheGracePeriodMakesNoNoise", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := start(t, readyHealth(), 0)
			r.agent.connect <- struct{}{}
			synctest.Wait()
			for range 3 { // an agent restart after each of three wakes
				r.agent.lose <- errors.New("event stream ended")
				time.Sleep(40 * time.Second)
				r.agent.connect <- struct{}{}
				time.Sleep(40 * time.Second)
			}
			synctest.Wait()
			r.view.mu.Lock()
			shown := append([]Model(nil), r.view.shown[1:]...)
			r.view.mu.Unlock()
			for _, m := range shown {
				if m.Look == LookOffline {
					t.Fatalf("showed offline: %q", m.Tooltip)
				}
			}
			if n := r.logs.count("level=WARN"); n != 0 {
				t.Errorf("%d warnings", n)
			}
		})
	})

	t.Run("AnAgentNotYetStartedIsDialedAgainQuietly", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := start(t, readyHealth(), 3)
			time.Sleep(20 * time.Second) // 1 + 2 + 4 s of backoff
			synctest.Wait()
			if n := r.logs.count("level=WARN"); n != 0 {
				t.Errorf("%d warnings while the agent starts", n)
			}
			r.agent.connect <- struct{}{}
			synctest.Wait()
			if m := r.view.last(); m.Look != LookReady {
				t.Errorf("look %v after the agent came up", m.Look)
			}
		})
	})

	t.Run("ARefusedTokenIsDialedAgain", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := start(t, readyHealth(), 0)
			r.agent.connect <- struct{}{}
			synctest.Wait()
			r.agent.fatal <- errors.New("forbidden")
			time.Sleep(redialInitial + time.Millisecond)
			synctest.Wait()
			// dialed again: the fake's Follow runs again and takes a connect
			r.agent.connect <- struct{}{}
			synctest.Wait()
			if n := r.agent.calls(); n != 2 {
				t.Errorf("health read %d times, want 2", n)
			}
		})
	})

	t.Run("TheTooltipAgesWithoutPollingTheAgent", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := start(t, readyHealth(), 0)
			r.agent.connect <- struct{}{}
			synctest.Wait()
			time.Sleep(3*time.Minute + time.Second)
			synctest.Wait()
			if m := r.view.last(); !strings.Contains(m.Tooltip, "woke 5 min ago") {
				t.Errorf("tooltip %q", m.Tooltip)
			}
			if n := r.agent.calls(); n != 1 {
				t.Errorf("health read %d times, want 1", n)
			}
		})
	})

	t.Run("WakePhasesShowAsleepThenRecovering", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := start(t, readyHealth(), 0)
			r.agent.connect <- struct{}{}
			synctest.Wait()
			r.agent.events <- wire.Event{ID: 1, Type: wire.EventWake, Wake: &wire.WakeEvent{Phase: "sleeping"}}
			settle()
			if m := r.view.last(); m.Look != LookAsleep || m.CanRecover {
				t.Errorf("sleeping: %v recover=%v", m.Look, m.CanRecover)
			}
			r.agent.events <- wire.Event{ID: 2, Type: wire.EventWake, Wake: &wire.WakeEvent{Phase: "restoring", Pending: 2, Total: 2}}
			settle()
			if m := r.view.last(); m.Look != LookRecovering || !strings.Contains(m.Tooltip, "0/2 restored") {
				t.Errorf("restoring: %v %q", m.Look, m.Tooltip)
			}
		})
	})

	t.Run("AfterAWakeAComponentStillStartingIsReconnectingQuietly", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := readyHealth()
			h.Components[1].State = "starting"
			r := start(t, h, 0)
			r.agent.connect <- struct{}{}
			synctest.Wait()
			r.agent.events <- wire.Event{ID: 1, Type: wire.EventWake, Wake: &wire.WakeEvent{Phase: "waking", Wake: &wire.Wake{ID: 2, DetectedBy: "logind"}}}
			r.agent.events <- wire.Event{ID: 2, Type: wire.EventWake, Wake: &wire.WakeEvent{Phase: "restoring", Pending: 1, Total: 2}}
			settle()
			if m := r.view.last(); !strings.HasPrefix(m.Tooltip, "Reconnecting b…") {
				t.Errorf("tooltip %q, want Reconnecting b…", m.Tooltip)
			}
			if n := r.nAlerts(); n != 0 {
				t.Errorf("%d alerts while reconnecting, want none", n)
			}
		})
	})

	t.Run("AlertsOnceAndOnlyWhenARestoreMissesItsDeadline", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := start(t, readyHealth(), 0)
			r.agent.connect <- struct{}{}
			synctest.Wait()
			ok := &wire.Wake{ID: 4, Done: true, Restore: wire.RestoreSummary{Ready: 2}}
			late := &wire.Wake{ID: 5, Done: true, Restore: wire.RestoreSummary{Ready: 1, TimedOut: 1},
				Components: []wire.WakeComponent{{Name: "a", State: "ready"}, {Name: "b", State: "degraded"}}}
			r.agent.events <- wire.Event{ID: 1, Type: wire.EventWake, Wake: &wire.WakeEvent{Phase: "done", Wake: ok}}
			settle()
			if n := r.nAlerts(); n != 0 {
				t.Fatalf("%d alerts for a restore on time", n)
			}
			r.agent.events <- wire.Event{ID: 2, Type: wire.EventWake, Wake: &wire.WakeEvent{Phase: "done", Wake: late}}
			r.agent.events <- wire.Event{ID: 3, Type: wire.EventWake, Wake: &wire.WakeEvent{Phase: "done", Wake: late}} // replayed
			settle()
			if n := r.nAlerts(); n != 1 {
				t.Fatalf("%d alerts for one late restore, want 1", n)
			}
			if !strings.Contains(r.alerts[0].Body, "1 timed out (b)") {
				t.Errorf("alert body %q", r.alerts[0].Body)
			}
		})
	})

	t.Run("MenuActionsReachTheAgent", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := start(t, readyHealth(), 0)
			r.ctrl.request(actRecover) // before contact: refused with a log line
			synctest.Wait()
			r.agent.connect <- struct{}{}
			synctest.Wait()
			r.ctrl.request(actRecover)
			r.ctrl.request(actOpen)
			synctest.Wait()
			r.agent.mu.Lock()
			wakes := r.agent.wakes
			r.agent.mu.Unlock()
			if wakes != 1 {
				t.Errorf("%d wakes posted, want 1", wakes)
			}
			r.amu.Lock()
			defer r.amu.Unlock()
			if len(r.opened) != 1 || r.opened[0] != "http://127.0.0.1:8000/login?code=c0de" {
				t.Errorf("opened %q", r.opened)
			}
		})
	})
}
