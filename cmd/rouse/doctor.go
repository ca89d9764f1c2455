package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/spf13/cobra"

	"github.com/rouse-dev/rouse/agent/config"
	"github.com/rouse-dev/rouse/client"
	"github.com/rouse-dev/rouse/installer"
	"github.com/rouse-dev/rouse/internal/perm"
	"github.com/rouse-dev/rouse/platform/netwatch"
	"github.com/rouse-dev/rouse/wire"
)

// level is a check's verdict. Only fail makes `rouse doctor` exit 1: a
// warning is something that works, but not as well as it could.
type level int

const (
	levelOK level = iota
	levelWarn
	levelFail
)

func (l level) String() string { return [...]string{"ok", "warn", "fail"}[l] }

// finding is one line of the report.
type finding struct {
	level level
	name  string // the check, e.g. "logind"
	msg   string // what was found
	fix   string // what to do; empty when ok
}

// doctor holds what the checks look at; newDoctor fills it from the flags
// and environment, tests fill it by hand.
type doctor struct {
	configPath string         // "" means the embedded default
	cfg        *config.Config // nil when the config is invalid
	dataDir    string
	listen     string
	systemBus  string        // address; "" means the standard system bus
	sessionBus string        // address; "" means none
	timeout    time.Duration // bound for each check that talks to something
	budget     time.Duration // the agent's pre-sleep budget
	logind     bool          // whether this OS uses logind
	// service reports the OS service of one flavour: its file and state.
	service func(user bool) (file string, st installer.State, err error)
	// netProbe replaces the OS network evaluation (tests).
	netProbe func() (bool, string)
}

// The standard D-Bus system bus, as D-Bus defines it.
const defaultSystemBus = "unix:path=/var/run/dbus/system_bus_socket"

func newDoctor(g *globals) *doctor {
	d := &doctor{
		configPath: g.configPath(),
		systemBus:  os.Getenv("DBUS_SYSTEM_BUS_ADDRESS"),
		sessionBus: os.Getenv("DBUS_SESSION_BUS_ADDRESS"),
		timeout:    5 * time.Second,
		budget:     3 * time.Second,
		logind:     usesLogind,
		service:    serviceState,
	}
	if d.systemBus == "" {
		d.systemBus = defaultSystemBus
	}
	return d
}

