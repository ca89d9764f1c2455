package websocket

import (
	"bytes"
	"fmt"
	"net/url"
	"text/template"
	"time"

	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/trackers/internal/jpath"
)

// Cursor sources for .Since.
const (
	CursorTime   = "time"   // the last item's unix milliseconds + 1
	CursorTimeS  = "time_s" // the last item's unix seconds + 1
	CursorID     = "id"     // the last item's id + 1 when it is an integer, else the id
	maxBatch     = 256
	batchWindow  = 50 * time.Millisecond
	readLimit    = 4 << 20
	recentIDsCap = 4096
)

// Options configures a websocket tracker. DefaultOptions fills in the
// defaults named on each field.
type Options struct {
	// URL is the ws:// or wss:// address. Required.
	URL string `yaml:"url"`
	// Headers are sent with the opening handshake. Default none.
	Headers map[string]string `yaml:"headers"`
	// Subscribe is a text/template sent as a text message after each
	// connect, with .Since: the cursor inside the resume window, "" for a
	// fresh sync. Default none (nothing is sent).
	Subscribe string `yaml:"subscribe"`
	// DialTimeout bounds connect plus handshake. Default 10s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// PingInterval is the time between keepalive pings. Default 20s.
	PingInterval time.Duration `yaml:"ping_interval"`
	// PingTimeout drops the connection when no pong came. Default 60s.
	PingTimeout time.Duration `yaml:"ping_timeout"`
	// WakePingTimeout bounds the ping sent at once after a wake, where a
	// half-open socket is the common case. Default 5s.
	WakePingTimeout time.Duration `yaml:"wake_ping_timeout"`
	// ResumeWindow: a reconnect this soon after the last message
	// resubscribes from the cursor; later, a fresh sync. Default 15m.
	ResumeWindow time.Duration `yaml:"resume_window"`
	// CleanupGrace is how long a dropped stream keeps its state (and its
	// ready state) before it is torn down; a reconnect in time cancels the
	// cleanup. Default 5s.
	CleanupGrace time.Duration `yaml:"cleanup_grace"`
	// Items says how to read a message's id and time.
	Items ItemsOptions `yaml:"items"`
	// CursorFrom is time (default), time_s or id; see the constants.
	CursorFrom string `yaml:"cursor_from"`
	// Backoff bounds reconnects (equal jitter).
	Backoff BackoffOptions `yaml:"backoff"`
	// MaxItemBytes bounds one item's JSON: a larger message is not stored
	// (a note event, the metric rouse_items_refused_total and the
	// tracker's last error say so) and the stream goes on. Default 1 MiB,
	// at most 4 MiB. (A message over 4 MiB is refused by the WebSocket
	// read limit itself: the connection is closed with 1009.)
	MaxItemBytes int64 `yaml:"max_item_bytes"`
}

// ItemsOptions reads an item's id and time out of a JSON message.
type ItemsOptions struct {
	// ID is the field path of the id. Empty or absent: the SHA-256 of the
	// message and its arrival time. Default "".
	ID string `yaml:"id"`
	// Time is the field path of the time. Empty or absent: the arrival
	// time. Default "".
	Time string `yaml:"time"`
	// TimeFormat is auto (default), unix, unix_ms or rfc3339.
	TimeFormat string `yaml:"time_format"`
}

// BackoffOptions bounds the reconnect backoff.
type BackoffOptions struct {
	Initial time.Duration `yaml:"initial"` // default 1s
	Max     time.Duration `yaml:"max"`     // default 60s
}

// DefaultOptions returns Options with every default filled in.
func DefaultOptions() *Options {
	return &Options{
		DialTimeout:     10 * time.Second,
		PingInterval:    20 * time.Second,
		PingTimeout:     60 * time.Second,
		WakePingTimeout: 5 * time.Second,
		ResumeWindow:    15 * time.Minute,
		CleanupGrace:    5 * time.Second,
		Items:           ItemsOptions{TimeFormat: jpath.FormatAuto},
		CursorFrom:      CursorTime,
		Backoff:         BackoffOptions{Initial: time.Second, Max: 60 * time.Second},
		MaxItemBytes:    trackers.DefaultMaxItemBytes,
	}
}

var _ trackers.Validator = (*Options)(nil)

// Validate implements trackers.Validator.
func (o *Options) Validate() []trackers.FieldError {
	var errs []trackers.FieldError
	add := func(k, f string, a ...any) {
		errs = append(errs, trackers.FieldError{Key: k, Msg: fmt.Sprintf(f, a...)})
	}
	if o.URL == "" {
		add("url", "required")
	} else if u, err := url.Parse(o.URL); err != nil || u.Host == "" ||
		(u.Scheme != "ws" && u.Scheme != "wss" && u.Scheme != "http" && u.Scheme != "https") {
		add("url", "want a ws:// or wss:// URL, got %q", o.URL)
	}
	if o.Subscribe != "" {
		if _, err := renderSubscribe(o.Subscribe, "0"); err != nil {
			add("subscribe", "%v", err)
		}
	}
	pos := func(k string, d time.Duration) {
		if d <= 0 {
			add(k, "must be positive, got %v", d)
		}
	}
	pos("dial_timeout", o.DialTimeout)
	pos("ping_interval", o.PingInterval)
	pos("ping_timeout", o.PingTimeout)
	pos("wake_ping_timeout", o.WakePingTimeout)
	pos("backoff.initial", o.Backoff.Initial)
	if o.ResumeWindow < 0 {
		add("resume_window", "must not be negative, got %v", o.ResumeWindow)
	}
	if o.CleanupGrace < 0 {
		add("cleanup_grace", "must not be negative, got %v", o.CleanupGrace)
	}
	if o.Backoff.Max < o.Backoff.Initial {
		add("backoff.max", "must be at least backoff.initial, got %v", o.Backoff.Max)
	}
	if !jpath.ValidFormat(o.Items.TimeFormat) {
		add("items.time_format", "want auto, unix, unix_ms or rfc3339, got %q", o.Items.TimeFormat)
	}
	switch o.CursorFrom {
	case "", CursorTime, CursorTimeS, CursorID:
	default:
		add("cursor_from", "want time, time_s or id, got %q", o.CursorFrom)
	}
	if fe := trackers.CheckMaxItemBytes(o.MaxItemBytes); fe != nil {
		errs = append(errs, *fe)
	}
	return errs
}

func renderSubscribe(tmpl, since string) (string, error) {
	t, err := template.New("subscribe").Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, struct{ Since string }{since}); err != nil {
		return "", err
	}
	return b.String(), nil
}
