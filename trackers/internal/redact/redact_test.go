package redact

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestURL(t *testing.T) {
	cases := map[string]string{
		"https://x/a?api_key=abc&user=bob":     "https://x/a?api_key=REDACTED&user=bob",
		"wss://u:pw@x/s?token=t1":              "wss://REDACTED@x/s?token=REDACTED",
		"https://x/a?page=1":                   "https://x/a?page=1",
		"https://x/a?from={{.Since}}&sig=zzzz": "https://x/a?from=%7B%7B.Since%7D%7D&sig=REDACTED",
	}
	for in, want := range cases {
		if got := URL(in); got != want {
			t.Errorf("URL(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestSecrets(t *testing.T) {
	s := Secrets(nil).FromURL("https://x/?api_key=k3y%2Fwith%2Bplus&user=bob").
		FromHeaders(map[string]string{"Authorization": "Bearer tok123", "Accept": "json"})
	text := "GET https://x/?api_key=k3y%2Fwith%2Bplus failed; sent Bearer tok123; raw k3y/with+plus; tok123; json"
	got := s.String(text)
	for _, leak := range []string{"k3y", "tok123"} {
		if strings.Contains(got, leak) {
			t.Fatalf("%q leaked: %s", leak, got)
		}
	}
	if !strings.Contains(got, "json") || !strings.Contains(got, "failed") {
		t.Fatalf("over-redacted: %s", got)
	}
	base := errors.New("inner tok123")
	err := s.Error(fmt.Errorf("outer: %w", base), nil)
	if errors.Is(err, base) || strings.Contains(err.Error(), "tok123") {
		t.Fatalf("chain kept or leaked: %v", err)
	}
	plain := errors.New("nothing secret")
	if s.Error(plain, nil) != plain {
		t.Fatal("an error with no secret was rebuilt")
	}
}
