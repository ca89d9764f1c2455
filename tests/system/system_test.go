//go:build linux

package system

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/wire"
)

// cycles is the number of real `systemctl suspend` cycles per service.
const cycles = 3

// The system service's config: an exec component, and one whose command
// daemonizes a grandchild (setsid) as `ssh -f` does.
const systemConfig = `log: {level: debug, format: json}
trackers:
  - name: worker
    kind: exec
    command: [sh, -c, "exec sleep 10001"]
    ready: {command: ["true"]}
  - name: forker
    kind: exec
    command: [sh, -c, "setsid sh -c 'exec sleep 10002' </dev/null >/dev/null 2>&1 & exec sleep 10003"]
    ready: {command: ["true"]}
`

const badConfig = "trackers:\n  - name: x\n    kind: no-such-kind\n"

// buildRouse builds the binary the README builds.
func buildRouse(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "rouse")
	cmd := exec.Command("go", "build", "-o", bin, "../../cmd/rouse")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// agent is one installed rouse: the system service, or a user's.
type agent struct {
	m     *Machine
	user  string // "" for the system service
	uid   int
	token string // path of the API token inside the machine
}

// cmd prefixes args to run as the agent's user, with the environment
// `systemctl --user` needs.
func (a *agent) cmd(args ...string) []string {
	if a.user == "" {
		return args
	}
	rt := fmt.Sprintf("/run/user/%d", a.uid)
	return append([]string{"runuser", "-u", a.user, "--", "env", "HOME=/home/" + a.user, "XDG_RUNTIME_DIR=" + rt,
		"DBUS_SESSION_BUS_ADDRESS=unix:path=" + rt + "/bus"}, args...)
}

func (a *agent) systemctl(args ...string) (string, error) {
	if a.user != "" {
		args = append([]string{"--user"}, args...)
	}
	return a.m.Run(a.cmd(append([]string{"systemctl"}, args...)...)...)
}

func (a *agent) show(props ...string) map[string]string {
	a.m.t.Helper()
	args := []string{"show", "rouse"}
	for _, p := range props {
		args = append(args, "-p", p)
	}
	out, err := a.systemctl(args...)
	if err != nil {
		a.m.t.Fatalf("systemctl show: %v\n%s", err, out)
	}
	return parseProps(out)
}

// api calls the agent's REST API inside the machine; status 0 when it
// does not answer.
func (a *agent) api(method, path string) (int, string) {
	script := fmt.Sprintf(`curl -s -m 10 -X %s -w '\n%%{http_code}' -H "Authorization: Bearer $(cat %s)" http://127.0.0.1:8000%s`, method, a.token, path)
	out, _ := a.m.Run(a.cmd("sh", "-c", script)...)
	out = strings.TrimRight(out, "\n")
	i := strings.LastIndex(out, "\n")
	if i < 0 {
		return 0, out
	}
	code, _ := strconv.Atoi(out[i+1:])
	return code, out[:i]
}

func (a *agent) lastWake() (wire.Wake, bool) {
	code, body := a.api("GET", "/api/v1/wakes?limit=1")
	var ws wire.Wakes
	if code != 200 || json.Unmarshal([]byte(body), &ws) != nil || len(ws.Wakes) == 0 {
		return wire.Wake{}, false
	}
	return ws.Wakes[0], true
}

// allReady reports whether every active component is ready.
func (a *agent) allReady() (bool, string) {
	code, body := a.api("GET", "/api/v1/health")
	var h wire.Health
	if code != 200 || json.Unmarshal([]byte(body), &h) != nil {
		return false, fmt.Sprintf("health %d %s", code, body)
	}
	var not []string
	for _, c := range h.Components {
		if c.Desired != "stopped" && c.State != "ready" {
			not = append(not, c.Name+"="+c.State)
		}
	}
	return len(h.Components) > 0 && len(not) == 0, strings.Join(not, ", ")
}

func (a *agent) waitActive(t *testing.T, what string) map[string]string {
	t.Helper()
	var p map[string]string
	a.m.Eventually(what, 60*time.Second, func() bool {
		p = a.show("ActiveState", "SubState", "MainPID", "NRestarts")
		return p["ActiveState"] == "active" && p["SubState"] == "running"
	})
	return p
}

