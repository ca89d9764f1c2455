package api

import (
	"bytes"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/rouse-dev/rouse/internal/promreg"
	"github.com/rouse-dev/rouse/wire"
)

// handlerFunc is a handler that returns its error; writeError renders it.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// route is one line of the route table.
type route struct {
	method  string
	pattern string
	h       handlerFunc
}

// routeTable is every route the server answers, one line each. Anything
// else under /api/ is 404; anything else is the dashboard (GET) or 405.
func (s *Server) routeTable() []route {
	return []route{
		{"GET", "/healthz", s.getHealthz},                                    // no token
		{"GET", "/readyz", s.getReadyz},                                      // no token; 200 or 503
		{"GET", "/metrics", s.getMetrics()},                                  // no token; Prometheus text
		{"GET", "/login", s.getLogin},                                        // ?code= → the landing page (the code stays valid)
		{"POST", "/login", s.postLogin},                                      // form code= → 303 to /#session=SECRET
		{"GET", "/api/v1/health", s.getHealth},                               // -
		{"GET", "/api/v1/services", s.getServices},                           // -
		{"GET", "/api/v1/services/{name}", s.getService},                     // name: component
		{"POST", "/api/v1/services/{name}/start", s.postAction("start")},     // name: component; 200 or 202; ?dry_run=true → 200 Plan of its chain
		{"GET", "/api/v1/services/{name}/chain", s.getChain},                 // name: an on-demand component; its chain's view
		{"POST", "/api/v1/services/{name}/stop", s.postAction("stop")},       // name: component
		{"POST", "/api/v1/services/{name}/restart", s.postAction("restart")}, // name: component; 200 or 202
		{"POST", "/api/v1/wake", s.postWake},                                 // ?dry_run=true → 200 Plan, else 202 Wake
		{"GET", "/api/v1/wakes", s.getWakes},                                 // ?limit=1..1000 (20)
		{"GET", "/api/v1/wakes/{id}", s.getWake},                             // id: wake id
		{"GET", "/api/v1/events", s.getEvents},                               // Last-Event-ID or ?last_event_id=; SSE
		{"GET", "/api/v1/trackers/{name}/items", s.getItems},                 // name; ?since= &cursor= &limit=1..1000 (100) &order=newest|oldest
		{"GET", "/api/v1/jobs", s.getJobs},                                   // -
		{"POST", "/api/v1/jobs/{name}/run", s.postRunJob},                    // name: job; 202
		{"GET", "/api/v1/jobs/{name}/runs", s.getJobRuns},                    // name: job; ?limit=1..1000 (20)
		{"POST", "/api/v1/login-codes", s.postLoginCode},                     // token only; {"code","url"}
		{"POST", "/api/v1/logout", s.postLogout},                             // session: ends it; token: ends every session
		{"POST", "/api/v1/event-tickets", s.postEventTicket},                 // {"ticket"}: opens one event stream (?ticket=), 30 s
	}
}

// routes builds the router from the table: one mux pattern per path, and a
// method switch under it so a wrong method is a JSON 405 with Allow.
func (s *Server) routes() http.Handler {
	byPath := map[string]map[string]handlerFunc{}
	var order []string
	for _, rt := range s.routeTable() {
		m, ok := byPath[rt.pattern]
		if !ok {
			m = map[string]handlerFunc{}
			byPath[rt.pattern] = m
			order = append(order, rt.pattern)
		}
		m[rt.method] = rt.h
	}
	mux := http.NewServeMux()
	for _, p := range order {
		mux.Handle(p, s.methods(byPath[p]))
	}
	mux.Handle("/", s.fallback())
	return mux
}

// methods dispatches on the method; HEAD is served by the GET handler.
func (s *Server) methods(m map[string]handlerFunc) http.Handler {
	var allow []string
	for k := range m {
		allow = append(allow, k)
		if k == http.MethodGet {
			allow = append(allow, http.MethodHead)
		}
	}
	sort.Strings(allow)
	allowed := strings.Join(allow, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method := r.Method
		if method == http.MethodHead {
			method = http.MethodGet
		}
		h, ok := m[method]
		if !ok {
			w.Header().Set("Allow", allowed)
			s.writeError(w, r, errf(http.StatusMethodNotAllowed, wire.CodeMethodNotAllowed, "method %s not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allowed))
			return
		}
		if r.Method == http.MethodPost && r.URL.Path != "/login" { // the login form is its own
			if err := checkMutation(r); err != nil {
				s.writeError(w, r, err)
				return
			}
			if err := drainBody(r); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// fallback answers what the table does not: 404 under /api/, the dashboard
// for GET elsewhere, 405 for other methods.
func (s *Server) fallback() http.Handler {
	dash := s.o.Dashboard
	if dash == nil {
		dash = http.HandlerFunc(s.placeholder)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api" || strings.HasPrefix(r.URL.Path, "/api/") {
			s.writeError(w, r, errf(http.StatusNotFound, wire.CodeNotFound, "no such route: %s %s", r.Method, r.URL.Path))
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			s.writeError(w, r, errf(http.StatusMethodNotAllowed, wire.CodeMethodNotAllowed, "method %s not allowed on %s (allowed: GET, HEAD)", r.Method, r.URL.Path))
			return
		}
		dash.ServeHTTP(w, r)
	})
}

// placeholderPage stands in for the dashboard when none is configured.
const placeholderPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rouse</title></head>
<body><h1>rouse</h1><p>The agent is running. The API is under <code>/api/v1/</code>; see <code>/api/v1/health</code>.</p></body></html>
`

func (s *Server) placeholder(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		s.writeError(w, r, errf(http.StatusNotFound, wire.CodeNotFound, "no such page: %s", r.URL.Path))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write([]byte(placeholderPage))
}

// getMetrics serves Options.Metrics and the process metrics in the
// Prometheus text format (version 0.0.4).
func (s *Server) getMetrics() handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var b bytes.Buffer
		if s.o.Metrics != nil {
			s.o.Metrics.WritePrometheus(&b)
		}
		promreg.WriteProcessMetrics(&b)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
		_, _ = w.Write(b.Bytes())
		return nil
	}
}
