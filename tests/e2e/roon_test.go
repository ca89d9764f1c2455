//go:build linux

package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/client"
	"github.com/rouse-dev/rouse/tests/internal/harness"
	"github.com/rouse-dev/rouse/trackers/roon/fakecore"
)

// TestRoonBehindATunnel runs a Roon extension through the built binary:
// a fake Roon Core (the real one cannot run here) reached through an exec
// tunnel the roon component depends on, paired once, then taken through
// suspend/resume cycles by the fake logind. The tunnel restarts on every
// wake, so the core's connection drops each time and the roon component
// must come back after the tunnel, with the core answering at once, after
// 2 s, and after 12 s (past its 10 s deadline).
func TestRoonBehindATunnel(t *testing.T) {
	p := harness.NewPower(t, true)
	marker := harness.NewMarker()
	core := fakecore.New("core-e2e", "E2E Core")
	core.SetZones(&fakecore.Zone{ID: "z-kitchen", Name: "Kitchen", State: "playing",
		Track: &fakecore.Track{Title: "So What", Artist: "Miles Davis", Album: "Kind of Blue", Length: 562}, Seek: 12})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { core.Serve(ctx, ln) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	tunnel := harness.FreeAddr(t)
	cfg := baseConfig +
		execEntry(marker, "tunnel", harness.HelperCommand(marker, harness.ModeProxy, tunnel, ln.Addr().String(), "0s"), tunnel, "restart_on_wake: true") + fmt.Sprintf(`
  - name: roon
    kind: roon
    core: %q
    depends_on: [tunnel]
`, tunnel)
	a := harness.Start(t, bin, harness.Options{Config: cfg, BusAddr: p.Addr(), Marker: marker})
	waitLock(t, p)
	cctx := func() context.Context { return harness.Ctx(t, guard) }

	t.Run("ItWaitsForTheUserToEnableItThenRecordsWhatPlays", func(t *testing.T) {
		a.WaitStates(guard, map[string]string{"tunnel": "ready", "roon": "waiting"})
		s, err := a.Client.Service(cctx(), "roon")
		if err != nil {
			t.Fatal(err)
		}
		if want := "waiting for you to enable 'rouse' in Roon → Settings → Extensions"; s.LastError != want {
			t.Errorf("GET /api/v1/services/roon says %q, want %q", s.LastError, want)
		}
		if err := core.WaitHeld(harness.Ctx(t, guard)); err != nil {
			t.Fatal(err)
		}
		core.Enable()
		a.WaitStates(guard, map[string]string{"roon": "ready"})
		harness.Eventually(t, guard, "one item", func() bool {
			it, err := a.Client.Items(cctx(), "roon", client.ItemQuery{})
			return err == nil && len(it.Items) == 1
		})
		tok := core.Tokens()
		if len(tok) != 1 || strings.Contains(a.Log(), tok[0]) {
			t.Errorf("the token is in the agent's log (or was never issued: %v)", tok)
		}
		sv, _ := a.Client.Service(cctx(), "roon")
		if strings.Contains(fmt.Sprint(sv), tok[0]) {
			t.Error("the token is in the API's view of the component")
		}
	})

	// cycle suspends and resumes once and returns how long the roon
	// component took from PrepareForSleep(false) to ready, by the agent's
	// own clock of the transition.
	cycle := func(t *testing.T) time.Duration {
		before := a.LastWakeID()
		suspend(t, p) // returns once PrepareForSleep(false) is sent
		resumed := time.Now()
		w := a.WaitNewWake(guard, before)
		w = a.WaitWakeDone(guard, w.ID)
		harness.Eventually(t, guard, "roon ready", func() bool {
			s := a.Services()["roon"]
			return s.State == "ready" && s.Since.After(resumed)
		})
		ss := a.Services()
		tun, rn := ss["tunnel"], ss["roon"]
		if tun.StartedAt == nil || rn.StartedAt == nil || rn.StartedAt.Before(*tun.StartedAt) || tun.StartedAt.Before(resumed) {
			t.Errorf("out of order: tunnel ready at %v, roon at %v, resumed at %v", tun.StartedAt, rn.StartedAt, resumed)
		}
		return rn.Since.Sub(resumed)
	}
	var atOnce, delayed []time.Duration

	t.Run("AWakeWithTheCoreAnsweringAtOnce", func(t *testing.T) {
		for range 3 {
			atOnce = append(atOnce, cycle(t))
		}
		if it, err := a.Client.Items(cctx(), "roon", client.ItemQuery{}); err != nil || len(it.Items) != 1 {
			t.Errorf("items after reconnects: %d, %v; want the one play", len(it.Items), err)
		}
	})

	t.Run("AWakeWithTheCoreAnsweringAfter2s", func(t *testing.T) {
		core.SetInfoDelay(2 * time.Second)
		defer core.SetInfoDelay(0)
		for range 2 {
			d := cycle(t)
			if d < 2*time.Second {
				t.Errorf("ready %v after the wake, before the core answered", d)
			}
			delayed = append(delayed, d)
		}
	})

	t.Run("TheInfoAnswerDelayed12sIsDegradedAt10sThenReady", func(t *testing.T) {
		core.SetInfoDelay(12 * time.Second)
		defer core.SetInfoDelay(0)
		before := a.LastWakeID()
		suspend(t, p)
		w := a.WaitWakeDone(guard, a.WaitNewWake(guard, before).ID)
		c, _ := harness.ComponentOf(w, "roon")
		if c.State != "degraded" || c.DurationMS < 10000 {
			t.Errorf("roon in the wake record: %+v, want degraded at its 10 s deadline", c)
		}
		a.WaitStates(guard, map[string]string{"roon": "ready"})

		// A manual start meets the same delay: 202, started with timeout.
		if _, _, err := a.Client.Stop(cctx(), "roon"); err != nil {
			t.Fatal(err)
		}
		st, code, err := a.Client.Start(cctx(), "roon")
		if err != nil || code != 202 || st != "started with timeout" {
			t.Errorf("POST start = %q %d %v, want 202 started with timeout", st, code, err)
		}
		a.WaitStates(guard, map[string]string{"roon": "ready"})
	})

	t.Run("ARestartedAgentRegistersWithItsSavedToken", func(t *testing.T) {
		_, registers, _ := core.Counts()
		a.Stop()
		a = harness.Start(t, bin, harness.Options{Config: cfg, BusAddr: p.Addr(), Marker: marker, DataDir: a.DataDir})
		a.WaitStates(guard, map[string]string{"tunnel": "ready", "roon": "ready"})
		if _, r2, held := core.Counts(); held != 0 || r2 != registers+1 {
			t.Errorf("after the restart: %d registrations held, %d new; want the saved token accepted at once", held, r2-registers)
		}
		if it, err := a.Client.Items(cctx(), "roon", client.ItemQuery{}); err != nil || len(it.Items) != 1 {
			t.Errorf("items after the restart: %d, %v; want the same one play", len(it.Items), err)
		}
	})

	if errs := core.Errors(); len(errs) > 0 {
		t.Errorf("the fake core saw protocol errors: %v", errs)
	}
	if len(atOnce) > 0 {
		t.Logf("PrepareForSleep(false) → roon ready, core at once: %v; core after 2 s: %v", atOnce, delayed)
		if la, err := os.ReadFile("/proc/loadavg"); err == nil {
			t.Logf("load average: %s", strings.TrimSpace(string(la)))
		}
	}
}
