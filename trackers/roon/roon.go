// Package roon owns the roon tracker kind: a Roon extension written in Go
// that finds a Roon Core (SOOD discovery, or a configured HOST:PORT),
// registers with it over MOO/1 on a WebSocket, subscribes to the zones of
// com.roonlabs.transport:2 and stores one item per track that starts
// playing. The protocol follows Roon Labs' own client, node-roon-api
// (moo.js, sood.js, lib.js) and node-roon-api-transport.
//
// Decisions:
//
//   - Registration: info, then register with the token saved for that
//     core (kept in the store through TokenStore, never in a file, a log
//     or the API). Without a token the core answers only once the user
//     enables the extension in Roon; the tracker reports
//     trackers.StateWaiting with "waiting for you to enable 'NAME' in Roon
//     → Settings → Extensions" at once, and also when a saved token has
//     gone unanswered for registerGrace (the user revoked it). A register
//     answered with anything but Registered is a revoked token: the token
//     is deleted and the extension registers afresh, waiting again. The
//     wait keeps the connection open: it burns no backoff.
//   - Keepalive: a WebSocket ping every ping_interval that must be
//     answered before the next one is due, so a frozen core is found
//     within two intervals. After a wake (Resume) it pings at once with
//     wake_ping_timeout and, when the core answers, resubscribes to the
//     zones (Roon has no "since": a fresh snapshot); when it does not, it
//     redials at once. The core's own pings (com.roonlabs.ping:1/ping)
//     are answered COMPLETE Success, as lib.js does.
//   - Redial: with equal-jitter backoff, at once after a wake. A known
//     address is redialled without waiting for discovery; a discovered
//     core that cannot be dialled twice in a row is looked up again (it
//     may have moved).
//   - An info or subscribe_zones answer missing for 30 s (checked at each
//     ping) ends the connection: a core that answers pings but not
//     requests is redialled rather than waited on for ever.
//   - Strictness: a malformed MOO message or an answer to a Request-Id the
//     tracker never sent closes the connection (as lib.js does for the
//     latter); the tracker redials.
//   - Items: one per track that starts playing in a zone (state playing,
//     a now_playing whose title, artist, album or length differ from the
//     zone's last recorded play). started_at is now minus the seek
//     position. The last play of each zone is saved as the cursor in the
//     same transaction as the item, so a reconnect's snapshot or an agent
//     restart does not record the same play twice. The same track counts
//     again only after another track played, or once it started more than
//     max(2 × its length, 1 h) ago (a replay the next day). Seek changes
//     store nothing. zones_added and zones_removed are notes. At most 256
//     zones are followed (the first the core lists); a message is at most
//     8 MiB.
//   - Items that cannot be stored (the store is closed while the machine
//     sleeps) are kept, bounded, and stored with the next change or ping.
package roon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	nethttp "net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	ws "github.com/coder/websocket"

	"github.com/rouse-dev/rouse/internal/backoff"
	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/trackers/internal/stream"
	"github.com/rouse-dev/rouse/wire"
)

// Kind is the roon tracker kind.
var Kind = trackers.KindOf("roon", true, DefaultOptions, New)

// Roon service names.
const (
	svcRegistry  = "com.roonlabs.registry:1"
	svcPing      = "com.roonlabs.ping:1"
	svcTransport = "com.roonlabs.transport:2"
)

const (
	dialTimeout    = 10 * time.Second
	registerGrace  = 5 * time.Second  // a saved token unanswered this long: waiting for enable
	answerTimeout  = 30 * time.Second // info or subscribe_zones unanswered this long: redial
	maxPending     = 1000             // items kept while the store is closed
	maxZones       = 256              // zones remembered in the cursor
	displayVersion = "1.0"
)

// TokenStore keeps the tokens Roon Cores hand the extension, one per core
// id; agent/store satisfies it.
type TokenStore interface {
	Secret(ctx context.Context, tracker, key string) (string, error)
	SetSecret(ctx context.Context, tracker, key, secret string) error
}

