package agent

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rouse-dev/rouse/agent/api"
	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/wire"
)

func (a *Agent) svc(t *testing.T, name string) wire.Service {
	t.Helper()
	s, err := a.Service(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// exitCoder is an error with a process exit status, as os/exec's.
type exitCoder struct{ code int }

func (e exitCoder) Error() string { return "exit status 3" }
func (e exitCoder) ExitCode() int { return e.code }

func TestRestartsLastExitAndNextTry(t *testing.T) {
	t.Run("AFailedRunIsALastExitWithANextTryAndEachRetryARestart", func(t *testing.T) {
		dir := t.TempDir()
		synctest.Test(t, func(t *testing.T) {
			flaky := &probe{latency: time.Millisecond, failN: 2}
			a, stop := testAgent(t, dir, []spec{{name: "flaky", p: flaky}})
			defer stop()
			restoreNow(t, a, "boot", false)
			s := a.svc(t, "flaky")
			if s.State != "failed" || s.Restarts != 0 || s.NextRetryAt == nil || s.LastExit == nil || s.LastExit.Error != "refused" {
				t.Fatalf("after the first run: %+v (last exit %+v)", s, s.LastExit)
			}
			time.Sleep(time.Second + 2*time.Second + 10*time.Millisecond) // both retries' ceilings
			synctest.Wait()
			s = a.svc(t, "flaky")
			if s.State != "ready" || s.Restarts != 2 || s.NextRetryAt != nil {
				t.Fatalf("after its retries: state %s, restarts %d, next try %v; want ready, 2, none", s.State, s.Restarts, s.NextRetryAt)
			}
			h := a.Health(context.Background())
			if h.Components[0].Restarts != 2 || h.Components[0].Attempts != s.Attempts {
				t.Fatalf("health and service disagree: %+v vs %+v", h.Components[0], s)
			}
		})
	})
	t.Run("AChildTheComponentRestartsItselfIsCountedThroughTheHost", func(t *testing.T) {
		dir := t.TempDir()
		synctest.Test(t, func(t *testing.T) {
			p := &probe{latency: time.Millisecond}
			a, stop := testAgent(t, dir, []spec{{name: "tunnel", p: p}})
			defer stop()
			restoreNow(t, a, "boot", false)
			p.mu.Lock()
			h := p.host
			p.mu.Unlock()
			x, ok := h.(trackers.ExitReporter)
			if !ok {
				t.Fatal("the agent's host does not take exit reports")
			}
			h.Report(trackers.StateStarting, exitCoder{3})
			x.Exited(exitCoder{3}, 5*time.Second)
			s := a.svc(t, "tunnel")
			if s.Restarts != 1 || s.LastExit == nil || s.LastExit.Code == nil || *s.LastExit.Code != 3 {
				t.Fatalf("restarts %d, last exit %+v; want 1 and code 3", s.Restarts, s.LastExit)
			}
			if s.NextRetryAt == nil || time.Until(*s.NextRetryAt) != 5*time.Second {
				t.Fatalf("next try %v, want in 5s", s.NextRetryAt)
			}
			h.Report(trackers.StateReady, nil)
			if s := a.svc(t, "tunnel"); s.NextRetryAt != nil {
				t.Fatalf("a ready component still shows a next try at %v", s.NextRetryAt)
			}
		})
	})
}

func TestStoppedDependency(t *testing.T) {
	t.Run("ItsDependentIsBlockedTheStatusSettlesAndTheDryRunSkipsBoth", func(t *testing.T) {
		dir := t.TempDir()
		synctest.Test(t, func(t *testing.T) {
			tunnel := &probe{latency: time.Millisecond}
			api := &probe{latency: time.Millisecond}
			other := &probe{latency: time.Millisecond}
			a, stop := testAgent(t, dir, []spec{{name: "tunnel", p: tunnel}, {name: "api", p: api, requires: []string{"tunnel"}}, {name: "other", p: other}})
			defer stop()
			restoreNow(t, a, "boot", false)
			if _, err := a.Stop(context.Background(), "tunnel"); err != nil {
				t.Fatal(err)
			}
			restoreNow(t, a, "manual", true)
			time.Sleep(time.Hour) // long after: nothing is left "starting"
			synctest.Wait()
			s := a.svc(t, "api")
			if s.State != "waiting" || s.Blocked != "blocked: tunnel is stopped" || s.LastError != s.Blocked {
				t.Fatalf("api: state %s, blocked %q, last error %q", s.State, s.Blocked, s.LastError)
			}
			if h := a.Health(context.Background()); h.Status != wire.StatusOK {
				t.Fatalf("overall status %q, want ok (api waits for the user, not for a start)", h.Status)
			}
			lw := a.lastWake
			if lw.Restore.TimedOut != 0 || lw.Restore.Skipped != 2 {
				t.Fatalf("the wake counts %+v, want tunnel and api skipped, none timed out", lw.Restore)
			}
			p, err := a.WakePlan(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range p.Components {
				if c.Name != "other" {
					t.Fatalf("the dry run plans %s", c.Name)
				}
			}
			want := []wire.PlanSkip{{Name: "tunnel", Reason: "stopped"}, {Name: "api", Reason: "blocked: tunnel is stopped"}}
			if len(p.NotPlanned) != 2 || p.NotPlanned[0] != want[0] || p.NotPlanned[1] != want[1] {
				t.Fatalf("not planned %+v, want %+v", p.NotPlanned, want)
			}
			// Started again, the dependency brings its dependent back.
			if _, err := a.Start(context.Background(), "tunnel"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second)
			synctest.Wait()
			if s := a.svc(t, "api"); s.State != "ready" || s.Blocked != "" {
				t.Fatalf("api after tunnel started: %s, blocked %q", s.State, s.Blocked)
			}
		})
	})
	t.Run("StoppingADegradedDependencyRewordsItsDependentsWait", func(t *testing.T) {
		dir := t.TempDir()
		synctest.Test(t, func(t *testing.T) {
			slow := &probe{never: true, ready: make(chan struct{})}
			dep := &probe{latency: time.Millisecond}
			top := &probe{latency: time.Millisecond}
			a, stop := testAgent(t, dir, []spec{{name: "slow", p: slow, deadline: time.Second}, {name: "dep", p: dep, requires: []string{"slow"}}, {name: "top", p: top, requires: []string{"dep"}}})
			defer stop()
			restoreNow(t, a, "boot", false)
			if s := a.svc(t, "dep"); s.LastError != "blocked: slow is degraded" {
				t.Fatalf("dep waits with %q", s.LastError)
			}
			if _, err := a.Stop(context.Background(), "slow"); err != nil {
				t.Fatal(err)
			}
			if s := a.svc(t, "dep"); s.Blocked != "blocked: slow is stopped" {
				t.Fatalf("dep after slow stopped: %q", s.Blocked)
			}
			if s := a.svc(t, "top"); s.State == "waiting" && s.Blocked != "blocked: dep is blocked (slow is stopped)" {
				t.Fatalf("top after slow stopped: %q", s.Blocked)
			}
			if h := a.Health(context.Background()); h.Status == wire.StatusStarting {
				t.Fatalf("overall status %q after the stop", h.Status)
			}
		})
	})
}

func TestUnknownComponentNames(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		a, stop := testAgent(t, dir, []spec{{name: "tunnel", p: &probe{latency: time.Millisecond}}})
		defer stop()
		_, err := a.Stop(context.Background(), "store")
		if !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), "the store is not a component you can start or stop") ||
			!strings.Contains(err.Error(), "the components are: tunnel") {
			t.Fatalf("stop store: %v", err)
		}
		if _, err := a.Start(context.Background(), "tunel"); err == nil || !strings.Contains(err.Error(), `no component named "tunel"; the components are: tunnel`) {
			t.Fatalf("start tunel: %v", err)
		}
	})
}
