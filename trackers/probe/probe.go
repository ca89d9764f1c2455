// Package probe holds the checks a component's readiness and health are
// made of — a TCP connect, an HTTP GET answering 2xx, a command exiting 0 —
// in one implementation that the exec kind (its ready:), the container
// kind (its ready.tcp and ready.http) and the agent (a tracker's
// health.check) share.
//
// A check's error says what failed with the check's own output, bounded:
// a command's last output line (at most MaxOutput bytes of its output are
// read), an HTTP status line. A command check runs in a process group of
// its own, with only the allowlisted environment (EnvAllowlist), and the
// whole group is killed when its context ends, so nothing it starts
// outlives it; a caller can put it in a jail of its own (Cmd.Prepare).
package probe

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rouse-dev/rouse/internal/home"
	"github.com/rouse-dev/rouse/trackers"
)

// Spec names one check: exactly one field is set.
type Spec struct {
	// TCP is host:port; the check passes when a TCP connection succeeds.
	TCP string `yaml:"tcp"`
	// HTTP is an http(s) URL; the check passes when a GET answers 2xx.
	HTTP string `yaml:"http"`
	// Command is an argv; the check passes when it exits 0.
	Command []string `yaml:"command"`
}

// Count is how many of the spec's fields are set.
func (s Spec) Count() int {
	n := 0
	if s.TCP != "" {
		n++
	}
	if s.HTTP != "" {
		n++
	}
	if s.Command != nil {
		n++
	}
	return n
}

// Validate checks each field that is set; key prefixes the field names
// ("ready", "health.check"). It does not complain about an empty spec:
// whether one is required is the caller's call.
func (s Spec) Validate(key string) []trackers.FieldError {
	var errs []trackers.FieldError
	add := func(k, format string, args ...any) {
		errs = append(errs, trackers.FieldError{Key: k, Msg: fmt.Sprintf(format, args...)})
	}
	if s.TCP != "" {
		if host, port, err := net.SplitHostPort(s.TCP); err != nil || host == "" || port == "" {
			add(key+".tcp", "must be host:port, got %q", s.TCP)
		}
	}
	if s.HTTP != "" {
		u, err := url.Parse(s.HTTP)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add(key+".http", "must be an http:// or https:// URL, got %q", s.HTTP)
		}
	}
	if s.Command != nil && (len(s.Command) == 0 || strings.TrimSpace(s.Command[0]) == "") {
		add(key+".command", "must be a non-empty argv")
	}
	if n := s.Count(); n > 1 {
		add(key, "set at most one of tcp, http, command (got %d)", n)
	}
	return errs
}

// Func is one run of a check: nil when it passed.
type Func func(ctx context.Context) error

// New builds the check s names; label prefixes its errors ("ready",
// "health"). command runs a command check (nil: RunArgv, the allowlisted
// environment in the home directory). close releases what the check holds
// (an HTTP check's idle connections). New returns a nil Func for an empty
// spec.
func New(s Spec, label string, command func(ctx context.Context, argv []string) error) (Func, func()) {
	switch {
	case s.TCP != "":
		return func(ctx context.Context) error {
			if err := TCP(ctx, s.TCP); err != nil {
				return fmt.Errorf("%s.tcp: %w", label, err)
			}
			return nil
		}, func() {}
	case s.HTTP != "":
		client := NewHTTPClient()
		return func(ctx context.Context) error {
			if err := HTTP(ctx, client, s.HTTP); err != nil {
				return fmt.Errorf("%s.http: %w", label, err)
			}
			return nil
		}, client.CloseIdleConnections
	case len(s.Command) > 0:
		if command == nil {
			command = RunArgv
		}
		return func(ctx context.Context) error {
			if err := command(ctx, s.Command); err != nil {
				return fmt.Errorf("%s.command: %w", label, err)
			}
			return nil
		}, func() {}
	}
	return nil, func() {}
}

// TCP passes when a TCP connection to addr succeeds.
func TCP(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// NewHTTPClient is the client HTTP checks share: no keep-alives, so a
// check opens a fresh connection each time, as a new client would.
func NewHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
}

