package store

import (
	"context"
	"path/filepath"
	"testing"
)

func TestSecrets(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "rouse.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.Secret(ctx, "roon", "core-1"); err != nil || v != "" {
		t.Fatalf("missing secret = %q, %v; want empty", v, err)
	}
	if err := s.SetSecret(ctx, "roon", "core-1", "tok-a"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSecret(ctx, "roon", "core-1", "tok-b"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSecret(ctx, "other", "core-1", "tok-o"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if v, _ := s.Secret(ctx, "roon", "core-1"); v != "tok-b" {
		t.Errorf("after reopen secret = %q, want the last one set", v)
	}
	if v, _ := s.Secret(ctx, "other", "core-1"); v != "tok-o" {
		t.Errorf("secrets of two trackers mixed: %q", v)
	}
	if err := s.SetSecret(ctx, "roon", "core-1", ""); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Secret(ctx, "roon", "core-1"); v != "" {
		t.Errorf("deleted secret still reads %q", v)
	}
}
