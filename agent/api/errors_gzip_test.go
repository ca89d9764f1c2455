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