// inhibitorHeld reports whether logind lists rouse's delay lock for uid.
func (a *agent) inhibitorHeld() bool {
	out, err := a.m.Run("systemd-inhibit", "--list", "--mode=delay", "--no-pager", "--no-legend")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "rouse" && f[1] == strconv.Itoa(a.uid) && strings.Contains(line, "sleep") {
			return true
		}
	}
	return false
}

// processes lists the machine's processes whose command line contains s.
func (m *Machine) processes(s string) []string {
	out, _ := m.Run("ps", "-eo", "pid=,args=")
	var ps []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, s) && !strings.Contains(line, "ps -eo") {
			ps = append(ps, strings.TrimSpace(line))
		}
	}
	return ps
}

func num(s string) int64 { n, _ := strconv.ParseInt(s, 10, 64); return n }

// figures collects the measured numbers the report asks for.
type figures struct {
	lines []string
}

func (f *figures) add(format string, args ...any) {
	f.lines = append(f.lines, fmt.Sprintf(format, args...))
}

func TestSystemd(t *testing.T) {
	bin := buildRouse(t)
	m := Boot(t)
	var fig figures
	defer func() {
		load, _ := os.ReadFile("/proc/loadavg")
		t.Logf("figures (load average %s):\n  %s", strings.TrimSpace(string(load)), strings.Join(fig.lines, "\n  "))
	}()
	exe, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	m.WriteFile("/usr/local/bin/rouse", exe, 0o755)

	sys := &agent{m: m, token: "/var/lib/rouse/api-token"}
	t.Run("SystemService", func(t *testing.T) {
		m.WriteFile("/etc/rouse/rouse.yaml", []byte(systemConfig), 0o600)
		m.Must("/usr/local/bin/rouse", "install")
		testService(t, sys, &fig, true)
	})
	t.Run("UserService", func(t *testing.T) {
		m.Must("useradd", "-m", "-s", "/bin/sh", "rtest")
		uid := int(num(strings.TrimSpace(m.Must("id", "-u", "rtest"))))
		m.Must("loginctl", "enable-linger", "rtest")
		usr := &agent{m: m, user: "rtest", uid: uid, token: "/home/rtest/.local/share/rouse/api-token"}
		m.Eventually("the user's manager runs", 60*time.Second, func() bool {
			_, err := m.Run("test", "-S", fmt.Sprintf("/run/user/%d/bus", uid))
			st := m.Show(fmt.Sprintf("user@%d.service", uid), "ActiveState")
			return err == nil && st["ActiveState"] == "active"
		})
		// The user's config: the defaults, logged at debug for the figures.
		m.Must("runuser", "-u", "rtest", "--", "sh", "-c", "mkdir -p ~/.config/rouse && printf 'log: {level: debug, format: json}\\n' > ~/.config/rouse/rouse.yaml && chmod 600 ~/.config/rouse/rouse.yaml")
		if out, err := m.Run(usr.cmd("/usr/local/bin/rouse", "install", "--user")...); err != nil {
			t.Fatalf("rouse install --user: %v\n%s", err, out)
		}
		testService(t, usr, &fig, false)
	})
}

