//go:build !windows && !darwin

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeOpener puts an xdg-open first in PATH that records its argument and
// exits with code.
func fakeOpener(t *testing.T, code string) (record string) {
	t.Helper()
	dir := t.TempDir()
	record = filepath.Join(dir, "opened")
	script := "#!/bin/sh\nprintf '%s' \"$1\" > " + record + "\nexit " + code + "\n"
	if err := os.WriteFile(filepath.Join(dir, "xdg-open"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return record
}

func TestOpen(t *testing.T) {
	addr, data, _ := startAPI(t, nil)
	t.Run("Print only prints a one-time login URL", func(t *testing.T) {
		record := fakeOpener(t, "0")
		out, code := runCLI(t, "open", "--print", "--data", data, "--listen", addr)
		if code != 0 || !strings.HasPrefix(out, "http://"+addr+"/login?code=") {
			t.Errorf("exit %d:\n%s", code, out)
		}
		if _, err := os.Stat(record); err == nil {
			t.Error("--print opened a browser")
		}
	})
	t.Run("Open hands the URL to the desktop's opener", func(t *testing.T) {
		record := fakeOpener(t, "0")
		out, code := runCLI(t, "open", "--data", data, "--listen", addr)
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		b, err := os.ReadFile(record)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(b), "http://"+addr+"/login?code=") {
			t.Errorf("opened %q", b)
		}
	})
	t.Run("A failing opener fails and still prints the URL", func(t *testing.T) {
		fakeOpener(t, "3")
		out, code := runCLI(t, "open", "--data", data, "--listen", addr)
		if code != 1 || !strings.Contains(out, "/login?code=") || !strings.Contains(out, "exited with status 3") {
			t.Errorf("exit %d:\n%s", code, out)
		}
	})
	t.Run("With no agent it says how to start one", func(t *testing.T) {
		out, code := runCLI(t, "open", "--print", "--data", t.TempDir(), "--listen", "127.0.0.1:1")
		if code != 1 || !strings.Contains(out, "rouse run") {
			t.Errorf("exit %d:\n%s", code, out)
		}
	})
}
