package exec

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Containment on Linux. A jail holds every process one run of a command
// starts, however it daemonizes, so that stopping the run leaves none.
//
// With a delegated cgroup v2 subtree (the unit says Delegate=yes: the system
// manager marks the group with the trusted.delegate or user.delegate
// extended attribute; a user manager marks nothing, so there a service's
// group under user@UID.service that the agent owns counts) the agent moves itself
// into the leaf "agent" of its group (cgroup v2 keeps processes out of inner
// groups) and starts each run's child directly inside a group of its own
// beside it ("exec-<name>.<agent pid>.<n>", CLONE_INTO_CGROUP, so not even the first
// fork escapes). Stopping sends SIGTERM to every process of the group, then
// writes cgroup.kill, waits until the group is empty and removes it. Groups
// an earlier agent left are killed and removed when the first run starts.
//
// Elsewhere the agent makes itself a child subreaper (PR_SET_CHILD_SUBREAPER):
// an orphan of any of its descendants (a double fork, setsid) is re-parented
// to the agent rather than to init. Each run's child carries ROUSE_EXEC_ID, a
// random token of the run that its descendants inherit; the run's processes
// are the child's descendants plus every process re-parented to the agent
// that carries the token, and their descendants. Stopping signals all of
// them, and SIGKILLs until none is left. Reading the whole process table
// costs about 10 ms with 300 processes, and a stop needs two such reads or
// more, so a stop looks at the agent's own children first (its children
// files, a watched leader known by pid): when the leader has no child and
// no other child of the agent is in its group or carries its token, the
// group's signal reached the whole run (jail.alone); once the leader is
// reaped and its group empty, two such looks with nothing of the run show
// it is over (jail.over, which says why that suffices). Anything else, or
// a look that cannot be trusted, falls back to the scan.
//
// A subreaper must reap what it adopts, without stealing the exit status of
// a child some goroutine of the agent waits for with os/exec. The reaper
// (one goroutine, running while any subreaper jail is open) wakes on SIGCHLD
// and reaps a zombie child only when no pidfd of the agent refers to it:
// Go's os package holds a pidfd for every child it starts, from the fork
// until its Wait reaps it (checked once at start: without pidfds the reaper
// reaps nothing and says so). It reaps through a pidfd of its own, so a pid
// reused meanwhile is never touched.

// Containment modes.
const (
	modeCgroup    = "cgroup"
	modeSubreaper = "subreaper"
)

// idEnv carries a run's token in subreaper mode.
const idEnv = "ROUSE_EXEC_ID"

// cgroupPrefix starts the name of every run's cgroup.
const cgroupPrefix = "exec-"

// containment is the agent-wide setup, made once (setupContainment).
type containment struct {
	mode string
	base string // cgroup mode: the delegated group the runs' groups go in
}

var (
	containOnce sync.Once
	contained   containment
)

// agentContainment sets up containment on first use: cgroup when the agent
// has a delegated cgroup v2 subtree, subreaper otherwise.
func agentContainment(log *slog.Logger) containment {
	containOnce.Do(func() { contained = setupContainment(log) })
	return contained
}

func setupContainment(log *slog.Logger) containment {
	own, err := ownCgroup()
	if err == nil {
		if why := delegation(own); why == "" {
			if err = enterLeaf(own); err == nil {
				sweepCgroups(own, log)
				log.Info("exec components run in cgroups of their own", "cgroup", own)
				return containment{mode: modeCgroup, base: own}
			}
			log.Warn("cannot move the agent into a leaf of its delegated cgroup; using a subreaper", "cgroup", own, "err", err)
		} else {
			log.Debug("no delegated cgroup; exec components are tracked as a subreaper", "cgroup", own, "reason", why)
		}
	} else {
		log.Debug("no cgroup v2; exec components are tracked as a subreaper", "err", err)
	}
	if err := becomeSubreaper(); err != nil {
		log.Warn("cannot become a child subreaper: what an exec component daemonizes may outlive it", "err", err)
		return containment{}
	}
	return containment{mode: modeSubreaper}
}

// becomeSubreaper makes the agent the reaper of its descendants' orphans.
func becomeSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return err
	}
	subreaping.Store(true)
	return nil
}

// ownCgroup is the directory of this process's cgroup v2 group.
func ownCgroup() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	var rel string
	found := false
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			rel, found = p, true
		}
	}
	if !found {
		return "", errors.New("no cgroup v2 membership in /proc/self/cgroup")
	}
	mnt, root, err := cgroup2Mount()
	if err != nil {
		return "", err
	}
	r, err := filepath.Rel(root, rel)
	if err != nil || r == ".." || strings.HasPrefix(r, "../") {
		return "", fmt.Errorf("cgroup %q is outside the mounted cgroup2 tree %q", rel, root)
	}
	return filepath.Join(mnt, r), nil
}

