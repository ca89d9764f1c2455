package exec

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/trackers"
)

// startInDir runs a real Tracker with state directory dir.
func startInDir(t *testing.T, o *Options, dir string) (*Tracker, func() error) {
	t.Helper()
	tr, err := New(*o, trackers.Deps{Name: "test", Logger: slog.New(slog.DiscardHandler), StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	stop := runUntilStopped(t, tr, newHost())
	return tr, stop
}

// recordExists reports whether dir holds a record: a file that is not
// blank (dropRecord blanks it).
func recordExists(t *testing.T, dir string) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, recordFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return len(bytes.TrimSpace(b)) > 0
}

func TestStaleGroupAfterAgentSIGKILL(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "child")
	agent, pid := startAgent(t, "supervise-group", dir)
	t.Cleanup(func() { syscall.Kill(-pid, syscall.SIGKILL) }) // whatever happens below
	eventually(t, "the shell to start its background sleep", func() bool {
		return slices.ContainsFunc(groupMembers(t, pid), func(p int) bool { return p != pid })
	})
	if !recordExists(t, dir) {
		t.Fatal("no process group record while the child runs")
	}
	if err := agent.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	agent.Wait()
	eventually(t, "the direct child to die (Pdeathsig)", func() bool { return !slices.Contains(groupMembers(t, pid), pid) })

	t.Run("TheGrandchildOutlivesTheKilledAgent", func(t *testing.T) {
		if len(groupMembers(t, pid)) == 0 {
			t.Fatal("nothing of the group survived the agent; the test proves nothing")
		}
		if !recordExists(t, dir) {
			t.Fatal("the killed agent's record is gone")
		}
	})

	t.Run("TheNextRunKillsTheOldGroupBeforeItsChildStarts", func(t *testing.T) {
		tr, stop := startInDir(t, opts("sleep", "300"), dir)
		eventually(t, "the new child to start", func() bool { return tr.Pid() != 0 })
		if left := groupMembers(t, pid); len(left) > 0 {
			t.Fatalf("processes %v of the old group still run once the new child started", left)
		}
		if !recordExists(t, dir) {
			t.Error("the new child's group is not recorded")
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if recordExists(t, dir) {
			t.Error("the record is still there after the group was stopped and reaped")
		}
	})
}

// spawn starts argv as the leader of its own process group, reaped in the
// background; exited is closed when it exits.
func spawn(t *testing.T, argv ...string) (pid int, exited <-chan struct{}) {
	t.Helper()
	cmd := osexec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	pid = cmd.Process.Pid
	t.Cleanup(func() {
		syscall.Kill(-pid, syscall.SIGKILL)
		<-done
	})
	return pid, done
}

func forge(t *testing.T, dir string, rec groupRecord) {
	t.Helper()
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, recordFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func startOf(t *testing.T, pid int) uint64 {
	t.Helper()
	st, ok := readStat(pid)
	if !ok {
		t.Fatalf("no process %d", pid)
	}
	return st.start
}

func alive(exited <-chan struct{}) bool {
	select {
	case <-exited:
		return false
	case <-time.After(100 * time.Millisecond):
		return true
	}
}

func TestSweepStale(t *testing.T) {
	discard := slog.New(slog.DiscardHandler)
	// otherAgent stands for an agent process that is gone.
	const otherAgent = 0

	t.Run("AMatchingRecordHasItsWholeGroupKilled", func(t *testing.T) {
		dir := t.TempDir()
		pid, exited := spawn(t, "sh", "-c", "sleep 300 & sleep 300")
		eventually(t, "the background sleep", func() bool { return len(groupMembers(t, pid)) >= 2 })
		forge(t, dir, groupRecord{Pid: pid, Pgid: pid, Start: startOf(t, pid), BootID: bootID(), Agent: otherAgent})
		sweepStale(dir, discard)
		if left := groupMembers(t, pid); len(left) > 0 {
			t.Fatalf("processes %v of the recorded group still run", left)
		}
		<-exited
		if recordExists(t, dir) {
			t.Error("the record was not removed")
		}
	})

	t.Run("ARecordWhosePidNowBelongsToAnUnrelatedProcessIsDroppedNotKilled", func(t *testing.T) {
		dir := t.TempDir()
		pid, exited := spawn(t, "sleep", "300")
		forge(t, dir, groupRecord{Pid: pid, Pgid: pid, Start: startOf(t, pid) + 1, BootID: bootID(), Agent: otherAgent})
		sweepStale(dir, discard)
		if !alive(exited) {
			t.Fatal("an unrelated process that reused the recorded pid was killed")
		}
		if recordExists(t, dir) {
			t.Error("the stale record was not dropped")
		}
	})

	t.Run("ARecordFromBeforeARebootIsDroppedNotKilled", func(t *testing.T) {
		dir := t.TempDir()
		pid, exited := spawn(t, "sleep", "300")
		forge(t, dir, groupRecord{Pid: pid, Pgid: pid, Start: startOf(t, pid), BootID: "an-earlier-boot", Agent: otherAgent})
		sweepStale(dir, discard)
		if !alive(exited) {
			t.Fatal("a process was killed on the strength of a record from another boot")
		}
		if recordExists(t, dir) {
			t.Error("the stale record was not dropped")
		}
	})

	t.Run("ALeaderlessGroupIsKilledWhenItsMembersAreNotOlderThanTheLeader", func(t *testing.T) {
		dir := t.TempDir()
		pid, exited := spawn(t, "sh", "-c", "sleep 300 & sleep 301")
		eventually(t, "the background sleep", func() bool { return len(groupMembers(t, pid)) >= 2 })
		start := startOf(t, pid)
		syscall.Kill(pid, syscall.SIGKILL)
		<-exited // reaped: no process with the group's number is left
		forge(t, dir, groupRecord{Pid: pid, Pgid: pid, Start: start, BootID: bootID(), Agent: otherAgent})
		sweepStale(dir, discard)
		if left := groupMembers(t, pid); len(left) > 0 {
			t.Fatalf("processes %v of the recorded group still run", left)
		}
	})

	t.Run("ALeaderlessGroupWithAProcessOlderThanTheRecordIsNotTouched", func(t *testing.T) {
		dir := t.TempDir()
		pid, exited := spawn(t, "sh", "-c", "sleep 300 & sleep 301")
		eventually(t, "the background sleep", func() bool { return len(groupMembers(t, pid)) >= 2 })
		start := startOf(t, pid)
		syscall.Kill(pid, syscall.SIGKILL)
		<-exited
		forge(t, dir, groupRecord{Pid: pid, Pgid: pid, Start: start + 1_000_000, BootID: bootID(), Agent: otherAgent})
		sweepStale(dir, discard)
		if len(groupMembers(t, pid)) == 0 {
			t.Fatal("a group holding a process older than the recorded leader was killed")
		}
		if recordExists(t, dir) {
			t.Error("the stale record was not dropped")
		}
	})

	t.Run("APlantedRecordIsDroppedNotActedOn", func(t *testing.T) {
		for _, c := range []struct {
			name  string
			plant func(t *testing.T, dir string)
		}{
			{"OwnedByAnotherUser", func(t *testing.T, dir string) {
				if os.Geteuid() != 0 {
					t.Skip("making a file of another user needs root")
				}
				if err := os.Chown(filepath.Join(dir, recordFile), 65534, 65534); err != nil {
					t.Fatal(err)
				}
			}},
			{"WritableByOthers", func(t *testing.T, dir string) {
				if err := os.Chmod(filepath.Join(dir, recordFile), 0o666); err != nil {
					t.Fatal(err)
				}
			}},
			{"InADirectoryWritableByOthers", func(t *testing.T, dir string) {
				if err := os.Chmod(dir, 0o777); err != nil {
					t.Fatal(err)
				}
			}},
			{"ASymlink", func(t *testing.T, dir string) {
				real := filepath.Join(t.TempDir(), "real.json")
				if err := os.Rename(filepath.Join(dir, recordFile), real); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(real, filepath.Join(dir, recordFile)); err != nil {
					t.Fatal(err)
				}
			}},
		} {
			t.Run(c.name, func(t *testing.T) {
				dir := t.TempDir()
				pid, exited := spawn(t, "sleep", "300")
				// A record that would be acted on, had the agent's user
				// written it alone.
				forge(t, dir, groupRecord{Pid: pid, Pgid: pid, Start: startOf(t, pid), BootID: bootID(), Agent: otherAgent})
				c.plant(t, dir)
				sweepStale(dir, discard)
				if !alive(exited) {
					t.Fatal("a planted record made the agent kill a process group")
				}
				if _, err := os.Lstat(filepath.Join(dir, recordFile)); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("the planted record was not dropped: %v", err)
				}
			})
		}
	})

	t.Run("RecordsAreCreated0600In0700", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "run", "x")
		pid, _ := spawn(t, "sleep", "300")
		rec, err := recordGroup(dir, pid, "")
		if err != nil || rec == nil {
			t.Fatalf("recordGroup: %v, %v", rec, err)
		}
		defer dropRecord(dir, rec)
		for p, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, recordFile): 0o600} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != want {
				t.Errorf("%s: mode %04o, want %04o", p, fi.Mode().Perm(), want)
			}
		}
	})

	t.Run("RecordsAreRewrittenInPlaceAndBlankedWhenDropped", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "run", "x")
		path := filepath.Join(dir, recordFile)
		file := func() os.FileInfo {
			t.Helper()
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Size() != recordSize || fi.Mode().Perm() != 0o600 {
				t.Fatalf("record file: %d bytes, mode %04o", fi.Size(), fi.Mode().Perm())
			}
			return fi
		}
		pid1, _ := spawn(t, "sleep", "300")
		rec1, err := recordGroup(dir, pid1, "")
		if err != nil || rec1 == nil {
			t.Fatalf("recordGroup: %v, %v", rec1, err)
		}
		// Held open, so a replacement could not reuse its inode number.
		held, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		first, err := held.Stat()
		if err != nil {
			t.Fatal(err)
		}
		file()
		dropRecord(dir, rec1)
		if _, err := readRecord(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("a dropped record reads as %v, want no record", err)
		}
		sweepStale(dir, discard) // a blank record is nothing to sweep, nor to complain of
		pid2, _ := spawn(t, "sleep", "300")
		rec2, err := recordGroup(dir, pid2, "")
		if err != nil || rec2 == nil {
			t.Fatalf("recordGroup: %v, %v", rec2, err)
		}
		if !os.SameFile(file(), first) {
			t.Error("the second record is a new file, not the first one rewritten")
		}
		if cur, err := readRecord(dir); err != nil || cur != *rec2 {
			t.Fatalf("readRecord: %+v, %v; want %+v", cur, err, *rec2)
		}
		// A file the agent would not trust is replaced, not written into.
		if err := os.Chmod(path, 0o666); err != nil {
			t.Fatal(err)
		}
		rec3, err := recordGroup(dir, pid1, "")
		if err != nil || rec3 == nil {
			t.Fatalf("recordGroup: %v, %v", rec3, err)
		}
		if os.SameFile(file(), first) {
			t.Error("a record file writable by others was written in place")
		}
		if cur, err := readRecord(dir); err != nil || cur != *rec3 {
			t.Fatalf("readRecord: %+v, %v; want %+v", cur, err, *rec3)
		}
	})

	t.Run("ARecordOfARunInThisProcessIsLeftAlone", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "not-yet")
		pid, exited := spawn(t, "sleep", "300")
		rec, err := recordGroup(dir, pid, "")
		if err != nil || rec == nil {
			t.Fatalf("recordGroup: %v, %v", rec, err)
		}
		sweepStale(dir, discard)
		if !alive(exited) {
			t.Fatal("the group of a live Run in this process was killed")
		}
		if !recordExists(t, dir) {
			t.Fatal("the record of a live Run was dropped")
		}
		dropRecord(dir, rec)
		if recordExists(t, dir) {
			t.Error("dropRecord left the record")
		}
	})
}
