package roon

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/trackers/roon/fakecore"
)

func TestPairing(t *testing.T) {
	t.Run("FirstPairingWaitsForEnableThenRecordsWhatPlays", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newRig(t, nil)
			r.start()
			r.waitState(trackers.StateWaiting, 5*time.Second)
			want := "waiting for you to enable 'rouse' in Roon → Settings → Extensions"
			if got := r.host.Last().Err; got == nil || got.Error() != want {
				t.Fatalf("waiting says %v, want %q", got, want)
			}
			// The wait is not a failure: no redial, however long it lasts.
			time.Sleep(5 * time.Minute)
			if d := r.ln.dialCount(); d != 1 {
				t.Errorf("dials while waiting for enable = %d, want 1", d)
			}
			if st := r.state(); st != trackers.StateWaiting {
				t.Errorf("state after 5 min of waiting = %s", st)
			}
			r.enable()
			r.waitState(trackers.StateReady, 5*time.Second)
			tok, err := r.st.Secret(context.Background(), "roon", "core-1")
			if err != nil || tok == "" || tok != r.core.Tokens()[0] {
				t.Errorf("saved token = %q, %v; core issued %v", tok, err, r.core.Tokens())
			}
			r.until("one item stored", time.Second, func() bool { return r.items() == 1 })
			var d itemData
			if err := json.Unmarshal(r.st.All("roon")[0].Data, &d); err != nil {
				t.Fatal(err)
			}
			if d.Zone != "Kitchen" || d.Title != "So What" || d.Artist != "Miles Davis" || d.Album != "Kind of Blue" || d.Length != 562 {
				t.Errorf("item = %+v", d)
			}
			started, _ := time.Parse(time.RFC3339Nano, d.StartedAt)
			if ago := time.Since(started); ago < 30*time.Second || ago > 31*time.Second {
				t.Errorf("started_at %v ago, want the seek position (30s)", ago)
			}
			if strings.Contains(r.host.Logs(), tok) {
				t.Error("the token is in the logs")
			}
			dj, _ := json.Marshal(r.tr.Detail())
			if strings.Contains(string(dj), tok) {
				t.Error("the token is in the API's detail")
			}
			if d := r.tr.Detail().(Detail); !d.Paired || d.Core != "Living Room Core" || d.Zones != 1 || d.Address != "core.test:9330" {
				t.Errorf("detail = %+v", d)
			}
			r.noCoreErrors()
		})
	})
	t.Run("RestartWithTheSavedTokenNeedsNoEnable", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newRig(t, nil)
			r.pair()
			r.until("one item", time.Second, func() bool { return r.items() == 1 })
			r.stop()
			r.tr = r.newTracker(nil) // a new agent process: only the store remains
			r.start()
			r.waitState(trackers.StateReady, 5*time.Second)
			for _, s := range r.host.States() {
				if s == trackers.StateWaiting {
					t.Errorf("waited for enable with a saved token: %v", r.host.States())
				}
			}
			if _, _, held := r.core.Counts(); held != 0 {
				t.Errorf("%d registrations held", held)
			}
			time.Sleep(time.Second)
			if n := r.items(); n != 1 {
				t.Errorf("items after restart = %d, want 1 (the same play)", n)
			}
			r.noCoreErrors()
		})
	})
}

func TestTracks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, nil)
		r.pair()
		r.until("one item", time.Second, func() bool { return r.items() == 1 })
		r.core.Play(kitchen, fakecore.Track{Title: "Freddie Freeloader", Artist: "Miles Davis", Album: "Kind of Blue", Length: 589})
		r.until("two items", time.Second, func() bool { return r.items() == 2 })
		r.core.Seek(kitchen, 100)
		r.core.Seek(kitchen, 5)
		r.core.Pause(kitchen)
		r.core.Play(kitchen, fakecore.Track{Title: "Freddie Freeloader", Artist: "Miles Davis", Album: "Kind of Blue", Length: 589})
		time.Sleep(time.Second)
		if n := r.items(); n != 2 {
			t.Errorf("items after seeks and a pause = %d, want 2", n)
		}
		r.core.Play(kitchen, fakecore.Track{Title: "Blue in Green", Artist: "Miles Davis", Album: "Kind of Blue", Length: 337})
		r.until("three items", time.Second, func() bool { return r.items() == 3 })
		r.core.AddZone(&fakecore.Zone{ID: "zone-study", Name: "Study", State: "stopped"})
		r.core.RemoveZone("zone-study")
		r.until("two notes", time.Second, func() bool { return len(r.host.Notes()) == 2 })
		if n := r.host.Notes(); n[0] != "zone_added: Study" || n[1] != "zone_removed: Study" {
			t.Errorf("notes = %q", n)
		}
		r.noCoreErrors()
	})
}

