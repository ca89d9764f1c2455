package api

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"sync"
	"time"

	"github.com/rouse-dev/rouse/wire"
)

const (
	sessionCookie  = "rouse_session"
	loginCodeTTL   = 60 * time.Second
	sessionTTL     = 7 * 24 * time.Hour
	maxLoginCodes  = 32 // pending codes kept; the oldest is dropped beyond
	maxSessionsCap = 64 // sessions kept; the oldest is dropped beyond
)

// authState holds the token, the pending one-time login codes and the
// dashboard sessions. Codes and sessions are kept by their SHA-256, so a
// lookup compares hashes, never the secrets themselves.
type authState struct {
	token string
	now   func() time.Time

	mu       sync.Mutex
	codes    map[[32]byte]time.Time // expiry
	sessions map[[32]byte]time.Time // expiry
}

func newAuthState(token string, now func() time.Time) *authState {
	return &authState{
		token:    token,
		now:      now,
		codes:    map[[32]byte]time.Time{},
		sessions: map[[32]byte]time.Time{},
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

// put stores key with an expiry, dropping expired entries and, beyond max,
// the entry that expires first.
func (a *authState) put(m map[[32]byte]time.Time, secret string, ttl time.Duration, max int) {
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
	m[sha256.Sum256([]byte(secret))] = now.Add(ttl)
}

func (a *authState) newCode() string {
	code := randomHex(16)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.put(a.codes, code, loginCodeTTL, maxLoginCodes)
	return code
}

// redeem consumes a code: true once, and only before it expires.
func (a *authState) redeem(code string) bool {
	k := sha256.Sum256([]byte(code))
	a.mu.Lock()
	defer a.mu.Unlock()
	exp, ok := a.codes[k]
	if !ok {
		return false
	}
	delete(a.codes, k)
	return a.now().Before(exp)
}

func (a *authState) newSession() string {
	id := randomHex(32)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.put(a.sessions, id, sessionTTL, maxSessionsCap)
	return id
}

func (a *authState) sessionOK(id string) bool {
	k := sha256.Sum256([]byte(id))
	a.mu.Lock()
	defer a.mu.Unlock()
	exp, ok := a.sessions[k]
	if !ok {
		return false
	}
	if !a.now().Before(exp) {
		delete(a.sessions, k)
		return false
	}
	return true
}

// NewLoginCode returns a one-time login code, valid for 60 s and usable
// once: GET /login?code=CODE exchanges it for a session cookie.
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

const loginRefusedPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rouse: login refused</title></head>
<body><h1>Login refused</h1><p>This login link is invalid, already used or expired (links work once, for 60 seconds).
Run <code>rouse open</code> for a new one.</p></body></html>
`

// getLogin exchanges a one-time code for a session cookie.
func (s *Server) getLogin(w http.ResponseWriter, r *http.Request) error {
	code := r.URL.Query().Get("code")
	if code == "" || !s.auth.redeem(code) {
		s.log.Warn("api login refused", "remote", r.RemoteAddr)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(loginRefusedPage))
		return nil
	}
	http.SetCookie(w, &http.Cookie{
		Name:     sessionCookie,
		Value:    s.auth.newSession(),
		Path:     "/",
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
		MaxAge:   int(sessionTTL / time.Second),
	})
	s.log.Info("api dashboard login", "remote", r.RemoteAddr)
	http.Redirect(w, r, "/", http.StatusSeeOther)
	return nil
}
