// Package websocket owns the websocket tracker kind: it holds a stream open
// (github.com/coder/websocket), stores each message as an item, keeps the
// connection honest with pings, and reconnects with capped, jittered
// backoff.
//
// Decisions:
//
//   - Keepalive: a ping every ping_interval; no pong within ping_timeout
//     drops the connection (close code label "timeout"). After a wake
//     (Resume) it pings at once with the shorter wake_ping_timeout, because
//     a half-open socket is the common case after sleep, and reconnects at
//     once if that fails.
//   - Every disconnect is logged with its close code and reason and counted
//     in rouse_websocket_disconnects_total{tracker,code}. A drop with no
//     close frame counts as 1006.
//   - Cursor: saved with each batch in the same transaction as a small JSON
//     object (since, and the wall-clock time of the last message). A
//     reconnect within resume_window of the last message renders the
//     subscribe template with .Since = the cursor (last item + 1); later
//     ones do a fresh sync (.Since = "").
//   - A dropped stream keeps its state and its ready state for
//     cleanup_grace; a reconnect within the grace cancels the cleanup, so a
//     quick reconnect does not flap the component or its dependents. Once
//     the cleanup runs, the tracker reports starting with the disconnect
//     error and forgets the ids it saw on that stream.
//   - Messages are batched for up to 50 ms or 256 messages. Pause stops
//     consuming the socket (the kernel buffers what arrives), waits for any
//     store write in flight, and stops pinging; the connection stays open
//     so a short sleep loses nothing.
//   - Dial failures are retried forever with backoff; Run returns only when
//     its context ends.
package websocket

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	nethttp "net/http"
	"strconv"
	"sync"
	"time"

	ws "github.com/coder/websocket"

	"github.com/rouse-dev/rouse/internal/backoff"
	"github.com/rouse-dev/rouse/internal/promreg"
	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/trackers/internal/jpath"
	"github.com/rouse-dev/rouse/trackers/internal/redact"
	"github.com/rouse-dev/rouse/trackers/internal/stream"
	"github.com/rouse-dev/rouse/wire"
)

// Kind is the websocket tracker kind.
var Kind = trackers.KindOf("websocket", true, DefaultOptions, New)

// Stats are counters a test (or the API's detail field) can read.
type Stats struct {
	Connects          int    // successful connects (handshake and subscribe)
	Disconnects       int    // recorded disconnects
	Cleanups          int    // stream cleanups that ran
	CleanupsCancelled int    // cleanups cancelled by a reconnect within the grace
	FreshSyncs        int    // connects that subscribed with an empty since
	Resubscribes      int    // connects that subscribed with the cursor
	LastCode          string // the last disconnect's code label
	LastReason        string // the last disconnect's reason
	LastAt            time.Time
	ByCode            map[string]int // disconnects by code label
}

// Tracker is a websocket stream. It implements trackers.Component,
// Resumer and Pauser.
type Tracker struct {
	name        string
	store       trackers.Store
	log         *slog.Logger
	opts        Options
	disconnects *promreg.CounterVec
	limit       *trackers.ItemLimit
	secrets     redact.Secrets // from the URL and headers: never shown

	// httpClient, when set, is used for the handshake (tests dial pipes).
	httpClient *nethttp.Client
	// rand is the backoff's random source (nil: math/rand).
	rand func(int64) int64
	// onCleanup is called after a cleanup ran (tests).
	onCleanup func()

	wake      chan struct{} // 1-slot: Resume asks for a ping or a reconnect now
	pauseKick chan struct{} // 1-slot: paused flag changed

	mu           sync.Mutex
	paused       bool
	saving       chan struct{} // non-nil while SaveItems runs
	rep          trackers.Reporter
	stats        Stats
	since        string    // the cursor's since
	lastMsg      time.Time // wall clock of the last stored message
	recent       map[string]struct{}
	recentOrder  []string
	cleanupTimer *time.Timer
	cleanupGen   int
	closed       bool
	lastErr      error
}

var (
	_ trackers.Component = (*Tracker)(nil)
	_ trackers.Resumer   = (*Tracker)(nil)
	_ trackers.Pauser    = (*Tracker)(nil)
)

