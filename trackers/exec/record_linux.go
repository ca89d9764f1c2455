package exec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rouse-dev/rouse/internal/perm"
)

// recordFile is the name of the group record in a component's state
// directory.
const recordFile = "exec-group.json"

// groupRecord identifies a running child's process group across agent
// processes. The child leads its group (pid == pgid); Start is the leader's
// start time in clock ticks since boot (/proc/<pid>/stat field 22), which
// together with BootID tells the leader from a later process that reused
// its number. Agent and AgentStart name the agent process that wrote it, so
// a record of a Run still going in this process is left alone.
type groupRecord struct {
	Pid        int    `json:"pid"`
	Pgid       int    `json:"pgid"`
	Start      uint64 `json:"start"`
	BootID     string `json:"boot_id"`
	Agent      int    `json:"agent"`
	AgentStart uint64 `json:"agent_start"`
	// Token is the run's ROUSE_EXEC_ID when the agent was a subreaper: what
	// left the group (setsid, a double fork) still carries it.
	Token string `json:"token,omitempty"`
}

// recordLocks order the record file operations on one state directory (an
// old and a new Run of one component may overlap on a reload). Components
// with other directories do not wait: fifty restarted on a wake queued
// behind one process-wide lock for up to 190 ms. Striped by the
// directory's hash, so the set stays bounded whatever the config.
var (
	recordLocks [64]sync.Mutex
	recordSeed  = maphash.MakeSeed()
)

// recordLock is the lock of dir's record.
func recordLock(dir string) *sync.Mutex {
	return &recordLocks[maphash.String(recordSeed, dir)%uint64(len(recordLocks))]
}

// bootID is this boot's id, "" when the kernel does not say.
var bootID = sync.OnceValue(func() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
})

// procStat is what the package needs from /proc/<pid>/stat: the
// containment's process tree, recordGroup and sweepStale.
type procStat struct {
	state string
	ppid  int
	pgid  int
	start uint64
}

// readStat parses /proc/<pid>/stat; ok is false when pid does not exist.
func readStat(pid int) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	// pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt
	// majflt cmajflt utime stime cutime cstime priority nice num_threads
	// itrealvalue starttime ...; comm may hold spaces and parens. After the
	// comm, starttime (field 22) is the 20th field.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 > len(b) {
		return procStat{}, false
	}
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 20 {
		return procStat{}, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgid, err2 := strconv.Atoi(f[2])
	start, err3 := strconv.ParseUint(f[19], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return procStat{}, false
	}
	return procStat{state: f[0], ppid: ppid, pgid: pgid, start: start}, true
}

// recordSize is the size of a record file: the JSON padded with spaces, so
// that a record is rewritten in place, one write within one page, instead
// of as a new file each run (an inode to allocate, a rename, an unlink: a
// tenth of the agent's CPU in a restart of fifty). All spaces is no record.
const recordSize = 512

// agentStart is the agent's start time (/proc/self/stat field 22).
var agentStart = sync.OnceValue(func() uint64 {
	st, _ := readStat(os.Getpid())
	return st.start
})

// recordGroup persists the group led by pid in dir. dir "" persists
// nothing. It returns the record to hand to dropRecord, nil when none was
// written.
//
// The record is written over the file's first recordSize bytes in one
// write, which a kill -9 of the agent cannot split: the file holds the old
// content or the new, as a rename would give. A file the agent could not
// trust (see readRecord: another owner, a loose mode, a symbolic link, not
// a regular file) is replaced as before, through a temporary file and a
// rename. Nothing is synced, before or after: a record is only of use
// within the boot that wrote it.
func recordGroup(dir string, pid int, token string) (*groupRecord, error) {
	if dir == "" {
		return nil, nil
	}
	st, ok := readStat(pid)
	if !ok || st.pgid != pid {
		return nil, nil // already gone: Stop sweeps what it left
	}
	rec := &groupRecord{Pid: pid, Pgid: pid, Start: st.start, BootID: bootID(), Agent: os.Getpid(), AgentStart: agentStart(), Token: token}
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	if len(b) >= recordSize {
		return nil, fmt.Errorf("group record of %d bytes, more than %d", len(b), recordSize-1)
	}
	mu := recordLock(dir)
	mu.Lock()
	defer mu.Unlock()
	if err := ensureDir(dir); err != nil {
		return nil, err
	}
	if err := writeRecord(dir, padRecord(b)); err != nil {
		return nil, err
	}
	return rec, nil
}

