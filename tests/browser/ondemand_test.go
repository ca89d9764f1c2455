//go:build linux

package browser_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rouse-dev/rouse/client"
	"github.com/rouse-dev/rouse/tests/internal/harness"
	"github.com/rouse-dev/rouse/wire"
)

// appEnv makes this test binary the on-demand test's app: started by the
// rouse binary as an exec component with ROUSE_BROWSER_TEST_APP=host:port,
// it serves its own page there until it is stopped.
const appEnv = "ROUSE_BROWSER_TEST_APP"

const appPage = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>The app</title></head>
<body><h1 id="app">Hello from the app</h1><p>served by the component itself</p></body></html>
`

func init() {
	addr := os.Getenv(appEnv)
	if addr == "" {
		return
	}
	err := http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, appPage)
	}))
	fmt.Fprintln(os.Stderr, "app:", err)
	os.Exit(1)
}

// onDemandConfig is the chain (db ready after 2 s, an optional
// sidecar, the app behind an on-demand entry point) and a chain whose
// required dependency fails. Every child carries the run's marker (%[7]s,
// harness.ExecEnv) so that the harness finds any that outlives the agent.
const onDemandConfig = `
deadlines: {tracker: 20s, scheduler: 20s, wake: 1m}
heartbeat: {initial: 1s, max: 5s}
trackers:
  - name: db
    kind: exec
    command: [sh, -c, "sleep 1000"]
    env: %[7]s
    ready_after: 2s
  - name: sidecar
    kind: exec
    command: [sh, -c, "sleep 1000"]
    env: %[7]s
    ready_after: 500ms
  - name: app
    kind: exec
    command: [%[1]q]
    env: {%[2]s: %[3]q, %[8]s: %[9]q}
    ready: {http: "http://%[3]s/"}
    depends_on: [db, {name: sidecar, optional: true}]
    on_demand: {listen: %[4]q, upstream: %[3]q, mode: http, idle_stop: 3s}
  - name: baddb
    kind: exec
    command: [sh, -c, "echo cannot open the database >&2; exit 1"]
    env: %[7]s
    start_limit: 1
  - name: broken
    kind: exec
    command: [sh, -c, "sleep 1000"]
    env: %[7]s
    depends_on: [baddb]
    on_demand: {listen: %[5]q, upstream: %[6]q, mode: http, on_failure: rollback}
