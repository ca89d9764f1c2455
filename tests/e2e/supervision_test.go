//go:build linux

package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/tests/internal/harness"
	"github.com/rouse-dev/rouse/wire"
)

// A command that exits at once is restarted by its exec component until it
// has failed start_limit times within start_window; then it is failed, not
// restarted any more, and `rouse status` shows the restarts, the last exit
// and that there is no next try.
func TestCrashLoopHitsTheStartLimit(t *testing.T) {
	p := harness.NewPower(t, true)
	marker := harness.NewMarker()
	cfg := fmt.Sprintf(`
scheduler: {enabled: false}
trackers:
  - name: crasher
    kind: exec
    command: [sh, -c, "echo 'cannot bind' >&2; exit 4"]
    env: %[1]s
    restart_backoff: {initial: 100ms, max: 200ms}
    start_limit: 3
    start_window: 30s
  - name: fine
    kind: exec
    command: [sleep, "300"]
    env: %[1]s
    ready_after: 100ms
`, harness.ExecEnv(marker))
	a := harness.Start(t, bin, harness.Options{Config: cfg, BusAddr: p.Addr(), Marker: marker})
	a.WaitStates(guard, map[string]string{"crasher": "failed", "fine": "ready"})
	a.WaitLog(`msg="start limit hit" component=crasher`, guard)
	// It stays failed: no restart after the limit.
	time.Sleep(time.Second)
	s := a.Services()["crasher"]
	if s.State != "failed" || !s.StartLimited || s.NextRetryAt != nil || s.Restarts != 2 {
		t.Fatalf("crasher: state %s, limited %v, next try %v, restarts %d; want failed, limited, none, 2",
			s.State, s.StartLimited, s.NextRetryAt, s.Restarts)
	}
	if s.LastExit == nil || s.LastExit.Code == nil || *s.LastExit.Code != 4 {
		t.Fatalf("last exit %+v, want exit status 4", s.LastExit)
	}
	if n := strings.Count(a.Log(), `msg="child started" component=crasher`); n != 3 {
		t.Fatalf("the child was started %d times, want 3 (the start limit)", n)
	}

	out := rouse(t, a, "status")
	line := ""
	for l := range strings.Lines(out) {
		if strings.HasPrefix(l, "crasher ") {
			line = l
		}
	}
	f := strings.Fields(line)
	// NAME KIND STATE SINCE(2 words) ATTEMPTS RESTARTS NOTE
	if len(f) < 7 || f[2] != "failed" || !strings.Contains(line, " 2 ") || !strings.Contains(line, "start limit hit") {
		t.Fatalf("rouse status shows for crasher: %q\n%s", line, out)
	}
	detail := rouse(t, a, "status", "crasher")
	for _, want := range []string{"restarts: 2", "next try: none (start limit hit", "last exit:", "exit status 4"} {
		if !strings.Contains(detail, want) {
			t.Errorf("rouse status crasher lacks %q:\n%s", want, detail)
		}
	}

	// A manual start gives it its tries again.
	_ = exec.Command(bin, "--data", a.DataDir, "--listen", a.Listen, "start", "crasher").Run()
	harness.Eventually(t, guard, "crasher started again and limited again", func() bool {
		return strings.Count(a.Log(), `msg="child started" component=crasher`) == 6 && a.Services()["crasher"].StartLimited
	})
	a.Stop()
	a.CheckNoSurvivors()
}

