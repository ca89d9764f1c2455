package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/rouse-dev/rouse/wire"
)

// SetDesired records whether the user wants component name active; a
// component the user stopped stays stopped across wakes and restarts.
func (s *Store) SetDesired(ctx context.Context, name string, active bool) error {
	return s.writeTx(ctx, "set desired "+name, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO desired(name, active, updated_at) VALUES(?, ?, ?)
			ON CONFLICT(name) DO UPDATE SET active = excluded.active, updated_at = excluded.updated_at`,
			name, active, time.Now().UnixNano())
		return err
	})
}

// Desired returns the desired state of every component it was ever set
// for: true active, false stopped. Components never set are absent (the
// agent treats them as active).
func (s *Store) Desired(ctx context.Context) (map[string]bool, error) {
	out := map[string]bool{}
	err := s.withDB(ctx, "desired", func(ctx context.Context, _, r *sql.DB) error {
		rows, err := r.QueryContext(ctx, `SELECT name, active FROM desired`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			var active bool
			if err := rows.Scan(&name, &active); err != nil {
				return err
			}
			out[name] = active
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// StateEvent is one stored component state change.
type StateEvent struct {
	Component, State, Previous, Error string
	At                                time.Time // zero: now
}

// AddStateEvent stores ev.
func (s *Store) AddStateEvent(ctx context.Context, ev StateEvent) error {
	return s.writeTx(ctx, "add state event", func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO state_events(component, state, previous, error, at) VALUES(?, ?, ?, ?, ?)`,
			ev.Component, ev.State, ev.Previous, ev.Error, nsOrNow(ev.At))
		return err
	})
}

