//go:build linux

package reliability

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/tests/internal/harness"
)

// TestNetworkFaults puts a fault proxy between an http tracker and its
// server and walks it through latency with jitter, resets, slow closes, a
// blackhole and a bandwidth limit, checking that the tracker's deadline is
// honoured (degraded at the deadline, not before), that retries stay
// inside their backoff bounds, that it recovers each time, and that the
// agent's goroutines and open fds come back to their baseline.
func TestNetworkFaults(t *testing.T) {
	const deadline = 2 * time.Second
	pad := strings.Repeat("z", 600)
	var mu = make(chan struct{}, 1)
	mu <- struct{}{}
	var served int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-mu
		served++
		k := served
		mu <- struct{}{}
		items := []map[string]any{}
		for i := range 100 { // ~65 kB a response
			items = append(items, map[string]any{"id": fmt.Sprintf("%d-%d", k, i), "pad": pad})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(items)
	}))
	t.Cleanup(srv.Close)
	px := newFaultProxy(t, strings.TrimPrefix(srv.URL, "http://"))
	cfg := fmt.Sprintf(`
heartbeat: {initial: 200ms, max: 1s}
scheduler: {enabled: false}
trackers:
  - name: feed
    kind: http
    url: "http://%s/items"
    interval: 1s
    timeout: 1s
    deadline: %s
    needs_network: false
    cursor: {from: none}
    retry: {initial: 100ms, max: 400ms, budget: 3}
`, px.Addr(), deadline)
	p := harness.NewPower(t, false)
	a := harness.Start(t, bin, harness.Options{Config: cfg, BusAddr: p.Addr()})
	a.WaitStates(guard, map[string]string{"feed": "ready"})
	last := a.WaitWakeDone(guard, a.LastWakeID()).ID
	time.Sleep(2 * time.Second)
	baseG, baseF := a.Metric("go_goroutines"), a.Metric("process_open_fds")

	// wakeWith sets a mode, wakes the agent and returns the wake record.
	wakeWith := func(t *testing.T, set func(p *faultProxy)) (feedState string, ms int64) {
		t.Helper()
		px.set(set)
		ctx := harness.Ctx(t, guard)
		if _, err := a.Client.Wake(ctx); err != nil {
			t.Fatal(err)
		}
		w := a.WaitNewWake(guard, last)
		last = w.ID
		c, ok := harness.ComponentOf(w, "feed")
		if !ok {
			t.Fatalf("feed is not in wake %d", w.ID)
		}
		return c.State, c.DurationMS
	}
	heal := func(t *testing.T) {
		t.Helper()
		px.set(func(p *faultProxy) { p.mode = modePass })
		a.WaitStates(guard, map[string]string{"feed": "ready"})
	}

	t.Run("LatencyWithJitterStillRestores", func(t *testing.T) {
		st, _ := wakeWith(t, func(p *faultProxy) {
			p.mode, p.latency, p.jitter = modeLatency, 150*time.Millisecond, 100*time.Millisecond
		})
		if st != "ready" {
			t.Errorf("feed %s after a wake behind 150±100 ms of latency, want ready", st)
		}
		heal(t)
	})

	t.Run("ABlackholeDegradesAtTheDeadlineNotBefore", func(t *testing.T) {
		st, d := wakeWith(t, func(p *faultProxy) { p.mode = modeBlackhole })
		if st != "degraded" {
			t.Errorf("feed %s behind a blackhole, want degraded", st)
		}
		if d < deadline.Milliseconds() {
			t.Errorf("feed given up on after %d ms, before its %v deadline", d, deadline)
		}
		if d > deadline.Milliseconds()+2000 {
			t.Errorf("feed given up on after %d ms, long after its %v deadline", d, deadline)
		}
		heal(t)
	})

	t.Run("ResetsAreRetriedInsideTheBackoffBounds", func(t *testing.T) {
		t0 := time.Now()
		px.set(func(p *faultProxy) { p.mode = modeReset })
		ctx := harness.Ctx(t, guard)
		if _, err := a.Client.Wake(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(4 * time.Second)
		tries := px.acceptedSince(t0)
		heal(t)
		last = a.WaitNewWake(guard, last).ID
		if len(tries) < 3 {
			t.Fatalf("%d connection attempts in 4 s of resets: it stopped trying", len(tries))
		}
		// Every wait is capped by the largest bound in play (retry.max
		// 400 ms, heartbeat.max 1 s, interval 1 s), plus the 1 s request
		// timeout and scheduling slack.
		const most = 2500 * time.Millisecond
		for i := 1; i < len(tries); i++ {
			if g := tries[i].Sub(tries[i-1]); g > most {
				t.Errorf("gap of %v between attempts %d and %d, beyond %v", g, i, i+1, most)
			}
		}
		// Full jitter from 100 ms: a busy loop would make hundreds.
		if len(tries) > 80 {
			t.Errorf("%d attempts in 4 s: retries are not backing off", len(tries))
		}
	})

	t.Run("ASlowCloseDoesNotHoldTheRestore", func(t *testing.T) {
		st, _ := wakeWith(t, func(p *faultProxy) { p.mode, p.slowClose = modeSlowClose, 5*time.Second })
		if st != "ready" {
			t.Errorf("feed %s behind slow closes, want ready", st)
		}
		heal(t)
	})

	t.Run("ABandwidthLimitIsSlowButGetsThere", func(t *testing.T) {
		// 65 kB at 100 kB/s: within the 1 s request timeout, barely.
		st, _ := wakeWith(t, func(p *faultProxy) { p.mode, p.bytesPerSec = modeBandwidth, 100<<10 })
		if st != "ready" {
			t.Errorf("feed %s behind 100 kB/s, want ready", st)
		}
		heal(t)
	})

	t.Run("GoroutinesAndFdsComeBackToTheBaseline", func(t *testing.T) {
		var g, f float64
		harness.Eventually(t, guard, "goroutines and fds back to baseline", func() bool {
			g, f = a.Metric("go_goroutines"), a.Metric("process_open_fds")
			return g <= baseG+5 && f <= baseF+3
		})
		t.Logf("goroutines %v (baseline %v), fds %v (baseline %v)", g, baseG, f, baseF)
	})
}
