package tray

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/prop"

	"github.com/rouse-dev/rouse/agent/api"
	"github.com/rouse-dev/rouse/agent/api/apitest"
	"github.com/rouse-dev/rouse/client"
	"github.com/rouse-dev/rouse/internal/testbus"
	"github.com/rouse-dev/rouse/wire"
)

// The systray library keeps global state and runs once per process, so
// these tests run the tray in a child process (this test binary, re-executed)
// on a private session bus, and look at it over D-Bus the way a tray host
// does: StatusNotifierItem properties and the dbusmenu layout.

const testToken = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

// guard bounds waits that only fail a broken test; never a speed check.
const guard = 30 * time.Second

func init() { childMain = trayChild }

// trayChild is the child: the real Run against the agent named in its
// environment, until SIGTERM.
func trayChild() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	url, tok, opened := os.Getenv("ROUSE_TRAY_TEST_URL"), os.Getenv("ROUSE_TRAY_TEST_TOKEN"), os.Getenv("ROUSE_TRAY_TEST_OPENED")
	err := Run(ctx, Options{
		Dial:    func() (Agent, error) { return ClientAgent(client.New(url, tok)), nil },
		Logger:  log,
		OpenURL: func(u string) error { return os.WriteFile(opened, []byte(u), 0o600) },
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "tray child:", err)
		return 1
	}
	return 0
}

// child is a running tray process.
type child struct {
	cmd    *exec.Cmd
	out    *logBuf
	done   chan struct{}
	err    error
	opened string
}

func startChild(t *testing.T, env []string) *child {
	t.Helper()
	dir := t.TempDir()
	c := &child{out: &logBuf{}, done: make(chan struct{}), opened: filepath.Join(dir, "opened")}
	c.cmd = exec.Command(os.Args[0], "-test.run=^$")
	// Under the race detector, the child logs races to files instead of
	// failing its exit code: checkRaces fails on races in our code and
	// logs those inside the systray and D-Bus libraries.
	c.cmd.Env = append(os.Environ(), childEnv+"=1", "ROUSE_TRAY_TEST_OPENED="+c.opened,
		"GORACE=exitcode=0 log_path="+filepath.Join(dir, "race"))
	c.cmd.Env = append(c.cmd.Env, env...)
	c.cmd.Stdout = c.out
	c.cmd.Stderr = c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			_ = c.cmd.Process.Kill()
			<-c.done
		}
		checkRaces(t, dir)
		if t.Failed() {
			t.Logf("tray output:\n%s", c.out.String())
		}
	})
	return c
}

// checkRaces reads the child's race reports: a race with one of its two
// accesses in our code fails the test; races entirely inside the systray
// and D-Bus libraries (a host reading a property while it is set) are
// logged, as known library issues.
func checkRaces(t *testing.T, dir string) {
	logs, _ := filepath.Glob(filepath.Join(dir, "race.*"))
	for _, f := range logs {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Error(err)
			continue
		}
		for _, report := range strings.Split(string(b), "==================") {
			if !strings.Contains(report, "DATA RACE") {
				continue
			}
			if raceInOurCode(report) {
				t.Errorf("data race in the tray:\n%s", report)
			} else {
				t.Logf("data race inside the systray/D-Bus libraries (known, not ours):\n%s", firstLines(report, 12))
			}
		}
	}
}

// raceInOurCode reports whether either access of a race report has, as
// its first frame outside the runtime, reflect and encoders, a function of
// this module.
func raceInOurCode(report string) bool {
	lines := strings.Split(report, "\n")
	for i, l := range lines {
		l = strings.TrimSpace(l)
		if !(strings.HasPrefix(l, "Write at") || strings.HasPrefix(l, "Read at") ||
			strings.HasPrefix(l, "Previous write at") || strings.HasPrefix(l, "Previous read at")) {
			continue
		}
		for _, fr := range lines[i+1:] {
			fr = strings.TrimSpace(fr)
			if fr == "" {
				break
			}
			if strings.HasPrefix(fr, "/") || strings.HasPrefix(fr, "runtime.") || strings.HasPrefix(fr, "reflect.") ||
				strings.HasPrefix(fr, "internal/") || strings.HasPrefix(fr, "sync") || strings.HasPrefix(fr, "encoding/") {
				continue
			}
			if strings.HasPrefix(fr, "github.com/rouse-dev/rouse/") {
				return true
			}
			break
		}
	}
	return false
}

