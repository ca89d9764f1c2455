package store

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
)

// TestACleanCloseLogsNoError: "store closed" says err only when there is
// one (it used to end every clean close with err=<nil>).
func TestACleanCloseLogsNoError(t *testing.T) {
	var logs bytes.Buffer
	dir := t.TempDir()
	s, err := Open(context.Background(), filepath.Join(dir, "rouse.db"), Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var line string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `msg="store closed"`) {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("no store closed line in:\n%s", logs.String())
	}
	if strings.Contains(line, "err=") {
		t.Errorf("a clean close logs an error key: %s", line)
	}
}
