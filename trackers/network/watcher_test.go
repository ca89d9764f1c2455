package network

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/platform/netwatch"
	"github.com/rouse-dev/rouse/trackers"
)

// TestWithARealWatcher runs the tracker against a real netwatch.Watcher
// whose evaluation is injected, in real time: the guard below only bounds
// a hang, nothing asserts speed.
func TestWithARealWatcher(t *testing.T) {
	const guard = 20 * time.Second
	var online atomic.Bool
	w := netwatch.New(netwatch.Options{
		Logger:   deps(nil).Logger,
		Debounce: time.Millisecond,
		Probe: func() (bool, string) {
			if online.Load() {
				return true, "default route via test0"
			}
			return false, "no default route"
		},
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	wdone := make(chan error, 1)
	go func() { wdone <- w.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-wdone; err != nil {
			t.Errorf("watcher Run = %v", err)
		}
	}()

	st := newTestStore(t)
	tr := NewWithSource("net", w, deps(st))
	h := &fakeHost{}
	tdone := make(chan error, 1)
	go func() { tdone <- tr.Run(ctx, h) }()
	defer func() {
		cancel()
		if err := <-tdone; err != nil {
			t.Errorf("tracker Run = %v", err)
		}
	}()

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(guard)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; items: %v", what, st.saved(t))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	ready := func() bool {
		for _, r := range h.list() {
			if r.state == trackers.StateReady {
				return true
			}
		}
		return false
	}
	waitFor("ready", ready)
	waitFor("the offline item", func() bool { return countEvent(st.saved(t), "offline") == 1 })

	tr.Resume(t.Context())
	online.Store(true)
	w.Recheck()
	waitFor("the wake measure", func() bool { return countEvent(st.saved(t), "wake_network") == 1 })
	items := st.saved(t)
	if countEvent(items, "online") != 1 {
		t.Errorf("items = %v, want one online transition", items)
	}
	for _, d := range items {
		if d["event"] == "wake_network" {
			if ms, _ := d["after_ms"].(float64); ms < 0 {
				t.Errorf("after_ms = %v, want >= 0", d["after_ms"])
			}
		}
	}
	var _ Source = (*netwatch.Watcher)(nil)
}
