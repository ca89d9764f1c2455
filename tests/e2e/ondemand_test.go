//go:build linux

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/tests/internal/harness"
	"github.com/rouse-dev/rouse/wire"
)

// chainConfig is the chain: db (ready after dbDelay, or the given
// argv), an optional sidecar, and the app (an HTTP server ready ~1 s after
// it starts) behind an on-demand entry point on front.
func chainConfig(marker, front, db, side, app string, dbArgv []string, onDemand string) string {
	if dbArgv == nil {
		dbArgv = harness.HelperCommand(marker, harness.ModeListen, db, "2s")
	}
	return baseConfig +
		execEntry(marker, "db", dbArgv, db, "start_limit: 1") +
		execEntry(marker, "sidecar", harness.HelperCommand(marker, harness.ModeListen, side, "0s"), side, "") +
		execEntry(marker, "app", harness.HelperCommand(marker, harness.ModeHTTP, app, "1s", "hello from the app"), "",
			fmt.Sprintf("ready: {http: %q}\ndepends_on: [db, {name: sidecar, optional: true}]\non_demand: {listen: %q, upstream: %q, %s}",
				"http://"+app+"/", front, app, onDemand)) + "\n"
}

// get is a curl-like request: no Accept: text/html, so the entry point
// holds it until the chain is ready instead of showing the waiting page.
func get(t testing.TB, url string) (int, string, time.Duration) {
	t.Helper()
	t0 := time.Now()
	req, _ := http.NewRequestWithContext(harness.Ctx(t, time.Minute), http.MethodGet, url, nil)
	req.Header.Set("Accept", "*/*")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	_, _ = br.Peek(1)
	first := time.Since(t0)
	b, _ := io.ReadAll(br)
	return resp.StatusCode, string(b), first
}

func chainOf(t testing.TB, a *harness.Agent, name string) wire.Chain {
	t.Helper()
	c, err := a.Client.Chain(harness.Ctx(t, 10*time.Second), name)
	if err != nil {
		t.Fatalf("chain %s: %v", name, err)
	}
	return c
}

var idleAll = map[string]string{"db": "idle", "sidecar": "idle", "app": "idle"}

// The first request starts the chain in order and gets the app's answer;
// idle_stop stops all three; the next request starts them again.
func TestOnDemandChainThroughTheBinary(t *testing.T) {
	p := harness.NewPower(t, true)
	marker := harness.NewMarker()
	front, db, side, app := harness.FreeAddr(t), harness.FreeAddr(t), harness.FreeAddr(t), harness.FreeAddr(t)
	a := harness.Start(t, bin, harness.Options{Config: chainConfig(marker, front, db, side, app, nil, "idle_stop: 2s"), BusAddr: p.Addr(), Marker: marker})

	a.WaitStates(guard, idleAll)
	if left := a.Children(); len(left) != 0 {
		t.Fatalf("the chain runs before anybody asked: %v", left)
	}
	if r, err := a.Client.Ready(harness.Ctx(t, 10*time.Second)); err != nil || !r.Ready {
		t.Fatalf("/readyz with an idle chain: %+v %v", r, err)
	}
	code, body, first := get(t, "http://"+front+"/")
	if code != http.StatusOK || body != "hello from the app" {
		t.Fatalf("first request: %d %q", code, body)
	}
	t.Logf("first request to first byte: %v (db 2s, then the app 1s)", first.Round(time.Millisecond))
	c := chainOf(t, a, "app")
	if c.State != wire.ChainReady || c.Trigger != "demand" || len(c.Components) != 3 {
		t.Fatalf("chain %+v", c)
	}
	for _, m := range c.Components {
		if m.State != "ready" {
			t.Errorf("%s is %s in the ready chain", m.Name, m.State)
		}
	}
	// Once ready, it is a plain proxy.
	if code, body, _ := get(t, "http://"+front+"/again"); code != 200 || body != "hello from the app" {
		t.Fatalf("second request: %d %q", code, body)
	}

	// idle_stop: 2s without a request stops the three.
	a.WaitStates(guard, idleAll)
	harness.Eventually(t, guard, "no process of the chain left", func() bool { return len(a.Children()) == 0 })
	if c := chainOf(t, a, "app"); c.State != wire.ChainIdle || !strings.Contains(c.Reason, "idle for 2s") {
		t.Fatalf("after idle_stop: %+v", c)
	}

	// The next request starts it again.
	if code, body, _ := get(t, "http://"+front+"/"); code != 200 || body != "hello from the app" {
		t.Fatalf("request after the idle stop: %d %q", code, body)
	}
	demands := 0
	for _, w := range a.Wakes(20) {
		if w.DetectedBy == "demand" {
			demands++
			if w.Restore.Ready != 3 {
				t.Errorf("demand record %+v", w.Restore)
			}
		}
	}
	if demands != 2 {
		t.Fatalf("%d chain starts recorded, want 2", demands)
	}
	if n := a.Metric(`rouse_starts_total{trigger="demand"}`); n != 2 {
		t.Fatalf("rouse_starts_total demand = %v", n)
	}
	a.Stop()
	a.CheckNoSurvivors()
}