func TestZoneFilter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, func(o *Options) { o.Zone = "Study" })
		r.pair()
		r.core.AddZone(&fakecore.Zone{ID: "zone-study", Name: "Study", State: "stopped"})
		r.core.Play("zone-study", fakecore.Track{Title: "Naima", Artist: "John Coltrane", Album: "Giant Steps", Length: 261})
		r.until("one item", time.Second, func() bool { return r.items() == 1 })
		var d itemData
		_ = json.Unmarshal(r.st.All("roon")[0].Data, &d)
		if d.Zone != "Study" {
			t.Errorf("stored a play of zone %q", d.Zone)
		}
	})
}

func TestRecovery(t *testing.T) {
	cases := []struct {
		name  string
		fault func(r *rig)
	}{
		{"AnAbruptDrop", func(r *rig) { r.core.Drop() }},
		{"ACloseGoingAway", func(r *rig) { r.core.Close(1001, "core restarting") }},
		{"AMalformedMessage", func(r *rig) { r.core.SendRaw([]byte("MOO/1 CONTINUE Changed\nContent-Length: 2\n\n{}")) }},
		{"AnAnswerToAnUnknownRequestId", func(r *rig) { r.core.SendRaw([]byte("MOO/1 COMPLETE Success\nRequest-Id: 999\n\n")) }},
	}
	for _, c := range cases {
		t.Run("RedialsAfter"+c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newRig(t, nil)
				r.pair()
				r.until("one item", time.Second, func() bool { return r.items() == 1 })
				c.fault(r)
				r.until("disconnected", 5*time.Second, func() bool { return r.tr.Stats().Dropped == 1 })
				r.waitState(trackers.StateReady, 5*time.Second)
				if s := r.tr.Stats(); s.Dials != 2 || s.Subscribed != 2 {
					t.Errorf("stats = %+v, want a second dial and subscription", s)
				}
				time.Sleep(time.Second)
				if n := r.items(); n != 1 {
					t.Errorf("items = %d after the reconnect, want 1 (same play)", n)
				}
				r.noCoreErrors()
			})
		})
	}
	t.Run("MalformedAndUnknownIdsCountAsMalformed", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newRig(t, nil)
			r.pair()
			r.core.SendRaw([]byte("MOO/1 COMPLETE Success\nRequest-Id: 999\n\n"))
			r.until("one malformed", 5*time.Second, func() bool { return r.tr.Stats().Malformed == 1 })
		})
	})
	t.Run("AnswersTheCoresPings", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newRig(t, nil)
			r.pair()
			r.core.Ping()
			r.core.Ping()
			r.until("pings answered", time.Second, func() bool { return r.tr.Stats().PingsAnswered == 2 && r.core.PendingPings() == 0 })
			r.noCoreErrors()
		})
	})
	t.Run("AFrozenCoreIsFoundWithinTwoPingIntervals", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newRig(t, nil)
			r.pair()
			r.core.Freeze()
			t0 := time.Now()
			r.until("dropped", time.Minute, func() bool { return r.tr.Stats().Dropped == 1 })
			if d := time.Since(t0); d > 2*r.tr.opts.PingInterval {
				t.Errorf("frozen core found after %v, want within 2 ping intervals (%v)", d, 2*r.tr.opts.PingInterval)
			}
			r.core.Thaw()
			r.waitState(trackers.StateReady, time.Minute)
		})
	})
	t.Run("AFrozenCoreAfterAWakeIsFoundWithinTheWakePingTimeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newRig(t, nil)
			r.pair()
			time.Sleep(r.tr.opts.PingInterval / 2)
			r.core.Freeze()
			t0 := time.Now()
			r.tr.Resume(context.Background())
			r.until("dropped", time.Minute, func() bool { return r.tr.Stats().Dropped == 1 })
			if d := time.Since(t0); d > r.tr.opts.WakePingTimeout+10*time.Millisecond {
				t.Errorf("frozen core found %v after the wake, want within %v\n%s", d, r.tr.opts.WakePingTimeout, r.host.Logs())
			}
			r.core.Thaw()
			r.waitState(trackers.StateReady, time.Minute)
		})
	})
	t.Run("AWakeResubscribesAtOnce", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newRig(t, nil)
			r.pair()
			r.tr.Resume(context.Background())
			t0 := time.Now()
			r.until("resubscribed", time.Second, func() bool { return r.tr.Stats().Subscribed == 2 })
			if d := time.Since(t0); d > 50*time.Millisecond {
				t.Errorf("resubscribed %v after the wake", d)
			}
			synctest.Wait()
			if n := r.core.Subscriptions(); n != 1 {
				t.Errorf("core holds %d subscriptions, want the old one ended", n)
			}
			if s := r.tr.Stats(); s.Dials != 1 {
				t.Errorf("a wake with a live core redialled: %+v", s)
			}
			for range 20 { // many wakes on one connection pile nothing up
				r.tr.Resume(context.Background())
				synctest.Wait()
			}
			if n := r.core.Subscriptions(); n != 1 {
				t.Errorf("core holds %d subscriptions after 20 wakes", n)
			}
			if n := r.tr.Stats().Subscribed; n != 22 {
				t.Errorf("subscribed %d times, want 22", n)
			}
			r.noCoreErrors()
		})
	})
	t.Run("ARefusedDialIsRetriedWithBackoff", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newRig(t, nil)
			r.pair()
			r.ln.setDown(true)
			r.core.Drop()
			time.Sleep(10 * time.Second)
			d := r.ln.dialCount()
			if d < 3 || d > 6 {
				t.Errorf("dials in 10 s with backoff 1s..30s = %d", d)
			}
			r.ln.setDown(false)
			r.tr.Resume(context.Background()) // a wake redials at once
			r.waitState(trackers.StateReady, time.Second)
		})
	})
	t.Run("TheInfoAnswerDelayedAfterAWake", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newRig(t, nil)
			r.pair()
			r.core.SetInfoDelay(12 * time.Second)
			r.core.Drop() // the connection died during the sleep
			r.tr.Resume(context.Background())
			t0 := time.Now()
			r.until("dropped", time.Second, func() bool { return r.tr.Stats().Dropped == 1 })
			r.waitState(trackers.StateReady, time.Minute)
			if d := time.Since(t0); d < 12*time.Second || d > 13*time.Second {
				t.Errorf("ready %v after the wake, want just after the 12 s delay", d)
			}
		})
	})
}

func TestRevokedToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, nil)
		r.pair()
		r.core.Revoke()
		r.waitState(trackers.StateWaiting, registerGrace+5*time.Second)
		if err := r.host.Last().Err; err == nil || !strings.Contains(err.Error(), "enable 'rouse'") {
			t.Errorf("waiting says %v", err)
		}
		// A wake while waiting says it again (the agent set it starting).
		waits := func() (n int) {
			for _, s := range r.host.States() {
				if s == trackers.StateWaiting {
					n++
				}
			}
			return n
		}
		before := waits()
		r.tr.Resume(context.Background())
		r.until("waiting said again after the wake", time.Second, func() bool { return waits() == before+1 })
		r.enable()
		r.waitState(trackers.StateReady, time.Second)
		tok, _ := r.st.Secret(context.Background(), "roon", "core-1")
		if toks := r.core.Tokens(); len(toks) != 1 || tok != toks[0] {
			t.Errorf("saved token %q, core's %v", tok, toks)
		}
	})
}

func TestDiscoveryAndRedial(t *testing.T) {
	t.Run("AKnownAddressIsRedialledWithoutDiscovery", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newRig(t, func(o *Options) { o.Core = "" })
			var finds atomic.Int32
			r.tr.discoverFn = func(context.Context, string) (found, error) {
				finds.Add(1)
				return found{uniqueID: "core-1", addr: "core.test:9330"}, nil
			}
			r.pair()
			r.core.Drop()
			r.until("dropped", time.Second, func() bool { return r.tr.Stats().Dropped == 1 })
			r.waitState(trackers.StateReady, 5*time.Second)
			if n := finds.Load(); n != 1 {
				t.Errorf("discoveries = %d, want 1: the address was known", n)
			}
		})
	})
	t.Run("ACoreThatMovedIsLookedUpAgain", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newRig(t, func(o *Options) { o.Core = "" })
			r.ln.refuse = map[string]bool{"old.test:9330": true}
			var finds atomic.Int32
			r.tr.discoverFn = func(context.Context, string) (found, error) {
				if finds.Add(1) == 1 {
					return found{uniqueID: "core-1", addr: "old.test:9330"}, nil
				}
				return found{uniqueID: "core-1", addr: "new.test:9330"}, nil
			}
			r.start()
			r.waitState(trackers.StateWaiting, time.Minute)
			if n := finds.Load(); n != 2 {
				t.Errorf("discoveries = %d, want a second after two failed dials", n)
			}
			r.enable()
			r.waitState(trackers.StateReady, time.Second)
		})
	})
	t.Run("AConfiguredCoreIsNeverLookedUp", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newRig(t, nil)
			r.tr.discoverFn = func(context.Context, string) (found, error) {
				t.Error("discovery with a configured core")
				return found{}, context.Canceled
			}
			r.ln.setDown(true)
			r.start()
			time.Sleep(20 * time.Second)
			if r.ln.dialCount() < 3 {
				t.Errorf("dials = %d", r.ln.dialCount())
			}
		})
	})
}

