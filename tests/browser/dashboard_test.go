package browser_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rouse-dev/rouse/agent"
	"github.com/rouse-dev/rouse/agent/config"
	"github.com/rouse-dev/rouse/agent/dashboard"
	"github.com/rouse-dev/rouse/client"
	"github.com/rouse-dev/rouse/trackers"
	exectracker "github.com/rouse-dev/rouse/trackers/exec"
)

// guard bounds every wait of the browser test. It only catches a hang; it
// is never a speed expectation.
const guard = 60 * time.Second

const browserConfig = `
deadlines: {tracker: 20s, scheduler: 20s, wake: 1m}
heartbeat: {initial: 1s, max: 5s}
trackers:
  - name: tunnel
    kind: exec
    command: [sh, -c, "sleep 1000"]
    ready_after: 1500ms
    restart_on_wake: true
  - name: syncd
    kind: exec
    command: [sh, -c, "sleep 1000"]
    ready_after: 1500ms
    restart_on_wake: true
    depends_on: [tunnel]
  - name: vpn
    kind: exec
    command: [sh, -c, "sleep 1000"]
    ready_after: 500ms
jobs:
  - name: nightly-export
    schedule: "0 3 * * *"
    command: [sh, -c, "echo exported"]
    misfire: coalesce
    grace: 12h
`

// chromiumPath finds the browser: $ROUSE_CHROMIUM, else chromium in PATH.
// Its absence fails the test: scripts/test-deps.sh installs it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("ROUSE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found: install it (scripts/test-deps.sh does) or set ROUSE_CHROMIUM")
	return ""
}

