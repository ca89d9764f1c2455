// Package panel_test runs `rouse tray` in a real desktop panel: waybar's
// tray module (a StatusNotifier host from Debian's packages) in a headless
// sway, on a private session bus, against a real agent. Screenshots taken
// with grim show the icon in the panel and its colour changing on a wake;
// the menu's actions are sent the way the panel sends them (dbusmenu Event
// on the session bus) and must reach the agent.
//
// Everything is private: a session bus of its own, sway's Wayland socket in
// the test's own runtime directory, an agent on a free loopback port with
// its own data directory; every process is killed by PID at the end. sway
// refuses to run as root, so when the tests run as root (as in CI) sway,
// waybar and grim run as the unprivileged user "nobody".
package panel_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	_ "image/png"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/rouse-dev/rouse/client"
	"github.com/rouse-dev/rouse/platform/tray"
	"github.com/rouse-dev/rouse/tests/internal/harness"
)

// guard bounds waits that only fail a broken run; never a speed check.
const guard = 60 * time.Second

var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rouse-panel-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin, err = harness.Build(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// desktop is one private session: bus, compositor, panel.
type desktop struct {
	t       *testing.T
	dir     string // the session's directory (readable by the desktop user)
	runtime string // XDG_RUNTIME_DIR of sway and waybar
	shots   string // where screenshots are kept
	bus     string // the session bus address
	wayland string // WAYLAND_DISPLAY
	cred    *syscall.Credential
	mu      sync.Mutex
	procs   []*exec.Cmd
}

// desktopUser is who runs sway, waybar and grim: nobody when we are root
// (sway refuses root), else ourselves.
func desktopUser(t *testing.T) *syscall.Credential {
	if os.Getuid() != 0 {
		return nil
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("running as root, sway needs an unprivileged user: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

func (d *desktop) own(path string) {
	d.t.Helper()
	if d.cred == nil {
		return
	}
	if err := os.Chown(path, int(d.cred.Uid), int(d.cred.Gid)); err != nil {
		d.t.Fatal(err)
	}
}

// start runs a process of the session in its own process group; it is
// killed by PID (the group) at cleanup.
func (d *desktop) start(asDesktopUser bool, env []string, logName string, name string, args ...string) *exec.Cmd {
	d.t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = d.dir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if asDesktopUser && d.cred != nil {
		cmd.SysProcAttr.Credential = d.cred
	}
	logf, err := os.Create(filepath.Join(d.shots, logName+".log"))
	if err != nil {
		d.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		d.t.Fatalf("start %s: %v", name, err)
	}
	logf.Close()
	d.mu.Lock()
	d.procs = append(d.procs, cmd)
	d.mu.Unlock()
	return cmd
}

func (d *desktop) stopAll() {
	d.mu.Lock()
	procs := d.procs
	d.procs = nil
	d.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- { // the tray before the panel before the compositor
		p := procs[i]
		_ = syscall.Kill(-p.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
}

func (d *desktop) env(extra ...string) []string {
	return append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + d.dir,
		"XDG_RUNTIME_DIR=" + d.runtime,
		"XDG_CONFIG_HOME=" + filepath.Join(d.dir, "config"),
		"DBUS_SESSION_BUS_ADDRESS=" + d.bus,
	}, extra...)
}

const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`

func startDesktop(t *testing.T) *desktop {
	for _, tool := range []string{"dbus-daemon", "sway", "waybar", "grim", "swaymsg"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: scripts/test-deps.sh installs it (%v)", tool, err)
		}
	}
	shots := os.Getenv("ROUSE_TEST_ARTIFACTS")
	if shots == "" {
		var err error
		if shots, err = os.MkdirTemp("", "rouse-panel-"); err != nil {
			t.Fatal(err)
		}
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots and logs are kept in %s", shots)
	// Not t.TempDir: its parent is private to us, and the desktop user
	// must reach this one.
	dir, err := os.MkdirTemp("", "rouse-panel-session-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	d := &desktop{t: t, dir: dir, shots: shots, cred: desktopUser(t)}
	t.Cleanup(d.stopAll)
	for _, p := range []string{d.dir, shots} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
		d.own(p)
	}
	d.runtime = filepath.Join(d.dir, "run")
	if err := os.Mkdir(d.runtime, 0o700); err != nil {
		t.Fatal(err)
	}
	d.own(d.runtime)

	// The session bus.
	sock := filepath.Join(d.dir, "bus")
	conf := filepath.Join(d.dir, "bus.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, busConfig, sock), 0o644); err != nil {
		t.Fatal(err)
	}
	d.start(false, []string{"PATH=" + os.Getenv("PATH")}, "dbus", "dbus-daemon", "--config-file="+conf, "--nofork", "--nopidfile")
	d.bus = "unix:path=" + sock
	harness.Eventually(t, guard, "the session bus", func() bool {
		c, err := dbus.Connect(d.bus)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	if err := os.Chmod(sock, 0o777); err != nil {
		t.Fatal(err)
	}

	// The compositor: headless, software rendering, no input devices.
	swayConf := filepath.Join(d.dir, "sway.conf")
	if err := os.WriteFile(swayConf, []byte("output HEADLESS-1 resolution 800x200\nxwayland disable\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.start(true, d.env("WLR_BACKENDS=headless", "WLR_LIBINPUT_NO_DEVICES=1", "WLR_RENDERER=pixman"), "sway", "sway", "-c", swayConf)
	harness.Eventually(t, guard, "sway's Wayland socket", func() bool {
		es, _ := os.ReadDir(d.runtime)
		for _, e := range es {
			if strings.HasPrefix(e.Name(), "wayland-") && !strings.HasSuffix(e.Name(), ".lock") {
				d.wayland = e.Name()
				return true
			}
		}
		return false
	})

	// The panel: waybar with only its tray module.
	wb := filepath.Join(d.dir, "waybar.json")
	css := filepath.Join(d.dir, "waybar.css")
	if err := os.WriteFile(wb, []byte(`{"layer":"top","position":"top","height":40,"modules-right":["tray"],"tray":{"icon-size":32,"spacing":4}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(css, []byte("* { font-size: 12px; } window#waybar { background: #202020; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.start(true, d.env("WAYLAND_DISPLAY="+d.wayland, "NO_AT_BRIDGE=1", "GTK_A11Y=none"), "waybar", "waybar", "-c", wb, "-s", css)
	harness.Eventually(t, guard, "waybar's StatusNotifierWatcher on the session bus", func() bool {
		c, err := dbus.Connect(d.bus)
		if err != nil {
			return false
		}
		defer c.Close()
		var has bool
		err = c.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, "org.kde.StatusNotifierWatcher").Store(&has)
		return err == nil && has
	})
	return d
}

// shot takes a screenshot of the whole output with grim.
func (d *desktop) shot(name string) image.Image {
	d.t.Helper()
	path := filepath.Join(d.shots, name+".png")
	cmd := exec.Command("grim", path)
	cmd.Env = d.env("WAYLAND_DISPLAY=" + d.wayland)
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if d.cred != nil {
		cmd.SysProcAttr.Credential = d.cred
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		d.t.Fatalf("grim: %v\n%s", err, out)
	}
	f, err := os.Open(path)
	if err != nil {
		d.t.Fatal(err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		d.t.Fatal(err)
	}
	return img
}

// inPanel counts the pixels of the panel (the top 40 pixel rows) that have
// colour c.
func inPanel(img image.Image, c color.NRGBA) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Min.Y+40 && y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if near(r>>8, c.R) && near(g>>8, c.G) && near(bl>>8, c.B) {
				n++
			}
		}
	}
	return n
}

func near(v uint32, want uint8) bool {
	d := int(v) - int(want)
	return d > -12 && d < 12
}

// iconPixels is how many pixels of a look's colour make "the icon is
// there": the disc is 32 px wide in the panel, so hundreds of pixels.
const iconPixels = 100

// waitLook takes screenshots until the panel shows look's colour.
func (d *desktop) waitLook(name string, look tray.Look) {
	d.t.Helper()
	deadline := time.Now().Add(guard)
	for i := 0; ; i++ {
		img := d.shot(name)
		if inPanel(img, tray.Colour(look)) >= iconPixels {
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("the panel never showed the %v icon (colour %v); see %s", look, tray.Colour(look), filepath.Join(d.shots, name+".png"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sni is the tray's StatusNotifierItem as the panel sees it.
type sni struct {
	t    *testing.T
	conn *dbus.Conn
	name string // bus name
	path dbus.ObjectPath
	menu dbus.ObjectPath
}

func (d *desktop) item() sni {
	d.t.Helper()
	conn, err := dbus.Connect(d.bus)
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { conn.Close() })
	var it sni
	harness.Eventually(d.t, guard, "the tray registered with the panel's watcher", func() bool {
		v, err := conn.Object("org.kde.StatusNotifierWatcher", "/StatusNotifierWatcher").GetProperty("org.kde.StatusNotifierWatcher.RegisteredStatusNotifierItems")
		if err != nil {
			return false
		}
		items, _ := v.Value().([]string)
		if len(items) != 1 {
			return false
		}
		// "busname/path" or just "busname" (then the path is the default).
		name, path, ok := strings.Cut(items[0], "/")
		it = sni{t: d.t, conn: conn, name: name, path: "/StatusNotifierItem"}
		if ok {
			it.path = dbus.ObjectPath("/" + path)
		}
		return true
	})
	v, err := conn.Object(it.name, it.path).GetProperty("org.kde.StatusNotifierItem.Menu")
	if err != nil {
		d.t.Fatalf("the item has no menu: %v", err)
	}
	it.menu, _ = v.Value().(dbus.ObjectPath)
	return it
}

// click sends what the panel sends when the user picks a menu entry: a
// dbusmenu "clicked" event for the entry's id.
func (it sni) click(label string) {
	it.t.Helper()
	var rev uint32
	var layout struct {
		ID       int32
		Props    map[string]dbus.Variant
		Children []dbus.Variant
	}
	obj := it.conn.Object(it.name, it.menu)
	if err := obj.Call("com.canonical.dbusmenu.GetLayout", 0, int32(0), int32(-1), []string{}).Store(&rev, &layout); err != nil {
		it.t.Fatal(err)
	}
	var seen []string
	for _, c := range layout.Children {
		f, ok := c.Value().([]any)
		if !ok || len(f) != 3 {
			continue
		}
		id, _ := f[0].(int32)
		props, _ := f[1].(map[string]dbus.Variant)
		l, _ := props["label"].Value().(string)
		seen = append(seen, l)
		if l != label {
			continue
		}
		if e, ok := props["enabled"]; ok && e.Value() == false {
			it.t.Fatalf("%q is disabled", label)
		}
		if err := obj.Call("com.canonical.dbusmenu.Event", 0, id, "clicked", dbus.MakeVariant(""), uint32(time.Now().Unix())).Err; err != nil {
			it.t.Fatal(err)
		}
		return
	}
	it.t.Fatalf("no %q in the menu: %q", label, seen)
}

// agent is a real agent on a private port and data directory, with one
// exec component that takes 3 s to be ready after each wake, so a wake is
// long enough to be seen in the panel.
type agent struct {
	addr, data string
	c          *client.Client
}

func startAgent(t *testing.T, d *desktop) *agent {
	a := &agent{addr: freeAddr(t), data: filepath.Join(t.TempDir(), "data")}
	cfg := filepath.Join(t.TempDir(), "rouse.yaml")
	yaml := "trackers:\n  - name: tunnel\n    kind: exec\n    command: [sleep, \"3600\"]\n    ready_after: 3s\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	d.start(false, []string{"PATH=" + os.Getenv("PATH"), "HOME=" + d.dir, "DBUS_SYSTEM_BUS_ADDRESS=unix:path=" + filepath.Join(d.dir, "no-system-bus")},
		"agent", bin, "run", "--config", cfg, "--data", a.data, "--listen", a.addr)
	harness.Eventually(t, guard, "the agent's token", func() bool {
		c, err := client.FromEnv(a.addr, a.data)
		if err != nil {
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		h, err := c.Health(ctx)
		if err != nil || h.Status != "ok" {
			c.Close()
			return false
		}
		a.c = c
		return true
	})
	t.Cleanup(a.c.Close)
	return a
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestTrayInARealPanel(t *testing.T) {
	d := startDesktop(t)
	a := startAgent(t, d)

	// A fake browser opener records what "Open dashboard" opens.
	opened := filepath.Join(d.dir, "opened")
	fake := filepath.Join(d.dir, "fakebin")
	if err := os.Mkdir(fake, 0o755); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\nprintf '%s' \"$1\" > " + opened + "\n"
	if err := os.WriteFile(filepath.Join(fake, "xdg-open"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	// Before the tray runs, nothing in the panel has the icon's colour.
	if n := inPanel(d.shot("0-no-tray"), tray.Colour(tray.LookReady)); n >= iconPixels {
		t.Fatalf("the panel shows %d green pixels before the tray runs", n)
	}
	env := d.env("PATH="+fake+":"+os.Getenv("PATH"), "XDG_DATA_HOME="+filepath.Join(d.dir, "share"))
	d.start(false, env, "tray", bin, "tray", "--data", a.data, "--listen", a.addr, "--log-level", "debug")

	it := d.item()
	t.Run("TheIconIsInThePanel", func(t *testing.T) {
		d.waitLook("1-ready", tray.LookReady)
	})
	t.Run("ItTurnsAmberDuringAWakeAndGreenAfter", func(t *testing.T) {
		before, err := a.c.Wakes(context.Background(), 1)
		if err != nil {
			t.Fatal(err)
		}
		w, err := a.c.Wake(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(before) > 0 && w.ID <= before[0].ID {
			t.Fatalf("wake %d is not new", w.ID)
		}
		d.waitLook("2-recovering", tray.LookRecovering)
		d.waitLook("3-ready-again", tray.LookReady)
	})
	t.Run("RecoverNowFromTheMenuWakesTheAgent", func(t *testing.T) {
		ws, err := a.c.Wakes(context.Background(), 1)
		if err != nil || len(ws) == 0 {
			t.Fatalf("wakes: %v %v", ws, err)
		}
		last := ws[0].ID
		it.click("Recover now")
		harness.Eventually(t, guard, "a manual wake from the menu", func() bool {
			ws, err := a.c.Wakes(context.Background(), 1)
			return err == nil && len(ws) == 1 && ws[0].ID > last && ws[0].DetectedBy == "manual"
		})
		d.waitLook("4-recovering-from-menu", tray.LookRecovering)
		d.waitLook("5-ready-after-menu", tray.LookReady)
	})
	t.Run("OpenDashboardFromTheMenuOpensAWorkingLoginLink", func(t *testing.T) {
		it.click("Open dashboard")
		var url string
		harness.Eventually(t, guard, "the browser opener called", func() bool {
			b, err := os.ReadFile(opened)
			url = string(b)
			return err == nil && url != ""
		})
		if !strings.HasPrefix(url, "http://"+a.addr+"/login?code=") {
			t.Fatalf("opened %q", url)
		}
		// The link logs a browser in: its page's form exchanges the code for
		// a session, as a browser would post it.
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("the login link answered %s", resp.Status)
		}
		code := strings.TrimPrefix(url, "http://"+a.addr+"/login?code=")
		req, err := http.NewRequest(http.MethodPost, "http://"+a.addr+"/login", strings.NewReader("code="+code))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "http://"+a.addr)
		hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err = hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/#session=") {
			t.Fatalf("logging in with the link's code answered %s, location %q", resp.Status, resp.Header.Get("Location"))
		}
	})
	if t.Failed() {
		for _, n := range []string{"tray", "waybar", "sway", "agent"} {
			b, _ := os.ReadFile(filepath.Join(d.shots, n+".log"))
			t.Logf("%s log (tail):\n%s", n, tail(b, 20))
		}
	}
}

func tail(b []byte, n int) string {
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
