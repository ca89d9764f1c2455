package ondemand

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rouse-dev/rouse/wire"
)

// Prefix is the path prefix an http entry point keeps for itself: the
// waiting page's script, style and event stream live under it and are
// never forwarded to the component.
const Prefix = "/.rouse/"

// The paths under Prefix.
const (
	EventsPath = Prefix + "events" // the chain's view, live (Server-Sent Events, event "chain")
	ChainPath  = Prefix + "chain"  // the chain's view now (JSON, wire.Chain)
)

//go:embed page
var pageFS embed.FS

// waitPage is parsed on first use, not at package init: most agents
// never show it.
var waitPage = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("wait.html").Funcs(template.FuncMap{
		"secs":   secs,
		"status": statusLine,
		"title":  heading,
		"up":     componentUp,
		"est":    estimated,
	}).ParseFS(pageFS, "page/wait.html"))
})

// pageCSP lets the waiting page load its own script and style and open its
// event stream, and nothing else.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// ServeHTTP is the http entry point: the Host check, then rouse's own
// paths, then the component — forwarded when its chain is ready, else
// demanded, with the waiting page for a browser and a hold for any other
// client.
func (f *Front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.handlers.Add(1)
	defer f.handlers.Done()
	if !f.hosts.Allowed(r.Host, f.port) {
		writeError(w, http.StatusForbidden, wire.CodeBadHost, fmt.Sprintf("Host %q is not this entry point: use localhost, 127.0.0.1 or [::1]", r.Host))
		return
	}
	if strings.HasPrefix(r.URL.Path, Prefix) {
		f.serveOwn(w, r)
		return
	}
	f.begin()
	defer f.end()
	if f.ready.Load() {
		f.forward(w, r, false)
		return
	}
	if v := f.chains.Chain(f.o.Name); f.readyFor(v) {
		f.forward(w, r, false)
	} else {
		f.notReady(w, r, v)
	}
}

// notReady answers a request that found the chain not ready.
func (f *Front) notReady(w http.ResponseWriter, r *http.Request, entry wire.Chain) {
	if entry.State == wire.ChainFailed && subrequest(r) {
		// The browser's own follow-up (a favicon, an asset, a script's
		// fetch) does not start a failed chain again under the page that
		// says why it failed; loading the page does.
		writeError(w, http.StatusBadGateway, wire.CodeChainFailed, fmt.Sprintf("%s could not start: %s", f.o.Name, failure(entry)))
		return
	}
	f.demand(entry, "http")
	if browser(r) {
		f.servePage(w, r)
		return
	}
	if !f.acquire() {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, wire.CodeUnavailable, fmt.Sprintf("%s is starting and %d clients already wait for it: try again shortly", f.o.Name, f.o.MaxHeld))
		return
	}
	v, out := f.await(r.Context(), entry)
	f.release()
	switch out {
	case outReady:
		f.forward(w, r, true)
	case outFailed:
		writeError(w, http.StatusBadGateway, wire.CodeChainFailed, fmt.Sprintf("%s could not start: %s", f.o.Name, failure(v)))
	case outTimeout:
		f.log.Info("on-demand request held too long", "hold", f.holdFor(v), "state", v.State)
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter(v)))
		writeError(w, http.StatusServiceUnavailable, wire.CodeUnavailable, fmt.Sprintf("%s is not ready after %s (chain %s): try again later", f.o.Name, f.holdFor(v), v.State))
	case outGone:
	}
}

// forward sends r to the upstream. retried marks a request that already
// waited for the chain, so a proxy error does not send it back to wait.
func (f *Front) forward(w http.ResponseWriter, r *http.Request, retried bool) {
	f.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), inboundKey{}, inbound{r, retried})))
}

// inbound is the request as the client sent it, for proxyError (which is
// handed the outgoing copy).
type inbound struct {
	r       *http.Request
	retried bool
}

type inboundKey struct{}

// proxyError answers when the upstream cannot be reached or answers
// nonsense. When the chain stopped meanwhile (an idle stop racing this
// request) and the request can be sent again (no body), it goes the way of
// a request that found the chain not ready.
func (f *Front) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return // the client left, or the Front is stopping
	}
	if in, ok := r.Context().Value(inboundKey{}).(inbound); ok && !in.retried && in.r.Body == http.NoBody {
		if v := f.chains.Chain(f.o.Name); !f.readyFor(v) {
			f.notReady(w, in.r, v)
			return
		}
	}
	f.log.Warn("on-demand upstream unreachable", "upstream", f.o.Upstream, "err", err)
	writeError(w, http.StatusBadGateway, wire.CodeBadGateway, fmt.Sprintf("%s does not answer on %s: %v", f.o.Name, f.o.Upstream, err))
}

// browser reports whether r is a page load by a browser: a GET that
// accepts HTML. Anything else (an API client, an asset, a POST, a
// WebSocket) is held instead of shown the waiting page.
func browser(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.Contains(r.Header.Get("Accept"), "text/html")
}

// subrequest reports whether a browser sent r on its own account, not as a
// page load: it says so in Sec-Fetch-Mode (every current browser sends
// it). A client without Sec-Fetch-* (curl, an API client) is not one.
func subrequest(r *http.Request) bool {
	m := r.Header.Get("Sec-Fetch-Mode")
	return m != "" && m != "navigate"
}

