// Package store owns rouse's SQLite database (modernc.org/sqlite, pure Go):
// opening and reopening it around sleep, its schema and migrations, and every
// query the agent, the trackers and the scheduler make.
//
// Shape:
//
//   - One writer connection (SetMaxOpenConns(1)) opened with
//     _txlock=immediate, so every write transaction takes the write lock up
//     front and waits in SQLite's busy handler instead of failing with
//     SQLITE_BUSY_SNAPSHOT on a read→write upgrade. Writers queue for that one
//     connection in database/sql, under their own contexts.
//   - A small read pool (query_only) serves readers concurrently; WAL mode
//     lets them read while the writer writes.
//   - Reopen is first-class: Close(ctx) checkpoints (TRUNCATE, best effort),
//     marks a clean shutdown and closes both pools; Open/Reopen opens the
//     same path again. Every method is safe while closed and returns an error
//     wrapping ErrClosed, never a panic. The *sql.DB handles are guarded by
//     a RWMutex: calls hold the read side for their whole duration, so Close
//     never closes a pool under them; it waits for calls in flight until its
//     context ends, then cancels them (a write stuck on another process's
//     lock must not eat the few seconds the machine gives before sleep).
//   - After open the store records the file's identity (device and inode);
//     Verify compares it with the file on disk, because in WAL mode SQLite
//     goes on "writing" into a file whose directory was deleted.
//   - An unclean-shutdown marker (a row in the meta table) is set at open and
//     cleared at Close; UncleanShutdown reports that the previous process did
//     not close cleanly. Open never runs quick_check (it costs up to ~1.4 s on
//     a 50 MB store); the agent runs QuickCheck in the background after an
//     unclean shutdown, once its API listens.
//
// Times are stored as UTC unix nanoseconds (INTEGER) and come back in UTC,
// equal (time.Time.Equal) to what was stored; a zero time is stored as NULL
// and comes back zero. Migrations are versioned with PRAGMA user_version,
// each one in its own transaction; a database newer than this binary is
// refused. Limits: a limit <= 0 means DefaultLimit.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/rouse-dev/rouse/internal/perm"
	"github.com/rouse-dev/rouse/wire"
)

// Errors callers test with errors.Is.
var (
	// ErrClosed: the store is closed (the machine is asleep, or it is
	// shutting down). Any call while closed returns an error wrapping it.
	ErrClosed = errors.New("store: closed")
	// ErrNotFound: the wake, job run, ... asked for does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrLocked: another process held the database's write lock for longer
	// than the busy timeout.
	ErrLocked = errors.New("store: database is locked by another process")
	// ErrReplaced: the database file on disk is no longer the one that was
	// opened (deleted, or its directory deleted, or replaced).
	ErrReplaced = errors.New("store: database file was deleted or replaced")
)

// DefaultLimit is the number of rows list queries return when asked for a
// limit <= 0.
const DefaultLimit = 100

// DefaultBusyTimeout is Options.BusyTimeout's default.
const DefaultBusyTimeout = 5 * time.Second

// readPoolSize is the number of read-only connections.
const readPoolSize = 4

// Options configures a Store.
type Options struct {
	// Logger receives the store's logs; default slog.Default().
	Logger *slog.Logger
	// BusyTimeout is how long a write waits for another process's write lock
	// before failing with ErrLocked; default 5s.
	BusyTimeout time.Duration
}

// Store is rouse's database. It is safe for concurrent use, including
// concurrently with Close and Reopen.
type Store struct {
	path string
	opts Options
	log  *slog.Logger

	saves saveQueue // SaveItems' group commit (items.go)

	mu      sync.RWMutex
	open    atomic.Bool // w != nil, readable without mu (State never waits)
	w       *sql.DB     // the one writer connection; nil while closed
	r       *sql.DB     // read-only pool; nil while closed
	fi      os.FileInfo // identity of the file opened
	unclean bool
	life    context.Context // cancelled when Close gives up waiting for calls in flight

	stMu     sync.Mutex // guards endLife, lastErr and verified, so Verify never waits for Close
	endLife  context.CancelFunc
	lastErr  error // last open or verify failure; cleared by a good open
	verified bool  // false after Verify found the file replaced
}

