package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/rouse-dev/rouse/agent/api"
	"github.com/rouse-dev/rouse/agent/api/apitest"
	"github.com/rouse-dev/rouse/wire"
)

// TestSecurityTable walks the whole security table: for each request, the
// status, the wire code, and whether the backend was reached.
func TestSecurityTable(t *testing.T) {
	good := "http://" + testHost
	cases := []struct {
		name    string
		q       req
		status  int
		code    string // "" for success
		reaches bool
	}{
		// Host, first of all.
		{"ForeignHostIsRefusedFirst", req{path: "/api/v1/services", header: map[string]string{"Host": "evil.example:8000"}}, 403, wire.CodeBadHost, false},
		{"RebindingNameIsRefused", req{path: "/healthz", noToken: true, header: map[string]string{"Host": "attacker.localhost.evil.example"}}, 403, wire.CodeBadHost, false},
		{"ForeignHostBeatsMissingToken", req{path: "/api/v1/services", noToken: true, header: map[string]string{"Host": "evil.example"}}, 403, wire.CodeBadHost, false},
		{"ForeignHostBeatsUnknownRoute", req{path: "/nope", header: map[string]string{"Host": "evil.example"}}, 403, wire.CodeBadHost, false},
		{"ForeignHostOnReadyzIsRefused", req{path: "/readyz", noToken: true, header: map[string]string{"Host": "192.168.1.9:8000"}}, 403, wire.CodeBadHost, false},
		{"ForeignHostOnMetricsIsRefused", req{path: "/metrics", noToken: true, header: map[string]string{"Host": "evil.example"}}, 403, wire.CodeBadHost, false},
		{"OtherPortIsRefused", req{path: "/readyz", noToken: true, header: map[string]string{"Host": "127.0.0.1:9999"}}, 403, wire.CodeBadHost, false},
		{"EmptyPortIsRefused", req{path: "/readyz", noToken: true, header: map[string]string{"Host": "localhost:"}}, 403, wire.CodeBadHost, false},
		{"EmptyHostIsRefused", req{path: "/readyz", noToken: true, header: map[string]string{"Host": ""}}, 403, wire.CodeBadHost, false},
		{"BareIPv6IsRefused", req{path: "/readyz", noToken: true, header: map[string]string{"Host": "::1"}}, 403, wire.CodeBadHost, false},
		{"LocalhostWithPortPasses", req{path: "/readyz", noToken: true, header: map[string]string{"Host": "localhost:8000"}}, 200, "", true},
		{"LocalhostWithoutPortPasses", req{path: "/readyz", noToken: true, header: map[string]string{"Host": "localhost"}}, 200, "", true},
		{"IPv6LoopbackPasses", req{path: "/readyz", noToken: true, header: map[string]string{"Host": "[::1]:8000"}}, 200, "", true},
		{"IPv6LoopbackWithoutPortPasses", req{path: "/readyz", noToken: true, header: map[string]string{"Host": "[::1]"}}, 200, "", true},
		{"IPv4LoopbackWithoutPortPasses", req{path: "/readyz", noToken: true, header: map[string]string{"Host": "127.0.0.1"}}, 200, "", true},
		// Origin and Referer.
		{"ForeignOriginIsRefused", req{path: "/api/v1/services", header: map[string]string{"Origin": "http://evil.example"}}, 403, wire.CodeBadOrigin, false},
		{"ForeignOriginOnHealthzIsRefused", req{path: "/healthz", noToken: true, header: map[string]string{"Origin": "http://evil.example"}}, 403, wire.CodeBadOrigin, false},
		{"OtherLocalPortOriginIsRefused", req{method: "POST", path: "/api/v1/wake", header: map[string]string{"Origin": "http://127.0.0.1:3000"}}, 403, wire.CodeBadOrigin, false},
		{"OriginOnOtherLoopbackNameIsRefused", req{path: "/api/v1/services", header: map[string]string{"Origin": "http://localhost:8000"}}, 403, wire.CodeBadOrigin, false},
		{"HTTPSOriginIsRefused", req{path: "/api/v1/services", header: map[string]string{"Origin": "https://" + testHost}}, 403, wire.CodeBadOrigin, false},
		{"NullOriginIsRefused", req{method: "POST", path: "/api/v1/wake", header: map[string]string{"Origin": "null"}}, 403, wire.CodeBadOrigin, false},
		{"ForeignRefererIsRefused", req{path: "/api/v1/services", header: map[string]string{"Referer": "http://evil.example/page"}}, 403, wire.CodeBadOrigin, false},
		{"CrossSiteFetchIsRefused", req{path: "/api/v1/services", header: map[string]string{"Sec-Fetch-Site": "cross-site"}}, 403, wire.CodeBadOrigin, false},
		{"SameSiteFetchIsRefused", req{path: "/api/v1/services", header: map[string]string{"Sec-Fetch-Site": "same-site"}}, 403, wire.CodeBadOrigin, false},
		{"OwnOriginPasses", req{method: "POST", path: "/api/v1/wake", header: map[string]string{"Origin": good, "Sec-Fetch-Site": "same-origin"}}, 202, "", true},
		{"OwnRefererPasses", req{path: "/api/v1/services", header: map[string]string{"Referer": good + "/"}}, 200, "", true},
		{"ForeignOriginBeatsMissingToken", req{path: "/api/v1/services", noToken: true, header: map[string]string{"Origin": "http://evil.example"}}, 403, wire.CodeBadOrigin, false},
		// Token.
		{"MissingTokenIs401", req{path: "/api/v1/health", noToken: true}, 401, wire.CodeUnauthorized, false},
		{"MissingTokenOnTheAPIIs401", req{path: "/api/v1/health", noToken: true}, 401, wire.CodeUnauthorized, false},
		{"MissingTokenOnUnknownAPIRouteIs401", req{path: "/api/v1/nope", noToken: true}, 401, wire.CodeUnauthorized, false},
		{"WrongBearerIs403", req{path: "/api/v1/health", header: map[string]string{"Authorization": "Bearer nope"}}, 403, wire.CodeForbidden, false},
		{"TokenPrefixIs403", req{path: "/api/v1/health", header: map[string]string{"Authorization": "Bearer " + testToken[:63]}}, 403, wire.CodeForbidden, false},
		{"BasicAuthIs401", req{path: "/api/v1/health", header: map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}}, 401, wire.CodeUnauthorized, false},
		{"WrongAPIKeyIs403", req{path: "/api/v1/health", noToken: true, header: map[string]string{"X-API-Key": "nope"}}, 403, wire.CodeForbidden, false},
		{"APIKeyPasses", req{path: "/api/v1/health", noToken: true, header: map[string]string{"X-API-Key": testToken}}, 200, "", true},
		{"LowercaseBearerPasses", req{path: "/api/v1/health", header: map[string]string{"Authorization": "bearer " + testToken}}, 200, "", true},
		{"UnknownSessionIs401", req{path: "/api/v1/health", noToken: true, header: map[string]string{"Cookie": "rouse_session=forged"}}, 401, wire.CodeUnauthorized, false},
		{"ReadyzNeedsNoToken", req{path: "/readyz", noToken: true}, 200, "", true},
		// Mutations.
		{"PostWithFormIs415", req{method: "POST", path: "/api/v1/services/x/stop", body: "a=1", header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}, 415, wire.CodeUnsupportedMedia, false},
		{"PostWithMultipartIs415", req{method: "POST", path: "/api/v1/wake", body: "--x--", header: map[string]string{"Content-Type": "multipart/form-data; boundary=x"}}, 415, wire.CodeUnsupportedMedia, false},
		{"PostBodyWithoutTypeIs415", req{method: "POST", path: "/api/v1/wake", body: "{}"}, 415, wire.CodeUnsupportedMedia, false},
		{"PostJSONWithCharsetPasses", req{method: "POST", path: "/api/v1/wake", body: "{}", header: map[string]string{"Content-Type": "application/json; charset=utf-8"}}, 202, "", true},
		{"GetDoesNotMutate", req{path: "/api/v1/services/x/stop"}, 405, wire.CodeMethodNotAllowed, false},
		{"OptionsIs405", req{method: "OPTIONS", path: "/api/v1/wake", noToken: true}, 405, wire.CodeMethodNotAllowed, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := &apitest.Backend{StopFunc: func(_ context.Context, _ string) (string, error) { return wire.ActionStopped, nil }}
			s := newTestServer(t, b)
			w := do(s, tc.q)
			if w.Code != tc.status {
				t.Fatalf("status = %d, want %d; body %s", w.Code, tc.status, w.Body)
			}
			if tc.code != "" {
				if e := errorBody(t, w); e.Code != tc.code {
					t.Fatalf("code = %q, want %q (%s)", e.Code, tc.code, e.Message)
				}
			}
			if reached := b.Calls() > 0; reached != tc.reaches {
				t.Fatalf("backend reached = %v, want %v", reached, tc.reaches)
			}
			checkSecurityHeaders(t, w.Header(), true)
			for k := range w.Header() {
				if strings.HasPrefix(strings.ToLower(k), "access-control-") {
					t.Fatalf("CORS header %s set", k)
				}
			}
		})
	}
}

