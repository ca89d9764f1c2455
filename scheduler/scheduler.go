package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/rouse-dev/rouse/internal/promreg"
	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/wire"
)

// DefaultStep is the longest single wait of the scheduler's loop. Go timers
// follow the monotonic clock, which neither a wall-clock set nor (on Linux
// and macOS) a suspend moves; the loop is told of both (ClockChanged,
// Resume) and re-arms at once. The step is only the safety net for a
// notification that never came: the loop reads the wall clock at least this
// often, and otherwise sleeps until the next due job.
const DefaultStep = time.Minute

// NoStep as Options.Step: no safety net, the loop sleeps until the next due
// job (or until Resume or ClockChanged). For a caller that forwards both.
const NoStep = time.Duration(-1)

// clockJump is how far the wall clock may move apart from the monotonic
// clock between two steps before the scheduler treats it as a wake (the
// machine slept, or the clock was set forward).
const clockJump = 5 * time.Second

// storeWriteTimeout bounds the store write that closes a run, which is made
// even while the scheduler stops.
const storeWriteTimeout = 5 * time.Second

// Store is the storage the scheduler writes through; agent/store
// satisfies it.
type Store interface {
	// JobState returns the job's persisted state: every scheduled time up
	// to lastScheduled has been dispatched (or deliberately skipped), and
	// nextRun is its next due time. Both are zero when never set.
	JobState(ctx context.Context, job string) (lastScheduled, nextRun time.Time, err error)
	// SetJobState persists them.
	SetJobState(ctx context.Context, job string, lastScheduled, nextRun time.Time) error
	// AddJobRun stores a new run and returns its ID.
	AddJobRun(ctx context.Context, r wire.JobRun) (int64, error)
	// UpdateJobRun rewrites the run with r.ID.
	UpdateJobRun(ctx context.Context, r wire.JobRun) error
	// JobRuns returns the job's last limit runs, newest first.
	JobRuns(ctx context.Context, job string, limit int) ([]wire.JobRun, error)
	// JobRunsBefore is JobRuns below run id before (0: from the newest).
	JobRunsBefore(ctx context.Context, job string, limit int, before int64) ([]wire.JobRun, error)
}

// Options configure a Scheduler.
type Options struct {
	// Store persists job state and runs; required.
	Store Store
	// Logger; nil uses the Host's logger given to Run.
	Logger *slog.Logger
	// Metrics is where the scheduler's metrics go; nil: none.
	Metrics *promreg.Registry
	// WaitOnline blocks until the network is up or ctx is done; scheduled
	// runs of jobs with NeedsNetwork call it first. nil: always online.
	WaitOnline func(ctx context.Context) error
	// Now reads the wall clock; nil is time.Now. Only its wall reading is
	// used (the monotonic part is stripped).
	Now func() time.Time
	// Step is the longest single wait (default DefaultStep; NoStep: none).
	Step time.Duration
}

// jobState is one job and what the scheduler knows of it. Guarded by
// Scheduler.mu.
type jobState struct {
	job   Job
	sched cron.Schedule
	loc   *time.Location

	loaded    bool      // persisted state read in this Run
	armed     bool      // watermark and next are computed
	watermark time.Time // every scheduled time up to here is accounted for
	next      time.Time // next due time; zero when the schedule never fires again
	running   int
	lastRun   *wire.JobRun
	lastSeq   uint64 // which begin() lastRun came from
}

// Scheduler runs cron jobs that survive sleep. It is one component:
// a trackers.Component, Resumer and Pauser. Its methods are safe for
// concurrent use.
type Scheduler struct {
	store      Store
	metrics    *metrics
	waitOnline func(ctx context.Context) error
	nowFn      func() time.Time
	step       time.Duration
	ownLogger  bool
	log        atomic.Pointer[slog.Logger]
	seq        atomic.Uint64

	kick chan struct{} // 1-slot: something changed, step now

	mu            sync.Mutex
	order         []string
	jobs          map[string]*jobState
	active        bool
	runCtx        context.Context
	paused        bool
	resumePending bool
	wg            sync.WaitGroup // runs in flight
}