// testService checks one installed service; full adds the kills, the
// watchdog and the bad config (the system service).
func testService(t *testing.T, a *agent, fig *figures, full bool) {
	m := a.m
	who := "system"
	if a.user != "" {
		who = "user"
	}
	t.Run("ActiveRunningWithReady", func(t *testing.T) {
		a.waitActive(t, "rouse is active (running)")
		// Type=notify: active means READY=1 arrived.
		p := a.show("Type", "ExecMainStartTimestampMonotonic", "ActiveEnterTimestampMonotonic")
		if p["Type"] != "notify" {
			t.Fatalf("Type=%s, want notify", p["Type"])
		}
		d := time.Duration(num(p["ActiveEnterTimestampMonotonic"])-num(p["ExecMainStartTimestampMonotonic"])) * time.Microsecond
		fig.add("%s: exec → READY=1 (active): %v", who, d)
		m.Eventually("every component ready", 30*time.Second, func() bool { ok, _ := a.allReady(); return ok })
	})
	t.Run("DelayInhibitorListedByLogind", func(t *testing.T) {
		m.Eventually("logind lists rouse's delay lock", 30*time.Second, a.inhibitorHeld)
	})
	t.Run("SuspendCycles", func(t *testing.T) {
		// /healthz is polled inside the machine every 50 ms throughout.
		poll := fmt.Sprintf(`rm -f /run/hz-%[1]s.stop; while [ ! -e /run/hz-%[1]s.stop ]; do curl -s -o /dev/null -m 2 -w '%%{http_code}\n' http://127.0.0.1:8000/healthz >> /run/hz-%[1]s.log; sleep 0.05; done`, who)
		poller := exec.Command("nsenter", "-t", strconv.Itoa(m.PID), "-m", "-p", "-n", "-u", "-i", "--", "timeout", "300", "sh", "-c", poll)
		if err := poller.Start(); err != nil {
			t.Fatal(err)
		}
		since := time.Now()
		for i := range cycles {
			last, _ := a.lastWake()
			m.Eventually("the delay lock is held before the suspend", 30*time.Second, a.inhibitorHeld)
			if out, err := m.Run("systemctl", "suspend"); err != nil {
				t.Fatalf("cycle %d: systemctl suspend: %v\n%s", i, err, out)
			}
			var w wire.Wake
			m.Eventually(fmt.Sprintf("cycle %d: a new wake, restored", i), 60*time.Second, func() bool {
				var ok bool
				w, ok = a.lastWake()
				return ok && w.ID > last.ID && w.Done
			})
			if w.DetectedBy != "logind" || w.ID != last.ID+1 {
				t.Fatalf("cycle %d: wake %+v after wake %d, want exactly one, detected by logind", i, w, last.ID)
			}
			m.Eventually(fmt.Sprintf("cycle %d: components ready again", i), 30*time.Second, func() bool { ok, _ := a.allReady(); return ok })
			fig.add("%s cycle %d: restore %d ms (%d ready), slept_seconds %.3f", who, i+1, w.Restore.DurationMS, w.Restore.Ready, w.SleptSeconds)
		}
		m.Eventually("the delay lock is held again", 30*time.Second, a.inhibitorHeld)
		if _, err := m.Run("touch", "/run/hz-"+who+".stop"); err != nil {
			t.Fatal(err)
		}
		_ = poller.Wait()
		out := m.Must("cat", "/run/hz-"+who+".log")
		codes := strings.Fields(out)
		bad := 0
		for _, c := range codes {
			if c != "200" {
				bad++
			}
		}
		if len(codes) < cycles || bad > 0 {
			t.Fatalf("/healthz: %d of %d polls failed during the cycles", bad, len(codes))
		}
		fig.add("%s: /healthz answered %d of %d polls during %d suspend cycles", who, len(codes)-bad, len(codes), cycles)
		sleepFigures(t, a, since, fig, who)
	})
	if full {
		t.Run("ADaemonizingChildIsGoneWhenItsComponentStops", func(t *testing.T) {
			if len(m.processes("sleep 10002")) != 1 {
				t.Fatalf("the daemonized grandchild is not running: %v", m.processes("sleep 1000"))
			}
			if code, body := a.api("POST", "/api/v1/services/forker/stop"); code != 200 {
				t.Fatalf("stop forker: %d %s", code, body)
			}
			m.Eventually("no process of forker left", 15*time.Second, func() bool {
				return len(m.processes("sleep 10002")) == 0 && len(m.processes("sleep 10003")) == 0
			})
			if code, body := a.api("POST", "/api/v1/services/forker/start"); code != 200 {
				t.Fatalf("start forker: %d %s", code, body)
			}
		})
		t.Run("KillNineIsRestartedAndTheOldChildrenAreGone", func(t *testing.T) {
			before := a.waitActive(t, "active before the kill")
			old := append(m.processes("sleep 10001"), m.processes("sleep 10002")...)
			if len(old) != 2 {
				t.Fatalf("children before the kill: %v", old)
			}
			m.Must("kill", "-9", before["MainPID"])
			var after map[string]string
			m.Eventually("restarted after kill -9", 60*time.Second, func() bool {
				after = a.show("ActiveState", "SubState", "MainPID", "NRestarts")
				return after["ActiveState"] == "active" && after["MainPID"] != before["MainPID"] && num(after["NRestarts"]) > num(before["NRestarts"])
			})
			m.Eventually("every component ready after the restart", 30*time.Second, func() bool { ok, _ := a.allReady(); return ok })
			for _, p := range old {
				pid := strings.Fields(p)[0]
				if _, err := m.Run("kill", "-0", pid); err == nil {
					t.Errorf("the old child %q survived its agent's kill -9", p)
				}
			}
		})
		t.Run("AWatchdogTimeoutIsRestarted", func(t *testing.T) {
			m.WriteFile("/etc/systemd/system/rouse.service.d/watchdog.conf", []byte("[Service]\nWatchdogSec=2\n"), 0o644)
			m.Must("systemctl", "daemon-reload")
			m.Must("systemctl", "restart", "rouse")
			before := a.waitActive(t, "active under WatchdogSec=2")
			m.Must("kill", "-STOP", before["MainPID"])
			var after map[string]string
			m.Eventually("restarted after the watchdog timeout", 60*time.Second, func() bool {
				after = a.show("ActiveState", "SubState", "MainPID", "NRestarts", "ActiveEnterTimestampMonotonic")
				return after["ActiveState"] == "active" && after["SubState"] == "running" && after["MainPID"] != before["MainPID"]
			})
			if num(after["NRestarts"]) <= num(before["NRestarts"]) {
				t.Fatalf("NRestarts %s → %s", before["NRestarts"], after["NRestarts"])
			}
			if at, ok := journalMono(m, "rouse.service", "Watchdog timeout"); ok {
				fig.add("watchdog kill → active again: %v", time.Duration(num(after["ActiveEnterTimestampMonotonic"])-at)*time.Microsecond)
			}
			m.Must("rm", "/etc/systemd/system/rouse.service.d/watchdog.conf")
			m.Must("systemctl", "daemon-reload")
			m.Must("systemctl", "restart", "rouse")
			a.waitActive(t, "active without the drop-in")
		})
		t.Run("SIGABRTIsRestarted", func(t *testing.T) {
			before := a.waitActive(t, "active before SIGABRT")
			m.Must("systemctl", "kill", "-s", "ABRT", "--kill-who=main", "rouse")
			m.Eventually("restarted after SIGABRT", 60*time.Second, func() bool {
				after := a.show("ActiveState", "SubState", "MainPID", "NRestarts")
				return after["ActiveState"] == "active" && after["MainPID"] != before["MainPID"] && num(after["NRestarts"]) > num(before["NRestarts"])
			})
		})
		t.Run("StopLeavesNoProcess", func(t *testing.T) {
			a.waitActive(t, "active before the stop")
			m.Eventually("every component ready", 30*time.Second, func() bool { ok, _ := a.allReady(); return ok })
			before, _ := journalMono(m, "rouse.service", "")
			m.Must("systemctl", "stop", "rouse")
			if ps := append(m.processes("/usr/local/bin/rouse run"), m.processes("sleep 1000")...); len(ps) > 0 {
				t.Fatalf("left after systemctl stop: %v", ps)
			}
			// KillMode=mixed: systemd SIGKILLs what rouse left behind and
			// says so. rouse must have stopped every child itself.
			if at, ok := journalMono(m, "rouse.service", "Killing process"); ok && at > before {
				out, _ := m.Run("journalctl", "-u", "rouse.service", "--no-pager", "-n", "20")
				t.Fatalf("systemd had to kill processes rouse left behind:\n%s", out)
			}
			// Stopped by rouse itself, in order, not killed by systemd.
			if p := a.show("Result", "ExecMainStatus"); p["Result"] != "success" {
				t.Fatalf("after stop: %v", p)
			}
		})
		t.Run("ABadConfigIsNotRestarted", func(t *testing.T) {
			m.WriteFile("/etc/rouse/rouse.yaml", []byte(badConfig), 0o600)
			_, _ = m.Run("systemctl", "start", "rouse")
			m.Eventually("the start fails", 30*time.Second, func() bool {
				return a.show("ActiveState")["ActiveState"] == "failed"
			})
			time.Sleep(5 * time.Second) // RestartSec=2: long enough for two restarts
			p := a.show("ActiveState", "Result", "ExecMainStatus", "NRestarts")
			if p["ActiveState"] != "failed" || p["Result"] != "exit-code" || p["ExecMainStatus"] != "78" {
				t.Fatalf("after a bad config: %v, want failed, Result=exit-code, status 78", p)
			}
			// NRestarts counts the restarts of this unit's life; none after the bad config.
			if again := a.show("NRestarts"); again["NRestarts"] != p["NRestarts"] {
				t.Fatalf("restarted on a bad config: %v → %v", p, again)
			}
			m.WriteFile("/etc/rouse/rouse.yaml", []byte(systemConfig), 0o600)
			m.Must("systemctl", "reset-failed", "rouse")
		})
	}
	t.Run("UninstallLeavesNothing", func(t *testing.T) {
		args := []string{"/usr/local/bin/rouse", "uninstall"}
		if a.user != "" {
			args = append(args, "--user")
		}
		if out, err := m.Run(a.cmd(args...)...); err != nil {
			t.Fatalf("rouse uninstall: %v\n%s", err, out)
		}
		if ps := m.processes("/usr/local/bin/rouse run"); len(ps) > 0 {
			t.Fatalf("rouse still runs after uninstall: %v", ps)
		}
		unit := "/etc/systemd/system/rouse.service"
		if a.user != "" {
			unit = "/home/" + a.user + "/.config/systemd/user/rouse.service"
		}
		if _, err := m.Run("test", "-e", unit); err == nil {
			t.Fatalf("%s is still there", unit)
		}
		if p := a.show("LoadState"); p["LoadState"] != "not-found" {
			t.Fatalf("the manager still knows rouse: %v", p)
		}
		if a.inhibitorHeld() {
			t.Fatal("logind still lists rouse's delay lock")
		}
	})
}

