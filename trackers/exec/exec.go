// Package exec owns the exec tracker kind: a component that supervises one
// long-running command (an SSH tunnel, a sync daemon, a VPN client).
//
// The command is an argv run without a shell, in its own process group, with
// an explicit environment: the allowlisted variables of the agent's own
// environment (EnvAllowlist) plus the component's env, never anything else,
// so the agent's API token never reaches a child. stdout and stderr are read
// line by line: every line goes to a ring of the last output_lines lines
// (Output, the API's output), and at most about 20 lines a second go to the
// component's log (component= attached, so under systemd they land in the
// journal), with a count of the lines left out. On Linux a running component
// costs one goroutine, its Run: every child's output is read by one shared
// poller goroutine (an epoll set waited on through Go's netpoller) and
// every child's exit is seen by one shared goroutine woken by SIGCHLD (see
// reaper_linux.go); elsewhere each pipe and each exit has a goroutine.
//
// Run starts the process and reports StateStarting, then runs the readiness
// check (TCP connect, HTTP 2xx or a command exiting 0) until it passes and
// reports StateReady, paced by probe.Pace: a tcp or http check first after
// 10ms, a command after ready_interval/4, each pause then doubling up to
// ready_interval; with no check the process is ready
// once it has run ready_after. When the process exits, Run reports
// StateStarting with the exit status and the last output line, and starts it
// again after a capped exponential backoff with full jitter
// (internal/backoff): the n-th delay is uniform in [0, min(max,
// initial·2ⁿ)]. The backoff
// starts again from initial after the process stayed up one minute, and on
// every wake. A process that cannot be started at all (program not found, no
// such directory) makes Run return the error, so the agent marks the
// component failed and its heartbeat retries.
//
// Nothing a run starts outlives it. On Linux each run's child starts in a
// jail (see contain_linux.go): a cgroup v2 group of its own when the agent
// has a delegated subtree (the installed units say Delegate=yes), otherwise
// the agent is a child subreaper and tracks every descendant of the run,
// daemonized or not (setsid, double fork), through ROUSE_EXEC_ID, a random
// token of the run that its processes inherit (the one variable added to the
// allowlisted environment). Stopping (ctx cancelled, a restart on wake, a
// config change, agent shutdown) sends SIGTERM to the child's process group
// and to every process of the jail, SIGKILL to all of them after
// stop_timeout, and returns once none is left; a child that exits by itself
// takes what it started along the same way. Orphans the agent adopts as a
// subreaper are reaped, without taking an exit status that os/exec waits
// for. On other Unix systems a run is its process group; on Windows only the
// child itself is killed.
//
// The working directory is dir (~ expanded) or, by default, the home
// directory when it exists and / otherwise. An absolute dir that does not
// exist fails Validate (so config check names it with file:line); at start,
// any dir that does not exist is an error naming the directory, never the
// program.
//
// On Linux the child also gets SIGKILL if the agent dies (Pdeathsig), but
// that reaches only the child: what it started stays and would outlive an
// agent killed with SIGKILL (with a cgroup, the service manager removes it
// with the unit). So on Linux, when Deps.StateDir is set, Run records
// the running child's group in a small file there (exec-group.json: the
// leader's pid and pgid, its start time from /proc/<pid>/stat and the boot
// id, and the run's ROUSE_EXEC_ID when there is one; 0600 in a 0700
// directory, the JSON padded with spaces to 512 bytes and written in place
// in one write, so a kill -9 leaves the old record or the new one; a file
// the agent would not trust is replaced through a temporary file and a
// rename) and blanks it (all spaces: no record) once the group is stopped
// and reaped. The next Run of the component, in a new agent
// process, kills what is left of a recorded group before it starts its
// child. It kills only the recorded group: after a reboot, or when the
// number now belongs to a process with another start time, or when no live
// process is left in the group, it only drops the record; with the leader
// gone, a group holding a process older than the leader is not touched
// either. With a token it also kills what left the group but carries the
// token: the agent's user's processes of the same boot, started no earlier
// than the leader. A record is trusted only when the agent's user (or root) owns it
// and its directory (internal/perm.Owned) and neither is writable by group
// or others: a record planted by someone else is dropped, never acted on. On other systems nothing is
// recorded and nothing is swept.
//
// With oneshot: true the command is a step (a migration, a mount,
// ssh-add): the component reports StateStarting while it runs, StateReady
// once it exited 0 — and stays ready, so dependents start then, as with
// compose's service_completed_successfully — and Run returns the exit error
// (status and last output line) when it exits otherwise, so the agent marks
// it failed and retries it. What the step left running is stopped when it
// exits. On a wake it runs again when restart_on_wake is set (after the run
// in progress, if any: a wake never kills a step half-way), and otherwise
// is reported ready again at once.
//
// Resume (after a wake) restarts the process when restart_on_wake is set;
// otherwise it re-runs the readiness check, since the process usually
// survives a sleep, and reports StateReady again once it passes (with no
// check: once the process has run ready_after since the wake).
package exec

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/rouse-dev/rouse/internal/backoff"
	"github.com/rouse-dev/rouse/internal/promreg"
	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/trackers/probe"
)