var (
	_ trackers.Component = (*Scheduler)(nil)
	_ trackers.Resumer   = (*Scheduler)(nil)
	_ trackers.Pauser    = (*Scheduler)(nil)
)

// New validates jobs and builds a Scheduler. Nothing runs before Run.
func New(jobs []Job, o Options) (*Scheduler, error) {
	if o.Store == nil {
		return nil, errors.New("scheduler: no store")
	}
	m, err := newMetrics(o.Metrics)
	if err != nil {
		return nil, fmt.Errorf("scheduler: register metrics: %w", err)
	}
	s := &Scheduler{
		store:      o.Store,
		metrics:    m,
		waitOnline: o.WaitOnline,
		nowFn:      o.Now,
		step:       o.Step,
		kick:       make(chan struct{}, 1),
		jobs:       map[string]*jobState{},
	}
	if s.nowFn == nil {
		s.nowFn = time.Now
	}
	switch {
	case s.step == NoStep:
		s.step = math.MaxInt64
	case s.step <= 0:
		s.step = DefaultStep
	}
	if o.Logger != nil {
		s.ownLogger = true
		s.log.Store(o.Logger)
	} else {
		s.log.Store(slog.Default().With("component", "scheduler"))
	}
	if err := s.SetJobs(jobs); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Scheduler) now() time.Time { return s.nowFn().Round(0) }

func (s *Scheduler) logger() *slog.Logger { return s.log.Load() }

func (s *Scheduler) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// SetJobs replaces the job set (a config reload). A job keeps its state
// (persisted position, last run, runs in flight) when its name is
// unchanged; when its schedule or zone changed it is re-armed from now, so
// the new schedule does not catch up on times before the reload. Runs of
// removed jobs go on to their end.
func (s *Scheduler) SetJobs(jobs []Job) error {
	fresh := make(map[string]*jobState, len(jobs))
	order := make([]string, 0, len(jobs))
	for _, j := range jobs {
		if err := j.Validate(); err != nil {
			return err
		}
		if _, dup := fresh[j.Name]; dup {
			return &JobError{Job: j.Name, Field: "name", Err: errors.New("duplicate job name")}
		}
		j = withDefaults(j)
		var sched cron.Schedule
		loc := j.Location
		if loc == nil {
			loc = time.Local
		}
		if !IsHook(j.Schedule) { // a hook has no clock: RunHooks runs it
			var err error
			if sched, loc, err = ParseIn(j.Schedule, j.Location); err != nil {
				return &JobError{Job: j.Name, Field: "schedule", Err: err}
			}
		}
		fresh[j.Name] = &jobState{job: j, sched: sched, loc: loc}
		order = append(order, j.Name)
	}
	now := s.now()
	s.mu.Lock()
	for name, nj := range fresh {
		old, ok := s.jobs[name]
		if !ok {
			continue
		}
		changed := old.job.Schedule != nj.job.Schedule || old.loc.String() != nj.loc.String()
		old.job, old.sched, old.loc = nj.job, nj.sched, nj.loc
		if changed && old.armed {
			if old.watermark.Before(now) {
				old.watermark = now
			}
			old.armed = false
		}
		fresh[name] = old
	}
	s.jobs, s.order = fresh, order
	s.mu.Unlock()
	s.poke()
	return nil
}

