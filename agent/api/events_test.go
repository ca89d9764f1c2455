package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rouse-dev/rouse/agent/api"
	"github.com/rouse-dev/rouse/agent/api/apitest"
	"github.com/rouse-dev/rouse/wire"
)

// pipeListener hands out the server ends of net.Pipe connections, so an
// http.Server runs inside a synctest bubble.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error { l.once.Do(func() { close(l.done) }); return nil }
func (l *pipeListener) Addr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8000}
}

func (l *pipeListener) dial() net.Conn {
	c, s := net.Pipe()
	l.conns <- s
	return c
}

// sseLines reads an event stream line by line into a channel.
func sseLines(r io.Reader) <-chan string {
	out := make(chan string, 64)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			out <- sc.Text()
		}
	}()
	return out
}

// collect reads lines until a blank line ends one frame.
func frame(t *testing.T, lines <-chan string) []string {
	t.Helper()
	var f []string
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("stream ended mid-frame after %q", f)
			}
			if l == "" {
				return f
			}
			f = append(f, l)
		case <-time.After(guard):
			t.Fatalf("no frame; so far %q", f)
		}
	}
}

func TestEventStreamKeepAliveEvery15Seconds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newTestServer(t, &apitest.Backend{}) // a silent stream
		ln := newPipeListener()
		srv := &http.Server{Handler: s.Handler()}
		served := make(chan struct{})
		go func() { defer close(served); _ = srv.Serve(ln) }()

		c := ln.dial()
		_, _ = io.WriteString(c, "GET /api/v1/events HTTP/1.1\r\nHost: "+testHost+"\r\nAuthorization: Bearer "+testToken+"\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("status %d, type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		lines := sseLines(resp.Body)
		start := time.Now()
		if f := frame(t, lines); len(f) != 1 || f[0] != "retry: 2000" {
			t.Fatalf("first frame %q", f)
		}
		for i := 1; i <= 3; i++ {
			time.Sleep(15*time.Second - time.Nanosecond)
			synctest.Wait()
			if len(lines) != 0 {
				t.Fatalf("keep-alive %d came early", i)
			}
			if f := frame(t, lines); len(f) != 1 || f[0] != ": keep-alive" {
				t.Fatalf("frame %q, want a keep-alive", f)
			}
			if got := time.Since(start); got != time.Duration(i)*15*time.Second {
				t.Fatalf("keep-alive %d at %v", i, got)
			}
		}
		c.Close()
		_ = srv.Close()
		<-served
		for range lines {
		}
	})
}

