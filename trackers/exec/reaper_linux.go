package exec

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	osexec "os/exec"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// reaper is the agent's one goroutine for its children's exits: it tells
// each exec process's owner that its child exited (watch: one goroutine for
// all components instead of a Wait goroutine each), and reaps the zombies
// the agent adopts as a subreaper. It wakes on SIGCHLD and runs while
// anyone holds it (acquire/release: every running exec process, every
// subreaper jail); the last release stops it and waits for it.
type reaper struct {
	mu      sync.Mutex
	refs    int
	stop    chan struct{}
	done    chan struct{}
	kc      chan struct{} // kick: look now
	watches map[*exitWatch]struct{}
	// leaders maps the pid of each watched child (a run's leader) to its
	// run's token ("" without one), until it is reaped: the agent's
	// children that are no orphan it adopted (see kidScans).
	leaders map[int]string
}

// exitWatch is one child whose exit the reaper reports: fd is a pidfd of
// our own for it; done gets cmd.Wait's result, called from the reaper's
// goroutine once the child has exited (so Wait does not block).
type exitWatch struct {
	fd   int
	cmd  *osexec.Cmd
	done func(error)
}

var theReaper reaper

// subreaping is set once the agent is a child subreaper: only then are
// adopted orphans looked for.
var subreaping atomic.Bool

// adoptedReaped counts the adopted orphans the reaper has reaped: a
// stopping run's look at the agent's children (jail.over) trusts two
// snapshots only if no adopted child vanished between them.
var adoptedReaped atomic.Uint64

// pidfdsHeld reports, once, whether Go's os package holds a pidfd for the
// processes it knows (os.FindProcess of the agent itself is checked): the
// reaper's way of telling adopted orphans from children that os/exec waits
// for. Without it the reaper reaps nothing.
var pidfdsHeld = sync.OnceValue(func() bool {
	p, err := os.FindProcess(os.Getpid())
	if err != nil {
		return false
	}
	defer p.Release()
	return heldPidfds(nil)[os.Getpid()]
})

func (r *reaper) acquire(log *slog.Logger) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refs++
	if r.refs > 1 {
		return
	}
	if subreaping.Load() && !pidfdsHeld() {
		log.Warn("cannot tell adopted orphans from the agent's own children (no pidfds): orphans of exec components stay zombies until the agent exits")
	}
	r.stop, r.done = make(chan struct{}), make(chan struct{})
	if r.kc == nil {
		r.kc = make(chan struct{}, 1)
		r.watches = map[*exitWatch]struct{}{}
		r.leaders = map[int]string{}
	}
	go r.run(r.stop, r.done, r.kc)
}

func (r *reaper) release() {
	r.mu.Lock()
	r.refs--
	if r.refs > 0 {
		r.mu.Unlock()
		return
	}
	stop, done := r.stop, r.done
	r.mu.Unlock()
	close(stop)
	<-done
}

func holdReaper(log *slog.Logger) { theReaper.acquire(log) }
func releaseReaper()              { theReaper.release() }

// watchExit calls done with cmd.Wait's result once cmd's process exited;
// token is its run's ROUSE_EXEC_ID ("" for none). The caller holds the
// reaper (acquire) until done has been called.
func watchExit(cmd *osexec.Cmd, token string, done func(error)) {
	fd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	if err != nil { // no pidfds here: a goroutine of its own
		go func() { done(cmd.Wait()) }()
		return
	}
	theReaper.mu.Lock()
	theReaper.watches[&exitWatch{fd: fd, cmd: cmd, done: done}] = struct{}{}
	theReaper.leaders[cmd.Process.Pid] = token
	theReaper.mu.Unlock()
	theReaper.kick() // it may have exited before the watch was in place
}

// leaderToken returns the run token of pid when pid is a watched child
// not yet reaped; ok is false for any other process.
func (r *reaper) leaderToken(pid int) (token string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	token, ok = r.leaders[pid]
	return token, ok
}

// kick asks the running reaper to look now.
func (r *reaper) kick() {
	r.mu.Lock()
	kc := r.kc
	r.mu.Unlock()
	if kc == nil {
		return
	}
	select {
	case kc <- struct{}{}:
	default:
	}
}

func (r *reaper) run(stop, done, kc chan struct{}) {
	defer close(done)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGCHLD)
	defer signal.Stop(sig)
	for {
		r.deliverExits()
		if subreaping.Load() {
			reapAdopted()
		}
		select {
		case <-stop:
			if subreaping.Load() {
				reapAdopted()
			}
			return
		case <-sig:
		case <-kc:
		}
	}
}

