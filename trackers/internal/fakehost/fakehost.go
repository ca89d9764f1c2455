// Package fakehost is a recording trackers.Host for the trackers' tests: it
// keeps every reported state and error, and logs into a buffer a test can
// search (for a leaked secret, say).
package fakehost

import (
	"bytes"
	"log/slog"
	"sync"

	"github.com/rouse-dev/rouse/trackers"
)

// Report is one call to Host.Report.
type Report struct {
	State trackers.State
	Err   error
}

// Host records reports. Use New.
type Host struct {
	mu      sync.Mutex
	reports []Report
	notes   []string // "event: detail"
	changed chan struct{}
	logbuf  lockedBuffer
	logger  *slog.Logger
}

var (
	_ trackers.Host  = (*Host)(nil)
	_ trackers.Noter = (*Host)(nil)
)

// Note implements trackers.Noter.
func (h *Host) Note(event, detail string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.notes = append(h.notes, event+": "+detail)
}

// Notes returns every note so far, as "event: detail".
func (h *Host) Notes() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.notes...)
}

// New returns a Host logging at debug level into its own buffer.
func New() *Host {
	h := &Host{changed: make(chan struct{})}
	h.logger = slog.New(slog.NewTextHandler(&h.logbuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return h
}

// Report implements trackers.Host.
func (h *Host) Report(s trackers.State, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reports = append(h.reports, Report{s, err})
	close(h.changed)
	h.changed = make(chan struct{})
}

// Logger implements trackers.Host.
func (h *Host) Logger() *slog.Logger { return h.logger }

// Reports returns every report so far.
func (h *Host) Reports() []Report {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Report(nil), h.reports...)
}

// States returns the reported states in order.
func (h *Host) States() []trackers.State {
	var out []trackers.State
	for _, r := range h.Reports() {
		out = append(out, r.State)
	}
	return out
}

// Last returns the last report (zero when none).
func (h *Host) Last() Report {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.reports) == 0 {
		return Report{}
	}
	return h.reports[len(h.reports)-1]
}

// Changed returns a channel closed at the next Report.
func (h *Host) Changed() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.changed
}

// Logs returns everything logged so far.
func (h *Host) Logs() string { return h.logbuf.String() }

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