// Stats are counters tests read.
type Stats struct {
	Dials         int `json:"dials"` // WebSocket connects that succeeded
	DialFailures  int `json:"dial_failures"`
	Discoveries   int `json:"discoveries"`    // SOOD lookups that found a core
	Registered    int `json:"registered"`     // Registered answers
	Subscribed    int `json:"subscribed"`     // Subscribed snapshots
	PingsAnswered int `json:"pings_answered"` // core pings answered
	Dropped       int `json:"dropped"`        // connections that ended (any cause)
	Malformed     int `json:"malformed"`      // connections closed for a bad message
}

// Detail is what the API shows of the tracker besides its state (never
// the token).
type Detail struct {
	// The connection's record, as the websocket kind shows it:
	// connects, reconnects, disconnects by code, the last disconnect.
	wire.StreamDetail
	Core    string `json:"core,omitempty"`    // the core's display name
	Address string `json:"address,omitempty"` // where the core is reached
	Paired  bool   `json:"paired"`            // registered: enabled in Roon and connected
	Zones   int    `json:"zones"`             // zones the core lists now
	Stats   Stats  `json:"stats"`
}

// Detail implements the agent's detail capability.
func (t *Tracker) Detail() any {
	t.mu.Lock()
	defer t.mu.Unlock()
	return Detail{StreamDetail: t.conns.Detail(), Core: t.coreName, Address: t.addr, Paired: t.paired, Zones: t.zoneCount, Stats: t.stats}
}

// disconnected records a dropped connection: counted by code for Detail,
// logged, and noted as an event when the host takes notes.
func (t *Tracker) disconnected(h trackers.Host, log *slog.Logger, code string, err error) {
	reason := ""
	if err != nil {
		reason = err.Error()
	}
	t.conns.Disconnected(code, reason)
	log.Info("disconnected from the Roon Core", "code", code, "reason", reason)
	if n, ok := h.(trackers.Noter); ok {
		n.Note("disconnect", fmt.Sprintf("code %s: %s", code, reason))
	}
}

// Tracker is a Roon extension. It implements trackers.Component and
// trackers.Resumer.
type Tracker struct {
	name   string
	store  trackers.Store
	tokens TokenStore
	log    *slog.Logger
	opts   Options

	// httpClient, when set, is used for the WebSocket handshake (tests
	// dial pipes).
	httpClient *nethttp.Client
	// rand is the backoff's random source (nil: math/rand).
	rand func(int64) int64
	// discoverFn finds a core (nil: SOOD with the options).
	discoverFn func(ctx context.Context, prefer string) (found, error)

	wake chan struct{} // 1-slot: Resume

	mu        sync.Mutex
	rep       trackers.Reporter
	stats     Stats
	conns     stream.Record // connections and disconnects, for Detail
	addr      string        // the core's address; "" until discovered
	coreID    string        // the last core registered with
	coreName  string
	paired    bool // registered on the live connection
	zoneCount int
	plays     map[string]play
	pending   []trackers.Item
	// saveFailing: the last store write failed (said once per outage).
	saveFailing bool
}

var (
	_ trackers.Component = (*Tracker)(nil)
	_ trackers.Resumer   = (*Tracker)(nil)
)

// play is a zone's last recorded play (the cursor).
type play struct {
	Key       string `json:"key"`
	StartedMS int64  `json:"started_ms"`
	LengthS   int64  `json:"length_s"`
}

// New builds a roon tracker from validated options.
func New(o Options, deps trackers.Deps) (*Tracker, error) {
	if err := trackers.JoinFieldErrors(o.Validate()); err != nil {
		return nil, fmt.Errorf("roon tracker %q: %w", deps.Name, err)
	}
	if deps.Store == nil {
		return nil, fmt.Errorf("roon tracker %q: no store", deps.Name)
	}
	ts, ok := deps.Store.(TokenStore)
	if !ok {
		return nil, fmt.Errorf("roon tracker %q: the store cannot keep the core's token", deps.Name)
	}
	log := deps.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Tracker{
		name: deps.Name, store: deps.Store, tokens: ts, log: log, opts: o,
		addr: o.Core, wake: make(chan struct{}, 1), plays: map[string]play{},
	}, nil
}

// Stats returns a snapshot of the counters.
func (t *Tracker) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stats
}

