package agent

import (
	"context"
	"sync"
	"time"

	"github.com/rouse-dev/rouse/wire"
)

// backlogSize bounds the events kept for Last-Event-ID resumes.
const backlogSize = 4096

// subscriberBuffer is how far a subscriber may fall behind before it is
// dropped (it reconnects with Last-Event-ID and resumes from the backlog).
// Small: each open stream holds this much (plus, once, the backlog it asked
// to resume from), so a slow reader is dropped instead of growing memory.
const subscriberBuffer = 64

// bus fans events out to subscribers and keeps a bounded backlog.
type bus struct {
	mu     sync.Mutex
	nextID int64
	// backlog is a ring of the last backlogSize events: while it is not
	// full, oldest first; once full, the oldest is at head, where the next
	// event overwrites it (a publish costs the same however long the
	// history: no shifting of the whole backlog per event).
	backlog []wire.Event
	head    int
	subs    map[*subscriber]struct{}
	changed chan struct{} // 1-slot: something was published (the API views are stale)
}

type subscriber struct {
	ch     chan wire.Event
	closed bool
}

func newBus() *bus {
	return &bus{nextID: 1, subs: map[*subscriber]struct{}{}, changed: make(chan struct{}, 1)}
}

// publish stamps ev with an id and time and sends it to every subscriber
// without blocking; a subscriber whose buffer is full is dropped.
func (b *bus) publish(ev wire.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ev.ID = b.nextID
	b.nextID++
	if ev.At.IsZero() {
		ev.At = time.Now().Round(0).UTC()
	}
	if len(b.backlog) < backlogSize {
		b.backlog = append(b.backlog, ev)
	} else {
		b.backlog[b.head] = ev
		b.head = (b.head + 1) % backlogSize
	}
	for s := range b.subs {
		select {
		case s.ch <- ev:
		default:
			b.dropLocked(s)
		}
	}
	select {
	case b.changed <- struct{}{}:
	default:
	}
}

func (b *bus) dropLocked(s *subscriber) {
	if !s.closed {
		s.closed = true
		close(s.ch)
	}
	delete(b.subs, s)
}

// subscribe returns a channel that first carries the backlog after lastID
// (lastID 0: no backlog), then live events, until ctx is done (no
// goroutine: context.AfterFunc closes it).
func (b *bus) subscribe(ctx context.Context, lastID int64) <-chan wire.Event {
	b.mu.Lock()
	var pending []wire.Event
	if lastID > 0 {
		for i := range b.backlog {
			if ev := b.backlog[(b.head+i)%len(b.backlog)]; ev.ID > lastID {
				pending = append(pending, ev)
			}
		}
	}
	s := &subscriber{ch: make(chan wire.Event, subscriberBuffer+len(pending))}
	for _, ev := range pending {
		s.ch <- ev
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	context.AfterFunc(ctx, func() {
		b.mu.Lock()
		b.dropLocked(s)
		b.mu.Unlock()
	})
	return s.ch
}

// closeAll ends every subscription (shutdown).
func (b *bus) closeAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		b.dropLocked(s)
	}
}