// padRecord is b and a newline, padded with spaces to recordSize.
func padRecord(b []byte) []byte {
	out := bytes.Repeat([]byte{' '}, recordSize)
	copy(out, b)
	out[recordSize-1] = '\n'
	return out
}

// ensureDir makes dir 0700 (its parents too) unless it is already a
// directory of that mode; a mode made looser by hand is tightened, since
// readRecord would not trust it.
func ensureDir(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		fi, err = os.Stat(dir)
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if fi.Mode().Perm() != 0o700 {
		return os.Chmod(dir, 0o700)
	}
	return nil
}

// writeRecord puts b (recordSize bytes) into dir's record file: in place
// when the file is one readRecord trusts, otherwise (and when there is
// none) through a new file renamed over it.
func writeRecord(dir string, b []byte) error {
	path := filepath.Join(dir, recordFile)
	f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err == nil {
		fi, serr := f.Stat()
		if serr == nil && ownedBySelf(path, fi, true) == nil && fi.Mode().Perm() == 0o600 && fi.Size() == recordSize {
			_, err = f.WriteAt(b, 0)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			return err
		}
		f.Close()
	}
	tmp, err := os.CreateTemp(dir, recordFile+".*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// dropRecord blanks the record in dir if it is still rec (a newer Run may
// have replaced it): the file stays, all spaces, for the next run to write
// in place.
func dropRecord(dir string, rec *groupRecord) {
	if rec == nil {
		return
	}
	mu := recordLock(dir)
	mu.Lock()
	defer mu.Unlock()
	if cur, err := readRecord(dir); err == nil && cur == *rec {
		if err := writeRecord(dir, bytes.Repeat([]byte{' '}, recordSize)); err != nil {
			os.Remove(filepath.Join(dir, recordFile))
		}
	}
}

// errUntrusted marks a record someone other than the agent's user could
// have written.
var errUntrusted = errors.New("not trusted")

// readRecord reads the record in dir. A record is trusted only when the
// agent's user owns both it and dir, and neither is writable by group or
// others (otherwise errUntrusted): a record planted by another user must
// never make the agent kill a group of their choosing.
func readRecord(dir string) (groupRecord, error) {
	var rec groupRecord
	f, err := os.OpenFile(filepath.Join(dir, recordFile), os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return rec, fmt.Errorf("%w: %s is a symbolic link", errUntrusted, recordFile)
		}
		return rec, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return rec, err
	}
	if err := ownedBySelf(f.Name(), fi, true); err != nil {
		return rec, err
	}
	di, err := os.Stat(dir)
	if err != nil {
		return rec, err
	}
	if err := ownedBySelf(dir, di, false); err != nil {
		return rec, err
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return rec, err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return rec, fs.ErrNotExist // blanked by dropRecord
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, err
	}
	return rec, nil
}

// ownedBySelf returns an errUntrusted error unless fi (read from path) is
// owned by the agent's user or root (internal/perm's rule) and not writable
// by group or others, and, for a file, is a regular file.
func ownedBySelf(path string, fi os.FileInfo, file bool) error {
	if file && !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file", errUntrusted, path)
	}
	if err := perm.Owned(path, fi); err != nil {
		return fmt.Errorf("%w: %w", errUntrusted, err)
	}
	if m := fi.Mode().Perm(); m&0o022 != 0 {
		return fmt.Errorf("%w: %s is writable by group or others (mode %04o)", errUntrusted, path, m)
	}
	return nil
}