// WaitingMessage is what the component says until the user enables the
// extension.
func (t *Tracker) WaitingMessage() string {
	return fmt.Sprintf("waiting for you to enable '%s' in Roon → Settings → Extensions", t.opts.Extension.Name)
}

// Resume implements trackers.Resumer: ping at once and resubscribe, or
// redial at once.
func (t *Tracker) Resume(context.Context) {
	t.mu.Lock()
	t.rep.Set(trackers.StateStarting) // the agent set it so
	t.mu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

func (t *Tracker) count(f func(*Stats)) {
	t.mu.Lock()
	f(&t.stats)
	t.mu.Unlock()
}

// Run keeps the extension connected until ctx ends.
func (t *Tracker) Run(ctx context.Context, h trackers.Host) error {
	log := h.Logger()
	if log == nil {
		log = t.log
	}
	t.mu.Lock()
	t.rep.Set(trackers.StateStarting)
	t.mu.Unlock()
	t.loadCursor(ctx, log)
	bo := backoff.Policy{Initial: t.opts.Backoff.Initial, Max: t.opts.Backoff.Max, Rand: t.rand}
	attempt, dialFails := 0, 0
	lastErr := ""
	for ctx.Err() == nil {
		addr, err := t.address(ctx, log)
		var res sessionResult
		if err != nil {
			res.err = err
		} else {
			res = t.session(ctx, h, log, addr)
		}
		if ctx.Err() != nil {
			return nil
		}
		if res.dialFailed && t.opts.Core == "" {
			if dialFails++; dialFails >= 2 {
				t.mu.Lock()
				t.addr = "" // look the core up again: it may have moved
				t.mu.Unlock()
				dialFails = 0
			}
		} else if !res.dialFailed {
			dialFails = 0
		}
		if res.progressed {
			attempt, lastErr = 0, "" // it was connected: a new outage
		}
		t.rep.Report(h, trackers.StateStarting, res.err)
		if res.connected {
			// Counted once the host knows readiness is lost, so whoever
			// sees the drop counted never sees the old "ready" after it.
			t.count(func(s *Stats) { s.Dropped++ })
		}
		if res.woke {
			continue // a wake found the connection dead: redial at once
		}
		d := bo.Equal(attempt)
		attempt++
		// The same error again (a core that stays away) is logged at debug
		// level: one warning per distinct cause.
		lvl := slog.LevelWarn
		if msg := fmt.Sprint(res.err); msg == lastErr {
			lvl = slog.LevelDebug
		} else {
			lastErr = msg
		}
		log.Log(ctx, lvl, "no connection to the Roon Core", "err", res.err, "retry_in", d)
		timer := time.NewTimer(d)
		select {
		case <-ctx.Done():
		case <-timer.C:
		case <-t.wake:
			attempt = 0
		}
		timer.Stop()
	}
	return nil
}

// address returns the core's address, discovering it when unknown.
func (t *Tracker) address(ctx context.Context, log *slog.Logger) (string, error) {
	t.mu.Lock()
	addr, prefer := t.addr, t.coreID
	t.mu.Unlock()
	if addr != "" {
		return addr, nil
	}
	find := t.discoverFn
	if find == nil {
		find = func(ctx context.Context, prefer string) (found, error) {
			return discover(ctx, soodTargets(t.opts.Discovery), t.opts.Discovery.Timeout, prefer)
		}
	}
	f, err := find(ctx, prefer)
	if err != nil {
		return "", err
	}
	log.Info("Roon Core found", "core", f.name, "address", f.addr)
	t.mu.Lock()
	t.addr = f.addr
	t.stats.Discoveries++
	t.mu.Unlock()
	return f.addr, nil
}

// sessionResult is how one connection ended.
type sessionResult struct {
	err        error
	dialFailed bool
	progressed bool // the core answered info: reset the backoff
	woke       bool // a wake found it dead: redial at once
	connected  bool // the dial succeeded: its end is a dropped connection
	// code is the disconnect's code label (a close code, "timeout",
	// "error"); "" when the connection was not dropped (a failed dial, a
	// stop).
	code string
}

type reqKind int

const (
	reqInfo reqKind = iota + 1
	reqRegister
	reqSubscribe
	reqUnsubscribe
)

type pendingReq struct {
	kind reqKind
	key  int    // subscription key
	old  uint64 // unsubscribe: the subscription it ends
}

type pingResult struct {
	err  error
	wake bool
}

// conn is one connection's state, owned by session's goroutine.
type conn struct {
	t       *Tracker
	h       trackers.Host
	log     *slog.Logger
	c       *ws.Conn
	ctx     context.Context
	nextID  uint64
	nextKey int
	pending map[uint64]pendingReq
	subID   uint64 // the live subscribe_zones request
	subbed  bool
	coreID  string
	token   string
	zones   map[string]zoneView
	// awaiting names the info or subscribe answer outstanding since
	// awaitSince ("" when none); the register answer is the user's and
	// has no bound.
	awaiting   string
	awaitSince time.Time
	// userWait: the register is held until the user enables the
	// extension (said as StateWaiting, again after each wake).
	userWait bool
}

func (c *conn) await(what string) { c.awaiting, c.awaitSince = what, time.Now() }

type zoneView struct{ name string }

func (t *Tracker) dial(ctx context.Context, addr string) (*ws.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	c, resp, err := ws.Dial(dctx, "ws://"+addr+"/api", &ws.DialOptions{HTTPClient: t.httpClient})
	if resp != nil && resp.Body != nil && err != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("dial the Roon Core at %s: %w", addr, err)
	}
	c.SetReadLimit(maxMessage)
	return c, nil
}