// artifactDir is where screenshots go: $ROUSE_TEST_ARTIFACTS, else a temp dir.
func artifactDir(t *testing.T) string {
	if d := os.Getenv("ROUSE_TEST_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// runAgent runs the real agent in-process on a free loopback port and
// returns a client of it; the agent stops when the test ends.
func runAgent(t *testing.T) *client.Client {
	t.Helper()
	return runAgentWith(t, browserConfig)
}

// runAgentWith is runAgent on the config yaml (exec components only).
func runAgentWith(t *testing.T, yaml string) *client.Client {
	t.Helper()
	kinds := trackers.NewKinds(exectracker.Kind) // the only kind the browser configs use
	cfg, err := config.Parse("browser.yaml", []byte(yaml), kinds)
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	if err := os.Chmod(data, 0o700); err != nil { // the agent refuses a data directory others can read
		t.Fatal(err)
	}
	addr := freeAddr(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	a, err := agent.New(agent.Options{
		Config: cfg, Kinds: kinds, DataDir: data, Listen: addr, Logger: logger, Version: "browser-test",
		Power: false, Network: false, Dashboard: dashboard.Handler(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("agent: %v", err)
			}
		case <-time.After(guard):
			t.Error("agent did not stop")
		}
	})
	var c *client.Client
	waitFor(t, "the agent to answer", func() (bool, string) {
		select {
		case err := <-done:
			t.Fatalf("the agent stopped: %v", err)
		default:
		}
		if c == nil {
			cc, err := client.FromEnv(addr, data)
			if err != nil {
				return false, err.Error()
			}
			c = cc
		}
		if err := c.Alive(ctx); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	t.Cleanup(c.Close)
	return c
}

// waitFor polls cond every 100 ms until it holds or the guard passes.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(guard)
	last := ""
	for time.Now().Before(deadline) {
		ok, why := cond()
		if ok {
			return
		}
		last = why
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s (last: %s)", what, last)
}

func allReady(c *client.Client) (bool, string) {
	ss, err := c.Services(context.Background())
	if err != nil {
		return false, err.Error()
	}
	var not []string
	for _, s := range ss {
		if s.State != "ready" {
			not = append(not, s.Name+"="+s.State)
		}
	}
	return len(not) == 0, strings.Join(not, ", ")
}

// pageErrors collects what the browser reports as errors: exceptions,
// console.error and log entries (CSP violations are reported there).
type pageErrors struct {
	mu   sync.Mutex
	errs []string
}

func (p *pageErrors) add(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.errs = append(p.errs, s)
}

func (p *pageErrors) list() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.errs)
}

// observeJS records, in window.__seen, every "name:state" a component row
// shows and every heading the wake panel shows, as they appear.
const observeJS = `(() => {
  window.__seen = [];
  const note = () => {
    for (const tr of document.querySelectorAll('#components tbody tr')) {
      const k = tr.dataset.name + ':' + tr.dataset.state;
      if (window.__seen[window.__seen.length - 1] !== k && !window.__seen.slice(-6).includes(k)) window.__seen.push(k);
    }
    const h = 'wake:' + document.querySelector('#wake-h').textContent;
    if (!window.__seen.includes(h)) window.__seen.push(h);
    const r = (document.querySelector('#summary').textContent.match(/^Reconnecting [^·]*…/) || [])[0];
    if (r && !window.__seen.includes('summary:' + r)) window.__seen.push('summary:' + r);
  };
  new MutationObserver(note).observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true});
  note();
  return true;
})()`

func TestDashboardInChromium(t *testing.T) {
	bin := chromiumPath(t)
	c := runAgent(t)
	waitFor(t, "every component ready", func() (bool, string) { return allReady(c) })

	// A first wake, so the history and the estimates have something.
	if _, err := c.Wake(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first wake to finish", func() (bool, string) {
		ws, err := c.Wakes(context.Background(), 0)
		if err != nil || len(ws) == 0 || !ws[0].Done {
			return false, fmt.Sprint(len(ws), err)
		}
		return allReady(c)
	})

	ctx, perrs := newBrowser(t, bin, 1280, 900)

	login, err := c.LoginCode(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Run("Logging in through the one-time URL opens the dashboard", func(t *testing.T) {
		if err := chromedp.Do(ctx,
			chromedp.Navigate(login.URL),
			chromedp.Click(chromedp.CSS(`#login`)), // the landing page's button uses the code
			chromedp.WaitVisible(chromedp.CSS(`#components tbody tr[data-name="vpn"]`)),
		); err != nil {
			t.Fatal(err)
		}
		loc, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(loc, "/") || strings.Contains(loc, "code=") || strings.Contains(loc, "session=") {
			t.Errorf("after login the browser is at %q, want the dashboard at /", loc)
		}
	})

	evalJS := func(js string, v any) error {
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](js))
		if err != nil {
			return err
		}
		return json.Unmarshal(raw, v)
	}
	pageStates := func() (map[string]string, error) {
		var m map[string]string
		err := evalJS(`Object.fromEntries([...document.querySelectorAll('#components tbody tr')].map(tr => [tr.dataset.name, tr.querySelector('.badge').textContent]))`, &m)
		return m, err
	}

	t.Run("The page shows every component with its state", func(t *testing.T) {
		ss, err := c.Services(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the page to show the API's components and states", func() (bool, string) {
			m, err := pageStates()
			if err != nil {
				return false, err.Error()
			}
			for _, s := range ss {
				if m[s.Name] != strings.ReplaceAll(s.State, "_", " ") {
					return false, fmt.Sprintf("page %v, API %s=%s", m, s.Name, s.State)
				}
			}
			return len(m) == len(ss), fmt.Sprint(m)
		})
		var live string
		waitFor(t, "the event stream to be live", func() (bool, string) {
			err := evalJS(`document.querySelector('#conn').dataset.live`, &live)
			return err == nil && live == "yes", live
		})
		var jobs []string
		if err := evalJS(`[...document.querySelectorAll('#jobs tbody tr')].map(tr => tr.dataset.name)`, &jobs); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(jobs, "nightly-export") {
			t.Errorf("jobs on the page: %v, want nightly-export", jobs)
		}
	})

	t.Run("A wake changes the page live", func(t *testing.T) {
		var cols int
		if err := evalJS(`document.querySelectorAll('#chart .wake-col').length`, &cols); err != nil {
			t.Fatal(err)
		}
		var ok bool
		if err := evalJS(observeJS, &ok); err != nil {
			t.Fatal(err)
		}
		w, err := c.Wake(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		// Keep a picture of the waiting page while the restore is under way
		// (an artifact, not an assertion: the restore may beat the poll).
		for range 50 {
			var h string
			if err := evalJS(`document.querySelector('#wake-h').textContent`, &h); err != nil || h == "Recovering" {
				if b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
					p := filepath.Join(artifactDir(t), "dashboard-waking.png")
					if os.WriteFile(p, b, 0o644) == nil {
						t.Logf("screenshot: %s", p)
					}
				}
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		waitFor(t, "the wake to finish", func() (bool, string) {
			got, err := c.WakeByID(context.Background(), w.ID)
			return err == nil && got.Done, fmt.Sprint(err)
		})
		var seen []string
		waitFor(t, "the page to show the restore and its end", func() (bool, string) {
			var n int
			if err := evalJS(`window.__seen`, &seen); err != nil {
				return false, err.Error()
			}
			if err := evalJS(`document.querySelectorAll('#chart .wake-col').length`, &n); err != nil {
				return false, err.Error()
			}
			m, _ := pageStates()
			want := []string{"tunnel:starting", "tunnel:ready", "syncd:ready", "wake:Recovering", "wake:Last wake", "summary:Reconnecting tunnel…"}
			for _, k := range want {
				if !slices.Contains(seen, k) {
					return false, fmt.Sprintf("seen %v, missing %s", seen, k)
				}
			}
			if i, j := slices.Index(seen, "tunnel:starting"), lastIndex(seen, "tunnel:ready"); i > j {
				return false, fmt.Sprintf("seen %v: tunnel not ready after starting", seen)
			}
			if n != cols+1 {
				return false, fmt.Sprintf("chart has %d wakes, want %d", n, cols+1)
			}
			return m["tunnel"] == "ready" && m["syncd"] == "ready", fmt.Sprint(m)
		})
		t.Logf("the page showed, in order: %v", seen)
		var text string
		if err := evalJS(`document.querySelector('#wake-text').textContent`, &text); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(text, "recovered in") {
			t.Errorf("wake panel after the wake: %q, want the summary", text)
		}
	})

	t.Run("Clicking restart restarts the component", func(t *testing.T) {
		before, err := c.Service(context.Background(), "vpn")
		if err != nil {
			t.Fatal(err)
		}
		if before.StartedAt == nil {
			t.Fatalf("vpn has no ready_at before the restart: %+v", before)
		}
		var ok bool
		if err := evalJS(observeJS, &ok); err != nil {
			t.Fatal(err)
		}
		clicked := time.Now()
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[data-action="restart"][data-name="vpn"]`))); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "vpn to be ready again after a restart (per the API)", func() (bool, string) {
			s, err := c.Service(context.Background(), "vpn")
			if err != nil {
				return false, err.Error()
			}
			return s.State == "ready" && s.StartedAt != nil && s.StartedAt.After(*before.StartedAt), fmt.Sprintf("%s ready_at %v", s.State, s.StartedAt)
		})
		var seen []string
		var notice string
		waitFor(t, "the page to show the restart", func() (bool, string) {
			if err := evalJS(`window.__seen`, &seen); err != nil {
				return false, err.Error()
			}
			_ = evalJS(`document.querySelector('#notice').textContent`, &notice)
			m, _ := pageStates()
			return slices.Contains(seen, "vpn:starting") && m["vpn"] == "ready" && strings.Contains(notice, "vpn: started"),
				fmt.Sprintf("seen %v, notice %q", seen, notice)
		})
		t.Logf("restart clicked %s before the page showed vpn ready again", time.Since(clicked).Round(time.Millisecond))
	})

	t.Run("Screenshots are kept as artifacts", func(t *testing.T) {
		dir := artifactDir(t)
		wide, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(ctx,
			chromedp.EmulateViewport(420, 900),
			chromedp.Sleep(200*time.Millisecond), // one layout pass; not a timing assertion
		); err != nil {
			t.Fatal(err)
		}
		narrow, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		for name, b := range map[string][]byte{"dashboard-1280.png": wide, "dashboard-420.png": narrow} {
			if len(b) < 5000 {
				t.Errorf("%s is %d bytes: an empty page?", name, len(b))
			}
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("screenshot: %s", p)
		}
	})

	if errs := perrs.list(); len(errs) > 0 {
		t.Errorf("the browser reported errors (CSP violations, exceptions):\n%s", strings.Join(errs, "\n"))
	}
}

// browserOptions are the flags every test's Chromium runs with (headless,
// a fresh profile, none of its own network traffic), plus extra.
func browserOptions(t *testing.T, bin string, extra ...chromedp.ExecAllocatorOption) []chromedp.ExecAllocatorOption {
	return append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("no-proxy-server", true),
	}, extra...)
}

// newBrowser starts a headless Chromium with a w×h window and returns its
// context (bounded by 3 guards) and the page errors it reports: exceptions,
// console errors and warnings, and browser log errors (CSP violations are
// reported there). Everything stops when the test ends.
func newBrowser(t *testing.T, bin string, w, h int) (context.Context, *pageErrors) {
	t.Helper()
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), browserOptions(t, bin, chromedp.WindowSize(w, h))...)
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	ctx, cancel := context.WithTimeout(bctx, 3*guard)
	// Subscribe to the console before the first page loads.
	perrs := &pageErrors{}
	messages := chromedp.Console(ctx)
	var readers sync.WaitGroup
	readers.Go(func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException || m.Type == chromedp.ConsoleWarning {
				perrs.add(fmt.Sprintf("%s: %s (%s:%d)", m.Type, m.Text, m.URL, m.Line+1))
			}
		}
	})
	t.Cleanup(func() {
		cancel()
		readers.Wait()
		cancelBrowser()
		cancelAlloc()
	})
	return ctx, perrs
}

func lastIndex(s []string, v string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == v {
			return i
		}
	}
	return -1
}