// New builds a websocket tracker from validated options.
func New(o Options, deps trackers.Deps) (*Tracker, error) {
	if err := trackers.JoinFieldErrors(o.Validate()); err != nil {
		return nil, fmt.Errorf("websocket tracker %q: %w", deps.Name, err)
	}
	if deps.Store == nil {
		return nil, fmt.Errorf("websocket tracker %q: no store", deps.Name)
	}
	if o.CursorFrom == "" {
		o.CursorFrom = CursorTime
	}
	log := deps.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Tracker{
		name:        deps.Name,
		store:       deps.Store,
		log:         log,
		opts:        o,
		disconnects: disconnectsCounter(deps.Metrics),
		limit:       trackers.NewItemLimit(deps.Metrics, deps.Name, o.MaxItemBytes),
		secrets:     redact.Secrets(nil).FromURL(o.URL).FromHeaders(o.Headers),
		wake:        make(chan struct{}, 1),
		pauseKick:   make(chan struct{}, 1),
		recent:      map[string]struct{}{},
	}, nil
}

// disconnectsCounter returns the shared counter, registering it once per
// registry.
func disconnectsCounter(reg *promreg.Registry) *promreg.CounterVec {
	cv, _ := reg.CounterVec("rouse_websocket_disconnects_total",
		"WebSocket tracker disconnects by tracker and close code (or timeout).",
		"tracker", "code") // unexported on error; the counts stay in Stats
	return cv
}

// Stats returns a snapshot of the counters.
func (t *Tracker) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.stats
	s.ByCode = maps.Clone(s.ByCode)
	return s
}

// Detail is what GET /api/v1/services/{name} shows of the stream besides
// its state: connects, reconnects, disconnects by close code and the last
// one with its reason.
func (t *Tracker) Detail() any {
	s := t.Stats()
	d := wire.StreamDetail{Connects: s.Connects, Reconnects: max(0, s.Connects-1), DisconnectsByCode: s.ByCode}
	if d.DisconnectsByCode == nil {
		d.DisconnectsByCode = map[string]int{}
	}
	if s.Disconnects > 0 {
		d.LastDisconnect = &wire.Disconnect{At: s.LastAt, Code: s.LastCode, Reason: s.LastReason}
	}
	return d
}

type cursorJSON struct {
	Since  string `json:"since"`
	LastMS int64  `json:"last_ms"` // wall clock of the last message
}

// Run holds the stream open until ctx ends.
func (t *Tracker) Run(ctx context.Context, h trackers.Host) error {
	log := h.Logger()
	if log == nil {
		log = t.log
	}
	t.mu.Lock()
	t.closed = false
	t.rep.Set(trackers.StateStarting)
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		t.closed = true
		if t.cleanupTimer != nil {
			t.cleanupTimer.Stop()
			t.cleanupTimer = nil
		}
		t.mu.Unlock()
	}()
	if c, err := t.store.Cursor(ctx, t.name); err != nil {
		log.Warn("cannot read the cursor; the first connect does a fresh sync", "err", err)
	} else if c != "" {
		var cj cursorJSON
		if err := json.Unmarshal([]byte(c), &cj); err != nil {
			log.Warn("unreadable cursor; the first connect does a fresh sync", "cursor", c)
		} else {
			t.mu.Lock()
			t.since, t.lastMsg = cj.Since, time.UnixMilli(cj.LastMS)
			t.mu.Unlock()
		}
	}

	bo := backoff.Policy{Initial: t.opts.Backoff.Initial, Max: t.opts.Backoff.Max, Rand: t.rand}
	attempt := 0
	for {
		if ctx.Err() != nil {
			return nil
		}
		conn, since, err := t.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			t.mu.Lock()
			t.lastErr = err
			ready := t.rep.Last().IsReady()
			t.mu.Unlock()
			d := bo.Equal(attempt)
			attempt++
			log.Warn("connect failed", "err", err, "retry_in", d)
			if !ready {
				t.rep.Report(h, trackers.StateStarting, err)
			}
			if !t.waitBackoff(ctx, d) {
				attempt = 0 // woken: try at once, from the start
			}
			continue
		}
		t.connected(h, log, since)
		started := time.Now()
		code, reason, gotMsg := t.session(ctx, h, log, conn)
		t.recordDisconnect(h, log, code, reason)
		if ctx.Err() != nil {
			return nil
		}
		t.scheduleCleanup(h, log, fmt.Errorf("disconnected: %s %s", code, reason))
		if gotMsg || time.Since(started) >= t.opts.PingInterval {
			attempt = 0
		}
		d := bo.Equal(attempt)
		attempt++
		if !t.waitBackoff(ctx, d) {
			attempt = 0
		}
	}
}