// deliverExits reports every watched child that has exited.
func (r *reaper) deliverExits() {
	r.mu.Lock()
	var exited []*exitWatch
	for w := range r.watches {
		var info unix.Siginfo
		if unix.Waitid(unix.P_PIDFD, w.fd, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil) == nil && info.Signo == 0 {
			continue // still running
		}
		delete(r.watches, w)
		exited = append(exited, w)
	}
	r.mu.Unlock()
	for _, w := range exited {
		unix.Close(w.fd)
		err := w.cmd.Wait() // the child is a zombie: Wait only reaps it
		// Out of the register only now, so a look at the agent's children
		// never takes a leader's zombie for an unknown child. The number
		// just freed is not handed out again before the kernel's pid
		// allocator has gone round its whole range.
		r.mu.Lock()
		delete(r.leaders, w.cmd.Process.Pid)
		r.mu.Unlock()
		w.done(err)
	}
}

// reapAdopted reaps every zombie child of the agent that no pidfd of the
// agent refers to (see the package's containment notes), and returns how
// many it reaped.
func reapAdopted() int {
	if !pidfdsHeld() || !zombieChild() {
		return 0
	}
	zombies := zombieChildren()
	if len(zombies) == 0 {
		return 0
	}
	// Pin each zombie with a pidfd of our own first, then look at who else
	// holds one: a child of os/exec is held from its fork until its Wait.
	own := make(map[int]int, len(zombies)) // fd → pid
	for _, pid := range zombies {
		fd, err := unix.PidfdOpen(pid, 0)
		if err == nil {
			own[fd] = pid
		}
	}
	held := heldPidfds(own)
	n := 0
	for fd, pid := range own {
		if !held[pid] {
			var info unix.Siginfo
			if unix.Waitid(unix.P_PIDFD, fd, &info, unix.WEXITED|unix.WNOHANG, nil) == nil && info.Signo != 0 {
				n++
				adoptedReaped.Add(1)
			}
		}
		unix.Close(fd)
	}
	return n
}

// zombieChild reports whether any child of the agent is a zombie, without
// reaping it: one waitid instead of reading every thread's children and
// every child's stat on each SIGCHLD (a wake restarting fifty components
// sends a hundred). True when it cannot tell.
func zombieChild() bool {
	var info unix.Siginfo
	err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	if errors.Is(err, unix.ECHILD) {
		return false
	}
	return err != nil || info.Signo != 0
}

// zombieChildren lists the agent's children that are zombies, leaving out
// the watched ones (deliverExits reaps those through os/exec): when fifty
// leaders exit at once, their zombies are not read one by one on every
// SIGCHLD, nor does the pidfd check below run for them.
func zombieChildren() []int {
	self := os.Getpid()
	var out []int
	kids, ok := childrenOfSelf()
	if !ok {
		for _, p := range procScans.procs() {
			if p.ppid == self && p.zombie {
				out = append(out, p.pid)
			}
		}
		return out
	}
	for _, pid := range kids {
		if _, watched := theReaper.leaderToken(pid); watched {
			continue
		}
		if p, ok := readProc(pid); ok && p.zombie && p.ppid == self {
			out = append(out, pid)
		}
	}
	return out
}

// childrenOfSelf lists the agent's children from each thread's children
// file; ok is false when the kernel has none (CONFIG_PROC_CHILDREN).
func childrenOfSelf() (kids []int, ok bool) {
	self := strconv.Itoa(os.Getpid())
	if _, err := os.Stat("/proc/self/task/" + self + "/children"); err != nil {
		return nil, false
	}
	tasks, err := taskNames()
	if err != nil {
		return nil, false
	}
	for _, t := range tasks {
		pids, err := readPids("/proc/self/task/" + strconv.Itoa(t) + "/children")
		if err != nil {
			continue // the thread ended meanwhile
		}
		kids = append(kids, pids...)
	}
	return kids, true
}

// heldPidfds maps the pid of every pidfd open in the agent, except the fds
// in skip, to true.
func heldPidfds(skip map[int]int) map[int]bool {
	held := map[int]bool{}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return held
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, mine := skip[fd]; mine {
			continue
		}
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err != nil || l != "anon_inode:[pidfd]" {
			continue
		}
		b, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
		if err != nil {
			continue
		}
		for line := range bytes.SplitSeq(b, []byte{'\n'}) {
			if v, ok := bytes.CutPrefix(line, []byte("Pid:")); ok {
				if pid, err := strconv.Atoi(string(bytes.TrimSpace(v))); err == nil {
					held[pid] = true
				}
			}
		}
	}
	return held
}