// Run loads each job's persisted state, applies the misfire policies (a
// restart of the agent is treated like a wake), reports ready, and runs
// jobs until ctx is done. Before returning it cancels the runs in flight
// (a command's process group is killed) and waits for them.
func (s *Scheduler) Run(ctx context.Context, h trackers.Host) error {
	s.mu.Lock()
	if s.active {
		s.mu.Unlock()
		return errors.New("scheduler: Run called while already running")
	}
	runCtx, cancel := context.WithCancel(ctx)
	s.active, s.runCtx = true, runCtx
	s.paused, s.resumePending = false, false
	for _, js := range s.jobs {
		js.loaded, js.armed = false, false
	}
	s.mu.Unlock()
	if !s.ownLogger && h != nil && h.Logger() != nil {
		s.log.Store(h.Logger())
	}
	defer func() {
		s.mu.Lock()
		s.active, s.runCtx = false, nil
		s.mu.Unlock()
		cancel()
		s.wg.Wait()
	}()

	if err := s.load(runCtx); err != nil {
		return err
	}
	lastWall, lastMono := s.now(), time.Now()
	s.evaluate(runCtx, lastWall, true)
	s.report(h)
	s.logger().Info("scheduler ready", "jobs", len(s.Jobs(runCtx)))

	timer := time.NewTimer(s.step)
	defer timer.Stop()
	for {
		s.mu.Lock()
		paused := s.paused
		s.mu.Unlock()
		var tick <-chan time.Time
		if !paused {
			timer.Reset(s.wait(s.now()))
			tick = timer.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
		case <-s.kick:
		}

		s.mu.Lock()
		paused, resume := s.paused, s.resumePending
		s.resumePending = false
		s.mu.Unlock()
		now, mono := s.now(), time.Now()
		wallDelta, monoDelta := now.Sub(lastWall), mono.Sub(lastMono)
		lastWall, lastMono = now, mono
		if paused {
			continue
		}
		wake := resume
		switch {
		case wallDelta-monoDelta > clockJump:
			s.logger().Info("wall clock jumped forward", "by", (wallDelta - monoDelta).Round(time.Second))
			wake = true
		case monoDelta-wallDelta > clockJump:
			s.logger().Info("wall clock went back", "by", (monoDelta - wallDelta).Round(time.Second))
		}
		if err := s.load(runCtx); err != nil {
			s.logger().Warn("load job state", "err", err)
		}
		s.evaluate(runCtx, now, wake)
		if resume {
			s.report(h)
		}
	}
}

func (s *Scheduler) report(h trackers.Host) {
	if h != nil {
		h.Report(trackers.StateReady, nil)
	}
}

// Resume re-reads the wall clock, applies each job's misfire policy to
// what it missed while the machine slept, re-arms, and reports ready. It
// returns at once; the loop does the work.
func (s *Scheduler) Resume(ctx context.Context) {
	s.mu.Lock()
	s.paused, s.resumePending = false, true
	s.mu.Unlock()
	s.poke()
}

// ClockChanged tells the scheduler the wall clock was set (the agent
// forwards platform/clockwatch's notifications). It returns at once; the
// loop steps now, re-reads the wall clock and treats what it finds exactly
// as it treats a jump found on its own: moved forward by more than 5 s
// beyond the monotonic clock is a wake (missed times follow the misfire
// policies, catch-up runs are jittered), moved back re-arms every job for
// its later wall-clock time, and times at or before a job's watermark never
// run again. While paused it does nothing until Resume.
func (s *Scheduler) ClockChanged() { s.poke() }

// Pause stops arming jobs before the machine sleeps; runs in flight go on.
func (s *Scheduler) Pause(ctx context.Context) {
	s.mu.Lock()
	s.paused = true
	s.mu.Unlock()
	s.poke()
}

// wait is how long the loop sleeps: until the earliest due time, at most
// one step.
func (s *Scheduler) wait(now time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.step
	for _, js := range s.jobs {
		if !js.loaded {
			continue
		}
		if !js.armed {
			return 0
		}
		if js.next.IsZero() {
			continue
		}
		if d := js.next.Sub(now); d < w {
			w = max(d, 0)
		}
	}
	return w
}

