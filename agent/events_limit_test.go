package agent

import (
	"context"
	"testing"

	"github.com/rouse-dev/rouse/wire"
)

func TestASlowSubscriberIsDroppedNotBuffered(t *testing.T) {
	b := newBus()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := b.subscribe(ctx, 0)
	if cap(ch) != subscriberBuffer || subscriberBuffer > 256 {
		t.Fatalf("buffer %d, want a small one", cap(ch))
	}
	for range subscriberBuffer + 10 {
		b.publish(wire.Event{Type: wire.EventNote})
	}
	n := 0
	for range ch {
		n++
	}
	if n != subscriberBuffer {
		t.Fatalf("read %d events before the drop, want %d", n, subscriberBuffer)
	}
	// It resumes from the backlog with Last-Event-ID.
	again := b.subscribe(ctx, int64(n))
	if got := len(again); got != 10 {
		t.Fatalf("resume got %d backlog events, want 10", got)
	}
}

// The backlog is a ring: once full it holds the last backlogSize events,
// and a resume gets those after its Last-Event-ID oldest first.
func TestTheBacklogKeepsTheLastEventsInOrder(t *testing.T) {
	b := newBus()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	total := backlogSize + 100
	for range total {
		b.publish(wire.Event{Type: wire.EventNote})
	}
	for _, c := range []struct{ after, first, n int64 }{
		{0, 0, 0}, // no Last-Event-ID: live events only
		{50, 101, backlogSize},
		{int64(total) - 10, int64(total) - 9, 10},
		{int64(total), 0, 0},
	} {
		ch := b.subscribe(ctx, c.after)
		if int64(len(ch)) != c.n {
			t.Fatalf("after %d: %d events, want %d", c.after, len(ch), c.n)
		}
		want := c.first
		for range c.n {
			if ev := <-ch; ev.ID != want {
				t.Fatalf("after %d: event %d, want %d", c.after, ev.ID, want)
			}
			want++
		}
	}
}

// BenchmarkPublish is one event published with a full backlog and no
// subscriber: what every state change of a wake pays.
func BenchmarkPublish(b *testing.B) {
	bs := newBus()
	for range backlogSize {
		bs.publish(wire.Event{Type: wire.EventNote})
	}
	b.ReportAllocs()
	for b.Loop() {
		bs.publish(wire.Event{Type: wire.EventNote})
	}
}
