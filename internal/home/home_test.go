package home

import (
	"path/filepath"
	"testing"
)

func TestExpand(t *testing.T) {
	t.Setenv("HOME", "/home/alice")
	for _, c := range []struct{ in, want string }{
		{"~", "/home/alice"},
		{"~/x/y", "/home/alice/x/y"},
		{"~bob/x", "~bob/x"},
		{"/abs/~/x", "/abs/~/x"},
		{"rel", "rel"},
		{"", ""},
	} {
		got, err := Expand(c.in)
		if err != nil || got != filepath.FromSlash(c.want) {
			t.Errorf("Expand(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	t.Setenv("HOME", "")
	if _, err := Expand("~/x"); err == nil {
		t.Error("no home directory, but ~/x expanded")
	}
	if got, err := Expand("/x"); err != nil || got != "/x" {
		t.Errorf("a path without ~ needs no home: %q, %v", got, err)
	}
}
