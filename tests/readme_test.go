package tests

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// mdLink is a Markdown link's target, and a path in backquotes that looks
// like a sibling checkout ("../shared/DESIGN.md").
var (
	mdLink      = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	quotedOther = regexp.MustCompile("`(\\.\\./[^`]+)`")
)

// TestDocsLinkOnlyToTheRepository: a newcomer's clone has everything the
// README and docs/ point at — no link into a directory beside the
// repository, no link to a file that is not there.
func TestDocsLinkOnlyToTheRepository(t *testing.T) {
	root := ".."
	files := []string{filepath.Join(root, "README.md"), filepath.Join(root, "BENCHMARKS.md")}
	docs, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if len(docs) < 2 {
		t.Fatalf("docs/ has %d pages, want the design and the architecture", len(docs))
	}
	files = append(files, docs...)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		for _, m := range quotedOther.FindAllStringSubmatch(text, -1) {
			t.Errorf("%s names %s, outside the repository", f, m[1])
		}
		for _, m := range mdLink.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.HasPrefix(target, "#") || strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			target, _, _ = strings.Cut(target, "#")
			p := filepath.Join(filepath.Dir(f), target)
			rel, err := filepath.Rel(root, p)
			if err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("%s links to %s, outside the repository", f, m[1])
				continue
			}
			if _, err := os.Stat(p); err != nil {
				t.Errorf("%s links to %s, which is not in the repository", f, m[1])
			}
		}
	}
}

// TestReadmeStartsWithRunAndTest: the first two commands are running the
// agent and running the tests, and how to use another port and data
// directory comes right under them.
func TestReadmeStartsWithRunAndTest(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "    ") && strings.TrimSpace(l) != "" {
			cmds = append(cmds, strings.TrimSpace(l))
		}
		if strings.HasPrefix(l, "---") {
			break
		}
	}
	if len(cmds) < 4 || cmds[0] != "go run ./cmd/rouse run" || cmds[1] != "make test" {
		t.Fatalf("the README's first commands are %q, want the agent, then the tests", cmds)
	}
	for _, c := range cmds[2:] {
		if !strings.Contains(c, "--listen") || !strings.Contains(c, "--data") {
			t.Errorf("right under the first two, %q does not show another port and data directory", c)
		}
	}
}
