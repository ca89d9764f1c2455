//go:build linux

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/client"
	"github.com/rouse-dev/rouse/tests/internal/harness"
)

// logindDelay is logind's default InhibitDelayMaxSec: the fake gives the
// agent this long to release its lock, as logind would.
const logindDelay = 5 * time.Second

// execEntry is one exec component in YAML; extra holds further keys.
func execEntry(marker, name string, argv []string, readyTCP, extra string) string {
	s := fmt.Sprintf(`
  - name: %s
    kind: exec
    command: %s
    env: %s
    ready_interval: 10ms`, name, harness.YAMLList(argv), harness.ExecEnv(marker))
	if readyTCP != "" {
		s += fmt.Sprintf("\n    ready: {tcp: %q}", readyTCP)
	}
	if extra != "" {
		s += "\n    " + strings.ReplaceAll(strings.TrimSpace(extra), "\n", "\n    ")
	}
	return s
}

const baseConfig = `
heartbeat: {initial: 200ms, max: 2s}
trackers:`

// suspend plays one suspend through the fake logind and fails the test if
// the agent did not release its lock within logind's delay.
func suspend(t testing.TB, p *harness.Power) {
	t.Helper()
	ctx := harness.Ctx(t, time.Minute)
	released, err := p.Logind.Suspend(ctx, logindDelay)
	if err != nil {
		t.Fatalf("suspend: %v", err)
	}
	if !released {
		t.Fatalf("the agent did not release its delay lock within %v", logindDelay)
	}
}

func waitLock(t testing.TB, p *harness.Power) {
	t.Helper()
	if err := p.Logind.WaitLockHeld(harness.Ctx(t, guard)); err != nil {
		t.Fatalf("the agent did not take a delay lock: %v (holders %v)", err, p.Logind.Holders())
	}
}

func TestNormalSleepAndWake(t *testing.T) {
	p := harness.NewPower(t, true)
	marker := harness.NewMarker()
	x, y := harness.FreeAddr(t), harness.FreeAddr(t)
	cfg := baseConfig +
		execEntry(marker, "x", harness.HelperCommand(marker, harness.ModeListen, x, "0s"), x, "") +
		execEntry(marker, "y", harness.HelperCommand(marker, harness.ModeListen, y, "0s"), y, "restart_on_wake: true")
	a := harness.Start(t, bin, harness.Options{Config: cfg, BusAddr: p.Addr(), Marker: marker})
	all := map[string]string{"x": "ready", "y": "ready", "scheduler": "ready"}
	a.WaitStates(guard, all)
	waitLock(t, p)
	before := a.WaitWakeDone(guard, a.LastWakeID())
	inhibits := p.Logind.Inhibits()

	t.Run("TheLockIsReleasedBeforeTheDelayAndTakenAgainAfter", func(t *testing.T) {
		suspend(t, p)
		if err := p.Logind.WaitInhibits(harness.Ctx(t, guard), inhibits+1); err != nil {
			t.Fatalf("no new lock after the wake: %v", err)
		}
		waitLock(t, p)
		for _, h := range p.Logind.Holders() {
			if h.Who != "rouse" || h.Mode != "delay" || h.What != "sleep" {
				t.Errorf("lock holder %+v, want rouse holding a delay lock on sleep", h)
			}
		}
	})

	t.Run("ExactlyOneWakeIsRecordedByLogindWithEveryComponentReady", func(t *testing.T) {
		w := a.WaitNewWake(guard, before.ID)
		if w.DetectedBy != "logind" {
			t.Errorf("detected_by %q, want logind", w.DetectedBy)
		}
		if w.SleptAt == nil {
			t.Error("the wake has no slept_at")
		}
		if w.Restore.Ready != 3 || w.Restore.TimedOut != 0 || w.Restore.Failed != 0 {
			t.Errorf("restore summary %+v, want 3 ready", w.Restore)
		}
		if ws := a.Wakes(10); len(ws) != 2 || ws[1].ID != before.ID {
			t.Errorf("wakes after one suspend: %+v, want the boot and one more", ws)
		}
		a.WaitStates(guard, all)
	})

	t.Run("TheSummaryIsInTheLog", func(t *testing.T) {
		a.WaitLog("ready for sleep", guard)
		a.WaitLog("detected_by=logind ready=3 timed_out=0 failed=0", guard)
		if !strings.Contains(a.Log(), `msg="restore finished"`) {
			t.Errorf("no restore summary line in the log")
		}
	})
}

// healthPoller calls GET /api/v1/health continuously and counts answers
// and failures.
type healthPoller struct {
	mu    sync.Mutex
	ok    int
	fails []string
	stop  chan struct{}
	done  chan struct{}
}

