package scheduler

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Maintainer is what the built-in maintenance job asks of the store;
// agent/store satisfies it.
type Maintainer interface {
	// Checkpoint checkpoints the WAL into the database file.
	Checkpoint(ctx context.Context) error
	// Prune deletes history (job runs, wakes, events, tracker items past
	// their use) recorded before the given time and says how many rows went.
	Prune(ctx context.Context, before time.Time) (removed int64, err error)
	// QuickCheck runs PRAGMA quick_check and returns an error describing
	// what it found unless the answer is "ok".
	QuickCheck(ctx context.Context) error
}

// MaintenanceOptions configure MaintenanceJob; zero fields take the
// defaults named on each.
type MaintenanceOptions struct {
	Name            string           // default "maintenance"
	Schedule        string           // default "30 3 * * *" (missed runs coalesce after a wake)
	KeepFor         time.Duration    // history older than this is pruned; default 90 days
	QuickCheckEvery time.Duration    // default 7 days
	Timeout         time.Duration    // default 10 min
	Now             func() time.Time // default time.Now
}

// Maintenance defaults.
const (
	DefaultMaintenanceName     = "maintenance"
	DefaultMaintenanceSchedule = "30 3 * * *"
	DefaultKeepFor             = 90 * 24 * time.Hour
	DefaultQuickCheckEvery     = 7 * 24 * time.Hour
)

// MaintenanceJob builds the built-in maintenance job: each run checkpoints
// the WAL and prunes history older than KeepFor; once every
// QuickCheckEvery it also runs PRAGMA quick_check. The time of the last
// quick check is kept in memory, so the first run after the agent starts
// always checks. A failing step does not stop the others; the run fails
// with all their errors. The job is reported like any job.
func MaintenanceJob(m Maintainer, o MaintenanceOptions) Job {
	if o.Name == "" {
		o.Name = DefaultMaintenanceName
	}
	if o.Schedule == "" {
		o.Schedule = DefaultMaintenanceSchedule
	}
	if o.KeepFor <= 0 {
		o.KeepFor = DefaultKeepFor
	}
	if o.QuickCheckEvery <= 0 {
		o.QuickCheckEvery = DefaultQuickCheckEvery
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	var (
		mu        sync.Mutex
		lastCheck time.Time
	)
	run := func(ctx context.Context) (string, error) {
		var out []string
		var errs []error
		if err := m.Checkpoint(ctx); err != nil {
			errs = append(errs, fmt.Errorf("checkpoint: %w", err))
		} else {
			out = append(out, "checkpoint ok")
		}
		now := o.Now().Round(0)
		before := now.Add(-o.KeepFor)
		if n, err := m.Prune(ctx, before); err != nil {
			errs = append(errs, fmt.Errorf("prune: %w", err))
		} else {
			out = append(out, fmt.Sprintf("pruned %d rows older than %s", n, before.Format(time.RFC3339)))
		}
		mu.Lock()
		due := lastCheck.IsZero() || now.Sub(lastCheck) >= o.QuickCheckEvery || now.Before(lastCheck)
		mu.Unlock()
		if due {
			if err := m.QuickCheck(ctx); err != nil {
				errs = append(errs, fmt.Errorf("quick_check: %w", err))
			} else {
				out = append(out, "quick_check ok")
				mu.Lock()
				lastCheck = now
				mu.Unlock()
			}
		} else {
			out = append(out, "quick_check not due")
		}
		return strings.Join(out, "\n"), errors.Join(errs...)
	}
	return Job{
		Name:     o.Name,
		Schedule: o.Schedule,
		Func:     run,
		Timeout:  o.Timeout,
		Misfire:  MisfireCoalesce,
		Jitter:   30 * time.Second,
		BuiltIn:  true,
	}
}
