// Package fakecore is a fake Roon Core for tests: the server side of
// MOO/1 over a WebSocket and of SOOD discovery, written from Roon Labs'
// client (node-roon-api: moo.js, moomsg.js, lib.js, sood.js;
// node-roon-api-transport) so that what it writes is byte for byte what
// that client expects, and what it reads is parsed as strictly. It is the
// only stand-in for the real thing, which cannot run here.
//
// What it does: com.roonlabs.registry:1/info answers COMPLETE Success with
// the core's id; register with a token it issued answers CONTINUE
// Registered at once, any other register is held until the test calls
// Enable (the user clicking Enable in Roon → Settings → Extensions);
// com.roonlabs.transport:2/subscribe_zones answers CONTINUE Subscribed
// with the scripted zones, and every scripted change is a CONTINUE
// Changed to each subscription. It pings the extension
// (com.roonlabs.ping:1/ping) when asked. Faults on cue: Drop (no close
// frame), Close (a close frame with a code), Freeze (stops reading the
// socket: no pong, no answer), an info answer delayed, raw bytes.
//
// It imports nothing of rouse's, so the client's parser and this one are
// not the same code.
package fakecore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	ws "github.com/coder/websocket"
)

// Zone is a scripted zone.
type Zone struct {
	ID    string
	Name  string
	State string // playing, paused, loading, stopped
	Track *Track
	Seek  float64
}

// Track is what a zone plays.
type Track struct {
	Title, Artist, Album string
	Length               int
}

// Core is a fake Roon Core. Use New.
type Core struct {
	ID, Name, Version string
	HTTPPort          int // what registration and SOOD replies say

	mu        sync.Mutex
	tokens    map[string]bool
	nextToken int
	zones     []*Zone
	sessions  map[*session]struct{}
	held      []heldReg
	infoDelay time.Duration
	frozen    chan struct{} // non-nil while frozen: closed by Thaw
	errs      []string
	infos     int
	registers int
	wg        sync.WaitGroup
	closed    bool
	changed   chan struct{}
}

type heldReg struct {
	s  *session
	id string
}

// New returns a core with no zones and no extension enabled.
func New(id, name string) *Core {
	return &Core{ID: id, Name: name, Version: "2.0 (build 1000) production", HTTPPort: 9330,
		tokens: map[string]bool{}, sessions: map[*session]struct{}{}, changed: make(chan struct{})}
}

type session struct {
	c       *ws.Conn
	raw     *gatedConn
	nextID  int
	pending map[string]string // our requests: id → service/name
	subs    map[string]int    // subscribe_zones request id → subscription_key
	token   string
	mu      sync.Mutex
}

// Handler is the core's HTTP side: GET /api upgrades to the MOO socket.
func (c *Core) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api" {
			http.NotFound(w, r)
			return
		}
		conn, err := ws.Accept(w, r, nil)
		if err != nil {
			return
		}
		conn.SetReadLimit(16 << 20)
		s := &session{c: conn, pending: map[string]string{}, subs: map[string]int{}}
		if gc, ok := r.Context().Value(connKey{}).(*gatedConn); ok {
			s.raw = gc
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			conn.CloseNow()
			return
		}
		c.sessions[s] = struct{}{}
		c.bumpLocked()
		c.mu.Unlock()
		defer func() {
			c.mu.Lock()
			delete(c.sessions, s)
			c.bumpLocked()
			c.mu.Unlock()
			conn.CloseNow()
		}()
		c.serve(r.Context(), s)
	})
}

type connKey struct{}

// Serve serves the core on ln until ctx ends; connections can be frozen.
// It returns after every connection has ended.
func (c *Core) Serve(ctx context.Context, ln net.Listener) {
	srv := &http.Server{
		Handler:     c.Handler(),
		ConnContext: func(ctx context.Context, nc net.Conn) context.Context { return context.WithValue(ctx, connKey{}, nc) },
	}
	gl := &gatedListener{Listener: ln, core: c}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(gl)
	}()
	<-ctx.Done()
	c.mu.Lock()
	c.closed = true
	if c.frozen != nil {
		close(c.frozen)
		c.frozen = nil
	}
	ss := c.sessionsLocked()
	c.mu.Unlock()
	_ = srv.Close()
	for _, s := range ss {
		s.c.CloseNow()
	}
	<-done
	c.wg.Wait()
}