func firstLines(s string, n int) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(ls[:min(n, len(ls))], "\n")
}

// wait waits for the child to exit and returns its exit code.
func (c *child) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(guard):
		t.Fatalf("the tray did not exit; output:\n%s", c.out.String())
	}
	if c.err == nil {
		return 0
	}
	if ee, ok := c.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	t.Fatalf("wait: %v", c.err)
	return -1
}

// eventually polls cond until it holds, or fails the test after guard.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(guard)
	last := ""
	for time.Now().Before(deadline) {
		ok, got := cond()
		if ok {
			return
		}
		last = got
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: never happened; last seen: %s", what, last)
}

// testAgent is a real api.Server over a fake backend whose health the test
// changes and whose event stream it feeds.
type testAgent struct {
	url     string
	backend *apitest.Backend
	stop    func()

	mu     sync.Mutex
	health wire.Health
	subs   map[chan wire.Event]struct{}
	nextID int64
	wakes  atomic.Int64
}

func startTestAgent(t *testing.T, h wire.Health) *testAgent {
	t.Helper()
	a := &testAgent{health: h, subs: map[chan wire.Event]struct{}{}}
	b := &apitest.Backend{
		HealthFunc: func(context.Context) wire.Health {
			a.mu.Lock()
			defer a.mu.Unlock()
			h := a.health
			h.Components = slices.Clone(h.Components) // setHealth edits in place
			return h
		},
		WakeFunc: func(context.Context) (wire.Wake, error) {
			a.wakes.Add(1)
			return wire.Wake{ID: 99, DetectedBy: "manual", WokeAt: time.Now()}, nil
		},
		SubscribeFunc: func(ctx context.Context, _ int64) <-chan wire.Event {
			ch := make(chan wire.Event, 16)
			a.mu.Lock()
			a.subs[ch] = struct{}{}
			a.mu.Unlock()
			out := make(chan wire.Event)
			go func() {
				defer close(out)
				defer func() { a.mu.Lock(); delete(a.subs, ch); a.mu.Unlock() }()
				for {
					select {
					case <-ctx.Done():
						return
					case ev := <-ch:
						select {
						case out <- ev:
						case <-ctx.Done():
							return
						}
					}
				}
			}()
			return out
		},
	}
	a.backend = b
	a.serve(t, "127.0.0.1:0")
	t.Cleanup(func() { a.stop() })
	return a
}

