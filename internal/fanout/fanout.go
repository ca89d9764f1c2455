// Package fanout owns handing the latest value to many subscribers without
// ever blocking the sender. Each subscriber has a channel with one slot; a
// value published while an older one is still unread replaces it, so a
// slow reader sees the latest state, never a backlog. For a bare signal
// (struct{}) that is the usual 1-slot merge: a burst is one notification.
package fanout

import "sync"

// Hub fans values out to its subscribers. The zero value is ready to use;
// its methods are safe for concurrent use.
type Hub[T any] struct {
	mu   sync.Mutex
	subs map[*sub[T]]struct{}
}

type sub[T any] struct {
	ch   chan T
	once sync.Once
}

// Subscribe returns a channel that receives the values published from now
// on, and a func that ends the subscription and closes the channel
// (calling it again does nothing).
func (h *Hub[T]) Subscribe() (<-chan T, func()) {
	return h.subscribe(nil)
}

// SubscribeWith is Subscribe with first already waiting in the channel.
func (h *Hub[T]) SubscribeWith(first T) (<-chan T, func()) {
	return h.subscribe(&first)
}

func (h *Hub[T]) subscribe(first *T) (<-chan T, func()) {
	s := &sub[T]{ch: make(chan T, 1)}
	if first != nil {
		s.ch <- *first
	}
	h.mu.Lock()
	if h.subs == nil {
		h.subs = map[*sub[T]]struct{}{}
	}
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s.ch, func() {
		s.once.Do(func() {
			h.mu.Lock()
			delete(h.subs, s)
			close(s.ch)
			h.mu.Unlock()
		})
	}
}

// Publish hands v to every subscriber, replacing a value it has not read
// yet. It never blocks.
func (h *Hub[T]) Publish(v T) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		select { // drop the unread older value: latest wins
		case <-s.ch:
		default:
		}
		s.ch <- v // cannot block: we hold mu, the only sender, and the slot is empty
	}
}
