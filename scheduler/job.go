package scheduler

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/robfig/cron/v3"
)

// Misfire policies: what a job does with the scheduled times it missed
// (the machine slept, the agent was not running, the clock jumped).
const (
	// MisfireCoalesce runs once for all the missed times, provided the
	// latest of them is within the job's Grace. It is the default.
	MisfireCoalesce = "coalesce"
	// MisfireSkip runs none of them; one run is recorded with result
	// "skipped" and reason "misfire" so the miss is visible.
	MisfireSkip = "skip"
	// MisfireAll runs every missed time within Grace, oldest first, one
	// after the other, at most MaxCatchup of them (the most recent ones).
	MisfireAll = "all"
)

// Run results, as stored in wire.JobRun.Result.
const (
	ResultRunning = "running"
	ResultOK      = "ok"
	ResultFailed  = "failed"
	ResultTimeout = "timeout"
	ResultSkipped = "skipped"
)

// Run reasons, as stored in wire.JobRun.Reason.
const (
	ReasonSchedule = "schedule" // on time
	ReasonMisfire  = "misfire"  // a catch-up run, or the record of runs not made
	ReasonManual   = "manual"   // RunNow
	ReasonOverlap  = "overlap"  // skipped: max_instances runs were going on
)

// Defaults applied by New to zero fields.
const (
	DefaultMaxInstances = 1
	DefaultMaxCatchup   = 10
	// OutputTail is how much of a run's output is kept: the last 4 KiB.
	OutputTail = 4 << 10
)

// HTTPAction is a job that makes one HTTP request.
type HTTPAction struct {
	Method       string            // default GET
	URL          string            // http or https
	ExpectStatus int               // 0: any 2xx
	Headers      map[string]string // added to the request
}

// Job is one scheduled job. Exactly one of Command, HTTP and Func is set.
type Job struct {
	// Name identifies the job in the API and the store; unique.
	Name string
	// Schedule is a cron expression (five fields, or six with seconds
	// first) or a descriptor (@daily, @hourly, @every 10m, ...); a
	// CRON_TZ= or TZ= prefix overrides Location.
	Schedule string
	// Location is the zone the schedule is read in; nil is the system zone.
	Location *time.Location

	// Command is an argv, run without a shell (write [sh, -c, "..."] for
	// one), in its own process group that is killed as a group at Timeout.
	// Its environment is PATH HOME USER LOGNAME LANG LC_ALL TZ from the
	// agent's environment plus Env; Dir is its working directory
	// (default: the agent's).
	Command []string
	Env     map[string]string
	Dir     string
	// HTTP is a request; the run fails on a transport error or an
	// unexpected status.
	HTTP *HTTPAction
	// Func is a built-in action (the maintenance job); its output string
	// is stored like a command's output.
	Func func(ctx context.Context) (output string, err error)

	// Timeout bounds one run; 0 means no bound. A command gets SIGTERM at
	// the timeout and its whole process group SIGKILL a few seconds later.
	Timeout time.Duration
	// Misfire is coalesce (default), skip or all.
	Misfire string
	// Grace is how late a missed run may still be made; 0 means no limit.
	Grace time.Duration
	// MaxInstances is how many runs of the job may go on at once
	// (default 1); a run beyond it is recorded as skipped (overlap).
	MaxInstances int
	// MaxCatchup bounds the runs the "all" policy makes (default 10).
	MaxCatchup int
	// Jitter spreads catch-up runs after a wake over [0, Jitter).
	Jitter time.Duration
	// NeedsNetwork makes scheduled runs wait for the network first.
	NeedsNetwork bool
	// BuiltIn marks jobs the agent defines itself (the maintenance job).
	BuiltIn bool
}

// JobError is one invalid job field, named by its config key.
type JobError struct {
	Job   string // the job's name
	Field string // name, schedule, misfire, command, http.url, ...
	Err   error
}

func (e *JobError) Error() string {
	return fmt.Sprintf("scheduler: job %q: %s: %v", e.Job, e.Field, e.Err)
}

func (e *JobError) Unwrap() error { return e.Err }

// ErrUnknownJob is returned for a job name the scheduler does not have.
var ErrUnknownJob = errors.New("scheduler: unknown job")