// cgroup2Mount finds a cgroup2 mount: its mount point and the root of the
// tree it shows.
func cgroup2Mount() (mountPoint, root string, err error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint opts [optional...] - fstype source superopts
		fields := strings.Fields(sc.Text())
		for i, fld := range fields {
			if fld == "-" && i+1 < len(fields) && fields[i+1] == "cgroup2" && len(fields) > 4 {
				return unescapeMount(fields[4]), unescapeMount(fields[3]), nil
			}
		}
	}
	return "", "", errors.New("no cgroup2 file system mounted")
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// delegation returns "" when dir is a cgroup delegated to this process
// (systemd's marker, or for an unprivileged agent a group it owns), and
// otherwise why not.
func delegation(dir string) string {
	if _, err := os.Stat(filepath.Join(dir, "cgroup.kill")); err != nil {
		return "no cgroup.kill (Linux 5.14 or later needed)"
	}
	buf := make([]byte, 8)
	for _, name := range []string{"trusted.delegate", "user.delegate"} {
		if n, err := unix.Getxattr(dir, name, buf); err == nil && string(buf[:n]) == "1" {
			return ""
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return err.Error()
	}
	// A user manager never writes the marker (systemd's cgroup_xattr_apply
	// returns early for it): under user@UID.service, a service's group the
	// agent owns is taken as delegated; a scope (a terminal, an app) never.
	if uid := os.Geteuid(); uid != 0 && int(st.Uid) == uid && userService(dir, uid) &&
		unix.Access(filepath.Join(dir, "cgroup.procs"), unix.W_OK) == nil {
		return ""
	}
	return "the group is not delegated (Delegate=yes)"
}

// userService reports whether the cgroup dir is a service of the user
// manager of uid.
func userService(dir string, uid int) bool {
	return strings.HasSuffix(dir, ".service") && strings.Contains(dir, "/user@"+strconv.Itoa(uid)+".service/")
}

// enterLeaf moves this process into base/agent.
func enterLeaf(base string) error {
	leaf := filepath.Join(base, "agent")
	if err := os.Mkdir(leaf, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return os.WriteFile(filepath.Join(leaf, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0)
}

// sweepCgroups kills and removes the groups of runs an earlier agent left in
// base.
func sweepCgroups(base string, log *slog.Logger) {
	ents, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), cgroupPrefix) {
			continue
		}
		dir := filepath.Join(base, e.Name())
		if populated(dir) {
			log.Warn("killing what an earlier agent left in a component's cgroup", "cgroup", dir)
		}
		if err := killCgroup(dir); err != nil {
			log.Warn("cannot remove an earlier agent's cgroup", "cgroup", dir, "err", err)
		}
	}
}

// populated reports whether a live process is left in the group dir or
// below it.
func populated(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
	if err != nil {
		return false
	}
	return bytes.Contains(b, []byte("populated 1"))
}

