package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/rouse-dev/rouse/agent/api"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/agent/api/apitest"
	"github.com/rouse-dev/rouse/internal/promreg"
	"github.com/rouse-dev/rouse/wire"
)

var t0 = time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)

// richBackend answers every method with recognisable data and records the
// arguments it was given.
func richBackend(got map[string]string) *apitest.Backend {
	svc := func(name string) (wire.Service, error) {
		if name != "tunnel" && name != "slow" {
			return wire.Service{}, fmt.Errorf("service %q: %w", name, api.ErrNotFound)
		}
		return wire.Service{Name: name, Kind: "exec", State: "ready", Since: t0, DependsOn: []string{}}, nil
	}
	return &apitest.Backend{
		HealthFunc: func(context.Context) wire.Health {
			return wire.Health{Status: wire.StatusDegraded, Store: wire.StoreHealth{State: "open", Path: "/x.db"}}
		},
		ReadyFunc: func(context.Context, bool) wire.Ready {
			return wire.Ready{Ready: false, Reasons: []string{"slow: starting"}}
		},
		ServicesFunc: func(context.Context) []wire.Service {
			a, _ := svc("tunnel")
			return []wire.Service{a}
		},
		ServiceFunc: func(_ context.Context, name string) (wire.Service, error) { return svc(name) },
		StartFunc: func(_ context.Context, name string) (string, error) {
			got["start"] = name
			if name == "slow" {
				return wire.ActionStartedWithTimeout, nil
			}
			_, err := svc(name)
			return wire.ActionStarted, err
		},
		StopFunc: func(_ context.Context, name string) (string, error) {
			got["stop"] = name
			_, err := svc(name)
			return wire.ActionStopped, err
		},
		RestartFunc: func(_ context.Context, name string) (string, error) {
			got["restart"] = name
			if name == "slow" {
				return wire.ActionStartedWithTimeout, nil
			}
			_, err := svc(name)
			return wire.ActionStarted, err
		},
		WakeFunc: func(context.Context) (wire.Wake, error) {
			return wire.Wake{ID: 7, DetectedBy: "manual", WokeAt: t0}, nil
		},
		WakePlanFunc: func(context.Context) (wire.Plan, error) {
			return wire.Plan{Components: []wire.PlanStep{{Name: "tunnel"}}, EstimatedTotalMS: 1200, CriticalPath: []string{"tunnel"}}, nil
		},
		WakesFunc: func(_ context.Context, limit int, before int64) ([]wire.Wake, error) {
			if before == 0 {
				got["wakes.limit"] = fmt.Sprint(limit)
			}
			var out []wire.Wake
			for id := int64(2); id >= 1 && len(out) < limit; id-- {
				if before == 0 || id < before {
					out = append(out, wire.Wake{ID: id})
				}
			}
			return out, nil
		},
		WakeByIDFunc: func(_ context.Context, id int64) (wire.Wake, error) {
			if id != 2 {
				return wire.Wake{}, fmt.Errorf("wake %d: %w", id, api.ErrNotFound)
			}
			return wire.Wake{ID: 2}, nil
		},
		ItemsFunc: func(_ context.Context, tracker string, q api.ItemQuery) ([]api.Item, error) {
			if tracker != "scrobbles" {
				return nil, fmt.Errorf("tracker %q: %w", tracker, api.ErrNotFound)
			}
			if q.Cursor == "1" {
				return nil, nil // the second batch: no more
			}
			got["items"] = fmt.Sprintf("%s|%s|%d|%v", q.Since, q.Cursor, q.Limit, q.Oldest)
			return []api.Item{{ID: "a", Seq: 1, Data: []byte(`{"x":1}`), Size: 7}}, nil
		},
		JobsFunc: func(context.Context) ([]wire.Job, error) {
			return []wire.Job{{Name: "nightly", Schedule: "0 3 * * *", Misfire: "coalesce"}}, nil
		},
		RunJobFunc: func(_ context.Context, name string) (wire.JobRun, error) {
			if name != "nightly" {
				return wire.JobRun{}, fmt.Errorf("job %q: %w", name, api.ErrNotFound)
			}
			return wire.JobRun{ID: 9, Job: name, Result: "running", Reason: "manual"}, nil
		},
		JobRunsFunc: func(_ context.Context, name string, limit int, before int64) ([]wire.JobRun, error) {
			if name != "nightly" {
				return nil, fmt.Errorf("job %q: %w", name, api.ErrNotFound)
			}
			if before != 0 {
				return nil, nil
			}
			got["runs.limit"] = fmt.Sprint(limit)
			return []wire.JobRun{{ID: 9, Job: name, Result: "ok"}}, nil
		},
	}
}