// load reads the persisted state of every job not loaded yet in this Run.
func (s *Scheduler) load(ctx context.Context) error {
	s.mu.Lock()
	var names []string
	for _, name := range s.order {
		// A hook is never loaded: the clock loop leaves it alone.
		if js := s.jobs[name]; !js.loaded && !IsHook(js.job.Schedule) {
			names = append(names, name)
		}
	}
	s.mu.Unlock()
	var errs []error
	for _, name := range names {
		last, next, err := s.store.JobState(ctx, name)
		if err != nil {
			errs = append(errs, fmt.Errorf("scheduler: load state of job %q: %w", name, err))
			continue
		}
		var lastRun *wire.JobRun
		if runs, err := s.store.JobRuns(ctx, name, 1); err == nil && len(runs) > 0 {
			lastRun = &runs[0]
		}
		now := s.now()
		s.mu.Lock()
		if js, ok := s.jobs[name]; ok && !js.loaded {
			switch {
			case !last.IsZero():
				js.watermark = last
			case !next.IsZero():
				js.watermark = next.Add(-time.Nanosecond)
			case js.watermark.IsZero():
				js.watermark = now // never run: start counting from now
			}
			if lastRun != nil && js.lastRun == nil {
				js.lastRun = lastRun
			}
			js.loaded, js.armed = true, false
		}
		s.mu.Unlock()
	}
	return errors.Join(errs...)
}

// evaluate decides, for every loaded job whose due time has come (or that
// is not armed), what to run, persists the new position, and dispatches.
// wake marks a wake or restart: catch-up runs are then jittered and wait
// for the network.
func (s *Scheduler) evaluate(ctx context.Context, now time.Time, wake bool) {
	type work struct {
		js   *jobState
		job  Job
		d    decision
		save bool
	}
	var todo []work
	s.mu.Lock()
	for _, name := range s.order {
		js := s.jobs[name]
		if !js.loaded {
			continue
		}
		if js.armed && (js.next.IsZero() || now.Before(js.next)) {
			continue
		}
		d := decide(js.sched, js.loc, js.job, js.watermark, now)
		save := !js.armed || !d.Watermark.Equal(js.watermark) || !d.Next.Equal(js.next)
		js.watermark, js.next, js.armed = d.Watermark, d.Next, true
		todo = append(todo, work{js: js, job: js.job, d: d, save: save})
	}
	s.mu.Unlock()

	for _, w := range todo {
		name := w.job.Name
		if w.save {
			if err := s.store.SetJobState(ctx, name, w.d.Watermark, w.d.Next); err != nil && ctx.Err() == nil {
				s.logger().Warn("persist job state", "job", name, "err", err)
			}
		}
		if w.d.Missed > 0 {
			s.metrics.misfire(name, w.job.Misfire, w.d.Missed)
			s.logger().Info("job misfired", "job", name, "missed", w.d.Missed, "policy", w.job.Misfire,
				"runs", len(w.d.Runs), "wake", wake)
		}
		for _, sk := range w.d.Skips {
			s.recordSkip(ctx, w.js, w.job, sk)
		}
		if len(w.d.Runs) == 0 {
			continue
		}
		var delay time.Duration
		if wake && w.job.Jitter > 0 && w.d.Runs[0].CatchUp {
			delay = rand.N(w.job.Jitter)
		}
		s.launch(ctx, w.js, w.job, w.d.Runs, delay)
	}
}

// launch starts runs (one after the other) in a goroutine, or records them
// as skipped when the job is at MaxInstances.
func (s *Scheduler) launch(ctx context.Context, js *jobState, job Job, runs []plannedRun, delay time.Duration) {
	s.mu.Lock()
	if js.running >= job.MaxInstances {
		s.mu.Unlock()
		for _, r := range runs {
			s.recordSkip(ctx, js, job, overlapSkip(r.At, job))
		}
		return
	}
	js.running++
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer s.done(js)
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		if job.NeedsNetwork && s.waitOnline != nil {
			if err := s.waitOnline(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				s.logger().Warn("wait for network", "job", job.Name, "err", err)
			}
		}
		for _, r := range runs {
			if ctx.Err() != nil {
				return
			}
			rec, seq := s.begin(ctx, js, job, r.At, r.Reason, 0)
			s.finish(ctx, js, job, rec, seq)
		}
	}()
}

func (s *Scheduler) done(js *jobState) {
	s.mu.Lock()
	js.running--
	s.mu.Unlock()
}