// AddStateEvents stores evs in one transaction (the agent batches the
// bursts of a restore: one commit instead of one per event).
func (s *Store) AddStateEvents(ctx context.Context, evs []StateEvent) error {
	if len(evs) == 0 {
		return nil
	}
	return s.writeTx(ctx, "add state events", func(ctx context.Context, tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `INSERT INTO state_events(component, state, previous, error, at) VALUES(?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, ev := range evs {
			if err := ctx.Err(); err != nil {
				return err
			}
			if _, err := st.ExecContext(rowCtx(ctx), ev.Component, ev.State, ev.Previous, ev.Error, nsOrNow(ev.At)); err != nil {
				return err
			}
		}
		return nil
	})
}

// StateEvents returns up to limit events of component ("" for all), newest
// first.
func (s *Store) StateEvents(ctx context.Context, component string, limit int) ([]StateEvent, error) {
	var out []StateEvent
	err := s.withDB(ctx, "state events", func(ctx context.Context, _, r *sql.DB) error {
		q := `SELECT component, state, previous, error, at FROM state_events ORDER BY id DESC LIMIT ?`
		args := []any{limitOr(limit)}
		if component != "" {
			q = `SELECT component, state, previous, error, at FROM state_events WHERE component = ? ORDER BY id DESC LIMIT ?`
			args = []any{component, limitOr(limit)}
		}
		rows, err := r.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var ev StateEvent
			var at sql.NullInt64
			if err := rows.Scan(&ev.Component, &ev.State, &ev.Previous, &ev.Error, &at); err != nil {
				return err
			}
			ev.At = fromNS(at)
			out = append(out, ev)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CreateWake stores a new wake with its components and returns its id
// (w.ID is ignored). A zero WokeAt is stored as now.
func (s *Store) CreateWake(ctx context.Context, w wire.Wake) (int64, error) {
	var id int64
	err := s.writeTx(ctx, "create wake", func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO wakes(detected_by, slept_at, woke_at, slept_seconds,
			duration_ms, ready, timed_out, failed, skipped, done, parallel_efficiency, waiting_for_user) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			w.DetectedBy, nsPtr(w.SleptAt), nsOrNow(w.WokeAt), w.SleptSeconds,
			w.Restore.DurationMS, w.Restore.Ready, w.Restore.TimedOut, w.Restore.Failed, w.Restore.Skipped, w.Done, w.Restore.ParallelEfficiency, w.Restore.WaitingForUser)
		if err != nil {
			return err
		}
		if id, err = res.LastInsertId(); err != nil {
			return err
		}
		return insertWakeComponents(ctx, tx, id, w.Components)
	})
	if err != nil {
		return 0, err
	}
	return id, nil
}

// FinishWake updates wake w.ID's restore summary, done flag and components
// (replacing the stored ones). It returns an error wrapping ErrNotFound when
// there is no such wake.
func (s *Store) FinishWake(ctx context.Context, w wire.Wake) error {
	return s.writeTx(ctx, fmt.Sprintf("finish wake %d", w.ID), func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE wakes SET duration_ms = ?, ready = ?, timed_out = ?, failed = ?,
			skipped = ?, done = ?, parallel_efficiency = ?, waiting_for_user = ? WHERE id = ?`,
			w.Restore.DurationMS, w.Restore.Ready, w.Restore.TimedOut, w.Restore.Failed, w.Restore.Skipped, w.Done, w.Restore.ParallelEfficiency, w.Restore.WaitingForUser, w.ID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM wake_components WHERE wake_id = ?`, w.ID); err != nil {
			return err
		}
		return insertWakeComponents(ctx, tx, w.ID, w.Components)
	})
}

func insertWakeComponents(ctx context.Context, tx *sql.Tx, id int64, cs []wire.WakeComponent) error {
	if len(cs) == 0 {
		return nil
	}
	st, err := tx.PrepareContext(ctx, `INSERT INTO wake_components(wake_id, name, state, duration_ms, waited_ms, error)
		VALUES(?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer st.Close()
	for _, c := range cs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := st.ExecContext(rowCtx(ctx), id, c.Name, c.State, c.DurationMS, c.WaitedMS, c.Error); err != nil {
			return err
		}
	}
	return nil
}

const wakeCols = `id, detected_by, slept_at, woke_at, slept_seconds, duration_ms, ready, timed_out, failed, skipped, done, parallel_efficiency, waiting_for_user`

func scanWake(sc interface{ Scan(...any) error }) (wire.Wake, error) {
	var w wire.Wake
	var slept, woke sql.NullInt64
	err := sc.Scan(&w.ID, &w.DetectedBy, &slept, &woke, &w.SleptSeconds, &w.Restore.DurationMS,
		&w.Restore.Ready, &w.Restore.TimedOut, &w.Restore.Failed, &w.Restore.Skipped, &w.Done, &w.Restore.ParallelEfficiency, &w.Restore.WaitingForUser)
	w.SleptAt, w.WokeAt = ptrNS(slept), fromNS(woke)
	w.Components = []wire.WakeComponent{}
	return w, err
}

// Wakes returns up to limit wakes, newest first, with their components in
// the order they were stored.
func (s *Store) Wakes(ctx context.Context, limit int) ([]wire.Wake, error) {
	return s.WakesBefore(ctx, limit, 0)
}

// WakesBefore is Wakes starting below wake id before (0: from the newest),
// for paging.
func (s *Store) WakesBefore(ctx context.Context, limit int, before int64) ([]wire.Wake, error) {
	if before <= 0 {
		before = math.MaxInt64
	}
	out := []wire.Wake{}
	err := s.readTx(ctx, "wakes", func(ctx context.Context, tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+wakeCols+` FROM wakes WHERE id < ? ORDER BY id DESC LIMIT ?`, before, limitOr(limit))
		if err != nil {
			return err
		}
		byID := map[int64]int{}
		for rows.Next() {
			w, err := scanWake(rows)
			if err != nil {
				rows.Close()
				return err
			}
			byID[w.ID] = len(out)
			out = append(out, w)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(out) == 0 {
			return err
		}
		oldest := out[len(out)-1].ID
		crows, err := tx.QueryContext(ctx, `SELECT wake_id, name, state, duration_ms, waited_ms, error
			FROM wake_components WHERE wake_id >= ? AND wake_id <= ? ORDER BY rowid`, oldest, out[0].ID)
		if err != nil {
			return err
		}
		defer crows.Close()
		for crows.Next() {
			var id int64
			var c wire.WakeComponent
			if err := crows.Scan(&id, &c.Name, &c.State, &c.DurationMS, &c.WaitedMS, &c.Error); err != nil {
				return err
			}
			if i, ok := byID[id]; ok {
				out[i].Components = append(out[i].Components, c)
			}
		}
		return crows.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Wake returns wake id with its components, or an error wrapping
// ErrNotFound.
func (s *Store) Wake(ctx context.Context, id int64) (wire.Wake, error) {
	var w wire.Wake
	err := s.readTx(ctx, fmt.Sprintf("wake %d", id), func(ctx context.Context, tx *sql.Tx) error {
		var err error
		w, err = scanWake(tx.QueryRowContext(ctx, `SELECT `+wakeCols+` FROM wakes WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT name, state, duration_ms, waited_ms, error
			FROM wake_components WHERE wake_id = ? ORDER BY rowid`, id)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c wire.WakeComponent
			if err := rows.Scan(&c.Name, &c.State, &c.DurationMS, &c.WaitedMS, &c.Error); err != nil {
				return err
			}
			w.Components = append(w.Components, c)
		}
		return rows.Err()
	})
	if err != nil {
		return wire.Wake{}, err
	}
	return w, nil
}

// Restore is one past restore of a component, for estimates and learned
// deadlines: how long it took to become ready, or, when it timed out
// (degraded at its deadline), how long it was given — it took at least
// that (a censored sample).
type Restore struct {
	Duration time.Duration
	TimedOut bool
}

// ComponentRestores returns component name's restores in its last n wakes
// where it became ready (ready or catching_up) or timed out (degraded),
// newest first. Restores that failed or waited for a dependency say
// nothing about how long it takes and are left out.
func (s *Store) ComponentRestores(ctx context.Context, name string, n int) ([]Restore, error) {
	var out []Restore
	err := s.withDB(ctx, "component restores "+name, func(ctx context.Context, _, r *sql.DB) error {
		rows, err := r.QueryContext(ctx, `SELECT duration_ms, state FROM wake_components
			WHERE name = ? AND state IN ('ready', 'catching_up', 'degraded') ORDER BY wake_id DESC LIMIT ?`, name, limitOr(n))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var ms int64
			var st string
			if err := rows.Scan(&ms, &st); err != nil {
				return err
			}
			out = append(out, Restore{Duration: time.Duration(ms) * time.Millisecond, TimedOut: st == "degraded"})
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// JobState returns the job's persisted last scheduled time and next run;
// zero times when never set.
func (s *Store) JobState(ctx context.Context, job string) (lastScheduled, nextRun time.Time, err error) {
	err = s.withDB(ctx, "job state "+job, func(ctx context.Context, _, r *sql.DB) error {
		var last, next sql.NullInt64
		err := r.QueryRowContext(ctx, `SELECT last_scheduled, next_run FROM job_state WHERE job = ?`, job).Scan(&last, &next)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		lastScheduled, nextRun = fromNS(last), fromNS(next)
		return err
	})
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	return lastScheduled, nextRun, nil
}

// SetJobState persists the job's last scheduled time and next run (zero
// times are stored as unset).
func (s *Store) SetJobState(ctx context.Context, job string, lastScheduled, nextRun time.Time) error {
	return s.writeTx(ctx, "set job state "+job, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO job_state(job, last_scheduled, next_run) VALUES(?, ?, ?)
			ON CONFLICT(job) DO UPDATE SET last_scheduled = excluded.last_scheduled, next_run = excluded.next_run`,
			job, ns(lastScheduled), ns(nextRun))
		return err
	})
}

// AddJobRun stores a run (r.ID is ignored) and returns its id.
func (s *Store) AddJobRun(ctx context.Context, r wire.JobRun) (int64, error) {
	var id int64
	err := s.writeTx(ctx, "add job run "+r.Job, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO job_runs(job, scheduled_at, started_at, ended_at, result, reason,
			exit_code, output, error, wake_id) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.Job, nsOrNow(r.ScheduledAt), nsPtr(r.StartedAt), nsPtr(r.EndedAt), r.Result, r.Reason,
			exitCode(r.ExitCode), r.Output, r.Error, wakeID(r.WakeID))
		if err != nil {
			return err
		}
		id, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return 0, err
	}
	return id, nil
}

// UpdateJobRun rewrites run r.ID (all fields but the job name); an error
// wraps ErrNotFound when there is no such run.
func (s *Store) UpdateJobRun(ctx context.Context, r wire.JobRun) error {
	return s.writeTx(ctx, fmt.Sprintf("update job run %d", r.ID), func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE job_runs SET scheduled_at = ?, started_at = ?, ended_at = ?,
			result = ?, reason = ?, exit_code = ?, output = ?, error = ?, wake_id = ? WHERE id = ?`,
			nsOrNow(r.ScheduledAt), nsPtr(r.StartedAt), nsPtr(r.EndedAt), r.Result, r.Reason,
			exitCode(r.ExitCode), r.Output, r.Error, wakeID(r.WakeID), r.ID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// JobRuns returns up to limit runs of job ("" for all jobs), newest first.
func (s *Store) JobRuns(ctx context.Context, job string, limit int) ([]wire.JobRun, error) {
	return s.JobRunsBefore(ctx, job, limit, 0)
}

// JobRunsBefore is JobRuns starting below run id before (0: from the
// newest), for paging.
func (s *Store) JobRunsBefore(ctx context.Context, job string, limit int, before int64) ([]wire.JobRun, error) {
	if before <= 0 {
		before = math.MaxInt64
	}
	out := []wire.JobRun{}
	err := s.withDB(ctx, "job runs "+job, func(ctx context.Context, _, r *sql.DB) error {
		const cols = `SELECT id, job, scheduled_at, started_at, ended_at, result, reason, exit_code, output, error, wake_id FROM job_runs`
		q, args := cols+` WHERE id < ? ORDER BY id DESC LIMIT ?`, []any{before, limitOr(limit)}
		if job != "" {
			q, args = cols+` WHERE job = ? AND id < ? ORDER BY id DESC LIMIT ?`, []any{job, before, limitOr(limit)}
		}
		rows, err := r.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var jr wire.JobRun
			var sched, started, ended, code, wake sql.NullInt64
			if err := rows.Scan(&jr.ID, &jr.Job, &sched, &started, &ended, &jr.Result, &jr.Reason,
				&code, &jr.Output, &jr.Error, &wake); err != nil {
				return err
			}
			jr.WakeID = wake.Int64
			jr.ScheduledAt, jr.StartedAt, jr.EndedAt = fromNS(sched), ptrNS(started), ptrNS(ended)
			if code.Valid {
				c := int(code.Int64)
				jr.ExitCode = &c
			}
			out = append(out, jr)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// wakeID stores 0 (no wake) as NULL.
func wakeID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// SetJobRunsWake sets the wake of the runs ids (the @sleep hooks' runs,
// once the wake after the sleep is recorded).
func (s *Store) SetJobRunsWake(ctx context.Context, wake int64, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	return s.writeTx(ctx, "set job runs' wake", func(ctx context.Context, tx *sql.Tx) error {
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `UPDATE job_runs SET wake_id = ? WHERE id = ?`, wake, id); err != nil {
				return err
			}
		}
		return nil
	})
}

func exitCode(c *int) any {
	if c == nil {
		return nil
	}
	return *c
}