func TestEveryRoute(t *testing.T) {
	got := map[string]string{}
	reg := promreg.New()
	c, err := reg.CounterVec("rouse_wakes_total", "Wakes.")
	if err != nil {
		t.Fatal(err)
	}
	c.With().Add(3)
	s, err := api.New(richBackend(got), api.Options{Listen: testHost, Token: testToken, Metrics: reg, Logger: quietLogger(), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name   string
		q      req
		status int
		want   string // a substring of the body
		check  func(t *testing.T)
	}{
		{"HealthzIsAliveWithoutToken", req{path: "/healthz", noToken: true}, 200, `"status":"alive"`, nil},
		{"ReadyzIs503WhenNotReady", req{path: "/readyz", noToken: true}, 503, `"reasons":["slow: starting"]`, nil},
		{"MetricsServesTheRegistry", req{path: "/metrics", noToken: true}, 200, "# HELP rouse_wakes_total Wakes.\n# TYPE rouse_wakes_total counter\nrouse_wakes_total 3\n", nil},
		{"MetricsAddsTheProcessMetrics", req{path: "/metrics", noToken: true}, 200, "\ngo_goroutines ", nil},
		{"HealthShowsStatus", req{path: "/api/v1/health"}, 200, `"status":"degraded"`, nil},
		{"HealthFillsVersion", req{path: "/api/v1/health"}, 200, `"version":"test"`, nil},
		{"HealthListsComponentsAsArray", req{path: "/api/v1/health"}, 200, `"components":[]`, nil},
		{"ServicesLists", req{path: "/api/v1/services"}, 200, `{"services":[{"name":"tunnel"`, nil},
		{"ServiceShowsOne", req{path: "/api/v1/services/tunnel"}, 200, `"name":"tunnel"`, nil},
		{"ServiceUnknownIs404", req{path: "/api/v1/services/nope"}, 404, `"code":"not_found"`, nil},
		{"StartIs200", req{method: "POST", path: "/api/v1/services/tunnel/start"}, 200, `{"status":"started","state":"ready"}`, func(t *testing.T) {
			if got["start"] != "tunnel" {
				t.Errorf("Start got %q", got["start"])
			}
		}},
		{"StartWithTimeoutIs202", req{method: "POST", path: "/api/v1/services/slow/start"}, 202, `"status":"started with timeout"`, nil},
		{"StopIs200", req{method: "POST", path: "/api/v1/services/tunnel/stop"}, 200, `"status":"stopped"`, nil},
		{"RestartIs200", req{method: "POST", path: "/api/v1/services/tunnel/restart"}, 200, `"status":"started"`, nil},
		{"RestartWithTimeoutIs202", req{method: "POST", path: "/api/v1/services/slow/restart"}, 202, `"status":"started with timeout"`, nil},
		{"StartUnknownIs404", req{method: "POST", path: "/api/v1/services/nope/start"}, 404, `service \"nope\": not found`, nil},
		{"WakeIs202", req{method: "POST", path: "/api/v1/wake"}, 202, `"detected_by":"manual"`, nil},
		{"WakeAcceptsAJSONBody", req{method: "POST", path: "/api/v1/wake", body: `{}`, header: map[string]string{"Content-Type": "application/json"}}, 202, `"id":7`, nil},
		{"WakeDryRunIsThePlan", req{method: "POST", path: "/api/v1/wake?dry_run=true"}, 200, `"estimated_total_ms":1200`, nil},
		{"WakesDefaultLimitIs20", req{path: "/api/v1/wakes"}, 200, `{"wakes":[{"id":2`, func(t *testing.T) {
			if got["wakes.limit"] != "20" {
				t.Errorf("limit = %s", got["wakes.limit"])
			}
		}},
		{"WakesTakesLimitReadInBatches", req{path: "/api/v1/wakes?limit=1000"}, 200, `"wakes"`, func(t *testing.T) {
			if got["wakes.limit"] != "100" {
				t.Errorf("limit = %s", got["wakes.limit"])
			}
		}},
		{"WakeByID", req{path: "/api/v1/wakes/2"}, 200, `"id":2`, nil},
		{"WakeByUnknownIDIs404", req{path: "/api/v1/wakes/3"}, 404, `wake 3: not found`, nil},
		{"ItemsDefaults", req{path: "/api/v1/trackers/scrobbles/items"}, 200, `{"items":[{"id":"a","time":"0001-01-01T00:00:00Z","data":{"x":1},"seq":1}]}`, func(t *testing.T) {
			if got["items"] != "||100|false" {
				t.Errorf("query = %s", got["items"])
			}
		}},
		{"ItemsPassesTheQuery", req{path: "/api/v1/trackers/scrobbles/items?since=2026-11-01T00:00:00Z&cursor=abc&limit=5&order=oldest"}, 200, `"items":[{"id":"a"`, func(t *testing.T) {
			if got["items"] != "2026-11-01T00:00:00Z|abc|5|true" {
				t.Errorf("query = %s", got["items"])
			}
		}},
		{"ItemsAFullPageHasANextCursor", req{path: "/api/v1/trackers/scrobbles/items?limit=1"}, 200, `"next_cursor":"1"`, nil},
		{"ItemsSinceUnixSeconds", req{path: "/api/v1/trackers/scrobbles/items?since=1700000000"}, 200, `"items"`, nil},
		{"ItemsUnknownTrackerIs404", req{path: "/api/v1/trackers/nope/items"}, 404, `"not_found"`, nil},
		{"JobsLists", req{path: "/api/v1/jobs"}, 200, `{"jobs":[{"name":"nightly"`, nil},
		{"RunJobIs202", req{method: "POST", path: "/api/v1/jobs/nightly/run"}, 202, `"status":"running","run":{"id":9`, nil},
		{"RunUnknownJobIs404", req{method: "POST", path: "/api/v1/jobs/nope/run"}, 404, `"not_found"`, nil},
		{"JobRuns", req{path: "/api/v1/jobs/nightly/runs?limit=3"}, 200, `{"runs":[{"id":9`, func(t *testing.T) {
			if got["runs.limit"] != "3" {
				t.Errorf("limit = %s", got["runs.limit"])
			}
		}},
		{"JobRunsUnknownIs404", req{path: "/api/v1/jobs/nope/runs"}, 404, `"not_found"`, nil},
		{"LoginCodesGivesAURL", req{method: "POST", path: "/api/v1/login-codes"}, 200, `"url":"http://127.0.0.1:8000/login?code=`, nil},
		{"DashboardPlaceholder", req{path: "/"}, 200, "<h1>rouse</h1>", nil},
		{"HeadIsServedByGet", req{method: "HEAD", path: "/api/v1/services"}, 200, "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := do(s, tc.q)
			if w.Code != tc.status {
				t.Fatalf("status = %d, want %d; body %s", w.Code, tc.status, w.Body)
			}
			if !strings.Contains(w.Body.String(), tc.want) {
				t.Fatalf("body %s does not contain %s", w.Body, tc.want)
			}
			if w.Code >= 400 && tc.q.path != "/readyz" {
				errorBody(t, w)
			}
			if tc.check != nil {
				tc.check(t)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	s := newTestServer(t, richBackend(map[string]string{}))
	fail := func(err error) *api.Server {
		b := &apitest.Backend{
			JobsFunc:  func(context.Context) ([]wire.Job, error) { return nil, err },
			StartFunc: func(context.Context, string) (string, error) { return "", err },
		}
		return newTestServer(t, b)
	}
	cases := []struct {
		name   string
		s      *api.Server
		q      req
		status int
		code   string
		msg    string // substring of the message
	}{
		{"LimitNotANumberIs400NamingIt", s, req{path: "/api/v1/wakes?limit=ten"}, 400, wire.CodeBadRequest, "parameter limit"},
		{"LimitZeroIs400", s, req{path: "/api/v1/wakes?limit=0"}, 400, wire.CodeBadRequest, "parameter limit"},
		{"LimitOverMaxIs400", s, req{path: "/api/v1/wakes?limit=1001"}, 400, wire.CodeBadRequest, "from 1 to 1000"},
		{"WakeIDNotANumberIs400", s, req{path: "/api/v1/wakes/abc"}, 400, wire.CodeBadRequest, "parameter id"},
		{"DryRunNotABoolIs400", s, req{method: "POST", path: "/api/v1/wake?dry_run=maybe"}, 400, wire.CodeBadRequest, "parameter dry_run"},
		{"SinceMalformedIs400", s, req{path: "/api/v1/trackers/scrobbles/items?since=yesterday"}, 400, wire.CodeBadRequest, "parameter since"},
		{"OrderUnknownIs400", s, req{path: "/api/v1/trackers/scrobbles/items?order=random"}, 400, wire.CodeBadRequest, "parameter order"},
		{"ItemsLimitOverMaxIs400", s, req{path: "/api/v1/trackers/scrobbles/items?limit=5000"}, 400, wire.CodeBadRequest, "parameter limit"},
		{"RunsLimitBadIs400", s, req{path: "/api/v1/jobs/nightly/runs?limit=-1"}, 400, wire.CodeBadRequest, "parameter limit"},
		{"LastEventIDBadIs400", s, req{path: "/api/v1/events?last_event_id=x"}, 400, wire.CodeBadRequest, "parameter last_event_id"},
		{"LastEventIDHeaderBadIs400", s, req{path: "/api/v1/events", header: map[string]string{"Last-Event-ID": "-3"}}, 400, wire.CodeBadRequest, "parameter Last-Event-ID"},
		{"BodyNotJSONIs400", s, req{method: "POST", path: "/api/v1/wake", body: "{", header: map[string]string{"Content-Type": "application/json"}}, 400, wire.CodeBadRequest, "JSON"},
		{"BodyTooLargeIs413", s, req{method: "POST", path: "/api/v1/wake", body: `"` + strings.Repeat("a", api.MaxBodyBytes) + `"`, header: map[string]string{"Content-Type": "application/json"}}, 413, wire.CodeBadRequest, "larger than"},
		{"UnknownAPIRouteIs404", s, req{path: "/api/v1/nothing"}, 404, wire.CodeNotFound, "no such route"},
		{"UnknownAPIRoutePostIs404", s, req{method: "POST", path: "/api/v2/wake"}, 404, wire.CodeNotFound, "no such route"},
		{"UnknownPageIs404", s, req{path: "/nothing.js"}, 404, wire.CodeNotFound, "no such page"},
		{"GetOnAMutationIs405", s, req{path: "/api/v1/wake"}, 405, wire.CodeMethodNotAllowed, "allowed: POST"},
		{"DeleteIs405", s, req{method: "DELETE", path: "/api/v1/services/tunnel"}, 405, wire.CodeMethodNotAllowed, "allowed: GET, HEAD"},
		{"PutOnDashboardIs405", s, req{method: "PUT", path: "/"}, 405, wire.CodeMethodNotAllowed, "GET, HEAD"},
		{"OptionsIs405", s, req{method: "OPTIONS", path: "/api/v1/services", header: map[string]string{"Access-Control-Request-Method": "POST"}}, 405, wire.CodeMethodNotAllowed, "OPTIONS"},
		{"NoTokenIs401", s, req{path: "/api/v1/services", noToken: true}, 401, wire.CodeUnauthorized, "missing API token"},
		{"WrongTokenIs403", s, req{path: "/api/v1/services", header: map[string]string{"Authorization": "Bearer " + strings.Repeat("0", 64)}}, 403, wire.CodeForbidden, "wrong API token"},
		{"FormBodyIs415", s, req{method: "POST", path: "/api/v1/wake", body: "a=b", header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}, 415, wire.CodeUnsupportedMedia, "application/json"},
		{"TextPlainEmptyIs415", s, req{method: "POST", path: "/api/v1/wake", header: map[string]string{"Content-Type": "text/plain"}}, 415, wire.CodeUnsupportedMedia, "text/plain"},
		{"ConflictIs409", fail(fmt.Errorf("busy: %w", api.ErrConflict)), req{method: "POST", path: "/api/v1/services/x/start"}, 409, wire.CodeConflict, "busy"},
		{"BackendBadRequestIs400", fail(fmt.Errorf("no: %w", api.ErrBadRequest)), req{path: "/api/v1/jobs"}, 400, wire.CodeBadRequest, "no"},
		{"UnavailableIs503", fail(fmt.Errorf("store closed while asleep: %w", api.ErrUnavailable)), req{path: "/api/v1/jobs"}, 503, wire.CodeUnavailable, "store closed"},
		{"OtherErrorIs500AndGeneric", fail(errors.New("secret detail /home/alice")), req{path: "/api/v1/jobs"}, 500, wire.CodeInternal, "internal error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := do(tc.s, tc.q)
			if w.Code != tc.status {
				t.Fatalf("status = %d, want %d; body %s", w.Code, tc.status, w.Body)
			}
			e := errorBody(t, w)
			if e.Code != tc.code || !strings.Contains(e.Message, tc.msg) {
				t.Fatalf("error = %+v, want code %s and a message with %q", e, tc.code, tc.msg)
			}
			if strings.Contains(w.Body.String(), "secret detail") {
				t.Fatalf("a 500 leaked its cause: %s", w.Body)
			}
			if w.Code == 405 && w.Header().Get("Allow") == "" {
				t.Fatal("405 without Allow")
			}
			if w.Code == 401 && w.Header().Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
}

func TestActionResultDecodes(t *testing.T) {
	s := newTestServer(t, richBackend(map[string]string{}))
	w := do(s, req{method: "POST", path: "/api/v1/services/slow/restart"})
	var res wire.ActionResult
	if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if w.Code != http.StatusAccepted || res.Status != wire.ActionStartedWithTimeout {
		t.Fatalf("got %d %+v", w.Code, res)
	}
}

func TestWakeSetsLocation(t *testing.T) {
	s := newTestServer(t, richBackend(map[string]string{}))
	w := do(s, req{method: "POST", path: "/api/v1/wake"})
	if w.Code != 202 || w.Header().Get("Location") != "/api/v1/wakes/7" {
		t.Fatalf("status %d, Location %q", w.Code, w.Header().Get("Location"))
	}
}

func TestHeadOnTheEventStreamDoesNotSubscribe(t *testing.T) {
	b := &apitest.Backend{}
	s := newTestServer(t, b)
	w := do(s, req{method: "HEAD", path: "/api/v1/events"})
	if w.Code != 200 || b.Calls() != 0 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d, calls %d, type %q", w.Code, b.Calls(), w.Header().Get("Content-Type"))
	}
}

func BenchmarkServices(b *testing.B) {
	svcs := make([]wire.Service, 20)
	for i := range svcs {
		svcs[i] = wire.Service{Name: fmt.Sprint("c", i), Kind: "exec", State: "ready", Since: t0, DependsOn: []string{}}
	}
	s := newTestServer(b, &apitest.Backend{ServicesFunc: func(context.Context) []wire.Service { return svcs }})
	h := s.Handler()
	b.ReportAllocs()
	for b.Loop() {
		r, _ := http.NewRequest("GET", "http://"+testHost+"/api/v1/services", nil)
		r.Host = testHost
		r.Header.Set("Authorization", "Bearer "+testToken)
		w := &discardWriter{h: http.Header{}}
		h.ServeHTTP(w, r)
		if w.code != 200 {
			b.Fatal(w.code)
		}
	}
}

type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(c int)           { d.code = c }

func TestDashboardHandler(t *testing.T) {
	dash := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("dash:" + r.URL.Path))
	})
	s, err := api.New(&apitest.Backend{}, api.Options{Listen: testHost, Token: testToken, Dashboard: dash, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("ItServesTheRootAndAssets", func(t *testing.T) {
		for _, p := range []string{"/", "/app.js", "/assets/style.css"} {
			w := do(s, req{path: p})
			if w.Code != 200 || w.Body.String() != "dash:"+p {
				t.Fatalf("%s: %d %s", p, w.Code, w.Body)
			}
			checkSecurityHeaders(t, w.Header(), true)
		}
	})
	t.Run("ItNeedsNoCredentials", func(t *testing.T) {
		// The page and its assets hold no data: the page reads the API
		// with its session header.
		if w := do(s, req{path: "/app.js", noToken: true}); w.Code != 200 {
			t.Fatalf("status %d", w.Code)
		}
	})
	t.Run("ItNeverSeesTheAPIOrMutations", func(t *testing.T) {
		if w := do(s, req{path: "/api/v1/unknown"}); w.Code != 404 || strings.Contains(w.Body.String(), "dash:") {
			t.Fatalf("status %d %s", w.Code, w.Body)
		}
		if w := do(s, req{method: "POST", path: "/"}); w.Code != 405 {
			t.Fatalf("status %d", w.Code)
		}
	})
}
