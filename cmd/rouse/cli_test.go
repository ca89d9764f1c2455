package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/agent/api"
	"github.com/rouse-dev/rouse/agent/api/apitest"
	"github.com/rouse-dev/rouse/wire"
)

// noUserConfig points the config lookups at empty directories, so no
// config of the machine running the tests is read.
func noUserConfig(t *testing.T) {
	t.Helper()
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	t.Setenv("ROUSE_CONFIG", "")
	t.Setenv("ROUSE_DATA", "")
	t.Setenv("ROUSE_LISTEN", "")
}

// deadAgent is a data directory with a token and a loopback address
// nothing listens on: an agent that is not running.
func deadAgent(t *testing.T) (addr, data string) {
	t.Helper()
	data = t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "api-token"), []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = l.Addr().String()
	l.Close()
	return addr, data
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestExitCodes runs every command the way a user gets each exit code
// wrong or right: 0 ok, 1 failure, 2 bad usage, 78 bad config.
func TestExitCodes(t *testing.T) {
	noUserConfig(t)
	t.Run("BadUsageExitsTwo", func(t *testing.T) {
		for _, args := range [][]string{
			{"bogus"},
			{"--no-such-flag", "status"},
			{"run", "extra"},
			{"run", "--log-level", "loud"},
			{"status", "a", "b"},
			{"start"},
			{"stop"},
			{"restart"},
			{"start", "a", "b"},
			{"wake", "a", "b"}, {"wake", "a", "--follow"},
			{"wake", "--bogus"},
			{"open", "extra"},
			{"tray", "extra"},
			{"config", "bogus"},
			{"config", "check"}, // no FILE, no --config, no user config
			{"config", "check", "a.yaml", "b.yaml"},
			{"config", "default", "extra"},
			{"doctor", "extra"},
			{"install", "extra"},
			{"install", "--user", "--config", "x.yaml"}, // the service does not take it
			{"uninstall", "extra"},
			{"service", "bogus"},
			{"service", "start", "extra"},
			{"service", "stop", "extra"},
			{"service", "status", "extra"},
			{"--data", "/tmp/x", "service", "status"},
			{"completion"},
			{"completion", "tcsh"},
			{"version", "extra"},
		} {
			out, code := runCLI(t, args...)
			if code != 2 {
				t.Errorf("rouse %s: exit %d, want 2:\n%s", strings.Join(args, " "), code, out)
			}
		}
	})
	t.Run("HelpAndGroupsAloneExitZero", func(t *testing.T) {
		for _, args := range [][]string{
			{}, {"--help"}, {"config"}, {"service"},
			{"run", "--help"}, {"status", "--help"}, {"start", "--help"}, {"stop", "--help"},
			{"restart", "--help"}, {"wake", "--help"}, {"open", "--help"}, {"tray", "--help"},
			{"config", "check", "--help"}, {"config", "default", "--help"}, {"doctor", "--help"},
			{"install", "--help"}, {"uninstall", "--help"}, {"service", "start", "--help"},
			{"service", "stop", "--help"}, {"service", "status", "--help"}, {"completion", "--help"},
			{"version"}, {"--version"}, {"config", "default"},
		} {
			out, code := runCLI(t, args...)
			if code != 0 {
				t.Errorf("rouse %s: exit %d, want 0:\n%s", strings.Join(args, " "), code, out)
			}
		}
	})
	t.Run("AnUnknownCommandSuggestsTheNearOne", func(t *testing.T) {
		out, code := runCLI(t, "stauts")
		if code != 2 || !strings.Contains(out, "did you mean") || !strings.Contains(out, "status") {
			t.Errorf("exit %d:\n%s", code, out)
		}
	})
	t.Run("ConfigCheckExits78OnABadConfigAndZeroOnAGoodOne", func(t *testing.T) {
		bad := writeFile(t, "bad.yaml", "trackers:\n  - name: x\n    kind: nope\n")
		out, code := runCLI(t, "config", "check", bad)
		if code != 78 || !strings.Contains(out, "bad.yaml:3") || !strings.Contains(out, "1 error\n") {
			t.Errorf("exit %d, want 78 with file:line and one error:\n%s", code, out)
		}
		good := writeFile(t, "good.yaml", "trackers:\n  - name: net\n    kind: network\n")
		out, code = runCLI(t, "config", "check", good)
		if code != 0 || !strings.Contains(out, "ok (1 tracker, 0 jobs)") {
			t.Errorf("exit %d, want 0 and singular tracker:\n%s", code, out)
		}
		missing := filepath.Join(t.TempDir(), "missing.yaml")
		if out, code = runCLI(t, "config", "check", missing); code != 78 {
			t.Errorf("a missing file: exit %d, want 78:\n%s", code, out)
		}
	})
	t.Run("AStatusThatIsNotOkExitsOne", func(t *testing.T) {
		addr, data, _ := startAPI(t, &apitest.Backend{HealthFunc: func(context.Context) wire.Health {
			return wire.Health{Status: wire.StatusDegraded}
		}})
		if out, code := runCLI(t, "status", "--data", data, "--listen", addr); code != 1 {
			t.Errorf("exit %d, want 1:\n%s", code, out)
		}
	})
	t.Run("WithNoSessionBusTheTrayFails", func(t *testing.T) {
		t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path="+filepath.Join(t.TempDir(), "no-bus"))
		addr, data := deadAgent(t)
		if out, code := runCLI(t, "tray", "--data", data, "--listen", addr); code != 1 {
			t.Errorf("exit %d, want 1:\n%s", code, out)
		}
	})
	t.Run("ClientCommandsExitZeroAgainstAnAgent", func(t *testing.T) {
		addr, data, _ := startAPI(t, richBackend())
		for _, args := range [][]string{
			{"status"}, {"status", "--json"}, {"start", "tunnel"}, {"stop", "tunnel"}, {"restart", "tunnel"},
			{"wake"}, {"wake", "--dry-run"}, {"open", "--print"},
		} {
			out, code := runCLI(t, append(args, "--data", data, "--listen", addr)...)
			if code != 0 {
				t.Errorf("rouse %s: exit %d, want 0:\n%s", strings.Join(args, " "), code, out)
			}
		}
		if out, code := runCLI(t, "stop", "nope", "--data", data, "--listen", addr); code != 1 {
			t.Errorf("an unknown component: exit %d, want 1:\n%s", code, out)
		}
	})
}