func pollHealth(c *client.Client) *healthPoller {
	hp := &healthPoller{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(hp.done)
		for {
			select {
			case <-hp.stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := c.Health(ctx)
			cancel()
			hp.mu.Lock()
			if err != nil {
				hp.fails = append(hp.fails, err.Error())
			} else {
				hp.ok++
			}
			hp.mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return hp
}

func (hp *healthPoller) finish() (ok int, fails []string) {
	close(hp.stop)
	<-hp.done
	return hp.ok, hp.fails
}

func TestMixedTimeouts(t *testing.T) {
	p := harness.NewPower(t, true)
	marker := harness.NewMarker()
	x, y, h := harness.FreeAddr(t), harness.FreeAddr(t), harness.FreeAddr(t)
	first := filepath.Join(t.TempDir(), "started")
	cfg := baseConfig +
		execEntry(marker, "x", harness.HelperCommand(marker, harness.ModeListen, x, "0s"), x, "restart_on_wake: true") +
		execEntry(marker, "y", harness.HelperCommand(marker, harness.ModeListen, y, "1s"), y, "restart_on_wake: true") +
		execEntry(marker, "hangs", harness.HelperCommand(marker, harness.ModeListenOnce, h, first), h, "restart_on_wake: true\ndeadline: 3s")
	a := harness.Start(t, bin, harness.Options{Config: cfg, BusAddr: p.Addr(), Marker: marker})
	a.WaitStates(guard, map[string]string{"x": "ready", "y": "ready", "hangs": "ready"})
	waitLock(t, p)
	before := a.WaitWakeDone(guard, a.LastWakeID())

	hp := pollHealth(a.Client)
	suspend(t, p)
	w := a.WaitNewWake(guard, before.ID)
	ok, fails := hp.finish()

	t.Run("TheHangingComponentIsDegradedAtItsDeadline", func(t *testing.T) {
		c, _ := harness.ComponentOf(w, "hangs")
		if c.State != "degraded" {
			t.Errorf("hangs in the wake record: %+v, want degraded", c)
		}
		if c.DurationMS < 3000 {
			t.Errorf("hangs was given up on after %d ms, before its 3 s deadline", c.DurationMS)
		}
		if s := a.Services()["hangs"].State; s != "degraded" {
			t.Errorf("hangs is %q after the restore, want degraded", s)
		}
	})

	t.Run("TheOthersAreReady", func(t *testing.T) {
		for _, n := range []string{"x", "y", "scheduler"} {
			if c, _ := harness.ComponentOf(w, n); c.State != "ready" {
				t.Errorf("%s in the wake record: %+v, want ready", n, c)
			}
		}
		if w.Restore.Ready != 3 || w.Restore.TimedOut != 1 {
			t.Errorf("summary %+v, want 3 ready and 1 timed out", w.Restore)
		}
	})

	t.Run("TheAPIAnsweredEveryRequestThroughout", func(t *testing.T) {
		if len(fails) > 0 {
			t.Errorf("%d of %d health requests failed during the cycle, first: %s", len(fails), ok+len(fails), fails[0])
		}
		if ok < 10 {
			t.Errorf("only %d health requests were made during the cycle", ok)
		}
	})
}

func TestCrashDuringRestore(t *testing.T) {
	p := harness.NewPower(t, true)
	marker := harness.NewMarker()
	dir := t.TempDir()
	steady, crash := harness.FreeAddr(t), harness.FreeAddr(t)
	crashFlag := filepath.Join(dir, "crash-next")
	script := filepath.Join(dir, "late.sh")
	writeScript := func() {
		if err := os.WriteFile(script, []byte("#!/bin/sh\nexec sleep 3600\n"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	writeScript()
	cfg := baseConfig +
		execEntry(marker, "steady", harness.HelperCommand(marker, harness.ModeListen, steady, "0s"), steady, "restart_on_wake: true") +
		execEntry(marker, "crasher", harness.HelperCommand(marker, harness.ModeCrashIf, crashFlag, crash), crash,
			"restart_on_wake: true\nrestart_backoff: {initial: 200ms, max: 1s}") +
		execEntry(marker, "late", []string{script}, "", "restart_on_wake: true\nready_after: 200ms")
	a := harness.Start(t, bin, harness.Options{Config: cfg, BusAddr: p.Addr(), Marker: marker})
	a.WaitStates(guard, map[string]string{"steady": "ready", "crasher": "ready", "late": "ready"})
	waitLock(t, p)
	before := a.WaitWakeDone(guard, a.LastWakeID())

	// At the wake: crasher exits 3 on its restart, late cannot start at all.
	if err := os.WriteFile(crashFlag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(script); err != nil {
		t.Fatal(err)
	}
	suspend(t, p)
	w := a.WaitNewWake(guard, before.ID)

	t.Run("TheOthersAreNotAffected", func(t *testing.T) {
		for _, n := range []string{"steady", "scheduler"} {
			if c, _ := harness.ComponentOf(w, n); c.State != "ready" {
				t.Errorf("%s in the wake record: %+v, want ready", n, c)
			}
		}
		if c, _ := harness.ComponentOf(w, "late"); c.State != "failed" {
			t.Errorf("late in the wake record: %+v, want failed (its program is gone)", c)
		}
	})

	t.Run("TheCrashedChildIsStartedAgain", func(t *testing.T) {
		a.WaitLog("crashing on purpose", guard)
		a.WaitStates(guard, map[string]string{"crasher": "ready"})
		if _, err := os.Stat(crashFlag); !os.IsNotExist(err) {
			t.Errorf("the crash flag is still there: the child never crashed (%v)", err)
		}
	})

	t.Run("TheFailedComponentIsRetriedByTheHeartbeat", func(t *testing.T) {
		s := a.Services()["late"]
		if s.State != "failed" || s.NextRetryAt == nil {
			t.Fatalf("late: state %q next_retry_at %v, want failed with a next retry", s.State, s.NextRetryAt)
		}
		attempts := s.Attempts
		writeScript()
		a.WaitStates(guard, map[string]string{"late": "ready"})
		if got := a.Services()["late"].Attempts; got <= attempts {
			t.Errorf("attempts %d after recovering, want more than %d", got, attempts)
		}
		a.WaitStates(guard, map[string]string{"steady": "ready", "crasher": "ready"})
	})
}

// startOneListener starts an agent with one exec component, x, a helper
// listening at once, and returns once x is ready and the lock is held.
func startOneListener(t *testing.T) (*harness.Power, *harness.Agent) {
	t.Helper()
	p := harness.NewPower(t, true)
	marker := harness.NewMarker()
	x := harness.FreeAddr(t)
	cfg := baseConfig + execEntry(marker, "x", harness.HelperCommand(marker, harness.ModeListen, x, "0s"), x, "")
	a := harness.Start(t, bin, harness.Options{Config: cfg, BusAddr: p.Addr(), Marker: marker})
	a.WaitStates(guard, map[string]string{"x": "ready"})
	waitLock(t, p)
	return p, a
}

func TestBusAndLogindRestart(t *testing.T) {
	p, a := startOneListener(t)
	last := a.WaitWakeDone(guard, a.LastWakeID()).ID

	cycle := func(t *testing.T) {
		t.Helper()
		waitLock(t, p)
		suspend(t, p)
		w := a.WaitNewWake(guard, last)
		last = w.ID
		if w.DetectedBy != "logind" {
			t.Errorf("detected_by %q, want logind", w.DetectedBy)
		}
		waitLock(t, p)
		a.WaitStates(guard, map[string]string{"x": "ready"})
	}

	t.Run("TheNextSuspendIsSeenAfterLogindRestarts", func(t *testing.T) {
		p.RestartLogind()
		cycle(t)
	})

	t.Run("TheNextSuspendIsSeenAfterTheBusRestarts", func(t *testing.T) {
		p.RestartBus()
		cycle(t)
	})

	t.Run("TheAgentNeverStoppedAnswering", func(t *testing.T) {
		if err := a.Client.Alive(harness.Ctx(t, guard)); err != nil {
			t.Fatal(err)
		}
		if ws := a.Wakes(10); len(ws) != 3 {
			t.Errorf("%d wakes, want the boot and two", len(ws))
		}
	})
}

func TestDuplicateResume(t *testing.T) {
	p, a := startOneListener(t)
	before := a.WaitWakeDone(guard, a.LastWakeID())

	t.Run("TwoPrepareForSleepFalseInARowGiveOneWake", func(t *testing.T) {
		suspend(t, p)
		if err := p.Logind.PrepareForSleep(false); err != nil {
			t.Fatal(err)
		}
		w := a.WaitNewWake(guard, before.ID)
		waitLock(t, p)
		// Give a second wake every chance to show up before counting.
		a.WaitLog(fmt.Sprintf("wake=%d", w.ID), guard)
		time.Sleep(2 * time.Second)
		ws := a.Wakes(10)
		if len(ws) != 2 {
			t.Fatalf("%d wakes (%+v), want the boot and one", len(ws), ws)
		}
		if got := strings.Count(a.Log(), `msg="woke up"`); got != 1 {
			t.Errorf("%d wakes delivered in the log, want 1", got)
		}
	})

	t.Run("TheAgentStillAnswers", func(t *testing.T) {
		resp, err := http.Get("http://" + a.Listen + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		http.DefaultClient.CloseIdleConnections()
	})
}