// Kind is the exec tracker kind.
var Kind = trackers.KindOf("exec", false, DefaultOptions, New)

var (
	_ trackers.Component     = (*Tracker)(nil)
	_ trackers.Resumer       = (*Tracker)(nil)
	_ trackers.Checker       = (*Tracker)(nil)
	_ trackers.HealthOptions = (*Options)(nil)
)

// Tracker supervises one command. Build it with New.
type Tracker struct {
	opts     Options
	name     string
	log      *slog.Logger
	stateDir string // where the running group is recorded; "" for nowhere
	out      *ring
	lim      *limiter
	resume   chan struct{} // 1-slot: wakes merge
	exits    *promreg.Counter

	// Seams: the real process and checks, or fakes in tests.
	start      func(log *slog.Logger) (process, error)
	newJail    func(name string, log *slog.Logger) (*jail, error)
	check      checker // nil: ready after ReadyAfter
	closeCheck func()
	randN      func(n int64) int64 // uniform in [0, n)

	mu    sync.Mutex
	pid   int
	token string // the latest run's ROUSE_EXEC_ID, "" when none
	jail  *jail  // the latest run's jail (its checks run there)
}

// New builds an exec component from validated options.
func New(o Options, deps trackers.Deps) (*Tracker, error) {
	if err := trackers.JoinFieldErrors(o.Validate()); err != nil {
		return nil, fmt.Errorf("exec %s: %w", deps.Name, err)
	}
	log := deps.Logger
	if log == nil {
		log = slog.Default().With("component", deps.Name)
	}
	t := &Tracker{
		opts:   o,
		name:   deps.Name,
		log:    log,
		out:    newRing(o.OutputLines),
		lim:    &limiter{rate: logRate},
		resume: make(chan struct{}, 1),
		exits:  exitsCounter(deps.Metrics, deps.Name, log),
		randN:  rand.Int64N,

		stateDir: deps.StateDir,
	}
	t.check, t.closeCheck = newChecker(&t.opts, t.runJail)
	t.start = t.startOS
	t.newJail = newJail
	return t, nil
}

func (t *Tracker) startOS(log *slog.Logger) (process, error) {
	sp, err := resolve(t.opts.Command, t.opts.Env, t.opts.Dir)
	if err != nil {
		return nil, err
	}
	j, err := t.newJail(t.name, log)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.token, t.jail = j.id(), j
	t.mu.Unlock()
	p, err := startProcess(sp, &sink{log: log, ring: t.out, lim: t.lim}, log, j)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Pid is the running child's process id (also its process group id), 0
// when none runs.
func (t *Tracker) Pid() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pid
}

// runJail is the latest run's jail, nil when none.
func (t *Tracker) runJail() *jail {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.jail
}

// runToken is the latest run's ROUSE_EXEC_ID ("" without a subreaper).
func (t *Tracker) runToken() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.token
}

func (t *Tracker) setPid(pid int) {
	t.mu.Lock()
	t.pid = pid
	if pid == 0 {
		t.jail = nil // closed with its run
	}
	t.mu.Unlock()
}

// Check runs the readiness check once (trackers.Checker): the health
// check by default. With no check configured it passes while a child runs.
func (t *Tracker) Check(ctx context.Context) error {
	if t.check == nil {
		if t.Pid() == 0 {
			return errors.New("no child is running")
		}
		return nil
	}
	return t.check(ctx)
}

// Output returns the last output lines of the child (stdout and stderr
// interleaved, oldest first), across restarts.
func (t *Tracker) Output() []string { return t.out.snapshot() }

// Resume tells a running Run that the machine woke: it restarts the process
// (restart_on_wake) or re-checks readiness. It never blocks; wakes that
// arrive before Run handled the previous one merge into it.
func (t *Tracker) Resume(ctx context.Context) {
	select {
	case t.resume <- struct{}{}:
	default:
	}
}