// richBackend is an agent with one exec component, "tunnel".
func richBackend() *apitest.Backend {
	svc := wire.Service{Name: "tunnel", Kind: "exec", State: "ready", Since: time.Now()}
	known := func(n string) error {
		if n != "tunnel" {
			return api.ErrNotFound
		}
		return nil
	}
	return &apitest.Backend{
		HealthFunc: func(context.Context) wire.Health {
			return wire.Health{Status: wire.StatusOK, Components: []wire.Service{svc}}
		},
		StartFunc:    func(_ context.Context, n string) (string, error) { return wire.ActionStarted, known(n) },
		StopFunc:     func(_ context.Context, n string) (string, error) { return wire.ActionStopped, known(n) },
		RestartFunc:  func(_ context.Context, n string) (string, error) { return wire.ActionStarted, known(n) },
		WakeFunc:     func(context.Context) (wire.Wake, error) { return wire.Wake{ID: 3, DetectedBy: "manual"}, nil },
		WakePlanFunc: func(context.Context) (wire.Plan, error) { return wire.Plan{CriticalPath: []string{"tunnel"}}, nil },
	}
}

// TestNoAgent: every command that needs the agent fails, instead of
// hanging, with exit 1 and one hint, when none runs. Before, `wake
// --follow` reconnected forever; the guard in runCLI catches a hang.
func TestNoAgent(t *testing.T) {
	noUserConfig(t)
	addr, data := deadAgent(t)
	for _, args := range [][]string{
		{"status"}, {"start", "x"}, {"stop", "x"}, {"restart", "x"},
		{"wake"}, {"wake", "--follow"}, {"wake", "--dry-run"}, {"open", "--print"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			out, code := runCLI(t, append(args, "--data", data, "--listen", addr)...)
			if code != 1 {
				t.Errorf("exit %d, want 1:\n%s", code, out)
			}
			if n := strings.Count(out, "no agent answers at http://"+addr); n != 1 {
				t.Errorf("the address is named %d times, want once:\n%s", n, out)
			}
			if n := strings.Count(out, `start it with "rouse run"`); n != 1 {
				t.Errorf("the hint is given %d times, want once:\n%s", n, out)
			}
		})
	}
	t.Run("WithNoTokenTheHintSaysWhereItLooked", func(t *testing.T) {
		empty := t.TempDir()
		out, code := runCLI(t, "status", "--data", empty, "--listen", addr)
		if code != 1 || !strings.Contains(out, filepath.Join(empty, "api-token")) || strings.Count(out, "rouse run") != 1 {
			t.Errorf("exit %d:\n%s", code, out)
		}
	})
}