func (s *Store) setStatus(verified bool, err error) {
	s.stMu.Lock()
	s.verified, s.lastErr = verified, err
	s.stMu.Unlock()
}

// Open creates the parent directory (0700) when missing, opens the database
// at path in WAL mode, runs pending migrations and sets the unclean-shutdown
// marker. It does not run quick_check.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("store: open: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = DefaultBusyTimeout
	}
	s := &Store{path: abs, opts: opts, log: opts.Logger.With("component", "store")}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.openLocked(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Path is the database file's absolute path.
func (s *Store) Path() string { return s.path }

// State is "open", "closed" or "error" (the last open failed, or Verify
// found the file deleted or replaced). It never waits for a call in flight
// or for Close (health and readiness read it).
func (s *Store) State() string {
	s.stMu.Lock()
	defer s.stMu.Unlock()
	switch {
	case s.open.Load() && s.verified:
		return wire.StoreOpen
	case s.lastErr != nil:
		return wire.StoreError
	default:
		return wire.StoreClosed
	}
}

// Err is the last open or Verify failure, nil after a good open.
func (s *Store) Err() error {
	s.stMu.Lock()
	defer s.stMu.Unlock()
	return s.lastErr
}

// UncleanShutdown reports whether the process that last had the database
// open did not Close it (it crashed, was killed, or the machine lost power).
func (s *Store) UncleanShutdown() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.unclean
}

// dsn builds the connection string for the database at path.
func dsn(path string, busy time.Duration, readOnly bool) string {
	u := (&url.URL{Path: filepath.ToSlash(path)}).EscapedPath()
	if !strings.HasPrefix(u, "/") { // Windows drive paths: file:///C:/...
		u = "/" + u
	}
	q := []string{fmt.Sprintf("_pragma=busy_timeout(%d)", busy.Milliseconds())}
	if readOnly {
		q = append(q, "_pragma=query_only(1)")
	} else {
		q = append(q,
			"_pragma=journal_mode(WAL)",
			"_pragma=synchronous(NORMAL)",
			"_pragma=foreign_keys(1)",
			"_txlock=immediate")
	}
	return "file://" + u + "?" + strings.Join(q, "&")
}

// openLocked opens both pools. s.mu must be held for writing and the store
// closed.
func (s *Store) openLocked(ctx context.Context) (err error) {
	defer func() {
		s.setStatus(err == nil, err)
	}()
	start := time.Now()
	// The database is created 0600 before SQLite opens it (SQLite gives
	// its -wal and -shm files the same mode); the agent checks the data
	// directory itself with perm.Dir before it opens the store.
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("store: create directory for %s: %w", s.path, err)
	}
	if err := perm.CreateFile(s.path); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	w, err := sql.Open("sqlite", dsn(s.path, s.opts.BusyTimeout, false))
	if err != nil {
		return fmt.Errorf("store: open %s: %w", s.path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	fail := func(op string, err error) error {
		_ = w.Close()
		return fmt.Errorf("store: %s %s: %w", op, s.path, s.classify(err))
	}
	if err := migrate(ctx, w); err != nil {
		return fail("migrate", err)
	}
	unclean, err := setMarker(ctx, w)
	if err != nil {
		return fail("mark open", err)
	}
	fi, err := os.Stat(s.path) // Stat, never Open: an Open+Close drops SQLite's locks
	if err != nil {
		return fail("stat", err)
	}
	r, err := sql.Open("sqlite", dsn(s.path, s.opts.BusyTimeout, true))
	if err != nil {
		return fail("open read pool", err)
	}
	r.SetMaxOpenConns(readPoolSize)
	r.SetMaxIdleConns(readPoolSize)
	life, endLife := context.WithCancel(context.Background())
	s.w, s.r, s.fi, s.unclean, s.life = w, r, fi, unclean, life
	s.open.Store(true)
	s.stMu.Lock()
	s.endLife = endLife
	s.stMu.Unlock()
	s.log.Info("store opened", "path", s.path, "unclean_shutdown", unclean,
		"duration", time.Since(start))
	return nil
}

// setMarker reads the previous process's clean-shutdown flag and sets it to
// "not clean" for this one. The first open of a new database is clean.
func setMarker(ctx context.Context, w *sql.DB) (unclean bool, err error) {
	err = inTx(ctx, w, func(tx *sql.Tx) error {
		var v string
		switch err := tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'clean_shutdown'`).Scan(&v); {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		default:
			unclean = v != "1"
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO meta(key, value) VALUES('clean_shutdown', '0'), ('opened_at', ?)
			ON CONFLICT(key) DO UPDATE SET value = excluded.value`, time.Now().UTC().Format(time.RFC3339Nano))
		return err
	})
	return unclean, err
}