type gatedListener struct {
	net.Listener
	core *Core
}

func (l *gatedListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &gatedConn{Conn: nc, core: l.core}, nil
}

// gatedConn stops reading while the core is frozen: pings go unanswered.
type gatedConn struct {
	net.Conn
	core *Core
}

func (g *gatedConn) Read(p []byte) (int, error) {
	g.gate()
	n, err := g.Conn.Read(p)
	g.gate() // what arrived while frozen is seen only after Thaw
	return n, err
}

func (g *gatedConn) gate() {
	g.core.mu.Lock()
	f := g.core.frozen
	g.core.mu.Unlock()
	if f != nil {
		<-f
	}
}

func (c *Core) bumpLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *Core) sessionsLocked() []*session {
	out := make([]*session, 0, len(c.sessions))
	for s := range c.sessions {
		out = append(out, s)
	}
	return out
}

func (c *Core) fail(f string, a ...any) {
	c.mu.Lock()
	c.errs = append(c.errs, fmt.Sprintf(f, a...))
	c.bumpLocked()
	c.mu.Unlock()
}

// Errors returns what the core found wrong in what the extension sent.
func (c *Core) Errors() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.errs...)
}

func (c *Core) serve(ctx context.Context, s *session) {
	for {
		typ, b, err := s.c.Read(ctx)
		if err != nil {
			return
		}
		if typ != ws.MessageBinary {
			c.fail("text frame from the extension")
			return
		}
		m, err := parse(b)
		if err != nil {
			c.fail("bad message from the extension: %v", err)
			return
		}
		if m.verb != "REQUEST" {
			s.mu.Lock()
			_, ok := s.pending[m.id]
			delete(s.pending, m.id)
			s.mu.Unlock()
			if !ok {
				c.fail("answer to unknown Request-Id %s", m.id)
				return
			}
			continue
		}
		c.request(s, m)
	}
}

func (c *Core) request(s *session, m *msg) {
	switch m.service + "/" + m.name {
	case "com.roonlabs.registry:1/info":
		c.mu.Lock()
		c.infos++
		d := c.infoDelay
		c.bumpLocked()
		c.mu.Unlock()
		body := map[string]string{"core_id": c.ID, "display_name": c.Name, "display_version": c.Version}
		if d > 0 {
			c.wg.Add(1)
			time.AfterFunc(d, func() {
				defer c.wg.Done()
				s.send("COMPLETE", "Success", m.id, body)
			})
			return
		}
		s.send("COMPLETE", "Success", m.id, body)
	case "com.roonlabs.registry:1/register":
		var reg struct {
			ExtensionID      string   `json:"extension_id"`
			DisplayName      string   `json:"display_name"`
			DisplayVersion   string   `json:"display_version"`
			Publisher        string   `json:"publisher"`
			Email            string   `json:"email"`
			RequiredServices []string `json:"required_services"`
			ProvidedServices []string `json:"provided_services"`
			Token            string   `json:"token"`
		}
		if err := json.Unmarshal(m.body, &reg); err != nil || reg.ExtensionID == "" || reg.DisplayName == "" ||
			reg.DisplayVersion == "" || reg.Publisher == "" || reg.Email == "" {
			c.fail("register without the extension's details: %s", m.body)
			s.send("COMPLETE", "InvalidRequest", m.id, map[string]string{"error": "bad registration"})
			return
		}
		c.mu.Lock()
		c.registers++
		ok := reg.Token != "" && c.tokens[reg.Token]
		if !ok {
			c.held = append(c.held, heldReg{s: s, id: m.id})
		}
		c.bumpLocked()
		c.mu.Unlock()
		if ok {
			s.mu.Lock()
			s.token = reg.Token
			s.mu.Unlock()
			s.send("CONTINUE", "Registered", m.id, c.registration(reg.Token))
		}
	case "com.roonlabs.transport:2/subscribe_zones":
		var sub struct {
			Key *int `json:"subscription_key"`
		}
		if err := json.Unmarshal(m.body, &sub); err != nil || sub.Key == nil {
			c.fail("subscribe_zones without a subscription_key")
			s.send("COMPLETE", "InvalidRequest", m.id, map[string]string{"error": "no subscription_key"})
			return
		}
		s.mu.Lock()
		registered := s.token != ""
		if registered {
			s.subs[m.id] = *sub.Key
		}
		s.mu.Unlock()
		if !registered {
			c.fail("subscribe_zones before registering")
			s.send("COMPLETE", "InvalidRequest", m.id, map[string]string{"error": "not registered"})
			return
		}
		c.mu.Lock()
		zs := c.zonesJSONLocked()
		c.bumpLocked()
		c.mu.Unlock()
		s.send("CONTINUE", "Subscribed", m.id, map[string]any{"zones": zs})
	case "com.roonlabs.transport:2/unsubscribe_zones":
		var sub struct {
			Key *int `json:"subscription_key"`
		}
		_ = json.Unmarshal(m.body, &sub)
		s.mu.Lock()
		for id, k := range s.subs {
			if sub.Key != nil && k == *sub.Key {
				delete(s.subs, id)
			}
		}
		s.mu.Unlock()
		s.send("COMPLETE", "Unsubscribed", m.id, nil)
	default:
		s.send("COMPLETE", "InvalidRequest", m.id, map[string]string{"error": "unknown request name (" + m.service + ") : " + m.name})
	}
}

