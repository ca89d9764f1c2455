// Package config owns rouse's YAML configuration: the schema and its
// defaults, parsing with line-accurate errors, validation, the file
// permission check, and the watcher that reloads the file when it changes.
//
// The flow is Default() → Parse (or Load, which also checks permissions) →
// Validate. Parse decodes over a copy of Default(), so a key that is absent
// keeps its default and a key that is present but null (`key:` with no value)
// also keeps its default. Every problem is reported at once as an Errors
// value, one FieldError per key, each naming the file, the line and the key
// path, what was expected and what was found:
//
//	rouse.yaml:12: trackers[1].interval: must be at least 1s, got "0s"
//
// Unknown keys are errors everywhere, including among a tracker's
// kind-specific options, which are decoded into the options struct the kind
// registered in package trackers. Component names (trackers plus the
// reserved "store" and "scheduler") and job names must be unique and match
// [A-Za-z0-9][A-Za-z0-9._-]* (at most 64 characters), because they appear in
// URLs. `depends_on` may name any component; cycles are reported with the
// cycle spelled out ("a -> b -> a").
//
// Decisions where the product description is silent: YAML anchors, aliases
// and merge keys (`<<: *base`) are supported; a file with no keys is the
// default config (no trackers, no jobs); only the first YAML document is
// allowed; `~user/` paths are rejected (only `~/` is expanded).
package config

import (
	"time"

	"gopkg.in/yaml.v3"

	"github.com/rouse-dev/rouse/scheduler"
	"github.com/rouse-dev/rouse/trackers/probe"
	"github.com/rouse-dev/rouse/wire"
)

// Config is the whole configuration of the agent.
type Config struct {
	// Source is the file the config came from, or "default" for Default().
	Source string `yaml:"-"`
	// Listen is the REST API's address. Default "127.0.0.1:8000". A host
	// that is not loopback is an error unless AllowNonLoopback is set.
	Listen string `yaml:"listen"`
	// AllowNonLoopback lets Listen name a non-loopback host. Default false.
	AllowNonLoopback bool `yaml:"allow_non_loopback"`
	// MaxEventStreams caps the REST API's concurrent event streams
	// (GET /api/v1/events); more are refused with 503. Default 32, 1..4096.
	MaxEventStreams int `yaml:"max_event_streams"`
	// Data is the data directory. Default "" (the CLI picks the XDG data
	// directory); a leading "~/" is expanded by Parse.
	Data string `yaml:"data"`
	// Deadlines bound how long a restore waits for components.
	Deadlines Deadlines `yaml:"deadlines"`
	// Heartbeat is the retry backoff for components that are not ready.
	Heartbeat Heartbeat `yaml:"heartbeat"`
	// Sleep bounds the work done when the machine goes to sleep.
	Sleep Sleep `yaml:"sleep"`
	// ShutdownTimeout bounds a clean shutdown. Default 10s, at least 100ms.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// Maintenance is the scheduler's built-in store maintenance job.
	Maintenance Maintenance `yaml:"maintenance"`
	// Log configures the agent's logger.
	Log Log `yaml:"log"`
	// Scheduler configures the scheduler component.
	Scheduler Scheduler `yaml:"scheduler"`
	// Trackers are the user's trackers, in config order. Default none.
	Trackers []Tracker `yaml:"trackers"`
	// Jobs are the user's scheduled jobs, in config order. Default none.
	Jobs []Job `yaml:"jobs"`

	// root is the parsed document while Parse validates it: Line and the
	// validator's values look key paths up in it only when there is an
	// error to place. Nil afterwards and for a config built in code.
	root *yaml.Node
	// fingerprint is what Load read (mode and content), so that a watcher
	// started later reloads a change made in between.
	fingerprint string
}

