//go:build linux

package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/internal/testdocker"
	"github.com/rouse-dev/rouse/tests/internal/harness"
)

// An exec child that is ready and then hangs (SIGSTOP: the kernel still
// accepts its TCP connections, but nothing answers an HTTP request) fails
// its health check — its ready.http check repeated — retries times in a
// row: it is unhealthy, its dependents wait, its process group is killed
// and it is started again; then all is ready again. rouse status and the
// API show the health detail.
func TestAHungChildIsUnhealthyAndRestarted(t *testing.T) {
	p := harness.NewPower(t, true)
	marker := harness.NewMarker()
	addr := harness.FreeAddr(t)
	const (
		interval = time.Second
		timeout  = 500 * time.Millisecond
		retries  = 3
	)
	cfg := fmt.Sprintf(`
scheduler: {enabled: false}
trackers:
  - name: api
    kind: exec
    command: %[2]s
    env: %[1]s
    ready: {http: "http://%[3]s/"}
    stop_timeout: 1s
    restart_backoff: {initial: 100ms, max: 100ms}
    health: {interval: %[4]s, timeout: %[5]s, retries: %[6]d}
  - name: app
    kind: exec
    depends_on: [api]
    command: [sleep, "301"]
    env: %[1]s
    ready_after: 100ms
`, harness.ExecEnv(marker), harness.YAMLList(harness.HelperCommand(marker, harness.ModeHTTP, addr, "0s", "ok")), addr, interval, timeout, retries)
	a := harness.Start(t, bin, harness.Options{Config: cfg, BusAddr: p.Addr(), Marker: marker})
	a.WaitStates(guard, map[string]string{"api": "ready", "app": "ready"})
	// A few passing checks first.
	harness.Eventually(t, guard, "a passing health check", func() bool {
		h := a.Services()["api"].Health
		return h != nil && h.LastResult == "ok"
	})
	pids := childPids(t, a)
	hung := pids["api"][0]
	if err := syscall.Kill(hung, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stoppedAt := time.Now()
	defer syscall.Kill(hung, syscall.SIGKILL) // should the test fail before rouse kills it
	var sawUnhealthy, sawAppWait bool
	harness.Eventually(t, guard, "api unhealthy and app waiting", func() bool {
		ss := a.Services()
		sawUnhealthy = sawUnhealthy || ss["api"].State == "unhealthy"
		sawAppWait = sawAppWait || ss["app"].State == "waiting"
		return len(childPids(t, a)["api"]) == 2 && sawAppWait
	})
	restartedIn := time.Since(stoppedAt)
	a.WaitLog(`msg="unhealthy; restarting" component=api failures=3`, guard)
	a.WaitStates(guard, map[string]string{"api": "ready", "app": "ready"})
	t.Logf("hung child restarted %s after SIGSTOP (interval %s, timeout %s, retries %d; saw unhealthy in a poll: %v)", restartedIn.Round(time.Millisecond), interval, timeout, retries, sawUnhealthy)
	// Caught within retries × (interval + timeout), plus one interval of
	// phase and the 1 s stop timeout of the stopped group; generous slack
	// for a loaded machine.
	if bound := retries*(interval+timeout) + interval + time.Second + 10*time.Second; restartedIn > bound {
		t.Errorf("restarted %s after the hang, more than %s", restartedIn, bound)
	}
	if !syscallGone(hung) {
		t.Errorf("the hung child %d is still there", hung)
	}
	s := a.Services()["api"]
	if s.Health == nil || s.Health.Restarts != 1 || s.Restarts != 1 || !strings.Contains(s.Health.LastOutput, "timed out") {
		t.Fatalf("api after the restart: restarts %d, health %+v", s.Restarts, s.Health)
	}
	if a.Services()["app"].Restarts != 0 {
		t.Errorf("app was restarted; without restart: true it resumes")
	}
	if !strings.Contains(a.Log(), `to=unhealthy err="health check failed 3 times in a row`) {
		t.Errorf("no state change to unhealthy with the check's output in the log")
	}
	detail := rouse(t, a, "status", "api")
	for _, want := range []string{"health:", "health restarts: 1"} {
		if !strings.Contains(detail, want) {
			t.Errorf("rouse status api lacks %q:\n%s", want, detail)
		}
	}
	a.Stop()
	a.CheckNoSurvivors()
}

// syscallGone reports whether pid no longer exists (or is a zombie about
// to be reaped).
func syscallGone(pid int) bool {
	return syscall.Kill(pid, 0) == syscall.ESRCH
}

// The container path through the binary and a private dockerd: a
// container whose server hangs (its process SIGSTOPped) fails its health
// check — an http check given in health.check — retries times in a row, is
// unhealthy, and is restarted with docker restart (the same container,
// started again), then ready.
func TestAHungContainerIsRestarted(t *testing.T) {
	e := testdocker.Start(t)
	p := harness.NewPower(t, true)
	addr := harness.FreeAddr(t)
	name := fmt.Sprintf("e2e-hung-%d", time.Now().UnixNano()%1e6)
	id := e.Create(testdocker.Spec{Name: name, StopTimeout: 1,
		Cmd: []string{"sh", "-c", "echo ok > /tmp/index.html; exec httpd -f -p " + addr + " -h /tmp"}})
	cfg := baseConfig + containerEntry("web", name, e.Host(), fmt.Sprintf(`ready: {http: "http://%s/"}
health: {check: {http: "http://%s/"}, interval: 1s, timeout: 500ms, retries: 3}`, addr, addr))
	a := harness.Start(t, bin, harness.Options{Config: cfg, BusAddr: p.Addr()})
	a.WaitStates(guard, map[string]string{"web": "ready"})
	harness.Eventually(t, guard, "a passing health check", func() bool {
		h := a.Services()["web"].Health
		return h != nil && h.LastResult == "ok"
	})
	before := e.Inspect(id).State
	if err := syscall.Kill(e.HostPID(id), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stoppedAt := time.Now()
	a.WaitLog(`msg="unhealthy; restarting" component=web failures=3`, guard)
	harness.Eventually(t, guard, "the container restarted and web ready again", func() bool {
		s := e.Inspect(id).State
		return s.StartedAt != before.StartedAt && s.Running && a.Services()["web"].State == "ready"
	})
	t.Logf("hung container restarted and ready %s after SIGSTOP", time.Since(stoppedAt).Round(time.Millisecond))
	s := a.Services()["web"]
	if s.Health == nil || s.Health.Restarts != 1 {
		t.Fatalf("web after the restart: health %+v", s.Health)
	}
	if !strings.Contains(a.Log(), `msg="restarting container" component=web`) || !strings.Contains(a.Log(), `why="health check failed"`) {
		t.Errorf("the restart was not a docker restart of the container:\n%s", a.Log())
	}
	if strings.Count(a.Log(), `msg="starting container" component=web`) > 0 && s.Restarts != 0 {
		t.Errorf("restarted by a new Run (restarts %d), want in place", s.Restarts)
	}
	a.Stop()
}
