package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/trackers"
)

// Saves that arrive while a commit is under way are committed together,
// each with its own result; one given up while queued is not stored.
func TestSaveItemsGroupCommit(t *testing.T) {
	ctx := ctxT(t)
	s := openTemp(t)
	// Stand in for a commit under way: every call now queues.
	s.saves.mu.Lock()
	s.saves.busy = true
	s.saves.mu.Unlock()

	const trackersN = 20
	type result struct {
		added int
		err   error
	}
	results := make([]result, trackersN)
	var wg sync.WaitGroup
	for i := range trackersN {
		wg.Go(func() {
			items := []trackers.Item{{ID: "a", Data: []byte(`1`)}, {ID: "b", Data: []byte(`2`)}, {ID: "a", Data: []byte(`3`)}}
			n, err := s.SaveItems(ctx, fmt.Sprintf("t%02d", i), items, fmt.Sprint(i))
			results[i] = result{n, err}
		})
	}
	gaveUp := make(chan error, 1)
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		_, err := s.SaveItems(cctx, "quitter", []trackers.Item{{ID: "x"}}, "c")
		gaveUp <- err
	}()
	waitQueued := func(n int) {
		deadline := time.Now().Add(guard)
		for {
			s.saves.mu.Lock()
			got := len(s.saves.queue)
			s.saves.mu.Unlock()
			if got == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d calls queued, want %d", got, n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitQueued(trackersN + 1)
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("a call given up while queued = %v, want context.Canceled", err)
	}
	before := s.saves.commits.Load()
	s.commitQueue(ctx) // the commit under way ends: the queue is one batch
	wg.Wait()
	if n := s.saves.commits.Load() - before; n != 1 {
		t.Errorf("%d calls committed in %d transactions, want 1", trackersN, n)
	}
	for i, r := range results {
		if r.err != nil || r.added != 2 {
			t.Errorf("tracker %d: added %d, err %v; want 2, nil", i, r.added, r.err)
		}
		if c, _ := s.Cursor(ctx, fmt.Sprintf("t%02d", i)); c != fmt.Sprint(i) {
			t.Errorf("tracker %d: cursor %q", i, c)
		}
	}
	if n, _ := s.CountItems(ctx, "quitter"); n != 0 {
		t.Errorf("the call given up while queued stored %d items", n)
	}
	s.saves.mu.Lock()
	busy := s.saves.busy
	s.saves.mu.Unlock()
	if busy {
		t.Error("the queue is still marked busy after the last commit")
	}
	// And a lone call commits at once on its own.
	if n, err := s.SaveItems(ctx, "alone", []trackers.Item{{ID: "z"}}, ""); err != nil || n != 1 {
		t.Fatalf("a lone save = %d, %v", n, err)
	}
}

// A call whose context ends just as the lead is handed to it must still
// commit the queue (or pass the lead on): otherwise every later save
// waits forever. Many saves with contexts that end at random moments, then
// one more that must come back.
func TestSaveItemsSurvivesCancelsRacingTheHandOver(t *testing.T) {
	ctx := ctxT(t)
	s := openTemp(t)
	var wg sync.WaitGroup
	for round := range 40 {
		for i := range 25 {
			wg.Go(func() {
				cctx, cancel := context.WithTimeout(ctx, time.Duration((round*25+i)%7)*50*time.Microsecond)
				defer cancel()
				_, _ = s.SaveItems(cctx, fmt.Sprintf("t%02d", i), []trackers.Item{{ID: fmt.Sprint(round), Data: []byte(`1`)}}, "")
			})
		}
		wg.Wait()
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.SaveItems(ctx, "after", []trackers.Item{{ID: "z", Data: []byte(`1`)}}, "")
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(guard):
		t.Fatal("a save after racing cancels never came back: the group commit lost its leader")
	}
}