// begin records the start of a run.
func (s *Scheduler) begin(ctx context.Context, js *jobState, job Job, at time.Time, reason string, wake int64) (wire.JobRun, uint64) {
	start := s.now()
	rec := wire.JobRun{Job: job.Name, ScheduledAt: at, StartedAt: &start, Result: ResultRunning, Reason: reason, WakeID: wake}
	id, err := s.store.AddJobRun(ctx, rec)
	if err != nil {
		s.logger().Warn("record job run", "job", job.Name, "err", err)
	}
	rec.ID = id
	seq := s.setLast(js, rec)
	if reason != ReasonManual {
		s.metrics.late(job.Name, start.Sub(at).Seconds())
	}
	s.logger().Info("job started", "job", job.Name, "run", rec.ID, "scheduled", at, "reason", reason,
		"late", start.Sub(at).Round(time.Millisecond))
	return rec, seq
}

// finish executes the run and records how it ended.
func (s *Scheduler) finish(ctx context.Context, js *jobState, job Job, rec wire.JobRun, seq uint64) {
	o := execute(ctx, job)
	end := s.now()
	rec.EndedAt = &end
	rec.Result, rec.ExitCode, rec.Output, rec.Error = o.Result, o.ExitCode, o.Output, o.Err
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeWriteTimeout)
	defer cancel()
	var err error
	if rec.ID != 0 {
		err = s.store.UpdateJobRun(wctx, rec)
	} else {
		rec.ID, err = s.store.AddJobRun(wctx, rec)
	}
	if err != nil {
		s.logger().Warn("record job run", "job", job.Name, "err", err)
	}
	s.mu.Lock()
	if js.lastSeq == seq {
		r := rec
		js.lastRun = &r
	}
	s.mu.Unlock()
	s.metrics.run(job.Name, rec.Result)
	lvl := slog.LevelInfo
	if rec.Result != ResultOK {
		lvl = slog.LevelWarn
	}
	s.logger().Log(ctx, lvl, "job ended", "job", job.Name, "run", rec.ID, "result", rec.Result,
		"took", end.Sub(*rec.StartedAt).Round(time.Millisecond), "err", rec.Error)
}

// overlapSkip is the record of a run at at skipped because job's
// max_instances runs were still going on.
func overlapSkip(at time.Time, job Job) skipRecord {
	return skipRecord{At: at, Reason: ReasonOverlap,
		Error: fmt.Sprintf("%d run(s) still going on (max_instances %d)", job.MaxInstances, job.MaxInstances)}
}

// recordSkip stores a skipped run.
func (s *Scheduler) recordSkip(ctx context.Context, js *jobState, job Job, sk skipRecord) wire.JobRun {
	now := s.now()
	rec := wire.JobRun{Job: job.Name, ScheduledAt: sk.At, EndedAt: &now, Result: ResultSkipped, Reason: sk.Reason, Error: sk.Error}
	id, err := s.store.AddJobRun(ctx, rec)
	if err != nil {
		s.logger().Warn("record skipped job run", "job", job.Name, "err", err)
	}
	rec.ID = id
	s.setLast(js, rec)
	s.metrics.run(job.Name, ResultSkipped)
	s.logger().Info("job run skipped", "job", job.Name, "scheduled", sk.At, "reason", sk.Reason, "detail", sk.Error)
	return rec
}

func (s *Scheduler) setLast(js *jobState, rec wire.JobRun) uint64 {
	seq := s.seq.Add(1)
	s.mu.Lock()
	js.lastRun, js.lastSeq = &rec, seq
	s.mu.Unlock()
	return seq
}

// RunNow starts a run of the job now (reason "manual"; it does not wait
// for the network) and returns it with result "running", or, when the job
// is at MaxInstances, a run recorded with result "skipped", reason
// "overlap". ErrUnknownJob for a name it does not have, ErrNotRunning
// while Run is not going on.
func (s *Scheduler) RunNow(ctx context.Context, name string) (wire.JobRun, error) {
	s.mu.Lock()
	js, ok := s.jobs[name]
	if !ok {
		s.mu.Unlock()
		return wire.JobRun{}, fmt.Errorf("%w: %q", ErrUnknownJob, name)
	}
	if !s.active {
		s.mu.Unlock()
		return wire.JobRun{}, ErrNotRunning
	}
	runCtx, job := s.runCtx, js.job
	if js.running >= job.MaxInstances {
		s.mu.Unlock()
		return s.recordSkip(ctx, js, job, overlapSkip(s.now(), job)), nil
	}
	js.running++
	s.wg.Add(1)
	s.mu.Unlock()
	rec, seq := s.begin(runCtx, js, job, s.now(), ReasonManual, 0)
	go func() {
		defer s.wg.Done()
		defer s.done(js)
		s.finish(runCtx, js, job, rec, seq)
	}()
	return rec, nil
}

