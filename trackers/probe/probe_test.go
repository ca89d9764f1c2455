package probe

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestChecks(t *testing.T) {
	ctx := t.Context()
	t.Run("TCPPassesOnAListenerAndFailsOnAClosedPort", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		check, _ := New(Spec{TCP: addr}, "health", nil)
		if err := check(ctx); err != nil {
			t.Fatalf("listening: %v", err)
		}
		ln.Close()
		if err := check(ctx); err == nil || !strings.HasPrefix(err.Error(), "health.tcp: ") {
			t.Fatalf("closed: %v", err)
		}
	})
	t.Run("HTTPWants2xxAndSaysTheStatus", func(t *testing.T) {
		status := http.StatusOK
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) }))
		defer srv.Close()
		check, closeCheck := New(Spec{HTTP: srv.URL}, "ready", nil)
		defer closeCheck()
		if err := check(ctx); err != nil {
			t.Fatal(err)
		}
		status = http.StatusServiceUnavailable
		if err := check(ctx); err == nil || !strings.Contains(err.Error(), "503 Service Unavailable") {
			t.Fatalf("503: %v", err)
		}
	})
	t.Run("AHungHTTPServerTimesOut", func(t *testing.T) {
		block := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-block:
			case <-r.Context().Done():
			}
		}))
		defer srv.Close()
		defer close(block)
		check, _ := New(Spec{HTTP: srv.URL}, "health", nil)
		cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		if err := check(cctx); err == nil {
			t.Fatal("a hung server passed")
		}
	})
	t.Run("CommandExitStatusAndItsLastOutputLine", func(t *testing.T) {
		check, _ := New(Spec{Command: []string{"sh", "-c", "echo first; echo 'db is down' >&2; exit 3"}}, "health", nil)
		err := check(ctx)
		if err == nil || !strings.Contains(err.Error(), "exit status 3: db is down") {
			t.Fatalf("got %v", err)
		}
		ok, _ := New(Spec{Command: []string{"true"}}, "health", nil)
		if err := ok(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ACommandAndWhatItStartedAreKilledAtTheTimeout", func(t *testing.T) {
		check, _ := New(Spec{Command: []string{"sh", "-c", "sleep 30 & sleep 30"}}, "health", nil)
		cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		t0 := time.Now()
		if err := check(cctx); err == nil {
			t.Fatal("a hung command passed")
		}
		if d := time.Since(t0); d > 5*time.Second {
			t.Fatalf("returned after %s", d)
		}
	})
	t.Run("OutputIsBounded", func(t *testing.T) {
		check, _ := New(Spec{Command: []string{"sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x; exit 1"}}, "health", nil)
		err := check(ctx)
		if err == nil || len(err.Error()) > 400 {
			t.Fatalf("error of %d bytes", len(err.Error()))
		}
	})
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		s    Spec
		want string
	}{
		{Spec{TCP: "nope"}, `check.tcp: must be host:port, got "nope"`},
		{Spec{HTTP: "ftp://x/"}, `check.http: must be an http:// or https:// URL, got "ftp://x/"`},
		{Spec{Command: []string{}}, `check.command: must be a non-empty argv`},
		{Spec{TCP: "a:1", HTTP: "http://x/"}, `check: set at most one of tcp, http, command (got 2)`},
	} {
		errs := c.s.Validate("check")
		if len(errs) != 1 || errs[0].Error() != c.want {
			t.Errorf("%+v: %v, want %s", c.s, errs, c.want)
		}
	}
	if errs := (Spec{}).Validate("check"); len(errs) != 0 {
		t.Errorf("empty spec: %v", errs)
	}
}
