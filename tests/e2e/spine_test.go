//go:build linux

package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/tests/internal/harness"
	"github.com/rouse-dev/rouse/wire"
)

// guard bounds each wait in these tests: a guard against a hang, never a
// speed expectation.
const guard = 45 * time.Second

// threeExecs is issue 2's config: one component ready at once (and with a
// grandchild that must die with it), one ready after about 2 s, one never
// ready with a 3 s deadline.
func threeExecs(marker, fast, slow, never string) string {
	return fmt.Sprintf(`
heartbeat: {initial: 200ms, max: 2s}
scheduler: {enabled: false}
trackers:
  - name: fast
    kind: exec
    command: %s
    env: %s
    ready: {tcp: %q}
  - name: slow
    kind: exec
    command: %s
    env: %s
    ready: {tcp: %q}
  - name: never
    kind: exec
    command: %s
    env: %s
    ready: {tcp: %q}
    deadline: 3s
`,
		harness.YAMLList(harness.HelperCommand(marker, harness.ModeSpawnListen, fast)), harness.ExecEnv(marker), fast,
		harness.YAMLList(harness.HelperCommand(marker, harness.ModeListen, slow, "2s")), harness.ExecEnv(marker), slow,
		harness.YAMLList(harness.HelperCommand(marker, harness.ModeHang)), harness.ExecEnv(marker), never)
}

func TestSpine(t *testing.T) {
	p := harness.NewPower(t, true)
	fast, slow, never := harness.FreeAddr(t), harness.FreeAddr(t), harness.FreeAddr(t)
	marker := harness.NewMarker()
	a := harness.Start(t, bin, harness.Options{Config: threeExecs(marker, fast, slow, never), BusAddr: p.Addr(), Marker: marker})
	ctx := harness.Ctx(t, 5*time.Minute)

	t.Run("HealthzAnswersWhileTheSlowComponentIsStillStarting", func(t *testing.T) {
		if err := a.Client.Alive(ctx); err != nil {
			t.Fatalf("/healthz: %v", err)
		}
		if st := a.Services()["slow"].State; st == "ready" {
			t.Fatalf("slow is already ready when the API first answered; the API must come up before components")
		}
	})

	t.Run("AfterTheDeadlineTheNeverReadyOneIsDegradedAndTheOthersReady", func(t *testing.T) {
		a.WaitStates(guard, map[string]string{"fast": "ready", "slow": "ready", "never": "degraded"})
		boot := a.WaitWakeDone(guard, a.LastWakeID())
		// The overall status says "starting" until the restore is done, and
		// the health view is rendered once per change (coalesced): once the
		// restore is over it must settle on degraded.
		harness.Eventually(t, guard, "the overall status to settle on degraded", func() bool {
			h, err := a.Client.Health(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return h.Status == wire.StatusDegraded
		})
		if boot.Restore.Ready != 2 || boot.Restore.TimedOut != 1 {
			t.Errorf("boot restore summary %+v, want 2 ready and 1 timed out", boot.Restore)
		}
	})

	t.Run("RestartingTheNeverReadyOneAnswers202StartedWithTimeout", func(t *testing.T) {
		status, code, err := a.Client.Restart(ctx, "never")
		if err != nil {
			t.Fatal(err)
		}
		if code != http.StatusAccepted || status != wire.ActionStartedWithTimeout {
			t.Fatalf("restart never: %d %q, want 202 %q", code, status, wire.ActionStartedWithTimeout)
		}
		if _, code, err := a.Client.Restart(ctx, "nosuch"); code != http.StatusNotFound {
			t.Errorf("restart of an unknown component: %d %v, want 404", code, err)
		}
	})

	t.Run("TheFastOnesGrandchildIsTracked", func(t *testing.T) {
		// The orphan check below is only honest if the scan sees the children.
		var grandchild bool
		for _, pr := range harness.Survivors(marker) {
			if strings.HasPrefix(pr.Cmdline, "sleep 3600") {
				grandchild = true
			}
		}
		if !grandchild {
			t.Fatalf("the marker scan does not see the grandchild: %v", harness.Survivors(marker))
		}
	})

	t.Run("AStoppedComponentStaysStoppedAcrossAWake", func(t *testing.T) {
		status, code, err := a.Client.Stop(ctx, "fast")
		if err != nil || code != http.StatusOK || status != wire.ActionStopped {
			t.Fatalf("stop fast: %d %q %v", code, status, err)
		}
		w, err := a.Client.Wake(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if w.DetectedBy != "manual" {
			t.Errorf("manual wake detected_by %q", w.DetectedBy)
		}
		done := a.WaitWakeDone(guard, w.ID)
		if done.Restore.Skipped != 1 {
			t.Errorf("wake summary %+v, want the stopped component skipped", done.Restore)
		}
		s := a.Services()["fast"]
		if s.State != "stopped" || s.Desired != "stopped" {
			t.Fatalf("fast after the wake: state %q desired %q, want stopped", s.State, s.Desired)
		}
	})

	t.Run("AStoppedComponentStaysStoppedAcrossAnAgentRestart", func(t *testing.T) {
		a.Stop()
		marker2 := harness.NewMarker()
		b := harness.Start(t, bin, harness.Options{Config: threeExecs(marker2, fast, slow, never), BusAddr: p.Addr(),
			DataDir: a.DataDir, Marker: marker2})
		b.WaitStates(guard, map[string]string{"slow": "ready", "never": "degraded"})
		if s := b.Services()["fast"]; s.State != "stopped" {
			t.Fatalf("fast after the restart: %q, want stopped", s.State)
		}
		for _, pr := range harness.Survivors(marker2) {
			if strings.Contains(pr.Cmdline, harness.ModeSpawnListen) {
				t.Errorf("the stopped component was started after the restart: %v", pr)
			}
		}
		b.Stop() // checks exit 0 and that no child survives
	})
}
