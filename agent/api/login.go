package api

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"html/template"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rouse-dev/rouse/wire"
)

// The dashboard's session. Cookies are not port-scoped: a cookie set by
// 127.0.0.1:8000 goes to every other port of 127.0.0.1, so any local
// program that gets the browser to load one of its pages would receive it.
// So no cookie authorises anything. The session secret is handed to the
// page once, in the URL fragment of the redirect after login (a fragment is
// never sent to any server); the page keeps it in its tab's sessionStorage,
// which is scoped to its origin, port included, and sends it as the
// X-Rouse-Session header. An EventSource cannot send headers, so the page
// first trades its session for a one-time event ticket (30 s) that opens
// one stream.
const (
	// SessionHeader carries the dashboard's session secret.
	SessionHeader = "X-Rouse-Session"
	// legacyCookie is the cookie older versions set; login clears it and
	// nothing reads it.
	legacyCookie = "rouse_session"

	loginCodeTTL  = 60 * time.Second
	sessionIdle   = 12 * time.Hour     // a session unused this long ends
	sessionMax    = 7 * 24 * time.Hour // and any session ends this long after login
	ticketTTL     = 30 * time.Second
	maxLoginCodes = 32 // pending codes kept; the oldest is dropped beyond
	maxSessions   = 64 // sessions kept; the least recently used is dropped beyond
	maxTickets    = 64 // pending event tickets kept
)

// session is one dashboard login.
type session struct {
	created, used time.Time
}

// authState holds the token, the pending one-time login codes and event
// tickets, and the dashboard sessions. Secrets are kept by their SHA-256,
// so a lookup compares hashes, never the secrets themselves.
type authState struct {
	token string
	now   func() time.Time

	mu       sync.Mutex
	codes    map[[32]byte]time.Time // expiry
	tickets  map[[32]byte]time.Time // expiry
	sessions map[[32]byte]*session
}

func newAuthState(token string, now func() time.Time) *authState {
	return &authState{
		token:    token,
		now:      now,
		codes:    map[[32]byte]time.Time{},
		tickets:  map[[32]byte]time.Time{},
		sessions: map[[32]byte]*session{},
	}
}

func (a *authState) tokenOK(presented string) bool {
	return constantTimeEqual(presented, a.token)
}

// randomHex returns n random bytes as hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand panics on the impossible)
	return hex.EncodeToString(b)
}

func hashOf(secret string) [32]byte { return sha256.Sum256([]byte(secret)) }

// putExpiring stores secret with an expiry, dropping expired entries and,
// beyond max, the entry that expires first.
func (a *authState) putExpiring(m map[[32]byte]time.Time, secret string, ttl time.Duration, max int) {
	now := a.now()
	for k, exp := range m {
		if !now.Before(exp) {
			delete(m, k)
		}
	}
	for len(m) >= max {
		var oldest [32]byte
		var first time.Time
		for k, exp := range m {
			if first.IsZero() || exp.Before(first) {
				oldest, first = k, exp
			}
		}
		delete(m, oldest)
	}
	m[hashOf(secret)] = now.Add(ttl)
}

// takeExpiring consumes secret: true once, and only before it expires.
func (a *authState) takeExpiring(m map[[32]byte]time.Time, secret string) bool {
	k := hashOf(secret)
	a.mu.Lock()
	defer a.mu.Unlock()
	exp, ok := m[k]
	if !ok {
		return false
	}
	delete(m, k)
	return a.now().Before(exp)
}

func (a *authState) newCode() string {
	code := randomHex(16)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.putExpiring(a.codes, code, loginCodeTTL, maxLoginCodes)
	return code
}

// codeValid reports whether code would log in, without using it up.
func (a *authState) codeValid(code string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	exp, ok := a.codes[hashOf(code)]
	return ok && a.now().Before(exp)
}

// redeem consumes a login code.
func (a *authState) redeem(code string) bool { return a.takeExpiring(a.codes, code) }

func (a *authState) newTicket() string {
	t := randomHex(16)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.putExpiring(a.tickets, t, ticketTTL, maxTickets)
	return t
}

// redeemTicket consumes an event ticket.
func (a *authState) redeemTicket(t string) bool { return a.takeExpiring(a.tickets, t) }

// live reports whether a session is still valid at now.
func (s *session) live(now time.Time) bool {
	return now.Before(s.created.Add(sessionMax)) && now.Before(s.used.Add(sessionIdle))
}

func (a *authState) newSession() string {
	id := randomHex(32)
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, s := range a.sessions {
		if !s.live(now) {
			delete(a.sessions, k)
		}
	}
	for len(a.sessions) >= maxSessions {
		var lru [32]byte
		var first time.Time
		for k, s := range a.sessions {
			if first.IsZero() || s.used.Before(first) {
				lru, first = k, s.used
			}
		}
		delete(a.sessions, lru)
	}
	a.sessions[hashOf(id)] = &session{created: now, used: now}
	return id
}

// sessionOK checks a session and counts the request as its use.
func (a *authState) sessionOK(id string) bool {
	k := hashOf(id)
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.sessions[k]
	if !ok {
		return false
	}
	if !s.live(now) {
		delete(a.sessions, k)
		return false
	}
	s.used = now
	return true
}

