// Package tests holds the end-to-end scenarios that drive the real binary
// (tests/e2e, tests/reliability, tests/bench) and repository-wide checks.
package tests

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestEveryPackageSaysWhatItOwns fails when a package has no doc comment,
// or one that does not start "Package <name> " (a command's may start as
// it likes): the doc comment is where a package says what it owns and why.
// It covers every module in the repository (the walk crosses into
// tests/browser and packaging).
func TestEveryPackageSaysWhatItOwns(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	// documented[dir] says whether a non-test file there has a doc comment
	// as its package's should start.
	documented := map[string]bool{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "dist" || name == "bin" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.PackageClauseOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		dir := filepath.Dir(path)
		ok := false
		if f.Doc != nil {
			text := strings.TrimSpace(f.Doc.Text())
			ok = strings.HasPrefix(text, "Package "+f.Name.Name+" ") || (f.Name.Name == "main" && text != "")
		}
		documented[dir] = documented[dir] || ok
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(documented) < 10 {
		t.Fatalf("found only %d package directories under %s", len(documented), root)
	}
	for dir, ok := range documented {
		if !ok {
			rel, _ := filepath.Rel(root, dir)
			t.Errorf("package in %s has no doc comment starting \"Package <name> \" saying what it owns", rel)
		}
	}
}