// TestGlobalFlags: --config, --data and --listen mean the same to every
// command.
func TestGlobalFlags(t *testing.T) {
	noUserConfig(t)
	addr, data, _ := startAPI(t, richBackend())
	cfg := writeFile(t, "rouse.yaml", "listen: "+addr+"\ndata: "+data+"\n")
	t.Run("ConfigCheckChecksTheGlobalConfig", func(t *testing.T) {
		out, code := runCLI(t, "--config", cfg, "config", "check")
		if code != 0 || !strings.Contains(out, cfg+": ok (0 trackers, 0 jobs)") {
			t.Errorf("exit %d:\n%s", code, out)
		}
		t.Setenv("ROUSE_CONFIG", cfg)
		if out, code := runCLI(t, "config", "check"); code != 0 || !strings.Contains(out, cfg) {
			t.Errorf("from ROUSE_CONFIG: exit %d:\n%s", code, out)
		}
	})
	t.Run("ClientCommandsFindTheAgentThroughTheConfig", func(t *testing.T) {
		for _, args := range [][]string{{"status"}, {"stop", "tunnel"}, {"wake", "--dry-run"}, {"open", "--print"}} {
			out, code := runCLI(t, append([]string{"--config", cfg}, args...)...)
			if code != 0 {
				t.Errorf("rouse --config %s %s: exit %d:\n%s", cfg, strings.Join(args, " "), code, out)
			}
		}
	})
	t.Run("FlagsWinOverTheConfig", func(t *testing.T) {
		dead, _ := deadAgent(t)
		out, code := runCLI(t, "--config", cfg, "--listen", dead, "status")
		if code != 1 || !strings.Contains(out, dead) {
			t.Errorf("exit %d, want the flag's dead address:\n%s", code, out)
		}
	})
}

// TestWakeFollow: the follow ends with the counts and names what did not
// come back.
func TestWakeFollow(t *testing.T) {
	noUserConfig(t)
	done := wire.Wake{ID: 3, Done: true,
		Restore: wire.RestoreSummary{DurationMS: 2, Ready: 1, TimedOut: 1, Failed: 1, Skipped: 2},
		Components: []wire.WakeComponent{
			{Name: "net", State: "ready", DurationMS: 1},
			{Name: "tunnel", State: "degraded", DurationMS: 10000, Error: "deadline passed before the component was ready"},
			{Name: "scrobbles", State: "failed", DurationMS: 300, Error: "401 Unauthorized"},
			{Name: "api", State: "waiting", Error: "blocked: tunnel is stopped"},
		}}
	b := richBackend()
	b.SubscribeFunc = func(ctx context.Context, _ int64) <-chan wire.Event {
		ch := make(chan wire.Event, 4)
		ch <- wire.Event{ID: 1, Type: wire.EventState, State: &wire.StateEvent{Name: "net", State: "ready"}}
		ch <- wire.Event{ID: 2, Type: wire.EventWake, Wake: &wire.WakeEvent{Phase: "done", Wake: &done}}
		go func() { <-ctx.Done(); close(ch) }()
		return ch
	}
	addr, data, _ := startAPI(t, b)
	out, code := runCLI(t, "wake", "--follow", "--data", data, "--listen", addr)
	if code != 1 {
		t.Errorf("exit %d, want 1 (one timed out, one failed)", code)
	}
	for _, want := range []string{
		"wake 3: restoring\n",
		"restore done in 2ms: 1 ready, 1 timed out, 1 failed, 2 stopped or blocked\n",
		"  api not started: blocked: tunnel is stopped\n",
		"  tunnel timed out (degraded) after 10s: deadline passed before the component was ready\n",
		"  scrobbles failed after 300ms: 401 Unauthorized\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if regexp.MustCompile(`(?m)^  net `).MatchString(out) {
		t.Errorf("a ready component is listed as a problem:\n%s", out)
	}
}

