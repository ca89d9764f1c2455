package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rouse-dev/rouse/agent/api/apitest"
	"github.com/rouse-dev/rouse/wire"
)

// bodyPaths are the routes that take a POST, plus one that does not.
var bodyPaths = []string{
	"/api/v1/wake", "/api/v1/wake?dry_run=true", "/api/v1/services/tunnel/start",
	"/api/v1/services/tunnel/stop", "/api/v1/services/tunnel/restart",
	"/api/v1/jobs/nightly/run", "/api/v1/login-codes", "/api/v1/health",
}

var bodyTypes = []string{
	"", "application/json", "application/json; charset=utf-8", "APPLICATION/JSON",
	"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
	"application/json; charset", "application/jsonx",
}

// FuzzRequestBody sends arbitrary bodies with assorted Content-Types to
// every POST route, authenticated, and checks the body rules: the backend
// is reached only with an empty body, or a JSON one under Content-Type
// application/json; a refused request gets a JSON error body with a 4xx;
// nothing answers 5xx; and every JSON answer decodes.
//
//	go test -run '^$' -fuzz '^FuzzRequestBody$' -fuzztime 30s ./agent/api
func FuzzRequestBody(f *testing.F) {
	f.Add([]byte(""), uint8(0), uint8(0))
	f.Add([]byte("{}"), uint8(1), uint8(0))
	f.Add([]byte(`{"dry_run":true}`), uint8(2), uint8(1))
	f.Add([]byte("null"), uint8(1), uint8(2))
	f.Add([]byte("  \n"), uint8(0), uint8(3))
	f.Add([]byte("{"), uint8(1), uint8(4))
	f.Add([]byte(`{"a":"\ud800"}`), uint8(1), uint8(5))
	f.Add([]byte("name=x"), uint8(5), uint8(6))
	f.Add([]byte(`[1,2,3]`), uint8(4), uint8(2))
	f.Add([]byte(strings.Repeat("[", 5000)), uint8(1), uint8(0))
	f.Fuzz(func(t *testing.T, body []byte, typeIdx, pathIdx uint8) {
		b := &apitest.Backend{
			StartFunc:   func(context.Context, string) (string, error) { return wire.ActionStarted, nil },
			StopFunc:    func(context.Context, string) (string, error) { return wire.ActionStopped, nil },
			RestartFunc: func(context.Context, string) (string, error) { return wire.ActionStarted, nil },
			RunJobFunc:  func(context.Context, string) (wire.JobRun, error) { return wire.JobRun{Result: "running"}, nil },
		}
		s := newTestServer(t, b)
		path := bodyPaths[int(pathIdx)%len(bodyPaths)]
		ct := bodyTypes[int(typeIdx)%len(bodyTypes)]
		r := httptest.NewRequest(http.MethodPost, "http://"+testHost+path, bytes.NewReader(body))
		r.Host = testHost
		r.Header.Set("Authorization", "Bearer "+testToken)
		if ct != "" {
			r.Header.Set("Content-Type", ct)
		}
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)

		if w.Code >= 500 {
			t.Fatalf("POST %s (%q, %d bytes) answered %d: %s", path, ct, len(body), w.Code, w.Body)
		}
		if got := w.Header().Get("Content-Type"); strings.HasPrefix(got, "application/json") && !json.Valid(w.Body.Bytes()) {
			t.Fatalf("POST %s answered invalid JSON: %q", path, w.Body)
		}
		empty := len(bytes.TrimSpace(body)) == 0
		mt, _, perr := mime.ParseMediaType(ct)
		jsonType := perr == nil && mt == "application/json"
		acceptable := (ct == "" && len(body) == 0) || (jsonType && (empty || (json.Valid(body) && len(body) <= 1<<20)))
		if b.Calls() > 0 && !acceptable {
			t.Fatalf("POST %s with Content-Type %q and body %.60q reached the backend", path, ct, body)
		}
		if w.Code >= 400 {
			var e wire.Error
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error.Code == "" {
				t.Fatalf("POST %s: %d without a JSON error body: %q", path, w.Code, w.Body)
			}
			if acceptable && path != "/api/v1/health" {
				t.Fatalf("POST %s with Content-Type %q and an acceptable body %.60q refused: %d %s", path, ct, body, w.Code, w.Body)
			}
		}
	})
}