// serveOwn serves the paths under Prefix. They need no token: they show
// only the names and states of this one chain.
func (f *Front) serveOwn(w http.ResponseWriter, r *http.Request) {
	setPageHeaders(w.Header())
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, wire.CodeMethodNotAllowed, r.Method+" is not supported here")
		return
	}
	switch r.URL.Path {
	case EventsPath:
		f.serveEvents(w, r)
	case ChainPath:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(f.chains.Chain(f.o.Name))
	case Prefix + "wait.js", Prefix + "wait.css":
		name := strings.TrimPrefix(r.URL.Path, Prefix)
		b, _ := pageFS.ReadFile("page/" + name)
		if strings.HasSuffix(name, ".js") {
			w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		} else {
			w.Header().Set("Content-Type", "text/css; charset=utf-8")
		}
		_, _ = w.Write(b)
	default:
		writeError(w, http.StatusNotFound, wire.CodeNotFound, r.URL.Path+" is reserved by rouse and does not exist")
	}
}

func setPageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

// servePage answers a browser with the waiting page (503, so nothing
// caches or indexes it as the site). Its script follows EventsPath and
// loads the page again when the chain is ready.
func (f *Front) servePage(w http.ResponseWriter, _ *http.Request) {
	v := f.pageView()
	if v.Name == "" {
		v.Name = f.o.Name
	}
	if v.State == wire.ChainIdle || v.State == "" {
		// The demand has not reached the view yet: its members still
		// carry the last start's elapsed times, which are not this one's.
		v.Components = slices.Clone(v.Components)
		for i := range v.Components {
			v.Components[i].ElapsedMS = 0
		}
	}
	h := w.Header()
	setPageHeaders(h)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Retry-After", strconv.Itoa(retryAfter(v)))
	w.WriteHeader(http.StatusServiceUnavailable)
	if err := waitPage().Execute(w, v); err != nil {
		f.log.Debug("on-demand waiting page not written", "err", err)
	}
}

// serveEvents streams the chain's view: one "chain" event now and one
// after every change, until the chain is ready (the last event), the
// client leaves or the Front stops.
func (f *Front) serveEvents(w http.ResponseWriter, r *http.Request) {
	if !f.acquire() {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, wire.CodeUnavailable, fmt.Sprintf("%d clients already wait for %s", f.o.MaxHeld, f.o.Name))
		return
	}
	defer f.release()
	changed, stop := f.chains.Watch(f.o.Name)
	defer stop()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, "retry: 1000\n\n"); err != nil {
		return
	}
	keep := time.NewTicker(keepAliveEvery)
	defer keep.Stop()
	send := true
	for {
		// A watcher that stops reading is dropped, not waited for.
		_ = rc.SetWriteDeadline(time.Now().Add(sseWriteTimeout))
		if send {
			v := f.pageView()
			b, _ := json.Marshal(v)
			if _, err := fmt.Fprintf(w, "event: chain\ndata: %s\n\n", b); err != nil {
				return
			}
			if err := rc.Flush(); err != nil || v.State == wire.ChainReady {
				return
			}
		}
		select {
		case <-r.Context().Done():
			return
		case <-keep.C:
			send = false
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
		case _, ok := <-changed:
			if !ok {
				return
			}
			send = true
		}
	}
}

// pageView is the chain's view for the waiting page: a ready start whose
// idle stop was just asked for shows as stopping, so the page does not
// load the app again before the stop and the next start.
func (f *Front) pageView() wire.Chain {
	v := f.chains.Chain(f.o.Name)
	if v.State == wire.ChainReady && !f.readyFor(v) {
		v.State = wire.ChainStopping
	}
	return v
}

// writeError writes the JSON error every rouse endpoint uses.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(wire.Error{Error: wire.ErrorBody{Code: code, Message: msg}})
}

// secs shows milliseconds as seconds for the page ("1.5 s", "–" for 0).
func secs(ms int64) string {
	if ms <= 0 {
		return "–"
	}
	return strconv.FormatFloat(float64(ms)/1000, 'f', 1, 64) + " s"
}

// noEstimate is what the page shows for a member with no start on record.
const noEstimate = "no estimate yet"

// estimated is a member's estimate for the page: its learned time, or
// noEstimate on its first start (nothing is guessed). The script keeps
// the same wording.
func estimated(c wire.ChainComponent) string {
	if c.Samples == 0 {
		return noEstimate
	}
	return secs(c.EstimatedMS)
}

// firstStart: no member of the chain has a start on record.
func firstStart(v wire.Chain) bool {
	for _, c := range v.Components {
		if c.Samples > 0 {
			return false
		}
	}
	return len(v.Components) > 0
}

// heading is the page's title line; the script keeps the same wording.
func heading(v wire.Chain) string {
	switch v.State {
	case wire.ChainReady:
		return v.Name + " is ready"
	case wire.ChainFailed:
		return v.Name + " could not start"
	case wire.ChainStopping:
		return v.Name + " is stopping"
	case wire.ChainWaiting:
		return v.Name + " is waiting"
	default:
		return "Starting " + v.Name
	}
}

// statusLine is the page's sentence about the chain; the script keeps the
// same wording.
func statusLine(v wire.Chain) string {
	up := 0
	for _, c := range v.Components {
		if componentUp(c.State) {
			up++
		}
	}
	switch v.State {
	case wire.ChainReady:
		return v.Name + " is ready: opening it…"
	case wire.ChainFailed:
		return v.Name + " could not start: " + failure(v)
	case wire.ChainStopping:
		return v.Name + " is stopping; it starts again right after."
	case wire.ChainStarting:
		if firstStart(v) {
			return fmt.Sprintf("Starting %s: %d of %d ready (first start, %s)…", v.Name, up, len(v.Components), noEstimate)
		}
		return fmt.Sprintf("Starting %s: %d of %d ready…", v.Name, up, len(v.Components))
	case wire.ChainWaiting:
		return v.Reason + "…"
	default:
		return "Waiting for " + v.Name + " to start…"
	}
}