// Deadlines bound how long a restore waits for components.
type Deadlines struct {
	// Tracker is a tracker's default deadline. Default 10s, at least 100ms.
	Tracker time.Duration `yaml:"tracker"`
	// Scheduler is the scheduler's default deadline. Default 15s, at least 100ms.
	Scheduler time.Duration `yaml:"scheduler"`
	// Wake bounds a whole restore. Default 5m, at least 100ms.
	Wake time.Duration `yaml:"wake"`
	// AutoMin and AutoMax bound a deadline learned from the wake history
	// (a tracker's `deadline: auto`). Default 1s and 2m; AutoMin at least
	// 100ms, AutoMax at least AutoMin.
	AutoMin time.Duration `yaml:"auto_min"`
	AutoMax time.Duration `yaml:"auto_max"`
}

// Heartbeat is the capped exponential backoff (with full jitter) of retries.
type Heartbeat struct {
	// Initial is the first retry delay. Default 1s, at least 100ms.
	Initial time.Duration `yaml:"initial"`
	// Max caps the retry delay. Default 60s, at least Initial.
	Max time.Duration `yaml:"max"`
}

// Sleep bounds the work done before the machine sleeps.
type Sleep struct {
	// Budget is the time allowed between the sleep notice and releasing
	// the inhibitor lock. Default 3s, at least 100ms.
	Budget time.Duration `yaml:"budget"`
	// PauseGrace is how long components get to pause. Default 1s, at least
	// 10ms and less than Budget.
	PauseGrace time.Duration `yaml:"pause_grace"`
}

// Maintenance is the scheduler's built-in maintenance job.
type Maintenance struct {
	// Schedule is when maintenance (pruning, checkpoint) runs, in cron
	// syntax. Default "@hourly".
	Schedule string `yaml:"schedule"`
	// Retention is how long events, wakes, items and job runs are kept.
	// Default 720h (30 days), at least 1h.
	Retention time.Duration `yaml:"retention"`
	// QuickCheck is when maintenance also runs PRAGMA quick_check, in cron
	// syntax, or "off". Default "@weekly".
	QuickCheck string `yaml:"quick_check"`
}

// Log configures the agent's logger.
type Log struct {
	// Level is debug, info, warn or error. Default "info".
	Level string `yaml:"level"`
	// Format is text or json. Default "text".
	Format string `yaml:"format"`
}

// Scheduler configures the scheduler component.
type Scheduler struct {
	// Deadline overrides Deadlines.Scheduler. Default 0 (use it).
	Deadline time.Duration `yaml:"deadline"`
	// Enabled turns the scheduler on. Default true (never nil after
	// Default or Parse).
	Enabled *bool `yaml:"enabled"`
}

// Dependency is one entry of depends_on. In YAML it is either a name or a
// mapping: `depends_on: [tunnel, {name: vpn, optional: true}]`.
type Dependency struct {
	// Name is the component depended on. Required.
	Name string `yaml:"name"`
	// Optional dependencies never block a start. Default false.
	Optional bool `yaml:"optional"`
	// Restart (compose's word): when the dependency leaves ready and is
	// ready again, this component is restarted rather than resumed. Only
	// for a required dependency. Default false.
	Restart bool `yaml:"restart"`
}

