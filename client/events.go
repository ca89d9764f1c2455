package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rouse-dev/rouse/internal/backoff"
	"github.com/rouse-dev/rouse/wire"
)

// Stream tuning; vars so tests can shorten them.
var (
	// streamIdleTimeout drops a stream that has been silent this long: the
	// server sends a keep-alive every 15 s, so silence means a dead
	// connection (typically one that did not survive a suspend).
	streamIdleTimeout = 45 * time.Second
	reconnectInitial  = 250 * time.Millisecond
	reconnectMax      = 15 * time.Second
)

// errStreamEnded is a stream the server closed (a restart, a slow
// subscriber dropped, a shutdown): Events reconnects.
var errStreamEnded = errors.New("event stream ended")

// errStreamIdle is a stream silent for longer than streamIdleTimeout.
var errStreamIdle = errors.New("event stream silent for too long")

// handlerError carries fn's error out of the stream unchanged.
type handlerError struct{ err error }

func (e handlerError) Error() string { return e.err.Error() }

// StreamOptions tune one Events call. Each call carries its own hooks, so
// two followers of one Client (the tray and a command, say) never see each
// other's callbacks.
type StreamOptions struct {
	// LastID resumes after this event (0: only new events).
	LastID int64
	// OnConnect, when set, is called each time the agent has accepted the
	// stream (so a caller can act knowing it misses nothing from then on,
	// e.g. `rouse wake --follow` wakes only then).
	OnConnect func()
	// OnReconnect, when set, is called before each wait to reconnect, with
	// the error that ended the stream (or the attempt) and the wait.
	OnReconnect func(err error, wait time.Duration)
	// FailFast returns the first attempt's error at once when that attempt
	// could not open the stream: a command says "no agent" instead of
	// waiting for one to appear.
	FailFast bool
	// GiveUpAfter, when > 0, ends the reconnects once the agent has been
	// out of reach that long since the stream last broke; Events then
	// returns the last error. Zero keeps trying until ctx is done.
	GiveUpAfter time.Duration
	// AnswerTimeout, when > 0, bounds the wait for the agent to accept a
	// stream once connected (default: the idle timeout, 45 s): an agent that
	// takes connections but does not answer is stopped or hung.
	AnswerTimeout time.Duration
}

// Events follows GET /api/v1/events, calling fn for each event in order.
// It resumes after o.LastID and, whenever the stream breaks, reconnects
// with exponential backoff and Last-Event-ID, so no event still in the
// agent's backlog is missed. It returns ctx.Err() when ctx is done, fn's
// error as is when fn fails, an *APIError at once for answers that
// retrying cannot fix (400, 401, 403, 404), and the last connection error
// when o.FailFast or o.GiveUpAfter says to stop trying.
func (c *Client) Events(ctx context.Context, o StreamOptions, fn func(wire.Event) error) error {
	bo := backoff.Retry{Policy: backoff.Policy{Initial: reconnectInitial, Max: reconnectMax}}
	lastID := o.LastID
	var down time.Time // when the agent was last lost; zero while connected
	for first := true; ; first = false {
		connected, err := c.stream(ctx, &lastID, o.AnswerTimeout, o.OnConnect, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var he handlerError
		if errors.As(err, &he) {
			return he.err
		}
		var ae *APIError
		if errors.As(err, &ae) {
			switch ae.Status {
			case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
				return err
			}
		}
		if first && !connected && o.FailFast {
			return err
		}
		if connected || down.IsZero() {
			down = time.Now()
		}
		if connected {
			bo.Reset()
		}
		if o.GiveUpAfter > 0 && time.Since(down) >= o.GiveUpAfter {
			return fmt.Errorf("gave up after %s without the event stream: %w", o.GiveUpAfter, err)
		}
		wait := bo.Next()
		if o.OnReconnect != nil {
			o.OnReconnect(err, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// stream reads one connection's events. connected reports whether the
// server accepted the stream.
func (c *Client) stream(ctx context.Context, lastID *int64, answer time.Duration, onConnect func(), fn func(wire.Event) error) (connected bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if answer <= 0 {
		answer = streamIdleTimeout
	}
	var idle atomic.Bool
	watchdog := time.AfterFunc(answer, func() { idle.Store(true); cancel() })
	defer watchdog.Stop()

	req, err := http.NewRequestWithContext(sctx, http.MethodGet, c.base+"/api/v1/events", nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if *lastID > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(*lastID, 10))
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		if err := c.noAgent(err); IsNoAgent(err) {
			return false, err
		}
		if idle.Load() {
			return false, fmt.Errorf("the agent at %s took the connection but did not answer within %s: is it stopped or hung? (%w)", c.base, answer, errStreamIdle)
		}
		return false, fmt.Errorf("event stream: %w", err)
	}
	watchdog.Reset(streamIdleTimeout)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, decodeError(resp)
	}
	if onConnect != nil {
		onConnect()
	}

	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var id, typ string
	var data strings.Builder
	for sc.Scan() {
		watchdog.Reset(streamIdleTimeout)
		line := sc.Text()
		if line == "" {
			if data.Len() > 0 {
				var ev wire.Event
				if err := json.Unmarshal([]byte(data.String()), &ev); err != nil {
					return true, fmt.Errorf("event stream: event %s: %w", id, err)
				}
				if ev.ID == 0 {
					ev.ID, _ = strconv.ParseInt(id, 10, 64)
				}
				if ev.Type == "" {
					ev.Type = typ
				}
				if ev.ID > 0 {
					*lastID = ev.ID
				}
				if err := fn(ev); err != nil {
					return true, handlerError{err}
				}
			}
			id, typ = "", ""
			data.Reset()
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			id = value
		case "event":
			typ = value
		case "data":
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(value)
		}
	}
	if idle.Load() {
		return true, errStreamIdle
	}
	if err := sc.Err(); err != nil {
		return true, fmt.Errorf("event stream: %w", err)
	}
	return true, errStreamEnded
}