// waitBackoff sleeps d; it returns false when Resume cut it short.
func (t *Tracker) waitBackoff(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
	case <-timer.C:
	case <-t.wake:
		return false
	}
	return true
}

// connect dials, handshakes and subscribes.
func (t *Tracker) connect(ctx context.Context) (*ws.Conn, string, error) {
	t.mu.Lock()
	since := ""
	fresh := true
	if !t.lastMsg.IsZero() && t.since != "" && time.Now().Round(0).Sub(t.lastMsg) <= t.opts.ResumeWindow {
		since, fresh = t.since, false
	}
	t.mu.Unlock()

	dctx, cancel := context.WithTimeout(ctx, t.opts.DialTimeout)
	defer cancel()
	hdr := nethttp.Header{}
	for k, v := range t.opts.Headers {
		hdr.Set(k, v)
	}
	conn, resp, err := ws.Dial(dctx, t.opts.URL, &ws.DialOptions{HTTPHeader: hdr, HTTPClient: t.httpClient})
	if resp != nil && resp.Body != nil && err != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, "", t.secrets.Error(fmt.Errorf("dial %s: %w", redact.URL(t.opts.URL), err), nil)
	}
	conn.SetReadLimit(readLimit)
	if t.opts.Subscribe != "" {
		msg, err := renderSubscribe(t.opts.Subscribe, since)
		if err == nil {
			err = conn.Write(dctx, ws.MessageText, []byte(msg))
		}
		if err != nil {
			conn.CloseNow()
			return nil, "", t.secrets.Error(fmt.Errorf("subscribe: %w", err), nil)
		}
	}
	t.mu.Lock()
	if fresh {
		t.stats.FreshSyncs++
	} else {
		t.stats.Resubscribes++
	}
	t.mu.Unlock()
	return conn, since, nil
}

// connected records a connect, cancels a pending cleanup and reports ready.
func (t *Tracker) connected(h trackers.Host, log *slog.Logger, since string) {
	t.mu.Lock()
	t.stats.Connects++
	if t.cleanupTimer != nil {
		if t.cleanupTimer.Stop() {
			t.stats.CleanupsCancelled++
			log.Debug("stream back within the grace; cleanup cancelled")
		}
		t.cleanupTimer = nil
	}
	t.cleanupGen++
	t.lastErr = nil
	t.mu.Unlock()
	log.Info("connected", "since", since, "fresh_sync", since == "")
	t.rep.Report(h, trackers.StateReady, nil)
}

func (t *Tracker) scheduleCleanup(h trackers.Host, log *slog.Logger, cause error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanupGen++
	gen := t.cleanupGen
	if t.cleanupTimer != nil {
		t.cleanupTimer.Stop()
	}
	t.cleanupTimer = time.AfterFunc(t.opts.CleanupGrace, func() {
		t.mu.Lock()
		if t.closed || gen != t.cleanupGen {
			t.mu.Unlock()
			return
		}
		t.cleanupTimer = nil
		t.stats.Cleanups++
		t.recent = map[string]struct{}{}
		t.recentOrder = nil
		hook := t.onCleanup
		err := cause
		if t.lastErr != nil {
			err = t.lastErr
		}
		t.mu.Unlock()
		log.Info("stream gone past the grace; cleaned up", "err", err)
		t.rep.Report(h, trackers.StateStarting, err)
		if hook != nil {
			hook()
		}
	})
}

func (t *Tracker) recordDisconnect(h trackers.Host, log *slog.Logger, code, reason string) {
	t.disconnects.With(t.name, code).Inc()
	t.mu.Lock()
	t.stats.Disconnects++
	t.stats.LastCode, t.stats.LastReason = code, reason
	t.stats.LastAt = time.Now().Round(0).UTC()
	if t.stats.ByCode == nil {
		t.stats.ByCode = map[string]int{}
	}
	t.stats.ByCode[code]++
	t.mu.Unlock()
	log.Warn("disconnected", "code", code, "reason", reason)
	if n, ok := h.(trackers.Noter); ok {
		n.Note("disconnect", fmt.Sprintf("code %s: %s", code, reason))
	}
}

