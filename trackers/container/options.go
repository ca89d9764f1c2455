package container

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/rouse-dev/rouse/trackers"
)

// Options configure one container component. Every field's comment states
// its default; DefaultOptions returns them filled in.
type Options struct {
	// Container names an existing container by name or id. Exactly one of
	// Container and Compose is set.
	Container string `yaml:"container"`
	// Compose finds the container by docker compose's labels instead
	// (com.docker.compose.project and com.docker.compose.service).
	Compose Compose `yaml:"compose"`
	// Engine is the Engine API address: unix:///path, tcp://host:port or
	// npipe://. Default: DOCKER_HOST, then the platform's standard socket
	// (unix:///var/run/docker.sock). Podman's Docker-compatible socket
	// (unix://$XDG_RUNTIME_DIR/podman/podman.sock) works too.
	Engine string `yaml:"engine"`
	// Ready is the readiness check. Default: the container's own
	// HEALTHCHECK when its image or container defines one (ready when
	// Docker says healthy), otherwise ready once it runs.
	Ready Ready `yaml:"ready"`
	// ReadyInterval is how often a tcp, http or exec check runs until it
	// passes. Default 500ms.
	ReadyInterval time.Duration `yaml:"ready_interval"`
	// ReadyTimeout bounds one run of a tcp, http or exec check. Default 5s.
	ReadyTimeout time.Duration `yaml:"ready_timeout"`
	// RestartOnWake restarts the container on every wake instead of only
	// checking it again. Default false.
	RestartOnWake bool `yaml:"restart_on_wake"`
	// StopOnStop stops the container (with its own stop timeout) when the
	// component stops: `rouse stop NAME`, a config change that removes or
	// changes it, agent shutdown. false: rouse only stops watching it.
	// Default true.
	StopOnStop *bool `yaml:"stop_on_stop"`
	// RestartBackoff is the delay before starting again a container that
	// died: capped exponential with full jitter. Default {initial: 1s,
	// max: 30s}.
	RestartBackoff Backoff `yaml:"restart_backoff"`
}

// Compose names a container of a docker compose project.
type Compose struct {
	// Project is the compose project's name (com.docker.compose.project).
	Project string `yaml:"project"`
	// Service is the service's name (com.docker.compose.service).
	Service string `yaml:"service"`
}

// Ready is the readiness check: at most one field is set.
type Ready struct {
	// Health, when set, says whether Docker's own HEALTHCHECK decides
	// readiness. Default: yes when the container has one.
	Health *bool `yaml:"health"`
	// TCP is host:port; ready when a TCP connection to it succeeds.
	TCP string `yaml:"tcp"`
	// HTTP is an http(s) URL; ready when a GET answers 2xx.
	HTTP string `yaml:"http"`
	// Exec is an argv run inside the container (the Engine API's exec);
	// ready when it exits 0, e.g. [mysqladmin, ping].
	Exec []string `yaml:"exec"`
}

// Backoff is a capped exponential backoff.
type Backoff struct {
	// Initial is the first delay's upper bound. Default 1s.
	Initial time.Duration `yaml:"initial"`
	// Max caps every delay. Default 30s.
	Max time.Duration `yaml:"max"`
}

// Defaults, as documented on Options.
const (
	DefaultReadyInterval  = 500 * time.Millisecond
	DefaultReadyTimeout   = 5 * time.Second
	DefaultBackoffInitial = time.Second
	DefaultBackoffMax     = 30 * time.Second
)

// DefaultOptions returns Options with every default filled in.
func DefaultOptions() *Options {
	return &Options{
		ReadyInterval:  DefaultReadyInterval,
		ReadyTimeout:   DefaultReadyTimeout,
		RestartBackoff: Backoff{Initial: DefaultBackoffInitial, Max: DefaultBackoffMax},
	}
}

var _ trackers.Validator = (*Options)(nil)

// Validate checks the options; keys are relative to the tracker's entry.
func (o *Options) Validate() []trackers.FieldError {
	var errs []trackers.FieldError
	add := func(key, format string, args ...any) {
		errs = append(errs, trackers.FieldError{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	hasCompose := o.Compose.Project != "" || o.Compose.Service != ""
	switch {
	case o.Container == "" && !hasCompose:
		add("container", "is required: the name or id of an existing container (or compose: {project, service})")
	case o.Container != "" && hasCompose:
		add("compose", "set either container or compose, not both")
	case hasCompose && (o.Compose.Project == "" || o.Compose.Service == ""):
		add("compose", "needs both project and service, e.g. {project: blog, service: db}")
	}
	if strings.ContainsAny(o.Container, " \t\n/") {
		add("container", "%q is not a container name or id", o.Container)
	}
	if o.Engine != "" {
		u, err := url.Parse(o.Engine)
		switch {
		case err != nil:
			add("engine", "%q is not an address: %v", o.Engine, err)
		case u.Scheme != "unix" && u.Scheme != "tcp" && u.Scheme != "npipe" && u.Scheme != "http" && u.Scheme != "https":
			add("engine", "%q: want unix:///path/to/docker.sock, tcp://host:port or npipe://", o.Engine)
		}
	}
	n := 0
	if o.Ready.Health != nil && *o.Ready.Health {
		n++
	}
	if o.Ready.TCP != "" {
		n++
		if _, _, err := net.SplitHostPort(o.Ready.TCP); err != nil {
			add("ready.tcp", "%q is not host:port", o.Ready.TCP)
		}
	}
	if o.Ready.HTTP != "" {
		n++
		if u, err := url.Parse(o.Ready.HTTP); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("ready.http", "%q is not an http(s) URL", o.Ready.HTTP)
		}
	}
	if len(o.Ready.Exec) > 0 {
		n++
		if strings.TrimSpace(o.Ready.Exec[0]) == "" {
			add("ready.exec", "the program (first element) must not be empty")
		}
	}
	if n > 1 {
		add("ready", "set at most one of health, tcp, http and exec")
	}
	if o.ReadyInterval < 10*time.Millisecond {
		add("ready_interval", "must be at least 10ms, got %q", o.ReadyInterval)
	}
	if o.ReadyTimeout <= 0 {
		add("ready_timeout", "must be positive, got %q", o.ReadyTimeout)
	}
	if o.RestartBackoff.Initial <= 0 || o.RestartBackoff.Max < o.RestartBackoff.Initial {
		add("restart_backoff", "needs 0 < initial <= max, got {initial: %s, max: %s}", o.RestartBackoff.Initial, o.RestartBackoff.Max)
	}
	return errs
}

func (o *Options) stopOnStop() bool { return o.StopOnStop == nil || *o.StopOnStop }

// target describes the container for messages.
func (o *Options) target() string {
	if o.Container != "" {
		return fmt.Sprintf("container %q", o.Container)
	}
	return fmt.Sprintf("compose service %q of project %q", o.Compose.Service, o.Compose.Project)
}

// HealthCheck says whether a health: entry may repeat the readiness check
// (trackers.HealthOptions): a container always has one (its ready check,
// else running and, with a HEALTHCHECK, healthy).
func (o *Options) HealthCheck() (own bool, refuse string) { return true, "" }
