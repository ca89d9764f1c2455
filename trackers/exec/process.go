package exec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rouse-dev/rouse/internal/home"
)

// readerGrace is how long output readers may run after the process group
// is gone: a descendant that left the group can hold the pipes open, and we
// do not wait for it.
const readerGrace = 2 * time.Second

// groupGoneGrace bounds the wait for a killed group's members to die.
const groupGoneGrace = 2 * time.Second

// waitGroupGone polls until process group pgid has no live member, or
// timeout.
func waitGroupGone(pgid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for !groupGone(pgid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// process is one run of the supervised command. The real one is osProcess;
// tests of the supervision loop use a fake so they run under synctest.
type process interface {
	Pid() int
	// Done is closed once the process has exited and been reaped.
	Done() <-chan struct{}
	// Err is the exit error (nil for exit status 0); valid once Done is
	// closed.
	Err() error
	// LastLine is the newest line the process wrote, "" when none.
	LastLine() string
	// Stop stops the whole process group (SIGTERM, then SIGKILL after
	// timeout) and returns once the process is reaped and its output
	// readers have ended. It is called exactly once, also after the process
	// exited by itself (to sweep what it left in its group).
	Stop(timeout time.Duration)
}

// spec is a resolved command: what exec needs to start it.
type spec struct {
	path string
	argv []string
	env  []string
	dir  string
}

// resolve expands ~ in argv[0] and dir, builds the environment and looks
// the program up in the child's PATH.
func resolve(argv []string, extraEnv map[string]string, dir string) (spec, error) {
	if len(argv) == 0 {
		return spec{}, errors.New("empty command")
	}
	env := childEnv(extraEnv)
	name, err := home.Expand(argv[0])
	if err != nil {
		return spec{}, err
	}
	path, err := lookPath(name, env)
	if err != nil {
		return spec{}, err
	}
	if dir, err = workDir(dir); err != nil {
		return spec{}, err
	}
	args := slices.Clone(argv)
	args[0] = name
	return spec{path: path, argv: args, env: env, dir: dir}, nil
}

// childEnv is the allowlisted part of the agent's environment plus extra,
// sorted.
func childEnv(extra map[string]string) []string {
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

// dirError is a working directory that cannot be used; its message names
// the directory, never the program.
type dirError struct {
	dir string
	err error
}

func (e *dirError) Error() string {
	if errors.Is(e.err, fs.ErrNotExist) {
		return fmt.Sprintf("working directory %q does not exist: create it or change dir", e.dir)
	}
	return fmt.Sprintf("working directory %q: %v", e.dir, e.err)
}

func (e *dirError) Unwrap() error { return e.err }

// workDir is the child's working directory: dir with ~ expanded, checked to
// be a directory; for "" the home directory when it is one, otherwise /.
func workDir(dir string) (string, error) {
	if dir == "" {
		if home, err := os.UserHomeDir(); err == nil && isDir(home) == nil {
			return home, nil
		}
		return "/", nil
	}
	d, err := home.Expand(dir)
	if err != nil {
		return "", &dirError{dir: dir, err: err}
	}
	if err := isDir(d); err != nil {
		return "", &dirError{dir: d, err: err}
	}
	return d, nil
}

// isDir returns nil when p is a directory (following symlinks).
func isDir(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		if pe, ok := err.(*fs.PathError); ok {
			return pe.Err
		}
		return err
	}
	if !fi.IsDir() {
		return errors.New("not a directory")
	}
	return nil
}

// lookPath finds name in the PATH of env (the child's, which the user may
// have changed), skipping empty and relative entries.
func lookPath(name string, env []string) (string, error) {
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

// osProcess is a real child in its own process group, and in its jail.
type osProcess struct {
	cmd     *osexec.Cmd
	log     *slog.Logger
	jail    *jail
	done    chan struct{}
	err     error
	readers []outputReader
	polled  bool // holds the shared output poller
	sink    *sink
}

// startProcess starts sp in j with stdout and stderr fed line by line to s.
// The process owns j from then on (Stop closes it), also when it cannot
// start.
func startProcess(sp spec, s *sink, log *slog.Logger, j *jail) (*osProcess, error) {
	p, err := startInJail(sp, s, log, j)
	if err != nil {
		j.close()
		var pe *fs.PathError
		if sp.dir != "" && errors.As(err, &pe) && isDir(sp.dir) != nil {
			// fork/exec names the program for a chdir that failed.
			return nil, &dirError{dir: sp.dir, err: isDir(sp.dir)}
		}
		return nil, err
	}
	return p, nil
}

func startInJail(sp spec, s *sink, log *slog.Logger, j *jail) (*osProcess, error) {
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, err
	}
	attr := sysProcAttr()
	cmd := &osexec.Cmd{
		Path:        sp.path,
		Args:        sp.argv,
		Env:         j.prepare(attr, sp.env),
		Dir:         sp.dir,
		Stdout:      outW, // *os.File: the child writes to the pipe directly
		Stderr:      errW,
		SysProcAttr: attr,
	}
	err = cmd.Start()
	outW.Close() // the child holds its own copies
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, err
	}
	j.started(cmd.Process.Pid)
	p := &osProcess{cmd: cmd, log: log, jail: j, done: make(chan struct{}), sink: s}
	// Output: through the shared poller where there is one, otherwise a
	// goroutine per pipe.
	p.polled = holdPoller()
	for _, o := range []struct {
		f      *os.File
		stream string
	}{{outR, "stdout"}, {errR, "stderr"}} {
		var r outputReader
		if p.polled {
			r = readOutput(o.f, o.stream, s)
		}
		if r == nil {
			r = goRead(o.f, o.stream, s)
		}
		p.readers = append(p.readers, r)
	}
	// Held until Stop has seen the exit: the watcher of the child's exit.
	holdReaper(log)
	watchExit(cmd, func(err error) {
		p.err = err
		close(p.done)
	})
	return p, nil
}

func (p *osProcess) Pid() int              { return p.cmd.Process.Pid }
func (p *osProcess) Done() <-chan struct{} { return p.done }
func (p *osProcess) Err() error            { return p.err }
func (p *osProcess) LastLine() string      { return p.sink.last() }

func (p *osProcess) Stop(timeout time.Duration) {
	select {
	case <-p.done:
	default:
		if err := terminateGroup(p.cmd.Process); err != nil {
			p.log.Warn("cannot signal child process group", "pid", p.Pid(), "signal", "SIGTERM", "err", err)
		}
		p.jail.terminate() // what left the group (setsid, double fork) too
		t := time.NewTimer(timeout)
		select {
		case <-p.done:
		case <-t.C:
			p.log.Warn("child did not stop in time, killing its process group", "pid", p.Pid(), "stop_timeout", timeout)
		}
		t.Stop()
	}
	// Sweep the group: what the leader left behind goes too.
	if err := killGroup(p.cmd.Process); err != nil {
		p.log.Warn("cannot signal child process group", "pid", p.Pid(), "signal", "SIGKILL", "err", err)
	}
	if err := p.jail.kill(); err != nil {
		p.log.Warn("cannot kill every process the child started", "pid", p.Pid(), "err", err)
	}
	<-p.done
	// The kill is sent, not done: wait until no member of the group is left
	// running, so a restart does not race its predecessor's descendants for
	// a port.
	if !waitGroupGone(p.Pid(), groupGoneGrace) {
		p.log.Warn("processes of the child's group still running after SIGKILL", "pid", p.Pid())
	}
	p.jail.close()
	t := time.NewTimer(readerGrace)
wait:
	for _, r := range p.readers {
		select {
		case <-r.Done():
		case <-t.C:
			p.log.Warn("child output still open after its process group ended; closing it", "pid", p.Pid())
			break wait
		}
	}
	t.Stop()
	for _, r := range p.readers {
		r.Close() // ends a reader still waiting
	}
	p.sink.done()
	if p.polled {
		releasePoller()
	}
	releaseReaper()
}

// outputReader feeds one of the child's pipes to its sink.
type outputReader interface {
	// Done is closed at the pipe's end (every writer closed it) or Close.
	Done() <-chan struct{}
	// Close stops reading and closes the pipe; it returns once reading
	// has stopped.
	Close()
}

// goReader reads a pipe in a goroutine of its own.
type goReader struct {
	f    *os.File
	done chan struct{}
}

func goRead(f *os.File, stream string, s *sink) *goReader {
	r := &goReader{f: f, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		readLines(f, stream, s)
	}()
	return r
}

func (r *goReader) Done() <-chan struct{} { return r.done }

func (r *goReader) Close() {
	r.f.Close() // unblocks the read
	<-r.done
}

// checker is a readiness check: nil error means ready.
type checker func(ctx context.Context) error

// newChecker builds the check o.Ready asks for; nil when there is none.
// close releases what the check holds (idle HTTP connections). A command
// check runs in the jail of the run it checks (jailOf), so what it leaves
// behind goes with the run.
func newChecker(o *Options, jailOf func() *jail) (check checker, close func()) {
	r := o.Ready
	switch {
	case r.TCP != "":
		return func(ctx context.Context) error {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", r.TCP)
			if err != nil {
				return fmt.Errorf("ready.tcp: %w", err)
			}
			return c.Close()
		}, func() {}
	case r.HTTP != "":
		tr := &http.Transport{DisableKeepAlives: true}
		client := &http.Client{Transport: tr}
		return func(ctx context.Context) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.HTTP, nil)
			if err != nil {
				return fmt.Errorf("ready.http: %w", err)
			}
			resp, err := client.Do(req)
			if err != nil {
				return fmt.Errorf("ready.http: %w", err)
			}
			resp.Body.Close()
			if resp.StatusCode < 200 || resp.StatusCode > 299 {
				return fmt.Errorf("ready.http: GET %s: %s", r.HTTP, resp.Status)
			}
			return nil
		}, tr.CloseIdleConnections
	case len(r.Command) > 0:
		return func(ctx context.Context) error {
			sp, err := resolve(r.Command, o.Env, o.Dir)
			if err != nil {
				return fmt.Errorf("ready.command: %w", err)
			}
			return runCheck(ctx, sp, jailOf())
		}, func() {}
	}
	return nil, func() {}
}

// runCheck runs a readiness command in its own process group, in j, killed
// as a group when ctx ends.
func runCheck(ctx context.Context, sp spec, j *jail) error {
	var out bytes.Buffer
	cmd := osexec.CommandContext(ctx, sp.path)
	attr := sysProcAttr()
	cmd.Args, cmd.Env, cmd.Dir = sp.argv, j.prepare(attr, sp.env), sp.dir
	cmd.Stdout, cmd.Stderr = &out, &out
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
	if last := lastLine(out.String()); last != "" {
		return fmt.Errorf("ready.command: %w: %s", err, last)
	}
	return fmt.Errorf("ready.command: %w", err)
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\r\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