// RunHooks runs the jobs whose schedule is hook (ScheduleWake or
// ScheduleSleep) one after the other, in config order, under ctx (an
// @sleep hook's is the sleep budget: a run still going at its end is
// killed) and each job's timeout, and records each run with reason "wake"
// or "sleep" and wake (0: not known yet). An @wake job with NeedsNetwork
// waits for the network first. A job still running from the last time is
// recorded as skipped (overlap). It returns the runs' ids.
func (s *Scheduler) RunHooks(ctx context.Context, hook string, wake int64) []int64 {
	reason := ReasonWake
	if hook == ScheduleSleep {
		reason = ReasonSleep
	}
	type hookJob struct {
		js  *jobState
		job Job
	}
	s.mu.Lock()
	var todo []hookJob
	for _, name := range s.order {
		if js := s.jobs[name]; js.job.Schedule == hook {
			todo = append(todo, hookJob{js, js.job})
		}
	}
	s.mu.Unlock()
	var ids []int64
	for _, h := range todo {
		if ctx.Err() != nil {
			break
		}
		s.mu.Lock()
		busy := h.js.running >= h.job.MaxInstances
		if !busy {
			h.js.running++
		}
		s.mu.Unlock()
		if busy {
			rec := s.recordSkip(ctx, h.js, h.job, overlapSkip(s.now(), h.job))
			ids = append(ids, rec.ID)
			continue
		}
		if hook == ScheduleWake && h.job.NeedsNetwork && s.waitOnline != nil {
			if err := s.waitOnline(ctx); err != nil && ctx.Err() == nil {
				s.logger().Warn("wait for network", "job", h.job.Name, "err", err)
			}
		}
		rec, seq := s.begin(ctx, h.js, h.job, s.now(), reason, wake)
		s.finish(ctx, h.js, h.job, rec, seq)
		s.done(h.js)
		if rec.ID != 0 {
			ids = append(ids, rec.ID)
		}
	}
	return ids
}

// Jobs lists the jobs in config order with their next run, last run and
// runs in flight.
func (s *Scheduler) Jobs(ctx context.Context) []wire.Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]wire.Job, 0, len(s.order))
	for _, name := range s.order {
		js := s.jobs[name]
		j := wire.Job{
			Name:     name,
			Schedule: js.job.Schedule,
			Timezone: js.loc.String(),
			Misfire:  js.job.Misfire,
			Running:  js.running,
			BuiltIn:  js.job.BuiltIn,
		}
		if js.armed && !js.next.IsZero() {
			n := js.next
			j.NextRun = &n
		}
		if js.lastRun != nil {
			r := *js.lastRun
			j.LastRun = &r
		}
		out = append(out, j)
	}
	return out
}

// Detail is the scheduler's part of /api/v1/health: every job with its next
// run and last result (the agent shows it as the component's detail).
func (s *Scheduler) Detail() any {
	return struct {
		Jobs []wire.Job `json:"jobs"`
	}{s.Jobs(context.Background())}
}

// Runs lists the job's last limit runs, newest first (ErrUnknownJob).
func (s *Scheduler) Runs(ctx context.Context, name string, limit int) ([]wire.JobRun, error) {
	return s.RunsBefore(ctx, name, limit, 0)
}

// RunsBefore is Runs below run id before (0: from the newest), for paging.
func (s *Scheduler) RunsBefore(ctx context.Context, name string, limit int, before int64) ([]wire.JobRun, error) {
	s.mu.Lock()
	_, ok := s.jobs[name]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownJob, name)
	}
	return s.store.JobRunsBefore(ctx, name, limit, before)
}
