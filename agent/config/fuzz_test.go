package config

import (
	"errors"
	"testing"
)

// FuzzParse checks that Parse never panics, never returns both a config and
// an error, and that every error about a key names the line it is on.
func FuzzParse(f *testing.F) {
	f.Add([]byte(fullConfig))
	f.Add(DefaultYAML)
	f.Add([]byte("trackers:\n  - &a {name: a, kind: probe, url: http://x/}\n  - <<: *a\n    name: b\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.yaml", data)
		if (c == nil) == (err == nil) {
			t.Fatalf("Parse returned config %v and error %v", c != nil, err)
		}
		if err == nil {
			if verr := c.Validate(); verr != nil {
				t.Fatalf("a parsed config fails Validate: %v", verr)
			}
			return
		}
		var es Errors
		if !errors.As(err, &es) || len(es) == 0 {
			t.Fatalf("error is not Errors: %#v", err)
		}
		for _, e := range es {
			if e.Key != "" && e.Line <= 0 {
				t.Errorf("error about key %q has no line: %v", e.Key, e)
			}
			if e.File != "f.yaml" {
				t.Errorf("error names file %q: %v", e.File, e)
			}
			if e.Err == nil {
				t.Errorf("error without a cause: %#v", e)
			}
		}
	})
}
