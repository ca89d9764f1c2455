package api_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rouse-dev/rouse/agent/api"
)

func TestLoadOrCreateToken(t *testing.T) {
	t.Run("FirstStartCreatesAPrivateHexToken", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		tok, err := api.LoadOrCreateToken(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(tok) != 64 || strings.Trim(tok, "0123456789abcdef") != "" {
			t.Fatalf("token %q is not 32 bytes of hex", tok)
		}
		fi, err := os.Stat(filepath.Join(dir, "api-token"))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("token file mode %#o, want 0600", fi.Mode().Perm())
		}
		di, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if di.Mode().Perm() != 0o700 {
			t.Fatalf("data dir mode %#o, want 0700", di.Mode().Perm())
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			t.Fatalf("left behind: %v", entries)
		}
	})
	t.Run("LaterStartsReadTheSameToken", func(t *testing.T) {
		dir := t.TempDir()
		a, err := api.LoadOrCreateToken(dir)
		if err != nil {
			t.Fatal(err)
		}
		b, err := api.LoadOrCreateToken(dir)
		if err != nil || a != b {
			t.Fatalf("second load = %q, %v; want %q", b, err, a)
		}
	})
	t.Run("ConcurrentFirstStartsAgree", func(t *testing.T) {
		dir := t.TempDir()
		toks := make([]string, 8)
		var wg sync.WaitGroup
		for i := range toks {
			wg.Go(func() {
				tok, err := api.LoadOrCreateToken(dir)
				if err != nil {
					t.Error(err)
				}
				toks[i] = tok
			})
		}
		wg.Wait()
		for _, tok := range toks {
			if tok != toks[0] {
				t.Fatalf("tokens differ: %v", toks)
			}
		}
	})
	t.Run("AGroupReadableFileIsRefusedWithAChmodHint", func(t *testing.T) {
		for _, mode := range []os.FileMode{0o640, 0o604, 0o620, 0o666} {
			dir := t.TempDir()
			if _, err := api.LoadOrCreateToken(dir); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "api-token")
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
			_, err := api.LoadOrCreateToken(dir)
			if err == nil || !strings.Contains(err.Error(), "chmod 600 "+path) || !strings.Contains(err.Error(), "is accessible by") {
				t.Fatalf("mode %#o: err = %v", mode, err)
			}
		}
	})
	t.Run("AMalformedFileIsRefused", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "api-token"), []byte("not hex at all\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := api.LoadOrCreateToken(dir); err == nil || !strings.Contains(err.Error(), "malformed") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("ADirectoryInItsPlaceIsRefused", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, "api-token"), 0o700); err != nil {
			t.Fatal(err)
		}
		if _, err := api.LoadOrCreateToken(dir); err == nil {
			t.Fatal("no error")
		}
	})
}
