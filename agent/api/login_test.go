package api_test

import (
	"github.com/rouse-dev/rouse/agent/api"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rouse-dev/rouse/agent/api/apitest"
	"github.com/rouse-dev/rouse/wire"
)

// login exchanges a code and returns the response.
func login(s *api.Server, code string) *http.Response {
	w := do(s, req{path: "/login?code=" + code, noToken: true})
	return w.Result()
}

func sessionCookie(t *testing.T, resp *http.Response) *http.Cookie {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name == "rouse_session" {
			return c
		}
	}
	t.Fatalf("no rouse_session cookie in %v", resp.Header["Set-Cookie"])
	return nil
}

func TestLogin(t *testing.T) {
	t.Run("ACodeSetsAStrictHttpOnlyCookieAndRedirects", func(t *testing.T) {
		s := newTestServer(t, &apitest.Backend{})
		resp := login(s, s.NewLoginCode())
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
			t.Fatalf("status %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		c := sessionCookie(t, resp)
		if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
			t.Fatalf("cookie %+v", c)
		}
		raw := strings.Join(resp.Header["Set-Cookie"], "")
		for _, want := range []string{"HttpOnly", "SameSite=Strict", "Path=/"} {
			if !strings.Contains(raw, want) {
				t.Fatalf("Set-Cookie %q lacks %s", raw, want)
			}
		}
	})
	t.Run("TheSessionOpensTheAPIAndTheDashboard", func(t *testing.T) {
		s := newTestServer(t, &apitest.Backend{})
		c := sessionCookie(t, login(s, s.NewLoginCode()))
		for _, p := range []string{"/api/v1/services", "/"} {
			w := do(s, req{path: p, noToken: true, header: map[string]string{"Cookie": c.String()}})
			if w.Code != 200 {
				t.Fatalf("%s: status %d: %s", p, w.Code, w.Body)
			}
		}
	})
	t.Run("ASessionPostNeedsOurOrigin", func(t *testing.T) {
		s := newTestServer(t, &apitest.Backend{})
		c := sessionCookie(t, login(s, s.NewLoginCode()))
		w := do(s, req{method: "POST", path: "/api/v1/wake", noToken: true, header: map[string]string{"Cookie": c.String()}})
		if w.Code != 403 || errorBody(t, w).Code != wire.CodeBadOrigin {
			t.Fatalf("without Origin: status %d: %s", w.Code, w.Body)
		}
		w = do(s, req{method: "POST", path: "/api/v1/wake", noToken: true, header: map[string]string{"Cookie": c.String(), "Origin": "http://" + testHost}})
		if w.Code != 202 {
			t.Fatalf("with Origin: status %d: %s", w.Code, w.Body)
		}
	})
	t.Run("ASessionCannotMintLoginCodes", func(t *testing.T) {
		s := newTestServer(t, &apitest.Backend{})
		c := sessionCookie(t, login(s, s.NewLoginCode()))
		w := do(s, req{method: "POST", path: "/api/v1/login-codes", noToken: true, header: map[string]string{"Cookie": c.String(), "Origin": "http://" + testHost}})
		if w.Code != 403 {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
	})
	t.Run("ACodeWorksOnce", func(t *testing.T) {
		s := newTestServer(t, &apitest.Backend{})
		code := s.NewLoginCode()
		if resp := login(s, code); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("first use: %d", resp.StatusCode)
		}
		resp := login(s, code)
		if resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
			t.Fatalf("second use: %d, cookies %v", resp.StatusCode, resp.Cookies())
		}
	})
	t.Run("AnUnknownOrMissingCodeIs403", func(t *testing.T) {
		s := newTestServer(t, &apitest.Backend{})
		s.NewLoginCode()
		for _, code := range []string{"", "0123456789abcdef0123456789abcdef"} {
			if resp := login(s, code); resp.StatusCode != http.StatusForbidden {
				t.Fatalf("code %q: %d", code, resp.StatusCode)
			}
		}
	})
	t.Run("ACodeExpiresAfter60Seconds", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := newTestServer(t, &apitest.Backend{})
			early, late := s.NewLoginCode(), s.NewLoginCode()
			time.Sleep(59 * time.Second)
			if resp := login(s, early); resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("at 59 s: %d", resp.StatusCode)
			}
			time.Sleep(time.Second)
			if resp := login(s, late); resp.StatusCode != http.StatusForbidden {
				t.Fatalf("at 60 s: %d", resp.StatusCode)
			}
		})
	})
	t.Run("ASessionExpiresAfterAWeek", func(t *testing.T) {
		now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
		s := newTestServer(t, &apitest.Backend{})
		s.SetNow(func() time.Time { return now })
		c := sessionCookie(t, login(s, s.NewLoginCode()))
		now = now.Add(7*24*time.Hour - time.Second)
		if w := do(s, req{path: "/api/v1/services", noToken: true, header: map[string]string{"Cookie": c.String()}}); w.Code != 200 {
			t.Fatalf("before expiry: %d", w.Code)
		}
		now = now.Add(time.Second)
		if w := do(s, req{path: "/api/v1/services", noToken: true, header: map[string]string{"Cookie": c.String()}}); w.Code != 401 {
			t.Fatalf("after expiry: %d", w.Code)
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
		if resp := login(s, code); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("login: %d", resp.StatusCode)
		}
	})
}

func TestABrowserWithoutSessionGetsALoginHint(t *testing.T) {
	s := newTestServer(t, &apitest.Backend{})
	w := do(s, req{path: "/", noToken: true, header: map[string]string{"Accept": "text/html,application/xhtml+xml"}})
	if w.Code != 401 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") || !strings.Contains(w.Body.String(), "rouse open") {
		t.Fatalf("status %d, type %q: %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	// The API itself always answers JSON.
	w = do(s, req{path: "/api/v1/health", noToken: true, header: map[string]string{"Accept": "text/html"}})
	if w.Code != 401 {
		t.Fatalf("status %d", w.Code)
	}
	errorBody(t, w)
}
