package agent

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rouse-dev/rouse/trackers"
)

func TestDependentsFollow(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		db := &probe{latency: time.Millisecond}
		app := &probe{latency: 2 * time.Second}
		web := &probe{latency: 2 * time.Second}
		front := &probe{latency: time.Millisecond}
		other := &probe{latency: time.Millisecond}
		a, stop := testAgent(t, dir, []spec{
			{name: "db", p: db},
			{name: "app", p: app, requires: []string{"db"}},
			{name: "web", p: web, requires: []string{"db"}, restart: []string{"db"}},
			{name: "front", p: front, requires: []string{"app"}},
			{name: "other", p: other},
		})
		defer stop()
		restoreNow(t, a, "boot", false)
		db.mu.Lock()
		h := db.host
		db.mu.Unlock()

		h.Report(trackers.StateStarting, errors.New("connection lost"))
		synctest.Wait()
		for name, why := range map[string]string{
			"app": "waiting for db: db is starting", "web": "waiting for db: db is starting",
			"front": "waiting for app: app is waiting",
		} {
			if s := a.svc(t, name); s.State != "waiting" || s.LastError != why {
				t.Errorf("%s: %s (%q), want waiting (%q)", name, s.State, s.LastError, why)
			}
		}
		if s := a.svc(t, "other"); s.State != "ready" {
			t.Errorf("other, which does not need db, is %s", s.State)
		}
		if r := a.Ready(context.Background(), false); r.Ready {
			t.Error("/readyz is ready while db is down")
		}
		// A dependent's own reports while it waits do not make it ready.
		app.mu.Lock()
		app.host.Report(trackers.StateReady, nil)
		app.mu.Unlock()
		if s := a.svc(t, "app"); s.State != "waiting" {
			t.Fatalf("app reported ready while db is down and is %s", s.State)
		}
		time.Sleep(time.Minute) // the heartbeat does not start what waits
		synctest.Wait()
		if app.runs.Load() != 1 || web.runs.Load() != 1 {
			t.Fatalf("runs while db was down: app %d, web %d", app.runs.Load(), web.runs.Load())
		}

		h.Report(trackers.StateReady, nil)
		synctest.Wait()
		// Without restart: resumed at once, same Run; its dependent too.
		for _, name := range []string{"app", "front"} {
			if s := a.svc(t, name); s.State != "ready" || s.LastError != "" || s.Restarts != 0 {
				t.Errorf("%s: %s (%q), restarts %d; want ready again, not restarted", name, s.State, s.LastError, s.Restarts)
			}
		}
		if app.runs.Load() != 1 || front.runs.Load() != 1 {
			t.Errorf("runs: app %d, front %d; want 1 each", app.runs.Load(), front.runs.Load())
		}
		// With restart: true, a new Run.
		if s := a.svc(t, "web"); s.State == "ready" {
			t.Fatal("web is ready at once although it is being restarted")
		}
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if s := a.svc(t, "web"); s.State != "ready" || s.Restarts != 1 || web.runs.Load() != 2 {
			t.Fatalf("web: %s, restarts %d, runs %d; want ready after one restart", s.State, s.Restarts, web.runs.Load())
		}
	})
}

func TestDependentsOfAStoppedDependency(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		db := &probe{latency: time.Millisecond}
		app := &probe{latency: time.Millisecond}
		front := &probe{latency: time.Millisecond}
		a, stop := testAgent(t, dir, []spec{
			{name: "db", p: db},
			{name: "app", p: app, requires: []string{"db"}},
			{name: "front", p: front, requires: []string{"app"}},
		})
		defer stop()
		restoreNow(t, a, "boot", false)
		if _, err := a.Stop(context.Background(), "db"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		for name, why := range map[string]string{"app": "blocked: db is stopped", "front": "blocked: app is blocked (db is stopped)"} {
			if s := a.svc(t, name); s.State != "waiting" || s.Blocked != why {
				t.Errorf("%s: %s, blocked %q; want waiting, %q", name, s.State, s.Blocked, why)
			}
		}
		if h := a.Health(context.Background()); h.Status != "ok" {
			t.Errorf("overall %q while only the user's stop holds things, want ok", h.Status)
		}
		if _, err := a.Start(context.Background(), "db"); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		for _, name := range []string{"app", "front"} {
			if s := a.svc(t, name); s.State != "ready" || s.Blocked != "" || s.Restarts != 0 {
				t.Errorf("%s after db's start: %s, blocked %q, restarts %d", name, s.State, s.Blocked, s.Restarts)
			}
		}
	})
}
