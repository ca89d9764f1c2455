package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/rouse-dev/rouse/wire"
)

// contentSecurityPolicy allows what the dashboard needs (same-origin
// scripts, styles, images and connections) and nothing else.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// setSecurityHeaders sets the headers every response carries.
func setSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

// sameOrigin reports whether an Origin or Referer value names this very
// origin: http, the request's (already checked) Host.
func sameOrigin(value, host string) bool {
	u, err := url.Parse(value)
	if err != nil || u.Scheme != "http" || u.User != nil || u.Host == "" {
		return false
	}
	return strings.EqualFold(u.Host, host)
}

// checkOrigin refuses cross-origin requests: a foreign Origin (or, without
// Origin, a foreign Referer), or a browser's Sec-Fetch-Site saying the
// request comes from another site or origin.
func checkOrigin(r *http.Request) error {
	if o := r.Header.Values("Origin"); len(o) > 0 {
		if len(o) > 1 || !sameOrigin(o[0], r.Host) {
			return errf(http.StatusForbidden, wire.CodeBadOrigin, "cross-origin request refused: Origin %q is not %q", o[0], "http://"+r.Host)
		}
	} else if ref := r.Header.Get("Referer"); ref != "" && !sameOrigin(ref, r.Host) {
		return errf(http.StatusForbidden, wire.CodeBadOrigin, "cross-origin request refused: Referer is not from %q", "http://"+r.Host)
	}
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "", "same-origin", "none":
	default:
		return errf(http.StatusForbidden, wire.CodeBadOrigin, "cross-origin request refused: Sec-Fetch-Site is %q", site)
	}
	return nil
}

// publicPath reports whether a path needs no credentials (it still passes
// the Host and Origin checks): everything outside /api/ — the probes,
// /metrics, /login and the dashboard's page and assets, which hold no data
// (the page reads everything through the API with its session).
func publicPath(p string) bool {
	return p != "/api" && !strings.HasPrefix(p, "/api/")
}

// authVia says how a request authenticated.
type authVia int

const (
	authNone authVia = iota
	authToken
	authSession
)

// authenticate checks the token (Authorization: Bearer or X-API-Key,
// constant time), the dashboard session (the X-Rouse-Session header), or,
// for the event stream only, a one-time event ticket. Cookies authorise
// nothing: a browser sends them to every port of the host.
func (s *Server) authenticate(r *http.Request) (authVia, error) {
	var presented string
	var have bool
	if a := r.Header.Get("Authorization"); a != "" {
		scheme, tok, ok := strings.Cut(a, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return authNone, errf(http.StatusUnauthorized, wire.CodeUnauthorized, "Authorization must be \"Bearer <token>\" (the token is in the data directory's api-token file)")
		}
		presented, have = strings.TrimSpace(tok), true
	} else if k := r.Header.Values("X-API-Key"); len(k) > 0 {
		presented, have = strings.TrimSpace(k[0]), true
	}
	if have {
		if !s.auth.tokenOK(presented) {
			return authNone, errf(http.StatusForbidden, wire.CodeForbidden, "wrong API token")
		}
		return authToken, nil
	}
	if v := r.Header.Values(SessionHeader); len(v) > 0 {
		if len(v) == 1 && s.auth.sessionOK(strings.TrimSpace(v[0])) {
			return authSession, nil
		}
		return authNone, errf(http.StatusUnauthorized, wire.CodeUnauthorized, "session expired, ended or unknown: run `rouse open` to log in again")
	}
	if t := r.URL.Query().Get("ticket"); t != "" && r.URL.Path == "/api/v1/events" {
		if s.auth.redeemTicket(t) {
			return authSession, nil
		}
		return authNone, errf(http.StatusUnauthorized, wire.CodeUnauthorized, "event ticket expired, used or unknown: ask POST /api/v1/event-tickets for a new one")
	}
	return authNone, errf(http.StatusUnauthorized, wire.CodeUnauthorized, "missing API token: send Authorization: Bearer <token> or X-API-Key (the token is in the data directory's api-token file), or log in with `rouse open`")
}

// hasCredentials reports whether a request shows any credential (token,
// API key or session): then it must be a valid one.
func hasCredentials(r *http.Request) bool {
	return r.Header.Get("Authorization") != "" || len(r.Header.Values("X-API-Key")) > 0 || len(r.Header.Values(SessionHeader)) > 0
}

// constantTimeEqual compares two secrets without leaking where they differ
// or, by hashing first, their lengths.
func constantTimeEqual(a, b string) bool {
	ha := sha256.Sum256([]byte(a))
	hb := sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// checkMutation enforces the rules for POST: an empty body, or a JSON one.
func checkMutation(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		if r.ContentLength != 0 {
			return errf(http.StatusUnsupportedMediaType, wire.CodeUnsupportedMedia, "a request body needs Content-Type: application/json")
		}
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return errf(http.StatusUnsupportedMediaType, wire.CodeUnsupportedMedia, "Content-Type must be application/json or absent with an empty body, got %q", ct)
	}
	return nil
}

// serveHTTP is the middleware chain in front of the router.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header())
	if !s.hosts.Allowed(r.Host, s.ourPort()) {
		s.writeError(w, r, errf(http.StatusForbidden, wire.CodeBadHost, "Host %q is not this agent: use localhost, 127.0.0.1 or [::1]", r.Host))
		return
	}
	if err := checkOrigin(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	if r.Method == http.MethodOptions {
		// No CORS, ever: a preflight gets 405 and no Access-Control-*.
		w.Header().Set("Allow", "GET, HEAD, POST")
		s.writeError(w, r, errf(http.StatusMethodNotAllowed, wire.CodeMethodNotAllowed, "OPTIONS is not supported (no cross-origin access)"))
		return
	}
	if !publicPath(r.URL.Path) {
		via, err := s.authenticate(r)
		if err != nil {
			if se, ok := err.(*apiError); ok && se.status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="rouse"`)
			}
			s.writeError(w, r, err)
			return
		}
		if via == authSession && r.Method == http.MethodPost && r.Header.Get("Origin") == "" {
			s.writeError(w, r, errf(http.StatusForbidden, wire.CodeBadOrigin, "a POST from the dashboard must carry its Origin"))
			return
		}
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	s.router.ServeHTTP(w, r)
}

func (s *Server) ourPort() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.port
}