`

// states is name → state of the given components, per the API.
func states(c *client.Client, names ...string) (map[string]string, error) {
	ss, err := c.Services(context.Background())
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, s := range ss {
		if slices.Contains(names, s.Name) {
			m[s.Name] = s.State
		}
	}
	return m, nil
}

func allIn(c *client.Client, want []string, names ...string) (bool, string) {
	m, err := states(c, names...)
	if err != nil {
		return false, err.Error()
	}
	for _, n := range names {
		if !slices.Contains(want, m[n]) {
			return false, fmt.Sprint(m)
		}
	}
	return true, fmt.Sprint(m)
}

// lastDemandStart is the newest chain start recorded with detected_by
// "demand".
func lastDemandStart(c *client.Client) (wire.Wake, bool) {
	ws, err := c.Wakes(context.Background(), 10)
	if err != nil {
		return wire.Wake{}, false
	}
	for _, w := range ws {
		if w.DetectedBy == "demand" && w.Done {
			return w, true
		}
	}
	return wire.Wake{}, false
}

// TestOnDemandInChromium is issue 18's check through the built binary:
// `rouse run` of this checkout (harness.Build, harness.Start: a private
// bus with a fake logind, a per-run marker) with a chain of three exec
// components behind an on-demand entry point. Headless Chromium opens the
// entry point, sees the waiting page with the three components
// progressing and ends on the app's own page without a reload
// (screenshots kept in $ROUSE_TEST_ARTIFACTS); after idle_stop the chain
// is stopped and a held plain client starts it again and gets the app's
// answer; a chain whose required dependency fails is rolled back, the page
// says why, and exactly one start is recorded. Everything is read through
// the API; the harness checks that rouse exits 0 on SIGTERM and that no
// child carrying the run's marker survives it.
func TestOnDemandInChromium(t *testing.T) {
	bin := chromiumPath(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	rouse, err := harness.Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	power := harness.NewPower(t, true)
	marker := harness.NewMarker()
	appAddr, front, badUp, badFront := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	a := harness.Start(t, rouse, harness.Options{
		Config: fmt.Sprintf(onDemandConfig, self, appEnv, appAddr, front, badFront, badUp,
			harness.ExecEnv(marker), harness.MarkerEnv, marker),
		BusAddr: power.Addr(),
		Marker:  marker,
	})
	c := a.Client
	t.Logf("rouse run: %s, pid %d, marker %s", rouse, a.Pid(), marker)
	chain := []string{"db", "sidecar", "app"}
	waitFor(t, "the chain to be idle before anybody asks", func() (bool, string) { return allIn(c, []string{"idle"}, chain...) })
	if ps := a.Children(); len(ps) != 0 {
		t.Fatalf("the chain runs before anybody asked: %v", ps)
	}

	ctx, perrs := newBrowser(t, bin, 1024, 640)
	evalJS := func(js string, v any) error {
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](js))
		if err != nil {
			return err
		}
		return json.Unmarshal(raw, v)
	}
	shot := func(name string) {
		b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Logf("screenshot %s: %v", name, err)
			return
		}
		p := filepath.Join(artifactDir(t), name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
	}

	t.Run("The waiting page shows the chain progressing and turns into the app", func(t *testing.T) {
		asked := time.Now()
		if err := chromedp.Do(ctx, chromedp.Navigate("http://"+front+"/")); err != nil {
			t.Fatal(err)
		}
		// Poll the page: the rows of the waiting page as they change, until
		// the app's own page is there. The test never reloads: the page
		// does it itself when the chain is ready.
		type look struct {
			App    string   `json:"app"`
			Wait   bool     `json:"wait"`
			Rows   []string `json:"rows"`
			Status string   `json:"status"`
			Est    string   `json:"est"`
		}
		const lookJS = `(() => ({
  app: (document.getElementById('app') || {}).textContent || '',
  wait: !!document.getElementById('rouse-wait'),
  rows: [...document.querySelectorAll('#components tbody tr[data-name]')].map(tr => tr.dataset.name + ':' + tr.dataset.state),
  status: (document.getElementById('status') || {}).textContent || '',
  est: (document.querySelector('#components tr[data-name="db"] .estimated') || {}).textContent || '',
}))()`
		var seen []string
		var statuses []string
		shotMid, shotFirst := false, false
		var final look
		deadline := time.Now().Add(guard)
		for time.Now().Before(deadline) {
			var l look
			if err := evalJS(lookJS, &l); err != nil { // the page is being replaced
				time.Sleep(20 * time.Millisecond)
				continue
			}
			for _, r := range l.Rows {
				if !slices.Contains(seen, r) {
					seen = append(seen, r)
				}
			}
			if l.Status != "" && !slices.Contains(statuses, l.Status) {
				statuses = append(statuses, l.Status)
			}
			if l.Wait && !shotFirst {
				shotFirst = true
				// The chain's first start: nothing on record, nothing guessed.
				if l.Est != "no estimate yet" {
					t.Errorf("the waiting page shows %q as db's estimate on its first start, want \"no estimate yet\"", l.Est)
				}
				shot("ondemand-waiting.png")
			}
			if l.Wait && !shotMid && slices.Contains(l.Rows, "sidecar:ready") && !slices.Contains(l.Rows, "app:ready") {
				shotMid = true
				shot("ondemand-progress.png")
			}
			if l.App != "" {
				final = l
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		took := time.Since(asked)
		t.Logf("the waiting page showed, in order: %v", seen)
		t.Logf("its status line said: %q", statuses)
		if !slices.ContainsFunc(statuses, func(s string) bool { return strings.Contains(s, "(first start, no estimate yet)") }) {
			t.Errorf("the status line never said it is the first start: %q", statuses)
		}
		if final.App != "Hello from the app" {
			t.Fatalf("the browser did not end on the app's page (seen %v)", seen)
		}
		shot("ondemand-app.png")
		loc, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil || loc != "http://"+front+"/" {
			t.Errorf("the browser is at %q (%v), want the entry point's address", loc, err)
		}
		for _, n := range chain {
			i := slices.IndexFunc(seen, func(s string) bool { return strings.HasPrefix(s, n+":") })
			if i < 0 {
				t.Errorf("the page never showed %s", n)
			}
		}
		// Progress: db was seen not ready, then ready, while the app waited.
		dbWait := slices.IndexFunc(seen, func(s string) bool { return strings.HasPrefix(s, "db:") && s != "db:ready" })
		dbReady := slices.Index(seen, "db:ready")
		if dbWait < 0 || dbReady < dbWait {
			t.Errorf("the page did not show db progressing to ready: %v", seen)
		}
		if !slices.ContainsFunc(seen, func(s string) bool { return strings.HasPrefix(s, "app:") && s != "app:ready" }) {
			t.Errorf("the page never showed the app waiting: %v", seen)
		}
		// The app's page came from a child of the rouse binary that
		// carries the run's marker: the harness's leak check sees it.
		if ps := a.Children(); !slices.ContainsFunc(ps, func(p harness.Proc) bool { return strings.HasPrefix(p.Cmdline, self) }) {
			t.Errorf("no process of the app carries the run's marker: %v", ps)
		}
		if w, ok := lastDemandStart(c); ok {
			t.Logf("figures: first request to the app's page in the browser %s; the chain start as recorded: %d ms, components %+v",
				took.Round(time.Millisecond), w.Restore.DurationMS, w.Components)
		}
		for _, e := range perrs.list() {
			if !strings.Contains(e, "503") { // the waiting page is a 503 on purpose
				t.Errorf("the browser reported: %s", e)
			}
		}
	})

	t.Run("Idle stops the chain and a held client starts it again", func(t *testing.T) {
		waitFor(t, "idle_stop to stop the whole chain", func() (bool, string) { return allIn(c, []string{"idle"}, chain...) })
		waitFor(t, "no child of rouse to run after idle_stop", func() (bool, string) {
			ps := a.Children()
			return len(ps) == 0, fmt.Sprint(ps)
		})
		asked := time.Now()
		req, _ := http.NewRequest(http.MethodGet, "http://"+front+"/", nil)
		req.Header.Set("Accept", "*/*") // curl's
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		firstByte := time.Since(asked)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), "Hello from the app") {
			t.Fatalf("held client got %d %q, want the app's answer", resp.StatusCode, b)
		}
		if w, ok := lastDemandStart(c); ok {
			var crit int64
			for _, wc := range w.Components {
				if wc.Name == "db" || wc.Name == "app" {
					crit += wc.DurationMS
				}
			}
			t.Logf("figures: held request to first byte %s; chain start recorded %d ms; critical path db+app %d ms",
				firstByte.Round(time.Millisecond), w.Restore.DurationMS, crit)
		}
		http.DefaultClient.CloseIdleConnections()
	})

	t.Run("A failing required dependency is rolled back and the page says why", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.Navigate("http://"+badFront+"/")); err != nil {
			t.Fatal(err)
		}
		var status string
		waitFor(t, "the page to say the chain failed", func() (bool, string) {
			if err := evalJS(`document.getElementById('status').textContent`, &status); err != nil {
				return false, err.Error()
			}
			return strings.Contains(status, "could not start") && strings.Contains(status, "baddb"), status
		})
		t.Logf("the page says: %q", status)
		var retry bool
		if err := evalJS(`!document.getElementById('retry').hidden`, &retry); err != nil || !retry {
			t.Errorf("no Try again button on the failed page (%v)", err)
		}
		shot("ondemand-failed.png")
		waitFor(t, "nothing of the failed chain to run", func() (bool, string) {
			return allIn(c, []string{"idle", "failed", "stopped"}, "baddb", "broken")
		})
		_, why := allIn(c, nil, "baddb", "broken")
		t.Logf("after the rollback: %s", why)
		// One start, recorded like a wake: the page's own follow-up
		// requests (its favicon) did not start the failed chain again.
		ws, err := c.Wakes(context.Background(), 20)
		if err != nil {
			t.Fatal(err)
		}
		starts := 0
		for _, w := range ws {
			if w.DetectedBy == "demand" && slices.ContainsFunc(w.Components, func(wc wire.WakeComponent) bool { return wc.Name == "baddb" }) {
				starts++
				if w.Restore.Failed == 0 {
					t.Errorf("the failed start is recorded without a failure: %+v", w.Restore)
				}
			}
		}
		if starts != 1 {
			t.Errorf("%d demand starts of the failing chain recorded, want 1", starts)
		}
	})
}
