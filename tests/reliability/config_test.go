//go:build linux

package reliability

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/tests/internal/harness"
)

// hostileConfig is a config written to take a parser down, and the error
// the agent documents for it.
type hostileConfig struct {
	name, src, want string
}

func hostileConfigs() []hostileConfig {
	half := strings.Repeat("x", 1<<19)
	var refs strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&refs, "      K%d: *big\n", i)
	}
	laughs := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	prev := "a"
	for i := 1; i < 9; i++ {
		n := fmt.Sprintf("l%d", i)
		laughs += n + ": &" + n + " [" + strings.TrimSuffix(strings.Repeat("*"+prev+", ", 10), ", ") + "]\n"
		prev = n
	}
	merges := "m0: &m0 {a: " + strings.Repeat("y", 1000) + "}\n"
	for i := 1; i < 40; i++ {
		merges += fmt.Sprintf("m%d: &m%d {<<: [*m%d, *m%d], k%d: v}\n", i, i, i-1, i-1, i)
	}
	return []hostileConfig{
		{"AHalfMBScalarReferencedAThousandTimes",
			"trackers:\n  - name: a\n    kind: exec\n    command: [sh, -c, &big " + half + "]\n    env:\n" + refs.String(),
			"rouse.yaml:36: aliases expand to more than 16 MiB"},
		{"ABillionLaughs", laughs, "rouse.yaml:6: aliases expand to more than 131072 values"},
		{"MergeKeysThatDoubleAtEachLevel", merges, "rouse.yaml:15: aliases expand to more than 16 MiB"},
		{"AFileOverTheSizeLimit", "a: " + half + half + half + half + "\n", fmt.Sprintf("rouse.yaml:1: the file is larger than 1 MiB (%d bytes); nothing was read", 4*len(half)+4)},
		{"AFileOf64MB", "a: " + strings.Repeat("z", 64<<20), fmt.Sprintf("rouse.yaml:1: the file is larger than 1 MiB (%d bytes); nothing was read", 64<<20+3)},
		{"AFileOfDenseFlowValues", "[" + strings.Repeat("a,", 1<<18) + "a]\n", "rouse.yaml:1: the file holds more than 65536 YAML values and lines; nothing was read"},
	}
}

// rssProbeEnv makes the test binary run the command in its arguments and
// print the command's peak RSS. A child's ru_maxrss counts the memory of
// the process that started it up to its exec (Go starts children with
// vfork), so the test process — which holds the hostile configs — cannot
// measure a child itself; a fresh copy of the test binary, started before
// it allocates anything, can.
const rssProbeEnv = "ROUSE_TEST_RSS_PROBE"

func init() {
	if os.Getenv(rssProbeEnv) == "" {
		return
	}
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
	err := cmd.Run()
	fmt.Printf("\nrss-probe: exit=%d maxrss_kb=%d\n", exitCode(err), cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss)
	os.Exit(0)
}

// runMeasured runs bin with args through the RSS probe: its output, exit
// code and peak RSS in bytes.
func runMeasured(t *testing.T, args ...string) (string, int, int64) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, append([]string{bin}, args...)...)
	cmd.Env = append(os.Environ(), rssProbeEnv+"=1")
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("rss probe: %v", err)
	}
	out, probe, ok := strings.Cut(string(b), "\nrss-probe: ")
	if !ok {
		t.Fatalf("rss probe printed no figure: %s", b)
	}
	var code int
	var kb int64
	if _, err := fmt.Sscanf(probe, "exit=%d maxrss_kb=%d", &code, &kb); err != nil {
		t.Fatalf("rss probe: %v: %q", err, probe)
	}
	return out, code, kb << 10
}

