package http

import (
	"bytes"
	"testing"
	"text/template"
)

// TestURLTemplateSimpleMatchesTextTemplate checks that a URL whose only
// actions are {{.Since}} and {{.Page}} renders, without text/template,
// exactly what text/template renders, and that every other template is
// left to text/template.
func TestURLTemplateSimpleMatchesTextTemplate(t *testing.T) {
	for _, tc := range []struct {
		url    string
		simple bool
	}{
		{"http://x/a?since={{.Since}}", true},
		{"http://x/a?since={{ .Since }}&page={{.Page}}", true},
		{"http://x/{{.Page}}/{{.Page}}{{.Since}}", true},
		{"http://x/plain", true},
		{"http://x/a}}b?p={{.Page}}}}", true},
		{"http://x/a?since={{- .Since}}", false},
		{"http://x/a?since={{.Since -}}", false},
		{"http://x/a?since={{printf \"%d\" .Since}}", false},
		{"http://x/a?since={{/* c */}}", false},
		{"http://x/a?since={{\t.Since}}", false},
		{"http://x/a?since={{.Since}", false},
	} {
		u, err := parseURLTemplate(tc.url)
		if err != nil {
			if tc.simple {
				t.Errorf("%q: %v", tc.url, err)
			}
			continue
		}
		if got := u.t == nil; got != tc.simple {
			t.Errorf("%q: simple = %v, want %v", tc.url, got, tc.simple)
		}
		want := template.Must(template.New("url").Option("missingkey=error").Parse(tc.url))
		for _, in := range []urlData{{0, 1}, {1700000000, 3}, {-5, 12}} {
			got, err := renderURL(u, in.Since, in.Page)
			var b bytes.Buffer
			if werr := want.Execute(&b, in); (err == nil) != (werr == nil) || got != b.String() {
				t.Errorf("%q with %+v: got %q, %v; text/template gives %q, %v", tc.url, in, got, err, b.String(), werr)
			}
		}
	}
}
