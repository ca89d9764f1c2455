package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/rouse-dev/rouse/trackers"
)

var _ trackers.Store = (*Store)(nil)

// SaveItems stores items for tracker, skipping IDs the tracker already has
// (INSERT ... ON CONFLICT DO NOTHING on (tracker, id)), and sets the
// tracker's cursor, all in one transaction: when anything fails nothing is
// stored and the cursor does not move. cursor "" leaves the cursor
// unchanged. An item's Data must be valid JSON (empty is stored as null); a
// zero Time is stored as now. It returns how many items were new.
func (s *Store) SaveItems(ctx context.Context, tracker string, items []trackers.Item, cursor string) (int, error) {
	added := 0
	err := s.writeTx(ctx, "save items "+tracker, func(ctx context.Context, tx *sql.Tx) error {
		if len(items) > 0 {
			st, err := tx.PrepareContext(ctx, `INSERT INTO items(tracker, id, at, data) VALUES(?, ?, ?, ?)
				ON CONFLICT(tracker, id) DO NOTHING`)
			if err != nil {
				return err
			}
			defer st.Close()
			now := time.Now().UnixNano()
			for _, it := range items {
				data := []byte(it.Data)
				if len(data) == 0 {
					data = []byte("null")
				} else if !json.Valid(data) {
					return fmt.Errorf("item %q: data is not valid JSON", it.ID)
				}
				at := now
				if !it.Time.IsZero() {
					at = it.Time.UnixNano()
				}
				res, err := st.ExecContext(ctx, tracker, it.ID, at, data)
				if err != nil {
					return fmt.Errorf("item %q: %w", it.ID, err)
				}
				n, err := res.RowsAffected()
				if err != nil {
					return err
				}
				added += int(n)
			}
		}
		if cursor != "" {
			if _, err := tx.ExecContext(ctx, `INSERT INTO cursors(tracker, cursor, updated_at) VALUES(?, ?, ?)
				ON CONFLICT(tracker) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at`,
				tracker, cursor, time.Now().UnixNano()); err != nil {
				return fmt.Errorf("set cursor: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
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