// sweepStale kills what is left of the process group recorded in dir by an
// earlier agent process (one killed too hard to stop its child), then
// removes the record. It kills only a group it can tell is the recorded
// one: same boot, and either the leader still there (a zombie too) with the
// recorded start time, or the leader gone and every live member of the
// group started no earlier than it. Anything else (a reboot, the number
// now used by an unrelated process, no group left) only drops the record.
func sweepStale(dir string, log *slog.Logger) {
	if dir == "" {
		return
	}
	mu := recordLock(dir)
	mu.Lock()
	defer mu.Unlock()
	rec, err := readRecord(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return // none, or a blank one
	}
	path := filepath.Join(dir, recordFile)
	if errors.Is(err, errUntrusted) {
		log.Warn("dropping a process group record the agent's user did not write alone", "path", path, "err", err)
		os.Remove(path)
		return
	}
	if err != nil {
		log.Warn("dropping an unreadable process group record", "path", path, "err", err)
		os.Remove(path)
		return
	}
	if self, _ := readStat(os.Getpid()); rec.Agent == os.Getpid() && rec.AgentStart == self.start && rec.BootID == bootID() {
		return // a Run in this process still owns it
	}
	defer os.Remove(path)
	sweepTagged(rec, log)
	if why := staleGroupIsOurs(rec); why != "" {
		log.Info("dropping a process group record", "pgid", rec.Pgid, "reason", why)
		return
	}
	log.Warn("killing what is left of the process group of an earlier agent", "pgid", rec.Pgid, "agent_pid", rec.Agent)
	if err := signalGroup(rec.Pgid, syscall.SIGKILL); err != nil {
		log.Warn("cannot kill the earlier process group", "pgid", rec.Pgid, "err", err)
	}
	if !waitGroupGone(rec.Pgid, groupGoneGrace) {
		log.Warn("processes of the earlier group still running after SIGKILL", "pgid", rec.Pgid)
	}
}

// sweepTagged kills the processes that left the recorded group but carry
// its run's token: same boot, the agent's own user, started no earlier than
// the recorded leader, and ROUSE_EXEC_ID=token in their environment.
func sweepTagged(rec groupRecord, log *slog.Logger) {
	if len(rec.Token) < 16 || rec.BootID == "" || rec.BootID != bootID() {
		return
	}
	deadline := time.Now().Add(groupGoneGrace)
	for {
		pids := taggedProcs(rec.Token, rec.Start)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			log.Warn("processes an earlier agent's run left still running after SIGKILL", "pids", pids)
			return
		}
		log.Warn("killing what an earlier agent's run left outside its group", "pids", pids, "agent_pid", rec.Agent)
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// taggedProcs lists the live processes of the agent's user, started no
// earlier than notBefore, whose environment holds the run's token.
func taggedProcs(token string, notBefore uint64) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	uid := uint32(os.Geteuid())
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		st, ok := readStat(pid)
		if !ok || st.start < notBefore || st.state == "Z" || st.state == "X" {
			continue
		}
		fi, err := os.Stat("/proc/" + e.Name())
		if err != nil {
			continue
		}
		if owner, ok := fi.Sys().(*syscall.Stat_t); !ok || owner.Uid != uid {
			continue
		}
		if hasToken(pid, token) {
			out = append(out, pid)
		}
	}
	return out
}

// staleGroupIsOurs returns "" when rec's group is still there and is the
// recorded one, otherwise why it is not to be touched.
func staleGroupIsOurs(rec groupRecord) string {
	if rec.Pgid <= 0 || rec.Pid != rec.Pgid {
		return "malformed record"
	}
	if rec.BootID == "" || rec.BootID != bootID() {
		return "written before a reboot"
	}
	if st, ok := readStat(rec.Pid); ok {
		// The number cannot be reused while the group lives: a process with
		// it but another start time means the group is gone.
		if st.start != rec.Start || st.pgid != rec.Pgid {
			return "the process number now belongs to an unrelated process"
		}
		if groupGone(rec.Pgid) {
			return "no live process left in the group"
		}
		return ""
	}
	members := liveMembers(rec.Pgid)
	if len(members) == 0 {
		return "no live process left in the group"
	}
	for _, st := range members {
		if st.start < rec.Start {
			return "the group holds a process older than its recorded leader"
		}
	}
	return ""
}

// liveMembers lists the live (not zombie) processes of group pgid.
func liveMembers(pgid int) []procStat {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []procStat
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, ok := readStat(pid)
		if !ok || st.pgid != pgid || st.state == "Z" || st.state == "X" {
			continue
		}
		out = append(out, st)
	}
	return out
}
