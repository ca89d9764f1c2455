package exec

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/trackers/probe"
)

// Options configure one exec component. Every field's comment states its
// default; DefaultOptions returns them filled in.
type Options struct {
	// Command is the argv to run, required. No shell is involved unless the
	// user writes one (sh -c "..."). A leading ~ in argv[0] is expanded to
	// the user's home directory; a bare name is looked up in the child's
	// PATH.
	Command []string `yaml:"command"`
	// Env adds variables to the child's environment, which otherwise holds
	// only the allowlisted variables of the agent's own environment (see
	// EnvAllowlist). Default: none.
	Env map[string]string `yaml:"env"`
	// Dir is the working directory; a leading ~ is expanded. An absolute
	// dir that does not exist is a config error; at start, any dir that
	// does not exist is an error naming it. Default: the user's home
	// directory when it exists, otherwise /.
	Dir string `yaml:"dir"`
	// Ready is the readiness check; at most one of its fields is set.
	// Default: none, the process is ready once it has run ReadyAfter.
	Ready Ready `yaml:"ready"`
	// ReadyAfter is how long the process must have run to count as ready
	// when there is no readiness check. Default 1s.
	ReadyAfter time.Duration `yaml:"ready_after"`
	// ReadyInterval is how often the readiness check runs until it passes.
	// Default 200ms.
	ReadyInterval time.Duration `yaml:"ready_interval"`
	// ReadyTimeout bounds one run of the readiness check. Default 5s.
	ReadyTimeout time.Duration `yaml:"ready_timeout"`
	// RestartOnWake restarts the process on every wake instead of only
	// re-checking its readiness (a oneshot: runs it again). Default false.
	RestartOnWake bool `yaml:"restart_on_wake"`
	// Oneshot makes the command a step rather than a long-running process:
	// the component is ready once it exits 0 and stays ready (dependents
	// start then, as compose's service_completed_successfully), and failed
	// when it exits otherwise, with the exit status in its error (the
	// heartbeat runs it again with backoff). Ready checks do not apply.
	// Default false.
	Oneshot bool `yaml:"oneshot"`
	// RestartBackoff is the delay before restarting a process that exited:
	// capped exponential with full jitter. Default {initial: 1s, max: 30s}.
	RestartBackoff Backoff `yaml:"restart_backoff"`
	// StopTimeout is how long the process group gets between SIGTERM and
	// SIGKILL. Default 5s.
	StopTimeout time.Duration `yaml:"stop_timeout"`
	// OutputLines is how many of the last stdout/stderr lines are kept for
	// the API (0 keeps none). Default 50.
	OutputLines int `yaml:"output_lines"`
}

// Ready is the readiness check: at most one field is set. TCP is
// host:port, ready when a TCP connection to it succeeds; HTTP an http(s)
// URL, ready when a GET answers 2xx; Command an argv, ready when it exits
// 0 (it runs with the same environment and directory as the supervised
// process, in the run's jail).
type Ready = probe.Spec

// Backoff is a capped exponential backoff.
type Backoff struct {
	// Initial is the first delay's upper bound. Default 1s.
	Initial time.Duration `yaml:"initial"`
	// Max caps every delay. Default 30s.
	Max time.Duration `yaml:"max"`
}

// Defaults, as documented on Options.
const (
	DefaultReadyAfter     = time.Second
	DefaultReadyInterval  = 200 * time.Millisecond
	DefaultReadyTimeout   = 5 * time.Second
	DefaultBackoffInitial = time.Second
	DefaultBackoffMax     = 30 * time.Second
	DefaultStopTimeout    = 5 * time.Second
	DefaultOutputLines    = 50
	// BackoffResetAfter is how long a process must stay up for the restart
	// backoff to start again from Initial.
	BackoffResetAfter = time.Minute
	// MaxOutputLines bounds OutputLines.
	MaxOutputLines = 10000
)

// EnvAllowlist names the only variables of the agent's environment a child
// inherits. Everything else (the API token above all) stays out unless the
// user writes it in env.
var EnvAllowlist = probe.EnvAllowlist

// DefaultOptions returns Options with every default filled in.
func DefaultOptions() *Options {
	return &Options{
		ReadyAfter:     DefaultReadyAfter,
		ReadyInterval:  DefaultReadyInterval,
		ReadyTimeout:   DefaultReadyTimeout,
		RestartBackoff: Backoff{Initial: DefaultBackoffInitial, Max: DefaultBackoffMax},
		StopTimeout:    DefaultStopTimeout,
		OutputLines:    DefaultOutputLines,
	}
}

var _ trackers.Validator = (*Options)(nil)

// HealthCheck says whether a health: entry may repeat the ready check
// (trackers.HealthOptions): there is one when ready: is set; a oneshot,
// done once it exited, has no health to check.
func (o *Options) HealthCheck() (own bool, refuse string) {
	if o.Oneshot {
		return false, "a oneshot is done once it exits 0: health checks do not apply; remove health, or oneshot"
	}
	return o.Ready.Count() > 0, ""
}

// Validate checks the options; keys are relative to the tracker's entry.
func (o *Options) Validate() []trackers.FieldError {
	var errs []trackers.FieldError
	add := func(key, format string, args ...any) {
		errs = append(errs, trackers.FieldError{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	switch {
	case len(o.Command) == 0:
		add("command", "is required: the argv to run, e.g. [ssh, -N, host]")
	case strings.TrimSpace(o.Command[0]) == "":
		add("command", "the program (first element) must not be empty")
	}
	for k := range o.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			add("env", "invalid variable name %q", k)
		}
	}
	if o.Dir != "" && filepath.IsAbs(o.Dir) {
		// Checkable here; a relative or ~ path is checked at start.
		switch err := isDir(o.Dir); {
		case err == nil, errors.Is(err, fs.ErrPermission):
		case errors.Is(err, fs.ErrNotExist):
			add("dir", "directory %q does not exist: create it or change dir", o.Dir)
		default:
			add("dir", "%q: %v", o.Dir, err)
		}
	}
	errs = append(errs, o.Ready.Validate("ready")...)
	set := o.Ready.Count()
	if o.Oneshot && set > 0 {
		add("ready", "a oneshot is ready when it exits 0: remove ready, or oneshot")
	}
	if o.ReadyAfter < 0 {
		add("ready_after", "must not be negative, got %q", o.ReadyAfter)
	}
	if o.ReadyInterval < 10*time.Millisecond {
		add("ready_interval", "must be at least 10ms, got %q", o.ReadyInterval)
	}
	if o.ReadyTimeout < 10*time.Millisecond {
		add("ready_timeout", "must be at least 10ms, got %q", o.ReadyTimeout)
	}
	if o.RestartBackoff.Initial <= 0 {
		add("restart_backoff.initial", "must be positive, got %q", o.RestartBackoff.Initial)
	}
	if o.RestartBackoff.Max < o.RestartBackoff.Initial {
		add("restart_backoff.max", "must be at least initial (%s), got %q", o.RestartBackoff.Initial, o.RestartBackoff.Max)
	}
	if o.StopTimeout <= 0 {
		add("stop_timeout", "must be positive, got %q", o.StopTimeout)
	}
	if o.OutputLines < 0 || o.OutputLines > MaxOutputLines {
		add("output_lines", "must be between 0 and %d, got %d", MaxOutputLines, o.OutputLines)
	}
	return errs
}