// killCgroup kills every process in dir (cgroup.kill), waits until the group
// is empty and removes it with whatever groups its processes made below.
func killCgroup(dir string) error {
	if err := os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	deadline := time.Now().Add(groupGoneGrace)
	for populated(dir) {
		if time.Now().After(deadline) {
			return errors.New("processes still running after cgroup.kill")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return removeCgroup(dir)
}

// removeCgroup removes dir and its sub-groups, deepest first. An empty group
// can take a moment to become removable after its last process died.
func removeCgroup(dir string) error {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.IsDir() {
			if err := removeCgroup(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	deadline := time.Now().Add(groupGoneGrace)
	for {
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// jail holds the processes of one run. newJail returns a jail of the agent's
// containment mode; every method is safe on a nil *jail (no containment).
type jail struct {
	mode string
	log  *slog.Logger

	// cgroup mode
	dir string
	fd  int

	// subreaper mode
	token  string
	leader int
}

var cgroupSeq atomic.Uint64

// newJail makes the jail of one run of component name.
func newJail(name string, log *slog.Logger) (*jail, error) {
	c := agentContainment(log)
	switch c.mode {
	case modeCgroup:
		return newCgroupJail(c.base, name, log)
	case modeSubreaper:
		return newReaperJail(log)
	}
	return nil, nil
}

// newCgroupJail makes a fresh group for one run under base.
func newCgroupJail(base, name string, log *slog.Logger) (*jail, error) {
	// The agent's pid too: a group an earlier agent could not remove never
	// blocks a name.
	dir := filepath.Join(base, fmt.Sprintf("%s%s.%d.%d", cgroupPrefix, cgroupName(name), os.Getpid(), cgroupSeq.Add(1)))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create the component's cgroup: %w", err)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Rmdir(dir)
		return nil, fmt.Errorf("open the component's cgroup: %w", err)
	}
	return &jail{mode: modeCgroup, log: log, dir: dir, fd: fd}, nil
}

// cgroupName escapes a component name for a cgroup directory: bytes other
// than letters, digits, '-' and '_' become "%XX".
func cgroupName(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func newReaperJail(log *slog.Logger) (*jail, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	j := &jail{mode: modeSubreaper, log: log, token: hex.EncodeToString(b[:])}
	theReaper.acquire(log)
	return j, nil
}

// id is the run's token in subreaper mode, "" otherwise.
func (j *jail) id() string {
	if j == nil {
		return ""
	}
	return j.token
}

// prepare sets up attr and env for the run's child: its cgroup, or its
// token.
func (j *jail) prepare(attr *syscall.SysProcAttr, env []string) []string {
	if j == nil {
		return env
	}
	switch j.mode {
	case modeCgroup:
		attr.UseCgroupFD = true
		attr.CgroupFD = j.fd
	case modeSubreaper:
		env = append(env[:len(env):len(env)], idEnv+"="+j.token)
	}
	return env
}

// started records the run's child.
func (j *jail) started(pid int) {
	if j != nil {
		j.leader = pid
	}
}

// terminate sends SIGTERM to every process of the run. The caller has sent
// it to the leader's process group already.
func (j *jail) terminate() {
	if j == nil {
		return
	}
	if j.mode == modeSubreaper && j.alone() {
		return // the group was the whole run
	}
	for _, pid := range j.members() {
		syscall.Kill(pid, syscall.SIGTERM)
	}
}

// settle waits, until deadline, for what is left of the run once its
// leader is reaped and its group is gone: the processes that left the
// group, which terminate sent SIGTERM, end on it. It returns at once when
// the run is over (the agent's children show it, or a scan finds no
// member), so a run that was its leader alone costs no wait.
func (j *jail) settle(deadline time.Time) {
	if j == nil {
		return
	}
	for !(j.mode == modeSubreaper && j.over()) && len(j.members()) > 0 && time.Now().Before(deadline) {
		theReaper.kick()
		time.Sleep(settleStep)
	}
}

// settleStep is how often settle looks again.
const settleStep = 10 * time.Millisecond

// kill SIGKILLs every process of the run and returns once none is left (or
// after groupGoneGrace, with an error). The caller has sent SIGKILL to the
// leader's process group already; leaderReaped says the leader is reaped.
func (j *jail) kill(leaderReaped bool) error {
	if j == nil {
		return nil
	}
	if j.mode == modeCgroup {
		return killCgroup(j.dir)
	}
	if leaderReaped && j.over() {
		return nil
	}
	deadline := time.Now().Add(groupGoneGrace)
	for {
		m := j.members()
		if len(m) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d processes still running after SIGKILL", len(m))
		}
		for _, pid := range m {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		theReaper.kick()
		time.Sleep(5 * time.Millisecond)
	}
}

// close releases the jail; kill must have emptied it.
func (j *jail) close() {
	if j == nil {
		return
	}
	switch j.mode {
	case modeCgroup:
		unix.Close(j.fd)
		if err := removeCgroup(j.dir); err != nil {
			j.log.Warn("cannot remove the component's cgroup", "cgroup", j.dir, "err", err)
		}
	case modeSubreaper:
		theReaper.release()
	}
}

// members lists the live processes of the run.
func (j *jail) members() []int {
	if j.mode == modeCgroup {
		b, err := os.ReadFile(filepath.Join(j.dir, "cgroup.procs"))
		if err != nil {
			return nil
		}
		var pids []int
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return pids
	}
	return treeMembers(procScans.procs(), os.Getpid(), j.leader, j.token)
}

// alone reports whether the run, its leader still running, is no more than
// the leader's process group: the leader has no child, and no child of the
// agent but the leader is in that group or carries the run's token. False
// when it cannot tell. Reading an empty children file cannot miss a child
// (see readKids), and what the leader starts after the look is in its
// group, or escapes it only after the group's SIGTERM, as with a scan.
func (j *jail) alone() bool {
	if j.leader <= 0 {
		return false
	}
	task := "/proc/" + strconv.Itoa(j.leader) + "/task/"
	threads, err := dirNumbers(task)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	// Gone (reaped already): whatever it had went to the agent.
	for _, t := range threads {
		pids, err := readPids(task + strconv.Itoa(t) + "/children")
		if err != nil && !errors.Is(err, fs.ErrNotExist) || len(pids) > 0 {
			return false
		}
	}
	s := kidScans.procs()
	return s.ok && !j.hasKid(s.kids)
}

// over reports whether nothing of the run is left, its leader reaped and
// its group SIGKILLed, without a /proc scan; false when it cannot tell.
//
// Why the agent's children are enough: the agent is the subreaper of
// everything the run started, so a process of the run that is still alive
// is the leader, or descends from one of the agent's children that is not
// the leader — an orphan it adopted, or the group's member. With the
// group empty (kill(-pgid, 0) fails with ESRCH: not even a zombie is left)
// and the leader reaped, a survivor means an adopted child carrying the
// run's token. Two snapshots are taken, and trusted only together: a child
// adopted between them whose parent died after the first was classified
// would show in the second as new and dead (then a scan decides), and no
// adopted child may have been reaped between them (adoptedReaped), which
// could hide the orphans it left. As with a /proc scan, a process that
// cleared ROUSE_EXEC_ID from its environment and left both the group and
// its parent is not found.
func (j *jail) over() bool {
	if j.leader <= 0 || syscall.Kill(-j.leader, 0) != syscall.ESRCH {
		return false
	}
	reaped := adoptedReaped.Load()
	s1 := kidScans.procs()
	s2 := kidScans.procs()
	if !s1.ok || !s2.ok || adoptedReaped.Load() != reaped || j.hasKid(s1.kids) || j.hasKid(s2.kids) {
		return false
	}
	before := make(map[int]bool, len(s1.kids))
	for _, k := range s1.kids {
		before[k.pid] = true
	}
	for _, k := range s2.kids {
		if k.zombie && !before[k.pid] {
			return false
		}
	}
	return true
}

// hasKid reports whether kids holds a live process of the run other than
// its leader: one in the leader's group or carrying the run's token.
func (j *jail) hasKid(kids []proc) bool {
	for _, k := range kids {
		if k.pid != j.leader && !k.zombie && (k.pgid == j.leader || j.token != "" && k.token == j.token) {
			return true
		}
	}
	return false
}

// kidSnap is one look at the agent's children; ok is false when it could
// not be taken reliably (no children files, or they kept changing).
type kidSnap struct {
	ok   bool
	kids []proc
}

// kidTokens caches the ROUSE_EXEC_ID of the children snapKids reads (those
// that are no watched leader) by pid and start time, as tokens does for
// scans; only snapKids touches it, one at a time (kidScans).
var kidTokens = tokenCache{}

// snapKids takes a snapshot of the agent's children: a few tries, since
// the thread list or a children file may change under it.
func snapKids() kidSnap {
	for range 3 {
		if kids, ok := readKids(); ok {
			return kidSnap{ok: true, kids: kids}
		}
	}
	return kidSnap{}
}

// readKids lists the agent's children from each thread's children file.
// The kernel produces such a file one entry at a time, and when the entry
// it returned last is reaped (or moves to another thread) before the next
// one, it goes on by position and can skip a child. So each file is read
// twice, and the first read counts only if the second holds every pid it
// held: a skip needs an entry that went away. The thread list is read
// before and after, and no thread may have ended (a thread that ends hands
// its children to another). A watched leader is classified from the
// reaper's register (pid and token) without reading /proc; any other child
// is read: its stat, and for a live one its token. A child gone by then is
// listed as a zombie.
func readKids() ([]proc, bool) {
	tasks, err := taskNames()
	if err != nil {
		return nil, false
	}
	var pids []int
	var buf []byte
	for _, t := range tasks {
		first, second, err := readPidsTwice("/proc/self/task/"+strconv.Itoa(t)+"/children", &buf)
		if err != nil || !subset(first, second) {
			return nil, false
		}
		pids = append(pids, second...)
	}
	after, err := taskNames()
	if err != nil || !subset(tasks, after) {
		return nil, false
	}
	self := os.Getpid()
	seen := make(tokenCache, len(kidTokens))
	kids := make([]proc, 0, len(pids))
	for _, pid := range pids {
		if tok, ok := theReaper.leaderToken(pid); ok {
			kids = append(kids, proc{pid: pid, ppid: self, pgid: pid, token: tok})
			continue
		}
		st, ok := readStat(pid)
		if !ok || st.ppid != self {
			kids = append(kids, proc{pid: pid, ppid: self, zombie: true})
			continue
		}
		p := procOf(pid, st)
		if !p.zombie {
			p.token = kidTokens.token(procKey{pid, st.start}, seen)
		}
		kids = append(kids, p)
	}
	kidTokens = seen
	return kids, true
}

// taskNames lists the agent's threads.
func taskNames() ([]int, error) { return dirNumbers("/proc/self/task") }

// subset reports whether every element of a is in b.
func subset(a, b []int) bool {
	if len(a) > len(b) {
		return false
	}
	in := make(map[int]bool, len(b))
	for _, x := range b {
		in[x] = true
	}
	for _, x := range a {
		if !in[x] {
			return false
		}
	}
	return true
}

// proc is what the subreaper needs of one process.
type proc struct {
	pid, ppid, pgid int
	zombie          bool
	token           string // a live child of the agent's ROUSE_EXEC_ID, "" otherwise
}

// procKey names a process across scans: its pid and start time.
type procKey struct {
	pid   int
	start uint64
}

// tokens caches the ROUSE_EXEC_ID of the agent's live children by pid and
// start time, so that each is read from /proc/PID/environ once, not once
// per scan and stopping run (fifty runs stopping together read fifty
// environments each). Only a token found is kept: a child seen between
// its fork and its exec still shows the agent's environment. Only scans
// touch it, and they run one at a time (procScans); each scan keeps only
// the children it saw.
var tokens = tokenCache{}

// tokenCache holds the tokens of live children by pid and start time.
type tokenCache map[procKey]string

// token is the token of the live child k: from c, else read from
// /proc/PID/environ. A token found is also put in next, the cache the
// current pass builds from what it saw.
func (c tokenCache) token(k procKey, next tokenCache) string {
	tok, ok := c[k]
	if !ok {
		tok = envToken(k.pid)
	}
	if tok != "" {
		next[k] = tok
	}
	return tok
}

// scanProcs reads every process's stat, and the token of the agent's live
// children.
func scanProcs() []proc {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	seen := make(tokenCache, len(tokens))
	out := make([]proc, 0, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, ok := readStat(pid)
		if !ok {
			continue
		}
		p := procOf(pid, st)
		if p.ppid == self && !p.zombie {
			p.token = tokens.token(procKey{pid, st.start}, seen)
		}
		out = append(out, p)
	}
	tokens = seen
	return out
}

func readProc(pid int) (proc, bool) {
	st, ok := readStat(pid)
	if !ok {
		return proc{}, false
	}
	return procOf(pid, st), true
}

func procOf(pid int, st procStat) proc {
	return proc{pid: pid, ppid: st.ppid, pgid: st.pgid, zombie: st.state == "Z" || st.state == "X"}
}

// treeMembers lists the live processes of a run in procs: the leader, the
// members of its process group, the children of self (the subreaper) that
// carry token, and all their descendants.
func treeMembers(procs []proc, self, leader int, token string) []int {
	children := make(map[int][]int, len(procs))
	for _, p := range procs {
		children[p.ppid] = append(children[p.ppid], p.pid)
	}
	var roots []int
	for _, p := range procs {
		switch {
		case leader > 0 && p.pgid == leader: // the leader too, while it lives
			roots = append(roots, p.pid)
		case p.ppid == self && token != "" && !p.zombie && p.token == token:
			roots = append(roots, p.pid)
		}
	}
	zombie := make(map[int]bool)
	for _, p := range procs {
		if p.zombie {
			zombie[p.pid] = true
		}
	}
	seen := make(map[int]bool)
	var out []int
	for len(roots) > 0 {
		pid := roots[len(roots)-1]
		roots = roots[:len(roots)-1]
		if seen[pid] || pid == self {
			continue
		}
		seen[pid] = true
		if !zombie[pid] {
			out = append(out, pid)
		}
		roots = append(roots, children[pid]...)
	}
	return out
}

// hasToken reports whether pid's environment holds the run's token.
func hasToken(pid int, token string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	want := []byte(idEnv + "=" + token)
	for kv := range bytes.SplitSeq(b, []byte{0}) {
		if bytes.Equal(kv, want) {
			return true
		}
	}
	return false
}

// envToken is the ROUSE_EXEC_ID in pid's environment, "" when none.
func envToken(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return ""
	}
	tok := ""
	for kv := range bytes.SplitSeq(b, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte(idEnv+"=")); ok {
			tok = string(v)
		}
	}
	return tok
}
