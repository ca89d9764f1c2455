package agent

import (
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/trackers"
)

// TestLockOrder runs, in real time and at once, paths that lock the agent
// and its units: a dependency leaving ready and coming back (its
// dependents are held and released, follow.go) while the heartbeat's scan
// (activeUnits) and the API's list (Services) go on. With a unit's lock
// taken under the agent's on one path and the agent's under a unit's on
// another, this deadlocked within a few hundred rounds (see the lock order
// on Agent.mu).
func TestLockOrder(t *testing.T) {
	db := &probe{latency: time.Millisecond}
	specs := []spec{{name: "db", p: db}}
	for _, n := range []string{"app", "web", "api", "worker"} {
		specs = append(specs, spec{name: n, p: &probe{latency: time.Millisecond}, requires: []string{"db"}})
	}
	a, stop := testAgent(t, t.TempDir(), specs)
	restoreNow(t, a, "boot", false)
	db.mu.Lock()
	h := db.host
	db.mu.Unlock()

	quit := make(chan struct{})
	var scans sync.WaitGroup
	for _, scan := range []func(){
		func() { a.activeUnits() },
		func() { a.Services(t.Context()) },
	} {
		scans.Go(func() {
			for {
				select {
				case <-quit:
					return
				default:
					scan()
				}
			}
		})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			h.Report(trackers.StateStarting, errors.New("connection lost"))
			h.Report(trackers.StateReady, nil)
		}
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		// Deadlocked goroutines cannot be stopped: show them and leave
		// them (goleak names them too).
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("a dependency's leaving and coming back did not end within a minute: deadlock?\n%s", buf)
	}
	close(quit)
	scans.Wait()
	for _, n := range []string{"db", "app", "web", "api", "worker"} {
		if s := a.stateOf(n); !s.IsReady() {
			t.Errorf("%s is %s after the last round, want ready", n, s)
		}
	}
	stop()
}
