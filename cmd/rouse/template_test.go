package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/rouse-dev/rouse/agent/config"
)

// exampleLine matches a commented-out line of YAML in the default config
// (a key or a list item), as opposed to a comment in prose.
var exampleLine = regexp.MustCompile(`^(\s*)# ?((?:- )?[a-z_]+:(?: |$).*|\s+(?:- )?[a-z_]+:(?: |$).*)$`)

// examples splits the default config's commented examples into blocks:
// each starts at a commented top-level key or list item and runs over the
// commented lines below it.
func examples(lines []string) [][]int {
	var blocks [][]int
	var cur []int
	flush := func() {
		if len(cur) > 0 {
			blocks = append(blocks, cur)
			cur = nil
		}
	}
	for i, l := range lines {
		m := exampleLine.FindStringSubmatch(l)
		if m == nil {
			flush()
			continue
		}
		body := m[2]
		if !strings.HasPrefix(body, " ") { // a key or item of its own, not a continuation
			flush()
		}
		cur = append(cur, i)
	}
	flush()
	return blocks
}

func uncomment(l string) string { return exampleLine.ReplaceAllString(l, "$1$2") }

// TestConfigDefaultIsAWorkingTemplate uncomments each example of `rouse
// config default` alone, then all of them together, and runs `rouse config
// check` on the result: each must be valid.
func TestConfigDefaultIsAWorkingTemplate(t *testing.T) {
	out, code := runCLI(t, "config", "default")
	if code != 0 || out != string(config.DefaultYAML) {
		t.Fatalf("config default: exit %d", code)
	}
	lines := strings.Split(out, "\n")
	blocks := examples(lines)
	if len(blocks) < 10 {
		t.Fatalf("found %d examples; the template has more", len(blocks))
	}
	check := func(name string, edit func([]string)) {
		t.Helper()
		ls := append([]string(nil), lines...)
		edit(ls)
		p := filepath.Join(t.TempDir(), "rouse.yaml")
		if err := os.WriteFile(p, []byte(strings.Join(ls, "\n")), 0o600); err != nil {
			t.Fatal(err)
		}
		if msg, code := runCLI(t, "config", "check", p); code != 0 {
			t.Errorf("%s: config check exit %d:\n%s", name, code, msg)
		}
	}
	for _, b := range blocks {
		check("the example at line "+strconv.Itoa(b[0]+1)+" ("+strings.TrimSpace(uncomment(lines[b[0]]))+")", func(ls []string) {
			for _, i := range b {
				ls[i] = uncomment(ls[i])
			}
		})
	}
	check("every example at once", func(ls []string) {
		for _, b := range blocks {
			for _, i := range b {
				ls[i] = uncomment(ls[i])
			}
		}
	})
}