// HTTP passes when a GET of rawURL answers 2xx.
func HTTP(ctx context.Context, client *http.Client, rawURL string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s: %s", rawURL, resp.Status)
	}
	return nil
}

// MaxOutput bounds how much of a command check's output is kept.
const MaxOutput = 4096

// Cmd is a resolved check command.
type Cmd struct {
	Path string
	Argv []string
	Env  []string
	Dir  string
	// Prepare, when set, may change the process attributes and returns
	// the environment to use (exec puts its checks in the run's jail).
	Prepare func(attr *syscall.SysProcAttr, env []string) []string
}

// Run runs c in a process group of its own, killed as a group when ctx
// ends and after c exits (nothing it started outlives the check). Its
// error carries the last line of its output.
func Run(ctx context.Context, c Cmd) error {
	var out bytes.Buffer
	lw := &limitedWriter{w: &out, n: MaxOutput}
	cmd := osexec.CommandContext(ctx, c.Path)
	attr := groupAttr()
	env := c.Env
	if c.Prepare != nil {
		env = c.Prepare(attr, env)
	}
	cmd.Args, cmd.Env, cmd.Dir = c.Argv, env, c.Dir
	cmd.Stdout, cmd.Stderr = lw, lw
	cmd.SysProcAttr = attr
	cmd.Cancel = func() error { return killGroup(cmd.Process) }
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if cmd.Process != nil {
		_ = killGroup(cmd.Process) // nothing it started outlives the check
	}
	if err == nil {
		return nil
	}
	if last := LastLine(out.String()); last != "" {
		return fmt.Errorf("%w: %s", err, last)
	}
	return err
}

// RunArgv runs argv as a check with the allowlisted environment, in the
// home directory (/ when there is none), ~ in argv[0] expanded and the
// program looked up in that environment's PATH.
func RunArgv(ctx context.Context, argv []string) error {
	if len(argv) == 0 {
		return fmt.Errorf("empty command")
	}
	env := Env(nil)
	name, err := home.Expand(argv[0])
	if err != nil {
		return err
	}
	path, err := LookPath(name, env)
	if err != nil {
		return err
	}
	dir := "/"
	if h, err := os.UserHomeDir(); err == nil {
		if fi, err := os.Stat(h); err == nil && fi.IsDir() {
			dir = h
		}
	}
	args := slices.Clone(argv)
	args[0] = name
	return Run(ctx, Cmd{Path: path, Argv: args, Env: env, Dir: dir})
}

// EnvAllowlist names the only variables of the agent's environment a
// command rouse starts inherits. Everything else (the API token above
// all) stays out unless the user writes it in the component's env.
var EnvAllowlist = []string{
	"PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ",
	"XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS", "SSH_AUTH_SOCK",
}

// Env is the allowlisted part of the agent's environment plus extra,
// sorted.
func Env(extra map[string]string) []string {
	m := make(map[string]string, len(EnvAllowlist)+len(extra))
	for _, k := range EnvAllowlist {
		if v, ok := os.LookupEnv(k); ok {
			m[k] = v
		}
	}
	for k, v := range extra {
		m[k] = v
	}
	env := make([]string, 0, len(m))
	for k, v := range m {
		env = append(env, k+"="+v)
	}
	slices.Sort(env)
	return env
}

// LookPath finds name in the PATH of env (the child's, which the user may
// have changed), skipping empty and relative entries.
func LookPath(name string, env []string) (string, error) {
	if strings.ContainsRune(name, '/') || strings.ContainsRune(name, filepath.Separator) {
		return name, nil
	}
	var pathList string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathList = v
		}
	}
	for _, d := range filepath.SplitList(pathList) {
		if d == "" || !filepath.IsAbs(d) {
			continue
		}
		if p, err := osexec.LookPath(filepath.Join(d, name)); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("not found in PATH %q: install it or give its full path in command", pathList)
}

// LastLine is the last line of s, at most 200 bytes: what a check's
// error quotes of its output.
func LastLine(s string) string {
	s = strings.TrimRight(s, "\r\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// limitedWriter keeps at most n bytes and drops the rest: a check's
// output is for its error message, never held in full.
type limitedWriter struct {
	w *bytes.Buffer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if room := l.n - l.w.Len(); room > 0 {
		l.w.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
