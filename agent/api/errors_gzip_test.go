package api

import (
	"net/http"
	"testing"
)

func TestAcceptsGzip(t *testing.T) {
	for h, want := range map[string]bool{
		"":                        false,
		"gzip":                    true,
		"deflate, gzip;q=1.0, br": true,
		"GZIP":                    true,
		"gzip;q=0":                false,
		"gzip; q=0.000":           false,
		"br, deflate":             false,
		"x-gzip-not":              false,
	} {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		if h != "" {
			r.Header.Set("Accept-Encoding", h)
		}
		if got := acceptsGzip(r); got != want {
			t.Errorf("Accept-Encoding %q: %v, want %v", h, got, want)
		}
	}
}

// A Backend's Errorf sentence reaches the client as written: the status
// and the code come from the sentinel, which is not appended to the text
// (the CLI prints `... (404 not_found)` after it).
func TestErrorfKeepsTheSentenceAndTheStatus(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{Errorf(ErrNotFound, "no component named %q; the components are: %s", "nope", "db, blog"), http.StatusNotFound, "not_found"},
		{Errorf(ErrBadRequest, "cursor: not a cursor from a previous page"), http.StatusBadRequest, "bad_request"},
		{Errorf(ErrConflict, "the machine is going to sleep"), http.StatusConflict, "conflict"},
		{Errorf(ErrUnavailable, "the agent is %s", "starting"), http.StatusServiceUnavailable, "unavailable"},
	} {
		status, code, msg := classify(tc.err)
		if status != tc.status || code != tc.code || msg != tc.err.Error() {
			t.Errorf("classify(%q) = %d %s %q, want %d %s and the message as written", tc.err, status, code, msg, tc.status, tc.code)
		}
	}
	if got := Errorf(ErrNotFound, "no wake %d", 3).Error(); got != "no wake 3" {
		t.Errorf("message %q, want %q", got, "no wake 3")
	}
}