// TestHostileConfigCheck runs `rouse config check` on each hostile config:
// one documented error, exit 78, peak RSS bounded.
func TestHostileConfigCheck(t *testing.T) {
	for _, c := range hostileConfigs() {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "rouse.yaml")
			if err := os.WriteFile(p, []byte(c.src), 0o600); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			out, code, peak := runMeasured(t, "config", "check", p)
			took := time.Since(start)
			if code == 0 {
				t.Fatalf("config check accepted it: %s", out)
			}
			if !strings.Contains(string(out), strings.Replace(c.want, "rouse.yaml", p, 1)) {
				t.Errorf("output %q does not hold %q", out, c.want)
			}
			if n := strings.Count(strings.TrimSpace(string(out)), "\n"); n > 1 {
				t.Errorf("want one error, got %d lines:\n%s", n+1, out)
			}
			t.Logf("%d bytes: %v, peak RSS %d MB", len(c.src), took, peak>>20)
			if peak > 100<<20 {
				t.Errorf("config check peaked at %d MB", peak>>20)
			}
		})
	}
}

// TestHostileConfigLiveEdit writes each hostile config over a running
// agent's config: the agent stays up, keeps its running config, shows the
// documented error in /api/v1/health, and its memory stays bounded.
func TestHostileConfigLiveEdit(t *testing.T) {
	p := harness.NewPower(t, false)
	good := "scheduler: {enabled: true}\njobs:\n  - name: keep\n    schedule: \"@daily\"\n    command: [\"true\"]\n"
	a := harness.Start(t, bin, harness.Options{Config: good, BusAddr: p.Addr()})
	ctx, cancel := context.WithTimeout(context.Background(), 2*guard)
	defer cancel()
	base := procStatus(t, a.Pid(), "VmHWM")
	for _, c := range hostileConfigs() {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(a.Config, []byte(c.src), 0o600); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(guard)
			for {
				h, err := a.Client.Health(ctx)
				if err != nil {
					t.Fatalf("health: %v (agent exited: %v)\n%s", err, a.Exited(), a.Log())
				}
				if h.Config.State == "rejected" && strings.Contains(h.Config.Error, strings.TrimPrefix(c.want, "rouse.yaml")) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("config state %q error %q; want rejected with %q", h.Config.State, h.Config.Error, c.want)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if a.Exited() {
				t.Fatalf("the agent died:\n%s", a.Log())
			}
			jobs, err := a.Client.Jobs(ctx)
			if err != nil {
				t.Fatal(err)
			}
			kept := false
			for _, j := range jobs {
				kept = kept || j.Name == "keep"
			}
			if !kept {
				t.Errorf("the running config was not kept: jobs %+v", jobs)
			}
			hwm := procStatus(t, a.Pid(), "VmHWM")
			t.Logf("agent peak RSS %d MB (baseline %d MB)", hwm>>20, base>>20)
			if hwm-base > 100<<20 {
				t.Errorf("the agent's peak RSS grew by %d MB", (hwm-base)>>20)
			}
		})
	}
}