// A required dependency that fails rolls the demand back: nothing of the
// chain is left running, the client gets an error naming it, and the chain
// says why.
func TestOnDemandRollback(t *testing.T) {
	p := harness.NewPower(t, true)
	marker := harness.NewMarker()
	front, db, side, app := harness.FreeAddr(t), harness.FreeAddr(t), harness.FreeAddr(t), harness.FreeAddr(t)
	broken := []string{"sh", "-c", "echo 'db: no data directory' >&2; exit 1"}
	a := harness.Start(t, bin, harness.Options{Config: chainConfig(marker, front, db, side, app, broken, "on_failure: rollback"), BusAddr: p.Addr(), Marker: marker})
	a.WaitStates(guard, idleAll)

	code, body, _ := get(t, "http://"+front+"/")
	// The entry point's answer to a chain that failed (not one still
	// starting at its deadline, which is 503): 502, code chain_failed.
	if code != http.StatusBadGateway {
		t.Fatalf("a failed chain answered %d %q, want 502", code, body)
	}
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || !strings.Contains(e.Error.Message, "db") {
		t.Fatalf("503 body %q: want a JSON error naming db", body)
	}
	a.WaitStates(guard, idleAll)
	harness.Eventually(t, guard, "no process of the chain left", func() bool { return len(a.Children()) == 0 })
	c := chainOf(t, a, "app")
	if c.State != wire.ChainFailed || !strings.HasPrefix(c.Reason, "db: ") || !strings.Contains(c.Reason, "exit status 1") {
		t.Fatalf("chain %+v: want failed, naming db and its exit", c)
	}
	ws := a.Wakes(5)
	if len(ws) == 0 || ws[0].DetectedBy != "demand" || ws[0].Restore.Failed == 0 {
		t.Fatalf("the failed demand is not recorded like a wake: %+v", ws)
	}
	a.Stop()
	a.CheckNoSurvivors()
}

// mode: tcp holds a plain TCP connection until the echo service is up,
// then splices it.
func TestOnDemandTCP(t *testing.T) {
	p := harness.NewPower(t, true)
	marker := harness.NewMarker()
	front, echo := harness.FreeAddr(t), harness.FreeAddr(t)
	cfg := baseConfig + execEntry(marker, "echo", harness.HelperCommand(marker, harness.ModeEcho, echo, "1s"), echo,
		fmt.Sprintf("on_demand: {listen: %q, upstream: %q, mode: tcp}", front, echo)) + "\n"
	a := harness.Start(t, bin, harness.Options{Config: cfg, BusAddr: p.Addr(), Marker: marker})
	a.WaitStates(guard, map[string]string{"echo": "idle"})

	d := net.Dialer{}
	conn, err := d.DialContext(harness.Ctx(t, time.Minute), "tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(guard))
	if _, err := io.WriteString(conn, "ping\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || line != "ping\n" {
		t.Fatalf("echo through the entry point: %q %v", line, err)
	}
	if s := a.Services()["echo"].State; s != "ready" {
		t.Fatalf("echo is %s", s)
	}
	conn.Close()
	a.Stop()
	a.CheckNoSurvivors()
}
