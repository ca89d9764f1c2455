package api

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/rouse-dev/rouse/wire"
)

// keepAliveInterval is how often an idle event stream gets a comment line,
// so clients and proxies notice a dead connection. A var for tests.
var keepAliveInterval = 15 * time.Second

// streamWriteTimeout bounds each write of an event stream: a client that
// reads nothing for this long is cut off, whatever is pending (the agent
// has already stopped queueing events for it: its subscription is dropped
// once 64 events behind). A var for tests.
var streamWriteTimeout = 30 * time.Second

// retryMillis is the reconnect delay suggested to EventSource clients.
const retryMillis = 2000

// getEvents streams Backend.Subscribe as Server-Sent Events until the
// client goes away, the backend closes the channel (the client then
// reconnects with Last-Event-ID) or the server shuts down.
func (s *Server) getEvents(w http.ResponseWriter, r *http.Request) error {
	last := r.Header.Get("Last-Event-ID")
	name := "Last-Event-ID"
	if last == "" {
		last, name = r.URL.Query().Get("last_event_id"), "last_event_id"
	}
	var lastID int64
	if last != "" {
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n < 0 {
			return badParam(name, "a non-negative integer event id", last)
		}
		lastID = n
	}

	if r.Method == http.MethodHead {
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		return nil
	}

	ok, refused := s.streams.take(s.now())
	if refused > 0 {
		s.log.Warn("api event streams refused: too many open", "max_event_streams", s.streams.limit(), "refused", refused)
	}
	if !ok {
		return errf(http.StatusServiceUnavailable, wire.CodeUnavailable,
			"too many event streams open (at most %d): close another dashboard or client, or raise max_event_streams in the config", s.streams.limit())
	}
	defer s.streams.release()

	rc := http.NewResponseController(w)
	// The server's read timeout is for requests, not for a stream that
	// stays open for hours.
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})

	ctx := r.Context()
	ch := s.b.Subscribe(ctx, lastID)

	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriter(w)
	flush := func() error {
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if err := bw.Flush(); err != nil {
			return err
		}
		return rc.Flush()
	}
	_, _ = bw.WriteString("retry: " + strconv.Itoa(retryMillis) + "\n\n")
	if err := flush(); err != nil {
		return nil
	}

	tick := time.NewTicker(keepAliveInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.closing:
			return nil
		case <-tick.C:
			_, _ = bw.WriteString(": keep-alive\n\n")
			if err := flush(); err != nil {
				s.log.Debug("api event stream ended", "err", err)
				return nil
			}
		case ev, ok := <-ch:
			if !ok {
				return nil
			}
			s.encodeEvent(bw, ev)
			// What is queued behind it goes out in the same flush: a wake
			// publishes a thousand events within milliseconds, and a flush
			// per event (two system calls) made the stream's goroutine hold
			// a processor the API's requests were waiting for.
			more := true
			for n := 1; more && n < maxEventsPerFlush; n++ {
				select {
				case ev, ok := <-ch:
					if !ok {
						_ = flush()
						return nil
					}
					s.encodeEvent(bw, ev)
				default:
					more = false
				}
			}
			if err := flush(); err != nil {
				s.log.Debug("api event stream ended", "err", err)
				return nil
			}
		}
	}
}

// maxEventsPerFlush bounds how many queued events one flush carries, so a
// client sees a long burst as it is written rather than at its end.
const maxEventsPerFlush = 256

// encodeEvent writes one event's frame to bw.
func (s *Server) encodeEvent(bw *bufio.Writer, ev wire.Event) {
	data, err := json.Marshal(ev)
	if err != nil {
		s.log.Error("api event not encodable", "id", ev.ID, "type", ev.Type, "err", err)
		return
	}
	writeEvent(bw, ev, data)
}

// writeEvent frames one event. JSON from encoding/json holds no newline, so
// one data line suffices.
func writeEvent(bw *bufio.Writer, ev wire.Event, data []byte) {
	typ := ev.Type
	if typ == "" {
		typ = "message"
	}
	_, _ = bw.WriteString("id: " + strconv.FormatInt(ev.ID, 10) + "\nevent: " + typ + "\ndata: ")
	_, _ = bw.Write(data)
	_, _ = bw.WriteString("\n\n")
}