// checkSecurityHeaders fails unless h carries every header every response
// must carry.
func checkSecurityHeaders(t testing.TB, h http.Header, api bool) {
	t.Helper()
	csp := h.Get("Content-Security-Policy")
	if !strings.HasPrefix(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("Content-Security-Policy = %q", csp)
	}
	want := map[string]string{
		"X-Frame-Options":        "DENY",
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        "no-referrer",
	}
	if api {
		want["Cache-Control"] = "no-store"
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Fatalf("%s = %q, want %q", k, got, v)
		}
	}
}

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	s := newTestServer(t, &apitest.Backend{})
	for _, q := range []req{
		{path: "/healthz", noToken: true},
		{path: "/metrics", noToken: true},
		{path: "/"},
		{path: "/api/v1/services"},
		{path: "/api/v1/nope"},
		{path: "/login?code=x", noToken: true},
		{path: "/", header: map[string]string{"Host": "evil.example"}},
	} {
		t.Run(q.path, func(t *testing.T) {
			checkSecurityHeaders(t, do(s, q).Header(), true)
		})
	}
}

func TestNonLoopbackHost(t *testing.T) {
	t.Run("ListenIPIsAcceptedWhenAllowed", func(t *testing.T) {
		s, err := api.New(&apitest.Backend{}, api.Options{Listen: "192.168.1.5:8000", AllowNonLoopback: true, Token: testToken, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		if w := do(s, req{path: "/readyz", header: map[string]string{"Host": "192.168.1.5:8000"}}); w.Code != 200 {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		if w := do(s, req{path: "/readyz", header: map[string]string{"Host": "nas.local:8000"}}); w.Code != 403 {
			t.Fatalf("a DNS name must stay refused, got %d", w.Code)
		}
	})
	t.Run("ListenIPIsRefusedWhenNotAllowed", func(t *testing.T) {
		s := newTestServer(t, &apitest.Backend{})
		if w := do(s, req{path: "/readyz", header: map[string]string{"Host": "192.168.1.5:8000"}}); w.Code != 403 {
			t.Fatalf("status %d", w.Code)
		}
	})
}