// serve starts an api.Server for the backend on listen.
func (a *testAgent) serve(t *testing.T, listen string) {
	t.Helper()
	s, err := api.New(a.backend, api.Options{Listen: listen, Token: testToken, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Version: "v-test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(ctx) }()
	a.stop = func() { cancel(); <-done }
	a.url = "http://" + s.Addr().String()
}

// restart stops the server (cutting every stream) and serves again on the
// same address, as an agent restart does.
func (a *testAgent) restart(t *testing.T) {
	t.Helper()
	a.stop()
	a.serve(t, strings.TrimPrefix(a.url, "http://"))
}

func (a *testAgent) setHealth(f func(h *wire.Health)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f(&a.health)
}

// emit sends ev to every current subscriber.
func (a *testAgent) emit(ev wire.Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.nextID++
	ev.ID, ev.At = a.nextID, time.Now()
	for ch := range a.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

func (a *testAgent) subscribers() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.subs)
}

// desktop is a fake desktop on the bus: a StatusNotifierWatcher (the tray
// host's registry) and a notification service.
type desktop struct {
	conn *dbus.Conn

	mu     sync.Mutex
	items  []string // "sender path"
	notes  []string // summaries
	regCh  chan string
	bodies []string
}

type watcherObj struct{ d *desktop }

func (w watcherObj) RegisterStatusNotifierItem(sender dbus.Sender, service string) *dbus.Error {
	w.d.mu.Lock()
	w.d.items = append(w.d.items, string(sender)+" "+service)
	w.d.mu.Unlock()
	select {
	case w.d.regCh <- string(sender):
	default:
	}
	return nil
}

func (w watcherObj) RegisterStatusNotifierHost(string) *dbus.Error { return nil }

type notifyObj struct{ d *desktop }

func (n notifyObj) Notify(app string, replaces uint32, icon, summary, body string, actions []string, hints map[string]dbus.Variant, timeout int32) (uint32, *dbus.Error) {
	n.d.mu.Lock()
	defer n.d.mu.Unlock()
	n.d.notes = append(n.d.notes, summary)
	n.d.bodies = append(n.d.bodies, body)
	return uint32(len(n.d.notes)), nil
}

func connect(t *testing.T, addr string) *dbus.Conn {
	t.Helper()
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// startDesktop exports the fake watcher and notification service.
func startDesktop(t *testing.T, addr string) *desktop {
	t.Helper()
	d := &desktop{conn: connect(t, addr), regCh: make(chan string, 4)}
	if err := d.conn.Export(notifyObj{d}, notificationPath, notificationName); err != nil {
		t.Fatal(err)
	}
	if r, err := d.conn.RequestName(notificationName, dbus.NameFlagDoNotQueue); err != nil || r != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own %s: %v %v", notificationName, r, err)
	}
	if err := d.conn.Export(watcherObj{d}, "/StatusNotifierWatcher", watcherName); err != nil {
		t.Fatal(err)
	}
	if _, err := prop.Export(d.conn, "/StatusNotifierWatcher", prop.Map{watcherName: {
		"IsStatusNotifierHostRegistered": {Value: true},
		"ProtocolVersion":                {Value: int32(0)},
		"RegisteredStatusNotifierItems":  {Value: []string{}},
	}}); err != nil {
		t.Fatal(err)
	}
	if r, err := d.conn.RequestName(watcherName, dbus.NameFlagDoNotQueue); err != nil || r != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own %s: %v %v", watcherName, r, err)
	}
	return d
}

func (d *desktop) notifications() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.notes...)
}

// item reads a registered StatusNotifierItem the way a host does.
type item struct {
	t    *testing.T
	conn *dbus.Conn
	name string
}

type pixmap struct {
	W, H int32
	Pix  []byte
}

func (it item) prop(name string) (dbus.Variant, error) {
	return it.conn.Object(it.name, "/StatusNotifierItem").GetProperty("org.kde.StatusNotifierItem." + name)
}

func (it item) tooltip() string {
	v, err := it.prop("ToolTip")
	if err != nil {
		return "error: " + err.Error()
	}
	var tt struct {
		Name  string
		Icons []pixmap
		Title string
		Text  string
	}
	if err := v.Store(&tt); err != nil {
		return "error: " + err.Error()
	}
	return tt.Title
}

func (it item) status() string {
	v, err := it.prop("Status")
	if err != nil {
		return "error: " + err.Error()
	}
	s, _ := v.Value().(string)
	return s
}

// iconColour is the colour at the icon's top centre (on the disc or ring),
// as ARGB.
func (it item) iconColour() ([4]byte, error) {
	v, err := it.prop("IconPixmap")
	if err != nil {
		return [4]byte{}, err
	}
	var px []pixmap
	if err := v.Store(&px); err != nil {
		return [4]byte{}, err
	}
	if len(px) == 0 || px[0].W != iconSize || len(px[0].Pix) != int(px[0].W*px[0].H*4) {
		return [4]byte{}, fmt.Errorf("bad pixmap %d", len(px))
	}
	i := (3*int(px[0].W) + int(px[0].W)/2) * 4
	var c [4]byte
	copy(c[:], px[0].Pix[i:i+4])
	return c, nil
}

func argb(l Look) [4]byte {
	c := Colour(l)
	return [4]byte{c.A, c.R, c.G, c.B}
}

