//go:build linux

package e2e

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/tests/internal/harness"
)

// TestClockFallback runs the agent with no logind on its bus, so the
// clock source (time slept, from a counter the wall clock does not move)
// is the only one. The binary's test hook reads that counter from a file.
//
// What cannot be tested here for real is a step of the machine's wall
// clock: it needs privileges and would disturb everything else running. The
// test shows the other half: with the slept-time counter unchanged, time
// passing (the wall clock moving) never makes a wake.
func TestClockFallback(t *testing.T) {
	p := harness.NewPower(t, false)
	marker := harness.NewMarker()
	slept := filepath.Join(t.TempDir(), "slept")
	if err := os.WriteFile(slept, []byte("0s"), 0o600); err != nil {
		t.Fatal(err)
	}
	x := harness.FreeAddr(t)
	cfg := baseConfig + execEntry(marker, "x", harness.HelperCommand(marker, harness.ModeListen, x, "0s"), x, "restart_on_wake: true")
	const interval = 200 * time.Millisecond
	a := harness.Start(t, bin, harness.Options{Config: cfg, BusAddr: p.Addr(), Marker: marker,
		Env: []string{"ROUSE_TEST_CLOCK_FILE=" + slept, "ROUSE_TEST_CLOCK_INTERVAL=" + interval.String()}})
	a.WaitStates(guard, map[string]string{"x": "ready", "scheduler": "ready"})
	boot := a.WaitWakeDone(guard, a.LastWakeID())

	t.Run("TimePassingWithoutSleepIsNotAWake", func(t *testing.T) {
		time.Sleep(20 * interval)
		if id := a.LastWakeID(); id != boot.ID {
			t.Fatalf("a wake (%d) appeared with no time slept: %+v", id, a.Wakes(1))
		}
	})

	t.Run("TwoHoursSleptIsOneClockWake", func(t *testing.T) {
		if err := os.WriteFile(slept, []byte("2h"), 0o600); err != nil {
			t.Fatal(err)
		}
		w := a.WaitNewWake(guard, boot.ID)
		if w.DetectedBy != "clock" {
			t.Errorf("detected_by %q, want clock", w.DetectedBy)
		}
		if math.Abs(w.SleptSeconds-7200) > 1 {
			t.Errorf("slept_seconds %v, want 7200", w.SleptSeconds)
		}
		if w.Restore.Ready != 2 {
			t.Errorf("restore %+v, want both components ready", w.Restore)
		}
		time.Sleep(20 * interval)
		if ws := a.Wakes(10); len(ws) != 2 {
			t.Errorf("%d wakes, want the boot and one clock wake: %+v", len(ws), ws)
		}
	})

	t.Run("LogindWasNeverThere", func(t *testing.T) {
		if strings.Contains(a.Log(), "detected_by=logind") {
			t.Error("a logind event with no logind on the bus")
		}
	})
}