func (c *Core) registration(token string) map[string]any {
	return map[string]any{
		"core_id": c.ID, "display_name": c.Name, "display_version": c.Version, "token": token,
		"provided_services": []string{"com.roonlabs.transport:2", "com.roonlabs.ping:1"}, "http_port": c.HTTPPort,
	}
}

// send writes a CONTINUE or COMPLETE (or REQUEST) exactly as moomsg.js
// does. Errors are the connection's end, seen by its reader.
func (s *session) send(verb, name, id string, body any) {
	_ = s.c.Write(context.Background(), ws.MessageBinary, encode(verb, name, id, body))
}

// encode is moomsg.js's send_continue / send_complete (and moo.js's
// send_request): the first line, Request-Id, with a body Content-Length
// and Content-Type, a blank line, the body.
func encode(verb, name, id string, body any) []byte {
	header := "MOO/1 " + verb + " " + name + "\n" + "Request-Id: " + id + "\n"
	var js []byte
	if body != nil {
		js, _ = json.Marshal(body)
		header += "Content-Length: " + strconv.Itoa(len(js)) + "\n" + "Content-Type: application/json\n"
	}
	return append([]byte(header+"\n"), js...)
}

// Enable is the user clicking Enable: held registrations are answered
// Registered with a new token each.
func (c *Core) Enable() {
	c.mu.Lock()
	held := c.held
	c.held = nil
	toks := make([]string, len(held))
	for i := range held {
		c.nextToken++
		toks[i] = fmt.Sprintf("tok-%s-%d", c.ID, c.nextToken)
		c.tokens[toks[i]] = true
	}
	c.bumpLocked()
	c.mu.Unlock()
	for i, h := range held {
		h.s.mu.Lock()
		h.s.token = toks[i]
		h.s.mu.Unlock()
		h.s.send("CONTINUE", "Registered", h.id, c.registration(toks[i]))
	}
}

// Revoke is the user disabling the extension: every token is forgotten
// and connections are dropped; a register with an old token is held.
func (c *Core) Revoke() {
	c.mu.Lock()
	c.tokens = map[string]bool{}
	ss := c.sessionsLocked()
	c.mu.Unlock()
	for _, s := range ss {
		s.c.CloseNow()
	}
}

// Tokens returns the tokens issued and still good.
func (c *Core) Tokens() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for t := range c.tokens {
		out = append(out, t)
	}
	return out
}

// Counts returns how many info and register requests arrived, and the
// registrations held now.
func (c *Core) Counts() (infos, registers, held int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.infos, c.registers, len(c.held)
}

// Sessions is the number of open connections.
func (c *Core) Sessions() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sessions)
}

// Subscriptions is the number of live zone subscriptions.
func (c *Core) Subscriptions() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for s := range c.sessions {
		s.mu.Lock()
		n += len(s.subs)
		s.mu.Unlock()
	}
	return n
}

// Changed returns a channel closed at the core's next change of state
// (a request, a connection, an error).
func (c *Core) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// SetInfoDelay delays the info answers that follow.
func (c *Core) SetInfoDelay(d time.Duration) {
	c.mu.Lock()
	c.infoDelay = d
	c.mu.Unlock()
}

// Freeze stops reading every connection (new ones too): no pong, no
// answer. Thaw undoes it.
func (c *Core) Freeze() {
	c.mu.Lock()
	if c.frozen == nil {
		c.frozen = make(chan struct{})
	}
	c.mu.Unlock()
}

