package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rouse-dev/rouse/trackers"
)

var _ trackers.Store = (*Store)(nil)

// SaveItems stores items for tracker, skipping IDs the tracker already has
// (INSERT ... ON CONFLICT DO NOTHING on (tracker, id)), and sets the
// tracker's cursor, atomically: when anything fails nothing is stored and
// the cursor does not move. cursor "" leaves the cursor unchanged. An
// item's Data must be valid JSON (empty is stored as null); a zero Time is
// stored as now. It returns how many items were new; no items and cursor
// "" touch nothing.
//
// Saves are group-committed: calls that arrive while a commit is under way
// are committed together in the next transaction, each in its own
// savepoint (one call's failure leaves the others stored), so a tracker on
// a restore's critical path waits for at most one commit, not for every
// other tracker's in turn. Nothing waits for company: a lone call commits
// at once. A call whose ctx ends while it is queued returns ctx's error;
// its items may still be stored by the commit under way (IDs are
// deduplicated, so a retry stores nothing twice).
func (s *Store) SaveItems(ctx context.Context, tracker string, items []trackers.Item, cursor string) (int, error) {
	for _, it := range items {
		if len(it.Data) > 0 && !json.Valid(it.Data) {
			return 0, fmt.Errorf("save items %s: item %q: data is not valid JSON", tracker, it.ID)
		}
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("save items %s: %w", tracker, err)
	}
	if len(items) == 0 && cursor == "" { // an idle poll costs no transaction
		s.mu.RLock()
		closed := s.w == nil
		s.mu.RUnlock()
		if closed {
			return 0, fmt.Errorf("save items %s: %w", tracker, ErrClosed)
		}
		return 0, nil
	}
	req := &saveReq{tracker: tracker, items: items, cursor: cursor, done: make(chan struct{}), lead: make(chan struct{})}
	s.saves.mu.Lock()
	s.saves.queue = append(s.saves.queue, req)
	leader := !s.saves.busy
	s.saves.busy = true
	s.saves.mu.Unlock()
	if !leader {
		select {
		case <-req.done:
			return req.added, req.err
		case <-req.lead: // the last leader handed over: commit the queue
		case <-ctx.Done():
			if req.abandon() {
				return 0, fmt.Errorf("save items %s: %w", tracker, ctx.Err())
			}
			select { // already taken into a batch, or handed the lead (state 3)
			case <-req.done:
				return req.added, req.err
			case <-req.lead:
			}
		}
	}
	s.commitQueue(ctx)
	<-req.done
	return req.added, req.err
}

// saveReq is one SaveItems call waiting in the group-commit queue.
type saveReq struct {
	tracker string
	items   []trackers.Item
	cursor  string

	state atomic.Int32  // 0 queued, 1 taken into a batch, 2 abandoned, 3 handed the lead
	done  chan struct{} // closed when added and err are set
	lead  chan struct{} // closed when this call is to commit the queue
	added int
	err   error
}

// abandon marks a queued request as given up; false when a batch already
// took it or it was handed the lead (then it must commit the queue).
func (r *saveReq) abandon() bool { return r.state.CompareAndSwap(0, 2) }

// take marks a request as committed by this batch: a queued one, or the
// leader's own.
func (r *saveReq) take() bool { return r.state.CompareAndSwap(0, 1) || r.state.CompareAndSwap(3, 1) }

// saveQueue is the group-commit queue.
type saveQueue struct {
	mu      sync.Mutex
	queue   []*saveReq
	busy    bool         // a leader is committing
	commits atomic.Int64 // transactions so far
}

// commitQueue commits whatever is queued in one transaction, then hands
// the lead to the first call that arrived meanwhile (or ends it).
func (s *Store) commitQueue(ctx context.Context) {
	s.saves.mu.Lock()
	batch := s.saves.queue
	s.saves.queue = nil
	s.saves.mu.Unlock()
	var live []*saveReq
	for _, r := range batch {
		if r.take() {
			live = append(live, r)
		}
	}
	if len(live) > 0 {
		s.commitBatch(context.WithoutCancel(ctx), live)
		s.saves.commits.Add(1)
	}
	// Hand the lead to the first call still queued. The hand-over and a
	// call giving up race on the same state: whichever swaps first wins,
	// so a call that gave up is never made leader and a leader never gives
	// up (which would leave busy set with nobody committing).
	s.saves.mu.Lock()
	for len(s.saves.queue) > 0 && !s.saves.queue[0].state.CompareAndSwap(0, 3) {
		s.saves.queue = s.saves.queue[1:] // gave up while queued
	}
	if len(s.saves.queue) == 0 {
		s.saves.busy = false
	} else {
		close(s.saves.queue[0].lead)
	}
	s.saves.mu.Unlock()
}

