package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Secret returns the secret tracker keeps under key (a Roon Core's
// extension token under the core's id), "" when there is none. Secrets are
// never logged and never served by the API.
func (s *Store) Secret(ctx context.Context, tracker, key string) (string, error) {
	var v string
	err := s.withDB(ctx, "read secret", func(ctx context.Context, _, r *sql.DB) error {
		err := r.QueryRowContext(ctx, `SELECT secret FROM tracker_secrets WHERE tracker = ? AND key = ?`, tracker, key).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		return err
	})
	if err != nil {
		return "", err
	}
	return v, nil
}

// SetSecret stores tracker's secret under key; an empty secret deletes it.
func (s *Store) SetSecret(ctx context.Context, tracker, key, secret string) error {
	return s.writeTx(ctx, "write secret", func(ctx context.Context, tx *sql.Tx) error {
		if secret == "" {
			_, err := tx.ExecContext(ctx, `DELETE FROM tracker_secrets WHERE tracker = ? AND key = ?`, tracker, key)
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO tracker_secrets(tracker, key, secret, updated_at) VALUES(?, ?, ?, ?)
			ON CONFLICT(tracker, key) DO UPDATE SET secret = excluded.secret, updated_at = excluded.updated_at`,
			tracker, key, secret, time.Now().UnixNano())
		return err
	})
}
