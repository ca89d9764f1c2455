// Package memstore is a small in-memory trackers.Store for the trackers'
// tests and benchmarks: it deduplicates on (tracker, id) and sets the cursor
// in the same critical section, like the SQLite store, and lets a test make
// SaveItems fail on demand.
package memstore

import (
	"context"
	"sync"

	"github.com/rouse-dev/rouse/trackers"
)

// Store is an in-memory trackers.Store. The zero value is ready to use.
type Store struct {
	// FailSave, when set, is called before each SaveItems; a non-nil error
	// makes the call fail without storing anything.
	FailSave func(tracker string, items []trackers.Item, cursor string) error

	mu      sync.Mutex
	items   map[string]map[string]trackers.Item
	order   map[string][]string
	cursors map[string]string
	saves   int
}

var _ trackers.Store = (*Store)(nil)

// SaveItems implements trackers.Store.
func (s *Store) SaveItems(ctx context.Context, tracker string, items []trackers.Item, cursor string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if s.FailSave != nil {
		if err := s.FailSave(tracker, items, cursor); err != nil {
			return 0, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.items == nil {
		s.items = map[string]map[string]trackers.Item{}
		s.order = map[string][]string{}
		s.cursors = map[string]string{}
	}
	m := s.items[tracker]
	if m == nil {
		m = map[string]trackers.Item{}
		s.items[tracker] = m
	}
	added := 0
	for _, it := range items {
		if _, dup := m[it.ID]; dup {
			continue
		}
		m[it.ID] = it
		s.order[tracker] = append(s.order[tracker], it.ID)
		added++
	}
	if cursor != "" {
		s.cursors[tracker] = cursor
	}
	s.saves++
	return added, nil
}

// Cursor implements trackers.Store.
func (s *Store) Cursor(ctx context.Context, tracker string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cursors[tracker], nil
}

// SetCursor sets a tracker's cursor directly.
func (s *Store) SetCursor(tracker, cursor string) {
	_, _ = s.SaveItems(context.Background(), tracker, nil, cursor)
}

// Items returns a tracker's items in the order they were first stored.
func (s *Store) Items(tracker string) []trackers.Item {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]trackers.Item, 0, len(s.order[tracker]))
	for _, id := range s.order[tracker] {
		out = append(out, s.items[tracker][id])
	}
	return out
}

// Len is the number of items stored for tracker.
func (s *Store) Len(tracker string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.order[tracker])
}

// Saves is the number of successful SaveItems calls.
func (s *Store) Saves() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saves
}