// ErrNotRunning is returned by RunNow while the scheduler's Run is not
// going on (stopped, failed, or not started yet).
var ErrNotRunning = errors.New("scheduler: not running")

var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour |
	cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Parse parses a schedule with robfig/cron's parser: five fields, or six
// with an optional seconds field first, or a descriptor such as @daily or
// @every 15m. A "CRON_TZ=Europe/Berlin " prefix sets its zone.
func Parse(spec string) (sched cron.Schedule, err error) {
	// robfig/cron v3.0.1 panics on some malformed zone prefixes ("TZ=",
	// found by FuzzSchedule): a bad schedule is an error, never a crash.
	defer func() {
		if p := recover(); p != nil {
			sched, err = nil, fmt.Errorf("invalid schedule %q", spec)
		}
	}()
	return parser.Parse(spec)
}

// parseIn parses spec and pins it to loc unless the spec names its own zone.
func parseIn(spec string, loc *time.Location) (cron.Schedule, *time.Location, error) {
	s, err := Parse(spec)
	if err != nil {
		return nil, nil, err
	}
	if loc == nil {
		loc = time.Local
	}
	if ss, ok := s.(*cron.SpecSchedule); ok {
		if ss.Location == time.Local {
			ss.Location = loc
		} else {
			loc = ss.Location
		}
	}
	return s, loc, nil
}

// Validate checks one job as config would: it returns a *JobError naming
// the first bad field, or nil.
func Validate(j Job) error {
	bad := func(field string, err error) error { return &JobError{Job: j.Name, Field: field, Err: err} }
	if j.Name == "" {
		return bad("name", errors.New("missing"))
	}
	if _, _, err := parseIn(j.Schedule, j.Location); err != nil {
		return bad("schedule", err)
	}
	actions := 0
	if len(j.Command) > 0 {
		actions++
	}
	if j.HTTP != nil {
		actions++
		if j.HTTP.URL == "" {
			return bad("http.url", errors.New("missing"))
		}
		u, err := url.Parse(j.HTTP.URL)
		if err != nil {
			return bad("http.url", err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return bad("http.url", fmt.Errorf("scheme %q, want http or https", u.Scheme))
		}
		if j.HTTP.ExpectStatus != 0 && (j.HTTP.ExpectStatus < 100 || j.HTTP.ExpectStatus > 599) {
			return bad("http.expect_status", fmt.Errorf("%d is not an HTTP status", j.HTTP.ExpectStatus))
		}
		if j.HTTP.Method != "" && !validMethod(j.HTTP.Method) {
			return bad("http.method", fmt.Errorf("%q is not an HTTP method", j.HTTP.Method))
		}
	}
	if j.Func != nil {
		actions++
	}
	if actions != 1 {
		return bad("command", fmt.Errorf("exactly one of command, http or a built-in action is needed, found %d", actions))
	}
	switch j.Misfire {
	case "", MisfireCoalesce, MisfireSkip, MisfireAll:
	default:
		return bad("misfire", fmt.Errorf("%q, want coalesce, skip or all", j.Misfire))
	}
	for field, d := range map[string]time.Duration{"timeout": j.Timeout, "grace": j.Grace, "jitter": j.Jitter} {
		if d < 0 {
			return bad(field, errors.New("negative"))
		}
	}
	if j.MaxInstances < 0 {
		return bad("max_instances", errors.New("negative"))
	}
	if j.MaxCatchup < 0 {
		return bad("max_catchup", errors.New("negative"))
	}
	return nil
}

func validMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return true
	}
	return false
}

// withDefaults returns j with its zero fields defaulted.
func withDefaults(j Job) Job {
	if j.Misfire == "" {
		j.Misfire = MisfireCoalesce
	}
	if j.MaxInstances == 0 {
		j.MaxInstances = DefaultMaxInstances
	}
	if j.MaxCatchup == 0 {
		j.MaxCatchup = DefaultMaxCatchup
	}
	if j.HTTP != nil && j.HTTP.Method == "" {
		h := *j.HTTP
		h.Method = http.MethodGet
		j.HTTP = &h
	}
	return j
}