// Close checkpoints the WAL into the database (TRUNCATE, best effort, under
// ctx), marks a clean shutdown and closes both pools. It waits for calls in
// flight until ctx is done, then cancels them (they return errors wrapping
// ErrClosed; their transactions roll back). Closing a closed store is a
// no-op.
func (s *Store) Close(ctx context.Context) error {
	defer s.cancelInFlightWhenDone(ctx)()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeLocked(ctx)
}

// cancelInFlightWhenDone arranges for the calls in flight to be cancelled
// when ctx is done, so that Close is bounded by its context. The returned
// function disarms it.
func (s *Store) cancelInFlightWhenDone(ctx context.Context) func() {
	s.stMu.Lock()
	end := s.endLife
	s.stMu.Unlock()
	if end == nil {
		return func() {}
	}
	stop := context.AfterFunc(ctx, end)
	return func() { stop() }
}

func (s *Store) closeLocked(ctx context.Context) error {
	if s.w == nil {
		return nil
	}
	start := time.Now()
	var errs []error
	// Both under ctx, best effort: without the marker the next open reports
	// an unclean shutdown (and the agent runs a quick_check); without the
	// checkpoint the next open replays the WAL. Neither loses data.
	if _, err := s.w.ExecContext(ctx, `UPDATE meta SET value = '1' WHERE key = 'clean_shutdown'`); err != nil {
		errs = append(errs, fmt.Errorf("store: mark clean shutdown: %w", s.classify(err)))
	}
	if ctx.Err() == nil {
		if err := checkpoint(ctx, s.w, "TRUNCATE"); err != nil {
			// Best effort: the WAL is replayed at the next open anyway.
			s.log.Warn("checkpoint before close failed", "err", err)
		}
	}
	if err := s.r.Close(); err != nil {
		errs = append(errs, fmt.Errorf("store: close read pool: %w", err))
	}
	if err := s.w.Close(); err != nil {
		errs = append(errs, fmt.Errorf("store: close: %w", err))
	}
	s.w, s.r = nil, nil
	s.open.Store(false)
	s.stMu.Lock()
	s.endLife()
	s.endLife, s.verified, s.lastErr = nil, false, nil
	s.stMu.Unlock()
	err := errors.Join(errs...)
	if err != nil {
		s.log.Warn("store closed with errors", "path", s.path, "duration", time.Since(start), "err", err)
	} else {
		s.log.Info("store closed", "path", s.path, "duration", time.Since(start))
	}
	return err
}

// Reopen closes the store if it is open, then opens the same path again.
// It is safe to call repeatedly, and after Close.
func (s *Store) Reopen(ctx context.Context) error {
	defer s.cancelInFlightWhenDone(ctx)()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.closeLocked(ctx); err != nil {
		s.log.Warn("close before reopen failed", "err", err)
	}
	return s.openLocked(ctx)
}

