package store

import (
	"context"
	"errors"
	"fmt"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/trackers"
)

// goroutinesCreated is how many goroutines the process has created so far.
func goroutinesCreated(t *testing.T) uint64 {
	t.Helper()
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		t.Fatalf("runtime metric %s unsupported", s[0].Name)
	}
	return s[0].Value.Uint64()
}

// A batch of a thousand rows (a wake's state events, a group commit of
// items) must not start a goroutine per row: modernc.org/sqlite starts one
// for every call with a context that can end, and a thousand of them made
// runnable at once queued the API's requests behind them during a wake.
func TestBatchesStartNoGoroutinePerRow(t *testing.T) {
	s := openTemp(t)
	ctx := ctxT(t)
	const n = 1000
	evs := make([]StateEvent, n)
	items := make([]trackers.Item, n)
	for i := range evs {
		evs[i] = StateEvent{Component: fmt.Sprintf("c%04d", i), State: "ready", Previous: "starting", At: time.Now()}
		items[i] = trackers.Item{ID: fmt.Sprint(i), Time: time.Unix(int64(i), 0), Data: []byte(`{}`)}
	}
	g0 := goroutinesCreated(t)
	if err := s.AddStateEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveItems(ctx, "t", items, "7"); err != nil {
		t.Fatal(err)
	}
	if d := goroutinesCreated(t) - g0; d > n/10 {
		t.Errorf("writing %d state events and %d items created %d goroutines, want fewer than %d", n, n, d, n/10)
	}
	got, err := s.StateEvents(ctx, "", 2*n)
	if err != nil || len(got) != n {
		t.Fatalf("stored %d state events (%v), want %d", len(got), err, n)
	}
	if c, err := s.Cursor(ctx, "t"); err != nil || c != "7" {
		t.Fatalf("cursor %q (%v), want 7", c, err)
	}
}

// The batches still end with their context: nothing is written.
func TestBatchesEndWithTheirContext(t *testing.T) {
	s := openTemp(t)
	ctx, cancel := context.WithCancel(ctxT(t))
	cancel()
	evs := []StateEvent{{Component: "a", State: "ready", At: time.Now()}}
	if err := s.AddStateEvents(ctx, evs); !errors.Is(err, context.Canceled) {
		t.Errorf("AddStateEvents with a cancelled context: %v, want context.Canceled", err)
	}
	if _, err := s.SaveItems(ctx, "t", []trackers.Item{{ID: "1", Data: []byte(`{}`)}}, "1"); !errors.Is(err, context.Canceled) {
		t.Errorf("SaveItems with a cancelled context: %v, want context.Canceled", err)
	}
	if got, err := s.StateEvents(ctxT(t), "", 10); err != nil || len(got) != 0 {
		t.Errorf("state events after cancelled writes: %d (%v), want none", len(got), err)
	}
}
