package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// maxInitBytes bounds what package initialisation of the rouse binary may
// allocate: every process (the agent, each client command, the tray) pays
// it before main runs.
const maxInitBytes = 1 << 20

// TestPackageInitAllocatesLittle builds the real binary and sums the bytes
// GODEBUG=inittrace=1 reports for every package's init.
func TestPackageInitAllocatesLittle(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "rouse")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "version")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("rouse version: %v\n%s", err, stderr.String())
	}
	total, pkgs := 0, 0
	var top string
	topBytes := 0
	sc := bufio.NewScanner(&stderr)
	for sc.Scan() {
		// init PKG @0.1 ms, 0.2 ms clock, 1234 bytes, 5 allocs
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[0] != "init" || f[len(f)-3] != "bytes," {
			continue
		}
		n, err := strconv.Atoi(f[len(f)-4])
		if err != nil {
			t.Fatalf("inittrace line %q: %v", sc.Text(), err)
		}
		total += n
		pkgs++
		if n > topBytes {
			top, topBytes = f[1], n
		}
	}
	if pkgs < 10 {
		t.Fatalf("only %d init lines in the trace; is GODEBUG=inittrace=1 honoured?\n%s", pkgs, stderr.String())
	}
	t.Logf("package init: %d bytes over %d packages (largest: %s, %d bytes)", total, pkgs, top, topBytes)
	if total > maxInitBytes {
		t.Errorf("package init allocates %d bytes, more than %d; largest: %s (%d bytes)", total, maxInitBytes, top, topBytes)
	}
}
