//go:build linux

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/internal/testdocker"
	"github.com/rouse-dev/rouse/tests/internal/harness"
)

// containerEntry is one container component in YAML; extra holds further
// keys.
func containerEntry(name, container, engine, extra string) string {
	s := fmt.Sprintf(`
  - name: %s
    kind: container
    container: %s
    engine: %q
    ready_interval: 50ms
    restart_backoff: {initial: 100ms, max: 500ms}`, name, container, engine)
	if extra != "" {
		s += "\n    " + strings.ReplaceAll(strings.TrimSpace(extra), "\n", "\n    ")
	}
	return s
}

// TestContainerStack runs a stack of three containers with HEALTHCHECKs —
// one healthy at once, one after about two seconds, one never — and an exec
// component behind one of them, through the real binary, a private dockerd
// and the fake logind.
func TestContainerStack(t *testing.T) {
	e := testdocker.Start(t)
	p := harness.NewPower(t, true)
	marker := harness.NewMarker()
	pfx := fmt.Sprintf("e2e-%d-", time.Now().UnixNano()%1e6)
	dbID := e.Create(testdocker.Spec{Name: pfx + "db", Health: []string{"true"}, StopTimeout: 1})
	appID := e.Create(testdocker.Spec{Name: pfx + "app", Health: []string{"test -f /tmp/up"}, StopTimeout: 1,
		Cmd: []string{"sh", "-c", "rm -f /tmp/up; sleep 2; touch /tmp/up; exec sleep 100000"}})
	e.Create(testdocker.Spec{Name: pfx + "never", Health: []string{"false"}, StopTimeout: 1})
	web := harness.FreeAddr(t)
	cfg := baseConfig +
		containerEntry("db", pfx+"db", e.Host(), "") +
		containerEntry("app", pfx+"app", e.Host(), "depends_on: [db]\nrestart_on_wake: true") +
		containerEntry("never", pfx+"never", e.Host(), "deadline: 3s\nrequired: false") +
		execEntry(marker, "web", harness.HelperCommand(marker, harness.ModeListen, web, "0s"), web, "depends_on: [app]")
	a := harness.Start(t, bin, harness.Options{Config: cfg, BusAddr: p.Addr(), Marker: marker})
	waitLock(t, p)

	t.Run("StartsInDependencyOrderAndTheNeverHealthyOneIsDegraded", func(t *testing.T) {
		a.WaitStates(guard, map[string]string{"db": "ready", "app": "ready", "web": "ready", "never": "degraded"})
		ss := a.Services()
		if !ss["db"].StartedAt.Before(*ss["app"].StartedAt) || !ss["app"].StartedAt.Before(*ss["web"].StartedAt) {
			t.Errorf("ready at db %v, app %v, web %v: want in dependency order", ss["db"].StartedAt, ss["app"].StartedAt, ss["web"].StartedAt)
		}
		if hs := e.Inspect(appID).State.Health; hs == nil || hs.Status != "healthy" {
			t.Errorf("app ready while Docker says %+v", hs)
		}
		if !e.Running(appID) {
			t.Error("app ready but its container does not run")
		}
		w := a.WaitWakeDone(guard, a.LastWakeID())
		if c, ok := harness.ComponentOf(w, "web"); !ok || c.State != "ready" {
			t.Errorf("web in the boot's restore: %+v", c)
		}
		if c, ok := harness.ComponentOf(w, "never"); !ok || c.State != "degraded" {
			t.Errorf("never in the boot's restore: %+v (want degraded: its deadline passed)", c)
		}
	})

	t.Run("ADockerKillIsNoticedAndTheContainerComesBack", func(t *testing.T) {
		before := e.Inspect(dbID).State.StartedAt
		e.Kill(dbID)
		harness.Eventually(t, guard, "db not ready after docker kill", func() bool {
			s := a.Services()["db"]
			return s.State != "ready" || s.StartedAt == nil || e.Inspect(dbID).State.StartedAt != before
		})
		a.WaitStates(guard, map[string]string{"db": "ready"})
		if e.Inspect(dbID).State.StartedAt == before {
			t.Error("db ready again but never restarted")
		}
		a.WaitLog("container exited", guard)
	})

	t.Run("RouseStopStopsTheContainerAndStartBringsItBack", func(t *testing.T) {
		ctx := harness.Ctx(t, guard)
		if _, _, err := a.Client.Stop(ctx, "web"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := a.Client.Stop(ctx, "app"); err != nil {
			t.Fatal(err)
		}
		a.WaitStates(guard, map[string]string{"app": "stopped"})
		if e.Running(appID) {
			t.Error("rouse stop app left the container running")
		}
		if _, _, err := a.Client.Start(ctx, "app"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := a.Client.Start(ctx, "web"); err != nil {
			t.Fatal(err)
		}
		a.WaitStates(guard, map[string]string{"app": "ready", "web": "ready"})
		if !e.Running(appID) {
			t.Error("app ready but its container does not run")
		}
	})

	t.Run("AWakeRestoresTheChainInOrder", func(t *testing.T) {
		last := a.LastWakeID()
		started := e.Inspect(appID).State.StartedAt
		suspend(t, p)
		w := a.WaitNewWake(guard, last)
		w = a.WaitWakeDone(guard, w.ID)
		a.WaitStates(guard, map[string]string{"db": "ready", "app": "ready", "web": "ready"})
		if e.Inspect(appID).State.StartedAt == started {
			t.Error("restart_on_wake: the app container was not restarted by the wake")
		}
		app, _ := harness.ComponentOf(w, "app")
		webc, _ := harness.ComponentOf(w, "web")
		if app.State != "ready" || webc.State != "ready" {
			t.Fatalf("wake restore: app %+v, web %+v", app, webc)
		}
		// app restarts and takes ~2 s to turn healthy; web waits for it.
		if webc.WaitedMS < app.DurationMS-200 {
			t.Errorf("web waited %d ms, app took %d ms: web did not wait for app", webc.WaitedMS, app.DurationMS)
		}
	})

	t.Run("AnEngineThatStopsIsWaitedForAndTheStackComesBack", func(t *testing.T) {
		e.Stop()
		harness.Eventually(t, guard, "db waiting for the engine", func() bool {
			return strings.Contains(a.Services()["db"].LastError, "waiting for the container engine")
		})
		if s := a.Services()["db"]; s.State == "failed" {
			t.Errorf("db failed while the engine was away: %+v", s)
		}
		e.Restart()
		a.WaitStates(guard, map[string]string{"db": "ready", "app": "ready", "web": "ready"})
	})

	t.Run("StoppingTheAgentStopsItsContainers", func(t *testing.T) {
		if code := a.Terminate(); code != 0 {
			t.Errorf("rouse exited %d", code)
		}
		if e.Running(dbID) || e.Running(appID) {
			t.Error("containers still run after the agent stopped")
		}
	})
}