func serviceState(user bool) (string, installer.State, error) {
	in, err := installer.New(installer.Options{User: user, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return "", installer.NotInstalled, err
	}
	st, err := in.Status()
	return in.File(), st, err
}

func newDoctorCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "doctor",
		Short: "Check what usually goes wrong, and say how to fix it",
		Long: `Check what usually goes wrong, and say how to fix it.

One line per check: ok, warn (works, but not as well as it could) or fail.
It checks the config file (valid, not writable by others), the data directory
and the API token (private to you), the API port (free, or held by rouse), the
running agent, logind (reachable on the system bus, and the delay lock that lets
rouse checkpoint before sleep allowed), the tray host on the session bus, the
network watch, and the OS service. Exit status 1 when a check fails.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d := newDoctor(g)
			out := cmd.OutOrStdout()
			p := newPainter(out)
			var fails, warns int
			for _, f := range d.run(cmd.Context(), g) {
				switch f.level {
				case levelFail:
					fails++
				case levelWarn:
					warns++
				}
				fmt.Fprintln(out, formatFinding(p, f))
			}
			fmt.Fprintf(out, "\n%d failed, %d warnings\n", fails, warns)
			if fails > 0 {
				return codeError{1}
			}
			return nil
		},
	}
}

// formatFinding renders one line: "ok    config   message — fix: ...".
func formatFinding(p painter, f finding) string {
	lv := fmt.Sprintf("%-4s", f.level)
	if p.on {
		code := map[level]string{levelOK: "32", levelWarn: "33", levelFail: "31"}[f.level]
		lv = "\x1b[" + code + "m" + lv + "\x1b[0m"
	}
	s := fmt.Sprintf("%s  %-9s %s", lv, f.name, f.msg)
	if f.fix != "" {
		s += " — fix: " + f.fix
	}
	return s
}

// run performs every check in order. It resolves the config first: the
// data directory and the port come from it.
func (d *doctor) run(ctx context.Context, g *globals) []finding {
	var fs []finding
	fs = append(fs, d.checkConfig())
	cfgData, cfgListen := "", ""
	if d.cfg != nil {
		cfgData, cfgListen = d.cfg.Data, d.cfg.Listen
	}
	if d.dataDir == "" {
		if dir, err := g.dataDir(cfgData); err == nil {
			d.dataDir = dir
		} else {
			fs = append(fs, fail("data", "set ROUSE_DATA or pass --data", "%v", err))
			return fs
		}
	}
	if d.listen == "" {
		d.listen = g.listenAddr(cfgListen)
	}
	fs = append(fs, d.checkDataDir(), d.checkToken())
	port, rouse := d.checkPort(ctx)
	fs = append(fs, port, d.checkAgent(ctx, rouse))
	fs = append(fs, d.checkLogind(ctx), d.checkTray(ctx), d.checkNetwork(ctx), d.checkService())
	return fs
}

func ok(name, format string, a ...any) finding {
	return finding{level: levelOK, name: name, msg: fmt.Sprintf(format, a...)}
}

func warn(name, fix, format string, a ...any) finding {
	return finding{level: levelWarn, name: name, msg: fmt.Sprintf(format, a...), fix: fix}
}

func fail(name, fix, format string, a ...any) finding {
	return finding{level: levelFail, name: name, msg: fmt.Sprintf(format, a...), fix: fix}
}

// checkConfig: the file is valid and not writable by others.
func (d *doctor) checkConfig() finding {
	const name = "config"
	if d.configPath == "" {
		cfg, err := config.Parse("default", config.DefaultYAML, builtinKinds())
		if err != nil {
			return fail(name, "report this bug", "the embedded default config is invalid: %v", err)
		}
		d.cfg = cfg
		return ok(name, "no config file: running on the embedded default (start one with: rouse config default > ~/.config/rouse/rouse.yaml)")
	}
	if _, err := os.Stat(d.configPath); err != nil {
		return fail(name, "create it (rouse config default > "+d.configPath+"), or point --config / ROUSE_CONFIG elsewhere", "%s: %v", d.configPath, errors.Unwrap(err))
	}
	if err := perm.File(d.configPath); err != nil {
		return fail(name, fixOf(err, "rouse config check "+d.configPath), "%s: someone else could make rouse run their commands: %v", d.configPath, err)
	}
	cfg, err := config.Load(d.configPath, builtinKinds())
	if err != nil {
		var errs config.Errors
		if errors.As(err, &errs) && len(errs) > 0 {
			more := ""
			if len(errs) > 1 {
				more = fmt.Sprintf(" (and %d more)", len(errs)-1)
			}
			return fail(name, "see every error with: rouse config check "+d.configPath, "%v%s", errs[0], more)
		}
		return fail(name, "rouse config check "+d.configPath, "%v", err)
	}
	d.cfg = cfg
	return ok(name, "%s: valid (%s, %s)", d.configPath, plural(len(cfg.Trackers), "tracker", "trackers"), plural(len(cfg.Jobs), "job", "jobs"))
}

// checkDataDir: the directory is ours, private and writable.
func (d *doctor) checkDataDir() finding {
	const name = "data dir"
	fi, err := os.Stat(d.dataDir)
	if errors.Is(err, os.ErrNotExist) {
		return warn(name, "start the agent once (rouse run), or create it with: mkdir -m 700 -p "+d.dataDir, "%s does not exist yet", d.dataDir)
	}
	if err != nil {
		return fail(name, "run as the agent's user, or pass --data", "%s: %v", d.dataDir, err)
	}
	if !fi.IsDir() {
		return fail(name, "move it away, or pass --data DIR", "%s is not a directory", d.dataDir)
	}
	probe, err := os.CreateTemp(d.dataDir, ".doctor-*")
	if err != nil {
		return fail(name, "chown it to the agent's user (or run as that user)", "%s is not writable: %v", d.dataDir, errors.Unwrap(err))
	}
	probe.Close()
	os.Remove(probe.Name())
	if err := perm.CheckDir(d.dataDir); err != nil {
		return fail(name, fixOf(err, "chmod 700 "+d.dataDir), "the agent refuses it: %v", err)
	}
	return ok(name, "%s: private and writable", d.dataDir)
}

// checkToken: the API token exists, is readable and private (the CLI
// refuses a token others can read).
func (d *doctor) checkToken() finding {
	const name = "token"
	path := filepath.Join(d.dataDir, wire.TokenFile)
	_, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return warn(name, "start the agent once: it creates the token", "no API token at %s yet", path)
	}
	if err != nil {
		return fail(name, "run as the agent's user (or with sudo for the system service)", "%s: %v", path, err)
	}
	if err := perm.Secret(path); err != nil {
		return fail(name, fixOf(err, "chmod 600 "+path), "others could read it and drive the agent: %v", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return fail(name, "run as the agent's user (or with sudo for the system service)", "cannot read %s: %v", path, errors.Unwrap(err))
	}
	f.Close()
	return ok(name, "%s: private", path)
}

// checkPort: the API address is free, or held by rouse. It reports
// whether a rouse answers there.
func (d *doctor) checkPort(ctx context.Context) (finding, bool) {
	const name = "port"
	conn, err := net.DialTimeout("tcp", dialAddr(d.listen), d.timeout)
	if err != nil {
		ln, lerr := net.Listen("tcp", d.listen)
		if lerr != nil {
			return fail(name, "set listen: in the config, or pass --listen", "%s: nothing answers, yet it cannot be bound: %v", d.listen, lerr), false
		}
		ln.Close()
		return ok(name, "%s is free (the agent is not running)", d.listen), false
	}
	conn.Close()
	hctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(hctx, http.MethodGet, "http://"+dialAddr(d.listen)+"/healthz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		defer resp.Body.Close()
		var h struct{ Status, Version string }
		if resp.StatusCode == http.StatusOK && json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&h) == nil && h.Status == "alive" {
			return ok(name, "%s is held by rouse %s", d.listen, h.Version), true
		}
	}
	return fail(name, "stop the other program, or move rouse with listen: in the config or --listen", "%s is used by another program (it does not answer like rouse)", d.listen), false
}

// dialAddr turns a listen address into one to dial (a wildcard host is
// reached on loopback).
func dialAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}

// checkAgent: the agent answers the authenticated API.
func (d *doctor) checkAgent(ctx context.Context, running bool) finding {
	const name = "agent"
	if !running {
		return warn(name, "start it: rouse service start (installed) or rouse run", "not running")
	}
	c, err := client.FromEnv(d.listen, d.dataDir)
	if err != nil {
		return fail(name, "check the token above", "cannot authenticate: %v", err)
	}
	defer c.Close()
	hctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	h, err := c.Health(hctx)
	if err != nil {
		var ae *client.APIError
		if errors.As(err, &ae) && ae.Status == http.StatusForbidden {
			return fail(name, "this is another agent's port, or the token changed: check --data and --listen", "the agent refuses our token: %v", err)
		}
		return fail(name, "look at the agent's log (journalctl --user -u rouse)", "%v", err)
	}
	ready, active := 0, 0
	for _, s := range h.Components {
		if s.Desired == "stopped" {
			continue
		}
		active++
		if s.State == "ready" || s.State == "catching_up" {
			ready++
		}
	}
	msg := fmt.Sprintf("answering: %s, %d/%d ready, store %s", h.Status, ready, active, h.Store.State)
	if h.Config.State == "rejected" {
		return warn(name, "fix the config (rouse config check) — the agent keeps running the previous one", "%s; the last config edit was rejected: %s", msg, h.Config.Error)
	}
	if h.Status != "ok" && h.Status != "starting" {
		return warn(name, "rouse status shows which component and why", "%s", msg)
	}
	if h.Power != nil && h.Power.LockError != "" {
		return warn(name, "the agent retries by itself; if it persists, see the logind check below and the agent's log",
			"%s; the agent holds no sleep delay lock (%s): a sleep may begin before it has checkpointed its store", msg, h.Power.LockError)
	}
	return ok(name, "%s", msg)
}

// checkLogind: logind answers on the system bus, grants the delay lock
// (taken and released at once) and allows enough delay for the agent's
// pre-sleep work.
func (d *doctor) checkLogind(ctx context.Context) finding {
	const name = "logind"
	if !d.logind {
		return ok(name, "not used on this OS: sleep and wake come from its own power events")
	}
	const fallback = " (rouse then notices sleep only afterwards, by the clock, and cannot checkpoint before it)"
	cctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	conn, err := dbus.Connect(d.systemBus, dbus.WithContext(cctx))
	if err != nil {
		return fail(name, "start dbus (systemctl start dbus), or set DBUS_SYSTEM_BUS_ADDRESS", "cannot reach the system bus at %s: %v%s", d.systemBus, err, fallback)
	}
	defer conn.Close()
	obj := conn.Object("org.freedesktop.login1", "/org/freedesktop/login1")
	var fd dbus.UnixFD
	err = obj.CallWithContext(cctx, "org.freedesktop.login1.Manager.Inhibit", 0,
		"sleep", "rouse doctor", "Checking that rouse may delay sleep", "delay").Store(&fd)
	if err != nil {
		var de dbus.Error
		if errors.As(err, &de) {
			switch de.Name {
			case "org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner":
				return fail(name, "rouse needs systemd-logind (or elogind) running", "logind is not on the system bus%s", fallback)
			case "org.freedesktop.DBus.Error.AccessDenied", "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired":
				return fail(name, "run the agent in your login session (rouse install --user), or allow org.freedesktop.login1.inhibit-delay-sleep in polkit", "logind refuses the delay lock: %v%s", de.Body, fallback)
			case "org.freedesktop.login1.OperationInProgress":
				return warn(name, "run rouse doctor again once the machine is awake", "a sleep is in progress: logind refuses new delay locks until it is over")
			}
		}
		return fail(name, "check that systemd-logind runs: systemctl status systemd-logind", "Inhibit failed: %v%s", err, fallback)
	}
	os.NewFile(uintptr(fd), "inhibitor").Close() // release the lock at once
	v, err := obj.GetProperty("org.freedesktop.login1.Manager.InhibitDelayMaxUSec")
	if err != nil {
		return ok(name, "reachable, delay lock allowed (the delay limit is unknown: %v)", err)
	}
	usec, _ := v.Value().(uint64)
	max := time.Duration(usec) * time.Microsecond
	if max < d.budget {
		return warn(name, fmt.Sprintf("set InhibitDelayMaxSec=5 in /etc/systemd/logind.conf (then: systemctl restart systemd-logind), or lower sleep.budget below %s", max),
			"delay lock allowed, but logind waits at most %s before sleep, less than rouse's pre-sleep budget of %s", max, d.budget)
	}
	return ok(name, "reachable, delay lock allowed, up to %s before sleep", max)
}

// checkTray: a StatusNotifierWatcher (the tray host) is on the session bus.
// It connects to the address it is given and never starts a bus.
func (d *doctor) checkTray(ctx context.Context) finding {
	const name = "tray"
	if d.sessionBus == "" {
		return warn(name, "run rouse tray from your desktop session", "no session bus here (DBUS_SESSION_BUS_ADDRESS is not set): not in a desktop session?")
	}
	cctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	conn, err := dbus.Connect(d.sessionBus, dbus.WithContext(cctx))
	if err != nil {
		return warn(name, "run rouse tray from your desktop session", "cannot reach the session bus: %v", err)
	}
	defer conn.Close()
	var has bool
	err = conn.BusObject().CallWithContext(cctx, "org.freedesktop.DBus.NameHasOwner", 0, "org.kde.StatusNotifierWatcher").Store(&has)
	if err != nil {
		return warn(name, "", "cannot ask the session bus: %v", err)
	}
	if !has {
		return warn(name, "on GNOME, install the AppIndicator extension; rouse tray shows its icon once a tray host appears",
			"no tray host on the session bus (org.kde.StatusNotifierWatcher)")
	}
	return ok(name, "a tray host is on the session bus")
}

// logCatcher keeps the warnings a component logs.
type logCatcher struct {
	mu   sync.Mutex
	msgs []string
}

func (c *logCatcher) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (c *logCatcher) Handle(_ context.Context, r slog.Record) error {
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			msg += ": " + a.Value.String()
		}
		return true
	})
	c.mu.Lock()
	c.msgs = append(c.msgs, msg)
	c.mu.Unlock()
	return nil
}
func (c *logCatcher) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *logCatcher) WithGroup(string) slog.Handler      { return c }

func (c *logCatcher) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.msgs...)
}

// checkNetwork runs the network watch briefly: it must reach a verdict,
// without falling back to polling.
func (d *doctor) checkNetwork(ctx context.Context) finding {
	const name = "network"
	lc := &logCatcher{}
	w := netwatch.New(netwatch.Options{Logger: slog.New(lc), Probe: d.netProbe})
	ch, unsub := w.Subscribe()
	defer unsub()
	wctx, cancel := context.WithTimeout(ctx, d.timeout)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	var st netwatch.Status
	select {
	case st = <-ch:
	case <-wctx.Done():
	}
	cancel()
	runErr := <-done
	if !st.Known() {
		if runErr != nil && !errors.Is(runErr, context.DeadlineExceeded) && !errors.Is(runErr, context.Canceled) {
			return fail(name, "rouse then treats the network as always up", "the network watch failed: %v", runErr)
		}
		return fail(name, "rouse then treats the network as always up", "the network watch gave no verdict within %s", d.timeout)
	}
	if msgs := lc.list(); len(msgs) > 0 {
		return warn(name, "rouse falls back to polling every 5 s: check that netlink is allowed (containers, sandboxes)", "%s; but: %s", onlineText(st), strings.Join(msgs, "; "))
	}
	if !st.Online {
		return warn(name, "components that need the network wait for it; connect to bring them up", "%s", onlineText(st))
	}
	return ok(name, "%s", onlineText(st))
}

func onlineText(st netwatch.Status) string {
	if st.Online {
		return "online: " + st.Reason
	}
	return "offline: " + st.Reason
}

// checkService: the OS service is installed (user, else system) and
// running.
func (d *doctor) checkService() finding {
	const name = "service"
	var firstErr error
	for _, user := range []bool{true, false} {
		flavour := "system service"
		if user {
			flavour = "user service"
		}
		file, st, err := d.service(user)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		where := ""
		if file != "" {
			where = " (" + file + ")"
		}
		switch st {
		case installer.Running:
			return ok(name, "%s installed%s and running", flavour, where)
		case installer.Stopped:
			return warn(name, "rouse service start", "%s installed%s but not running", flavour, where)
		case installer.Failed:
			logs := "journalctl -u rouse"
			if user {
				logs = "journalctl --user -u rouse"
			}
			return fail(name, "see why with "+logs+", then: rouse service start", "%s installed%s, and the service manager gave up on it", flavour, where)
		}
	}
	if firstErr != nil {
		return warn(name, "run rouse run yourself, or rouse install --user", "cannot ask the service manager: %v", firstErr)
	}
	return warn(name, "rouse install --user (starts at login), or keep running rouse run yourself", "not installed as a service")
}

// fixOf is the command a refusal of internal/perm names, else def.
func fixOf(err error, def string) string {
	var pe *perm.Error
	if errors.As(err, &pe) && pe.Fix != "" {
		return pe.Fix
	}
	return def
}
