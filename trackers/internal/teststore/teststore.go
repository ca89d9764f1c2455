// Package teststore gives the trackers' tests and benchmarks the real store:
// Open opens an agent/store.Store (SQLite) in the test's temporary directory
// and closes it at cleanup, and the Store it returns adds a few read helpers
// (Len, All, IDs, SetCursor). Faulty is the one fake left: a thin
// trackers.Store that delegates to a real store and fails or hangs when its
// test says so, for the faults a healthy database cannot be made to show on
// cue.
//
// Our own parts are never faked in tests: only the outside world is. This
// package imports agent/store from below it in the dependency order; it is
// imported by tests only, never by a tracker.
//
// Inside a testing/synctest bubble, call Open inside the bubble: database/sql
// starts goroutines when the store opens, and they must be the bubble's and
// end (at Close, run by the bubble's cleanup) before the bubble returns.
package teststore

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/agent/store"
	"github.com/rouse-dev/rouse/trackers"
)

// closeTimeout bounds Close at cleanup: calls still in flight after it are
// cancelled.
const closeTimeout = 10 * time.Second

// Store is a real agent/store.Store in a temporary directory, with read
// helpers for tests. The helpers report a store error with tb.Errorf (safe
// from any goroutine) and return what they have.
type Store struct {
	*store.Store
	tb testing.TB
}

var _ trackers.Store = (*Store)(nil)

// Open opens a new store in tb.TempDir() and closes it when tb's cleanup
// runs. Closing it earlier (Close) is allowed; the second Close is a no-op.
func Open(tb testing.TB) *Store {
	tb.Helper()
	st, err := store.Open(context.Background(), filepath.Join(tb.TempDir(), "rouse.db"),
		store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatalf("open the store: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		if err := st.Close(ctx); err != nil {
			tb.Errorf("close the store: %v", err)
		}
	})
	return &Store{Store: st, tb: tb}
}

// Len is the number of items stored for tracker.
func (s *Store) Len(tracker string) int {
	n, err := s.CountItems(context.Background(), tracker)
	if err != nil {
		s.tb.Errorf("count items of %s: %v", tracker, err)
	}
	return int(n)
}

// All returns tracker's items in the order they were first stored, with
// Data re-encoded from what the store decoded (same JSON values, keys
// sorted).
func (s *Store) All(tracker string) []trackers.Item {
	const page = 1000
	var out []trackers.Item
	var after int64
	for {
		items, err := s.Items(context.Background(), tracker, store.ItemQuery{AfterSeq: after, Limit: page, Oldest: true})
		if err != nil {
			s.tb.Errorf("list items of %s: %v", tracker, err)
			return out
		}
		for _, it := range items {
			var v any
			if err := json.Unmarshal(it.Data, &v); err != nil {
				s.tb.Errorf("item %s of %s: decode data: %v", it.ID, tracker, err)
			}
			data, err := json.Marshal(v)
			if err != nil {
				s.tb.Errorf("item %s of %s: encode data: %v", it.ID, tracker, err)
			}
			out = append(out, trackers.Item{ID: it.ID, Time: it.Time, Data: data})
			after = it.Seq
		}
		if len(items) < page {
			return out
		}
	}
}

// IDs returns the IDs of tracker's items in store order.
func (s *Store) IDs(tracker string) []string {
	var ids []string
	for _, it := range s.All(tracker) {
		ids = append(ids, it.ID)
	}
	return ids
}

// CursorOf returns tracker's cursor ("" when none).
func (s *Store) CursorOf(tracker string) string {
	c, err := s.Cursor(context.Background(), tracker)
	if err != nil {
		s.tb.Errorf("cursor of %s: %v", tracker, err)
	}
	return c
}

// SetCursor sets tracker's cursor, as a tracker's earlier run would have.
func (s *Store) SetCursor(tracker, cursor string) {
	if _, err := s.SaveItems(context.Background(), tracker, nil, cursor); err != nil {
		s.tb.Errorf("set the cursor of %s: %v", tracker, err)
	}
}

// Faulty is a trackers.Store that passes every call to Store, except that
// BeforeSave runs first: a non-nil error from it fails SaveItems without
// storing anything (a full disk, a locked database), and it may block until
// ctx ends (a write stuck on a lock). Set BeforeSave before the tracker
// runs.
type Faulty struct {
	trackers.Store
	BeforeSave func(ctx context.Context, tracker string, items []trackers.Item, cursor string) error

	mu    sync.Mutex
	calls int
	saves int
}

// SaveItems implements trackers.Store.
func (f *Faulty) SaveItems(ctx context.Context, tracker string, items []trackers.Item, cursor string) (int, error) {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	if f.BeforeSave != nil {
		if err := f.BeforeSave(ctx, tracker, items, cursor); err != nil {
			return 0, err
		}
	}
	n, err := f.Store.SaveItems(ctx, tracker, items, cursor)
	if err == nil {
		f.mu.Lock()
		f.saves++
		f.mu.Unlock()
	}
	return n, err
}

// Calls is the number of SaveItems calls, failed ones included.
func (f *Faulty) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// Saves is the number of SaveItems calls the real store committed.
func (f *Faulty) Saves() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.saves
}