// outcome is why supervise returned.
type outcome int

const (
	outcomeCancelled outcome = iota // ctx done
	outcomeExited                   // the process exited by itself
	outcomeWake                     // restart_on_wake
)

// Run supervises the command until ctx is cancelled; see the package doc.
// It returns nil once the process group is stopped and reaped and every
// goroutine it started has ended, or an error when the command cannot be
// started at all.
func (t *Tracker) Run(ctx context.Context, h trackers.Host) error {
	log := h.Logger()
	if log == nil {
		log = t.log
	}
	defer t.closeCheck()
	select { // a wake from before this Run is not for it
	case <-t.resume:
	default:
	}
	// What an earlier agent process left running goes first.
	sweepStale(t.stateDir, log)
	if t.opts.Oneshot {
		return t.runOneshot(ctx, h, log)
	}
	bo := backoff.Retry{Policy: backoff.Policy{Initial: t.opts.RestartBackoff.Initial, Max: t.opts.RestartBackoff.Max, Rand: t.randN}}
	for {
		if ctx.Err() != nil {
			return nil
		}
		p, err := t.start(log)
		if err != nil {
			return startError(t.opts.Command[0], err)
		}
		pid := p.Pid()
		started := time.Now()
		rec, err := recordGroup(t.stateDir, pid, t.runToken())
		if err != nil {
			log.Warn("cannot record the child's process group", "pid", pid, "dir", t.stateDir, "err", err)
		}
		t.setPid(pid)
		log.Info("child started", "pid", pid, "command", t.opts.Command)
		h.Report(trackers.StateStarting, nil)

		why := t.supervise(ctx, h, log, p)
		dropRecord(t.stateDir, rec) // supervise stopped and reaped the group
		t.setPid(0)
		switch why {
		case outcomeCancelled:
			log.Info("child stopped", "pid", pid)
			return nil
		case outcomeWake:
			log.Info("child restarted on wake", "pid", pid)
			bo.Reset()
			continue
		}

		up := time.Since(started)
		if up >= BackoffResetAfter {
			bo.Reset()
		}
		t.exits.Inc()
		exitErr := exitError(p.Err(), p.LastLine())
		d := bo.Next()
		log.Warn("child exited", "pid", pid, "err", exitErr, "uptime", up.Round(time.Millisecond), "restart_in", d.Round(time.Millisecond))
		h.Report(trackers.StateStarting, exitErr)
		if x, ok := h.(trackers.ExitReporter); ok {
			x.Exited(exitErr, d)
		}
		timer := time.NewTimer(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-t.resume:
			timer.Stop()
			log.Info("wake: restarting child now")
			bo.Reset()
		case <-timer.C:
		}
	}
}

// runOneshot runs a oneshot command: ready once it exited 0, then idle until
// ctx ends, running it again on a wake when restart_on_wake is set. A wake
// while it runs, with restart_on_wake, runs it once more after it completes
// (a step is never killed half-way by a wake). It returns the exit error of
// a run that failed.
func (t *Tracker) runOneshot(ctx context.Context, h trackers.Host, log *slog.Logger) error {
	for {
		if ctx.Err() != nil {
			return nil
		}
		p, err := t.start(log)
		if err != nil {
			return startError(t.opts.Command[0], err)
		}
		pid := p.Pid()
		rec, err := recordGroup(t.stateDir, pid, t.runToken())
		if err != nil {
			log.Warn("cannot record the child's process group", "pid", pid, "dir", t.stateDir, "err", err)
		}
		t.setPid(pid)
		log.Info("oneshot started", "pid", pid, "command", t.opts.Command)
		h.Report(trackers.StateStarting, nil)
		again, cancelled := false, false
	wait:
		for {
			select {
			case <-ctx.Done():
				cancelled = true
				break wait
			case <-p.Done():
				break wait
			case <-t.resume:
				again = again || t.opts.RestartOnWake
			}
		}
		p.Stop(t.opts.StopTimeout) // what the step left running goes with it
		dropRecord(t.stateDir, rec)
		t.setPid(0)
		if cancelled {
			log.Info("oneshot stopped", "pid", pid)
			return nil
		}
		if err := p.Err(); err != nil {
			failed := oneshotError(err, p.LastLine())
			log.Warn("oneshot failed", "pid", pid, "err", failed)
			return failed
		}
		log.Info("oneshot completed", "pid", pid)
		if again {
			continue
		}
		h.Report(trackers.StateReady, nil)
		if !t.idleUntilRerun(ctx, h, log) {
			return nil
		}
	}
}

