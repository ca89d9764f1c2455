//go:build linux

package container

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/internal/testdocker"
	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/trackers/internal/fakehost"
)

// guard bounds every wait: a hung engine fails the test, never a slow one.
const guard = 60 * time.Second

var seq atomic.Int64

func uniq(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano()%1e6, seq.Add(1))
}

// running is one Run of a component under test.
type running struct {
	t      *testing.T
	tr     *Tracker
	h      *fakehost.Host
	cancel context.CancelFunc
	done   chan error
	seen   int // reports already matched by waitFor
}

func run(t *testing.T, e *testdocker.Engine, mod func(*Options)) *running {
	t.Helper()
	o := DefaultOptions()
	o.Engine = e.Host()
	o.ReadyInterval = 50 * time.Millisecond
	o.RestartBackoff = Backoff{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond}
	mod(o)
	h := fakehost.New()
	tr, err := New(*o, trackers.Deps{Name: "c", Logger: h.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{t: t, tr: tr, h: h, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- tr.Run(ctx, h) }()
	t.Cleanup(func() { r.stop() })
	return r
}

// stop cancels Run and returns what it returned.
func (r *running) stop() error {
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err
		return err
	case <-time.After(guard):
		r.t.Fatalf("Run did not return within %v", guard)
		return nil
	}
}

// waitFor waits until a report since the previous waitFor matches.
func (r *running) waitFor(what string, ok func(fakehost.Report) bool) fakehost.Report {
	r.t.Helper()
	deadline := time.After(guard)
	for {
		ch := r.h.Changed()
		rs := r.h.Reports()
		for i := r.seen; i < len(rs); i++ {
			if ok(rs[i]) {
				r.seen = i + 1
				return rs[i]
			}
		}
		select {
		case <-ch:
		case err := <-r.done:
			r.done <- err
			r.t.Fatalf("waiting for %s: Run returned %v; last reports %v", what, err, lastReports(r.h))
		case <-deadline:
			r.t.Fatalf("waiting for %s: not within %v; last reports %v", what, guard, lastReports(r.h))
		}
	}
}

// lastReports is the end of the reports, for failure messages.
func lastReports(h *fakehost.Host) []fakehost.Report {
	rs := h.Reports()
	if len(rs) > 5 {
		rs = rs[len(rs)-5:]
	}
	return rs
}

func isReady(rep fakehost.Report) bool { return rep.State == trackers.StateReady }

func errHas(s string) func(fakehost.Report) bool {
	return func(rep fakehost.Report) bool {
		return rep.State == trackers.StateStarting && rep.Err != nil && strings.Contains(rep.Err.Error(), s)
	}
}

func readyReports(h *fakehost.Host) int {
	n := 0
	for _, r := range h.Reports() {
		if r.State == trackers.StateReady {
			n++
		}
	}
	return n
}

// TestAgainstARealEngine runs every container rule against a private
// dockerd.
func TestAgainstARealEngine(t *testing.T) { engineSuite(t, testdocker.Start(t), true) }

// TestAgainstPodman runs the same rules against Podman's Docker-compatible
// API service, but those of Docker's HEALTHCHECK: Podman runs health checks
// from systemd timers, which this test has not got.
func TestAgainstPodman(t *testing.T) { engineSuite(t, testdocker.StartPodman(t), false) }

func engineSuite(t *testing.T, e *testdocker.Engine, health bool) {
	if health {
		healthSuite(t, e)
	}
	genericSuite(t, e)
}

func healthSuite(t *testing.T, e *testdocker.Engine) {
	t.Run("StartsAStoppedContainerAndIsReadyOnceHealthy", func(t *testing.T) {
		name := uniq("healthy")
		id := e.Create(testdocker.Spec{Name: name, Health: []string{"test -f /tmp/ok"},
			Cmd: []string{"sh", "-c", "sleep 1; touch /tmp/ok; exec sleep 100000"}})
		r := run(t, e, func(o *Options) { o.Container = name })
		r.waitFor("ready", isReady)
		if !e.Running(id) {
			t.Fatal("ready but the container does not run")
		}
		if hs := e.Inspect(id).State.Health; hs == nil || hs.Status != "healthy" {
			t.Fatalf("ready before Docker said healthy: %+v", hs)
		}
	})

	t.Run("NeverHealthyIsNotReadyAndSaysWhy", func(t *testing.T) {
		name := uniq("sick")
		e.Create(testdocker.Spec{Name: name, Health: []string{"echo database not up; false"}})
		r := run(t, e, func(o *Options) { o.Container = name })
		rep := r.waitFor("unhealthy", errHas("unhealthy"))
		if !strings.Contains(rep.Err.Error(), "database not up") {
			t.Fatalf("the error does not carry the check's output: %v", rep.Err)
		}
		if n := readyReports(r.h); n != 0 {
			t.Fatalf("reported ready %d times", n)
		}
	})
}

func genericSuite(t *testing.T, e *testdocker.Engine) {
	t.Run("WithoutACheckIsReadyOnceRunning", func(t *testing.T) {
		name := uniq("plain")
		id := e.Create(testdocker.Spec{Name: name})
		r := run(t, e, func(o *Options) { o.Container = name })
		r.waitFor("ready", isReady)
		if !e.Running(id) {
			t.Fatal("not running")
		}
	})

	t.Run("AKillIsNoticedFromTheEventStreamAndTheContainerStartedAgain", func(t *testing.T) {
		name := uniq("killed")
		id := e.Create(testdocker.Spec{Name: name})
		r := run(t, e, func(o *Options) { o.Container = name })
		r.waitFor("ready", isReady)
		before := e.Inspect(id).State.StartedAt
		e.Kill(id)
		r.waitFor("exit noticed", errHas("exited with code 137"))
		r.waitFor("ready again", isReady)
		if after := e.Inspect(id).State.StartedAt; after == before {
			t.Fatal("ready again but the container was not started again")
		}
		found := false
		for _, n := range r.h.Notes() {
			found = found || strings.HasPrefix(n, "container_died: exit code 137")
		}
		if !found {
			t.Fatalf("no container_died note: %v", r.h.Notes())
		}
	})

	t.Run("AMissingContainerIsAnErrorThatNamesIt", func(t *testing.T) {
		name := uniq("nosuch")
		r := run(t, e, func(o *Options) { o.Container = name })
		var err error
		select {
		case err = <-r.done:
			r.done <- err
		case <-time.After(guard):
			t.Fatal("Run did not give up on a missing container")
		}
		var nf *notFoundError
		if !errors.As(err, &nf) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "does not exist") {
			t.Fatalf("Run returned %v", err)
		}
	})

	t.Run("StopStopsTheContainerUnlessToldNotTo", func(t *testing.T) {
		name := uniq("stopme")
		id := e.Create(testdocker.Spec{Name: name, StopTimeout: 1})
		r := run(t, e, func(o *Options) { o.Container = name })
		r.waitFor("ready", isReady)
		if err := r.stop(); err != nil {
			t.Fatalf("Run returned %v", err)
		}
		if e.Running(id) {
			t.Fatal("the container still runs after the component stopped")
		}

		name2 := uniq("keepme")
		id2 := e.Create(testdocker.Spec{Name: name2})
		no := false
		r2 := run(t, e, func(o *Options) { o.Container = name2; o.StopOnStop = &no })
		r2.waitFor("ready", isReady)
		if err := r2.stop(); err != nil {
			t.Fatalf("Run returned %v", err)
		}
		if !e.Running(id2) {
			t.Fatal("stop_on_stop: false stopped the container")
		}
	})

	t.Run("AnExecCheckRunsInsideTheContainer", func(t *testing.T) {
		name := uniq("execck")
		id := e.Create(testdocker.Spec{Name: name})
		r := run(t, e, func(o *Options) { o.Container = name; o.Ready.Exec = []string{"test", "-f", "/tmp/up"} })
		r.waitFor("check failing", errHas("ready.exec: test exited with code 1"))
		e.Exec(id, "touch", "/tmp/up")
		r.waitFor("ready", isReady)
	})

	t.Run("TheHealthCheckAndTheRestartAfterItFailed", func(t *testing.T) {
		name := uniq("health")
		id := e.Create(testdocker.Spec{Name: name, StopTimeout: 1, Cmd: []string{"sh", "-c", "touch /tmp/up; exec sleep 3600"}})
		r := run(t, e, func(o *Options) { o.Container = name; o.Ready.Exec = []string{"test", "-f", "/tmp/up"} })
		r.waitFor("ready", isReady)
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		if err := r.tr.Check(ctx); err != nil {
			t.Fatalf("the check of a ready container: %v", err)
		}
		startedBefore := e.Inspect(id).State.StartedAt
		e.Exec(id, "rm", "/tmp/up")
		if err := r.tr.Check(ctx); err == nil || !strings.Contains(err.Error(), "ready.exec: test exited with code 1") {
			t.Fatalf("the check after the file went: %v", err)
		}
		// The agent's answer to failed checks: docker restart. Run sees
		// the container die and start, and reports it ready again.
		if err := r.tr.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		r.waitFor("not ready after the restart", func(rep fakehost.Report) bool { return rep.State == trackers.StateStarting })
		r.waitFor("ready again", isReady)
		if after := e.Inspect(id).State.StartedAt; after == startedBefore {
			t.Fatalf("the container was not restarted (started at %s both times)", after)
		}
		if err := r.tr.Check(ctx); err != nil {
			t.Fatalf("the check after the restart: %v", err)
		}
	})

	t.Run("WithoutACheckTheHealthCheckIsTheContainersState", func(t *testing.T) {
		name := uniq("state")
		id := e.Create(testdocker.Spec{Name: name, StopTimeout: 1})
		r := run(t, e, func(o *Options) { o.Container = name })
		r.waitFor("ready", isReady)
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		if err := r.tr.Check(ctx); err != nil {
			t.Fatalf("a running container: %v", err)
		}
		e.Pause(id)
		defer e.Unpause(id)
		if err := r.tr.Check(ctx); err == nil || !strings.Contains(err.Error(), "paused") {
			t.Fatalf("a paused container: %v", err)
		}
	})

	t.Run("ATCPCheckWaitsForTheService", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		name := uniq("httpd")
		// The server comes up after a second; the host network makes its
		// port the host's.
		e.Create(testdocker.Spec{Name: name, Cmd: []string{"sh", "-c", fmt.Sprintf("sleep 1; exec httpd -f -p 127.0.0.1:%d -h /tmp", port)}})
		r := run(t, e, func(o *Options) { o.Container = name; o.Ready.TCP = fmt.Sprintf("127.0.0.1:%d", port) })
		r.waitFor("ready", isReady)
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatalf("ready, but the port does not answer: %v", err)
		}
		c.Close()
	})

	t.Run("AComposeServiceIsFoundByItsLabels", func(t *testing.T) {
		project := uniq("blog")
		id := e.Create(testdocker.Spec{Name: uniq("blog-db-1"), Labels: map[string]string{
			"com.docker.compose.project": project, "com.docker.compose.service": "db"}})
		r := run(t, e, func(o *Options) { o.Compose = Compose{Project: project, Service: "db"} })
		r.waitFor("ready", isReady)
		if r.tr.ID() != id {
			t.Fatalf("found %s, want %s", r.tr.ID(), id)
		}
	})

	t.Run("AWakeRestartsItWithRestartOnWake", func(t *testing.T) {
		name := uniq("rw")
		id := e.Create(testdocker.Spec{Name: name, StopTimeout: 1})
		r := run(t, e, func(o *Options) { o.Container = name; o.RestartOnWake = true })
		r.waitFor("ready", isReady)
		before := e.Inspect(id).State.StartedAt
		n := readyReports(r.h)
		r.tr.Resume(context.Background())
		r.waitFor("ready after the wake", func(rep fakehost.Report) bool { return isReady(rep) && readyReports(r.h) > n })
		if after := e.Inspect(id).State.StartedAt; after == before {
			t.Fatal("restart_on_wake did not restart the container")
		}
	})

	t.Run("AWakeWithoutRestartChecksItAgain", func(t *testing.T) {
		name := uniq("nrw")
		id := e.Create(testdocker.Spec{Name: name})
		r := run(t, e, func(o *Options) { o.Container = name })
		r.waitFor("ready", isReady)
		before := e.Inspect(id).State.StartedAt
		n := readyReports(r.h)
		r.tr.Resume(context.Background())
		r.waitFor("ready after the wake", func(rep fakehost.Report) bool { return isReady(rep) && readyReports(r.h) > n })
		if after := e.Inspect(id).State.StartedAt; after != before {
			t.Fatal("a wake without restart_on_wake restarted the container")
		}
	})

	// Last: it stops the engine.
	t.Run("AnEngineThatGoesAwayIsWaitedFor", func(t *testing.T) {
		name := uniq("survivor")
		id := e.Create(testdocker.Spec{Name: name})
		r := run(t, e, func(o *Options) { o.Container = name })
		r.waitFor("ready", isReady)
		e.Stop()
		r.waitFor("waiting for the engine", errHas("waiting for the container engine"))
		select {
		case err := <-r.done:
			t.Fatalf("Run gave up while the engine was away: %v", err)
		default:
		}
		e.Restart()
		r.waitFor("ready once the engine is back", isReady)
		if !e.Running(id) {
			t.Fatal("ready, but the container does not run")
		}
	})
}