// session runs one connection: info, register, subscribe, then changes.
func (t *Tracker) session(ctx context.Context, h trackers.Host, log *slog.Logger, addr string) (res sessionResult) {
	wsc, err := t.dial(ctx, addr)
	if err != nil {
		t.count(func(s *Stats) { s.DialFailures++ })
		return sessionResult{err: err, dialFailed: true}
	}
	t.count(func(s *Stats) { s.Dials++ })
	t.conns.Connected()
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wsc.CloseNow()
		wg.Wait()
		res.connected = true // (set here: a return replaces res whole)
		t.mu.Lock()
		t.paired, t.zoneCount = false, 0
		t.mu.Unlock()
		if res.code != "" && ctx.Err() == nil {
			t.disconnected(h, log, res.code, res.err)
		}
	}()
	msgs := make(chan []byte)
	readErr := make(chan error, 1)
	wg.Go(func() {
		for {
			typ, b, err := wsc.Read(sctx)
			if err != nil {
				readErr <- err
				return
			}
			if typ != ws.MessageBinary {
				readErr <- fmt.Errorf("%w: a text frame", errMOO)
				return
			}
			select {
			case msgs <- b:
			case <-sctx.Done():
				return
			}
		}
	})
	pings := make(chan pingResult, 1)
	pinging := false
	ping := func(timeout time.Duration, wake bool) {
		pinging = true
		wg.Go(func() {
			pctx, pcancel := context.WithTimeout(sctx, timeout)
			err := wsc.Ping(pctx)
			pcancel()
			if err != nil {
				err = fmt.Errorf("the Roon Core did not answer a ping within %v", timeout)
			}
			pings <- pingResult{err, wake}
		})
	}
	pingTimer := time.NewTimer(t.opts.PingInterval)
	defer pingTimer.Stop()
	var graceC <-chan time.Time
	var grace *time.Timer
	defer func() {
		if grace != nil {
			grace.Stop()
		}
	}()

	c := &conn{t: t, h: h, log: log, c: wsc, ctx: sctx, pending: map[uint64]pendingReq{}, zones: map[string]zoneView{}}
	if err := c.request(svcRegistry+"/info", nil, pendingReq{kind: reqInfo}); err != nil {
		return sessionResult{err: err, code: "error"}
	}
	c.await("info")
	log.Debug("connected to the Roon Core", "address", addr)
	woke := false
	for {
		select {
		case <-ctx.Done():
			_ = wsc.Close(ws.StatusGoingAway, "shutting down")
			return sessionResult{progressed: res.progressed}
		case err := <-readErr:
			code, _ := stream.CloseCode(err)
			var ce ws.CloseError
			if errors.As(err, &ce) {
				err = fmt.Errorf("the Roon Core closed the connection: %d %s", ce.Code, ce.Reason)
			} else if errors.Is(err, errMOO) {
				t.count(func(s *Stats) { s.Malformed++ })
				code = strconv.Itoa(int(ws.StatusProtocolError)) // closed by us for a bad frame
			} else {
				err = fmt.Errorf("connection to the Roon Core lost: %w", err)
			}
			return sessionResult{err: err, progressed: res.progressed, woke: woke, code: code}
		case b := <-msgs:
			out, err := c.handle(b)
			if err != nil {
				if errors.Is(err, errMOO) {
					t.count(func(s *Stats) { s.Malformed++ })
				}
				_ = wsc.Close(ws.StatusProtocolError, "bad message")
				return sessionResult{err: err, progressed: res.progressed, code: strconv.Itoa(int(ws.StatusProtocolError))}
			}
			if out.progressed {
				res.progressed = true
			}
			switch {
			case out.registerSent && c.token == "":
				c.userWait = true
				t.rep.Report(h, trackers.StateWaiting, errors.New(t.WaitingMessage()))
			case out.registerSent:
				if grace != nil {
					grace.Stop()
				}
				grace = time.NewTimer(registerGrace)
				graceC = grace.C
			case out.registered:
				c.userWait = false
				if grace != nil {
					grace.Stop()
				}
				graceC = nil
			}
		case <-graceC:
			graceC = nil
			log.Info("the Roon Core did not accept the saved token; enable the extension again")
			c.userWait = true
			t.rep.Report(h, trackers.StateWaiting, errors.New(t.WaitingMessage()))
		case <-pingTimer.C:
			if c.awaiting != "" && time.Since(c.awaitSince) >= answerTimeout {
				_ = wsc.Close(ws.StatusGoingAway, "no answer")
				return sessionResult{err: fmt.Errorf("the Roon Core did not answer %s within %v", c.awaiting, answerTimeout), progressed: res.progressed, code: "timeout"}
			}
			if !pinging {
				ping(t.opts.PingInterval, false)
			} else {
				pingTimer.Reset(t.opts.PingInterval)
			}
		case <-t.wake:
			woke = true
			ping(t.opts.WakePingTimeout, true)
		case p := <-pings:
			pinging = false
			if p.err != nil {
				return sessionResult{err: p.err, progressed: res.progressed, woke: woke, code: "timeout"}
			}
			if p.wake {
				woke = false
				if err := c.afterWake(); err != nil {
					return sessionResult{err: err, progressed: res.progressed, code: "error"}
				}
			}
			pingTimer.Reset(t.opts.PingInterval)
		}
		t.flushPending(sctx, h, log)
	}
}