// rouse runs the client with args against a and returns its output; exit
// status 1 (not all is well) is an answer too.
func rouse(t *testing.T, a *harness.Agent, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--data", a.DataDir, "--listen", a.Listen}, args...)...)
	cmd.Env = append(cmd.Environ(), "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
		t.Fatalf("rouse %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Killing a required dependency's process makes its dependents wait for it;
// once it is back, a plain dependent resumes (same process) and one with
// restart: true is restarted (a new process).
func TestDependentsFollowAKilledDependency(t *testing.T) {
	p := harness.NewPower(t, true)
	marker := harness.NewMarker()
	cfg := fmt.Sprintf(`
scheduler: {enabled: false}
trackers:
  - name: db
    kind: exec
    command: [sleep, "300"]
    env: %[1]s
    ready_after: 2s
    restart_backoff: {initial: 100ms, max: 100ms}
  - name: app
    kind: exec
    depends_on: [db]
    command: [sleep, "301"]
    env: %[1]s
    ready_after: 100ms
  - name: web
    kind: exec
    depends_on: [{name: db, restart: true}]
    command: [sleep, "302"]
    env: %[1]s
    ready_after: 100ms
`, harness.ExecEnv(marker))
	a := harness.Start(t, bin, harness.Options{Config: cfg, BusAddr: p.Addr(), Marker: marker})
	a.WaitStates(guard, map[string]string{"db": "ready", "app": "ready", "web": "ready"})
	pids := childPids(t, a)
	if err := syscall.Kill(pids["db"][0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, guard, "app and web waiting for db", func() bool {
		ss := a.Services()
		return ss["app"].State == "waiting" && ss["web"].State == "waiting" &&
			strings.HasPrefix(ss["app"].LastError, "waiting for db: db is")
	})
	a.WaitStates(guard, map[string]string{"db": "ready", "app": "ready", "web": "ready"})
	after := childPids(t, a)
	if len(after["db"]) != 2 {
		t.Fatalf("db's children: %v, want the killed one and its restart", after["db"])
	}
	if len(after["app"]) != 1 {
		t.Errorf("app was restarted (children %v); without restart: true it resumes", after["app"])
	}
	if len(after["web"]) != 2 {
		t.Errorf("web's children %v; with restart: true it is restarted once db is back", after["web"])
	}
	ss := a.Services()
	if ss["web"].Restarts != 1 || ss["app"].Restarts != 0 {
		t.Errorf("restarts: web %d, app %d; want 1 and 0", ss["web"].Restarts, ss["app"].Restarts)
	}
	a.Stop()
	a.CheckNoSurvivors()
}

var childStarted = regexp.MustCompile(`msg="child started" component=(\S+) pid=(\d+)`)

// childPids returns each exec component's children so far, from the log.
func childPids(t *testing.T, a *harness.Agent) map[string][]int {
	t.Helper()
	out := map[string][]int{}
	for _, m := range childStarted.FindAllStringSubmatch(a.Log(), -1) {
		pid, err := strconv.Atoi(m[2])
		if err != nil {
			t.Fatal(err)
		}
		out[m[1]] = append(out[m[1]], pid)
	}
	return out
}

// An @sleep job runs before the sleep (inside the budget: one that outlasts
// it is killed) and an @wake job after the wake; both are recorded as job
// runs with the wake's id, in that order.
func TestSleepAndWakeHooks(t *testing.T) {
	p := harness.NewPower(t, true)
	marker := harness.NewMarker()
	trail := filepath.Join(t.TempDir(), "trail")
	cfg := fmt.Sprintf(`
sleep: {budget: 3s, pause_grace: 500ms}
jobs:
  - name: unmount
    schedule: "@sleep"
    command: [sh, -c, "echo sleep >> %[1]s"]
    env: %[2]s
  - name: too-long
    schedule: "@sleep"
    command: [sh, -c, "echo long >> %[1]s; sleep 30; echo survived >> %[1]s"]
    env: %[2]s
  - name: remount
    schedule: "@wake"
    command: [sh, -c, "echo wake >> %[1]s"]
    env: %[2]s
    needs_network: true
`, trail, harness.ExecEnv(marker))
	a := harness.Start(t, bin, harness.Options{Config: cfg, BusAddr: p.Addr(), Marker: marker})
	a.WaitStates(guard, map[string]string{"scheduler": "ready"})
	waitLock(t, p)
	before := a.WaitWakeDone(guard, a.LastWakeID())
	if b, _ := os.ReadFile(trail); len(b) != 0 {
		t.Fatalf("hooks ran at boot: %q", b)
	}
	suspend(t, p)
	w := a.WaitNewWake(guard, before.ID)
	ctx := harness.Ctx(t, guard)
	runOf := func(job string) wire.JobRun {
		var r wire.JobRun
		harness.Eventually(t, guard, job+"'s run recorded", func() bool {
			rs, err := a.Client.JobRuns(ctx, job, 10)
			if err != nil || len(rs) == 0 || rs[0].Result == "running" {
				return false
			}
			r = rs[0]
			return len(rs) == 1
		})
		return r
	}
	for job, want := range map[string]string{"unmount": "sleep", "too-long": "sleep", "remount": "wake"} {
		r := runOf(job)
		if r.Reason != want || r.WakeID != w.ID {
			t.Errorf("%s's run: reason %q, wake %d; want %q and wake %d", job, r.Reason, r.WakeID, want, w.ID)
		}
		if job == "too-long" && r.Result != "failed" && r.Result != "timeout" {
			t.Errorf("too-long outlasted the sleep budget and is %q", r.Result)
		}
		if job != "too-long" && r.Result != "ok" {
			t.Errorf("%s: %s (%s)", job, r.Result, r.Error)
		}
	}
	b, err := os.ReadFile(trail)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); got != "sleep\nlong\nwake\n" {
		t.Fatalf("the hooks ran as %q, want sleep, long (killed) then wake", got)
	}
	a.Stop()
	a.CheckNoSurvivors()
}
