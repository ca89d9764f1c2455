package dashboard_test

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/rouse-dev/rouse/agent/api"
	"github.com/rouse-dev/rouse/agent/api/apitest"
	"github.com/rouse-dev/rouse/agent/dashboard"
)

func get(t *testing.T, h http.Handler, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestHandlerServesThePageAndItsAssets(t *testing.T) {
	h := dashboard.Handler()
	for _, tc := range []struct {
		path, ctype, contains string
	}{
		{"/", "text/html; charset=utf-8", "<title>rouse</title>"},
		{"/index.html", "text/html; charset=utf-8", "<title>rouse</title>"},
		{"/assets/app.js", "text/javascript; charset=utf-8", "EventSource"},
		{"/assets/app.css", "text/css; charset=utf-8", ".badge"},
		{"/assets/icon.svg", "image/svg+xml", "<svg"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			w := get(t, h, http.MethodGet, tc.path)
			if w.Code != http.StatusOK {
				t.Fatalf("GET %s: %d, want 200", tc.path, w.Code)
			}
			if got := w.Header().Get("Content-Type"); got != tc.ctype {
				t.Errorf("Content-Type = %q, want %q", got, tc.ctype)
			}
			if !strings.Contains(w.Body.String(), tc.contains) {
				t.Errorf("body lacks %q", tc.contains)
			}
			head := get(t, h, http.MethodHead, tc.path)
			if head.Code != http.StatusOK || head.Body.Len() != 0 {
				t.Errorf("HEAD %s: %d with %d bytes, want 200 and no body", tc.path, head.Code, head.Body.Len())
			}
		})
	}
}

func TestHandlerRefusesOtherPathsAndMethods(t *testing.T) {
	h := dashboard.Handler()
	for _, path := range []string{"/nope", "/assets/", "/assets/missing.js", "/assets/../index.html", "/assets//app.js", "/assets/x/app.js", "/static/index.html", "/index.htm"} {
		t.Run("404 for "+path, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.URL = &url.URL{Path: path} // keep dot segments as a raw client could send them
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusNotFound {
				t.Errorf("GET %s: %d, want 404", path, w.Code)
			}
		})
	}
	t.Run("POST is not allowed", func(t *testing.T) {
		w := get(t, h, http.MethodPost, "/")
		if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("POST /: %d Allow %q, want 405 with Allow GET, HEAD", w.Code, w.Header().Get("Allow"))
		}
	})
}

// The API's Content-Security-Policy allows same-origin scripts and styles
// only: inline scripts, <style> elements, style attributes and inline event
// handlers would all be blocked in the browser.
func TestPageObeysTheContentSecurityPolicy(t *testing.T) {
	page, err := fs.ReadFile(dashboard.FS(), "index.html")
	if err != nil {
		t.Fatal(err)
	}
	html := string(page)
	checks := []struct {
		name string
		re   *regexp.Regexp
	}{
		{"no <style> element", regexp.MustCompile(`(?i)<style[\s>]`)},
		{"no style attribute", regexp.MustCompile(`(?i)\sstyle\s*=`)},
		{"no inline event handler", regexp.MustCompile(`(?i)\son[a-z]+\s*=`)},
		{"no javascript: URL", regexp.MustCompile(`(?i)javascript:`)},
		{"no external URL", regexp.MustCompile(`(?i)(src|href)\s*=\s*"(https?:)?//`)},
	}
	for _, c := range checks {
		if loc := c.re.FindStringIndex(html); loc != nil {
			t.Errorf("%s: index.html has %q", c.name, html[loc[0]:min(len(html), loc[1]+20)])
		}
	}
	scripts := regexp.MustCompile(`(?is)<script([^>]*)>(.*?)</script>`).FindAllStringSubmatch(html, -1)
	if len(scripts) == 0 {
		t.Fatal("index.html loads no script")
	}
	for _, s := range scripts {
		if !strings.Contains(s[1], "src=") || strings.TrimSpace(s[2]) != "" {
			t.Errorf("inline script: %q", s[0])
		}
	}
	js, err := fs.ReadFile(dashboard.FS(), "assets/app.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setAttribute('style'", `setAttribute("style"`} {
		if strings.Contains(string(js), bad) {
			t.Errorf("app.js uses %s (blocked by the CSP or unsafe with agent data)", bad)
		}
	}
}

// Every file the page references exists in the embedded tree, and every
// id the script looks up exists in the page.
func TestPageReferencesResolve(t *testing.T) {
	h := dashboard.Handler()
	page, _ := fs.ReadFile(dashboard.FS(), "index.html")
	refs := regexp.MustCompile(`(?:src|href)="(/[^"]*)"`).FindAllStringSubmatch(string(page), -1)
	if len(refs) < 3 {
		t.Fatalf("found %d references in index.html, want the icon, the stylesheet and the script", len(refs))
	}
	for _, r := range refs {
		if w := get(t, h, http.MethodGet, r[1]); w.Code != http.StatusOK {
			t.Errorf("index.html references %s: %d", r[1], w.Code)
		}
	}
	js, _ := fs.ReadFile(dashboard.FS(), "assets/app.js")
	for _, m := range regexp.MustCompile(`\$\('#([a-z-]+)`).FindAllStringSubmatch(string(js), -1) {
		if !strings.Contains(string(page), `id="`+m[1]+`"`) {
			t.Errorf("app.js looks up #%s, which index.html lacks", m[1])
		}
	}
}

const testToken = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

// Mounted in the API server, the dashboard needs the session cookie, and
// gets the server's security headers.
func TestDashboardBehindTheAPIServer(t *testing.T) {
	srv, err := api.New(&apitest.Backend{}, api.Options{Listen: "127.0.0.1:8000", Token: testToken, Dashboard: dashboard.Handler()})
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	browser := func(path, cookie string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8000"+path, nil)
		r.Header.Set("Accept", "text/html")
		if cookie != "" {
			r.Header.Set("Cookie", cookie)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	t.Run("The page and its assets need no session (they hold no data)", func(t *testing.T) {
		for _, p := range []string{"/", "/assets/app.js", "/assets/app.css"} {
			w := browser(p, "")
			if w.Code != http.StatusOK {
				t.Errorf("GET %s: %d", p, w.Code)
			}
			if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
				t.Errorf("GET %s: CSP %q", p, csp)
			}
		}
	})
	t.Run("The data needs the session header, never a cookie", func(t *testing.T) {
		if w := browser("/api/v1/health", "rouse_session=x"); w.Code != http.StatusUnauthorized {
			t.Errorf("GET /api/v1/health with a cookie: %d, want 401", w.Code)
		}
	})
}