// afterWake resubscribes (or says again what it waits for).
func (c *conn) afterWake() error {
	t := c.t
	switch {
	case c.subbed:
		c.log.Debug("the Roon Core answers after the wake; resubscribing")
		old := c.subID
		c.subbed = false
		if err := c.request(svcTransport+"/unsubscribe_zones", map[string]int{"subscription_key": c.pending[old].key}, pendingReq{kind: reqUnsubscribe, old: old}); err != nil {
			return err
		}
		return c.subscribe()
	case c.userWait:
		t.rep.Report(c.h, trackers.StateWaiting, errors.New(t.WaitingMessage()))
	}
	return nil
}

// request sends a REQUEST and remembers its id.
func (c *conn) request(name string, body any, p pendingReq) error {
	id := c.nextID
	c.nextID++
	b, err := encodeMOO(VerbRequest, name, id, body)
	if err != nil {
		return err
	}
	c.pending[id] = p
	return c.write(b)
}

func (c *conn) write(b []byte) error {
	wctx, cancel := context.WithTimeout(c.ctx, dialTimeout)
	defer cancel()
	if err := c.c.Write(wctx, ws.MessageBinary, b); err != nil {
		return fmt.Errorf("write to the Roon Core: %w", err)
	}
	return nil
}

func (c *conn) subscribe() error {
	key := c.nextKey
	c.nextKey++
	c.subID = c.nextID
	c.await("subscribe_zones")
	return c.request(svcTransport+"/subscribe_zones", map[string]int{"subscription_key": key}, pendingReq{kind: reqSubscribe, key: key})
}

type handled struct {
	progressed   bool
	registerSent bool
	registered   bool
}