// procStatus reads a kB field of /proc/PID/status, in bytes.
func procStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// TestSwappedConfigSymlinkIsFollowed swaps a running agent's config for a
// symlink to a file elsewhere, then edits that file: each change is applied
// and /api/v1/health says the config in force is ok.
func TestSwappedConfigSymlinkIsFollowed(t *testing.T) {
	p := harness.NewPower(t, false)
	job := func(name string) string {
		return "scheduler: {enabled: true}\njobs:\n  - name: " + name + "\n    schedule: \"@daily\"\n    command: [\"true\"]\n"
	}
	a := harness.Start(t, bin, harness.Options{Config: job("first"), BusAddr: p.Addr()})
	ctx, cancel := context.WithTimeout(context.Background(), 2*guard)
	defer cancel()
	waitJob := func(name string) {
		t.Helper()
		deadline := time.Now().Add(guard)
		for {
			jobs, err := a.Client.Jobs(ctx)
			if err != nil {
				t.Fatal(err)
			}
			h, err := a.Client.Health(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, j := range jobs {
				if j.Name == name && h.Config.State == "ok" {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("job %q not in force (jobs %+v, config %+v)\n%s", name, jobs, h.Config, a.Log())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	target := filepath.Join(t.TempDir(), "real.yaml")
	if err := os.WriteFile(target, []byte(job("second")), 0o600); err != nil {
		t.Fatal(err)
	}
	tmp := a.Config + ".new"
	if err := os.Symlink(target, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, a.Config); err != nil {
		t.Fatal(err)
	}
	waitJob("second")
	if err := os.WriteFile(target, []byte(job("third")), 0o600); err != nil {
		t.Fatal(err)
	}
	waitJob("third")
}

// TestOwnershipIsCheckedAsStrictModes runs the built binary on files and
// directories someone else could change: each is refused with the command
// that fixes it, before the agent opens anything.
func TestOwnershipIsCheckedAsStrictModes(t *testing.T) {
	const nobody = 65534
	asRoot := func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("giving a file to another user needs root")
		}
	}
	writeConfig := func(t *testing.T, dir string) string {
		t.Helper()
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "rouse.yaml")
		if err := os.WriteFile(p, []byte("scheduler: {enabled: false}\ntrackers: []\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// run starts `rouse run` and returns its exit code and output; a
	// refusal ends it at once (the guard only catches a hang).
	run := func(t *testing.T, cfg, data string) (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "run", "--config", cfg, "--data", data, "--listen", harness.FreeAddr(t))
		cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS=unix:path="+filepath.Join(t.TempDir(), "no-bus"))
		out, err := cmd.CombinedOutput()
		return exitCode(err), string(out)
	}
	check := func(t *testing.T, cfg string) (int, string) {
		t.Helper()
		out, err := exec.Command(bin, "config", "check", cfg).CombinedOutput()
		return exitCode(err), string(out)
	}

	t.Run("AConfigInAWorldWritableDirectory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "etc")
		cfg := writeConfig(t, dir)
		if err := os.Chmod(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		code, out := check(t, cfg)
		if code == 0 || !strings.Contains(out, "run: chmod go-w "+dir) {
			t.Fatalf("config check: exit %d: %s", code, out)
		}
	})
	t.Run("AConfigOwnedByAnotherUserUnderARootAgent", func(t *testing.T) {
		asRoot(t)
		cfg := writeConfig(t, t.TempDir())
		if err := os.Chown(cfg, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		code, out := check(t, cfg)
		if code == 0 || !strings.Contains(out, "not by root (the agent's user); run: chown root "+cfg) {
			t.Fatalf("config check: exit %d: %s", code, out)
		}
		code, out = run(t, cfg, filepath.Join(t.TempDir(), "data"))
		if code == 0 || !strings.Contains(out, "chown root "+cfg) {
			t.Fatalf("run: exit %d: %s", code, out)
		}
	})
	for _, mode := range []os.FileMode{0o755, 0o777} {
		t.Run("ADataDirectoryOfMode"+strconv.FormatUint(uint64(mode), 8), func(t *testing.T) {
			cfg := writeConfig(t, t.TempDir())
			data := filepath.Join(t.TempDir(), "data")
			if err := os.Mkdir(data, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(data, mode); err != nil {
				t.Fatal(err)
			}
			code, out := run(t, cfg, data)
			if code != 1 || !strings.Contains(out, "run: chmod 700 "+data) {
				t.Fatalf("run: exit %d: %s", code, out)
			}
			if _, err := os.Stat(filepath.Join(data, "rouse.db")); err == nil {
				t.Errorf("the store was created in a refused directory")
			}
		})
	}
	t.Run("ATokenPlantedByAnotherUser", func(t *testing.T) {
		asRoot(t)
		cfg := writeConfig(t, t.TempDir())
		data := filepath.Join(t.TempDir(), "data")
		if err := os.Mkdir(data, 0o700); err != nil {
			t.Fatal(err)
		}
		tok := filepath.Join(data, "api-token")
		if err := os.WriteFile(tok, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(tok, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		code, out := run(t, cfg, data)
		if code == 0 || !strings.Contains(out, "chown root "+tok) {
			t.Fatalf("run: exit %d: %s", code, out)
		}
	})
	t.Run("AFreshDataDirectoryAndStoreArePrivate", func(t *testing.T) {
		p := harness.NewPower(t, false)
		a := harness.Start(t, bin, harness.Options{Config: "scheduler: {enabled: false}\ntrackers: []\n", BusAddr: p.Addr()})
		for path, want := range map[string]os.FileMode{a.DataDir: 0o700, filepath.Join(a.DataDir, "rouse.db"): 0o600, filepath.Join(a.DataDir, "api-token"): 0o600} {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != want {
				t.Errorf("%s: mode %04o, want %04o", path, fi.Mode().Perm(), want)
			}
		}
	})
}
