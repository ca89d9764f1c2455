package exec

import (
	"log/slog"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestPoller(t *testing.T) {
	t.Run("SplitsLinesAsReadLinesDoesAcrossReads", func(t *testing.T) {
		s := &sink{log: slog.New(slog.DiscardHandler), ring: newRing(10), lim: &limiter{rate: logRate}}
		r := &pipeReader{stream: "stdout", sink: s}
		long := strings.Repeat("x", 3*maxLineBytes)
		in := "a\r\n" + long + "\nb\nno newline"
		for i := 0; i < len(in); i += 7 { // in pieces, as reads come
			r.feed([]byte(in[i:min(i+7, len(in))]))
		}
		r.flush()
		got := s.ring.snapshot()
		if len(got) != 4 || got[0] != "a" || len(got[1]) != maxLineBytes || got[2] != "b" || got[3] != "no newline" {
			t.Fatalf("lines %q", got)
		}
	})
	t.Run("ReadsManyPipesInOneGoroutineUntilEOF", func(t *testing.T) {
		if !holdPoller() {
			t.Skip("no epoll here")
		}
		defer releasePoller()
		const n = 8
		var sinks []*sink
		var readers []outputReader
		var writers []*os.File
		for range n {
			pr, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			s := &sink{log: slog.New(slog.DiscardHandler), ring: newRing(100), lim: &limiter{rate: logRate}}
			r := readOutput(pr, "stdout", s)
			if r == nil {
				t.Fatal("the poller did not take the pipe")
			}
			sinks, readers, writers = append(sinks, s), append(readers, r), append(writers, pw)
		}
		for i := range 50 {
			for _, w := range writers {
				if _, err := w.WriteString("line " + strings.Repeat("y", i) + "\n"); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, w := range writers {
			w.Close() // EOF
		}
		for i, r := range readers {
			select {
			case <-r.Done():
			case <-time.After(20 * time.Second):
				t.Fatalf("reader %d never saw EOF", i)
			}
			if got := sinks[i].ring.snapshot(); len(got) != 50 || !slices.Contains(got, "line "+strings.Repeat("y", 49)) {
				t.Fatalf("reader %d kept %d lines", i, len(got))
			}
			r.Close()
		}
	})
	t.Run("CloseStopsAReaderWhoseWriterStaysOpen", func(t *testing.T) {
		if !holdPoller() {
			t.Skip("no epoll here")
		}
		defer releasePoller()
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer pw.Close()
		s := &sink{log: slog.New(slog.DiscardHandler), ring: newRing(10), lim: &limiter{rate: logRate}}
		r := readOutput(pr, "stderr", s)
		r.Close()
		select {
		case <-r.Done():
		default:
			t.Fatal("Done is not closed after Close")
		}
		r.Close() // twice is fine
	})
	t.Run("DrainReadsToTheEndWithoutThePollersGoroutine", func(t *testing.T) {
		if !holdPoller() {
			t.Skip("no epoll here")
		}
		defer releasePoller()
		// In the poller's set but not in its epoll set: only drain can
		// read these.
		reader := func() (*pipeReader, *os.File) {
			pr, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			s := &sink{log: slog.New(slog.DiscardHandler), ring: newRing(10), lim: &limiter{rate: logRate}}
			r := &pipeReader{f: pr, fd: int(pr.Fd()), stream: "stdout", sink: s, done: make(chan struct{})}
			if err := syscall.SetNonblock(r.fd, true); err != nil {
				t.Fatal(err)
			}
			thePoller.mu.Lock()
			thePoller.pipes[int32(r.fd)] = r
			thePoller.mu.Unlock()
			return r, pw
		}
		ended, w := reader()
		defer ended.Close()
		if _, err := w.WriteString("first\nlast without newline"); err != nil {
			t.Fatal(err)
		}
		w.Close()
		ended.drain()
		select {
		case <-ended.Done():
		default:
			t.Fatal("drain returned before the pipe's end, its writer closed")
		}
		if got := ended.sink.ring.snapshot(); !slices.Equal(got, []string{"first", "last without newline"}) {
			t.Fatalf("lines %q", got)
		}
		open, w2 := reader()
		defer open.Close()
		defer w2.Close()
		if _, err := w2.WriteString("so far\n"); err != nil {
			t.Fatal(err)
		}
		open.drain() // must not block: the writer is still open
		select {
		case <-open.Done():
			t.Fatal("Done closed while a writer is open")
		default:
		}
		if got := open.sink.ring.snapshot(); !slices.Equal(got, []string{"so far"}) {
			t.Fatalf("lines %q", got)
		}
	})
}