// menuEntry is one visible dbusmenu item.
type menuEntry struct {
	id      int32
	label   string
	enabled bool
}

func (it item) menu() ([]menuEntry, error) {
	var rev uint32
	var layout struct {
		ID       int32
		Props    map[string]dbus.Variant
		Children []dbus.Variant
	}
	err := it.conn.Object(it.name, "/StatusNotifierItem/menu").Call("com.canonical.dbusmenu.GetLayout", 0, int32(0), int32(-1), []string{}).Store(&rev, &layout)
	if err != nil {
		return nil, err
	}
	var out []menuEntry
	for _, c := range layout.Children {
		f, ok := c.Value().([]any)
		if !ok || len(f) != 3 {
			return nil, fmt.Errorf("child %v", c.Value())
		}
		id, _ := f[0].(int32)
		props, _ := f[1].(map[string]dbus.Variant)
		if v, ok := props["visible"]; ok && v.Value() == false {
			continue
		}
		if v, ok := props["type"]; ok && v.Value() == "separator" {
			continue
		}
		e := menuEntry{id: id, enabled: true}
		if v, ok := props["label"]; ok {
			e.label, _ = v.Value().(string)
		}
		if v, ok := props["enabled"]; ok {
			e.enabled, _ = v.Value().(bool)
		}
		out = append(out, e)
	}
	return out, nil
}

func labels(es []menuEntry) string {
	var s []string
	for _, e := range es {
		s = append(s, e.label)
	}
	return strings.Join(s, " | ")
}

func (it item) click(label string) {
	it.t.Helper()
	es, err := it.menu()
	if err != nil {
		it.t.Fatal(err)
	}
	for _, e := range es {
		if e.label == label {
			if !e.enabled {
				it.t.Fatalf("%q is disabled", label)
			}
			if err := it.conn.Object(it.name, "/StatusNotifierItem/menu").Call("com.canonical.dbusmenu.Event", 0, e.id, "clicked", dbus.MakeVariant(""), uint32(0)).Err; err != nil {
				it.t.Fatal(err)
			}
			return
		}
	}
	it.t.Fatalf("no %q in the menu: %s", label, labels(es))
}

func twoReady() wire.Health {
	return wire.Health{Status: wire.StatusOK, Store: wire.StoreHealth{State: "open"},
		Components: []wire.Service{svc("store", "ready"), svc("tunnel", "ready")},
		LastWake: &wire.WakeSummary{ID: 3, DetectedBy: "logind", WokeAt: time.Now().Add(-2 * time.Minute), Done: true,
			Restore: wire.RestoreSummary{DurationMS: 1300, Ready: 2}}}
}

