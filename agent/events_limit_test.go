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