// idleUntilRerun keeps a completed oneshot ready: a wake without
// restart_on_wake reports it ready again. It returns true when a wake asks
// for another run, false when ctx ends.
func (t *Tracker) idleUntilRerun(ctx context.Context, h trackers.Host, log *slog.Logger) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.resume:
			if t.opts.RestartOnWake {
				log.Info("wake: running the oneshot again")
				return true
			}
			h.Report(trackers.StateReady, nil)
		}
	}
}

func oneshotError(err error, last string) error {
	if last != "" {
		return fmt.Errorf("oneshot failed: %w (last output: %q)", err, lastLine(last))
	}
	return fmt.Errorf("oneshot failed: %w", err)
}

// startError is why the command could not start; a working directory's
// error names the directory alone.
func startError(program string, err error) error {
	var de *dirError
	if errors.As(err, &de) {
		return err
	}
	return fmt.Errorf("cannot start %q: %w", program, err)
}

// errExitedOK stands for an exit status 0 of a command that should have
// kept running.
var errExitedOK = errors.New("exit status 0")

func exitError(err error, last string) error {
	if err == nil {
		err = errExitedOK
	}
	if last != "" {
		return fmt.Errorf("child exited: %w (last output: %q)", err, lastLine(last))
	}
	return fmt.Errorf("child exited: %w", err)
}

// supervise watches one running process: it runs the readiness check until
// it passes, handles wakes, and returns (with the process stopped) when ctx
// ends, the process exits, or a wake asks for a restart.
func (t *Tracker) supervise(ctx context.Context, h trackers.Host, log *slog.Logger, p process) outcome {
	var (
		wg          sync.WaitGroup
		results     = make(chan error, 1) // one check in flight at most
		inFlight    bool
		cancelCheck context.CancelFunc = func() {}
		lastErr     string
		pace        = probe.NewPace(t.opts.ReadyInterval, t.opts.Ready.Command != nil)
	)
	first := t.opts.ReadyAfter
	if t.check != nil {
		first = pace.Next()
	}
	timer := time.NewTimer(first)
	stop := func() {
		timer.Stop()
		cancelCheck()
		wg.Wait()
		p.Stop(t.opts.StopTimeout)
	}
	for {
		select {
		case <-ctx.Done():
			stop()
			return outcomeCancelled
		case <-p.Done():
			stop()
			return outcomeExited
		case <-t.resume:
			if t.opts.RestartOnWake {
				log.Info("wake: restarting child", "pid", p.Pid())
				stop()
				return outcomeWake
			}
			if inFlight { // its answer predates the wake
				cancelCheck()
				<-results
				inFlight = false
			}
			log.Info("wake: checking child readiness", "pid", p.Pid())
			if t.check != nil {
				pace.Reset()
				timer.Reset(0)
			} else {
				timer.Reset(t.opts.ReadyAfter)
			}
		case err := <-results:
			inFlight = false
			cancelCheck()
			if err == nil {
				lastErr = ""
				log.Info("child ready", "pid", p.Pid())
				h.Report(trackers.StateReady, nil)
				continue
			}
			log.Debug("child not ready yet", "pid", p.Pid(), "err", err)
			if msg := err.Error(); msg != lastErr {
				lastErr = msg
				h.Report(trackers.StateStarting, err)
			}
			timer.Reset(pace.Next())
		case <-timer.C:
			if t.check == nil {
				log.Info("child ready", "pid", p.Pid(), "ran_for", t.opts.ReadyAfter)
				h.Report(trackers.StateReady, nil)
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, t.opts.ReadyTimeout)
			cancelCheck = cancel
			inFlight = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				results <- t.check(cctx)
			}()
		}
	}
}

// exitsCounter is rouse_exec_child_exits_total for one component, registered
// with reg when there is one. A component rebuilt under the same name (a
// config reload) shares the counter already registered.
func exitsCounter(reg *promreg.Registry, name string, log *slog.Logger) *promreg.Counter {
	cv, err := reg.CounterVec("rouse_exec_child_exits_total",
		"Times an exec component's command exited by itself (it is then restarted with backoff).", "component")
	if err != nil {
		log.Warn("cannot register exec metrics", "err", err)
	}
	return cv.With(name)
}