// Verify returns nil when the store is open and the file at Path is still
// the one that was opened (same device and inode). It returns an error
// wrapping ErrClosed when closed, and one wrapping ErrReplaced when the file
// or its directory was deleted or replaced; State then reports "error" until
// Reopen succeeds. It never waits: while Close or Reopen holds (or waits
// for) the store, it returns the last verdict instead of looking again.
func (s *Store) Verify() error {
	if !s.mu.TryRLock() {
		s.stMu.Lock()
		defer s.stMu.Unlock()
		if s.lastErr != nil {
			return s.lastErr
		}
		if !s.open.Load() {
			return fmt.Errorf("verify: %w", ErrClosed)
		}
		return nil
	}
	defer s.mu.RUnlock()
	if s.w == nil {
		return fmt.Errorf("verify: %w", ErrClosed)
	}
	fi, err := os.Stat(s.path)
	switch {
	case err != nil:
		err = fmt.Errorf("%w: %s: %w", ErrReplaced, s.path, err)
	case !os.SameFile(s.fi, fi):
		err = fmt.Errorf("%w: %s is another file than the one opened", ErrReplaced, s.path)
	}
	s.stMu.Lock()
	defer s.stMu.Unlock()
	if err != nil {
		if s.verified {
			s.log.Error("database file deleted or replaced; reopen the store", "path", s.path, "err", err)
		}
		s.verified, s.lastErr = false, err
		return err
	}
	s.verified, s.lastErr = true, nil
	return nil
}

// Checkpoint runs PRAGMA wal_checkpoint(mode); mode is PASSIVE, FULL,
// RESTART or TRUNCATE. For all but PASSIVE, an error is returned when the
// checkpoint could not complete because of readers or writers.
func (s *Store) Checkpoint(ctx context.Context, mode string) error {
	return s.withDB(ctx, "checkpoint", func(ctx context.Context, w, _ *sql.DB) error { return checkpoint(ctx, w, mode) })
}

func checkpoint(ctx context.Context, w *sql.DB, mode string) error {
	mode = strings.ToUpper(mode)
	switch mode {
	case "PASSIVE", "FULL", "RESTART", "TRUNCATE":
	default:
		return fmt.Errorf("unknown checkpoint mode %q (want PASSIVE, FULL, RESTART or TRUNCATE)", mode)
	}
	var busy, logFrames, done int
	if err := w.QueryRowContext(ctx, "PRAGMA wal_checkpoint("+mode+")").Scan(&busy, &logFrames, &done); err != nil {
		return err
	}
	if busy != 0 && mode != "PASSIVE" {
		return fmt.Errorf("checkpoint %s incomplete: %d of %d frames (busy)", mode, done, logFrames)
	}
	return nil
}

// QuickCheck runs PRAGMA quick_check: O(size), ~0.2 s warm and ~1.4 s cold on
// a 50 MB store. Run it in the background, never in the way of a wake.
func (s *Store) QuickCheck(ctx context.Context) error {
	return s.withDB(ctx, "quick_check", func(ctx context.Context, _, r *sql.DB) error { return check(ctx, r, "quick_check") })
}

// IntegrityCheck runs PRAGMA integrity_check, about ten times slower than
// QuickCheck.
func (s *Store) IntegrityCheck(ctx context.Context) error {
	return s.withDB(ctx, "integrity_check", func(ctx context.Context, _, r *sql.DB) error { return check(ctx, r, "integrity_check") })
}

