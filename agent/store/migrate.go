package store

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations are applied in order; migrations[i] brings the schema from
// user_version i to i+1. Append only: never edit a migration that shipped.
var migrations = []string{
	// 1: the first schema.
	`
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);

-- desired state: a component the user stopped stays stopped.
CREATE TABLE desired (
	name       TEXT PRIMARY KEY,
	active     INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);

CREATE TABLE state_events (
	id        INTEGER PRIMARY KEY,
	component TEXT NOT NULL,
	state     TEXT NOT NULL,
	previous  TEXT NOT NULL DEFAULT '',
	error     TEXT NOT NULL DEFAULT '',
	at        INTEGER NOT NULL
);
CREATE INDEX state_events_component ON state_events(component, id);
CREATE INDEX state_events_at ON state_events(at);

CREATE TABLE wakes (
	id            INTEGER PRIMARY KEY,
	detected_by   TEXT NOT NULL,
	slept_at      INTEGER,
	woke_at       INTEGER NOT NULL,
	slept_seconds REAL NOT NULL DEFAULT 0,
	duration_ms   INTEGER NOT NULL DEFAULT 0,
	ready         INTEGER NOT NULL DEFAULT 0,
	timed_out     INTEGER NOT NULL DEFAULT 0,
	failed        INTEGER NOT NULL DEFAULT 0,
	skipped       INTEGER NOT NULL DEFAULT 0,
	done          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX wakes_woke_at ON wakes(woke_at);

CREATE TABLE wake_components (
	wake_id     INTEGER NOT NULL REFERENCES wakes(id) ON DELETE CASCADE,
	name        TEXT NOT NULL,
	state       TEXT NOT NULL,
	duration_ms INTEGER NOT NULL DEFAULT 0,
	waited_ms   INTEGER NOT NULL DEFAULT 0,
	error       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX wake_components_wake ON wake_components(wake_id);
CREATE INDEX wake_components_name ON wake_components(name, wake_id);

-- items: seq is the rowid, the order items were stored in.
CREATE TABLE items (
	seq     INTEGER PRIMARY KEY,
	tracker TEXT NOT NULL,
	id      TEXT NOT NULL,
	at      INTEGER NOT NULL,
	data    BLOB NOT NULL,
	UNIQUE (tracker, id)
);
CREATE INDEX items_tracker_seq ON items(tracker, seq);

CREATE TABLE cursors (
	tracker    TEXT PRIMARY KEY,
	cursor     TEXT NOT NULL,
	updated_at INTEGER NOT NULL
);

CREATE TABLE job_state (
	job            TEXT PRIMARY KEY,
	last_scheduled INTEGER,
	next_run       INTEGER
);

CREATE TABLE job_runs (
	id           INTEGER PRIMARY KEY,
	job          TEXT NOT NULL,
	scheduled_at INTEGER NOT NULL,
	started_at   INTEGER,
	ended_at     INTEGER,
	result       TEXT NOT NULL DEFAULT '',
	reason       TEXT NOT NULL DEFAULT '',
	exit_code    INTEGER,
	output       TEXT NOT NULL DEFAULT '',
	error        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX job_runs_job ON job_runs(job, id);
CREATE INDEX job_runs_scheduled_at ON job_runs(scheduled_at);
`,
	// 2: secrets a tracker was handed by its counterpart (a Roon Core's
	// token for the extension), one per (tracker, key). Never exported by
	// the API.
	`
CREATE TABLE tracker_secrets (
	tracker    TEXT NOT NULL,
	key        TEXT NOT NULL,
	secret     TEXT NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (tracker, key)
);
`,
	// 3: the wake an @wake or @sleep hook job's run belongs to.
	`
ALTER TABLE job_runs ADD COLUMN wake_id INTEGER;
`,
	// 4: a restore's parallel efficiency (the sum of its components' own
	// start times over its wall time).
	`
ALTER TABLE wakes ADD COLUMN parallel_efficiency REAL NOT NULL DEFAULT 0;
`,
	// 5: components a restore left waiting for the user (a Roon extension
	// to enable), counted apart from the timed-out ones.
	`
ALTER TABLE wakes ADD COLUMN waiting_for_user INTEGER NOT NULL DEFAULT 0;
`,
}

// schemaVersion is the schema version this binary writes.
var schemaVersion = len(migrations)

// migrate applies pending migrations, each in its own write transaction.
// The version is re-read inside the transaction, so two processes
// migrating at once apply each migration once.
func migrate(ctx context.Context, w *sql.DB) error {
	for {
		applied := false
		err := inTx(ctx, w, func(tx *sql.Tx) error {
			var v int
			if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
				return err
			}
			if v > len(migrations) {
				return fmt.Errorf("database schema version %d is newer than this rouse (%d); upgrade rouse or move the database away",
					v, len(migrations))
			}
			if v == len(migrations) {
				return nil
			}
			if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
				return fmt.Errorf("migration %d: %w", v+1, err)
			}
			if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, v+1)); err != nil {
				return fmt.Errorf("migration %d: %w", v+1, err)
			}
			applied = true
			return nil
		})
		if err != nil || !applied {
			return err
		}
	}
}
