package exec

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	osexec "os/exec"
	"slices"
	"time"

	"github.com/rouse-dev/rouse/internal/home"
	"github.com/rouse-dev/rouse/trackers/probe"
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
	env := probe.Env(extraEnv)
	name, err := home.Expand(argv[0])
	if err != nil {
		return spec{}, err
	}
	path, err := probe.LookPath(name, env)
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
	watchExit(cmd, j.id(), func(err error) {
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
		deadline := time.Now().Add(timeout)
		t := time.NewTimer(timeout)
		select {
		case <-p.done:
			// The leader ended on its SIGTERM. The rest of the run got it
			// too, and has what is left of the stop timeout to end on it
			// before the SIGKILL below: a daemon that left the group must
			// not be killed the moment its parent exits.
			if waitGroupGone(p.Pid(), time.Until(deadline)) {
				p.jail.settle(deadline)
			}
		case <-t.C:
			p.log.Warn("child did not stop in time, killing its process group", "pid", p.Pid(), "stop_timeout", timeout)
		}
		t.Stop()
	}
	// Sweep the group: what the leader left behind goes too.
	if err := killGroup(p.cmd.Process); err != nil {
		p.log.Warn("cannot signal child process group", "pid", p.Pid(), "signal", "SIGKILL", "err", err)
	}
	reaped := false
	select {
	case <-p.done:
		reaped = true
	default:
	}
	if err := p.jail.kill(reaped); err != nil {
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
	for _, r := range p.readers {
		if d, ok := r.(interface{ drain() }); ok {
			d.drain() // the writers are gone: the end is there to read
		}
	}
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
type checker = probe.Func

// newChecker builds the check o.Ready asks for; nil when there is none.
// close releases what the check holds (idle HTTP connections). A command
// check runs with the child's environment and directory, in the jail of
// the run it checks (jailOf), so what it leaves behind goes with the run.
func newChecker(o *Options, jailOf func() *jail) (check checker, close func()) {
	return probe.New(o.Ready, "ready", func(ctx context.Context, argv []string) error {
		sp, err := resolve(argv, o.Env, o.Dir)
		if err != nil {
			return err
		}
		return probe.Run(ctx, probe.Cmd{Path: sp.path, Argv: sp.argv, Env: sp.env, Dir: sp.dir, Prepare: jailOf().prepare})
	})
}

func lastLine(s string) string { return probe.LastLine(s) }
