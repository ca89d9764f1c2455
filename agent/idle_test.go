package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime/trace"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	xtrace "golang.org/x/exp/trace"

	"github.com/rouse-dev/rouse/agent/config"
	"github.com/rouse-dev/rouse/agent/store"
)

// TestAnIdleDefaultAgentArmsNoTimer runs the embedded default config —
// the scheduler with its built-in jobs (sleeping until they are due, as
// when the agent forwards wakes and clock sets), the network tracker, the
// heartbeat, the state writer and the API's view renderer — in a synctest
// bubble, lets it settle after its boot restore, and then lets the fake
// clock run up to just before the next due job under an execution trace. Any goroutine of the agent woken in that
// window (a ticker, a periodic timer, a poll) fails the test: idle means
// asleep. (The OS watchers — power, clock, network — use real sockets and
// have their own tests; their idle behaviour is not in this bubble.)
func TestAnIdleDefaultAgentArmsNoTimer(t *testing.T) {
	var buf bytes.Buffer
	if err := trace.Start(&buf); err != nil {
		t.Skipf("execution tracing is unavailable (another trace is running): %v", err)
	}
	traceOn := true
	defer func() {
		if traceOn {
			trace.Stop()
		}
	}()
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		a, stop := defaultAgent(t, dir)
		defer stop()
		restoreNow(t, a, "boot", false)
		time.Sleep(5 * time.Minute) // boot's aftermath (first renders, retries) is over
		synctest.Wait()
		trace.Log(context.Background(), "idle", "start")
		// The bubble's clock starts at midnight; the maintenance job is
		// @hourly: the next due time is 01:00, after the window.
		time.Sleep(54 * time.Minute)
		trace.Log(context.Background(), "idle", "end")
	})
	trace.Stop()
	traceOn = false

	woken, err := wokenInWindow(&buf)
	if err != nil {
		t.Fatalf("reading the execution trace: %v", err)
	}
	for _, w := range woken {
		t.Errorf("woken while idle:\n%s", w)
	}
}

// defaultAgent is testAgent's setup on the embedded default config with
// the scheduler on and the view renderer running.
func defaultAgent(t *testing.T, dir string) (*Agent, func()) {
	t.Helper()
	cfg := config.Default()
	a, err := New(Options{Config: cfg, DataDir: dir, Logger: discard, Power: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a.store, err = store.Open(ctx, StorePath(dir), store.Options{Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	desired, err := a.store.Desired(ctx)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	a.runCtx = runCtx
	if err := a.newScheduler(cfg); err != nil {
		t.Fatal(err)
	}
	units, names, g, err := a.buildUnits(cfg, nil, desired)
	if err != nil {
		t.Fatal(err)
	}
	a.units, a.names, a.graph = units, names, g
	a.goRun(func() { a.stateWriter(runCtx) })
	a.goRun(func() { a.heartbeat(runCtx) })
	a.goRun(func() { a.renderViews(runCtx) })
	return a, func() {
		a.shutdown()
		cancel()
		a.wg.Wait()
		if err := a.store.Close(context.Background()); err != nil && !errors.Is(err, store.ErrClosed) {
			t.Error(err)
		}
	}
}

// wokenInWindow reads an execution trace and returns, for every goroutine
// of this module (one with a rouse frame where it blocked) made runnable
// between the "idle" start and end logs, other than the goroutine that
// wrote them, where it had been blocked.
func wokenInWindow(r io.Reader) ([]string, error) {
	tr, err := xtrace.NewReader(r)
	if err != nil {
		return nil, err
	}
	blockedAt := map[xtrace.GoID]string{}
	var self xtrace.GoID = xtrace.NoGoroutine
	in := false
	var woken []string
	for {
		ev, err := tr.ReadEvent()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		switch ev.Kind() {
		case xtrace.EventLog:
			if l := ev.Log(); l.Category == "idle" {
				self = ev.Goroutine()
				in = l.Message == "start"
			}
		case xtrace.EventStateTransition:
			st := ev.StateTransition()
			if st.Resource.Kind != xtrace.ResourceGoroutine {
				continue
			}
			id := st.Resource.Goroutine()
			from, to := st.Goroutine()
			switch {
			case to == xtrace.GoWaiting:
				blockedAt[id] = st.Stack.String()
			case from == xtrace.GoWaiting && to == xtrace.GoRunnable && in && id != self:
				// The bubble's root waits in synctest.Run for the test's
				// own sleep: not the agent.
				if s := blockedAt[id]; strings.Contains(s, "github.com/rouse-dev/rouse/") && !strings.Contains(s, "internal/synctest.Run") {
					woken = append(woken, s)
				}
			}
		}
	}
	return woken, nil
}
