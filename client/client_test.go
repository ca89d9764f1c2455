package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/agent/api"
	"github.com/rouse-dev/rouse/agent/api/apitest"
	"github.com/rouse-dev/rouse/wire"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testToken = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

// guard bounds waits that only fail a broken test; never a speed check.
const guard = 20 * time.Second

// agent is a real api.Server on 127.0.0.1 over a fake backend.
type agent struct {
	srv    *api.Server
	url    string
	cancel context.CancelFunc
	done   chan error
}

func startAgent(t *testing.T, b api.Backend, listen string) *agent {
	t.Helper()
	s, err := api.New(b, api.Options{Listen: listen, Token: testToken, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Version: "v-test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &agent{srv: s, url: "http://" + s.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { a.done <- s.Serve(ctx) }()
	t.Cleanup(a.stop)
	return a
}

func (a *agent) stop() {
	if a.cancel == nil {
		return
	}
	a.cancel()
	a.cancel = nil
	<-a.done
}

func newClient(t *testing.T, a *agent) *Client {
	c := New(a.url, testToken)
	t.Cleanup(c.Close)
	return c
}

var t0 = time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)

func richBackend() *apitest.Backend {
	svc := func(name string) (wire.Service, error) {
		if name != "tunnel" && name != "slow" && name != "with space" {
			return wire.Service{}, fmt.Errorf("service %q: %w", name, api.ErrNotFound)
		}
		return wire.Service{Name: name, Kind: "exec", State: "ready", Since: t0}, nil
	}
	return &apitest.Backend{
		HealthFunc: func(context.Context) wire.Health { return wire.Health{Status: wire.StatusOK} },
		ReadyFunc:  func(context.Context, bool) wire.Ready { return wire.Ready{Reasons: []string{"store: closed"}} },
		ServicesFunc: func(context.Context) []wire.Service {
			s, _ := svc("tunnel")
			return []wire.Service{s}
		},
		ServiceFunc: func(_ context.Context, n string) (wire.Service, error) { return svc(n) },
		StartFunc: func(_ context.Context, n string) (string, error) {
			if n == "slow" {
				return wire.ActionStartedWithTimeout, nil
			}
			_, err := svc(n)
			return wire.ActionStarted, err
		},
		StopFunc: func(_ context.Context, n string) (string, error) {
			_, err := svc(n)
			return wire.ActionStopped, err
		},
		RestartFunc: func(_ context.Context, n string) (string, error) { return wire.ActionStartedWithTimeout, nil },
		WakeFunc:    func(context.Context) (wire.Wake, error) { return wire.Wake{ID: 4, DetectedBy: "manual"}, nil },
		WakePlanFunc: func(context.Context) (wire.Plan, error) {
			return wire.Plan{EstimatedTotalMS: 900, CriticalPath: []string{"tunnel"}}, nil
		},
		WakesFunc: func(_ context.Context, limit int, before int64) ([]wire.Wake, error) {
			if before != 0 {
				return nil, nil
			}
			out := make([]wire.Wake, limit)
			for i := range out {
				out[i].ID = int64(limit - i)
			}
			return out, nil
		},
		WakeByIDFunc: func(_ context.Context, id int64) (wire.Wake, error) { return wire.Wake{ID: id}, nil },
		ItemsFunc: func(_ context.Context, tr string, q api.ItemQuery) ([]api.Item, error) {
			if q.Cursor == "5" {
				return nil, nil
			}
			return []api.Item{{Seq: 5, ID: fmt.Sprintf("%s|%s|%s|%d|%v", tr, q.Since, q.Cursor, q.Limit, q.Oldest), Data: []byte("1")}}, nil
		},
		JobsFunc: func(context.Context) ([]wire.Job, error) { return []wire.Job{{Name: "nightly"}}, nil },
		RunJobFunc: func(_ context.Context, n string) (wire.JobRun, error) {
			return wire.JobRun{ID: 11, Job: n, Result: "running"}, nil
		},
		JobRunsFunc: func(_ context.Context, n string, limit int, before int64) ([]wire.JobRun, error) {
			if before != 0 {
				return nil, nil
			}
			return []wire.JobRun{{ID: int64(limit), Job: n}}, nil
		},
	}
}

func TestClientMethods(t *testing.T) {
	a := startAgent(t, richBackend(), "127.0.0.1:0")
	c := newClient(t, a)
	ctx := context.Background()

	t.Run("AliveAnswers", func(t *testing.T) {
		if err := c.Alive(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ReadyIsNotAnErrorWhenNotReady", func(t *testing.T) {
		r, err := c.Ready(ctx)
		if err != nil || r.Ready || len(r.Reasons) != 1 {
			t.Fatalf("%+v, %v", r, err)
		}
	})
	t.Run("HealthCarriesTheVersion", func(t *testing.T) {
		h, err := c.Health(ctx)
		if err != nil || h.Status != wire.StatusOK || h.Version != "v-test" {
			t.Fatalf("%+v, %v", h, err)
		}
	})
	t.Run("ServicesAndService", func(t *testing.T) {
		list, err := c.Services(ctx)
		if err != nil || len(list) != 1 || list[0].Name != "tunnel" {
			t.Fatalf("%+v, %v", list, err)
		}
		s, err := c.Service(ctx, "with space")
		if err != nil || s.Name != "with space" {
			t.Fatalf("%+v, %v", s, err)
		}
	})
	t.Run("AnUnknownServiceIsAnAPIError404", func(t *testing.T) {
		_, err := c.Service(ctx, "nope")
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != 404 || ae.Code != wire.CodeNotFound || !strings.Contains(ae.Message, "nope") || !IsNotFound(err) {
			t.Fatalf("err = %#v", err)
		}
	})
	t.Run("StartStopRestartReportStatusAndCode", func(t *testing.T) {
		for _, tc := range []struct {
			f      func(context.Context, string) (string, int, error)
			name   string
			status string
			code   int
		}{
			{c.Start, "tunnel", wire.ActionStarted, 200},
			{c.Start, "slow", wire.ActionStartedWithTimeout, 202},
			{c.Stop, "tunnel", wire.ActionStopped, 200},
			{c.Restart, "tunnel", wire.ActionStartedWithTimeout, 202},
		} {
			st, code, err := tc.f(ctx, tc.name)
			if err != nil || st != tc.status || code != tc.code {
				t.Fatalf("%s: %q %d %v", tc.name, st, code, err)
			}
		}
		_, code, err := c.Stop(ctx, "nope")
		if err == nil || code != 404 {
			t.Fatalf("unknown: %d %v", code, err)
		}
	})
	t.Run("WakeAndPlan", func(t *testing.T) {
		w, err := c.Wake(ctx)
		if err != nil || w.ID != 4 {
			t.Fatalf("%+v, %v", w, err)
		}
		p, err := c.WakePlan(ctx)
		if err != nil || p.EstimatedTotalMS != 900 {
			t.Fatalf("%+v, %v", p, err)
		}
	})
	t.Run("WakesPassesTheLimit", func(t *testing.T) {
		ws, err := c.Wakes(ctx, 3)
		if err != nil || len(ws) != 3 {
			t.Fatalf("%+v, %v", ws, err)
		}
		ws, err = c.Wakes(ctx, 0)
		if err != nil || len(ws) != 20 {
			t.Fatalf("default limit: %d, %v", len(ws), err)
		}
		w, err := c.WakeByID(ctx, 17)
		if err != nil || w.ID != 17 {
			t.Fatalf("%+v, %v", w, err)
		}
	})
	t.Run("ABadLimitIsAnAPIError400", func(t *testing.T) {
		_, err := c.Wakes(ctx, 5000)
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != 400 || !strings.Contains(ae.Message, "limit") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("ItemsPassesTheQuery", func(t *testing.T) {
		items, err := c.Items(ctx, "scrobbles", ItemQuery{Since: "2026-11-01T00:00:00Z", Cursor: "a b", Limit: 7, Oldest: true})
		if err != nil || len(items.Items) != 1 || items.NextCursor != "" {
			t.Fatalf("%+v, %v", items, err)
		}
		if got := items.Items[0].ID; got != "scrobbles|2026-11-01T00:00:00Z|a b|7|true" {
			t.Fatalf("query arrived as %s", got)
		}
	})
	t.Run("JobsRunJobJobRuns", func(t *testing.T) {
		jobs, err := c.Jobs(ctx)
		if err != nil || len(jobs) != 1 {
			t.Fatalf("%+v, %v", jobs, err)
		}
		run, err := c.RunJob(ctx, "nightly")
		if err != nil || run.ID != 11 || run.Result != "running" {
			t.Fatalf("%+v, %v", run, err)
		}
		runs, err := c.JobRuns(ctx, "nightly", 5)
		if err != nil || len(runs) != 1 || runs[0].ID != 5 {
			t.Fatalf("%+v, %v", runs, err)
		}
	})
	t.Run("LoginCodeGivesAWorkingURL", func(t *testing.T) {
		l, err := c.LoginCode(ctx)
		if err != nil || l.Code == "" || !strings.HasPrefix(l.URL, a.url+"/login?code=") {
			t.Fatalf("%+v, %v", l, err)
		}
		hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		defer hc.CloseIdleConnections()
		resp, err := hc.Get(l.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `action="/login"`) {
			t.Fatalf("login page: %d %s", resp.StatusCode, body)
		}
	})
	t.Run("AWrongTokenIsAnAPIError403", func(t *testing.T) {
		bad := New(a.url, strings.Repeat("f", 64))
		defer bad.Close()
		_, err := bad.Health(ctx)
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != 403 || ae.Code != wire.CodeForbidden {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("ADeadAgentIsANoAgentErrorNamingTheAddress", func(t *testing.T) {
		addr := deadAddr(t)
		dead := New("http://"+addr, testToken)
		defer dead.Close()
		err := dead.Alive(ctx)
		var ae *APIError
		if !IsNoAgent(err) || errors.As(err, &ae) {
			t.Fatalf("err = %v", err)
		}
		if want := "no agent answers at http://" + addr + ": connection refused"; err.Error() != want {
			t.Fatalf("err = %q, want %q", err, want)
		}
	})
}

func TestAPIErrorFromANonJSONBody(t *testing.T) {
	resp := &http.Response{StatusCode: 502, Body: io.NopCloser(strings.NewReader("<html>bad gateway</html>"))}
	err := decodeError(resp)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 502 || ae.Code != "" || !strings.Contains(err.Error(), "bad gateway") {
		t.Fatalf("err = %v", err)
	}
}

func TestFromEnv(t *testing.T) {
	writeToken := func(t *testing.T, mode os.FileMode) string {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "api-token"), []byte(testToken+"\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, "api-token"), mode); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	t.Run("ItReadsTheTokenAndTalksToTheAgent", func(t *testing.T) {
		a := startAgent(t, richBackend(), "127.0.0.1:0")
		c, err := FromEnv(strings.TrimPrefix(a.url, "http://"), writeToken(t, 0o600))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Health(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("TheEnvironmentFillsEmptyArguments", func(t *testing.T) {
		dir := writeToken(t, 0o600)
		t.Setenv("ROUSE_DATA", dir)
		t.Setenv("ROUSE_LISTEN", "0.0.0.0:8123")
		c, err := FromEnv("", "")
		if err != nil {
			t.Fatal(err)
		}
		if c.BaseURL() != "http://127.0.0.1:8123" || c.token != testToken {
			t.Fatalf("base %s token %q", c.BaseURL(), c.token)
		}
	})
	t.Run("TheXDGDataDirIsTheDefault", func(t *testing.T) {
		x := t.TempDir()
		if err := os.MkdirAll(filepath.Join(x, "rouse"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(x, "rouse", "api-token"), []byte(testToken), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("ROUSE_DATA", "")
		t.Setenv("ROUSE_LISTEN", "")
		t.Setenv("XDG_DATA_HOME", x)
		c, err := FromEnv("", "")
		if err != nil {
			t.Fatal(err)
		}
		if c.BaseURL() != "http://127.0.0.1:8000" {
			t.Fatalf("base %s", c.BaseURL())
		}
	})
	t.Run("AnIPv6WildcardIsReachedOnLoopback", func(t *testing.T) {
		c, err := FromEnv("[::]:8000", writeToken(t, 0o600))
		if err != nil || c.BaseURL() != "http://[::1]:8000" {
			t.Fatalf("%v %v", c, err)
		}
	})
	t.Run("AMissingTokenSaysWhatToDo", func(t *testing.T) {
		_, err := FromEnv("127.0.0.1:8000", t.TempDir())
		if err == nil || !strings.Contains(err.Error(), `start it with "rouse run"`) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("AGroupReadableTokenIsRefused", func(t *testing.T) {
		_, err := FromEnv("127.0.0.1:8000", writeToken(t, 0o640))
		if err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("ABadListenAddressIsRefused", func(t *testing.T) {
		if _, err := FromEnv("8000", writeToken(t, 0o600)); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("ItReadsWhatTheAgentCreates", func(t *testing.T) {
		dir := t.TempDir()
		tok, err := api.LoadOrCreateToken(dir)
		if err != nil {
			t.Fatal(err)
		}
		c, err := FromEnv("127.0.0.1:8000", dir)
		if err != nil || c.token != tok {
			t.Fatalf("%v", err)
		}
	})
}

// syncList is a list appended from one goroutine and read from another.
type syncList[T any] struct {
	mu sync.Mutex
	v  []T
}

func (l *syncList[T]) add(x T) { l.mu.Lock(); l.v = append(l.v, x); l.mu.Unlock() }
func (l *syncList[T]) get() []T {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]T(nil), l.v...)
}