// Resume implements trackers.Resumer: ping at once (or reconnect at once
// when there is no connection).
func (t *Tracker) Resume(ctx context.Context) {
	t.mu.Lock()
	t.paused = false
	t.rep.Set(trackers.StateStarting) // the agent set it so
	t.mu.Unlock()
	kick(t.pauseKick)
	kick(t.wake)
}

// Pause implements trackers.Pauser.
func (t *Tracker) Pause(ctx context.Context) {
	t.mu.Lock()
	t.paused = true
	saving := t.saving
	t.mu.Unlock()
	kick(t.pauseKick)
	if saving != nil {
		select {
		case <-saving:
		case <-ctx.Done():
		}
	}
}

func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (t *Tracker) isPaused() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.paused
}

type message struct {
	typ     ws.MessageType
	data    []byte
	arrival time.Time
}

// session reads the stream until it ends and returns the close code label.
func (t *Tracker) session(ctx context.Context, h trackers.Host, log *slog.Logger, conn *ws.Conn) (code, reason string, gotMsg bool) {
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		conn.CloseNow()
		wg.Wait()
	}()
	msgs := make(chan message, 64)
	readErr := make(chan error, 1)
	pingErr := make(chan error, 1)
	wg.Go(func() {
		for {
			typ, b, err := conn.Read(sctx)
			if err != nil {
				readErr <- err
				return
			}
			select {
			case msgs <- message{typ, b, time.Now()}:
			case <-sctx.Done():
				return
			}
		}
	})
	wg.Go(func() { t.pinger(sctx, h, log, conn, pingErr) })

	var batch []trackers.Item
	var flushC <-chan time.Time
	var flushTimer *time.Timer
	flush := func(fctx context.Context) {
		if flushTimer != nil {
			flushTimer.Stop()
			flushTimer, flushC = nil, nil
		}
		if len(batch) == 0 {
			return
		}
		if t.save(fctx, h, log, batch) {
			batch = batch[:0]
		}
	}
	defer func() {
		// Store what was received before the stream ended, even on
		// shutdown, within a short bound.
		fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		flush(fctx)
		fcancel()
	}()
	for {
		in := msgs
		if t.isPaused() || len(batch) >= 4*maxBatch {
			in = nil // stop consuming; the socket buffers
		}
		select {
		case <-ctx.Done():
			conn.Close(ws.StatusGoingAway, "shutting down")
			return strconv.Itoa(int(ws.StatusGoingAway)), "shutdown", gotMsg
		case m := <-in:
			gotMsg = true
			if it, ok := t.item(log, m); ok {
				if err := t.limit.Allow(h, log, it.ID, len(it.Data)); err != nil {
					t.rep.Report(h, t.currentState(), err)
				} else {
					batch = append(batch, it)
				}
			}
			if len(batch) >= maxBatch {
				flush(ctx)
			} else if flushTimer == nil && len(batch) > 0 {
				flushTimer = time.NewTimer(batchWindow)
				flushC = flushTimer.C
			}
		case <-flushC:
			flushTimer, flushC = nil, nil
			flush(ctx)
			if len(batch) > 0 { // the save failed: try again
				flushTimer = time.NewTimer(batchWindow)
				flushC = flushTimer.C
			}
		case <-t.pauseKick:
			if t.isPaused() {
				flush(ctx) // a no-op once paused; kept for a Pause racing a batch
			}
		case err := <-readErr:
			code, reason := stream.CloseCode(err)
			return code, reason, gotMsg
		case err := <-pingErr:
			return "timeout", err.Error(), gotMsg
		}
	}
}

// pinger keeps the connection honest; a wake kick pings at once.
func (t *Tracker) pinger(ctx context.Context, h trackers.Host, log *slog.Logger, conn *ws.Conn, fail chan<- error) {
	timer := time.NewTimer(t.opts.PingInterval)
	defer timer.Stop()
	for {
		timeout := t.opts.PingTimeout
		woke := false
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-t.wake:
			timeout, woke = t.opts.WakePingTimeout, true
		}
		if !t.isPaused() {
			pctx, cancel := context.WithTimeout(ctx, timeout)
			err := conn.Ping(pctx)
			cancel()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				fail <- fmt.Errorf("no pong within %v", timeout)
				return
			}
			if woke {
				log.Debug("stream alive after wake")
				t.rep.Report(h, trackers.StateReady, nil)
			}
		}
		timer.Reset(t.opts.PingInterval)
	}
}

