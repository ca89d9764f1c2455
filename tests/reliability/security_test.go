//go:build linux

package reliability

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rouse-dev/rouse/tests/internal/harness"
)

// TestSecurityTable drives the built binary's API with one table: Host
// (DNS rebinding), Origin and Sec-Fetch-Site (cross-site requests), the
// token, methods, and the permissions of the files that hold secrets.
func TestSecurityTable(t *testing.T) {
	p := harness.NewPower(t, false)
	a := harness.Start(t, bin, harness.Options{Config: "scheduler: {enabled: false}\ntrackers: []\n", BusAddr: p.Addr()})
	tokenB, err := os.ReadFile(filepath.Join(a.DataDir, "api-token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tokenB))
	port := a.Listen[strings.LastIndexByte(a.Listen, ':'):]
	ours := "127.0.0.1" + port
	bearer := "Bearer " + token

	type row struct {
		name, method, path string
		host               string            // "" = ours
		header             map[string]string // Authorization is set from auth
		auth               string
		body, ctype        string
		want               int
	}
	rows := []row{
		{name: "HealthzNeedsNoToken", method: "GET", path: "/healthz", want: 200},
		{name: "ReadyzNeedsNoToken", method: "GET", path: "/readyz", want: 200},
		{name: "MetricsNeedNoToken", method: "GET", path: "/metrics", want: 200},
		{name: "TheAPIRefusesNoToken", method: "GET", path: "/api/v1/health", want: 401},
		{name: "TheAPIRefusesAWrongTokenAsForbidden", method: "GET", path: "/api/v1/health", auth: "Bearer " + strings.Repeat("0", len(token)), want: 403},
		{name: "TheAPIRefusesTheTokenAsAQueryParameter", method: "GET", path: "/api/v1/health?token=" + token, want: 401},
		{name: "TheAPIAcceptsTheBearerToken", method: "GET", path: "/api/v1/health", auth: bearer, want: 200},
		{name: "TheAPIAcceptsXAPIKey", method: "GET", path: "/api/v1/health", header: map[string]string{"X-API-Key": token}, want: 200},
		{name: "LocalhostIsOurs", method: "GET", path: "/api/v1/health", host: "localhost" + port, auth: bearer, want: 200},
		{name: "IPv6LoopbackIsOurs", method: "GET", path: "/api/v1/health", host: "[::1]" + port, auth: bearer, want: 200},
		{name: "AForeignHostIsRefusedEvenWithTheToken", method: "GET", path: "/api/v1/health", host: "evil.example" + port, auth: bearer, want: 403},
		{name: "AForeignHostIsRefusedOnHealthz", method: "GET", path: "/healthz", host: "evil.example", want: 403},
		{name: "ARebindingLookalikeIsRefused", method: "GET", path: "/healthz", host: "127.0.0.1.evil.example" + port, want: 403},
		{name: "AnotherPortIsRefused", method: "GET", path: "/healthz", host: "127.0.0.1:1", want: 403},
		{name: "AForeignOriginIsRefused", method: "POST", path: "/api/v1/wake?dry_run=true", auth: bearer, header: map[string]string{"Origin": "http://evil.example"}, want: 403},
		{name: "AForeignRefererIsRefused", method: "POST", path: "/api/v1/wake?dry_run=true", auth: bearer, header: map[string]string{"Referer": "http://evil.example/x"}, want: 403},
		{name: "ANullOriginIsRefused", method: "POST", path: "/api/v1/wake?dry_run=true", auth: bearer, header: map[string]string{"Origin": "null"}, want: 403},
		{name: "CrossSiteFetchIsRefused", method: "GET", path: "/api/v1/health", auth: bearer, header: map[string]string{"Sec-Fetch-Site": "cross-site"}, want: 403},
		{name: "OurOwnOriginIsAccepted", method: "POST", path: "/api/v1/wake?dry_run=true", auth: bearer, header: map[string]string{"Origin": "http://" + ours}, want: 200},
		{name: "APreflightIsRefused", method: "OPTIONS", path: "/api/v1/wake", auth: bearer, header: map[string]string{"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}, want: 403},
		{name: "OptionsIsNotAllowed", method: "OPTIONS", path: "/api/v1/wake", auth: bearer, want: 405},
		{name: "AMutationIsNotAGET", method: "GET", path: "/api/v1/wake", auth: bearer, want: 405},
		{name: "StopIsNotAGET", method: "GET", path: "/api/v1/services/scheduler/stop", auth: bearer, want: 405},
		{name: "DeleteIsNotAllowed", method: "DELETE", path: "/api/v1/services/scheduler", auth: bearer, want: 405},
		{name: "PutIsNotAllowed", method: "PUT", path: "/api/v1/wake", auth: bearer, want: 405},
		{name: "AFormPostIsRefused", method: "POST", path: "/api/v1/wake?dry_run=true", auth: bearer, body: "a=b", ctype: "application/x-www-form-urlencoded", want: 415},
		{name: "ATextPostIsRefused", method: "POST", path: "/api/v1/wake?dry_run=true", auth: bearer, body: "{}", ctype: "text/plain", want: 415},
		{name: "ABodyWithoutContentTypeIsRefused", method: "POST", path: "/api/v1/wake?dry_run=true", auth: bearer, body: "{}", want: 415},
		{name: "AnInvalidJSONBodyIsRefused", method: "POST", path: "/api/v1/wake?dry_run=true", auth: bearer, body: "{", ctype: "application/json", want: 400},
		{name: "AJSONPostIsAccepted", method: "POST", path: "/api/v1/wake?dry_run=true", auth: bearer, body: "{}", ctype: "application/json", want: 200},
		{name: "LoginCodesNeedTheToken", method: "POST", path: "/api/v1/login-codes", want: 401},
		{name: "ABadLoginCodeGivesNoSession", method: "GET", path: "/login?code=nope", want: 403},
		{name: "AnUnknownAPIRouteIs404WithTheToken", method: "GET", path: "/api/v1/nosuch", auth: bearer, want: 404},
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(hc.CloseIdleConnections)
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			var body io.Reader
			if r.body != "" {
				body = strings.NewReader(r.body)
			}
			req, err := http.NewRequest(r.method, "http://"+a.Listen+r.path, body)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = ours
			if r.host != "" {
				req.Host = r.host
			}
			if r.auth != "" {
				req.Header.Set("Authorization", r.auth)
			}
			if r.ctype != "" {
				req.Header.Set("Content-Type", r.ctype)
			}
			for k, v := range r.header {
				req.Header.Set(k, v)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != r.want {
				t.Errorf("%s %s (Host %s): %d, want %d: %s", r.method, r.path, req.Host, resp.StatusCode, r.want, b)
			}
			for k := range resp.Header {
				if strings.HasPrefix(strings.ToLower(k), "access-control-") {
					t.Errorf("CORS header %s in the answer", k)
				}
			}
			if resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("X-Content-Type-Options") != "nosniff" ||
				!strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
				t.Errorf("security headers missing: %v", resp.Header)
			}
		})
	}

	t.Run("NothingMutatedOnTheRefusedRequests", func(t *testing.T) {
		// Every refused wake above was a dry run or refused before the
		// router: only the boot wake exists.
		if ws := a.Wakes(10); len(ws) != 1 {
			t.Errorf("%d wakes, want only the boot", len(ws))
		}
		if s := a.Services()["scheduler"]; s.State == "stopped" {
			t.Errorf("the scheduler was stopped by a refused request")
		}
	})

	t.Run("TheTokenFileIsPrivate", func(t *testing.T) {
		fi, err := os.Stat(filepath.Join(a.DataDir, "api-token"))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("api-token mode %v, want 0600", fi.Mode().Perm())
		}
	})

	t.Run("TheDataDirectoryIsNotOpenToOthers", func(t *testing.T) {
		fi, err := os.Stat(a.DataDir)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o007 != 0 {
			t.Errorf("data directory mode %v is open to others", fi.Mode().Perm())
		}
	})

	t.Run("AConfigWritableByOthersIsRefused", func(t *testing.T) {
		cfg := filepath.Join(t.TempDir(), "rouse.yaml")
		if err := os.WriteFile(cfg, []byte("trackers: []\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(cfg, 0o666); err != nil {
			t.Fatal(err)
		}
		out, err := execOutput(bin, "config", "check", cfg)
		if code := exitCode(err); code != 78 {
			t.Errorf("config check of a 0666 config: exit %d, want 78 (a bad config): %s", code, out)
		}
	})
}