// registration is what register sends (the fields and order of lib.js's
// extension_reginfo).
type registration struct {
	ExtensionID      string   `json:"extension_id"`
	DisplayName      string   `json:"display_name"`
	DisplayVersion   string   `json:"display_version"`
	Publisher        string   `json:"publisher"`
	Email            string   `json:"email"`
	RequiredServices []string `json:"required_services"`
	OptionalServices []string `json:"optional_services"`
	ProvidedServices []string `json:"provided_services"`
	Token            string   `json:"token,omitempty"`
}

// handle processes one message from the core.
func (c *conn) handle(b []byte) (handled, error) {
	var out handled
	m, err := ParseMOO(b)
	if err != nil {
		return out, err
	}
	if m.Verb == VerbRequest {
		return out, c.answer(m)
	}
	p, ok := c.pending[m.RequestID]
	if !ok {
		return out, fmt.Errorf("%w: an answer to unknown Request-Id %d", errMOO, m.RequestID)
	}
	if m.Verb == VerbComplete {
		delete(c.pending, m.RequestID)
	}
	t := c.t
	switch p.kind {
	case reqInfo:
		var info struct {
			CoreID      string `json:"core_id"`
			DisplayName string `json:"display_name"`
		}
		if m.Name != "Success" || json.Unmarshal(m.Body, &info) != nil || info.CoreID == "" {
			return out, fmt.Errorf("registry info answered %s", clip(m.Name))
		}
		out.progressed = true
		c.awaiting = ""
		c.coreID = info.CoreID
		tok, err := t.tokens.Secret(c.ctx, t.name, info.CoreID)
		if err != nil {
			c.log.Warn("cannot read the saved token; registering afresh", "err", err)
		}
		c.token = tok
		c.log.Info("Roon Core answered", "core", info.DisplayName, "saved_token", tok != "")
		if err := c.register(); err != nil {
			return out, err
		}
		out.registerSent = true
	case reqRegister:
		if m.Name != "Registered" {
			// The core refused the registration: the token is no longer
			// good. Forget it and wait for the user to enable us again.
			c.log.Info("the Roon Core refused the registration; enable the extension again", "answer", clip(m.Name))
			if m.Verb == VerbContinue {
				delete(c.pending, m.RequestID)
			}
			if err := t.tokens.SetSecret(c.ctx, t.name, c.coreID, ""); err != nil {
				c.log.Warn("cannot forget the refused token", "err", err)
			}
			c.token = ""
			c.subbed = false
			if err := c.register(); err != nil {
				return out, err
			}
			out.registerSent = true
			return out, nil
		}
		var reg struct {
			CoreID      string `json:"core_id"`
			DisplayName string `json:"display_name"`
			Token       string `json:"token"`
		}
		if err := json.Unmarshal(m.Body, &reg); err != nil || reg.Token == "" {
			return out, fmt.Errorf("%w: Registered without a token", errMOO)
		}
		if reg.CoreID == "" {
			reg.CoreID = c.coreID
		}
		if err := t.tokens.SetSecret(c.ctx, t.name, reg.CoreID, reg.Token); err != nil {
			c.log.Warn("cannot save the core's token; Roon will ask to enable the extension again after a restart", "err", err)
		}
		c.token = reg.Token
		t.mu.Lock()
		t.coreID, t.coreName, t.paired = reg.CoreID, reg.DisplayName, true
		t.stats.Registered++
		t.mu.Unlock()
		c.log.Info("registered with the Roon Core", "core", reg.DisplayName)
		out.registered = true
		if err := c.subscribe(); err != nil {
			return out, err
		}
	case reqSubscribe:
		if m.RequestID != c.subID {
			return out, nil // an old subscription ending
		}
		switch m.Name {
		case "Subscribed":
			var body struct {
				Zones []zone `json:"zones"`
			}
			if err := json.Unmarshal(m.Body, &body); err != nil {
				return out, fmt.Errorf("%w: Subscribed: %v", errMOO, err)
			}
			c.subbed = true
			c.awaiting = ""
			c.zones = map[string]zoneView{}
			t.count(func(s *Stats) { s.Subscribed++ })
			c.zonesSeen(body.Zones, false)
			c.countZones()
			t.rep.Report(c.h, trackers.StateReady, nil)
		case "Changed":
			var body struct {
				Added   []zone   `json:"zones_added"`
				Changed []zone   `json:"zones_changed"`
				Removed []string `json:"zones_removed"`
			}
			if err := json.Unmarshal(m.Body, &body); err != nil {
				return out, fmt.Errorf("%w: Changed: %v", errMOO, err)
			}
			for _, id := range body.Removed {
				if z, ok := c.zones[id]; ok {
					delete(c.zones, id)
					c.note("zone_removed", z.name)
				}
			}
			c.zonesSeen(body.Added, true)
			c.zonesSeen(body.Changed, false)
			c.countZones()
		default:
			if m.Verb == VerbComplete {
				return out, fmt.Errorf("the zone subscription ended: %s", clip(m.Name))
			}
		}
	case reqUnsubscribe:
		// The old subscription sends nothing more once this is answered;
		// forget it so that wakes do not pile up requests.
		if m.Verb == VerbComplete {
			delete(c.pending, p.old)
		}
	}
	return out, nil
}