// Tracker is one entry of trackers.
type Tracker struct {
	// Name is the component's name. Required, unique.
	Name string `yaml:"name"`
	// Kind is a kind registered in package trackers. Required.
	Kind string `yaml:"kind"`
	// DependsOn lists the components this one waits for. Default none.
	DependsOn []Dependency `yaml:"depends_on"`
	// Deadline overrides Deadlines.Tracker. Default 0 (use it). "auto"
	// sets DeadlineAuto instead.
	Deadline time.Duration `yaml:"deadline"`
	// DeadlineAuto (`deadline: auto`) learns the deadline from the wake
	// history: 1.5 × the 95th percentile of its last restores, within
	// Deadlines.AutoMin and AutoMax (Deadlines.Tracker until it has a few).
	DeadlineAuto bool `yaml:"-"`
	// NeedsNetwork makes the tracker wait for the network after a wake.
	// nil means the kind's default; Parse fills it in from the kind.
	NeedsNetwork *bool `yaml:"needs_network"`
	// Required makes the tracker count for /readyz. Default true; Parse
	// fills it in.
	Required *bool `yaml:"required"`
	// StartLimit is how many failures (a Run that gave up, an exec child
	// that exited) within StartWindow make the component failed for good:
	// no retry until a wake, a config change or a manual start (systemd's
	// StartLimitBurst). Default 0: DefaultStartLimit; at most
	// MaxStartLimit.
	StartLimit int `yaml:"start_limit"`
	// StartWindow is StartLimit's window (systemd's
	// StartLimitIntervalSec). Default 0: DefaultStartWindow; at least 1s.
	StartWindow time.Duration `yaml:"start_window"`
	// OnDemand makes the component start on demand: rouse listens on
	// OnDemand.Listen and starts the component's chain (it and its
	// dependencies) on the first connection. Default nil: started at
	// boot like any other. It is not part of Hash: changing it rebuilds
	// the entry point, not the component.
	OnDemand *OnDemand `yaml:"on_demand"`
	// Health keeps checking the component once it is ready; retries
	// failures in a row make it unhealthy and restart it. Default nil:
	// no health check.
	Health *Health `yaml:"health"`
	// Options are the kind-specific keys, decoded into the kind's
	// NewOptions() value (a pointer) and validated.
	Options any `yaml:"-"`
	// Hash is a stable hash of the entry's YAML content: equal hashes mean
	// an unchanged entry, so the agent restarts only what changed.
	Hash string `yaml:"-"`
	// Line is the line the entry starts on (0 when built in code).
	Line int `yaml:"-"`
}

// OnDemand is a tracker's on_demand key: the entry point that starts the
// component's chain when somebody needs it and stops it when nobody does.
type OnDemand struct {
	// Listen is the host:port rouse listens on. Required; a loopback
	// host unless AllowNonLoopback; not the API's listen nor another
	// on_demand listen.
	Listen string `yaml:"listen"`
	// AllowNonLoopback lets Listen name a non-loopback host. Default false.
	AllowNonLoopback bool `yaml:"allow_non_loopback"`
	// Upstream is the host:port the component serves on, where
	// connections are forwarded once the chain is ready. Required.
	Upstream string `yaml:"upstream"`
	// Mode is http (browsers get a waiting page, requests are proxied)
	// or tcp (connections are held, then spliced). Default "http".
	Mode string `yaml:"mode"`
	// IdleStop stops the chain after this long without a connection or
	// a request. Default 0: never.
	IdleStop time.Duration `yaml:"idle_stop"`
	// OnFailure is what happens to the components a demand started when
	// a required dependency fails or misses its deadline: rollback
	// (stop them again) or keep (leave them trying). Default "rollback".
	OnFailure string `yaml:"on_failure"`
}

// The on_demand defaults and choices.
const (
	OnDemandHTTP      = "http"
	OnDemandTCP       = "tcp"
	OnFailureRollback = "rollback"
	OnFailureKeep     = "keep"
)

// Health is a tracker's health check (Tracker.Health), as compose's
// healthcheck: after the component is ready (and start_period has passed)
// check runs every interval under timeout; retries failures in a row make
// the component unhealthy, and it is restarted.
type Health struct {
	// Check is the check to run: tcp, http or command, at most one.
	// Default: the kind's own readiness check (exec's ready:, a
	// container's readiness); a kind without one needs it.
	Check probe.Spec `yaml:"check"`
	// Interval is the time between checks. Default 10s, at least 100ms.
	Interval time.Duration `yaml:"interval"`
	// Timeout bounds one check; one that takes longer failed. Default
	// 2s, at least 10ms.
	Timeout time.Duration `yaml:"timeout"`
	// Retries is how many failures in a row make the component
	// unhealthy. Default 3, from 1 to MaxHealthRetries.
	Retries int `yaml:"retries"`
	// StartPeriod is how long after the component became ready the first
	// check waits (a warm-up). Default 0, not negative.
	StartPeriod time.Duration `yaml:"start_period"`
}

// The health check's defaults and bound (Health).
const (
	DefaultHealthInterval = 10 * time.Second
	DefaultHealthTimeout  = 2 * time.Second
	DefaultHealthRetries  = 3
	MaxHealthRetries      = 100
)