func TestSystrayOnAPrivateSessionBus(t *testing.T) {
	bus := testbus.New(t)
	agent := startTestAgent(t, twoReady())
	tray := startChild(t, []string{
		"DBUS_SESSION_BUS_ADDRESS=" + bus.Addr(),
		"ROUSE_TRAY_TEST_URL=" + agent.url,
		"ROUSE_TRAY_TEST_TOKEN=" + testToken,
	})
	var d *desktop
	var it item
	parent := t // connections outlive the subtests

	t.Run("WithoutATrayHostItSaysSoAndWaits", func(t *testing.T) {
		eventually(t, "the tray says there is no host", func() (bool, string) {
			return strings.Contains(tray.out.String(), "no tray host"), tray.out.String()
		})
		select {
		case <-tray.done:
			t.Fatalf("the tray exited without a host: %v", tray.err)
		default:
		}
		if n := strings.Count(tray.out.String(), "no tray host"); n != 1 {
			t.Errorf("said %d times there is no host, want once", n)
		}
	})

	t.Run("TheItemRegistersOnceAHostAppears", func(t *testing.T) {
		d = startDesktop(parent, bus.Addr())
		select {
		case name := <-d.regCh:
			it = item{t: t, conn: connect(parent, bus.Addr()), name: name}
		case <-time.After(guard):
			t.Fatalf("the item never registered; output:\n%s", tray.out.String())
		}
		if got := it.status(); got != "Active" {
			t.Errorf("Status = %q, want Active", got)
		}
	})
	if it.conn == nil {
		t.FailNow()
	}

	t.Run("TheIconTooltipAndMenuShowTheAgentsState", func(t *testing.T) {
		it.t = t
		eventually(t, "the tooltip shows the summary", func() (bool, string) {
			got := it.tooltip()
			return got == "2/2 ready · woke 2 min ago · recovered in 1.3 s", got
		})
		if c, err := it.iconColour(); err != nil || c != argb(LookReady) {
			t.Errorf("icon colour %x (%v), want %x (ready)", c, err, argb(LookReady))
		}
		es, err := it.menu()
		if err != nil {
			t.Fatal(err)
		}
		want := "rouse: all ready | store: ready | tunnel: ready | Recover now | Open dashboard | Quit"
		if got := labels(es); got != want {
			t.Errorf("menu = %q\nwant   %q", got, want)
		}
	})

	t.Run("TheyFollowTheAgentsStateOnEvents", func(t *testing.T) {
		it.t = t
		agent.setHealth(func(h *wire.Health) { h.Components[1].State = "degraded"; h.Status = wire.StatusDegraded })
		agent.emit(wire.Event{Type: wire.EventState, State: &wire.StateEvent{Name: "tunnel", State: "degraded", Previous: "ready"}})
		eventually(t, "the tooltip follows", func() (bool, string) {
			got := it.tooltip()
			return strings.HasPrefix(got, "1/2 ready"), got
		})
		if c, err := it.iconColour(); err != nil || c != argb(LookDegraded) {
			t.Errorf("icon colour %x (%v), want %x (degraded)", c, err, argb(LookDegraded))
		}
		eventually(t, "the menu follows", func() (bool, string) {
			es, err := it.menu()
			if err != nil {
				return false, err.Error()
			}
			got := labels(es)
			return strings.Contains(got, "rouse: degraded | store: ready | tunnel: degraded | Recover now"), got
		})
	})

	t.Run("AComponentAddedByAConfigChangeJoinsTheMenu", func(t *testing.T) {
		it.t = t
		agent.setHealth(func(h *wire.Health) { h.Components = append(h.Components, svc("scrobbles", "starting")) })
		agent.emit(wire.Event{Type: wire.EventConfig, Config: &wire.ConfigState{State: "ok"}})
		eventually(t, "the menu lists the new component before the actions", func() (bool, string) {
			es, err := it.menu()
			if err != nil {
				return false, err.Error()
			}
			got := labels(es)
			return strings.Contains(got, "tunnel: degraded | scrobbles: starting | Recover now"), got
		})
	})

	t.Run("ARestoreThatMissesItsDeadlineRaisesOneNotification", func(t *testing.T) {
		it.t = t
		late := &wire.Wake{ID: 8, DetectedBy: "logind", Done: true, Restore: wire.RestoreSummary{DurationMS: 10_000, Ready: 2, TimedOut: 1},
			Components: []wire.WakeComponent{{Name: "store", State: "ready"}, {Name: "tunnel", State: "degraded"}, {Name: "scrobbles", State: "ready"}}}
		onTime := &wire.Wake{ID: 7, Done: true, Restore: wire.RestoreSummary{Ready: 3}}
		agent.emit(wire.Event{Type: wire.EventWake, Wake: &wire.WakeEvent{Phase: "done", Wake: onTime}})
		agent.emit(wire.Event{Type: wire.EventWake, Wake: &wire.WakeEvent{Phase: "done", Wake: late}})
		eventually(t, "a notification", func() (bool, string) {
			n := d.notifications()
			return len(n) > 0, fmt.Sprint(n)
		})
		if n := d.notifications(); len(n) != 1 || !strings.Contains(n[0], "missed its deadline") {
			t.Errorf("notifications %q, want one about the missed deadline", n)
		}
	})

	t.Run("RecoverNowPostsAWake", func(t *testing.T) {
		it.t = t
		it.click("Recover now")
		eventually(t, "a wake is posted", func() (bool, string) {
			n := agent.wakes.Load()
			return n == 1, fmt.Sprint(n, " wakes")
		})
	})

	t.Run("OpenDashboardOpensAOneTimeLoginURL", func(t *testing.T) {
		it.t = t
		it.click("Open dashboard")
		eventually(t, "the login URL is opened", func() (bool, string) {
			b, _ := os.ReadFile(tray.opened)
			return strings.HasPrefix(string(b), agent.url+"/login?code="), string(b)
		})
	})

	t.Run("AnAgentRestartIsQuiet", func(t *testing.T) {
		it.t = t
		agent.restart(parent)
		agent.setHealth(func(h *wire.Health) { h.Components[1].State = "ready"; h.Status = wire.StatusOK })
		// The tray reconnects by itself and re-reads health on connect.
		eventually(t, "the tray follows the restarted agent", func() (bool, string) {
			got := it.tooltip()
			return strings.HasPrefix(got, "2/3 ready"), got
		})
		if out := tray.out.String(); strings.Contains(out, "cannot reach") {
			t.Errorf("noise about a restart:\n%s", out)
		}
	})

	t.Run("TermEndsItCleanly", func(t *testing.T) {
		if err := tray.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := tray.wait(t); code != 0 {
			t.Errorf("exit code %d, want 0; output:\n%s", code, tray.out.String())
		}
		out := tray.out.String()
		for _, bad := range []string{"panic", "DATA RACE", "cannot reach"} {
			if strings.Contains(out, bad) {
				t.Errorf("output mentions %q:\n%s", bad, out)
			}
		}
	})
}

