package api_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPackageDocs fails when a package of ours lacks its doc comment.
func TestPackageDocs(t *testing.T) {
	for _, dir := range []string{".", "apitest", filepath.Join("..", "..", "client")} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var name, doc string
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, e.Name()), nil, parser.ParseComments|parser.PackageClauseOnly)
			if err != nil {
				t.Fatal(err)
			}
			name = f.Name.Name
			if f.Doc != nil {
				doc += f.Doc.Text()
			}
		}
		if name == "" || !strings.HasPrefix(doc, "Package "+name+" ") {
			t.Errorf("package %q in %s has no doc comment starting %q", name, dir, "Package "+name)
		}
	}
}
