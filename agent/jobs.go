package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/rouse-dev/rouse/agent/config"
	"github.com/rouse-dev/rouse/scheduler"
)

// Built-in job names (reserved).
const (
	jobMaintenance = config.MaintenanceJob
	jobQuickCheck  = config.QuickCheckJob
)

// newScheduler builds the scheduler component unless config disables it.
func (a *Agent) newScheduler(cfg *config.Config) error {
	if cfg.Scheduler.Enabled != nil && !*cfg.Scheduler.Enabled {
		return nil
	}
	o := scheduler.Options{Store: a.store, Logger: a.log.With("component", "scheduler"), Metrics: a.metrics.reg}
	if a.net != nil {
		o.WaitOnline = a.net.WaitOnline
	}
	if a.opts.Power {
		// Resume and the wall-clock watch tell the scheduler of everything
		// that moves the wall clock: it sleeps until its next due job.
		o.Step = scheduler.NoStep
	}
	s, err := scheduler.New(a.jobs(cfg), o)
	if err != nil {
		return fmt.Errorf("%s: scheduler: %w", cfg.Source, err)
	}
	a.sched = s
	return nil
}

// jobs maps the config's jobs to the scheduler's, with the built-in
// maintenance jobs first.
func (a *Agent) jobs(cfg *config.Config) []scheduler.Job {
	retention := cfg.Maintenance.Retention
	var jobs []scheduler.Job
	builtIn := []scheduler.Job{{
		Name: jobMaintenance, Schedule: cfg.Maintenance.Schedule, BuiltIn: true,
		Misfire: "coalesce", Grace: 24 * time.Hour, MaxInstances: 1, Timeout: 10 * time.Minute,
		Func: func(ctx context.Context) (string, error) {
			if err := a.store.Checkpoint(ctx, "TRUNCATE"); err != nil {
				return "", fmt.Errorf("checkpoint: %w", err)
			}
			n, err := a.store.Prune(ctx, time.Now().Add(-retention))
			if err != nil {
				return "", fmt.Errorf("prune: %w", err)
			}
			return fmt.Sprintf("checkpointed the WAL; pruned %d history rows older than %s", n, retention), nil
		},
	}, {
		Name: jobQuickCheck, Schedule: cfg.Maintenance.QuickCheck, BuiltIn: true,
		Misfire: "coalesce", Grace: 7 * 24 * time.Hour, MaxInstances: 1, Timeout: 10 * time.Minute,
		Func: func(ctx context.Context) (string, error) {
			t0 := time.Now()
			if err := a.store.QuickCheck(ctx); err != nil {
				return "", err
			}
			return fmt.Sprintf("quick_check ok in %s", time.Since(t0).Round(time.Millisecond)), nil
		},
	}}
	for _, j := range builtIn {
		if j.Schedule != "off" { // "off" turns a built-in job off
			jobs = append(jobs, j)
		}
	}
	for i := range cfg.Jobs {
		jobs = append(jobs, cfg.Jobs[i].SchedulerJob())
	}
	return jobs
}
