//go:build linux

package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/tests/internal/harness"
	"github.com/rouse-dev/rouse/wire"
)

func TestJobDueDuringSleep(t *testing.T) {
	p := harness.NewPower(t, true)
	marker := harness.NewMarker()
	cfg := fmt.Sprintf(`
heartbeat: {initial: 200ms, max: 2s}
jobs:
  - name: tick
    schedule: "@every 2s"
    command: [sh, -c, "echo tick"]
    env: %s
    misfire: coalesce
    grace: 1h
    jitter: 0s
`, harness.ExecEnv(marker))
	a := harness.Start(t, bin, harness.Options{Config: cfg, BusAddr: p.Addr(), Marker: marker})
	a.WaitStates(guard, map[string]string{"scheduler": "ready"})
	waitLock(t, p)
	ctx := harness.Ctx(t, 2*time.Minute)
	runs := func() []wire.JobRun {
		t.Helper()
		rs, err := a.Client.JobRuns(ctx, "tick", 100)
		if harness.Unavailable(err) {
			return nil // the store is closed around a sleep
		}
		if err != nil {
			t.Fatalf("job runs: %v", err)
		}
		return rs
	}
	harness.Eventually(t, guard, "a scheduled run", func() bool {
		for _, r := range runs() {
			if r.Reason == "schedule" && r.Result == "ok" {
				return true
			}
		}
		return false
	})

	// Sleep for about three due times: the machine is "asleep" between the
	// lock release and PrepareForSleep(false).
	if err := p.Logind.PrepareForSleep(true); err != nil {
		t.Fatal(err)
	}
	if err := p.Logind.WaitLockReleased(harness.Ctx(t, logindDelay)); err != nil {
		t.Fatalf("lock not released: %v", err)
	}
	asleep := time.Now()
	time.Sleep(6500 * time.Millisecond)
	awake := time.Now()
	if err := p.Logind.PrepareForSleep(false); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, guard, "the catch-up run", func() bool {
		for _, r := range runs() {
			if r.ScheduledAt.After(asleep) && r.ScheduledAt.Before(awake) && r.Result == "ok" {
				return true
			}
		}
		return false
	})

	t.Run("NothingRunsWhileAsleep", func(t *testing.T) {
		for _, r := range runs() {
			// A run started at the very moment of the sleep notice may
			// straddle it; one started well inside the sleep may not.
			if r.StartedAt != nil && r.StartedAt.After(asleep.Add(500*time.Millisecond)) && r.StartedAt.Before(awake) {
				t.Errorf("run %d started at %v while the machine slept (%v to %v)", r.ID, *r.StartedAt, asleep, awake)
			}
		}
	})

	t.Run("TheMissedDueTimesCoalesceIntoOneRunAfterTheWake", func(t *testing.T) {
		time.Sleep(time.Second) // room for a wrong second catch-up to appear
		var caught []wire.JobRun
		for _, r := range runs() {
			if r.ScheduledAt.After(asleep) && r.ScheduledAt.Before(awake) {
				caught = append(caught, r)
			}
		}
		if len(caught) != 1 {
			t.Fatalf("%d runs for the due times inside the sleep, want exactly 1: %+v", len(caught), caught)
		}
		if caught[0].StartedAt == nil || caught[0].StartedAt.Before(awake) {
			t.Errorf("the catch-up run started at %v, before the wake at %v", caught[0].StartedAt, awake)
		}
	})

	t.Run("TheWakeWasRecordedByLogind", func(t *testing.T) {
		ws := a.Wakes(5)
		if len(ws) < 2 || ws[0].DetectedBy != "logind" {
			t.Errorf("wakes %+v, want a logind wake on top", ws)
		}
	})

	t.Run("ARunCanBeStartedByHand", func(t *testing.T) {
		r, err := a.Client.RunJob(ctx, "tick")
		if err != nil {
			t.Fatal(err)
		}
		if r.Reason != "manual" {
			t.Errorf("manual run reason %q", r.Reason)
		}
		harness.Eventually(t, guard, "the manual run to finish", func() bool {
			for _, x := range runs() {
				if x.ID == r.ID && x.Result == "ok" {
					return true
				}
			}
			return false
		})
	})
}
