// Package testbus runs a private dbus-daemon for tests.
//
// A test calls Start (or New) to get a bus that allows everything, listening
// on a unix socket in a fresh temporary directory. The daemon is killed when
// the test ends. Restart kills the daemon and starts a new one on the same
// address, which lets tests exercise clients that must survive a bus restart.
//
// The socket lives in a short directory under the system temporary directory
// rather than in t.TempDir(): unix socket paths are limited to about 100
// bytes, and sentence-named subtests make t.TempDir() paths long.
package testbus

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// startTimeout bounds how long the daemon may take to print its address. It is
// only a guard against a hung daemon, never a speed expectation.
const startTimeout = 30 * time.Second

// Bus is a private dbus-daemon owned by one test.
type Bus struct {
	t    testing.TB
	dir  string
	conf string
	addr string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Start runs a private bus for t and returns its address
// ("unix:path=..."), suitable for dbus.Connect or DBUS_SYSTEM_BUS_ADDRESS.
func Start(t testing.TB) string {
	t.Helper()
	return New(t).Addr()
}

// New runs a private bus for t. The daemon is stopped and its directory
// removed in t.Cleanup. It fails the test if dbus-daemon cannot be started.
func New(t testing.TB) *Bus {
	t.Helper()
	bin, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Fatalf("testbus: dbus-daemon not found (install the dbus-daemon package): %v", err)
	}
	dir, err := os.MkdirTemp("", "testbus")
	if err != nil {
		t.Fatalf("testbus: make socket directory: %v", err)
	}
	b := &Bus{
		t:    t,
		dir:  dir,
		conf: filepath.Join(dir, "bus.conf"),
		addr: "unix:path=" + filepath.Join(dir, "bus"),
	}
	t.Cleanup(func() {
		b.Stop()
		_ = os.RemoveAll(dir)
	})
	if err := os.WriteFile(b.conf, []byte(config(filepath.Join(dir, "bus"))), 0o600); err != nil {
		t.Fatalf("testbus: write config: %v", err)
	}
	if err := b.start(bin); err != nil {
		t.Fatalf("testbus: %v", err)
	}
	return b
}

// Addr is the bus address without a GUID, so it stays valid across Restart.
func (b *Bus) Addr() string { return b.addr }

// Restart kills the daemon (every client connection drops) and starts a new
// one on the same address. It fails the test if the new daemon does not come up.
func (b *Bus) Restart() {
	b.t.Helper()
	b.Stop()
	bin, err := exec.LookPath("dbus-daemon")
	if err != nil {
		b.t.Fatalf("testbus: dbus-daemon not found: %v", err)
	}
	if err := b.start(bin); err != nil {
		b.t.Fatalf("testbus: restart: %v", err)
	}
}

// Stop kills the daemon and waits for it to exit. Stopping a stopped bus does
// nothing. Clients see their connection closed.
func (b *Bus) Stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Kill()
	_ = b.cmd.Wait()
	b.cmd = nil
	// A killed daemon leaves its socket behind; the next one must bind it.
	_ = os.Remove(filepath.Join(b.dir, "bus"))
}

func (b *Bus) start(bin string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("address pipe: %w", err)
	}
	defer r.Close()
	stderr := new(bytes.Buffer)
	cmd := exec.Command(bin, "--config-file="+b.conf, "--nofork", "--nopidfile", "--print-address=3")
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stderr = stderr
	// Own process group, so a test binary killed by the harness is the only
	// thing that can leave it behind, and no terminal signal reaches it.
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("start dbus-daemon: %w", err)
	}
	w.Close()

	type result struct {
		line string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		got <- result{line, err}
	}()
	var res result
	select {
	case res = <-got:
	case <-time.After(startTimeout):
		res.err = errors.New("timed out waiting for the bus address")
	}
	if res.err != nil || !strings.HasPrefix(res.line, "unix:") {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		r.Close() // unblocks the reader if it is still waiting
		<-got
		return fmt.Errorf("dbus-daemon did not start (read %q: %v): %s", res.line, res.err, stderr.String())
	}
	b.cmd = cmd
	return nil
}

// config allows every connection to own any name and send anything, like a
// permissive session bus, with unix fd passing over a unix socket.
func config(socket string) string {
	return `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=` + socket + `</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
    <allow eavesdrop="true"/>
  </policy>
  <limit name="max_incoming_unix_fds">1024</limit>
</busconfig>
`
}