// commitBatch runs one transaction with a savepoint per request and sets
// each request's result.
func (s *Store) commitBatch(ctx context.Context, batch []*saveReq) {
	op := "save items " + batch[0].tracker
	if len(batch) > 1 {
		op = fmt.Sprintf("save items (%d trackers)", len(batch))
	}
	err := s.writeTx(ctx, op, func(ctx context.Context, tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `INSERT INTO items(tracker, id, at, data) VALUES(?, ?, ?, ?)
			ON CONFLICT(tracker, id) DO NOTHING`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, r := range batch {
			if err := ctx.Err(); err != nil {
				return err
			}
			if _, err := tx.ExecContext(rowCtx(ctx), `SAVEPOINT save_items`); err != nil {
				return err
			}
			r.added, r.err = saveOne(ctx, tx, st, r)
			if r.err != nil {
				r.added = 0
				if _, err := tx.ExecContext(rowCtx(ctx), `ROLLBACK TO save_items`); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(rowCtx(ctx), `RELEASE save_items`); err != nil {
				return err
			}
		}
		return nil
	})
	for _, r := range batch {
		switch {
		case err != nil:
			r.added, r.err = 0, err
		case r.err != nil:
			r.err = fmt.Errorf("save items %s: %w", r.tracker, s.classify(r.err))
		}
		close(r.done)
	}
}

// saveOne writes one request's items and cursor inside the savepoint.
func saveOne(ctx context.Context, tx *sql.Tx, st *sql.Stmt, r *saveReq) (int, error) {
	added := 0
	now := time.Now().UnixNano()
	for _, it := range r.items {
		data := []byte(it.Data)
		if len(data) == 0 {
			data = []byte("null")
		}
		at := now
		if !it.Time.IsZero() {
			at = it.Time.UnixNano()
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		res, err := st.ExecContext(rowCtx(ctx), r.tracker, it.ID, at, data)
		if err != nil {
			return 0, fmt.Errorf("item %q: %w", it.ID, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, err
		}
		added += int(n)
	}
	if r.cursor != "" {
		if _, err := tx.ExecContext(rowCtx(ctx), `INSERT INTO cursors(tracker, cursor, updated_at) VALUES(?, ?, ?)
			ON CONFLICT(tracker) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at`,
			r.tracker, r.cursor, time.Now().UnixNano()); err != nil {
			return 0, fmt.Errorf("set cursor: %w", err)
		}
	}
	return added, nil
}

// Cursor returns tracker's cursor, "" when it has none.
func (s *Store) Cursor(ctx context.Context, tracker string) (string, error) {
	var c string
	err := s.withDB(ctx, "cursor "+tracker, func(ctx context.Context, _, r *sql.DB) error {
		err := r.QueryRowContext(ctx, `SELECT cursor FROM cursors WHERE tracker = ?`, tracker).Scan(&c)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		return err
	})
	if err != nil {
		return "", err
	}
	return c, nil
}

// ItemQuery selects a batch of a tracker's items.
//
// Newest first (the default) pages backwards: pass the smallest Seq of the
// previous batch as BeforeSeq. Oldest first pages forwards: pass the largest
// Seq of the previous batch as AfterSeq. Since keeps items whose Time is at or
// after it. Limit <= 0 means DefaultLimit.
//
// MaxBytes, when positive, ends the batch before the item whose data would
// take the batch's data past it (the first item always comes). OmitAbove,
// when positive, leaves out the data of any item larger than it (Data nil,
// Size says how large): reading an item loads it whole, so this is what
// bounds the memory of a read whatever was stored.
type ItemQuery struct {
	Since     time.Time
	AfterSeq  int64
	BeforeSeq int64
	Limit     int
	Oldest    bool
	MaxBytes  int64
	OmitAbove int64
}

// Item is a stored item with its data as stored (valid JSON).
type Item struct {
	Seq  int64
	ID   string
	Time time.Time       // UTC
	Data json.RawMessage // nil when left out (see ItemQuery.OmitAbove)
	Size int64           // the data's length in bytes
}

// Items returns a batch of tracker's items in store order (Seq). Rows are
// read one at a time, so a read holds at most one item's data beyond the
// batch.
func (s *Store) Items(ctx context.Context, tracker string, q ItemQuery) ([]Item, error) {
	out := []Item{}
	err := s.withDB(ctx, "items "+tracker, func(ctx context.Context, _, r *sql.DB) error {
		omit := q.OmitAbove
		if omit <= 0 {
			omit = math.MaxInt64
		}
		query := `SELECT seq, id, at, length(data), CASE WHEN length(data) <= ? THEN data END FROM items WHERE tracker = ?`
		args := []any{omit, tracker}
		if !q.Since.IsZero() {
			query += ` AND at >= ?`
			args = append(args, q.Since.UnixNano())
		}
		if q.AfterSeq > 0 {
			query += ` AND seq > ?`
			args = append(args, q.AfterSeq)
		}
		if q.BeforeSeq > 0 {
			query += ` AND seq < ?`
			args = append(args, q.BeforeSeq)
		}
		if q.Oldest {
			query += ` ORDER BY seq ASC LIMIT ?`
		} else {
			query += ` ORDER BY seq DESC LIMIT ?`
		}
		args = append(args, limitOr(q.Limit))
		rows, err := r.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		var total int64
		for rows.Next() {
			var it Item
			var at int64
			var data sql.RawBytes
			if err := rows.Scan(&it.Seq, &it.ID, &at, &it.Size, &data); err != nil {
				return err
			}
			if q.MaxBytes > 0 && len(out) > 0 && total+int64(len(data)) > q.MaxBytes {
				break
			}
			total += int64(len(data))
			it.Time = time.Unix(0, at).UTC()
			if data != nil {
				it.Data = bytes.Clone(data)
			}
			out = append(out, it)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CountItems returns how many items tracker has ("" counts all trackers).
func (s *Store) CountItems(ctx context.Context, tracker string) (int64, error) {
	var n int64
	err := s.withDB(ctx, "count items "+tracker, func(ctx context.Context, _, r *sql.DB) error {
		if tracker == "" {
			return r.QueryRowContext(ctx, `SELECT count(*) FROM items`).Scan(&n)
		}
		return r.QueryRowContext(ctx, `SELECT count(*) FROM items WHERE tracker = ?`, tracker).Scan(&n)
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