func TestHostileCore(t *testing.T) {
	t.Run("ACoreThatNeverAnswersInfoIsRedialled", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newRig(t, nil)
			r.core.SetInfoDelay(time.Hour)
			r.start()
			t0 := time.Now()
			r.until("dropped", 2*time.Minute, func() bool { return r.tr.Stats().Dropped >= 1 })
			if d := time.Since(t0); d < answerTimeout || d > answerTimeout+r.tr.opts.PingInterval {
				t.Errorf("gave up on info after %v, want %v plus at most a ping interval", d, answerTimeout)
			}
			r.core.SetInfoDelay(0)
			r.waitState(trackers.StateWaiting, time.Minute)
		})
	})
	t.Run("AMessageOverTheLimitEndsTheConnection", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newRig(t, nil)
			r.pair()
			big := make([]byte, maxMessage+1)
			for i := range big {
				big[i] = 'x'
			}
			r.core.SendRaw(big)
			r.until("dropped", 5*time.Second, func() bool { return r.tr.Stats().Dropped == 1 })
			r.waitState(trackers.StateReady, 5*time.Second)
		})
	})
	t.Run("ZonesOfTheWrongShapeEndTheConnection", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newRig(t, nil)
			r.pair()
			body := `{"zones_changed":"not a list"}`
			// The live subscription is Request-Id 2 (info 0, register 1).
			r.core.SendRaw(fmt.Appendf(nil, "MOO/1 CONTINUE Changed\nRequest-Id: 2\nContent-Length: %d\nContent-Type: application/json\n\n%s", len(body), body))
			r.until("dropped", 5*time.Second, func() bool { return r.tr.Stats().Malformed == 1 })
			r.waitState(trackers.StateReady, 5*time.Second)
		})
	})
	t.Run("ThousandsOfZonesAreBounded", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newRig(t, nil)
			var zs []*fakecore.Zone
			for i := range 2000 {
				zs = append(zs, &fakecore.Zone{ID: fmt.Sprintf("z%d", i), Name: fmt.Sprintf("Zone %d", i), State: "playing",
					Track: &fakecore.Track{Title: "T", Artist: "A", Album: "B", Length: 60}})
			}
			r.core.SetZones(zs...)
			r.pair()
			r.until("items stored", 5*time.Second, func() bool { return r.items() == maxZones })
			r.tr.mu.Lock()
			n := len(r.tr.plays)
			r.tr.mu.Unlock()
			if n > maxZones {
				t.Errorf("%d plays remembered, want at most %d", n, maxZones)
			}
		})
	})
}

// GET /api/v1/services/{name} shows a roon tracker's connection as it
// shows a websocket stream's: connects, reconnects, disconnects by close
// code, and the last disconnect with its time, code and reason.
func TestStreamDetail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, nil)
		r.pair()
		r.until("one item", time.Second, func() bool { return r.items() == 1 })
		d := r.tr.Detail().(Detail)
		if d.Connects != 1 || d.Reconnects != 0 || len(d.DisconnectsByCode) != 0 || d.LastDisconnect != nil {
			t.Fatalf("before any drop: %+v", d.StreamDetail)
		}
		closedAt := time.Now()
		r.core.Close(1001, "core restarting")
		r.until("dropped once", 5*time.Second, func() bool { return r.tr.Stats().Dropped == 1 })
		r.waitState(trackers.StateReady, 5*time.Second)
		r.core.Drop()
		r.until("dropped twice", 5*time.Second, func() bool { return r.tr.Stats().Dropped == 2 })
		r.waitState(trackers.StateReady, 5*time.Second)
		r.core.Freeze()
		r.until("dropped thrice", time.Minute, func() bool { return r.tr.Stats().Dropped == 3 })
		r.core.Thaw()
		r.waitState(trackers.StateReady, time.Minute)

		d = r.tr.Detail().(Detail)
		want := map[string]int{"1001": 1, "1006": 1, "timeout": 1}
		if !maps.Equal(d.DisconnectsByCode, want) {
			t.Errorf("disconnects by code %v, want %v", d.DisconnectsByCode, want)
		}
		if d.Connects != 4 || d.Reconnects != 3 {
			t.Errorf("connects %d, reconnects %d; want 4, 3", d.Connects, d.Reconnects)
		}
		l := d.LastDisconnect
		if l == nil || l.Code != "timeout" || !strings.Contains(l.Reason, "did not answer a ping") || l.At.Before(closedAt) {
			t.Errorf("last disconnect %+v, want the frozen core's timeout", l)
		}
		// The same keys as the websocket kind's detail, beside roon's own.
		b, err := json.Marshal(r.tr.Detail())
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"connects", "reconnects", "disconnects_by_code", "last_disconnect", "core", "paired", "stats"} {
			if _, ok := m[k]; !ok {
				t.Errorf("detail JSON lacks %q: %s", k, b)
			}
		}
	})
}
