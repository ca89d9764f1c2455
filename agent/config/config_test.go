package config

import (
	"errors"
	"gopkg.in/yaml.v3"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rouse-dev/rouse/trackers"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// probeOptions is the options struct of the test kind "probe".
type probeOptions struct {
	URL      string        `yaml:"url"`
	Interval time.Duration `yaml:"interval"`
	Ready    struct {
		TCP  string `yaml:"tcp"`
		HTTP string `yaml:"http"`
	} `yaml:"ready"`
	Tags []string `yaml:"tags"`
}

func (o *probeOptions) Validate() []trackers.FieldError {
	var out []trackers.FieldError
	if o.URL == "" {
		out = append(out, trackers.FieldError{Key: "url", Msg: "required"})
	}
	if o.Interval < time.Second {
		out = append(out, trackers.FieldError{Key: "interval", Msg: "must be at least 1s"})
	}
	if o.Ready.TCP == "bad" {
		out = append(out, trackers.FieldError{Key: "ready.tcp", Msg: "must be host:port"})
	}
	return out
}

// HealthCheck: the test kind repeats its ready.tcp check; tagged
// "oneshot" it refuses health checks.
func (o *probeOptions) HealthCheck() (bool, string) {
	for _, t := range o.Tags {
		if t == "oneshot" {
			return false, "a oneshot has no health"
		}
	}
	return o.Ready.TCP != "", ""
}

// testKinds are the kinds the tests parse against: a probe with options, a
// kind without options, a stand-in for the network kind the embedded
// default names, and decode_test.go's kind of every option shape.
var testKinds = trackers.NewKinds(
	trackers.Kind{
		Name:         "probe",
		NeedsNetwork: true,
		NewOptions:   func() any { return &probeOptions{Interval: time.Minute} },
	},
	trackers.Kind{Name: "plain"}, // takes no options
	trackers.Kind{Name: "network", NewOptions: func() any { return &struct{}{} }},
	richKind,
)

func parseOK(t *testing.T, src string) *Config {
	t.Helper()
	c, err := Parse("rouse.yaml", []byte(src), testKinds)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func TestDefault(t *testing.T) {
	t.Run("HasEveryDefaultAndValidates", func(t *testing.T) {
		c := Default()
		if c.Source != "default" || c.Listen != "127.0.0.1:8000" {
			t.Fatalf("source/listen = %q/%q", c.Source, c.Listen)
		}
		want := Deadlines{Tracker: 10 * time.Second, Scheduler: 15 * time.Second, Wake: 5 * time.Minute, AutoMin: time.Second, AutoMax: 2 * time.Minute}
		if c.Deadlines != want {
			t.Errorf("deadlines = %+v, want %+v", c.Deadlines, want)
		}
		if c.Heartbeat != (Heartbeat{Initial: time.Second, Max: time.Minute}) {
			t.Errorf("heartbeat = %+v", c.Heartbeat)
		}
		if c.Sleep != (Sleep{Budget: 3 * time.Second, PauseGrace: time.Second}) || c.ShutdownTimeout != 10*time.Second {
			t.Errorf("sleep = %+v, shutdown = %v", c.Sleep, c.ShutdownTimeout)
		}
		if c.Maintenance != (Maintenance{Schedule: "@hourly", Retention: 720 * time.Hour, QuickCheck: "@weekly"}) {
			t.Errorf("maintenance = %+v", c.Maintenance)
		}
		if c.Log != (Log{Level: "info", Format: "text"}) || !c.SchedulerEnabled() || c.SchedulerDeadline() != 15*time.Second {
			t.Errorf("log = %+v, scheduler = %+v", c.Log, c.Scheduler)
		}
		if len(c.Trackers) != 0 || len(c.Jobs) != 0 {
			t.Errorf("trackers/jobs not empty")
		}
		if err := c.Validate(testKinds); err != nil {
			t.Fatalf("Validate: %v", err)
		}
	})
	t.Run("EmptyFileIsTheDefault", func(t *testing.T) {
		c := parseOK(t, "# nothing here\n")
		d := Default()
		d.Source = "rouse.yaml"
		if !reflect.DeepEqual(c, d) {
			t.Fatalf("got %+v\nwant %+v", c, d)
		}
	})
	t.Run("EmbeddedDefaultParsesWithTheNetworkTracker", func(t *testing.T) {
		c, err := Embedded(testKinds)
		if err != nil {
			t.Fatalf("Embedded: %v", err)
		}
		if len(c.Trackers) != 1 || c.Trackers[0].Name != "network" || c.Trackers[0].Kind != "network" {
			t.Fatalf("trackers = %+v", c.Trackers)
		}
		if len(c.Jobs) != 0 || c.Source != EmbeddedSource {
			t.Fatalf("jobs = %+v, source %q", c.Jobs, c.Source)
		}
		if c.Listen != "127.0.0.1:8000" || c.Deadlines.Tracker != 10*time.Second {
			t.Fatalf("defaults lost: %+v", c)
		}
	})
}

const fullConfig = `
listen: localhost:9000
data: ~/rouse-data
deadlines: {tracker: 5s, scheduler: 20s, wake: 2m}
heartbeat: {initial: 500ms, max: 30s}
sleep: {budget: 4s, pause_grace: 2s}
shutdown_timeout: 7s
maintenance: {schedule: "@daily", retention: 48h, quick_check: "off"}
log: {level: debug, format: json}
scheduler: {deadline: 3s, enabled: false}
trackers:
  - name: tunnel
    kind: plain
    required: false
  - name: feed
    kind: probe
    url: http://127.0.0.1:9330/
    interval: 30s
    ready: {tcp: "127.0.0.1:9330"}
    tags: [a, b]
    depends_on: [tunnel, {name: store}, {name: scheduler, optional: true}]
    deadline: 2s
    needs_network: false
jobs:
  - name: export
    schedule: "0 3 * * *"
    timezone: UTC
    command: [sh, -c, "echo hi"]
    env: {A: "1"}
    misfire: all
    grace: 12h
  - name: ping
    schedule: "*/30 * * * * *"
    http: {url: "https://example.org/x", headers: {X-A: b}}
    jitter: 0s
`

func TestParseFullConfig(t *testing.T) {
	c := parseOK(t, fullConfig)
	home, _ := os.UserHomeDir()
	if c.Listen != "localhost:9000" || c.Data != filepath.Join(home, "rouse-data") {
		t.Errorf("listen/data = %q/%q", c.Listen, c.Data)
	}
	if c.Deadlines.Wake != 2*time.Minute || c.Heartbeat.Initial != 500*time.Millisecond || c.Sleep.PauseGrace != 2*time.Second {
		t.Errorf("durations = %+v %+v %+v", c.Deadlines, c.Heartbeat, c.Sleep)
	}
	if c.SchedulerEnabled() || c.SchedulerDeadline() != 3*time.Second || c.Log.Format != "json" {
		t.Errorf("scheduler/log = %+v %+v", c.Scheduler, c.Log)
	}
	if len(c.Trackers) != 2 {
		t.Fatalf("trackers = %d", len(c.Trackers))
	}
	tun, feed := &c.Trackers[0], &c.Trackers[1]
	if tun.IsRequired() || tun.Line != 12 || *tun.NeedsNetwork {
		t.Errorf("tunnel = %+v", tun)
	}
	if !feed.IsRequired() || feed.Line != 15 || *feed.NeedsNetwork || c.TrackerDeadline(feed) != 2*time.Second || c.TrackerDeadline(tun) != 5*time.Second {
		t.Errorf("feed = %+v", feed)
	}
	wantDeps := []Dependency{{Name: "tunnel"}, {Name: "store"}, {Name: "scheduler", Optional: true}}
	if !reflect.DeepEqual(feed.DependsOn, wantDeps) {
		t.Errorf("depends_on = %+v", feed.DependsOn)
	}
	o, ok := feed.Options.(*probeOptions)
	if !ok || o.URL != "http://127.0.0.1:9330/" || o.Interval != 30*time.Second || o.Ready.TCP != "127.0.0.1:9330" || !reflect.DeepEqual(o.Tags, []string{"a", "b"}) {
		t.Errorf("options = %#v", feed.Options)
	}
	if tun.Hash == "" || tun.Hash == feed.Hash {
		t.Errorf("hashes = %q %q", tun.Hash, feed.Hash)
	}
	ex, ping := c.Jobs[0], c.Jobs[1]
	if ex.Misfire != "all" || ex.Grace != 12*time.Hour || ex.Timeout != time.Hour || ex.MaxCatchup != 10 || ex.Jitter != 30*time.Second || ex.Env["A"] != "1" || ex.Line != 25 {
		t.Errorf("export = %+v", ex)
	}
	if ping.HTTP == nil || ping.HTTP.Method != "GET" || ping.HTTP.ExpectStatus != 200 || ping.HTTP.Headers["X-A"] != "b" || ping.Jitter != 0 || ping.Misfire != "coalesce" {
		t.Errorf("ping = %+v %+v", ping, ping.HTTP)
	}
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(fullConfig), &root); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]int{"trackers[1].ready.tcp": 19, "trackers[1].ready.nothing": 19, "jobs[1].http.headers.X-A": 34, "deadlines": 4, "nothing": 0} {
		if got, _ := lookup(root.Content[0], key); got != want {
			t.Errorf("line of %s = %d, want %d", key, got, want)
		}
	}
	if c.Line("trackers[1].ready.tcp") != 0 {
		t.Errorf("a parsed config kept its document")
	}
	if err := c.Validate(testKinds); err != nil {
		t.Errorf("Validate after Parse: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string // the whole error text
		is   error
	}{
		{"UnknownTopLevelKey", "listen: 127.0.0.1:1\nlisten_addr: x\n",
			`rouse.yaml:2: listen_addr: unknown key; expected one of: allow_non_loopback, data, deadlines, heartbeat, jobs, listen, log, maintenance, max_event_streams, scheduler, shutdown_timeout, sleep, trackers`, ErrUnknownKey},
		{"UnknownNestedKey", "deadlines:\n  tracker: 1s\n  trackr: 2s\n",
			`rouse.yaml:3: deadlines.trackr: unknown key; did you mean "tracker"? expected one of: auto_max, auto_min, scheduler, tracker, wake`, ErrUnknownKey},
		{"UnknownKindOption", "trackers:\n  - name: a\n    kind: probe\n    url: http://x/\n    intreval: 5s\n",
			`rouse.yaml:5: trackers[0].intreval: unknown key; did you mean "interval"? expected one of: interval, ready, tags, url, or for every tracker: deadline, depends_on, health, kind, name, needs_network, on_demand, required, start_limit, start_window`, ErrUnknownKey},
		{"MisspeltCommonKey", "trackers:\n  - name: a\n    kind: probe\n    url: http://x/\n    helth: {interval: 5s}\n",
			`rouse.yaml:5: trackers[0].helth: unknown key; did you mean "health"? expected one of: interval, ready, tags, url, or for every tracker: deadline, depends_on, health, kind, name, needs_network, on_demand, required, start_limit, start_window`, ErrUnknownKey},
		{"MisspeltCommonKeyOnAKindWithoutOptions", "trackers:\n  - name: a\n    kind: plain\n    depend_on: [store]\n",
			`rouse.yaml:4: trackers[0].depend_on: unknown key; did you mean "depends_on"? kind plain has no keys of its own; expected one of: deadline, depends_on, health, kind, name, needs_network, on_demand, required, start_limit, start_window`, ErrUnknownKey},
		{"UnknownNestedKindOption", "trackers:\n  - name: a\n    kind: probe\n    url: http://x/\n    ready: {tcp: x, udp: y}\n",
			`rouse.yaml:5: trackers[0].ready.udp: unknown key; expected one of: http, tcp`, ErrUnknownKey},
		{"OptionOnAKindWithoutOptions", "trackers:\n  - name: a\n    kind: plain\n    url: x\n",
			`rouse.yaml:4: trackers[0].url: unknown key; kind plain has no keys of its own; expected one of: deadline, depends_on, health, kind, name, needs_network, on_demand, required, start_limit, start_window`, ErrUnknownKey},
		{"KindValidatorError", "trackers:\n  - name: a\n    kind: probe\n    url: http://x/\n    interval: 0s\n",
			`rouse.yaml:5: trackers[0].interval: must be at least 1s, got "0s"`, ErrInvalidValue},
		{"KindValidatorErrorOnAMissingKey", "trackers:\n  - name: a\n    kind: probe\n",
			`rouse.yaml:2: trackers[0].url: required`, ErrInvalidValue},
		{"UnknownKind", "trackers:\n  - name: a\n    kind: nope\n",
			`rouse.yaml:3: trackers[0].kind: unknown kind, got "nope"; known kinds: network, plain, probe, rich`, ErrUnknownKind},
		{"MissingKind", "trackers:\n  - name: a\n",
			`rouse.yaml:2: trackers[0].kind: required; known kinds: network, plain, probe, rich`, ErrRequired},
		{"MissingName", "trackers:\n  - kind: plain\n",
			`rouse.yaml:2: trackers[0].name: required: every tracker needs a name`, ErrRequired},
		{"BadName", "trackers:\n  - name: a/b\n    kind: plain\n",
			`rouse.yaml:2: trackers[0].name: must be letters, digits, '.', '_' or '-', starting with a letter or digit, at most 64 characters, got "a/b"`, ErrInvalidValue},
		{"DuplicateName", "trackers:\n  - name: a\n    kind: plain\n  - name: a\n    kind: plain\n",
			`rouse.yaml:4: trackers[1].name: duplicate name, first used by trackers[0] (line 2), got "a"`, ErrDuplicate},
		{"ReservedName", "trackers:\n  - name: store\n    kind: plain\n",
			`rouse.yaml:2: trackers[0].name: is reserved for the built-in store component, got "store"`, ErrDuplicate},
		{"DuplicateKey", "listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\n",
			`rouse.yaml:2: listen: duplicate key, first set at line 1`, ErrDuplicate},
		{"UnknownDependency", "trackers:\n  - name: a\n    kind: plain\n    depends_on:\n      - ghost\n",
			`rouse.yaml:5: trackers[0].depends_on[0]: unknown component, got "ghost"; known: a, scheduler, store`, ErrUnknownDep},
		{"RequiredDependencyOnADisabledScheduler", "scheduler: {enabled: false}\ntrackers:\n  - name: a\n    kind: plain\n    depends_on: [store, scheduler]\n",
			`rouse.yaml:5: trackers[0].depends_on[1]: the scheduler is disabled, got "scheduler"; enable it (scheduler.enabled: true) or make the dependency optional`, ErrUnknownDep},
		{"SelfDependency", "trackers:\n  - name: a\n    kind: plain\n    depends_on: [a]\n",
			`rouse.yaml:4: trackers[0].depends_on[0]: dependency cycle: a -> a`, ErrCycle},
		{"DependencyOfTheWrongShape", "trackers:\n  - name: a\n    kind: plain\n    depends_on: [[b]]\n",
			`rouse.yaml:4: trackers[0].depends_on[0]: must be a component name or {name: NAME, optional: true}, not a list`, ErrWrongType},
		{"UnknownDependencyKey", "trackers:\n  - name: a\n    kind: plain\n    depends_on: [{name: store, optinal: true}]\n",
			`rouse.yaml:4: trackers[0].depends_on[0].optinal: unknown key; did you mean "optional"? expected one of: name, optional, restart`, ErrUnknownKey},
		{"AutoMaxBelowAutoMin", "deadlines: {auto_min: 5s, auto_max: 2s}\n",
			`rouse.yaml:1: deadlines.auto_max: must be at least deadlines.auto_min (5s), got "2s"`, nil},
		{"DeadlineNeitherADurationNorAuto", "trackers:\n  - name: a\n    kind: plain\n    deadline: automatic\n",
			`rouse.yaml:4: trackers[0].deadline: must be a duration like "10s" or "1m30s", got "automatic"`, ErrWrongType},
		{"RestartOnAnOptionalDependency", "trackers:\n  - name: a\n    kind: plain\n    depends_on:\n      - {name: store, optional: true, restart: true}\n",
			`rouse.yaml:5: trackers[0].depends_on[0].restart: applies to a required dependency: an optional one is not waited for, got "true"`, ErrInvalidValue},
		{"StartLimitOutOfRange", "trackers:\n  - name: a\n    kind: plain\n    start_limit: -1\n",
			`rouse.yaml:4: trackers[0].start_limit: must be 0 (the default, 5) or from 1 to 1000, got "-1"`, ErrInvalidValue},
		{"HealthWithoutACheckOnAKindWithoutOne", "trackers:\n  - name: a\n    kind: plain\n    health: {interval: 5s}\n",
			`rouse.yaml:4: trackers[0].health.check: required: this plain tracker has no readiness check of its own to repeat; set health.check to {tcp: HOST:PORT}, {http: URL} or {command: [ARGV]}`, ErrRequired},
		{"HealthRefusedByTheKind", "trackers:\n  - name: a\n    kind: probe\n    url: http://x/\n    tags: [oneshot]\n    health: {check: {tcp: \"127.0.0.1:1\"}}\n",
			`rouse.yaml:6: trackers[0].health: a oneshot has no health`, ErrInvalidValue},
		{"HealthRetriesOutOfRange", "trackers:\n  - name: a\n    kind: plain\n    health:\n      check: {tcp: \"127.0.0.1:1\"}\n      retries: 0\n",
			`rouse.yaml:6: trackers[0].health.retries: must be from 1 to 100, got "0"`, ErrInvalidValue},
		{"HealthIntervalTooShort", "trackers:\n  - name: a\n    kind: plain\n    health: {check: {command: [true]}, interval: 1ms}\n",
			`rouse.yaml:4: trackers[0].health.interval: must be at least 100ms, got "1ms"`, nil},
		{"HealthCheckTwoKinds", "trackers:\n  - name: a\n    kind: plain\n    health:\n      check: {tcp: \"127.0.0.1:1\", http: \"http://x/\"}\n",
			`rouse.yaml:5: trackers[0].health.check: set at most one of tcp, http, command (got 2)`, ErrInvalidValue},
		{"HealthCheckBadAddress", "trackers:\n  - name: a\n    kind: plain\n    health:\n      check: {tcp: nope}\n",
			`rouse.yaml:5: trackers[0].health.check.tcp: must be host:port, got "nope"`, ErrInvalidValue},
		{"HealthUnknownKey", "trackers:\n  - name: a\n    kind: plain\n    health: {check: {tcp: \"127.0.0.1:1\"}, retires: 2}\n",
			`rouse.yaml:4: trackers[0].health.retires: unknown key; did you mean "retries"? expected one of: check, interval, retries, start_period, timeout`, ErrUnknownKey},
		{"StartWindowTooShort", "trackers:\n  - name: a\n    kind: plain\n    start_window: 500ms\n",
			`rouse.yaml:4: trackers[0].start_window: must be 0 (the default) or at least 1s, got "500ms"`, nil},
		{"BadDuration", "heartbeat:\n  max: 10\n",
			`rouse.yaml:2: heartbeat.max: must be a duration like "10s" or "1m30s", got "10"`, ErrWrongType},
		{"DurationTooShort", "deadlines: {wake: 50ms}\n",
			`rouse.yaml:1: deadlines.wake: must be at least 100ms, got "50ms"`, nil},
		{"HeartbeatMaxBelowInitial", "heartbeat: {initial: 5s, max: 2s}\n",
			`rouse.yaml:1: heartbeat.max: must be at least heartbeat.initial (5s), got "2s"`, nil},
		{"PauseGraceNotBelowBudget", "sleep:\n  budget: 1s\n  pause_grace: 1s\n",
			`rouse.yaml:3: sleep.pause_grace: must be less than sleep.budget (1s), got "1s"`, nil},
		{"BadBool", "allow_non_loopback: yes\n",
			`rouse.yaml:1: allow_non_loopback: must be true or false, got "yes"`, ErrWrongType},
		{"WrongCollectionType", "trackers: {name: a}\n",
			`rouse.yaml:1: trackers: must be a list, not a mapping`, ErrWrongType},
		{"ScalarWhereAMappingIsExpected", "log: debug\n",
			`rouse.yaml:1: log: must be a mapping, not a single value, got "debug"`, ErrWrongType},
		{"NonLoopbackListen", "listen: 0.0.0.0:8000\n",
			`rouse.yaml:1: listen: must be a loopback address (127.0.0.1, [::1] or localhost), got "0.0.0.0:8000"; set allow_non_loopback: true to listen on 0.0.0.0`, ErrNotLoopback},
		{"ListenWithoutAPort", "listen: localhost\n",
			`rouse.yaml:1: listen: must be host:port like "127.0.0.1:8000", got "localhost"`, ErrInvalidValue},
		{"BadLogLevel", "log:\n  level: loud\n",
			`rouse.yaml:2: log.level: must be one of debug, info, warn, error, got "loud"`, ErrInvalidValue},
		{"RelativeData", "data: rel/dir\n",
			`rouse.yaml:1: data: must be an absolute path or start with ~/, got "rel/dir"`, ErrInvalidValue},
		{"BadMaintenanceSchedule", "maintenance: {schedule: \"@sometimes\"}\n",
			`rouse.yaml:1: maintenance.schedule: must be a cron expression like "0 3 * * *" or a descriptor like "@daily" or "@every 5m", got "@sometimes"; unrecognized descriptor: @sometimes`, ErrInvalidValue},
		{"BadJobSchedule", "jobs:\n  - name: j\n    schedule: \"61 * * * *\"\n    command: [true]\n",
			`rouse.yaml:3: jobs[0].schedule: must be a cron expression like "0 3 * * *" or a descriptor like "@daily" or "@every 5m", got "61 * * * *"; end of range (61) above maximum (59): 61`, ErrInvalidValue},
		{"BadTimezone", "jobs:\n  - name: j\n    schedule: \"@daily\"\n    timezone: Mars/Olympus\n    command: [true]\n",
			`rouse.yaml:4: jobs[0].timezone: must be an IANA time zone like "Europe/Paris" or "UTC", got "Mars/Olympus"`, ErrInvalidValue},
		{"JobWithBothCommandAndHTTP", "jobs:\n  - name: j\n    schedule: \"@daily\"\n    command: [true]\n    http: {url: \"http://x/\"}\n",
			`rouse.yaml:5: jobs[0].http: a job has either command or http, not both`, ErrInvalidValue},
		{"JobHTTPMethodTheSchedulerCannotSend", "jobs:\n  - name: j\n    schedule: \"@daily\"\n    http:\n      url: http://x/\n      method: PROPFIND\n",
			`rouse.yaml:6: jobs[0].http.method: must be GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS, got "PROPFIND"`, ErrInvalidValue},
		{"JobNamedAsABuiltInJob", "jobs:\n  - name: quick-check\n    schedule: \"@daily\"\n    command: [true]\n",
			`rouse.yaml:2: jobs[0].name: "quick-check" is the name of a built-in job; choose another, got "quick-check"`, ErrDuplicate},
		{"JobWithNeither", "jobs:\n  - name: j\n    schedule: \"@daily\"\n",
			`rouse.yaml:2: jobs[0]: a job needs a command (a list: [program, args...]) or an http request`, ErrRequired},
		{"JobCommandAsAString", "jobs:\n  - name: j\n    schedule: \"@daily\"\n    command: echo hi\n",
			`rouse.yaml:4: jobs[0].command: must be a list, not a single value, got "echo hi"`, ErrWrongType},
		{"JobBadMisfire", "jobs:\n  - name: j\n    schedule: \"@daily\"\n    command: [true]\n    misfire: later\n",
			`rouse.yaml:5: jobs[0].misfire: must be one of coalesce, skip, all, got "later"`, ErrInvalidValue},
		{"JobBadStatus", "jobs:\n  - name: j\n    schedule: \"@daily\"\n    http:\n      url: https://x/\n      expect_status: 42\n",
			`rouse.yaml:6: jobs[0].http.expect_status: must be an HTTP status from 100 to 599, got "42"`, ErrInvalidValue},
		{"JobNotAnInteger", "jobs:\n  - name: j\n    schedule: \"@daily\"\n    command: [true]\n    max_instances: two\n",
			`rouse.yaml:5: jobs[0].max_instances: must be an integer, got "two"`, ErrWrongType},
		{"DuplicateJobName", "jobs:\n  - {name: j, schedule: \"@daily\", command: [a]}\n  - {name: j, schedule: \"@daily\", command: [a]}\n",
			`rouse.yaml:3: jobs[1].name: duplicate job name, first used by jobs[0] (line 2), got "j"`, ErrDuplicate},
		{"SyntaxError", "listen: [\n",
			`rouse.yaml:1: invalid YAML: did not find expected node content`, ErrSyntax},
		{"TwoDocuments", "listen: 127.0.0.1:1\n---\nlisten: 127.0.0.1:2\n",
			`rouse.yaml:2: only one YAML document is allowed`, ErrSyntax},
		{"TopLevelList", "- a\n",
			`rouse.yaml:1: must be a mapping, not a list`, ErrWrongType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("rouse.yaml", []byte(tt.src), testKinds)
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", c)
			}
			if c != nil {
				t.Errorf("Parse returned a config with an error")
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n got %s\nwant %s", err, tt.want)
			}
			var es Errors
			if !errors.As(err, &es) || len(es) != 1 {
				t.Fatalf("want one error in Errors, got %#v", err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(err, %v) = false", tt.is)
			}
		})
	}
}