// DefaultHealth returns a Health with its defaults filled in.
func DefaultHealth() Health {
	return Health{Interval: DefaultHealthInterval, Timeout: DefaultHealthTimeout, Retries: DefaultHealthRetries}
}

// The start limit's defaults and bound (Tracker.StartLimit).
const (
	DefaultStartLimit  = 5
	DefaultStartWindow = time.Minute
	MaxStartLimit      = 1000
)

// Limits returns t's start limit and window, defaults filled in.
func (t *Tracker) Limits() (int, time.Duration) {
	n, w := t.StartLimit, t.StartWindow
	if n == 0 {
		n = DefaultStartLimit
	}
	if w == 0 {
		w = DefaultStartWindow
	}
	return n, w
}

// IsRequired reports whether the tracker counts for /readyz (nil = true).
func (t *Tracker) IsRequired() bool { return t.Required == nil || *t.Required }

// Job is one entry of jobs.
type Job struct {
	// Name is the job's name. Required, unique among jobs.
	Name string `yaml:"name"`
	// Schedule is a cron expression (5 fields, or 6 with leading seconds)
	// or a descriptor (@hourly, @daily, @every 5m). Required.
	Schedule string `yaml:"schedule"`
	// Timezone is an IANA zone name for Schedule. Default "" (local time).
	Timezone string `yaml:"timezone"`
	// Command is the argv to run (no shell). Exactly one of Command and HTTP.
	Command []string `yaml:"command"`
	// Env is added to the command's environment. Default none.
	Env map[string]string `yaml:"env"`
	// Dir is the command's working directory. Default "" (the data dir).
	Dir string `yaml:"dir"`
	// HTTP is a request to make instead of a command.
	HTTP *JobHTTP `yaml:"http"`
	// Timeout bounds one run. Default 1h, at least 1s.
	Timeout time.Duration `yaml:"timeout"`
	// Misfire is what happens to runs missed while asleep: coalesce (run
	// once), skip, or all (every missed run, at most MaxCatchup). Default
	// "coalesce".
	Misfire string `yaml:"misfire"`
	// Grace is how far back a missed run still counts (coalesce, all).
	// Default 24h, not negative.
	Grace time.Duration `yaml:"grace"`
	// MaxInstances bounds concurrent runs of the job. Default 1, at least 1.
	MaxInstances int `yaml:"max_instances"`
	// MaxCatchup bounds the missed runs replayed by misfire: all. Default
	// 10, at least 1.
	MaxCatchup int `yaml:"max_catchup"`
	// Jitter spreads catch-up runs after a wake. Default 30s, not negative.
	Jitter time.Duration `yaml:"jitter"`
	// NeedsNetwork makes catch-up runs wait for the network. Default false.
	NeedsNetwork bool `yaml:"needs_network"`
	// Line is the line the entry starts on (0 when built in code).
	Line int `yaml:"-"`
	// Hash is a stable hash of the entry's YAML content.
	Hash string `yaml:"-"`
}

// SchedulerJob is j as the scheduler runs it. Its Validate is what config
// checks each job with, so `rouse config check` and `rouse run` agree.
func (j *Job) SchedulerJob() scheduler.Job {
	sj := scheduler.Job{
		Name: j.Name, Schedule: j.Schedule, Command: j.Command, Env: j.Env, Dir: j.Dir,
		Timeout: j.Timeout, Misfire: j.Misfire, Grace: j.Grace, MaxInstances: j.MaxInstances,
		MaxCatchup: j.MaxCatchup, Jitter: j.Jitter, NeedsNetwork: j.NeedsNetwork,
	}
	if j.Timezone != "" {
		if loc, err := time.LoadLocation(j.Timezone); err == nil {
			sj.Location = loc
		}
	}
	if j.HTTP != nil {
		sj.HTTP = &scheduler.HTTPAction{Method: j.HTTP.Method, URL: j.HTTP.URL, ExpectStatus: j.HTTP.ExpectStatus, Headers: j.HTTP.Headers}
	}
	return sj
}

