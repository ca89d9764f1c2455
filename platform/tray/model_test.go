package tray

import (
	"bytes"
	"image/png"
	"strings"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/wire"
)

var now = time.Date(2026, 11, 22, 9, 30, 0, 0, time.UTC)

func svc(name, state string) wire.Service {
	return wire.Service{Name: name, State: state, Desired: "active"}
}

func health(cs ...wire.Service) *wire.Health {
	return &wire.Health{Status: wire.StatusOK, Store: wire.StoreHealth{State: "open"}, Components: cs}
}

func withWake(h *wire.Health, w wire.Wake) *wire.Health {
	h.LastWake = w.Summary()
	return h
}

func TestBuild(t *testing.T) {
	woke := wire.Wake{ID: 7, DetectedBy: "logind", WokeAt: now.Add(-2 * time.Minute), Done: true,
		Restore: wire.RestoreSummary{DurationMS: 1300, Ready: 4}}
	cases := []struct {
		name    string
		in      Input
		look    Look
		tooltip string
		header  string
		recover bool
		labels  []string
	}{
		{
			name:    "AllReadyAfterAWakeShowsTheOneLineSummary",
			in:      Input{Health: withWake(health(svc("store", "ready"), svc("tunnel", "ready"), svc("scrobbles", "catching_up"), svc("scheduler", "ready"), svc("net", "degraded")), woke), Now: now},
			look:    LookDegraded,
			tooltip: "4/5 ready · woke 2 min ago · recovered in 1.3 s",
			header:  "rouse: degraded",
			recover: true,
			labels:  []string{"store: ready", "tunnel: ready", "scrobbles: catching up", "scheduler: ready", "net: degraded"},
		},
		{
			name:    "EveryComponentReadyIsGreen",
			in:      Input{Health: withWake(health(svc("a", "ready"), svc("b", "ready")), woke), Now: now},
			look:    LookReady,
			tooltip: "2/2 ready · woke 2 min ago · recovered in 1.3 s",
			header:  "rouse: all ready",
			recover: true,
		},
		{
			name: "AStoppedComponentIsNotCounted",
			in: Input{Health: health(svc("a", "ready"), wire.Service{Name: "b", State: "stopped", Desired: "stopped"}),
				Now: now},
			look:    LookReady,
			tooltip: "1/1 ready",
			header:  "rouse: all ready",
			recover: true,
			labels:  []string{"a: ready", "b: stopped"},
		},
		{
			name:    "AFailedComponentIsRed",
			in:      Input{Health: health(svc("a", "ready"), svc("b", "failed"), svc("c", "degraded")), Now: now},
			look:    LookFailed,
			tooltip: "1/3 ready",
			header:  "rouse: failed",
			recover: true,
		},
		{
			name:    "AStoreErrorIsRedAndNamed",
			in:      Input{Health: func() *wire.Health { h := health(svc("a", "ready")); h.Store.State = "error"; return h }(), Now: now},
			look:    LookFailed,
			tooltip: "store error · 1/1 ready",
			header:  "rouse: failed",
			recover: true,
		},
		{
			name:    "StartingComponentsAreAmber",
			in:      Input{Health: health(svc("a", "ready"), svc("b", "waiting")), Now: now},
			look:    LookRecovering,
			tooltip: "1/2 ready",
			header:  "rouse: starting",
			recover: true,
		},
		{
			name:    "ARestoreUnderWayShowsItsProgress",
			in:      Input{Health: withWake(health(svc("a", "ready"), svc("b", "starting"), svc("c", "starting")), wire.Wake{DetectedBy: "logind", WokeAt: now.Add(-4 * time.Second)}), Phase: "restoring", Pending: 2, Total: 3, Now: now},
			look:    LookRecovering,
			tooltip: "recovering · 1/3 restored · woke 4 s ago",
			header:  "rouse: recovering",
		},
		{
			name:    "AfterAWakeTheComponentsStillStartingAreReconnecting",
			in:      Input{Health: withWake(health(svc("tunnel", "ready"), svc("roon", "starting")), wire.Wake{DetectedBy: "logind", WokeAt: now.Add(-4 * time.Second)}), Phase: "restoring", Pending: 1, Total: 2, Now: now, WakeBy: "logind"},
			look:    LookRecovering,
			tooltip: "Reconnecting roon… · 1/2 restored · woke 4 s ago",
			header:  "rouse: recovering",
			labels:  []string{"tunnel: ready", "roon: reconnecting…"},
		},
		{
			name:    "TheBootRestoreIsNotReconnecting",
			in:      Input{Health: health(svc("roon", "starting")), Phase: "restoring", Pending: 1, Total: 1, Now: now, WakeBy: "boot"},
			look:    LookRecovering,
			tooltip: "recovering · 0/1 restored",
			header:  "rouse: recovering",
			labels:  []string{"roon: starting"},
		},
		{
			name: "AComponentWaitingForTheUserSaysWhatToDo",
			in: Input{Health: health(svc("a", "ready"), wire.Service{Name: "roon", State: "waiting", Desired: "active",
				LastError: "waiting for you to enable 'rouse' in Roon → Settings → Extensions"}), Now: now},
			look:    LookRecovering,
			tooltip: "1/2 ready",
			header:  "rouse: starting",
			recover: true,
			labels:  []string{"a: ready", "roon: waiting for you to enable 'rouse' in Roon → Settings → Extensions"},
		},
		{
			name:    "TheAgentSayingItIsWakingIsRecovering",
			in:      Input{Health: func() *wire.Health { h := health(svc("a", "paused")); h.Waking = true; return h }(), Now: now},
			look:    LookRecovering,
			tooltip: "recovering · 0/1 ready",
			header:  "rouse: recovering",
		},
		{
			name:    "ASleepingPhaseIsAsleepEvenBeforeHealthSaysSo",
			in:      Input{Health: health(svc("a", "ready")), Phase: "sleeping", Now: now},
			look:    LookAsleep,
			tooltip: "asleep · 1/1 ready before sleep",
			header:  "rouse: asleep",
		},
		{
			name:    "AnAsleepAgentIsGrey",
			in:      Input{Health: func() *wire.Health { h := health(svc("a", "paused")); h.Asleep = true; return h }(), Now: now},
			look:    LookAsleep,
			tooltip: "asleep · 0/1 ready before sleep",
			header:  "rouse: asleep",
		},
		{
			name:    "AStartedAgentSaysStartedNotWoke",
			in:      Input{Health: withWake(health(svc("a", "ready")), wire.Wake{DetectedBy: "boot", WokeAt: now.Add(-3 * time.Hour), Done: true, Restore: wire.RestoreSummary{DurationMS: 250}}), Now: now},
			look:    LookReady,
			tooltip: "1/1 ready · started 3 h ago · recovered in 250 ms",
			header:  "rouse: all ready",
			recover: true,
		},
		{
			name: "AWakeThatMissedItsDeadlineSaysHowMany",
			in: Input{Health: withWake(health(svc("a", "ready"), svc("b", "degraded")), wire.Wake{DetectedBy: "logind", WokeAt: now.Add(-90 * time.Second), Done: true,
				Restore: wire.RestoreSummary{DurationMS: 10_000, Ready: 1, TimedOut: 1}}), Now: now},
			look:    LookDegraded,
			tooltip: "1/2 ready · woke 1 min ago · recovered in 10 s, 1 timed out",
			header:  "rouse: degraded",
			recover: true,
		},
		{
			name:    "BeforeTheFirstHealthReadItIsConnectingQuietly",
			in:      Input{Reach: ReachQuiet, Now: now, Agent: "http://127.0.0.1:8000"},
			look:    LookOffline,
			tooltip: "connecting to the agent…",
			header:  "Connecting to the agent…",
		},
		{
			name:    "WithinTheGracePeriodTheLastKnownStateStays",
			in:      Input{Health: withWake(health(svc("a", "ready")), woke), Reach: ReachQuiet, Now: now},
			look:    LookReady,
			tooltip: "1/1 ready · woke 2 min ago · recovered in 1.3 s",
			header:  "rouse: all ready",
			labels:  []string{"a: ready"},
		},
		{
			name:    "AfterTheGracePeriodItSaysTheAgentIsUnreachable",
			in:      Input{Health: health(svc("a", "ready")), Reach: ReachLost, Now: now, Agent: "http://127.0.0.1:8000"},
			look:    LookOffline,
			tooltip: "cannot reach the agent at http://127.0.0.1:8000 · is it running? (rouse service start)",
			header:  "Agent not reachable",
			labels:  []string{"a: ready (last known)"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := Build(tc.in)
			if m.Look != tc.look {
				t.Errorf("look = %v, want %v", m.Look, tc.look)
			}
			if m.Tooltip != tc.tooltip {
				t.Errorf("tooltip = %q, want %q", m.Tooltip, tc.tooltip)
			}
			if m.Header != tc.header {
				t.Errorf("header = %q, want %q", m.Header, tc.header)
			}
			if m.CanRecover != tc.recover {
				t.Errorf("can recover = %v, want %v", m.CanRecover, tc.recover)
			}
			if strings.Contains(m.Tooltip, "\n") {
				t.Errorf("tooltip is not one line: %q", m.Tooltip)
			}
			if tc.labels != nil {
				var got []string
				for _, e := range m.Components {
					got = append(got, e.Label)
				}
				if strings.Join(got, "|") != strings.Join(tc.labels, "|") {
					t.Errorf("menu = %q, want %q", got, tc.labels)
				}
			}
		})
	}
}

