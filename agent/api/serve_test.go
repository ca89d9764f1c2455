package api_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/agent/api"
	"github.com/rouse-dev/rouse/agent/api/apitest"
	"github.com/rouse-dev/rouse/wire"
)

// guard bounds waits that only fail a broken test; it is never a speed
// assertion.
const guard = 20 * time.Second

func newListening(t *testing.T, b api.Backend, listen string) *api.Server {
	t.Helper()
	s, err := api.New(b, api.Options{Listen: listen, Token: testToken, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	return s
}

// serve runs s.Serve in the background; the returned stop cancels it and
// returns Serve's error.
func serve(t *testing.T, s *api.Server) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	var once bool
	var err error
	stop = func() error {
		if once {
			return err
		}
		once = true
		cancel()
		select {
		case err = <-done:
		case <-time.After(guard):
			t.Fatal("Serve did not return after cancel")
		}
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func TestListen(t *testing.T) {
	t.Run("ANonLoopbackAddressIsRefusedNamingTheKey", func(t *testing.T) {
		for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.168.1.5:8000", "example.com:8000"} {
			s, err := api.New(&apitest.Backend{}, api.Options{Listen: addr, Token: testToken, Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Listen()
			if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "allow_non_loopback") {
				t.Fatalf("%s: err = %v", addr, err)
			}
			if s.Addr() != nil {
				t.Fatalf("%s: bound anyway", addr)
			}
		}
	})
	t.Run("ANonLoopbackAddressIsAllowedWhenConfigured", func(t *testing.T) {
		s, err := api.New(&apitest.Backend{}, api.Options{Listen: "0.0.0.0:0", AllowNonLoopback: true, Token: testToken, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Listen(); err != nil {
			t.Fatal(err)
		}
		serve(t, s)()
	})
	t.Run("ATakenPortIsAClearError", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		s, err := api.New(&apitest.Backend{}, api.Options{Listen: ln.Addr().String(), Token: testToken, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		err = s.Listen()
		if err == nil || !strings.Contains(err.Error(), "already in use") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("ABadAddressIsRefusedByNew", func(t *testing.T) {
		if _, err := api.New(&apitest.Backend{}, api.Options{Listen: "8000", Token: testToken}); err == nil {
			t.Fatal("no error")
		}
		if _, err := api.New(&apitest.Backend{}, api.Options{Listen: "127.0.0.1:0"}); err == nil {
			t.Fatal("an empty token must be refused")
		}
	})
	t.Run("TheBoundPortIsTheOneTheHostCheckWants", func(t *testing.T) {
		s := newListening(t, &apitest.Backend{}, "127.0.0.1:0")
		serve(t, s)
		url := "http://" + s.Addr().String() + "/healthz"
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		r, _ := http.NewRequest("GET", url, nil)
		r.Host = "localhost:1"
		resp, err = http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Fatalf("wrong port: status %d", resp.StatusCode)
		}
		http.DefaultClient.CloseIdleConnections()
	})
}

// openEvents opens GET /api/v1/events on s with the header key set to
// value, on a transport of its own; the stream is closed at cleanup.
func openEvents(t *testing.T, s *api.Server, key, value string) *http.Response {
	t.Helper()
	r, err := http.NewRequest("GET", "http://"+s.Addr().String()+"/api/v1/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set(key, value)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	resp, err := (&http.Client{Transport: tr}).Do(r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

func TestServeShutsDownWithAnOpenEventStream(t *testing.T) {
	subscribed := make(chan struct{}, 1)
	b := &apitest.Backend{SubscribeFunc: func(ctx context.Context, _ int64) <-chan wire.Event {
		ch := make(chan wire.Event) // never closed by the backend on its own
		subscribed <- struct{}{}
		return ch
	}}
	s := newListening(t, b, "127.0.0.1:0")
	stop := serve(t, s)
	resp := openEvents(t, s, "Authorization", "Bearer "+testToken)
	<-subscribed
	if err := stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	// The stream ended cleanly: the body reaches EOF, not a reset.
	rd := bufio.NewReader(resp.Body)
	for {
		_, err := rd.ReadString('\n')
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("stream ended with %v", err)
			}
			break
		}
	}
}

func TestEventStreamOutlivesTheReadTimeout(t *testing.T) {
	defer api.SetReadTimeout(100 * time.Millisecond)()
	events := make(chan wire.Event, 1)
	b := &apitest.Backend{SubscribeFunc: func(ctx context.Context, _ int64) <-chan wire.Event { return events }}
	s := newListening(t, b, "127.0.0.1:0")
	stop := serve(t, s)
	resp := openEvents(t, s, "X-API-Key", testToken)
	time.Sleep(500 * time.Millisecond) // well past the read timeout
	events <- wire.Event{ID: 1, Type: wire.EventConfig, Config: &wire.ConfigState{State: "ok"}}
	rd := bufio.NewReader(resp.Body)
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("stream cut: %v", err)
		}
		if line == "id: 1\n" {
			break
		}
	}
	close(events)
	_ = stop()
}

func TestServeCutsAHungRequestAfterTheGrace(t *testing.T) {
	defer api.SetShutdownGrace(50 * time.Millisecond)()
	entered := make(chan struct{})
	cancelled := make(chan struct{})
	b := &apitest.Backend{StartFunc: func(ctx context.Context, _ string) (string, error) {
		close(entered)
		<-ctx.Done() // a start that never finishes on its own
		close(cancelled)
		return "", ctx.Err()
	}}
	s := newListening(t, b, "127.0.0.1:0")
	stop := serve(t, s)
	r, _ := http.NewRequest("POST", "http://"+s.Addr().String()+"/api/v1/services/x/start", nil)
	r.Header.Set("Authorization", "Bearer "+testToken)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	errc := make(chan error, 1)
	go func() {
		resp, err := (&http.Client{Transport: tr}).Do(r)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-entered
	if err := stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	select {
	case <-cancelled:
	default:
		t.Fatal("Serve returned while the hung request was still running")
	}
	<-errc
}

func TestServeWithoutListenBinds(t *testing.T) {
	s, err := api.New(&apitest.Backend{}, api.Options{Listen: "127.0.0.1:0", Token: testToken, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	deadline := time.Now().Add(guard)
	for s.Addr() == nil && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if s.Addr() == nil {
		t.Fatal("never bound")
	}
	if err := s.Listen(); err == nil {
		t.Fatal("a second Listen must fail")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