// item turns a message into an item.
func (t *Tracker) item(log *slog.Logger, m message) (trackers.Item, bool) {
	it := trackers.Item{Time: m.arrival.UTC()}
	var v any
	isJSON := m.typ == ws.MessageText && json.Valid(m.data)
	if isJSON {
		it.Data = json.RawMessage(m.data)
		if t.opts.Items.ID != "" || t.opts.Items.Time != "" {
			v, _ = jpath.Decode(m.data)
		}
	} else {
		var err error
		if m.typ == ws.MessageText {
			it.Data, err = json.Marshal(string(m.data))
		} else {
			it.Data, err = json.Marshal(m.data) // base64
		}
		if err != nil {
			log.Warn("message dropped", "err", err)
			return it, false
		}
	}
	if p := t.opts.Items.Time; p != "" && v != nil {
		if tv, ok := jpath.Get(v, p); ok {
			if ts, err := jpath.ParseTime(tv, t.opts.Items.TimeFormat); err == nil {
				it.Time = ts
			}
		}
	}
	if p := t.opts.Items.ID; p != "" && v != nil {
		if iv, ok := jpath.Get(v, p); ok {
			it.ID, _ = jpath.String(iv)
		}
	}
	if it.ID == "" {
		hsh := sha256.New()
		hsh.Write(m.data)
		var ts [8]byte
		binary.BigEndian.PutUint64(ts[:], uint64(m.arrival.UnixNano()))
		hsh.Write(ts[:])
		it.ID = hex.EncodeToString(hsh.Sum(nil))
	}
	return it, true
}

// save stores a batch with the new cursor, skipping ids this stream has
// already stored. It returns false when the batch must be kept.
func (t *Tracker) save(ctx context.Context, h trackers.Host, log *slog.Logger, batch []trackers.Item) bool {
	t.mu.Lock()
	if t.paused {
		t.mu.Unlock()
		return false
	}
	fresh := make([]trackers.Item, 0, len(batch))
	for _, it := range batch {
		if _, dup := t.recent[it.ID]; !dup {
			fresh = append(fresh, it)
		}
	}
	done := make(chan struct{})
	t.saving = done
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		t.saving = nil
		t.mu.Unlock()
		close(done)
	}()
	if len(fresh) == 0 {
		return true
	}
	last := fresh[len(fresh)-1]
	since := t.nextSince(last)
	now := time.Now().Round(0)
	cur, _ := json.Marshal(cursorJSON{Since: since, LastMS: now.UnixMilli()})
	added, err := t.store.SaveItems(ctx, t.name, fresh, string(cur))
	if err != nil {
		log.Warn("store failed; keeping the batch", "items", len(fresh), "err", err)
		h.Report(t.currentState(), fmt.Errorf("save items: %w", err))
		return false
	}
	t.mu.Lock()
	t.since, t.lastMsg = since, now
	for _, it := range fresh {
		if _, dup := t.recent[it.ID]; dup {
			continue
		}
		t.recent[it.ID] = struct{}{}
		t.recentOrder = append(t.recentOrder, it.ID)
	}
	if n := len(t.recentOrder) - recentIDsCap; n > 0 {
		for _, id := range t.recentOrder[:n] {
			delete(t.recent, id)
		}
		t.recentOrder = append([]string(nil), t.recentOrder[n:]...)
	}
	t.mu.Unlock()
	log.Debug("items stored", "items", len(fresh), "added", added, "since", since)
	return true
}

func (t *Tracker) currentState() trackers.State {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rep.Last()
}

// nextSince is the cursor after item: last item + 1.
func (t *Tracker) nextSince(it trackers.Item) string {
	switch t.opts.CursorFrom {
	case CursorTimeS:
		return strconv.FormatInt(it.Time.Unix()+1, 10)
	case CursorID:
		if n, err := strconv.ParseInt(it.ID, 10, 64); err == nil {
			return strconv.FormatInt(n+1, 10)
		}
		return it.ID
	}
	return strconv.FormatInt(it.Time.UnixMilli()+1, 10)
}