// revoke ends one session; revokeAll ends every one and says how many.
func (a *authState) revoke(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.sessions, hashOf(id))
}

func (a *authState) revokeAll() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := len(a.sessions)
	clear(a.sessions)
	clear(a.tickets)
	return n
}

// NewLoginCode returns a one-time login code, valid for 60 s: the landing
// page GET /login?code=CODE shows a button whose POST uses it up.
func (s *Server) NewLoginCode() string {
	return s.auth.newCode()
}

// LoginCode is the body of POST /api/v1/login-codes.
type LoginCode = wire.LoginCode

// postLoginCode hands a token holder (rouse open) a one-time login URL. A
// dashboard session cannot mint codes: only the token can.
func (s *Server) postLoginCode(w http.ResponseWriter, r *http.Request) error {
	if via, _ := s.authenticate(r); via != authToken {
		return errf(http.StatusForbidden, wire.CodeForbidden, "login codes need the API token, not a session")
	}
	code := s.NewLoginCode()
	s.writeJSON(w, http.StatusOK, LoginCode{Code: code, URL: "http://" + r.Host + "/login?code=" + code})
	return nil
}

// Logout is the body of POST /api/v1/logout.
type Logout struct {
	Status   string `json:"status"`   // "logged out"
	Sessions int    `json:"sessions"` // how many sessions ended
}

// postLogout ends the calling session; with the token, every session.
func (s *Server) postLogout(w http.ResponseWriter, r *http.Request) error {
	via, err := s.authenticate(r)
	if err != nil {
		return err
	}
	n := 1
	if via == authToken {
		n = s.auth.revokeAll()
	} else {
		s.auth.revoke(r.Header.Get(SessionHeader))
	}
	s.log.Info("api dashboard logout", "sessions", n, "remote", r.RemoteAddr)
	s.writeJSON(w, http.StatusOK, Logout{Status: "logged out", Sessions: n})
	return nil
}

// EventTicket is the body of POST /api/v1/event-tickets.
type EventTicket struct {
	Ticket      string `json:"ticket"`        // GET /api/v1/events?ticket=... opens one stream
	ExpiresInMS int64  `json:"expires_in_ms"` // it must be used within this
}

func (s *Server) postEventTicket(w http.ResponseWriter, r *http.Request) error {
	s.writeJSON(w, http.StatusOK, EventTicket{Ticket: s.auth.newTicket(), ExpiresInMS: ticketTTL.Milliseconds()})
	return nil
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rouse: log in</title>
<link rel="icon" href="/assets/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/assets/app.css"></head>
<body><main class="login">
<h1>Log in to rouse</h1>
<p>This one-time link opens the dashboard of the rouse agent on this machine.</p>
<form method="post" action="/login">
<input type="hidden" name="code" value="{{.}}">
<button type="submit" class="primary" id="login">Open the dashboard</button>
</form>
</main></body></html>
`))

const loginRefusedPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rouse: login refused</title></head>
<body><h1>Login refused</h1><p>This login link is invalid, already used or expired (links work once, for 60 seconds).
Run <code>rouse open</code> for a new one.</p></body></html>
`

func refuseLogin(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusForbidden)
	_, _ = w.Write([]byte(loginRefusedPage))
}

// getLogin is the landing page of a login link. It does not use the code
// up (a link prefetcher or a HEAD must not): only the button's POST does.
func (s *Server) getLogin(w http.ResponseWriter, r *http.Request) error {
	code := r.URL.Query().Get("code")
	if code == "" || !s.auth.codeValid(code) {
		refuseLogin(w)
		return nil
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// With the default no-referrer, a browser sends "Origin: null" on the
	// form's POST; strict-origin sends our origin (and no path, so the code
	// never travels in a Referer).
	w.Header().Set("Referrer-Policy", "strict-origin")
	return loginPage.Execute(w, code)
}

// postLogin exchanges a code (the landing page's form) for a session and
// redirects to the dashboard with the secret in the URL fragment.
func (s *Server) postLogin(w http.ResponseWriter, r *http.Request) error {
	if o := r.Header.Get("Origin"); o == "" {
		return errf(http.StatusForbidden, wire.CodeBadOrigin, "a login must come from the login page (no Origin)")
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		return errf(http.StatusUnsupportedMediaType, wire.CodeUnsupportedMedia, "a login is the login page's form (application/x-www-form-urlencoded)")
	}
	if err := r.ParseForm(); err != nil {
		return errf(http.StatusBadRequest, wire.CodeBadRequest, "login form: %v", err)
	}
	code := strings.TrimSpace(r.PostForm.Get("code"))
	if code == "" || !s.auth.redeem(code) {
		s.log.Warn("api login refused", "remote", r.RemoteAddr)
		refuseLogin(w)
		return nil
	}
	http.SetCookie(w, &http.Cookie{Name: legacyCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true})
	s.log.Info("api dashboard login", "remote", r.RemoteAddr)
	w.Header().Set("Location", "/#session="+s.auth.newSession())
	w.WriteHeader(http.StatusSeeOther)
	return nil
}
