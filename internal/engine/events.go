package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// Event is one message of GET /events (the Engine's EventMessage).
type Event struct {
	Type     string `json:"Type"`
	Action   string `json:"Action"` // start, die, health_status: healthy, …
	Actor    Actor  `json:"Actor"`
	Time     int64  `json:"time"`
	TimeNano int64  `json:"timeNano"`
	// Status is the pre-1.22 name of Action; engines still send both.
	Status string `json:"status"`
}

// Actor is the object an event is about.
type Actor struct {
	ID         string            `json:"ID"`
	Attributes map[string]string `json:"Attributes"`
}

// Events is a subscription to the engine's event stream. Its one
// goroutine decodes the stream into C; C is closed when the stream ends
// (the engine went away, a broken event, ctx ended or Close), and Err then
// says why. Close stops the goroutine and waits for it.
type Events struct {
	C <-chan Event

	cancel context.CancelFunc
	done   chan struct{}
	err    error // set before done is closed
}

// Events subscribes to the engine's events matching f and returns once the
// engine has accepted the subscription, so nothing that happens after it
// returns is missed.
func (c *Client) Events(ctx context.Context, f Filters) (*Events, error) {
	ctx, cancel := context.WithCancel(ctx)
	q := url.Values{}
	f.encode(q)
	resp, err := c.do(ctx, "subscribe to events", http.MethodGet, "/events", q, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	ch := make(chan Event)
	e := &Events{C: ch, cancel: cancel, done: make(chan struct{})}
	go e.read(ctx, c.host, resp, ch)
	return e, nil
}

// read decodes the stream. Engines send one JSON object per line
// (application/json, x-ndjson or jsonl) or RFC 7464 sequences
// (json-seq, each object after an RS byte); the decoder takes all of
// them. One event may be at most maxEvent bytes: an endless line ends the
// stream with an error instead of growing memory.
func (e *Events) read(ctx context.Context, host string, resp *http.Response, ch chan<- Event) {
	defer close(e.done)
	defer close(ch)
	defer resp.Body.Close()
	defer e.cancel()
	br := &budgetReader{r: resp.Body}
	dec := json.NewDecoder(br)
	for {
		br.n = maxEvent
		var ev Event
		err := dec.Decode(&ev)
		switch {
		case err == nil:
		case ctx.Err() != nil:
			e.err = ctx.Err()
			return
		case br.over:
			e.err = fmt.Errorf("the event stream of %s sent an event larger than %d KB", host, maxEvent>>10)
			return
		case errors.Is(err, io.EOF):
			e.err = fmt.Errorf("the event stream of %s ended", host)
			return
		case errors.Is(err, io.ErrUnexpectedEOF):
			e.err = fmt.Errorf("the event stream of %s ended in the middle of an event", host)
			return
		default:
			e.err = fmt.Errorf("the event stream of %s: %w", host, err)
			return
		}
		if ev.Action == "" {
			ev.Action = ev.Status
		}
		select {
		case ch <- ev:
		case <-ctx.Done():
			e.err = ctx.Err()
			return
		}
	}
}

// Err says why C was closed; call it after C is closed.
func (e *Events) Err() error {
	<-e.done
	return e.err
}

// Close ends the subscription and waits for its goroutine.
func (e *Events) Close() {
	e.cancel()
	<-e.done
}

// budgetReader lets n more bytes through, then fails (over); the reader
// of a stream refills n per message. RS bytes (RFC 7464 separators, never
// valid in JSON text) are dropped.
type budgetReader struct {
	r    io.Reader
	n    int
	over bool
}

func (b *budgetReader) Read(p []byte) (int, error) {
	for {
		if b.n <= 0 {
			b.over = true
			return 0, errTooLarge
		}
		if len(p) > b.n {
			p = p[:b.n]
		}
		k, err := b.r.Read(p)
		b.n -= k
		w := 0
		for _, c := range p[:k] {
			if c != 0x1e {
				p[w] = c
				w++
			}
		}
		if w > 0 || err != nil {
			return w, err
		}
	}
}
