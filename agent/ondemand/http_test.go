package ondemand

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/rouse-dev/rouse/wire"
)

// app is the component behind the entry point: it says who it is and
// what it was asked.
func app(t *testing.T) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/echo" {
			c, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			for {
				typ, b, err := c.Read(r.Context())
				if err != nil {
					return
				}
				if err := c.Write(r.Context(), typ, append([]byte("echo: "), b...)); err != nil {
					return
				}
			}
		}
		fmt.Fprintf(w, "the app: %s %s host=%s xff=%s", r.Method, r.URL.RequestURI(), r.Host, r.Header.Get("X-Forwarded-For"))
	}))
	t.Cleanup(s.Close)
	return s
}

func upstreamOf(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

func comps() []wire.ChainComponent {
	return []wire.ChainComponent{
		{Name: "db", State: "stopped", Required: true, EstimatedMS: 2000, Samples: 3},
		{Name: "blog", State: "stopped", Required: true, EstimatedMS: 1000, Samples: 3},
		{Name: "sidecar", State: "stopped", EstimatedMS: 500, Samples: 3},
	}
}

func get(t *testing.T, f *Front, path string, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+f.Addr().String()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func errorCode(t *testing.T, r *http.Response) wire.ErrorBody {
	t.Helper()
	var e wire.Error
	if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
		t.Fatalf("error body is not the JSON error: %v", err)
	}
	return e.Error
}

const html = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

func TestHTTP(t *testing.T) {
	defer http.DefaultClient.CloseIdleConnections()
	t.Run("BrowserGetsTheWaitingPageAndDemandsTheChain", func(t *testing.T) {
		up := app(t)
		cs := append(comps(), wire.ChainComponent{Name: `<img src=x onerror=alert(1)>`, State: "stopped"})
		c := newFake("blog", wire.ChainIdle, cs...)
		f := runFront(t, Options{Name: "blog", Upstream: upstreamOf(up)}, c)
		r := get(t, f, "/posts/1", "Accept", html)
		b := body(t, r)
		if r.StatusCode != http.StatusServiceUnavailable || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("got %d %s, want the waiting page (503 text/html)", r.StatusCode, r.Header.Get("Content-Type"))
		}
		if d, _ := c.counts(); d != 1 {
			t.Errorf("%d demands, want 1", d)
		}
		for _, want := range []string{`data-name="db"`, `data-name="sidecar"`, "(optional)", "Starting blog: 0 of 4 ready", `id="rouse-wait"`, "/.rouse/wait.js", "&lt;img src=x onerror=alert(1)&gt;"} {
			if !strings.Contains(b, want) {
				t.Errorf("waiting page lacks %q:\n%s", want, b)
			}
		}
		if strings.Contains(b, "<img") {
			t.Errorf("a component name went into the page unescaped:\n%s", b)
		}
		if r.Header.Get("Retry-After") == "" || !strings.Contains(r.Header.Get("Content-Security-Policy"), "script-src 'self'") || r.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("headers: %v", r.Header)
		}
		for _, asset := range []string{"/.rouse/wait.js", "/.rouse/wait.css"} {
			if r := get(t, f, asset); r.StatusCode != 200 || len(body(t, r)) < 100 {
				t.Errorf("%s: %d", asset, r.StatusCode)
			}
		}
		if d, _ := c.counts(); d != 1 {
			t.Errorf("%d demands after loading the page's assets, want still 1", d)
		}
	})

	t.Run("AnIdleChainsPageShowsNoTimesFromTheLastStart", func(t *testing.T) {
		// The agent's Demand returns before the view changes: the page
		// is rendered from the idle view, whose members still hold the
		// elapsed times of the start before the idle stop.
		up := app(t)
		c := newFake("blog", wire.ChainIdle,
			wire.ChainComponent{Name: "db", State: "idle", Required: true, ElapsedMS: 2689, EstimatedMS: 2689, Samples: 1},
			wire.ChainComponent{Name: "app", State: "idle", Required: true, ElapsedMS: 3107, EstimatedMS: 417, Samples: 1})
		c.onDemand = func(*fakeChains) {}
		f := runFront(t, Options{Name: "blog", Upstream: upstreamOf(up)}, c)
		b := body(t, get(t, f, "/", "Accept", html))
		if strings.Contains(b, "3.1 s") || strings.Contains(b, `value="3107"`) {
			t.Errorf("the page shows the last start's elapsed times:\n%s", b)
		}
		for _, want := range []string{`<td class="elapsed">–</td><td class="estimated">2.7 s</td>`, `<td class="estimated">0.4 s</td>`} {
			if !strings.Contains(b, want) {
				t.Errorf("waiting page lacks %q:\n%s", want, b)
			}
		}
	})

	t.Run("AFirstStartShowsNoEstimate", func(t *testing.T) {
		// No member has a start on record: the page invents no time; a
		// member with one (db, from wakes) shows its own.
		up := app(t)
		c := newFake("blog", wire.ChainStarting,
			wire.ChainComponent{Name: "db", State: "starting", Required: true, ElapsedMS: 300},
			wire.ChainComponent{Name: "blog", State: "waiting", Required: true, WaitingFor: "db"})
		c.onDemand = func(*fakeChains) {}
		f := runFront(t, Options{Name: "blog", Upstream: upstreamOf(up)}, c)
		r := get(t, f, "/", "Accept", html)
		b := body(t, r)
		for _, want := range []string{
			"Starting blog: 0 of 2 ready (first start, no estimate yet)…",
			`<td class="estimated">no estimate yet</td><td><progress></progress></td></tr>`,
		} {
			if !strings.Contains(b, want) {
				t.Errorf("waiting page lacks %q:\n%s", want, b)
			}
		}
		if strings.Contains(b, "1.0 s") || strings.Contains(b, "max=") {
			t.Errorf("the page shows an estimate nobody measured:\n%s", b)
		}
		if ra := r.Header.Get("Retry-After"); ra != "5" {
			t.Errorf("Retry-After %q, want 5 (nothing known)", ra)
		}
		c.update(func(v *wire.Chain) { v.Components[0].EstimatedMS, v.Components[0].Samples = 2689, 2 })
		b = body(t, get(t, f, "/", "Accept", html))
		for _, want := range []string{
			"Starting blog: 0 of 2 ready…",
			`<td class="estimated">2.7 s</td><td><progress max="2689" value="300"></progress>`,
			`<td class="estimated">no estimate yet</td>`,
		} {
			if !strings.Contains(b, want) {
				t.Errorf("with db's history, the page lacks %q:\n%s", want, b)
			}
		}
	})

	t.Run("AWaitingChainsPageSaysWhatItWaitsFor", func(t *testing.T) {
		up := app(t)
		c := newFake("blog", wire.ChainWaiting,
			wire.ChainComponent{Name: "db", State: "unhealthy", Required: true, Error: "health check failed 3 times in a row: refused"},
			wire.ChainComponent{Name: "blog", State: "waiting", Required: true, WaitingFor: "db"})
		c.view.Reason = "blog is waiting for db, which is unhealthy (health check failed 3 times in a row: refused)"
		c.onDemand = func(*fakeChains) {}
		f := runFront(t, Options{Name: "blog", Upstream: upstreamOf(up)}, c)
		b := body(t, get(t, f, "/", "Accept", html))
		for _, want := range []string{
			`<h1 id="title">blog is waiting</h1>`,
			`>blog is waiting for db, which is unhealthy (health check failed 3 times in a row: refused)…</p>`,
			`<tr data-name="blog" data-state="waiting"><td>blog</td><td class="state">waiting for db</td>`,
			`<td class="state">unhealthy</td>`,
		} {
			if !strings.Contains(b, want) {
				t.Errorf("waiting page lacks %q:\n%s", want, b)
			}
		}
	})

	t.Run("EventsFollowTheChainUntilReady", func(t *testing.T) {
		up := app(t)
		c := newFake("blog", wire.ChainStarting, comps()...)
		f := runFront(t, Options{Name: "blog", Upstream: upstreamOf(up)}, c)
		r := get(t, f, EventsPath)
		if r.StatusCode != 200 || r.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("got %d %s", r.StatusCode, r.Header.Get("Content-Type"))
		}
		rd := bufio.NewReader(r.Body)
		next := func() wire.Chain {
			t.Helper()
			for {
				line, err := rd.ReadString('\n')
				if err != nil {
					t.Fatalf("stream ended: %v", err)
				}
				if d, ok := strings.CutPrefix(line, "data: "); ok {
					var v wire.Chain
					if err := json.Unmarshal([]byte(d), &v); err != nil {
						t.Fatal(err)
					}
					return v
				}
			}
		}
		if v := next(); v.State != wire.ChainStarting || v.Components[0].State != "stopped" {
			t.Fatalf("first event %+v", v)
		}
		c.setComponent("db", "ready", "")
		if v := next(); v.Components[0].State != "ready" {
			t.Fatalf("after db is ready: %+v", v)
		}
		c.setComponent("blog", "ready", "")
		c.setState(wire.ChainReady, "")
		var v wire.Chain
		for v.State != wire.ChainReady { // coalesced: the blog-ready view may be skipped
			v = next()
		}
		if rest, err := io.ReadAll(rd); err != nil || strings.Contains(string(rest), "data:") {
			t.Errorf("after ready the stream goes on: %q %v", rest, err)
		}
		c.waitWatchesExactly(t, c.base, true) // the stream's watch ended
		if d, _ := c.counts(); d != 0 {
			t.Errorf("the event stream demanded the chain %d times", d)
		}
	})

	t.Run("ClientIsHeldThenProxied", func(t *testing.T) {
		up := app(t)
		c := newFake("blog", wire.ChainIdle, comps()...)
		f := runFront(t, Options{Name: "blog", Upstream: upstreamOf(up)}, c)
		got := make(chan string, 1)
		go func() {
			resp, err := http.Get("http://" + f.Addr().String() + "/api/x?y=1")
			if err != nil {
				got <- err.Error()
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			got <- fmt.Sprint(resp.StatusCode, " ", string(b))
		}()
		c.waitWatches(t, 1)
		select {
		case g := <-got:
			t.Fatalf("answered before the chain was ready: %s", g)
		default:
		}
		c.setState(wire.ChainReady, "")
		g := <-got
		if want := "200 the app: GET /api/x?y=1 host=" + f.Addr().String() + " xff=127.0.0.1"; g != want {
			t.Errorf("got %q, want %q", g, want)
		}
		if r := get(t, f, "/again", "Accept", html); r.StatusCode != 200 || !strings.Contains(body(t, r), "the app: GET /again") {
			t.Errorf("a browser once ready does not reach the app: %d", r.StatusCode)
		}
	})

	t.Run("FailureIsAnsweredAtOnce", func(t *testing.T) {
		up := app(t)
		c := newFake("blog", wire.ChainIdle, comps()...)
		f := runFront(t, Options{Name: "blog", Upstream: upstreamOf(up)}, c)
		got := make(chan *http.Response, 1)
		go func() {
			resp, err := http.Get("http://" + f.Addr().String() + "/")
			if err != nil {
				t.Error(err)
			}
			got <- resp
		}()
		c.waitWatches(t, 1)
		c.setComponent("db", "failed", "exited with status 1")
		c.setState(wire.ChainFailed, "db: exited with status 1")
		r := <-got
		if r == nil {
			return
		}
		defer r.Body.Close()
		e := errorCode(t, r)
		if r.StatusCode != http.StatusBadGateway || e.Code != wire.CodeChainFailed || !strings.Contains(e.Message, "db: exited with status 1") {
			t.Errorf("got %d %+v", r.StatusCode, e)
		}
		// The page says which dependency failed and why.
		p := get(t, f, "/", "Accept", html)
		if b := body(t, p); !strings.Contains(b, "db: exited with status 1") {
			t.Errorf("the page does not say why:\n%s", b)
		}
	})

	t.Run("AFailedChainIsTriedAgainByTheNextClient", func(t *testing.T) {
		up := app(t)
		c := newFake("blog", wire.ChainFailed, comps()...)
		old := time.Now().Add(-time.Minute)
		c.view.StartedAt, c.view.Reason = &old, "db: exited with status 1"
		// This agent says "starting" only a moment after Demand returns:
		// the old failure must not be taken for this start's.
		c.onDemand = func(c *fakeChains) {
			go func() {
				time.Sleep(20 * time.Millisecond)
				now := time.Now()
				c.update(func(v *wire.Chain) { v.State, v.StartedAt, v.Reason = wire.ChainStarting, &now, "" })
				time.Sleep(20 * time.Millisecond)
				c.setState(wire.ChainReady, "")
			}()
		}
		f := runFront(t, Options{Name: "blog", Upstream: upstreamOf(up)}, c)
		r := get(t, f, "/")
		if b := body(t, r); r.StatusCode != 200 || !strings.HasPrefix(b, "the app") {
			t.Errorf("got %d %q, want the app after a new start", r.StatusCode, b)
		}
	})

	t.Run("ClientsArrivingTogetherDemandOnce", func(t *testing.T) {
		up := app(t)
		c := newFake("blog", wire.ChainIdle, comps()...)
		release := make(chan struct{})
		// This agent's view says starting only a while after Demand.
		c.onDemand = func(c *fakeChains) {
			go func() {
				<-release
				now := time.Now()
				c.update(func(v *wire.Chain) { v.State, v.StartedAt = wire.ChainStarting, &now })
				c.setState(wire.ChainReady, "")
			}()
		}
		f := runFront(t, Options{Name: "blog", Upstream: upstreamOf(up)}, c)
		const n = 8
		codes := make(chan int, n)
		for range n {
			go func() {
				resp, err := http.Get("http://" + f.Addr().String() + "/")
				if err != nil {
					codes <- 0
					return
				}
				resp.Body.Close()
				codes <- resp.StatusCode
			}()
		}
		c.waitWatches(t, n)
		close(release)
		for range n {
			if code := <-codes; code != 200 {
				t.Errorf("a client got %d", code)
			}
		}
		if d, _ := c.counts(); d != 1 {
			t.Errorf("%d demands from %d clients arriving together, want 1", d, n)
		}
	})

	t.Run("ADemandSwallowedByAStopIsMadeAgain", func(t *testing.T) {
		up := app(t)
		c := newFake("blog", wire.ChainStopping, comps()...)
		c.onDemand = func(c *fakeChains) {
			c.mu.Lock()
			first := c.demands == 1
			c.mu.Unlock()
			if !first {
				c.setState(wire.ChainReady, "")
			}
		}
		f := runFront(t, Options{Name: "blog", Upstream: upstreamOf(up)}, c)
		got := make(chan int, 1)
		go func() {
			resp, err := http.Get("http://" + f.Addr().String() + "/")
			if err != nil {
				got <- 0
				return
			}
			resp.Body.Close()
			got <- resp.StatusCode
		}()
		c.waitWatches(t, 1)
		c.setState(wire.ChainIdle, "idle for 30m0s") // the stop ends; the first demand was lost
		if code := <-got; code != 200 {
			t.Errorf("got %d, want the app", code)
		}
		if d, _ := c.counts(); d != 2 {
			t.Errorf("%d demands, want 2", d)
		}
	})

	t.Run("ABrowsersSubrequestDoesNotRetryAFailedChain", func(t *testing.T) {
		up := app(t)
		c := newFake("blog", wire.ChainFailed, comps()...)
		c.view.Reason = "db: exited with status 1"
		f := runFront(t, Options{Name: "blog", Upstream: upstreamOf(up)}, c)
		r := get(t, f, "/favicon.ico", "Accept", "image/avif,image/webp,*/*", "Sec-Fetch-Mode", "no-cors", "Sec-Fetch-Dest", "image")
		if e := errorCode(t, r); r.StatusCode != http.StatusBadGateway || e.Code != wire.CodeChainFailed || !strings.Contains(e.Message, "db: exited") {
			t.Errorf("favicon under a failed chain: %d %+v", r.StatusCode, e)
		}
		if d, _ := c.counts(); d != 0 {
			t.Errorf("the favicon demanded the failed chain %d times", d)
		}
		r = get(t, f, "/", "Accept", html, "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document")
		if r.StatusCode != 503 {
			t.Errorf("loading the page: %d, want the waiting page", r.StatusCode)
		}
		if d, _ := c.counts(); d != 1 {
			t.Errorf("loading the page demanded %d times, want 1 (try again)", d)
		}
	})

	t.Run("ForeignHostIsRefused", func(t *testing.T) {
		up := app(t)
		c := newFake("blog", wire.ChainIdle, comps()...)
		f := runFront(t, Options{Name: "blog", Upstream: upstreamOf(up)}, c)
		_, port, _ := net.SplitHostPort(f.Addr().String())
		for _, path := range []string{"/", EventsPath, ChainPath, "/.rouse/wait.js"} {
			for _, host := range []string{"evil.example:" + port, "attacker.localhost.evil.example", "127.0.0.1:1"} {
				r := get(t, f, path, "Host", host, "Accept", html)
				if e := errorCode(t, r); r.StatusCode != http.StatusForbidden || e.Code != wire.CodeBadHost {
					t.Errorf("%s Host %s: got %d %+v, want 403 bad_host", path, host, r.StatusCode, e)
				}
			}
		}
		if d, _ := c.counts(); d != 0 {
			t.Errorf("a refused request demanded the chain %d times", d)
		}
		if r := get(t, f, ChainPath, "Host", "localhost:"+port); r.StatusCode != 200 {
			t.Errorf("localhost:%s refused: %d", port, r.StatusCode)
		}
	})

	t.Run("TooManyWaitingGet503AtOnce", func(t *testing.T) {
		up := app(t)
		c := newFake("blog", wire.ChainIdle, comps()...)
		f := runFront(t, Options{Name: "blog", Upstream: upstreamOf(up), MaxHeld: 1}, c)
		ctx, cancel := context.WithCancel(t.Context())
		held := make(chan struct{})
		go func() {
			defer close(held)
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+f.Addr().String()+"/", nil)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
		c.waitWatches(t, 1)
		r := get(t, f, "/")
		if e := errorCode(t, r); r.StatusCode != 503 || e.Code != wire.CodeUnavailable || r.Header.Get("Retry-After") == "" {
			t.Errorf("second waiter: %d %+v Retry-After=%q", r.StatusCode, e, r.Header.Get("Retry-After"))
		}
		r = get(t, f, EventsPath)
		if r.StatusCode != 503 {
			t.Errorf("an event stream beyond the cap: %d", r.StatusCode)
		}
		cancel()
		<-held
	})

	t.Run("WebSocketThroughTheProxy", func(t *testing.T) {
		up := app(t)
		c := newFake("blog", wire.ChainIdle, comps()...)
		f := runFront(t, Options{Name: "blog", Upstream: upstreamOf(up)}, c)
		go func() { c.waitWatches(t, 1); c.setState(wire.ChainReady, "") }()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		ws, _, err := websocket.Dial(ctx, "ws://"+f.Addr().String()+"/echo", nil) // held, then upgraded
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		for _, msg := range []string{"hello", strings.Repeat("x", 30000)} {
			if err := ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			_, b, err := ws.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != "echo: "+msg {
				t.Errorf("echo of %d bytes: got %d bytes", len(msg), len(b))
			}
		}
		if err := ws.Close(websocket.StatusNormalClosure, ""); err != nil {
			t.Error(err)
		}
	})

	t.Run("AnOpenWebSocketEndsWithTheFront", func(t *testing.T) {
		up := app(t)
		c := newFake("blog", wire.ChainReady, comps()...)
		o := Options{Name: "blog", Listen: "127.0.0.1:0", Upstream: upstreamOf(up)}
		f, err := New(o, c, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Listen(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- f.Run(ctx) }()
		ws, _, err := websocket.Dial(t.Context(), "ws://"+f.Addr().String()+"/echo", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		// a waiting page's event stream is open too
		sse := get(t, f, EventsPath)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if _, _, err := ws.Read(t.Context()); err == nil {
			t.Error("the WebSocket is still open after Run returned")
		}
		if _, err := io.ReadAll(sse.Body); err != nil {
			t.Logf("event stream: %v", err)
		}
	})

	t.Run("UpstreamDownWhileReadyIs502", func(t *testing.T) {
		up := app(t)
		addr := upstreamOf(up)
		up.Close()
		c := newFake("blog", wire.ChainReady, comps()...)
		f := runFront(t, Options{Name: "blog", Upstream: addr}, c)
		r := get(t, f, "/")
		if e := errorCode(t, r); r.StatusCode != http.StatusBadGateway || e.Code != wire.CodeBadGateway {
			t.Errorf("got %d %+v", r.StatusCode, e)
		}
	})

	t.Run("ChainStoppedUnderARequestSendsTheBrowserToThePage", func(t *testing.T) {
		up := app(t)
		addr := upstreamOf(up)
		up.Close()
		c := newFake("blog", wire.ChainReady, comps()...)
		// ready when the request arrives, stopping when the proxy fails
		c.chainHook = func(n int, v wire.Chain) wire.Chain {
			if n > 1 {
				v.State = wire.ChainStopping
			}
			return v
		}
		f := runFront(t, Options{Name: "blog", Upstream: addr}, c)
		r := get(t, f, "/", "Accept", html)
		if b := body(t, r); r.StatusCode != 503 || !strings.Contains(b, `id="rouse-wait"`) {
			t.Errorf("got %d, want the waiting page:\n%s", r.StatusCode, b)
		}
		if d, _ := c.counts(); d != 1 {
			t.Errorf("%d demands, want 1", d)
		}
	})
}

// TestHTTPHoldRunsOut runs the Front over in-memory pipes in a synctest
// bubble: the hold is the real five minutes, in fake time.
func TestHTTPHoldRunsOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newFake("blog", wire.ChainIdle, comps()...)
		c.onDemand = func(c *fakeChains) {
			c.update(func(v *wire.Chain) {
				v.State = wire.ChainStarting
				v.Components[0].State, v.Components[0].ElapsedMS = "starting", 500 // 1.5 s left of db's estimate
			})
		}
		_, ln, stop := pipeFront(t, Options{Name: "blog", Upstream: "127.0.0.1:9", Hold: 5 * time.Minute}, c, func(net.Conn) {})
		defer stop()
		tr := &http.Transport{DialContext: ln.Dial}
		defer tr.CloseIdleConnections()
		start := time.Now()
		resp, err := (&http.Client{Transport: tr}).Get("http://127.0.0.1:8080/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if waited := time.Since(start); waited != 5*time.Minute {
			t.Errorf("held %s, want the hold, 5m", waited)
		}
		if e := errorCode(t, resp); resp.StatusCode != 503 || e.Code != wire.CodeUnavailable || !strings.Contains(e.Message, "not ready after 5m0s") {
			t.Errorf("got %d %+v", resp.StatusCode, e)
		}
		if ra := resp.Header.Get("Retry-After"); ra != "2" {
			t.Errorf("Retry-After %q, want 2 (db's 1.5 s left, rounded up)", ra)
		}
	})
}
