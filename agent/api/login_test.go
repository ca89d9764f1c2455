package api_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rouse-dev/rouse/agent/api"
	"github.com/rouse-dev/rouse/agent/api/apitest"
	"github.com/rouse-dev/rouse/wire"
)

const origin = "http://" + testHost

// postLogin submits the landing page's form.
func postLogin(s *api.Server, code string) *http.Response {
	return do(s, req{method: "POST", path: "/login", noToken: true, body: url.Values{"code": {code}}.Encode(),
		header: map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": origin}}).Result()
}

// sessionOf returns the secret a successful login hands the page.
func sessionOf(t *testing.T, resp *http.Response) string {
	t.Helper()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/#session=") {
		t.Fatalf("login: status %d, Location %q", resp.StatusCode, loc)
	}
	return strings.TrimPrefix(loc, "/#session=")
}

func login(t *testing.T, s *api.Server) string {
	t.Helper()
	return sessionOf(t, postLogin(s, s.NewLoginCode()))
}

func withSession(sess string, h map[string]string) map[string]string {
	out := map[string]string{api.SessionHeader: sess}
	for k, v := range h {
		out[k] = v
	}
	return out
}

func TestLogin(t *testing.T) {
	t.Run("TheLandingPageLeavesTheCodeValid", func(t *testing.T) {
		s := newTestServer(t, &apitest.Backend{})
		code := s.NewLoginCode()
		for _, m := range []string{"GET", "HEAD", "GET"} {
			w := do(s, req{method: m, path: "/login?code=" + code, noToken: true})
			if w.Code != 200 {
				t.Fatalf("%s: status %d", m, w.Code)
			}
			if m == "GET" && !strings.Contains(w.Body.String(), `<form method="post" action="/login">`) {
				t.Fatalf("no login form: %s", w.Body)
			}
			// Under no-referrer a browser's form POST says "Origin: null".
			if rp := w.Header().Get("Referrer-Policy"); rp != "strict-origin" {
				t.Fatalf("Referrer-Policy %q: the form's POST would carry Origin: null", rp)
			}
		}
		sessionOf(t, postLogin(s, code)) // still good after a prefetch and a HEAD
	})
	t.Run("TheLandingPageOfABadCodeIs403", func(t *testing.T) {
		s := newTestServer(t, &apitest.Backend{})
		if w := do(s, req{path: "/login?code=nope", noToken: true}); w.Code != 403 || !strings.Contains(w.Body.String(), "rouse open") {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
	})
	t.Run("TheCodeIsEscapedInThePage", func(t *testing.T) {
		s := newTestServer(t, &apitest.Backend{})
		if w := do(s, req{path: "/login?code=%22%3E%3Cscript%3E", noToken: true}); strings.Contains(w.Body.String(), "<script>") {
			t.Fatalf("code reflected unescaped: %s", w.Body)
		}
	})
	t.Run("ThePostSetsNoCookieAndClearsTheOldOne", func(t *testing.T) {
		s := newTestServer(t, &apitest.Backend{})
		resp := postLogin(s, s.NewLoginCode())
		sessionOf(t, resp)
		for _, c := range resp.Cookies() {
			if c.Value != "" || c.MaxAge >= 0 {
				t.Fatalf("login set a cookie with a value: %v", c)
			}
		}
	})
	t.Run("AnOldSessionCookieAuthorisesNothing", func(t *testing.T) {
		s := newTestServer(t, &apitest.Backend{})
		sess := login(t, s)
		w := do(s, req{path: "/api/v1/services", noToken: true, header: map[string]string{"Cookie": "rouse_session=" + sess}})
		if w.Code != 401 {
			t.Fatalf("a cookie opened the API: %d", w.Code)
		}
	})
	t.Run("TheSessionHeaderOpensTheAPI", func(t *testing.T) {
		s := newTestServer(t, &apitest.Backend{})
		sess := login(t, s)
		if w := do(s, req{path: "/api/v1/services", noToken: true, header: withSession(sess, nil)}); w.Code != 200 {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		if w := do(s, req{path: "/api/v1/services", noToken: true, header: withSession(sess+"0", nil)}); w.Code != 401 {
			t.Fatalf("a wrong session: %d", w.Code)
		}
	})
	t.Run("TheDashboardPageNeedsNoSession", func(t *testing.T) {
		s := newTestServer(t, &apitest.Backend{})
		if w := do(s, req{path: "/", noToken: true, header: map[string]string{"Accept": "text/html"}}); w.Code != 200 {
			t.Fatalf("status %d", w.Code)
		}
	})
	t.Run("ASessionPostNeedsOurOrigin", func(t *testing.T) {
		s := newTestServer(t, &apitest.Backend{})
		sess := login(t, s)
		w := do(s, req{method: "POST", path: "/api/v1/wake", noToken: true, header: withSession(sess, nil)})
		if w.Code != 403 || errorBody(t, w).Code != wire.CodeBadOrigin {
			t.Fatalf("without Origin: status %d: %s", w.Code, w.Body)
		}
		w = do(s, req{method: "POST", path: "/api/v1/wake", noToken: true, header: withSession(sess, map[string]string{"Origin": origin})})
		if w.Code != 202 {
			t.Fatalf("with Origin: status %d: %s", w.Code, w.Body)
		}
	})
	t.Run("ASessionCannotMintLoginCodes", func(t *testing.T) {
		s := newTestServer(t, &apitest.Backend{})
		sess := login(t, s)
		w := do(s, req{method: "POST", path: "/api/v1/login-codes", noToken: true, header: withSession(sess, map[string]string{"Origin": origin})})
		if w.Code != 403 {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
	})
	t.Run("ACodeWorksOnce", func(t *testing.T) {
		s := newTestServer(t, &apitest.Backend{})
		code := s.NewLoginCode()
		sessionOf(t, postLogin(s, code))
		if resp := postLogin(s, code); resp.StatusCode != http.StatusForbidden || resp.Header.Get("Location") != "" {
			t.Fatalf("second use: %d", resp.StatusCode)
		}
	})
	t.Run("ALoginPostNeedsOriginAndTheForm", func(t *testing.T) {
		s := newTestServer(t, &apitest.Backend{})
		code := s.NewLoginCode()
		body := url.Values{"code": {code}}.Encode()
		if w := do(s, req{method: "POST", path: "/login", noToken: true, body: body, header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}); w.Code != 403 {
			t.Fatalf("no Origin: %d", w.Code)
		}
		if w := do(s, req{method: "POST", path: "/login", noToken: true, body: body, header: map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.test"}}); w.Code != 403 {
			t.Fatalf("foreign Origin: %d", w.Code)
		}
		if w := do(s, req{method: "POST", path: "/login", noToken: true, body: `{"code":"` + code + `"}`, header: map[string]string{"Content-Type": "application/json", "Origin": origin}}); w.Code != 415 {
			t.Fatalf("JSON: %d", w.Code)
		}
		sessionOf(t, postLogin(s, code)) // none of those used it up
	})
	t.Run("AnUnknownOrMissingCodeIs403", func(t *testing.T) {
		s := newTestServer(t, &apitest.Backend{})
		s.NewLoginCode()
		for _, code := range []string{"", "0123456789abcdef0123456789abcdef"} {
			if resp := postLogin(s, code); resp.StatusCode != http.StatusForbidden {
				t.Fatalf("code %q: %d", code, resp.StatusCode)
			}
		}
	})
	t.Run("ACodeExpiresAfter60Seconds", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := newTestServer(t, &apitest.Backend{})
			early, late := s.NewLoginCode(), s.NewLoginCode()
			time.Sleep(59 * time.Second)
			sessionOf(t, postLogin(s, early))
			time.Sleep(time.Second)
			if resp := postLogin(s, late); resp.StatusCode != http.StatusForbidden {
				t.Fatalf("at 60 s: %d", resp.StatusCode)
			}
		})
	})
	t.Run("ASessionEndsAfter12IdleHours", func(t *testing.T) {
		now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
		s := newTestServer(t, &apitest.Backend{})
		s.SetNow(func() time.Time { return now })
		sess := login(t, s)
		use := func() int {
			return do(s, req{path: "/api/v1/services", noToken: true, header: withSession(sess, nil)}).Code
		}
		now = now.Add(12*time.Hour - time.Second)
		if c := use(); c != 200 {
			t.Fatalf("after 12 h less a second idle: %d", c)
		}
		now = now.Add(12*time.Hour - time.Second) // the use above restarted the idle clock
		if c := use(); c != 200 {
			t.Fatalf("used again within 12 h: %d", c)
		}
		now = now.Add(12 * time.Hour)
		if c := use(); c != 401 {
			t.Fatalf("after 12 idle hours: %d", c)
		}
	})
	t.Run("ASessionEndsAWeekAfterLoginHoweverUsed", func(t *testing.T) {
		now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
		s := newTestServer(t, &apitest.Backend{})
		s.SetNow(func() time.Time { return now })
		sess := login(t, s)
		end := now.Add(7 * 24 * time.Hour)
		for now.Add(time.Hour).Before(end) {
			now = now.Add(time.Hour)
			if w := do(s, req{path: "/api/v1/services", noToken: true, header: withSession(sess, nil)}); w.Code != 200 {
				t.Fatalf("at %v: %d", now, w.Code)
			}
		}
		now = end
		if w := do(s, req{path: "/api/v1/services", noToken: true, header: withSession(sess, nil)}); w.Code != 401 {
			t.Fatalf("after a week: %d", w.Code)
		}
	})
	t.Run("LogoutEndsTheSession", func(t *testing.T) {
		s := newTestServer(t, &apitest.Backend{})
		sess, other := login(t, s), login(t, s)
		w := do(s, req{method: "POST", path: "/api/v1/logout", noToken: true, header: withSession(sess, map[string]string{"Origin": origin})})
		if w.Code != 200 {
			t.Fatalf("logout: %d: %s", w.Code, w.Body)
		}
		if w := do(s, req{path: "/api/v1/services", noToken: true, header: withSession(sess, nil)}); w.Code != 401 {
			t.Fatalf("after logout: %d", w.Code)
		}
		if w := do(s, req{path: "/api/v1/services", noToken: true, header: withSession(other, nil)}); w.Code != 200 {
			t.Fatalf("another session ended too: %d", w.Code)
		}
	})
	t.Run("LogoutWithTheTokenEndsEverySession", func(t *testing.T) {
		s := newTestServer(t, &apitest.Backend{})
		a, b := login(t, s), login(t, s)
		w := do(s, req{method: "POST", path: "/api/v1/logout"})
		if w.Code != 200 || !strings.Contains(w.Body.String(), `"sessions":2`) {
			t.Fatalf("logout: %d: %s", w.Code, w.Body)
		}
		for _, sess := range []string{a, b} {
			if w := do(s, req{path: "/api/v1/services", noToken: true, header: withSession(sess, nil)}); w.Code != 401 {
				t.Fatalf("after logout: %d", w.Code)
			}
		}
	})
	t.Run("AnEventTicketOpensOneStreamOnly", func(t *testing.T) {
		s := newTestServer(t, &apitest.Backend{})
		sess := login(t, s)
		w := do(s, req{method: "POST", path: "/api/v1/event-tickets", noToken: true, header: withSession(sess, map[string]string{"Origin": origin})})
		body := w.Body.String()
		i := strings.Index(body, `"ticket":"`)
		if w.Code != 200 || i < 0 {
			t.Fatalf("ticket: %d: %s", w.Code, body)
		}
		ticket := body[i+10 : i+10+32]
		if w := do(s, req{path: "/api/v1/services?ticket=" + ticket, noToken: true}); w.Code != 401 {
			t.Fatalf("a ticket opened another route: %d", w.Code)
		}
		if w := do(s, req{method: "HEAD", path: "/api/v1/events?ticket=" + ticket, noToken: true}); w.Code != 200 {
			t.Fatalf("the ticket's stream: %d", w.Code)
		}
		if w := do(s, req{method: "HEAD", path: "/api/v1/events?ticket=" + ticket, noToken: true}); w.Code != 401 {
			t.Fatalf("a ticket used twice: %d", w.Code)
		}
	})
	t.Run("TheLoginCodeRouteNeedsTheToken", func(t *testing.T) {
		s := newTestServer(t, &apitest.Backend{})
		if w := do(s, req{method: "POST", path: "/api/v1/login-codes", noToken: true}); w.Code != 401 {
			t.Fatalf("status %d", w.Code)
		}
	})
	t.Run("ALoginCodeFromTheRouteLogsIn", func(t *testing.T) {
		s := newTestServer(t, &apitest.Backend{})
		w := do(s, req{method: "POST", path: "/api/v1/login-codes"})
		body := w.Body.String()
		i := strings.Index(body, "/login?code=")
		if w.Code != 200 || i < 0 {
			t.Fatalf("status %d: %s", w.Code, body)
		}
		code := body[i+len("/login?code=") : strings.Index(body[i:], `"`)+i]
		sessionOf(t, postLogin(s, code))
	})
}