func TestSeconds(t *testing.T) {
	for d, want := range map[time.Duration]string{
		350 * time.Millisecond:                       "350 ms",
		1300 * time.Millisecond:                      "1.3 s",
		42 * time.Second:                             "42 s",
		2*time.Minute + 5*time.Second:                "2 min 5 s",
		3*time.Hour + 10*time.Minute + 1*time.Second: "3 h 10 min",
	} {
		if got := Seconds(d); got != want {
			t.Errorf("Seconds(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestAgo(t *testing.T) {
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{now.Add(-12 * time.Second), "12 s ago"},
		{now.Add(-2 * time.Minute), "2 min ago"},
		{now.Add(-5 * time.Hour), "5 h ago"},
		{now.Add(time.Second), "just now"},
		{now.Add(-72 * time.Hour), "on " + now.Add(-72*time.Hour).Local().Format("Jan 2")},
	} {
		if got := ago(now, tc.t); got != tc.want {
			t.Errorf("ago(%v) = %q, want %q", now.Sub(tc.t), got, tc.want)
		}
	}
}

func TestAlertFor(t *testing.T) {
	t.Run("ARestoreThatMetItsDeadlineIsNotAlerted", func(t *testing.T) {
		if _, ok := alertFor(&wire.Wake{Done: true, Restore: wire.RestoreSummary{Ready: 3}}); ok {
			t.Error("alerted")
		}
	})
	t.Run("ARestoreStillRunningIsNotAlerted", func(t *testing.T) {
		if _, ok := alertFor(&wire.Wake{Restore: wire.RestoreSummary{TimedOut: 1}}); ok {
			t.Error("alerted")
		}
	})
	t.Run("ATimedOutAndAFailedComponentAreNamed", func(t *testing.T) {
		a, ok := alertFor(&wire.Wake{Done: true, DetectedBy: "logind", SleptSeconds: 7200,
			Restore: wire.RestoreSummary{DurationMS: 10_000, Ready: 3, TimedOut: 1, Failed: 1},
			Components: []wire.WakeComponent{
				{Name: "store", State: "ready"}, {Name: "tunnel", State: "degraded"}, {Name: "scrobbles", State: "failed"},
			}})
		if !ok {
			t.Fatal("not alerted")
		}
		want := "After 2 h 0 min asleep, 3 of 5 components were ready in 10 s; 1 timed out (tunnel), 1 failed (scrobbles). They keep retrying in the background."
		if a.Body != want {
			t.Errorf("body = %q\nwant   %q", a.Body, want)
		}
		if !strings.Contains(a.Title, "missed its deadline") {
			t.Errorf("title = %q", a.Title)
		}
	})
}

func TestIcons(t *testing.T) {
	seen := map[string]Look{}
	for l := range numLooks {
		img, err := png.Decode(bytes.NewReader(Icon(l)))
		if err != nil {
			t.Fatalf("%v: %v", l, err)
		}
		if b := img.Bounds(); b.Dx() != iconSize || b.Dy() != iconSize {
			t.Errorf("%v: size %v", l, b)
		}
		r, g, b, a := img.At(iconSize/2, 3).RGBA() // on the disc and on the ring
		want := Colour(l)
		if a>>8 != 0xff || uint8(r>>8) != want.R || uint8(g>>8) != want.G || uint8(b>>8) != want.B {
			t.Errorf("%v: pixel near the top = %02x%02x%02x/%02x, want %02x%02x%02x", l, r>>8, g>>8, b>>8, a>>8, want.R, want.G, want.B)
		}
		_, _, _, ca := img.At(iconSize/2, iconSize/2).RGBA()
		if hollow := ca == 0; hollow != (l == LookOffline) {
			t.Errorf("%v: centre alpha %d", l, ca>>8)
		}
		if other, dup := seen[string(Icon(l))]; dup {
			t.Errorf("%v and %v share an icon", l, other)
		}
		seen[string(Icon(l))] = l
		if _, _, _, corner := img.At(0, 0).RGBA(); corner != 0 {
			t.Errorf("%v: corner not transparent", l)
		}
	}
}
