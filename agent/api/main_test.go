package api_test

import (
	"bytes"
	"encoding/json"
	"github.com/rouse-dev/rouse/agent/api"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/rouse-dev/rouse/wire"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	testToken = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	testHost  = "127.0.0.1:8000"
)

// newTestServer builds a api.Server on the fixed test address (not bound).
func newTestServer(t testing.TB, b api.Backend) *api.Server {
	t.Helper()
	s, err := api.New(b, api.Options{
		Listen:  testHost,
		Token:   testToken,
		Logger:  quietLogger(),
		Version: "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// req is one request in a table.
type req struct {
	method, path string
	body         string
	header       map[string]string // "Host" sets the Host
	noToken      bool
}

// do runs one request through the whole handler.
func do(s *api.Server, q req) *httptest.ResponseRecorder {
	var body io.Reader
	if q.body != "" {
		body = strings.NewReader(q.body)
	}
	method := q.method
	if method == "" {
		method = http.MethodGet
	}
	r := httptest.NewRequest(method, "http://"+testHost+q.path, body)
	r.Host = testHost
	if !q.noToken {
		r.Header.Set("Authorization", "Bearer "+testToken)
	}
	for k, v := range q.header {
		if k == "Host" {
			r.Host = v
			continue
		}
		if v == "" {
			r.Header.Del(k)
			continue
		}
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	return w
}

// errorBody decodes a JSON error response, failing the test if it is not one.
func errorBody(t *testing.T, w *httptest.ResponseRecorder) wire.ErrorBody {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error Content-Type = %q, want JSON; body %s", ct, w.Body)
	}
	var e wire.Error
	dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("error body %q: %v", w.Body, err)
	}
	if e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("error body %q lacks code or message", w.Body)
	}
	return e.Error
}

// quietLogger drops log output (set ROUSE_TEST_LOG to see it).
func quietLogger() *slog.Logger {
	if os.Getenv("ROUSE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
