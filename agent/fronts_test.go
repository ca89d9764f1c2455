package agent

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/agent/config"
	"github.com/rouse-dev/rouse/wire"
)

// frontAgent is a test agent whose entry points run, as Run starts them.
func frontAgent(t *testing.T, specs []spec) (*Agent, func()) {
	t.Helper()
	a, stop := testAgent(t, t.TempDir(), specs)
	a.mu.Lock()
	a.cfg.Heartbeat.Initial, a.cfg.Heartbeat.Max = 20*time.Millisecond, 50*time.Millisecond
	cfg := a.cfg
	a.mu.Unlock()
	restoreNow(t, a, "boot", false)
	a.syncFronts(cfg)
	return a, stop
}

// eventually polls cond (real time: real sockets) for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("not after 10s: %s", what)
		}
	}
}

// An entry point whose port another program holds: the user sees why in
// the component's on_demand_error, /readyz and the overall status; the
// component can still be started by name; and once the port is free the
// entry point listens without a config change.
func TestFrontPortTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	od := &config.OnDemand{Listen: taken.Addr().String(), Upstream: "127.0.0.1:9", Mode: "http"}
	blog := &probe{latency: time.Millisecond}
	a, stop := frontAgent(t, []spec{{name: "blog", p: blog, onDemand: od}})
	defer stop()

	s := a.svc(t, "blog")
	if s.OnDemand != od.Listen || !strings.Contains(s.OnDemandError, "address already in use") {
		t.Fatalf("service: on_demand %q, on_demand_error %q; want the address and why it is not listening", s.OnDemand, s.OnDemandError)
	}
	r := a.Ready(context.Background(), true)
	if r.Ready || !slices.ContainsFunc(r.Reasons, func(s string) bool {
		return strings.HasPrefix(s, "blog's on-demand entry point is not listening: ") && strings.Contains(s, "address already in use")
	}) {
		t.Fatalf("/readyz %+v: want not ready, naming blog's entry point", r)
	}
	if h := a.Health(context.Background()); h.Status != wire.StatusDegraded {
		t.Fatalf("overall status %q, want degraded", h.Status)
	}
	if got, err := a.Start(context.Background(), "blog"); err != nil || got != wire.ActionStarted {
		t.Fatalf("start by name: %q %v", got, err)
	}
	if _, err := a.Stop(context.Background(), "blog"); err != nil {
		t.Fatal(err)
	}

	taken.Close() // the other program goes away
	eventually(t, "the entry point listens once the port is free", func() bool { return a.svc(t, "blog").OnDemandError == "" })
	resp, err := http.Get("http://" + od.Listen + "/.rouse/chain")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("the entry point answers %d", resp.StatusCode)
	}
	if r := a.Ready(context.Background(), true); slices.ContainsFunc(r.Reasons, func(s string) bool { return strings.Contains(s, "entry point") }) {
		t.Fatalf("/readyz still names the entry point: %v", r.Reasons)
	}
}

// A config edit: the entry point whose on_demand key changed is rebuilt
// (the new address answers, the old one is closed); the other one keeps
// running and keeps its open connections, even though the edit changed a
// deadline in its chain.
func TestFrontsFollowAConfigEdit(t *testing.T) {
	blogAddr, wikiAddr, newAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	a, stop := frontAgent(t, []spec{
		{name: "blog", p: &probe{latency: time.Millisecond}, onDemand: &config.OnDemand{Listen: blogAddr, Upstream: "127.0.0.1:9", Mode: "http"}},
		{name: "db", p: &probe{latency: time.Millisecond}},
		{name: "wiki", p: &probe{latency: time.Millisecond}, requires: []string{"db"}, onDemand: &config.OnDemand{Listen: wikiAddr, Upstream: "127.0.0.1:9", Mode: "http"}},
	})
	defer stop()

	// A keep-alive connection to wiki's entry point, open across the edit.
	conn, err := net.Dial("tcp", wikiAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	ask := func(when string) {
		t.Helper()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write([]byte("GET /.rouse/chain HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: wiki's connection: %v", when, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", when, resp.StatusCode)
		}
	}
	ask("before the edit")

	a.mu.Lock()
	cfg := *a.cfg
	a.mu.Unlock()
	cfg.Trackers = slices.Clone(cfg.Trackers)
	for i := range cfg.Trackers {
		switch tr := &cfg.Trackers[i]; tr.Name {
		case "blog":
			od := *tr.OnDemand
			od.Listen = newAddr
			tr.OnDemand = &od
		case "db":
			tr.Deadline = 7 * time.Second // wiki's chain deadline changes
		}
	}
	if err := a.applyConfig(&cfg); err != nil {
		t.Fatal(err)
	}
	if v := a.Chain("wiki"); v.DeadlineMS != 17000 {
		t.Fatalf("wiki's chain deadline %d ms, want db's new 7 s + its 10 s", v.DeadlineMS)
	}
	ask("after the edit")
	resp, err := http.Get("http://" + newAddr + "/.rouse/chain")
	if err != nil {
		t.Fatalf("blog's new address: %v", err)
	}
	resp.Body.Close()
	if c, err := net.DialTimeout("tcp", blogAddr, time.Second); err == nil {
		c.Close()
		t.Fatalf("blog's old address %s still accepts connections", blogAddr)
	}
	if s := a.svc(t, "blog"); s.OnDemand != newAddr || s.OnDemandError != "" {
		t.Fatalf("blog: on_demand %q error %q", s.OnDemand, s.OnDemandError)
	}
}

// The entry point's address is bound at boot, before the API shows any
// component: a client that saw the agent up never finds the port closed,
// and a request sent before the entry point runs waits in the backlog and
// is answered once it does.
func TestFrontIsBoundAtBoot(t *testing.T) {
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := free.Addr().String()
	free.Close()
	od := &config.OnDemand{Listen: addr, Upstream: "127.0.0.1:9", Mode: "http"}
	a, stop := testAgent(t, t.TempDir(), []spec{{name: "blog", p: &probe{latency: time.Millisecond}, onDemand: od}})
	defer stop()

	c, err := net.Dial("tcp", addr) // booted, not run: the backlog takes it
	if err != nil {
		t.Fatalf("entry point not bound after boot: %v", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET /.rouse/chain HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	cfg := a.cfg
	a.mu.Unlock()
	a.syncFronts(cfg)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("the request sent before the entry point ran: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /.rouse/chain: %s", resp.Status)
	}
}
