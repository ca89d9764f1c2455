package roon

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/rouse-dev/rouse/trackers"
)

// Options configures a roon tracker. DefaultOptions fills in the defaults
// named on each field.
type Options struct {
	// Core is the Roon Core's HOST:PORT (its http_port, usually 9330).
	// Set, it skips discovery. Default "": discover the core with SOOD.
	Core string `yaml:"core"`
	// Discovery overrides where SOOD queries go (tests, unusual networks).
	Discovery DiscoveryOptions `yaml:"discovery"`
	// Zone keeps only zones with this display name. Default "": every zone.
	Zone string `yaml:"zone"`
	// Extension is how the extension shows in Roon → Settings → Extensions.
	Extension ExtensionOptions `yaml:"extension"`
	// PingInterval is the time between WebSocket pings; a core that does
	// not answer one before the next is due is dropped, so a frozen core
	// is found within two intervals. Default 10s.
	PingInterval time.Duration `yaml:"ping_interval"`
	// WakePingTimeout bounds the ping sent at once after a wake. Default 3s.
	WakePingTimeout time.Duration `yaml:"wake_ping_timeout"`
	// Backoff bounds redials (equal jitter).
	Backoff BackoffOptions `yaml:"backoff"`
}

// DiscoveryOptions says where SOOD queries are sent.
type DiscoveryOptions struct {
	// Address is where queries go. Default "": the SOOD multicast group
	// 239.255.90.90 and each IPv4 interface's broadcast address.
	Address string `yaml:"address"`
	// Port is the SOOD port. Default 9003.
	Port int `yaml:"port"`
	// Timeout is how long one round of queries waits for an answer.
	// Default 3s.
	Timeout time.Duration `yaml:"timeout"`
}

// ExtensionOptions are the extension's registration details.
type ExtensionOptions struct {
	ID        string `yaml:"id"`        // default "dev.rouse.tracker"
	Name      string `yaml:"name"`      // default "rouse"
	Publisher string `yaml:"publisher"` // default "rouse"
	Email     string `yaml:"email"`     // default "rouse@localhost"
}

// BackoffOptions bounds the redial backoff.
type BackoffOptions struct {
	Initial time.Duration `yaml:"initial"` // default 1s
	Max     time.Duration `yaml:"max"`     // default 30s
}

// DefaultOptions returns Options with every default filled in.
func DefaultOptions() *Options {
	return &Options{
		Discovery:       DiscoveryOptions{Port: soodPort, Timeout: 3 * time.Second},
		Extension:       ExtensionOptions{ID: "dev.rouse.tracker", Name: "rouse", Publisher: "rouse", Email: "rouse@localhost"},
		PingInterval:    10 * time.Second,
		WakePingTimeout: 3 * time.Second,
		Backoff:         BackoffOptions{Initial: time.Second, Max: 30 * time.Second},
	}
}

var _ trackers.Validator = (*Options)(nil)

// Validate implements trackers.Validator.
func (o *Options) Validate() []trackers.FieldError {
	var errs []trackers.FieldError
	add := func(k, f string, a ...any) {
		errs = append(errs, trackers.FieldError{Key: k, Msg: fmt.Sprintf(f, a...)})
	}
	if o.Core != "" {
		if _, err := hostPort(o.Core); err != nil {
			add("core", "want HOST:PORT (the core's http_port, usually 9330), got %q", o.Core)
		}
	}
	if o.Discovery.Address != "" && net.ParseIP(o.Discovery.Address) == nil {
		add("discovery.address", "want an IP address, got %q", o.Discovery.Address)
	}
	if o.Discovery.Port < 1 || o.Discovery.Port > 65535 {
		add("discovery.port", "want a port in 1..65535, got %d", o.Discovery.Port)
	}
	for _, f := range []struct{ k, v string }{
		{"extension.id", o.Extension.ID}, {"extension.name", o.Extension.Name},
		{"extension.publisher", o.Extension.Publisher}, {"extension.email", o.Extension.Email},
	} {
		if f.v == "" {
			add(f.k, "must not be empty")
		} else if len(f.v) > 200 {
			add(f.k, "at most 200 characters")
		}
	}
	pos := func(k string, d time.Duration) {
		if d <= 0 {
			add(k, "must be positive, got %v", d)
		}
	}
	pos("discovery.timeout", o.Discovery.Timeout)
	pos("ping_interval", o.PingInterval)
	pos("wake_ping_timeout", o.WakePingTimeout)
	pos("backoff.initial", o.Backoff.Initial)
	if o.Backoff.Max < o.Backoff.Initial {
		add("backoff.max", "must be at least backoff.initial, got %v", o.Backoff.Max)
	}
	return errs
}

// hostPort checks a HOST:PORT.
func hostPort(s string) (string, error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", err
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 || h == "" {
		return "", fmt.Errorf("bad port in %q", s)
	}
	return s, nil
}