func (c *conn) countZones() {
	c.t.mu.Lock()
	c.t.zoneCount = len(c.zones)
	c.t.mu.Unlock()
}

func (c *conn) register() error {
	o := c.t.opts.Extension
	return c.request(svcRegistry+"/register", registration{
		ExtensionID: o.ID, DisplayName: o.Name, DisplayVersion: displayVersion, Publisher: o.Publisher, Email: o.Email,
		RequiredServices: []string{svcTransport}, OptionalServices: []string{}, ProvidedServices: []string{svcPing},
		Token: c.token,
	}, pendingReq{kind: reqRegister})
}

// answer answers a request from the core, as lib.js does.
func (c *conn) answer(m *Message) error {
	var b []byte
	var err error
	switch {
	case m.Service == svcPing && m.Name == "ping":
		c.t.count(func(s *Stats) { s.PingsAnswered++ })
		b, err = encodeMOO(VerbComplete, "Success", m.RequestID, nil)
	case m.Service == svcPing:
		b, err = encodeMOO(VerbComplete, "InvalidRequest", m.RequestID,
			map[string]string{"error": "unknown request name (" + m.Service + ") : " + m.Name})
	default:
		b, err = encodeMOO(VerbComplete, "InvalidRequest", m.RequestID,
			map[string]string{"error": "unknown service: " + m.Service})
	}
	if err != nil {
		return err
	}
	return c.write(b)
}

func (c *conn) note(event, zoneName string) {
	if c.t.opts.Zone != "" && zoneName != c.t.opts.Zone {
		return
	}
	if n, ok := c.h.(trackers.Noter); ok {
		n.Note(event, zoneName)
	}
}

// zone is the part of a transport zone the tracker reads.
type zone struct {
	ZoneID      string      `json:"zone_id"`
	DisplayName string      `json:"display_name"`
	State       string      `json:"state"`
	NowPlaying  *nowPlaying `json:"now_playing"`
}

type nowPlaying struct {
	Length       *float64 `json:"length"`
	SeekPosition *float64 `json:"seek_position"`
	ThreeLine    struct {
		Line1 string `json:"line1"`
		Line2 string `json:"line2"`
		Line3 string `json:"line3"`
	} `json:"three_line"`
}

// itemData is what an item holds.
type itemData struct {
	Zone      string `json:"zone"`
	ZoneID    string `json:"zone_id"`
	Title     string `json:"title"`
	Artist    string `json:"artist"`
	Album     string `json:"album"`
	Length    int64  `json:"length"`
	StartedAt string `json:"started_at"`
}

