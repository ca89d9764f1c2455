package agent

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestStartLimit(t *testing.T) {
	t.Run("ARunThatKeepsFailingIsFailedForGoodAfterFiveUntilAWakeOrAStart", func(t *testing.T) {
		dir := t.TempDir()
		synctest.Test(t, func(t *testing.T) {
			p := &probe{latency: time.Millisecond, failN: 1000}
			a, stop := testAgent(t, dir, []spec{{name: "broken", p: p}})
			defer stop()
			restoreNow(t, a, "boot", false)
			// The heartbeat's retries wait at most 1+2+4+8 s: the fifth
			// failure is well within the default 60 s window.
			time.Sleep(time.Hour)
			synctest.Wait()
			if n := p.runs.Load(); n != 5 {
				t.Fatalf("runs after an hour: %d, want 5 (the start limit)", n)
			}
			s := a.svc(t, "broken")
			if s.State != "failed" || !s.StartLimited || s.NextRetryAt != nil || s.Restarts != 4 {
				t.Fatalf("state %s, limited %v, next try %v, restarts %d; want failed, limited, none, 4", s.State, s.StartLimited, s.NextRetryAt, s.Restarts)
			}
			if !strings.Contains(s.LastError, "start limit hit: 5 failures within 1m0s") || !strings.Contains(s.LastError, "refused") {
				t.Fatalf("last error %q", s.LastError)
			}
			if s.LastExit == nil || s.LastExit.Error != "refused" {
				t.Fatalf("last exit %+v", s.LastExit)
			}
			// A wake gives it its tries again.
			restoreNow(t, a, "manual", true)
			time.Sleep(time.Hour)
			synctest.Wait()
			if n := p.runs.Load(); n != 10 {
				t.Fatalf("runs after a wake: %d, want 10 (five more)", n)
			}
			if s := a.svc(t, "broken"); !s.StartLimited {
				t.Fatalf("not limited again after five more failures: %+v", s)
			}
			// So does a manual start.
			if _, err := a.Start(context.Background(), "broken"); err == nil {
				t.Fatal("the start of a component that fails succeeded")
			}
			time.Sleep(time.Hour)
			synctest.Wait()
			if n := p.runs.Load(); n != 15 {
				t.Fatalf("runs after a start: %d, want 15", n)
			}
		})
	})
	t.Run("OnlyFailuresWithinTheWindowCount", func(t *testing.T) {
		u := &unit{startLimit: 3, startWindow: 10 * time.Second}
		t0 := time.Unix(1e9, 0)
		for i, c := range []struct {
			at  time.Duration
			hit bool
		}{
			{0, false}, {6 * time.Second, false}, {12 * time.Second, false}, // 0 s has left the window at 12 s
			{18 * time.Second, false}, {19 * time.Second, true},
			{100 * time.Second, false}, {100 * time.Second, false}, {109 * time.Second, true},
		} {
			if got := u.failedLocked(t0.Add(c.at)); got != c.hit {
				t.Fatalf("failure %d at %s: hit %v, want %v", i, c.at, got, c.hit)
			}
			if len(u.fails) > u.startLimit {
				t.Fatalf("keeps %d failures, more than the limit", len(u.fails))
			}
		}
		off := &unit{}
		for range 100 {
			if off.failedLocked(t0) {
				t.Fatal("a unit without a limit hit it")
			}
		}
	})
	t.Run("AChildThatExitsAtOnceStopsBeingRestartedAtTheLimit", func(t *testing.T) {
		dir := t.TempDir()
		synctest.Test(t, func(t *testing.T) {
			p := &probe{crashing: true}
			a, stop := testAgent(t, dir, []spec{{name: "loop", p: p}})
			defer stop()
			restoreNow(t, a, "boot", false)
			time.Sleep(time.Hour)
			synctest.Wait()
			if n := p.children.Load(); n != 5 {
				t.Fatalf("children started: %d, want 5", n)
			}
			if n := p.runs.Load(); n != 1 {
				t.Fatalf("runs: %d, want 1 (the component restarted its child itself)", n)
			}
			s := a.svc(t, "loop")
			if s.State != "failed" || !s.StartLimited || s.NextRetryAt != nil || s.Restarts != 4 {
				t.Fatalf("state %s, limited %v, next try %v, restarts %d; want failed, limited, none, 4", s.State, s.StartLimited, s.NextRetryAt, s.Restarts)
			}
			if s.LastExit == nil || s.LastExit.Code == nil || *s.LastExit.Code != 1 {
				t.Fatalf("last exit %+v, want the child's exit status", s.LastExit)
			}
			if h := a.Health(context.Background()); h.Status != "degraded" {
				t.Fatalf("overall %q, want degraded", h.Status)
			}
			// A config change gives it another go.
			a.mu.Lock()
			cfg := a.cfg
			a.mu.Unlock()
			if err := a.applyConfig(cfg); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Hour)
			synctest.Wait()
			if n := p.children.Load(); n != 10 {
				t.Fatalf("children after a config change: %d, want 10", n)
			}
		})
	})
}
