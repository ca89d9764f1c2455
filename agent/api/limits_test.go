package api_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/rouse-dev/rouse/agent/api"
	"github.com/rouse-dev/rouse/agent/api/apitest"
	"github.com/rouse-dev/rouse/wire"
)

func TestReadyzShowsDetailOnlyWithTheToken(t *testing.T) {
	var gotDetail []bool
	b := &apitest.Backend{ReadyFunc: func(_ context.Context, detail bool) wire.Ready {
		gotDetail = append(gotDetail, detail)
		return wire.Ready{Reasons: []string{"x"}}
	}}
	s := newTestServer(t, b)
	cases := []struct {
		name   string
		q      req
		status int
		detail bool
	}{
		{"WithoutATokenNoDetail", req{path: "/readyz", noToken: true}, 503, false},
		{"WithTheTokenDetail", req{path: "/readyz"}, 503, true},
		{"WithTheAPIKeyDetail", req{path: "/readyz", noToken: true, header: map[string]string{"X-API-Key": testToken}}, 503, true},
		{"AWrongTokenIsRefused", req{path: "/readyz", noToken: true, header: map[string]string{"Authorization": "Bearer nope"}}, 403, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			gotDetail = nil
			w := do(s, c.q)
			if w.Code != c.status {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			if c.status == 403 {
				if len(gotDetail) != 0 {
					t.Fatal("a wrong token reached the backend")
				}
				return
			}
			if len(gotDetail) != 1 || gotDetail[0] != c.detail {
				t.Fatalf("detail = %v, want %v", gotDetail, c.detail)
			}
		})
	}
}

func TestEventStreamsAreCapped(t *testing.T) {
	s, err := api.New(&apitest.Backend{}, api.Options{Listen: "127.0.0.1:0", Token: testToken, Logger: quietLogger(), MaxEventStreams: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	serve(t, s)
	a := openEvents(t, s, "Authorization", "Bearer "+testToken)
	openEvents(t, s, "Authorization", "Bearer "+testToken)
	if a.StatusCode != 200 {
		t.Fatalf("first stream: %d", a.StatusCode)
	}
	third := openEvents(t, s, "Authorization", "Bearer "+testToken)
	if third.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("third stream: status %d, want 503", third.StatusCode)
	}
	var e wire.Error
	if err := json.NewDecoder(third.Body).Decode(&e); err != nil {
		t.Fatalf("503 is not a JSON error: %v", err)
	}
	if e.Error.Code != wire.CodeUnavailable || !strings.Contains(e.Error.Message, "max_event_streams") {
		t.Fatalf("error %+v", e.Error)
	}
	// A config reload raises the cap: one more fits.
	s.SetMaxEventStreams(3)
	if r := openEvents(t, s, "Authorization", "Bearer "+testToken); r.StatusCode != 200 {
		t.Fatalf("after raising the cap: %d", r.StatusCode)
	}
	s.SetMaxEventStreams(2) // lowering it closes nothing, refuses new ones
	if r := openEvents(t, s, "Authorization", "Bearer "+testToken); r.StatusCode != 503 {
		t.Fatalf("after lowering the cap: %d", r.StatusCode)
	}
	// A closed stream frees its place (once 3 open fall under 2 again).
	s.SetMaxEventStreams(3)
	_ = a.Body.Close()
	for {
		r := openEvents(t, s, "Authorization", "Bearer "+testToken)
		if r.StatusCode == 200 {
			break
		}
		_ = r.Body.Close() // the server has not noticed the close yet
	}
}

func TestListenLocalhostMustResolveToLoopbackOnly(t *testing.T) {
	ip := func(s ...string) []net.IPAddr {
		var out []net.IPAddr
		for _, a := range s {
			out = append(out, net.IPAddr{IP: net.ParseIP(a)})
		}
		return out
	}
	cases := []struct {
		name     string
		resolved []net.IPAddr
		wantErr  string
		wantBind string
	}{
		{"LoopbackOnlyIsBoundByAddress", ip("::1", "127.0.0.1"), "", "127.0.0.1"},
		{"IPv6LoopbackOnly", ip("::1"), "", "::1"},
		{"AnUnspecifiedAddressIsRefused", ip("0.0.0.0"), "localhost resolves to 0.0.0.0", ""},
		{"OneForeignAddressAmongLoopbacksIsRefused", ip("127.0.0.1", "192.168.1.7"), "localhost resolves to 192.168.1.7", ""},
		{"NoAddressIsRefused", nil, "does not resolve", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defer api.SetLookupHost(func(context.Context, string) ([]net.IPAddr, error) { return c.resolved, nil })()
			s, err := api.New(&apitest.Backend{}, api.Options{Listen: "localhost:0", Token: testToken, Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Listen()
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), "allow_non_loopback") {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				if s.Addr() != nil {
					t.Fatal("bound anyway")
				}
				return
			}
			if err != nil {
				if c.wantBind == "::1" && strings.Contains(err.Error(), "cannot assign") {
					t.Skip("no IPv6 loopback on this machine")
				}
				t.Fatal(err)
			}
			host, _, _ := net.SplitHostPort(s.Addr().String())
			if host != c.wantBind {
				t.Fatalf("bound %s, want %s", s.Addr(), c.wantBind)
			}
			serve(t, s)()
		})
	}
}
