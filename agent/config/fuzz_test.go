package config

import (
	"errors"
	"runtime"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, stays within its memory bound
// whatever aliases, merge keys and scalars it is given, never returns both
// a config and an error, and that every error about a key names the line
// it is on. Its corpus is in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add([]byte(fullConfig))
	f.Add(DefaultYAML)
	f.Add([]byte("trackers:\n  - &a {name: a, kind: probe, url: http://x/}\n  - <<: *a\n    name: b\n"))
	f.Add([]byte(laughs(4, 10)))
	f.Add([]byte(merges(6)))
	f.Add([]byte("a: &a " + strings.Repeat("x", 4096) + "\nb: [*a, *a, *a, *a]\nc: {<<: {k: *a}, d: *a}\n"))
	f.Add([]byte("x: &x {<<: [&y {a: 1}, *y], b: *y}\ntrackers: [{<<: *x, name: t, kind: probe}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		c, err := Parse("f.yaml", data, testKinds)
		runtime.ReadMemStats(&after)
		if got := after.TotalAlloc - before.TotalAlloc; got > memBound {
			t.Fatalf("Parse of %d bytes allocated %d MB", len(data), got>>20)
		}
		if (c == nil) == (err == nil) {
			t.Fatalf("Parse returned config %v and error %v", c != nil, err)
		}
		if err == nil {
			if verr := c.Validate(testKinds); verr != nil {
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