// Thaw ends a Freeze.
func (c *Core) Thaw() {
	c.mu.Lock()
	if c.frozen != nil {
		close(c.frozen)
		c.frozen = nil
	}
	c.mu.Unlock()
}

// Drop ends every connection without a close frame.
func (c *Core) Drop() {
	c.mu.Lock()
	ss := c.sessionsLocked()
	c.mu.Unlock()
	for _, s := range ss {
		if s.raw != nil {
			_ = s.raw.Conn.Close()
		}
		s.c.CloseNow()
	}
}

// Close ends every connection with a close frame.
func (c *Core) Close(code int, reason string) {
	c.mu.Lock()
	ss := c.sessionsLocked()
	c.mu.Unlock()
	for _, s := range ss {
		_ = s.c.Close(ws.StatusCode(code), reason)
	}
}

// SendRaw writes b as a binary frame to every connection.
func (c *Core) SendRaw(b []byte) {
	c.mu.Lock()
	ss := c.sessionsLocked()
	c.mu.Unlock()
	for _, s := range ss {
		_ = s.c.Write(context.Background(), ws.MessageBinary, b)
	}
}

// Ping sends com.roonlabs.ping:1/ping to every connection; the answers
// are checked by the reader (an answer to an id it never sent is an error).
func (c *Core) Ping() {
	c.mu.Lock()
	ss := c.sessionsLocked()
	c.mu.Unlock()
	for _, s := range ss {
		s.mu.Lock()
		id := strconv.Itoa(s.nextID)
		s.nextID++
		s.pending[id] = "com.roonlabs.ping:1/ping"
		s.mu.Unlock()
		// lib.js reads a Logging header ("quiet" keeps pings out of its
		// log), so the core sends one with its pings.
		_ = s.c.Write(context.Background(), ws.MessageBinary,
			[]byte("MOO/1 REQUEST com.roonlabs.ping:1/ping\nRequest-Id: "+id+"\nLogging: quiet\n\n"))
	}
}

// PendingPings is the number of core pings not answered yet.
func (c *Core) PendingPings() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for s := range c.sessions {
		s.mu.Lock()
		n += len(s.pending)
		s.mu.Unlock()
	}
	return n
}

// SetZones replaces the zones (before anyone subscribes, or as a script).
func (c *Core) SetZones(zs ...*Zone) {
	c.mu.Lock()
	c.zones = zs
	c.mu.Unlock()
}

// Play makes zone id play t from the start and tells the subscribers.
func (c *Core) Play(id string, t Track) {
	c.change(id, func(z *Zone) { z.State, z.Track, z.Seek = "playing", &t, 0 })
}

// Pause pauses zone id.
func (c *Core) Pause(id string) { c.change(id, func(z *Zone) { z.State = "paused" }) }

func (c *Core) change(id string, f func(*Zone)) {
	c.mu.Lock()
	var zj map[string]any
	for _, z := range c.zones {
		if z.ID == id {
			f(z)
			zj = zoneJSON(z)
		}
	}
	c.mu.Unlock()
	if zj != nil {
		c.broadcast(map[string]any{"zones_changed": []any{zj}})
	}
}

// Seek moves zone id's position: a zones_seek_changed only.
func (c *Core) Seek(id string, pos float64) {
	c.mu.Lock()
	for _, z := range c.zones {
		if z.ID == id {
			z.Seek = pos
		}
	}
	c.mu.Unlock()
	c.broadcast(map[string]any{"zones_seek_changed": []any{map[string]any{"zone_id": id, "seek_position": pos, "queue_time_remaining": 100}}})
}

// AddZone adds a zone: a zones_added.
func (c *Core) AddZone(z *Zone) {
	c.mu.Lock()
	c.zones = append(c.zones, z)
	zj := zoneJSON(z)
	c.mu.Unlock()
	c.broadcast(map[string]any{"zones_added": []any{zj}})
}

// RemoveZone removes a zone: a zones_removed.
func (c *Core) RemoveZone(id string) {
	c.mu.Lock()
	for i, z := range c.zones {
		if z.ID == id {
			c.zones = append(c.zones[:i:i], c.zones[i+1:]...)
			break
		}
	}
	c.mu.Unlock()
	c.broadcast(map[string]any{"zones_removed": []string{id}})
}