func TestParseReportsAllErrorsAtOnce(t *testing.T) {
	src := `listen: 0.0.0.0:80
bogus: 1
deadlines: {tracker: 0s, wake: soon}
trackers:
  - name: a
    kind: nope
    depends_on: [b]
  - name: b
    kind: probe
    url: http://x/
    interval: 10ms
    depends_on: [{name: a, optional: true}, ghost]
jobs:
  - name: j
    schedule: bad
    command: [x]
`
	_, err := Parse("rouse.yaml", []byte(src), testKinds)
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("err = %v", err)
	}
	var got []string
	for _, e := range es {
		got = append(got, e.Error())
	}
	want := []string{
		`rouse.yaml:1: listen: must be a loopback address (127.0.0.1, [::1] or localhost), got "0.0.0.0:80"; set allow_non_loopback: true to listen on 0.0.0.0`,
		`rouse.yaml:2: bogus: unknown key; expected one of: allow_non_loopback, data, deadlines, heartbeat, jobs, listen, log, maintenance, max_event_streams, scheduler, shutdown_timeout, sleep, trackers`,
		`rouse.yaml:3: deadlines.tracker: must be at least 100ms, got "0s"`,
		`rouse.yaml:3: deadlines.wake: must be a duration like "10s" or "1m30s", got "soon"`,
		`rouse.yaml:6: trackers[0].kind: unknown kind, got "nope"; known kinds: network, plain, probe, rich`,
		`rouse.yaml:7: trackers[0].depends_on[0]: dependency cycle: a -> b -> a`,
		`rouse.yaml:11: trackers[1].interval: must be at least 1s, got "10ms"`,
		`rouse.yaml:12: trackers[1].depends_on[1]: unknown component, got "ghost"; known: a, b, scheduler, store`,
		`rouse.yaml:15: jobs[0].schedule: must be a cron expression like "0 3 * * *" or a descriptor like "@daily" or "@every 5m", got "bad"; expected 5 to 6 fields, found 1: [bad]`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestCycles(t *testing.T) {
	tests := []struct {
		name string
		deps map[string]string // tracker → its depends_on list in flow style
		want []string
	}{
		{"TwoNodes", map[string]string{"a": "[b]", "b": "[a]"}, []string{"trackers[0].depends_on[0]: dependency cycle: a -> b -> a"}},
		{"ThreeNodesNamedFromTheFirstInTheFile", map[string]string{"a": "[]", "b": "[c]", "c": "[d]", "d": "[b]"},
			[]string{"trackers[1].depends_on[0]: dependency cycle: b -> c -> d -> b"}},
		{"ThroughAnOptionalEdge", map[string]string{"a": "[{name: b, optional: true}]", "b": "[a]"},
			[]string{"trackers[0].depends_on[0]: dependency cycle: a -> b -> a"}},
		{"TwoSeparateCycles", map[string]string{"a": "[b]", "b": "[a]", "c": "[d, store]", "d": "[c]"},
			[]string{"trackers[0].depends_on[0]: dependency cycle: a -> b -> a", "trackers[2].depends_on[0]: dependency cycle: c -> d -> c"}},
		{"ADiamondIsNotACycle", map[string]string{"a": "[b, c]", "b": "[d]", "c": "[d]", "d": "[store]"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			b.WriteString("trackers:\n")
			for _, n := range []string{"a", "b", "c", "d"} {
				if deps, ok := tt.deps[n]; ok {
					b.WriteString("  - {name: " + n + ", kind: plain, depends_on: " + deps + "}\n")
				}
			}
			_, err := Parse("f", []byte(b.String()), testKinds)
			var got []string
			var es Errors
			if errors.As(err, &es) {
				for _, e := range es {
					got = append(got, e.Key+": "+e.Err.Error())
					if !errors.Is(e, ErrCycle) {
						t.Errorf("not a cycle error: %v", e)
					}
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestHash(t *testing.T) {
	hashes := func(src string) []string {
		t.Helper()
		c := parseOK(t, src)
		var out []string
		for _, tr := range c.Trackers {
			out = append(out, tr.Hash)
		}
		for _, j := range c.Jobs {
			out = append(out, j.Hash)
		}
		return out
	}
	base := hashes("trackers:\n  - name: a\n    kind: probe\n    url: http://x/\n    interval: 5s\n  - name: b\n    kind: plain\njobs:\n  - {name: j, schedule: \"@daily\", command: [x]}\n")
	t.Run("IgnoresLayoutCommentsAndKeyOrder", func(t *testing.T) {
		got := hashes("# c\ntrackers:\n  - {interval: 5s,   url: \"http://x/\", kind: probe, name: a}  # x\n  - kind: plain\n    name: b\njobs:\n  - name: j\n    command:\n      - x\n    schedule: \"@daily\"\n")
		if !reflect.DeepEqual(got, base) {
			t.Fatalf("got %v want %v", got, base)
		}
	})
	t.Run("ChangesOnlyForTheEditedEntry", func(t *testing.T) {
		got := hashes("trackers:\n  - name: a\n    kind: probe\n    url: http://x/\n    interval: 6s\n  - name: b\n    kind: plain\njobs:\n  - {name: j, schedule: \"@daily\", command: [x]}\n")
		if got[0] == base[0] || got[1] != base[1] || got[2] != base[2] {
			t.Fatalf("got %v base %v", got, base)
		}
	})
	t.Run("SeesThroughMergeKeys", func(t *testing.T) {
		merged := hashes("trackers:\n  - &a {name: a, kind: probe, url: http://x/, interval: 5s}\n  - <<: *a\n    name: b\n")
		explicit := hashes("trackers:\n  - {name: a, kind: probe, url: http://x/, interval: 5s}\n  - {name: b, kind: probe, url: http://x/, interval: 5s}\n")
		if !reflect.DeepEqual(merged, explicit) {
			t.Fatalf("merged %v, explicit %v", merged, explicit)
		}
	})
}

func TestMergeKeysAndAliases(t *testing.T) {
	src := "x-base: &base\n  kind: probe\n  url: http://x/\n  interval: 5s\n"
	_, err := Parse("f", []byte(src+"trackers: []\n"), testKinds)
	if err == nil || !strings.Contains(err.Error(), "f:1: x-base: unknown key") {
		t.Fatalf("want the anchor holder reported as an unknown key, got %v", err)
	}
	c := parseOK(t, "trackers:\n  - &a {name: a, kind: probe, url: http://x/, interval: 5s}\n  - <<: *a\n    name: b\n    interval: 7s\n")
	a, b := c.Trackers[0].Options.(*probeOptions), c.Trackers[1].Options.(*probeOptions)
	if a.Interval != 5*time.Second || b.Interval != 7*time.Second || b.URL != "http://x/" || c.Trackers[1].Kind != "probe" {
		t.Fatalf("a=%+v b=%+v", a, b)
	}
	if c.Trackers[0].Hash == c.Trackers[1].Hash {
		t.Fatalf("different entries share a hash")
	}
}

func TestAliasBombIsRefused(t *testing.T) {
	src := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g", "h"} {
		src += n + ": &" + n + " [*" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + "]\n"
		prev = n
	}
	src += "trackers:\n  - name: t\n    kind: probe\n    url: http://x/\n    tags: *h\n"
	_, err := Parse("f", []byte(src), testKinds)
	if err == nil || err.Error() != "f:6: aliases expand to more than 131072 values" || !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v", err)
	}
}

func TestValidateOnAConfigBuiltInCode(t *testing.T) {
	c := Default()
	c.Trackers = []Tracker{{Name: "a", Kind: "plain", DependsOn: []Dependency{{Name: "b"}}}, {Name: "b", Kind: "plain", DependsOn: []Dependency{{Name: "a"}}}}
	c.Heartbeat.Max = 10 * time.Millisecond
	err := c.Validate(testKinds)
	want := "default: heartbeat.max: must be at least heartbeat.initial (1s), got \"10ms\"\n" +
		"default: trackers[0].depends_on[0]: dependency cycle: a -> b -> a"
	if err == nil || err.Error() != want {
		t.Fatalf("err:\n%v\nwant:\n%s", err, want)
	}
}

func TestPermissions(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("listen: 127.0.0.1:8001\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Run("GroupWritableIsRefused", func(t *testing.T) {
		p := write("g.yaml", 0o664)
		err := CheckPermissions(p)
		want := p + ": " + p + " is writable by group (mode 0664); run: chmod go-w " + p
		if err == nil || err.Error() != want || !errors.Is(err, ErrPermissions) {
			t.Fatalf("err = %v, want %s", err, want)
		}
		if _, err := Load(p, testKinds); err == nil || err.Error() != want {
			t.Fatalf("Load err = %v", err)
		}
	})
	t.Run("WorldWritableIsRefused", func(t *testing.T) {
		p := write("o.yaml", 0o606)
		err := CheckPermissions(p)
		if err == nil || !strings.Contains(err.Error(), "is writable by others (mode 0606);") {
			t.Fatalf("err = %v", err)
		}
		p = write("go.yaml", 0o666)
		if err := CheckPermissions(p); err == nil || !strings.Contains(err.Error(), "writable by group and others (mode 0666);") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("OwnerOnlyIsAccepted", func(t *testing.T) {
		for _, mode := range []os.FileMode{0o600, 0o644, 0o400} {
			p := write("ok.yaml", mode)
			if err := CheckPermissions(p); err != nil {
				t.Fatalf("mode %o: %v", mode, err)
			}
		}
		p := write("ok.yaml", 0o600)
		c, err := Load(p, testKinds)
		if err != nil || c.Listen != "127.0.0.1:8001" || c.Source != p {
			t.Fatalf("Load = %+v, %v", c, err)
		}
	})
	t.Run("MissingFileIsAnError", func(t *testing.T) {
		if _, err := Load(filepath.Join(dir, "none.yaml"), testKinds); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestEditDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"interval", "interval", 0}, {"intreval", "interval", 1}, {"trackr", "tracker", 1},
		{"", "abc", 3}, {"kitten", "sitting", 3}, {"url", "tags", 4},
	} {
		got := editDistance(tt.a, tt.b)
		if tt.want > 3 && got > 3 {
			continue
		}
		if got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
	if g := closest("lisen", []string{"data", "listen", "log"}); g != "listen" {
		t.Errorf("closest = %q", g)
	}
	if g := closest("xy", []string{"log", "data"}); g != "" {
		t.Errorf("closest of a short unrelated key = %q", g)
	}
}

func TestStartLimitAndAutoDeadline(t *testing.T) {
	c := parseOK(t, `
deadlines: {auto_min: 2s, auto_max: 1m}
trackers:
  - name: a
    kind: plain
    deadline: auto
    start_limit: 3
    start_window: 10s
  - name: b
    kind: plain
    deadline: 4s
`)
	a, b := c.Trackers[0], c.Trackers[1]
	if !a.DeadlineAuto || a.Deadline != 0 || b.DeadlineAuto || b.Deadline != 4*time.Second {
		t.Errorf("deadlines: a %v/%s, b %v/%s", a.DeadlineAuto, a.Deadline, b.DeadlineAuto, b.Deadline)
	}
	if c.Deadlines.AutoMin != 2*time.Second || c.Deadlines.AutoMax != time.Minute {
		t.Errorf("auto bounds %+v", c.Deadlines)
	}
	if n, w := a.Limits(); n != 3 || w != 10*time.Second {
		t.Errorf("a's start limit %d in %s", n, w)
	}
	if n, w := b.Limits(); n != DefaultStartLimit || w != DefaultStartWindow {
		t.Errorf("b's start limit %d in %s, want the defaults", n, w)
	}
}

func TestHealth(t *testing.T) {
	t.Run("DefaultsAndTheKindsOwnCheck", func(t *testing.T) {
		c := parseOK(t, "trackers:\n  - name: a\n    kind: probe\n    url: http://x/\n    ready: {tcp: \"127.0.0.1:9\"}\n    health: {}\n  - name: b\n    kind: plain\n")
		h := c.Trackers[0].Health
		if h == nil {
			t.Fatal("health: {} left Health nil")
		}
		if d := DefaultHealth(); h.Interval != d.Interval || h.Timeout != d.Timeout || h.Retries != d.Retries || h.StartPeriod != d.StartPeriod || h.Check.Count() != 0 {
			t.Errorf("health = %+v, want the defaults %+v", *h, DefaultHealth())
		}
		if c.Trackers[1].Health != nil {
			t.Errorf("a tracker without health: got %+v", c.Trackers[1].Health)
		}
	})
	t.Run("GivenValuesAndCheck", func(t *testing.T) {
		c := parseOK(t, "trackers:\n  - name: a\n    kind: plain\n    health:\n      check: {command: [true]}\n      interval: 1s\n      timeout: 500ms\n      retries: 2\n      start_period: 30s\n")
		h := c.Trackers[0].Health
		want := Health{Interval: time.Second, Timeout: 500 * time.Millisecond, Retries: 2, StartPeriod: 30 * time.Second}
		want.Check.Command = []string{"true"}
		if h == nil || h.Interval != want.Interval || h.Timeout != want.Timeout || h.Retries != want.Retries || h.StartPeriod != want.StartPeriod || len(h.Check.Command) != 1 {
			t.Errorf("health = %+v, want %+v", h, want)
		}
	})
}
