package browser_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rouse-dev/rouse/client"
)

// layoutConfig has what makes a row wide: a long name, a component that
// keeps failing (restarts, last exit, next try, output), one blocked by a
// stopped dependency.
const layoutConfig = `
deadlines: {tracker: 20s, scheduler: 20s, wake: 1m}
heartbeat: {initial: 1s, max: 5s}
trackers:
  - name: tunnel
    kind: exec
    command: [sh, -c, "echo listening on 127.0.0.1:9330; echo handshake with nas ok >&2; sleep 1000"]
    ready_after: 300ms
  - name: api
    kind: exec
    command: [sh, -c, "sleep 1000"]
    ready_after: 300ms
    depends_on: [tunnel]
  - name: nightly-photo-backup-synchronisation
    kind: exec
    command: [sh, -c, "echo starting backup; echo 'rsync: connection unexpectedly closed (0 bytes received so far) [sender]' >&2; exit 3"]
    ready_after: 5s
    restart_backoff: {initial: 1s, max: 2s}
`

// TestDashboardLayoutAndDetails: at 1024 and 1400 px the components table
// fits its card and every row's buttons stay on one line; each row shows
// restarts, next try, last exit and why it is blocked, as the API does;
// the output view shows a component's last lines.
func TestDashboardLayoutAndDetails(t *testing.T) {
	bin := chromiumPath(t)
	c := runAgentWith(t, layoutConfig)
	const flaky = "nightly-photo-backup-synchronisation"
	waitFor(t, "tunnel and api ready, the backup restarted once", func() (bool, string) {
		ss, err := c.Services(context.Background())
		if err != nil {
			return false, err.Error()
		}
		m := map[string]string{}
		ok := true
		for _, s := range ss {
			m[s.Name] = fmt.Sprintf("%s/%d", s.State, s.Restarts)
			switch s.Name {
			case "tunnel", "api":
				ok = ok && s.State == "ready"
			case flaky:
				ok = ok && s.Restarts >= 1 && s.LastExit != nil && len(s.Output) > 0
			}
		}
		return ok, fmt.Sprint(m)
	})
	if _, _, err := c.Stop(context.Background(), "tunnel"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Wake(context.Background()); err != nil { // api is now blocked by the stopped tunnel
		t.Fatal(err)
	}
	waitFor(t, "api blocked by the stopped tunnel", func() (bool, string) {
		s, err := c.Service(context.Background(), "api")
		return err == nil && s.Blocked == "blocked: tunnel is stopped", fmt.Sprint(s.State, s.Blocked, err)
	})

	ctx, perrs := newBrowser(t, bin, 1400, 900)
	login, err := c.LoginCode(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, guard)
	defer cancel()
	if err := chromedp.Do(wctx,
		chromedp.Navigate(login.URL),
		chromedp.Click(chromedp.CSS(`#login`)), // the landing page's button uses the code
		chromedp.WaitVisible(chromedp.CSS(`#components tbody tr[data-name="api"]`)),
	); err != nil {
		if b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
			_ = os.WriteFile(filepath.Join(artifactDir(t), "dashboard-failed.png"), b, 0o644)
		}
		html, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("the dashboard did not show the components: %v; page errors: %q; body %.1500s", err, perrs.list(), html)
	}
	evalJS := func(js string, v any) error {
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](js))
		if err != nil {
			return err
		}
		return json.Unmarshal(raw, v)
	}
	dir := artifactDir(t)
	shot := func(name string) {
		t.Helper()
		b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
	}

	t.Run("EachRowShowsWhatTheAPIShows", func(t *testing.T) {
		waitFor(t, "the page's rows to match the API", func() (bool, string) {
			return rowsMatch(c, evalJS)
		})
	})

	for _, width := range []int{1024, 1400} {
		t.Run(fmt.Sprintf("TheLayoutHoldsAt%dpx", width), func(t *testing.T) {
			if err := chromedp.Do(ctx,
				chromedp.EmulateViewport(int64(width), 900),
				chromedp.Sleep(200*time.Millisecond), // one layout pass; not a timing assertion
			); err != nil {
				t.Fatal(err)
			}
			var l struct {
				ViewportWidth int      `json:"vw"`
				ScrollWidth   int      `json:"sw"`
				TableRight    float64  `json:"tr"`
				CardRight     float64  `json:"cr"`
				Wrapped       []string `json:"wrapped"`
			}
			if err := evalJS(layoutJS, &l); err != nil {
				t.Fatal(err)
			}
			shot(fmt.Sprintf("dashboard-%d.png", width))
			if l.ViewportWidth != width {
				t.Fatalf("viewport %d px, want %d", l.ViewportWidth, width)
			}
			if l.ScrollWidth > l.ViewportWidth {
				t.Errorf("the page scrolls sideways: %d px wide in a %d px window", l.ScrollWidth, l.ViewportWidth)
			}
			if l.TableRight > l.CardRight+0.5 {
				t.Errorf("the components table overflows its card: right edge %.0f > %.0f", l.TableRight, l.CardRight)
			}
			if len(l.Wrapped) > 0 {
				t.Errorf("buttons wrap onto a second line in rows %v", l.Wrapped)
			}
		})
	}

	t.Run("TheOutputViewShowsTheLastLines", func(t *testing.T) {
		if err := chromedp.Do(ctx,
			chromedp.Click(chromedp.CSS(`button[data-action="output"][data-name="`+flaky+`"]`)),
			chromedp.WaitVisible(chromedp.CSS(`#output`)),
		); err != nil {
			t.Fatal(err)
		}
		var text string
		waitFor(t, "the output in the view", func() (bool, string) {
			err := evalJS(`document.querySelector('#output-text').textContent`, &text)
			return err == nil && strings.Contains(text, "rsync: connection unexpectedly closed") && strings.Contains(text, "starting backup"), text
		})
		shot("dashboard-output.png")
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#output-close`))); err != nil {
			t.Fatal(err)
		}
		var open bool
		if err := evalJS(`document.querySelector('#output').open`, &open); err != nil || open {
			t.Errorf("the output view is still open (%v)", err)
		}
	})

	if errs := perrs.list(); len(errs) > 0 {
		t.Errorf("the browser reported errors (CSP violations, exceptions):\n%s", strings.Join(errs, "\n"))
	}
}

