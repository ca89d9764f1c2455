// Package dashboard owns rouse's web dashboard: one page, its stylesheet,
// its script and its icon, embedded in the binary (no build step: plain
// HTML, CSS and JavaScript). Handler serves them; the REST server mounts it
// at GET / with no credentials (the files hold no data). The page reads the
// API with the session a one-time login URL (`rouse open`) hands it: the
// secret arrives in the URL fragment, stays in the tab's sessionStorage and
// goes out as the X-Rouse-Session header, never as a cookie (a cookie would
// reach every other port of 127.0.0.1). Its event stream opens with a
// one-time ticket, since an EventSource cannot send headers.
//
// The page is only a client of the public API: it reads /api/v1/health,
// /api/v1/wakes and /api/v1/jobs, follows /api/v1/events (Server-Sent
// Events) to change live, asks POST /api/v1/wake?dry_run=true for the
// estimates it shows during a wake, and POSTs actions (restart, stop, start,
// wake now, run a job) as JSON with the page's own Origin, which the server
// requires of session-authenticated mutations. "Log out" ends the session.
//
// Decisions written down here:
//   - The server's Content-Security-Policy allows same-origin scripts and
//     styles only, so the page has no inline script, no <style> element and
//     no style="" attribute; the script changes presentation through classes,
//     the hidden attribute and SVG geometry attributes only. A test checks
//     the page for all three.
//   - The wake chart is two small bar charts over one axis of wakes, "slept
//     for" above and "recovered in" below, each on its own scale: a night's
//     sleep and a one-second recovery share no useful common unit. Every bar
//     has a tooltip, and the same data is in a table for screen readers.
//   - During a wake the page shows each component of the dry-run plan with
//     its live state and its estimate (the median of its past restores, or
//     its deadline's guess when it has no history), plus "restoring n/m" from
//     the wake events; when the wake is done the same panel shows the
//     summary of the last wake.
//   - Only "/", "/index.html" and the files under "/assets/" exist; any other
//     path is a 404, so a mistyped URL does not look like the dashboard.
package dashboard

import (
	"bytes"
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// files is the embedded tree rooted at static/.
var files = mustSub(static, "static")

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	return sub
}

// FS is the embedded dashboard: index.html and assets/.
func FS() fs.FS { return files }

// contentTypes are set explicitly: the system's MIME table may be missing
// or wrong, and nosniff makes the browser strict about script and style
// types.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
}

// Handler serves the dashboard: the page at / (and /index.html), its files
// under /assets/, 404 elsewhere. GET and HEAD only.
func Handler() http.Handler {
	return http.HandlerFunc(serve)
}

func serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := ""
	switch p := r.URL.Path; {
	case p == "/" || p == "/index.html":
		name = "index.html"
	case strings.HasPrefix(p, "/assets/"):
		clean := path.Clean(p)
		if clean != p || strings.Count(clean, "/") != 2 {
			break // no sub-directories, no dot segments
		}
		name = strings.TrimPrefix(clean, "/")
	}
	if name == "" {
		notFound(w)
		return
	}
	b, err := fs.ReadFile(files, name)
	if err != nil {
		notFound(w)
		return
	}
	ct, ok := contentTypes[path.Ext(name)]
	if !ok {
		ct = mime.TypeByExtension(path.Ext(name))
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
}

const notFoundPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rouse: not found</title></head>
<body><h1>Not found</h1><p>There is no such page. The dashboard is at <a href="/">/</a>.</p></body></html>
`

func notFound(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte(notFoundPage))
}