func TestWording(t *testing.T) {
	t.Run("DurationsNeverRoundAMeasuredTimeToZero", func(t *testing.T) {
		for d, want := range map[time.Duration]string{
			0: "<1ms", 400 * time.Microsecond: "<1ms", 2 * time.Millisecond: "2ms",
			1340 * time.Millisecond: "1.3s", 125 * time.Second: "2m5s",
		} {
			if got := humanDuration(d); got != want {
				t.Errorf("humanDuration(%s) = %q, want %q", d, got, want)
			}
		}
	})
	t.Run("CountsArePlural", func(t *testing.T) {
		for n, want := range map[int]string{0: "0 trackers", 1: "1 tracker", 2: "2 trackers"} {
			if got := plural(n, "tracker", "trackers"); got != want {
				t.Errorf("plural(%d) = %q, want %q", n, got, want)
			}
		}
	})
}

func TestStatusOfOneComponent(t *testing.T) {
	noUserConfig(t)
	code3 := 3
	next := time.Now().Add(4 * time.Second)
	b := richBackend()
	b.ServiceFunc = func(_ context.Context, n string) (wire.Service, error) {
		if n != "tunnel" {
			return wire.Service{}, api.ErrNotFound
		}
		return wire.Service{Name: "tunnel", Kind: "exec", State: "starting", Since: time.Now(), Attempts: 1, Restarts: 2,
			NextRetryAt: &next, LastExit: &wire.Exit{At: time.Now(), Error: "child exited: exit status 3", Code: &code3},
			Output: []string{"stderr: bind: address in use", "stdout: retrying"}}, nil
	}
	addr, data, _ := startAPI(t, b)
	out, code := runCLI(t, "status", "tunnel", "--data", data, "--listen", addr)
	if code != 1 {
		t.Errorf("exit %d, want 1 for a component that is not ready", code)
	}
	for _, want := range []string{"attempts: 1 · restarts: 2", "next try: in ", "last exit: 0s ago, child exited: exit status 3",
		"last 2 lines of output:", "    stderr: bind: address in use"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestHungAgent: an agent that takes connections but never answers (stopped
// with SIGSTOP, say) makes the quick commands fail with what it means
// instead of waiting for ever.
func TestHungAgent(t *testing.T) {
	noUserConfig(t)
	old := answerTimeout
	answerTimeout = 300 * time.Millisecond
	t.Cleanup(func() { answerTimeout = old })
	_, data := deadAgent(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c) // held open, never answered
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-accepted
		for _, c := range conns {
			c.Close()
		}
	})
	addr := l.Addr().String()
	for _, args := range [][]string{{"status"}, {"status", "x"}, {"wake"}, {"wake", "--dry-run"}, {"wake", "--follow"}} {
		out, code := runCLI(t, append(args, "--data", data, "--listen", addr)...)
		if code != 1 || !strings.Contains(out, "took the connection but did not answer within 300ms") {
			t.Errorf("rouse %s: exit %d:\n%s", strings.Join(args, " "), code, out)
		}
	}
}