// zonesSeen records zones and the plays they started.
func (c *conn) zonesSeen(zs []zone, added bool) {
	t := c.t
	now := time.Now().Round(0)
	for _, z := range zs {
		if z.ZoneID == "" {
			continue
		}
		if _, known := c.zones[z.ZoneID]; !known && len(c.zones) >= maxZones {
			continue
		}
		c.zones[z.ZoneID] = zoneView{name: z.DisplayName}
		if added {
			c.note("zone_added", z.DisplayName)
		}
		if t.opts.Zone != "" && z.DisplayName != t.opts.Zone {
			continue
		}
		np := z.NowPlaying
		if z.State != "playing" || np == nil || np.ThreeLine.Line1 == "" {
			continue
		}
		length := int64(0)
		if np.Length != nil && *np.Length > 0 && *np.Length < 1e7 {
			length = int64(math.Round(*np.Length))
		}
		key := np.ThreeLine.Line1 + "\x00" + np.ThreeLine.Line2 + "\x00" + np.ThreeLine.Line3 + "\x00" + strconv.FormatInt(length, 10)
		started := now
		if np.SeekPosition != nil && *np.SeekPosition > 0 && *np.SeekPosition < 1e7 {
			started = now.Add(-time.Duration(*np.SeekPosition * float64(time.Second)))
		}
		t.mu.Lock()
		last, had := t.plays[z.ZoneID]
		again := max(2*time.Duration(last.LengthS)*time.Second, time.Hour)
		if had && last.Key == key && now.Sub(time.UnixMilli(last.StartedMS)) < again {
			t.mu.Unlock()
			continue
		}
		p := play{Key: key, StartedMS: started.UnixMilli(), LengthS: length}
		t.plays[z.ZoneID] = p
		if len(t.plays) > maxZones {
			t.trimPlaysLocked()
		}
		sum := sha256.Sum256([]byte(z.ZoneID + "\x00" + key + "\x00" + strconv.FormatInt(p.StartedMS, 10)))
		data, _ := json.Marshal(itemData{
			Zone: z.DisplayName, ZoneID: z.ZoneID, Title: np.ThreeLine.Line1, Artist: np.ThreeLine.Line2,
			Album: np.ThreeLine.Line3, Length: length, StartedAt: started.UTC().Format(time.RFC3339Nano),
		})
		t.pending = append(t.pending, trackers.Item{ID: hex.EncodeToString(sum[:16]), Time: started.UTC(), Data: data})
		if n := len(t.pending) - maxPending; n > 0 {
			t.pending = append([]trackers.Item(nil), t.pending[n:]...)
		}
		t.mu.Unlock()
		c.log.Info("track started", "zone", z.DisplayName)
	}
}

// trimPlaysLocked keeps the maxZones most recent plays.
func (t *Tracker) trimPlaysLocked() {
	ids := make([]string, 0, len(t.plays))
	for id := range t.plays {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return t.plays[ids[i]].StartedMS > t.plays[ids[j]].StartedMS })
	for _, id := range ids[maxZones:] {
		delete(t.plays, id)
	}
}

// flushPending stores the items waiting, with the cursor.
func (t *Tracker) flushPending(ctx context.Context, h trackers.Host, log *slog.Logger) {
	t.mu.Lock()
	if len(t.pending) == 0 {
		t.mu.Unlock()
		return
	}
	items := append([]trackers.Item(nil), t.pending...)
	cur, _ := json.Marshal(t.plays)
	t.mu.Unlock()
	added, err := t.store.SaveItems(ctx, t.name, items, string(cur))
	if err != nil {
		t.mu.Lock()
		said := t.saveFailing
		t.saveFailing = true
		t.mu.Unlock()
		if !said { // once per outage (the store is closed while the machine sleeps)
			log.Warn("cannot store the tracks; kept for the next try", "items", len(items), "err", err)
		}
		return
	}
	t.mu.Lock()
	t.saveFailing = false
	t.pending = t.pending[len(items):]
	if len(t.pending) == 0 {
		t.pending = nil
	}
	t.mu.Unlock()
	log.Debug("tracks stored", "items", len(items), "added", added)
}

// loadCursor reads each zone's last recorded play.
func (t *Tracker) loadCursor(ctx context.Context, log *slog.Logger) {
	c, err := t.store.Cursor(ctx, t.name)
	if err != nil {
		log.Warn("cannot read the cursor; a track playing now may be recorded again", "err", err)
		return
	}
	if c == "" {
		return
	}
	plays := map[string]play{}
	if err := json.Unmarshal([]byte(c), &plays); err != nil {
		log.Warn("unreadable cursor; a track playing now may be recorded again")
		return
	}
	t.mu.Lock()
	t.plays = plays
	t.mu.Unlock()
}
