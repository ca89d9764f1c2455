package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/wire"
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

// ItemQuery selects a page of a tracker's items.
//
// Newest first (the default) pages backwards: pass the smallest Seq of the
// previous page as BeforeSeq. Oldest first pages forwards: pass the largest
// Seq of the previous page as AfterSeq. Since keeps items whose Time is at or
// after it. Limit <= 0 means DefaultLimit.
type ItemQuery struct {
	Since     time.Time
	AfterSeq  int64
	BeforeSeq int64
	Limit     int
	Oldest    bool
}

// Items returns a page of tracker's items in store order (Seq), with Data
// decoded from JSON.
func (s *Store) Items(ctx context.Context, tracker string, q ItemQuery) ([]wire.Item, error) {
	out := []wire.Item{}
	err := s.withDB(ctx, "items "+tracker, func(ctx context.Context, _, r *sql.DB) error {
		query := `SELECT seq, id, at, data FROM items WHERE tracker = ?`
		args := []any{tracker}
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
		for rows.Next() {
			var it wire.Item
			var at int64
			var data []byte
			if err := rows.Scan(&it.Seq, &it.ID, &at, &data); err != nil {
				return err
			}
			it.Time = time.Unix(0, at).UTC()
			if err := json.Unmarshal(data, &it.Data); err != nil {
				return fmt.Errorf("item %q: decode data: %w", it.ID, err)
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