func check(ctx context.Context, db *sql.DB, pragma string) error {
	rows, err := db.QueryContext(ctx, "PRAGMA "+pragma)
	if err != nil {
		return err
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return err
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(problems) > 0 {
		if len(problems) > 5 {
			problems = append(problems[:5], fmt.Sprintf("and %d more", len(problems)-5))
		}
		return fmt.Errorf("database is damaged: %s", strings.Join(problems, "; "))
	}
	return nil
}

// Prune deletes state events, wakes (with their components) and finished
// job runs older than before, in one transaction, and returns how many rows
// it deleted. Items, cursors, desired state and job state are kept.
func (s *Store) Prune(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.writeTx(ctx, "prune", func(ctx context.Context, tx *sql.Tx) error {
		b := before.UnixNano()
		for _, q := range []string{
			`DELETE FROM state_events WHERE at < ?`,
			`DELETE FROM wake_components WHERE wake_id IN (SELECT id FROM wakes WHERE woke_at < ?)`,
			`DELETE FROM wakes WHERE woke_at < ?`,
			`DELETE FROM job_runs WHERE scheduled_at < ? AND result != 'running'`,
		} {
			res, err := tx.ExecContext(ctx, q, b)
			if err != nil {
				return err
			}
			k, _ := res.RowsAffected()
			n += k
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// withDB runs fn with the open pools, holding the read side of s.mu so that
// Close waits for it (until Close's context is done: then fn's context is
// cancelled). It wraps fn's error with op.
func (s *Store) withDB(ctx context.Context, op string, fn func(ctx context.Context, w, r *sql.DB) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.w == nil {
		return fmt.Errorf("%s: %w", op, ErrClosed)
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.life, cancel)
	defer stop()
	if err := fn(cctx, s.w, s.r); err != nil {
		if s.life.Err() != nil && ctx.Err() == nil {
			return fmt.Errorf("%s: %w (interrupted): %w", op, ErrClosed, err)
		}
		return fmt.Errorf("%s: %w", op, s.classify(err))
	}
	return nil
}

// writeTx runs fn in a write transaction (BEGIN IMMEDIATE) on the writer.
func (s *Store) writeTx(ctx context.Context, op string, fn func(ctx context.Context, tx *sql.Tx) error) error {
	return s.withDB(ctx, op, func(ctx context.Context, w, _ *sql.DB) error {
		return inTx(ctx, w, func(tx *sql.Tx) error { return fn(ctx, tx) })
	})
}

// readTx runs fn in a read transaction on the read pool: one consistent
// snapshot across several queries.
func (s *Store) readTx(ctx context.Context, op string, fn func(ctx context.Context, tx *sql.Tx) error) error {
	return s.withDB(ctx, op, func(ctx context.Context, _, r *sql.DB) error {
		tx, err := r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback() }()
		return fn(ctx, tx)
	})
}

// rowCtx is the context for one short statement of a batch inside a
// write transaction begun with ctx: ctx without its cancellation.
// modernc.org/sqlite starts a goroutine for every call whose context can
// end (to interrupt the call); a batch of a thousand single-row inserts
// (a wake's state events) made a thousand goroutines runnable at once,
// queued ahead of the API's requests. A row takes microseconds; the
// transaction still ends with ctx (database/sql rolls it back, and the next
// statement fails with sql.ErrTxDone), and the batches check ctx between
// rows. Long statements (Prune) keep ctx.
func rowCtx(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

func inTx(ctx context.Context, db *sql.DB, fn func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// classify wraps SQLITE_BUSY in ErrLocked, with advice.
func (s *Store) classify(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY {
		return fmt.Errorf("%w (waited %s; is another rouse running on %s?): %w",
			ErrLocked, s.opts.BusyTimeout, s.path, err)
	}
	return err
}

// ns encodes t as unix nanoseconds, NULL for the zero time.
func ns(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

// nsOrNow encodes t, or now when t is zero (for NOT NULL columns).
func nsOrNow(t time.Time) int64 {
	if t.IsZero() {
		return time.Now().UnixNano()
	}
	return t.UnixNano()
}

// fromNS decodes a nullable nanosecond column.
func fromNS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.Unix(0, v.Int64).UTC()
}

// ptrNS decodes a nullable nanosecond column into a *time.Time.
func ptrNS(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := time.Unix(0, v.Int64).UTC()
	return &t
}

// nsPtr encodes a *time.Time, NULL for nil or zero.
func nsPtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return ns(*t)
}

func limitOr(n int) int {
	if n <= 0 {
		return DefaultLimit
	}
	return n
}