// journalMono is the monotonic time (µs) of the last journal entry of unit
// whose message contains s.
func journalMono(m *Machine, unit, s string) (int64, bool) {
	out, err := m.Run("journalctl", "-u", unit, "-o", "json", "--no-pager")
	if err != nil {
		return 0, false
	}
	var at int64
	for _, line := range strings.Split(out, "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		if msg, _ := e["MESSAGE"].(string); strings.Contains(msg, s) {
			if v, _ := e["__MONOTONIC_TIMESTAMP"].(string); v != "" {
				at = num(v)
			}
		}
	}
	return at, at > 0
}

// sleepFigures reads, from the journal, logind's PrepareForSleep signals
// (its debug log, stamped by logind itself) and the agent's own stamped
// log lines, and adds per cycle: lock release after (true), wake reported
// after (false).
func sleepFigures(t *testing.T, a *agent, since time.Time, fig *figures, who string) {
	out, err := a.m.Run("journalctl", "-o", "json", "--no-pager", "--since", "@"+strconv.FormatInt(since.Unix()-1, 10))
	if err != nil {
		fig.add("%s: no journal for the sleep figures: %v", who, err)
		return
	}
	var signals, released, woke []time.Time
	for _, line := range strings.Split(out, "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		msg, _ := e["MESSAGE"].(string)
		comm, _ := e["_COMM"].(string)
		euid, _ := e["_UID"].(string)
		switch {
		case comm == "systemd-logind" && strings.Contains(msg, "member=PrepareForSleep") && strings.Contains(msg, "type=signal"):
			src, _ := e["_SOURCE_REALTIME_TIMESTAMP"].(string)
			if src == "" {
				src, _ = e["__REALTIME_TIMESTAMP"].(string)
			}
			signals = append(signals, time.UnixMicro(num(src)))
		case comm == "rouse" && euid == strconv.Itoa(a.uid):
			var l struct {
				Time time.Time `json:"time"`
				Msg  string    `json:"msg"`
			}
			if json.Unmarshal([]byte(msg), &l) != nil {
				continue
			}
			switch l.Msg {
			case "sleep delay lock released":
				released = append(released, l.Time)
			case "woke up":
				woke = append(woke, l.Time)
			}
		}
	}
	sort.Slice(signals, func(i, j int) bool { return signals[i].Before(signals[j]) })
	for i := 0; 2*i+1 < len(signals) && i < len(released) && i < len(woke); i++ {
		fig.add("%s cycle %d: lock released %v after PrepareForSleep(true); wake reported %v after PrepareForSleep(false)",
			who, i+1, released[i].Sub(signals[2*i]).Round(10*time.Microsecond), woke[i].Sub(signals[2*i+1]).Round(10*time.Microsecond))
	}
	if len(signals) < 2*cycles || len(released) < cycles || len(woke) < cycles {
		fig.add("%s: logind logged %d PrepareForSleep signals (want %d), rouse %d lock releases and %d wakes — figures incomplete", who, len(signals), 2*cycles, len(released), len(woke))
	}
}