// JobHTTP is a job's HTTP request.
type JobHTTP struct {
	// Method is the request method. Default "GET".
	Method string `yaml:"method"`
	// URL is an http or https URL. Required.
	URL string `yaml:"url"`
	// ExpectStatus is the status that counts as success. Default 200.
	ExpectStatus int `yaml:"expect_status"`
	// Headers are added to the request. Default none.
	Headers map[string]string `yaml:"headers"`
}

// Default job values, applied to every job entry before its keys are read.
const (
	DefaultJobTimeout      = time.Hour
	DefaultJobMisfire      = "coalesce"
	DefaultJobGrace        = 24 * time.Hour
	DefaultJobMaxInstances = 1
	DefaultJobMaxCatchup   = 10
	DefaultJobJitter       = 30 * time.Second
	DefaultHTTPMethod      = "GET"
	DefaultHTTPStatus      = 200
)

// Default returns a config with every default filled in, no trackers and no
// jobs, and Source "default".
func Default() *Config {
	enabled := true
	return &Config{
		Source:          "default",
		Listen:          wire.DefaultListen,
		MaxEventStreams: 32,
		Deadlines: Deadlines{
			Tracker:   10 * time.Second,
			Scheduler: 15 * time.Second,
			Wake:      5 * time.Minute,
			AutoMin:   time.Second,
			AutoMax:   2 * time.Minute,
		},
		Heartbeat:       Heartbeat{Initial: time.Second, Max: 60 * time.Second},
		Sleep:           Sleep{Budget: 3 * time.Second, PauseGrace: time.Second},
		ShutdownTimeout: 10 * time.Second,
		Maintenance: Maintenance{
			Schedule:   "@hourly",
			Retention:  720 * time.Hour,
			QuickCheck: "@weekly",
		},
		Log:       Log{Level: "info", Format: "text"},
		Scheduler: Scheduler{Enabled: &enabled},
	}
}

// defaultJob is a Job with its defaults, before an entry's keys are read.
func defaultJob() Job {
	return Job{
		Timeout:      DefaultJobTimeout,
		Misfire:      DefaultJobMisfire,
		Grace:        DefaultJobGrace,
		MaxInstances: DefaultJobMaxInstances,
		MaxCatchup:   DefaultJobMaxCatchup,
		Jitter:       DefaultJobJitter,
	}
}

// TrackerDeadline is t's effective deadline: its own, or Deadlines.Tracker.
func (c *Config) TrackerDeadline(t *Tracker) time.Duration {
	if t.Deadline > 0 {
		return t.Deadline
	}
	return c.Deadlines.Tracker
}

// SchedulerDeadline is the scheduler's effective deadline.
func (c *Config) SchedulerDeadline() time.Duration {
	if c.Scheduler.Deadline > 0 {
		return c.Scheduler.Deadline
	}
	return c.Deadlines.Scheduler
}

// SchedulerEnabled reports whether the scheduler runs (nil = true).
func (c *Config) SchedulerEnabled() bool {
	return c.Scheduler.Enabled == nil || *c.Scheduler.Enabled
}

// Tracker returns the tracker named name, or nil.
func (c *Config) Tracker(name string) *Tracker {
	for i := range c.Trackers {
		if c.Trackers[i].Name == name {
			return &c.Trackers[i]
		}
	}
	return nil
}

// Line returns the line the key path (e.g. "deadlines.tracker",
// "trackers[1].ready.tcp") was read from, or of its nearest enclosing key;
// 0 when unknown (a config built in code, or one Parse already returned).
func (c *Config) Line(key string) int {
	line, _ := lookup(c.root, key)
	return line
}

// parentKey strips the last element of a key path: "a.b[2]" → "a.b",
// "a.b" → "a", "a" → "".
func parentKey(k string) string {
	for i := len(k) - 1; i >= 0; i-- {
		switch k[i] {
		case '.':
			return k[:i]
		case '[':
			return k[:i]
		}
	}
	return ""
}