// layoutJS measures the components table: the page's scroll width, the
// table's and its card's right edges, and the rows whose action buttons
// are not all on one line.
const layoutJS = `(() => {
  const table = document.querySelector('#components');
  const card = table.closest('.card');
  const wrapped = [];
  for (const tr of document.querySelectorAll('#components tbody tr')) {
    const tops = new Set([...tr.querySelectorAll('.actions button')].map((b) => Math.round(b.getBoundingClientRect().top)));
    if (tops.size > 1) wrapped.push(tr.dataset.name);
  }
  return { vw: window.innerWidth, sw: document.documentElement.scrollWidth,
    tr: table.getBoundingClientRect().right, cr: card.getBoundingClientRect().right - parseFloat(getComputedStyle(card).paddingRight) + 1,
    wrapped };
})()`

// rowsMatch compares each row's attempts, restarts and details with the
// API's service view.
func rowsMatch(c *client.Client, evalJS func(string, any) error) (bool, string) {
	ss, err := c.Services(context.Background())
	if err != nil {
		return false, err.Error()
	}
	var rows map[string]struct {
		Attempts string `json:"attempts"`
		Restarts string `json:"restarts"`
		Details  string `json:"details"`
	}
	err = evalJS(`Object.fromEntries([...document.querySelectorAll('#components tbody tr')].map((tr) => [tr.dataset.name, {
		attempts: tr.querySelector('.attempts').textContent, restarts: tr.querySelector('.restarts').textContent,
		details: tr.querySelector('td[data-label="Details"]').textContent }]))`, &rows)
	if err != nil {
		return false, err.Error()
	}
	for _, s := range ss {
		r, ok := rows[s.Name]
		if !ok {
			return false, "no row for " + s.Name
		}
		if r.Attempts != fmt.Sprint(s.Attempts) || r.Restarts != fmt.Sprint(s.Restarts) {
			return false, fmt.Sprintf("%s: page attempts %s restarts %s, API %d and %d", s.Name, r.Attempts, r.Restarts, s.Attempts, s.Restarts)
		}
		if s.Blocked != "" && !strings.Contains(r.Details, s.Blocked) {
			return false, fmt.Sprintf("%s: details %q lack %q", s.Name, r.Details, s.Blocked)
		}
		if s.LastExit != nil && s.LastExit.Error != "" && !strings.Contains(r.Details, "last exit") {
			return false, fmt.Sprintf("%s: details %q lack the last exit", s.Name, r.Details)
		}
		if s.NextRetryAt != nil && !strings.Contains(r.Details, "next try") {
			return false, fmt.Sprintf("%s: details %q lack the next try", s.Name, r.Details)
		}
	}
	return true, ""
}
