package agent

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/wire"
)

// A restore does not start a goroutine for every component at once: a
// dependent's starts when its dependencies' bring-ups end. A thousand
// goroutines made runnable at a wake's start only to wait for their
// dependencies queued the API's requests behind them.
func TestRestoreStartsDependentsWhenTheirDependenciesEnd(t *testing.T) {
	const n = 200
	first := &probe{never: true, ready: make(chan struct{})}
	specs := []spec{{name: "c000", p: first}}
	for i := 1; i < n; i++ {
		specs = append(specs, spec{name: fmt.Sprintf("c%03d", i), p: &probe{latency: time.Millisecond}, requires: []string{fmt.Sprintf("c%03d", i-1)}})
	}
	a, stop := testAgent(t, t.TempDir(), specs)
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := a.Subscribe(ctx, 0)
	before := runtime.NumGoroutine()
	w, err := a.startWake("manual", time.Now(), 0, false)
	if err != nil {
		t.Fatal(err)
	}
	// A failure guard, not a speed expectation.
	for deadline := time.Now().Add(30 * time.Second); first.runs.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first component never started")
		}
	}
	if d := runtime.NumGoroutine() - before; d > n/4 {
		t.Errorf("%d goroutines more while the first of a chain of %d starts, want fewer than %d", d, n, n/4)
	}
	close(first.ready)
	for ev := range events {
		if ev.Wake != nil && ev.Wake.Phase == "done" && ev.Wake.Wake != nil && ev.Wake.Wake.ID == w.ID {
			break
		}
	}
	if r := a.lastWake.Restore; r.Ready != n {
		t.Fatalf("%d of %d ready: %+v", r.Ready, n, r)
	}
	for _, s := range specs {
		if st := a.stateOf(s.name); st != trackers.StateReady {
			t.Errorf("%s is %s", s.name, st)
		}
	}
}

// A dependent's goroutine starts once its dependency's bring-up ends, but
// the wake record still says how long it waited for that dependency: from
// the restore's start, as before the gate.
func TestRestoreCountsADependentsWaitFromTheStart(t *testing.T) {
	const latency = 300 * time.Millisecond
	a, stop := testAgent(t, t.TempDir(), []spec{
		{name: "db", p: &probe{latency: latency}},
		{name: "app", p: &probe{}, requires: []string{"db"}},
	})
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := a.Subscribe(ctx, 0)
	w, err := a.startWake("manual", time.Now(), 0, false)
	if err != nil {
		t.Fatal(err)
	}
	var done *wire.Wake
	for ev := range events {
		if ev.Wake != nil && ev.Wake.Phase == "done" && ev.Wake.Wake != nil && ev.Wake.Wake.ID == w.ID {
			done = ev.Wake.Wake
			break
		}
	}
	if done == nil {
		t.Fatal("no done event")
	}
	for _, c := range done.Components {
		// db's start takes latency, so app cannot have waited less.
		if c.Name == "app" && c.WaitedMS < latency.Milliseconds() {
			t.Errorf("app waited %d ms for db, whose start took %v", c.WaitedMS, latency)
		}
	}
}

// gateByDeps counts each unit's dependencies among the units; a unit in
// or behind a cycle (which config validation rejects) starts at once
// rather than never.
func TestGateByDeps(t *testing.T) {
	us := []*unit{
		{name: "a", required: []string{"b"}},      // a <-> b: a cycle
		{name: "b", required: []string{"a"}},      //
		{name: "c", required: []string{"b"}},      // behind the cycle
		{name: "d", required: []string{"other"}},  // its dependency is not in this restore
		{name: "e", required: []string{"d", "d"}}, // twice, counted twice
		{name: "f", required: []string{"e", "d"}},
	}
	left, next := gateByDeps(us)
	if want := []int{0, 0, 0, 0, 2, 2}; !slices.Equal(left, want) {
		t.Errorf("left = %v, want %v", left, want)
	}
	want := [][]int{nil, nil, nil, {4, 4, 5}, {5}, nil}
	for i := range us {
		if !slices.Equal(next[i], want[i]) {
			t.Errorf("next[%s] = %v, want %v", us[i].name, next[i], want[i])
		}
	}
}