func TestSystrayWithoutASessionBus(t *testing.T) {
	// A fake dbus-launch first in PATH: the tray must never start a bus.
	bin := t.TempDir()
	marker := filepath.Join(t.TempDir(), "launched")
	script := "#!/bin/sh\necho launched > " + marker + "\nexit 1\n"
	if err := os.WriteFile(filepath.Join(bin, "dbus-launch"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DBUS_SESSION_BUS_ADDRESS=") {
			env = append(env, kv)
		}
	}
	c := &child{out: &logBuf{}, done: make(chan struct{})}
	c.cmd = exec.Command(os.Args[0], "-test.run=^$")
	c.cmd.Env = append(env, childEnv+"=1", "PATH="+bin+":"+os.Getenv("PATH"), "XDG_RUNTIME_DIR="+t.TempDir(),
		"ROUSE_TRAY_TEST_URL=http://127.0.0.1:9", "ROUSE_TRAY_TEST_TOKEN="+testToken)
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.done) }()
	if code := c.wait(t); code != 1 {
		t.Errorf("exit code %d, want 1; output:\n%s", code, c.out.String())
	}
	if out := c.out.String(); !strings.Contains(out, "no desktop session bus") || strings.Contains(out, "panic") {
		t.Errorf("output:\n%s", out)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("dbus-launch was run")
	}
}

func TestSystrayWhenTheSessionBusGoesAway(t *testing.T) {
	bus := testbus.New(t)
	d := startDesktop(t, bus.Addr())
	agent := startTestAgent(t, twoReady())
	tray := startChild(t, []string{
		"DBUS_SESSION_BUS_ADDRESS=" + bus.Addr(),
		"ROUSE_TRAY_TEST_URL=" + agent.url,
		"ROUSE_TRAY_TEST_TOKEN=" + testToken,
	})
	select {
	case <-d.regCh:
	case <-time.After(guard):
		t.Fatalf("the item never registered; output:\n%s", tray.out.String())
	}
	eventually(t, "the tray follows the agent", func() (bool, string) { return agent.subscribers() > 0, "no subscriber" })
	bus.Stop()
	code := tray.wait(t)
	out := tray.out.String()
	if code != 1 || !strings.Contains(out, "session bus closed") {
		t.Errorf("exit code %d, want 1 saying the session bus closed; output:\n%s", code, out)
	}
	for _, bad := range []string{"panic", "DATA RACE"} {
		if strings.Contains(out, bad) {
			t.Errorf("output mentions %q:\n%s", bad, out)
		}
	}
}
