package scheduler

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// groupMembers lists the live (not zombie) processes in process group pgid.
func groupMembers(t *testing.T, pgid int) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces.
		rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
		f := strings.Fields(rest)
		if len(f) < 3 || f[0] == "Z" {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g == pgid {
			out = append(out, pid)
		}
	}
	return out
}

func TestCommandKilledAtTimeoutLeavesNoChildBehind(t *testing.T) {
	s, st := startReal(t, []Job{{Name: "hang", Schedule: "@yearly", Timeout: 500 * time.Millisecond,
		Command: []string{"sh", "-c", "echo $$; sleep 300 & sleep 300"}}})
	r, err := s.RunNow(context.Background(), "hang")
	if err != nil {
		t.Fatal(err)
	}
	got := waitRun(t, st, "hang", r.ID)
	if got.Result != ResultTimeout {
		t.Fatalf("run = %+v, want timeout", got)
	}
	if got.ExitCode == nil || *got.ExitCode != 128+15 {
		t.Fatalf("exit code %v, want 143 (SIGTERM)", got.ExitCode)
	}
	pgid, err := strconv.Atoi(strings.TrimSpace(got.Output))
	if err != nil {
		t.Fatalf("output %q: %v", got.Output, err)
	}
	// Killing is done when the run is recorded; allow the kernel a moment
	// to finish tearing the processes down (a guard, not a speed check).
	deadline := time.Now().Add(30 * time.Second)
	for {
		left := groupMembers(t, pgid)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes left in group %d: %v", pgid, left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCommandIgnoringSIGTERMIsKilled(t *testing.T) {
	j := withDefaults(Job{Name: "stubborn", Timeout: 300 * time.Millisecond,
		Command: []string{"sh", "-c", "trap '' TERM; echo $$; sleep 300 & sleep 300; wait"}})
	o := execute(context.Background(), j)
	if o.Result != ResultTimeout {
		t.Fatalf("outcome = %+v, want timeout", o)
	}
	pgid, err := strconv.Atoi(strings.TrimSpace(o.Output))
	if err != nil {
		t.Fatalf("output %q: %v", o.Output, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(groupMembers(t, pgid)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("processes left in group %d: %v", pgid, groupMembers(t, pgid))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