func (c *Core) broadcast(body map[string]any) {
	c.mu.Lock()
	type target struct {
		s  *session
		id string
	}
	var ts []target
	for s := range c.sessions {
		s.mu.Lock()
		for id := range s.subs {
			ts = append(ts, target{s, id})
		}
		s.mu.Unlock()
	}
	c.mu.Unlock()
	for _, t := range ts {
		t.s.send("CONTINUE", "Changed", t.id, body)
	}
}

func (c *Core) zonesJSONLocked() []any {
	out := []any{}
	for _, z := range c.zones {
		out = append(out, zoneJSON(z))
	}
	return out
}

// zoneJSON is a zone as node-roon-api-transport documents it.
func zoneJSON(z *Zone) map[string]any {
	m := map[string]any{
		"zone_id": z.ID, "display_name": z.Name, "state": z.State,
		"outputs":             []any{map[string]any{"output_id": z.ID + "-out", "zone_id": z.ID, "display_name": z.Name, "state": z.State}},
		"is_previous_allowed": true, "is_next_allowed": true, "is_pause_allowed": z.State == "playing",
		"is_play_allowed": z.State != "playing", "is_seek_allowed": z.Track != nil,
		"settings": map[string]any{"loop": "disabled", "shuffle": false, "auto_radio": true},
	}
	if t := z.Track; t != nil {
		m["seek_position"] = z.Seek
		m["now_playing"] = map[string]any{
			"seek_position": z.Seek, "length": t.Length, "image_key": "img-" + t.Title,
			"one_line":   map[string]any{"line1": t.Title + " - " + t.Artist},
			"two_line":   map[string]any{"line1": t.Title, "line2": t.Artist},
			"three_line": map[string]any{"line1": t.Title, "line2": t.Artist, "line3": t.Album},
		}
	}
	return m
}

// msg is a parsed MOO message.
type msg struct {
	verb, service, name, id string
	body                    []byte
}

// parse is moo.js's parse, strict: anything it would log and drop is an
// error here.
func parse(b []byte) (*msg, error) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, errors.New("no newline")
	}
	first := string(b[:i])
	if !strings.HasPrefix(first, "MOO/1 ") {
		return nil, fmt.Errorf("first line %q", first)
	}
	parts := strings.SplitN(first[len("MOO/1 "):], " ", 2)
	if len(parts) != 2 {
		return nil, fmt.Errorf("first line %q", first)
	}
	m := &msg{verb: parts[0]}
	switch m.verb {
	case "REQUEST":
		sn := strings.SplitN(parts[1], "/", 2)
		if len(sn) != 2 || sn[0] == "" || sn[1] == "" {
			return nil, fmt.Errorf("request line %q", first)
		}
		m.service, m.name = sn[0], sn[1]
	case "CONTINUE", "COMPLETE":
		m.name = parts[1]
	default:
		return nil, fmt.Errorf("verb %q", m.verb)
	}
	rest := b[i+1:]
	length, ctype := -1, ""
	for {
		j := bytes.IndexByte(rest, '\n')
		if j < 0 {
			return nil, errors.New("header not ended")
		}
		line := string(rest[:j])
		rest = rest[j+1:]
		if line == "" {
			break
		}
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			return nil, fmt.Errorf("header %q", line)
		}
		switch k {
		case "Request-Id":
			m.id = v
		case "Content-Length":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("Content-Length %q", v)
			}
			length = n
		case "Content-Type":
			ctype = v
		}
	}
	if m.id == "" {
		return nil, errors.New("no Request-Id")
	}
	switch {
	case length < 0 && (ctype != "" || len(rest) > 0):
		return nil, errors.New("body or Content-Type without Content-Length")
	case length >= 0 && len(rest) != length:
		return nil, fmt.Errorf("Content-Length %d, body %d", length, len(rest))
	case length > 0 && ctype != "application/json":
		return nil, fmt.Errorf("Content-Type %q", ctype)
	case length > 0 && !json.Valid(rest):
		return nil, errors.New("body is not JSON")
	}
	if length > 0 {
		m.body = rest
	}
	return m, nil
}

// WaitHeld waits until at least one registration is held (the extension
// shows in Roon's list, ready to be enabled), or ctx ends.
func (c *Core) WaitHeld(ctx context.Context) error {
	for {
		ch := c.Changed()
		if _, _, held := c.Counts(); held > 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