func TestEventStream(t *testing.T) {
	evs := []wire.Event{
		{ID: 5, Type: wire.EventState, At: t0, State: &wire.StateEvent{Name: "tunnel", State: "ready", Previous: "starting"}},
		{ID: 6, Type: wire.EventWake, At: t0, Wake: &wire.WakeEvent{Phase: "restoring", Pending: 1, Total: 3}},
		{ID: 7, Type: wire.EventConfig, At: t0, Config: &wire.ConfigState{State: "rejected", Error: "rouse.yaml:3: bad\nline"}},
	}
	open := func(t *testing.T, lastIDs chan<- int64, header map[string]string, path string) <-chan string {
		t.Helper()
		b := &apitest.Backend{SubscribeFunc: func(ctx context.Context, lastID int64) <-chan wire.Event {
			lastIDs <- lastID
			ch := make(chan wire.Event, len(evs))
			for _, e := range evs {
				ch <- e
			}
			close(ch) // then the client reconnects
			return ch
		}}
		s := newTestServer(t, b)
		w := do(s, req{path: path, header: header})
		if w.Code != 200 {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		if w.Header().Get("Cache-Control") != "no-store" {
			t.Fatal("event stream is cacheable")
		}
		return sseLines(strings.NewReader(w.Body.String()))
	}
	t.Run("EachEventIsFramedWithIDTypeAndJSON", func(t *testing.T) {
		ids := make(chan int64, 1)
		lines := open(t, ids, nil, "/api/v1/events")
		if <-ids != 0 {
			t.Fatal("a fresh stream must subscribe from 0")
		}
		frame(t, lines) // retry
		for _, want := range evs {
			f := frame(t, lines)
			if len(f) != 3 || f[0] != "id: "+itoa(want.ID) || f[1] != "event: "+want.Type || !strings.HasPrefix(f[2], "data: ") {
				t.Fatalf("frame %q", f)
			}
			var got wire.Event
			if err := json.Unmarshal([]byte(strings.TrimPrefix(f[2], "data: ")), &got); err != nil {
				t.Fatal(err)
			}
			wantJSON, _ := json.Marshal(want)
			gotJSON, _ := json.Marshal(got)
			if string(wantJSON) != string(gotJSON) {
				t.Fatalf("event %s, want %s", gotJSON, wantJSON)
			}
		}
		if _, ok := <-lines; ok {
			t.Fatal("stream goes on after the backend closed it")
		}
	})
	t.Run("LastEventIDHeaderResumes", func(t *testing.T) {
		ids := make(chan int64, 1)
		open(t, ids, map[string]string{"Last-Event-ID": "41"}, "/api/v1/events")
		if got := <-ids; got != 41 {
			t.Fatalf("Subscribe from %d", got)
		}
	})
	t.Run("LastEventIDQueryResumes", func(t *testing.T) {
		ids := make(chan int64, 1)
		open(t, ids, nil, "/api/v1/events?last_event_id=42")
		if got := <-ids; got != 42 {
			t.Fatalf("Subscribe from %d", got)
		}
	})
	t.Run("TheHeaderWinsOverTheQuery", func(t *testing.T) {
		ids := make(chan int64, 1)
		open(t, ids, map[string]string{"Last-Event-ID": "43"}, "/api/v1/events?last_event_id=1")
		if got := <-ids; got != 43 {
			t.Fatalf("Subscribe from %d", got)
		}
	})
}

func TestEventStreamEndsWhenTheClientLeaves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ended := make(chan struct{})
		b := &apitest.Backend{SubscribeFunc: func(ctx context.Context, _ int64) <-chan wire.Event {
			ch := make(chan wire.Event)
			go func() { <-ctx.Done(); close(ended) }()
			return ch
		}}
		s := newTestServer(t, b)
		ln := newPipeListener()
		srv := &http.Server{Handler: s.Handler()}
		served := make(chan struct{})
		go func() { defer close(served); _ = srv.Serve(ln) }()
		c := ln.dial()
		_, _ = io.WriteString(c, "GET /api/v1/events HTTP/1.1\r\nHost: "+testHost+"\r\nX-API-Key: "+testToken+"\r\n\r\n")
		if _, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
			t.Fatal(err)
		}
		c.Close()
		<-ended // the subscription's context is cancelled
		_ = srv.Close()
		<-served
	})
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestAStalledReaderIsCutOffAfterTheWriteTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ended := make(chan struct{})
		b := &apitest.Backend{SubscribeFunc: func(ctx context.Context, _ int64) <-chan wire.Event {
			ch := make(chan wire.Event, 1)
			ch <- wire.Event{ID: 1, Type: wire.EventNote, Note: &wire.NoteEvent{Name: "x", Event: "y", Detail: strings.Repeat("z", 8<<10)}}
			go func() { <-ctx.Done(); close(ended) }()
			return ch
		}}
		s := newTestServer(t, b)
		ln := newPipeListener()
		srv := &http.Server{Handler: s.Handler()}
		served := make(chan struct{})
		go func() { defer close(served); _ = srv.Serve(ln) }()
		c := ln.dial()
		_, _ = io.WriteString(c, "GET /api/v1/events HTTP/1.1\r\nHost: "+testHost+"\r\nX-API-Key: "+testToken+"\r\n\r\n")
		if _, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
			t.Fatal(err)
		}
		// The client reads nothing more: the 8 KB event cannot be written.
		time.Sleep(30*time.Second - time.Millisecond)
		synctest.Wait()
		select {
		case <-ended:
			t.Fatal("cut off before the write timeout")
		default:
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		select {
		case <-ended:
		default:
			t.Fatal("a reader that reads nothing for 30 s still holds its stream")
		}
		c.Close()
		_ = srv.Close()
		<-served
	})
}

// flushCounter counts the handler's flushes.
type flushCounter struct {
	*httptest.ResponseRecorder
	flushes int
}

func (f *flushCounter) Flush() { f.flushes++; f.ResponseRecorder.Flush() }

// A burst of events already queued goes out in a few flushes, not one per
// event, every event framed and in order.
func TestEventStreamFlushesABurstTogether(t *testing.T) {
	const n = 1000
	b := &apitest.Backend{SubscribeFunc: func(ctx context.Context, lastID int64) <-chan wire.Event {
		ch := make(chan wire.Event, n)
		for i := range n {
			ch <- wire.Event{ID: int64(i + 1), Type: wire.EventState, At: t0, State: &wire.StateEvent{Name: "c", State: "ready"}}
		}
		close(ch)
		return ch
	}}
	s := newTestServer(t, b)
	r := httptest.NewRequest(http.MethodGet, "http://"+testHost+"/api/v1/events", nil)
	r.Header.Set("X-API-Key", testToken)
	w := &flushCounter{ResponseRecorder: httptest.NewRecorder()}
	s.Handler().ServeHTTP(w, r)
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if max := 2 + n/api.MaxEventsPerFlush; w.flushes > max {
		t.Errorf("%d events took %d flushes, want at most %d", n, w.flushes, max)
	}
	lines := sseLines(strings.NewReader(w.Body.String()))
	frame(t, lines) // retry
	for i := range n {
		if f := frame(t, lines); len(f) != 3 || f[0] != "id: "+itoa(int64(i+1)) {
			t.Fatalf("frame %d: %q", i, f)
		}
	}
	if _, ok := <-lines; ok {
		t.Fatal("more than the events sent")
	}
}
