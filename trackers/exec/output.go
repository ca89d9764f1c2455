package exec

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"
)

// maxLineBytes bounds one kept line; the rest of a longer line is dropped.
const maxLineBytes = 4096

// logRate is how many output lines per second reach the log; the ring keeps
// every line whatever the rate.
const logRate = 20

// ring keeps the last n lines. It is safe for concurrent use.
type ring struct {
	mu    sync.Mutex
	lines []string
	next  int
	full  bool
}

func newRing(n int) *ring { return &ring{lines: make([]string, n)} }

func (r *ring) add(line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.lines) == 0 {
		return
	}
	r.lines[r.next] = line
	r.next++
	if r.next == len(r.lines) {
		r.next, r.full = 0, true
	}
}

// snapshot returns the kept lines, oldest first.
func (r *ring) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full {
		return append([]string(nil), r.lines[:r.next]...)
	}
	out := make([]string, 0, len(r.lines))
	out = append(out, r.lines[r.next:]...)
	return append(out, r.lines[:r.next]...)
}

// limiter lets at most rate events through per one-second window and
// counts the rest. It is safe for concurrent use.
type limiter struct {
	mu         sync.Mutex
	rate       int
	window     time.Time
	n          int
	suppressed int
}

// allow reports whether an event at now may pass, and how many events were
// suppressed in the window that just ended (reported once, by the first
// event of a new window).
func (l *limiter) allow(now time.Time) (ok bool, dropped int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.window.IsZero() || now.Sub(l.window) >= time.Second || now.Before(l.window) {
		dropped, l.suppressed = l.suppressed, 0
		l.window, l.n = now, 0
	}
	if l.n < l.rate {
		l.n++
		return true, dropped
	}
	l.suppressed++
	return false, dropped
}

// flush returns and clears the suppressed count (for the end of a stream).
func (l *limiter) flush() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.suppressed
	l.suppressed = 0
	return n
}

// sink is where a child's output lines go: the ring and, rate-limited, the
// component's log.
type sink struct {
	log  *slog.Logger
	ring *ring
	lim  *limiter

	mu       sync.Mutex
	lastLine string // this process's newest line, kept even when the ring keeps none
}

func (s *sink) line(stream, line string) {
	s.ring.add(line)
	s.mu.Lock()
	s.lastLine = line
	s.mu.Unlock()
	ok, dropped := s.lim.allow(time.Now())
	if dropped > 0 {
		s.log.Info("child output rate-limited", "dropped_lines", dropped)
	}
	if ok {
		s.log.Info("child output", "stream", stream, "line", line)
	}
}

func (s *sink) last() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastLine
}

func (s *sink) done() {
	if n := s.lim.flush(); n > 0 {
		s.log.Info("child output rate-limited", "dropped_lines", n)
	}
}

// readLines feeds r to s line by line until EOF or an error (the pipe
// closed). Over-long lines are cut at maxLineBytes.
func readLines(r io.Reader, stream string, s *sink) {
	br := bufio.NewReaderSize(r, maxLineBytes)
	var buf []byte
	for {
		chunk, isPrefix, err := br.ReadLine()
		if len(chunk) > 0 && len(buf) < maxLineBytes {
			room := maxLineBytes - len(buf)
			buf = append(buf, chunk[:min(room, len(chunk))]...)
		}
		if err != nil {
			if len(buf) > 0 {
				s.line(stream, string(buf))
			}
			if !errors.Is(err, io.EOF) {
				s.log.Debug("child output read ended", "stream", stream, "err", err)
			}
			return
		}
		if isPrefix {
			continue
		}
		s.line(stream, string(buf))
		buf = buf[:0]
	}
}
