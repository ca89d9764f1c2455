package scheduler

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
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
	ReasonWake     = "wake"     // an @wake hook, after a wake
	ReasonSleep    = "sleep"    // an @sleep hook, before sleep
)

// Hook schedules: a job with one of these runs around sleep (RunHooks)
// instead of on a clock.
const (
	ScheduleWake  = "@wake"
	ScheduleSleep = "@sleep"
)

// IsHook reports whether schedule is @wake or @sleep.
func IsHook(schedule string) bool { return schedule == ScheduleWake || schedule == ScheduleSleep }

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
	// Missing: the field is required and not set (rather than wrong).
	Missing bool
}

func (e *JobError) Error() string {
	return fmt.Sprintf("scheduler: job %q: %s: %v", e.Job, e.Field, e.Err)
}

func (e *JobError) Unwrap() error { return e.Err }

// JobErrors is every invalid field of one job, in field order.
type JobErrors []*JobError

func (es JobErrors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// Unwrap lets errors.As find each *JobError.
func (es JobErrors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// ErrUnknownJob is returned for a job name the scheduler does not have.
var ErrUnknownJob = errors.New("scheduler: unknown job")

// ErrNotRunning is returned by RunNow while the scheduler's Run is not
// going on (stopped, failed, or not started yet).
var ErrNotRunning = errors.New("scheduler: not running")

var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour |
	cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Parse parses a schedule with robfig/cron's parser: five fields, or six
// with an optional seconds field first, or a descriptor such as @daily or
// @every 15m. A "CRON_TZ=Europe/Berlin " prefix sets its zone. It is the
// one cron parser of rouse: config checks schedules with ParseIn.
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

// ParseIn parses spec and pins it to loc (nil: the system zone) unless the
// spec names its own zone; it returns the zone the schedule runs in.
func ParseIn(spec string, loc *time.Location) (cron.Schedule, *time.Location, error) {
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

// Validate checks the job as the scheduler will run it and returns every
// bad field as JobErrors (each Field is the config key below the job's
// entry, e.g. "http.method"), or nil. Config maps them to file:line, so
// what `rouse config check` accepts is what `rouse run` accepts.
func (j Job) Validate() error {
	var errs JobErrors
	bad := func(field string, err error) { errs = append(errs, &JobError{Job: j.Name, Field: field, Err: err}) }
	missing := func(field string, err error) {
		errs = append(errs, &JobError{Job: j.Name, Field: field, Err: err, Missing: true})
	}
	if j.Name == "" {
		missing("name", errors.New("required: every job needs a name"))
	}
	if IsHook(j.Schedule) {
		if j.Misfire == MisfireAll {
			bad("misfire", errors.New("does not apply to an @wake or @sleep job"))
		}
	} else if _, _, err := ParseIn(j.Schedule, j.Location); err != nil {
		bad("schedule", err)
	}
	actions := 0
	if len(j.Command) > 0 {
		actions++
		if j.Command[0] == "" {
			missing("command[0]", errors.New("the program to run must not be empty"))
		}
	}
	if h := j.HTTP; h != nil {
		actions++
		u, err := url.Parse(h.URL)
		switch {
		case h.URL == "":
			missing("http.url", errors.New("required: an http:// or https:// URL"))
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			bad("http.url", errors.New("must be an http:// or https:// URL"))
		}
		if h.ExpectStatus != 0 && (h.ExpectStatus < 100 || h.ExpectStatus > 599) {
			bad("http.expect_status", errors.New("must be an HTTP status from 100 to 599"))
		}
		if h.Method != "" && !validMethod(h.Method) {
			bad("http.method", errors.New("must be GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS"))
		}
	}
	if j.Func != nil {
		actions++
	}
	switch {
	case actions == 0:
		missing("command", errors.New("a job needs a command (a list: [program, args...]) or an http request"))
	case len(j.Command) > 0 && j.HTTP != nil:
		bad("http", errors.New("a job has either command or http, not both"))
	case actions > 1:
		bad("command", errors.New("a job has exactly one of command, http or a built-in action"))
	}
	switch j.Misfire {
	case "", MisfireCoalesce, MisfireSkip, MisfireAll:
	default:
		bad("misfire", errors.New("must be one of coalesce, skip, all"))
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"timeout", j.Timeout}, {"grace", j.Grace}, {"jitter", j.Jitter}} {
		if f.d < 0 {
			bad(f.name, errors.New("must not be negative"))
		}
	}
	if j.MaxInstances < 0 {
		bad("max_instances", errors.New("must not be negative"))
	}
	if j.MaxCatchup < 0 {
		bad("max_catchup", errors.New("must not be negative"))
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// validMethod: the HTTP methods a job may use.
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
