package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/agent/api/apitest"
	"github.com/rouse-dev/rouse/wire"
)

var fuzzPaths = []string{
	"/healthz", "/readyz", "/metrics", "/", "/api/v1/health", "/api/v1/services",
	"/api/v1/services/tunnel/restart", "/api/v1/wake", "/api/v1/wakes?limit=5",
	"/api/v1/jobs/nightly/run", "/api/v1/events", "/login?code=x", "/api/v1/login-codes",
}

var fuzzMethods = []string{"GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE"}

// hostIsOurs is the test's own statement of the Host rule.
func hostIsOurs(h string) bool {
	h = strings.ToLower(h)
	for _, name := range []string{"localhost", "127.0.0.1", "[::1]"} {
		if h == name || h == name+":8000" {
			return true
		}
	}
	return false
}

// originIsOurs: absent, or http://<the Host> (path aside).
func originIsOurs(v, host string) bool {
	if v == "" {
		return true
	}
	u, err := url.Parse(v)
	return err == nil && u.Scheme == "http" && strings.EqualFold(u.Host, host)
}

func FuzzSecurityHeaders(f *testing.F) {
	f.Add("127.0.0.1:8000", "", "", "Bearer "+testToken, "", uint8(4), uint8(0), "")
	f.Add("localhost:8000", "http://localhost:8000", "", "", testToken, uint8(7), uint8(1), "same-origin")
	f.Add("evil.example:8000", "", "", "Bearer "+testToken, "", uint8(4), uint8(0), "")
	f.Add("127.0.0.1:8000", "http://evil.example", "", "Bearer "+testToken, "", uint8(6), uint8(1), "")
	f.Add("127.0.0.1:8000", "", "http://evil.example/x", "Bearer "+testToken, "", uint8(5), uint8(0), "")
	f.Add("[::1]", "", "", "", "", uint8(1), uint8(0), "")
	f.Add("127.0.0.1:8000", "", "", "Bearer wrong", "", uint8(5), uint8(0), "cross-site")
	f.Add("127.0.0.1:8000", "null", "", "", testToken, uint8(7), uint8(1), "")
	f.Add("LOCALHOST", "http://LOCALHOST", "", "bearer  "+testToken+" ", "", uint8(2), uint8(0), "none")
	f.Fuzz(func(t *testing.T, host, origin, referer, authz, apiKey string, pathIdx, methodIdx uint8, site string) {
		b := &apitest.Backend{
			StartFunc:   func(context.Context, string) (string, error) { return wire.ActionStarted, nil },
			RestartFunc: func(context.Context, string) (string, error) { return wire.ActionStarted, nil },
			RunJobFunc:  func(context.Context, string) (wire.JobRun, error) { return wire.JobRun{Result: "running"}, nil },
		}
		s := newTestServer(t, b)
		path := fuzzPaths[int(pathIdx)%len(fuzzPaths)]
		method := fuzzMethods[int(methodIdx)%len(fuzzMethods)]
		// A client that leaves: the event stream (/api/v1/events with a
		// good token) answers until its request's context ends.
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		r := httptest.NewRequestWithContext(ctx, method, "http://"+testHost+path, nil)
		r.Host = host
		set := func(k, v string) {
			if v != "" {
				r.Header[k] = []string{v}
			}
		}
		set("Origin", origin)
		set("Referer", referer)
		set("Authorization", authz)
		set("X-Api-Key", apiKey)
		set("Sec-Fetch-Site", site)
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)

		checkSecurityHeaders(t, w.Header(), true)
		for k := range w.Header() {
			if strings.HasPrefix(strings.ToLower(k), "access-control-") {
				t.Fatalf("CORS header %s", k)
			}
		}
		if !hostIsOurs(host) && w.Code != http.StatusForbidden {
			t.Fatalf("foreign Host %q got %d", host, w.Code)
		}
		if b.Calls() == 0 {
			return
		}
		// The backend was reached: every check must have passed.
		if !hostIsOurs(host) {
			t.Fatalf("backend reached with Host %q", host)
		}
		if !originIsOurs(origin, host) || (origin == "" && !originIsOurs(referer, host)) {
			t.Fatalf("backend reached with Origin %q Referer %q for Host %q", origin, referer, host)
		}
		if site != "" && site != "same-origin" && site != "none" {
			t.Fatalf("backend reached with Sec-Fetch-Site %q", site)
		}
		public := strings.HasPrefix(path, "/healthz") || strings.HasPrefix(path, "/readyz") || strings.HasPrefix(path, "/metrics")
		if !public && !strings.Contains(authz, testToken) && !strings.Contains(apiKey, testToken) {
			t.Fatalf("backend reached on %s without the token (Authorization %q, X-API-Key %q)", path, authz, apiKey)
		}
		if method != "GET" && method != "HEAD" && method != "POST" {
			t.Fatalf("backend reached by %s", method)
		}
	})
}
