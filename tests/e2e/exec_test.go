//go:build linux

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/tests/internal/harness"
)

// A long-running component that depends on a oneshot starts only once the
// oneshot exited 0; a oneshot that fails is failed with its exit status, and
// its dependent waits.
func TestOneshotDependency(t *testing.T) {
	p := harness.NewPower(t, true)
	marker := harness.NewMarker()
	dir := t.TempDir()
	done, saw := filepath.Join(dir, "setup-done"), filepath.Join(dir, "app-saw")
	cfg := fmt.Sprintf(`
heartbeat: {initial: 200ms, max: 2s}
scheduler: {enabled: false}
trackers:
  - name: setup
    kind: exec
    oneshot: true
    command: [sh, -c, "sleep 1; touch %[1]s"]
    env: %[3]s
  - name: app
    kind: exec
    depends_on: [setup]
    command: [sh, -c, "if [ -f %[1]s ]; then echo setup-done > %[2]s; else echo too-early > %[2]s; fi; exec sleep 300"]
    env: %[3]s
    ready_after: 100ms
  - name: broken
    kind: exec
    oneshot: true
    command: [sh, -c, "echo 'no schema' >&2; exit 3"]
    env: %[3]s
  - name: after-broken
    kind: exec
    depends_on: [broken]
    command: [sleep, "300"]
    env: %[3]s
`, done, saw, harness.ExecEnv(marker))
	a := harness.Start(t, bin, harness.Options{Config: cfg, BusAddr: p.Addr(), Marker: marker})

	a.WaitStates(guard, map[string]string{"setup": "ready", "app": "ready", "broken": "failed"})
	b, err := os.ReadFile(saw)
	if err != nil {
		t.Fatalf("the app never started: %v", err)
	}
	if got := strings.TrimSpace(string(b)); got != "setup-done" {
		t.Fatalf("the app started before its oneshot dependency completed: %q", got)
	}
	ss := a.Services()
	if e := ss["broken"].LastError; !strings.Contains(e, "exit status 3") || !strings.Contains(e, "no schema") {
		t.Errorf("broken's error %q, want the exit status and its last line", e)
	}
	// Children's output also reaches the agent's log (the journal under
	// systemd), one line each with the component's name.
	a.WaitLog(`msg="child output" component=broken stream=stderr line="no schema"`, guard)
	if st := ss["after-broken"].State; st == "ready" || st == "starting" {
		t.Errorf("after-broken is %s while its oneshot dependency failed", st)
	}
	// The completed oneshot holds no process; only the app's runs.
	if left := a.Children(); len(left) != 1 || !strings.Contains(left[0].Cmdline, "sleep 300") {
		t.Errorf("processes of the config: %v, want only the app's", left)
	}
	a.Stop()
	a.CheckNoSurvivors()
}

// A child that daemonizes (setsid and a double fork, the ssh -f pattern)
// is gone after `rouse stop NAME`, a restart, and the agent's shutdown.
func TestDaemonizingChildIsContained(t *testing.T) {
	p := harness.NewPower(t, true)
	marker := harness.NewMarker()
	daemon := `setsid sh -c 'sleep 300 &' </dev/null >/dev/null 2>&1; exec sleep 301`
	cfg := fmt.Sprintf(`
heartbeat: {initial: 200ms, max: 2s}
scheduler: {enabled: false}
trackers:
  - name: tunnel
    kind: exec
    command: [sh, -c, %q]
    env: %s
    ready_after: 100ms
`, daemon, harness.ExecEnv(marker))
	a := harness.Start(t, bin, harness.Options{Config: cfg, BusAddr: p.Addr(), Marker: marker})
	ctx := harness.Ctx(t, 2*time.Minute)

	// daemonized waits for the daemon and the child to run: two processes.
	daemonized := func() {
		t.Helper()
		harness.Eventually(t, guard, "the child and its daemon", func() bool { return len(a.Children()) == 2 })
	}
	gone := func(what string) {
		t.Helper()
		harness.Eventually(t, guard, "no process left after "+what, func() bool { return len(a.Children()) == 0 })
	}

	a.WaitStates(guard, map[string]string{"tunnel": "ready"})
	daemonized()
	if _, _, err := a.Client.Stop(ctx, "tunnel"); err != nil {
		t.Fatalf("stop: %v", err)
	}
	gone("rouse stop tunnel")

	if _, _, err := a.Client.Start(ctx, "tunnel"); err != nil {
		t.Fatalf("start: %v", err)
	}
	daemonized()
	before := a.Children()
	if _, _, err := a.Client.Restart(ctx, "tunnel"); err != nil {
		t.Fatalf("restart: %v", err)
	}
	a.WaitStates(guard, map[string]string{"tunnel": "ready"})
	daemonized()
	for _, old := range before {
		for _, now := range a.Children() {
			if old.Pid == now.Pid {
				t.Fatalf("process %v survived the restart", old)
			}
		}
	}

	// A config change rebuilds the component: the old run goes, daemon too.
	before = a.Children()
	cfgBytes, err := os.ReadFile(a.Config)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(cfgBytes), "ready_after: 100ms", "ready_after: 150ms", 1)
	if err := os.WriteFile(a.Config, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	a.WaitLog(`msg="config applied" started=1`, guard)
	a.WaitStates(guard, map[string]string{"tunnel": "ready"})
	daemonized()
	for _, old := range before {
		for _, now := range a.Children() {
			if old.Pid == now.Pid {
				t.Fatalf("process %v survived the config change", old)
			}
		}
	}

	a.Stop()
	gone("the agent's shutdown")
}

// A oneshot with restart_on_wake runs again after a real (fake-logind)
// suspend; one without it stays done and ready.
func TestOneshotOnWake(t *testing.T) {
	p := harness.NewPower(t, true)
	marker := harness.NewMarker()
	dir := t.TempDir()
	again, once := filepath.Join(dir, "again"), filepath.Join(dir, "once")
	cfg := fmt.Sprintf(`
heartbeat: {initial: 200ms, max: 2s}
scheduler: {enabled: false}
trackers:
  - name: remount
    kind: exec
    oneshot: true
    restart_on_wake: true
    command: [sh, -c, "echo run >> %[1]s"]
    env: %[3]s
  - name: migrate
    kind: exec
    oneshot: true
    command: [sh, -c, "echo run >> %[2]s"]
    env: %[3]s
`, again, once, harness.ExecEnv(marker))
	a := harness.Start(t, bin, harness.Options{Config: cfg, BusAddr: p.Addr(), Marker: marker})
	a.WaitStates(guard, map[string]string{"remount": "ready", "migrate": "ready"})
	waitLock(t, p)
	before := a.WaitWakeDone(guard, a.LastWakeID())
	suspend(t, p)
	w := a.WaitWakeDone(guard, a.WaitNewWake(guard, before.ID).ID)
	if w.Restore.Ready != 2 {
		t.Errorf("restore after the wake %+v, want both oneshots ready", w.Restore)
	}
	runs := func(p string) int {
		b, _ := os.ReadFile(p)
		return strings.Count(string(b), "run\n")
	}
	harness.Eventually(t, guard, "the restart_on_wake oneshot to run again", func() bool { return runs(again) == 2 })
	if n := runs(once); n != 1 {
		t.Errorf("the oneshot without restart_on_wake ran %d times, want once", n)
	}
	a.Stop()
}
