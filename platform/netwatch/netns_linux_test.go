//go:build linux

package netwatch

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// nsGuard bounds every wait in the namespace test. It only guards against
// a hang; nothing asserts how fast the watcher is.
const nsGuard = 30 * time.Second

var nsSeq atomic.Int64

// netns is a network namespace the test created, driven with ip(8).
type netns struct {
	t    *testing.T
	ip   string
	name string
}

func newNetns(t *testing.T) *netns {
	t.Helper()
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		for _, p := range []string{"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip"} {
			if _, serr := os.Stat(p); serr == nil {
				ipPath, err = p, nil
				break
			}
		}
	}
	if err != nil {
		t.Fatalf("this test needs ip(8) from iproute2 and root: %v", err)
	}
	ns := &netns{t: t, ip: ipPath, name: fmt.Sprintf("rousenw%d-%d", os.Getpid(), nsSeq.Add(1))}
	_ = exec.Command(ipPath, "netns", "del", ns.name).Run() // a leftover from a killed run
	ns.run("netns", "add", ns.name)
	t.Cleanup(func() {
		if out, err := exec.Command(ipPath, "netns", "del", ns.name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns.name, err, out)
		}
	})
	return ns
}

// run runs ip with args (inside the namespace unless args start with "netns").
func (ns *netns) run(args ...string) {
	ns.t.Helper()
	if args[0] != "netns" {
		args = append([]string{"-n", ns.name}, args...)
	}
	if out, err := exec.Command(ns.ip, args...).CombinedOutput(); err != nil {
		ns.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// handle opens the namespace's file, as ip netns leaves it for us.
func (ns *netns) handle() *os.File {
	ns.t.Helper()
	for _, dir := range []string{"/run/netns", "/var/run/netns"} {
		f, err := os.Open(filepath.Join(dir, ns.name))
		if err == nil {
			ns.t.Cleanup(func() { f.Close() })
			return f
		}
	}
	ns.t.Fatalf("cannot open the namespace %s", ns.name)
	return nil
}

// runIn runs w.Run on a goroutine whose OS thread entered the namespace;
// the thread stays locked, so it ends with the goroutine instead of going
// back to the pool in the wrong namespace.
func runIn(ctx context.Context, f *os.File, w *Watcher) <-chan error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("setns: %w", err)
			return
		}
		done <- w.Run(ctx)
	}()
	return done
}

// await reads statuses until one has the wanted Online value.
func await(t *testing.T, ch <-chan Status, online bool, reason string) Status {
	t.Helper()
	guard := time.NewTimer(nsGuard)
	defer guard.Stop()
	for {
		select {
		case s := <-ch:
			if s.Online == online {
				if !strings.Contains(s.Reason, reason) {
					t.Errorf("status %+v: reason does not mention %q", s, reason)
				}
				return s
			}
		case <-guard.C:
			t.Fatalf("no status with online=%v within %v", online, nsGuard)
			return Status{}
		}
	}
}

func TestWatcherInANetworkNamespace(t *testing.T) {
	ns := newNetns(t)
	// A veth pair inside the namespace: veth0 is "our" interface, veth1
	// only gives it a carrier.
	ns.run("link", "add", "veth0", "type", "veth", "peer", "name", "veth1")
	ns.run("addr", "add", "10.99.0.2/24", "dev", "veth0")
	ns.run("link", "set", "veth1", "up")
	ns.run("link", "set", "veth0", "up")
	f := ns.handle()

	w := New(Options{Logger: testLogger(t), Debounce: 50 * time.Millisecond})
	ch, unsub := w.Subscribe()
	defer unsub()
	ctx, cancel := context.WithCancel(t.Context())
	done := runIn(ctx, f, w)
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v", err)
			}
		case <-time.After(nsGuard):
			t.Errorf("Run did not return after cancel")
		}
	}()

	ok := t.Run("WithAnAddressButNoDefaultRouteItIsOffline", func(t *testing.T) {
		s := await(t, ch, false, "no default route")
		if !s.Known() {
			t.Errorf("first status is not from an evaluation: %+v", s)
		}
	})
	ok = ok && t.Run("AddingADefaultRouteBringsItOnline", func(t *testing.T) {
		ns.run("route", "add", "default", "via", "10.99.0.1", "dev", "veth0")
		s := await(t, ch, true, "default route via veth0 (10.99.0.1), address 10.99.0.2 on veth0")
		if len(s.Addresses) != 1 || s.Addresses[0] != "10.99.0.2" {
			t.Errorf("Addresses = %v, want [10.99.0.2]", s.Addresses)
		}
		if !w.Status().Online {
			t.Errorf("Status() disagrees with the published status")
		}
	})
	ok = ok && t.Run("LosingTheCarrierTakesItOfflineThoughTheRouteStays", func(t *testing.T) {
		// The peer going down is a cable unplugged: veth0 stays
		// administratively up and keeps its route, but is not running.
		ns.run("link", "set", "veth1", "down")
		await(t, ch, false, "default route via veth0 but the link is down")
	})
	ok = ok && t.Run("TheCarrierComingBackBringsItOnline", func(t *testing.T) {
		ns.run("link", "set", "veth1", "up")
		await(t, ch, true, "default route via veth0 (10.99.0.1)")
	})
	ok = ok && t.Run("TakingTheLinkDownTakesItOffline", func(t *testing.T) {
		ns.run("link", "set", "veth0", "down")
		await(t, ch, false, "")
	})
	ok = ok && t.Run("LinkUpAndADefaultRouteBringItBack", func(t *testing.T) {
		ns.run("link", "set", "veth0", "up")
		ns.run("route", "add", "default", "via", "10.99.0.1", "dev", "veth0")
		await(t, ch, true, "default route via veth0")
		wctx, wcancel := context.WithTimeout(t.Context(), nsGuard)
		defer wcancel()
		if err := w.WaitOnline(wctx); err != nil {
			t.Errorf("WaitOnline while online = %v", err)
		}
	})
	ok = ok && t.Run("RemovingTheDefaultRouteTakesItOffline", func(t *testing.T) {
		ns.run("route", "del", "default")
		await(t, ch, false, "no default route")
	})
	ok = ok && t.Run("AnIPv6DefaultRouteAloneBringsItOnline", func(t *testing.T) {
		ns.run("addr", "del", "10.99.0.2/24", "dev", "veth0")
		ns.run("-6", "addr", "add", "2001:db8:99::2/64", "dev", "veth0", "nodad")
		ns.run("-6", "route", "add", "default", "via", "2001:db8:99::1", "dev", "veth0")
		s := await(t, ch, true, "default route via veth0 (2001:db8:99::1), address 2001:db8:99::2 on veth0")
		if len(s.Addresses) != 1 || s.Addresses[0] != "2001:db8:99::2" {
			t.Errorf("Addresses = %v, want [2001:db8:99::2]", s.Addresses)
		}
	})
	_ = ok && t.Run("RemovingTheOnlyUsableAddressTakesItOffline", func(t *testing.T) {
		ns.run("-6", "addr", "del", "2001:db8:99::2/64", "dev", "veth0")
		// The IPv6 default route via a link-local-reachable gateway may
		// survive; the link-local fe80:: address alone is not usable.
		await(t, ch, false, "")
	})
}

// inNetns runs fn on an OS thread inside the namespace of f and waits for
// it; the thread is discarded afterwards.
func inNetns(t *testing.T, f *os.File, fn func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- err
			return
		}
		fn()
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatalf("setns: %v", err)
	}
}

func TestTheNetlinkAndPortableProbesAgree(t *testing.T) {
	ns := newNetns(t)
	ns.run("link", "set", "lo", "up")
	ns.run("link", "add", "veth0", "type", "veth", "peer", "name", "veth1")
	ns.run("addr", "add", "10.98.0.2/24", "dev", "veth0")
	ns.run("link", "set", "veth1", "up")
	ns.run("link", "set", "veth0", "up")
	f := ns.handle()

	check := func(t *testing.T, wantOnline bool) {
		t.Helper()
		var (
			nl, gen     snapshot
			nlErr, gErr error
		)
		inNetns(t, f, func() {
			mon, err := newOSMon()
			if err != nil {
				nlErr = err
				return
			}
			defer mon.Close()
			nl, nlErr = mon.probe()
			gen, gErr = genericProbe()
		})
		if nlErr != nil || gErr != nil {
			t.Fatalf("netlink probe: %v; portable probe: %v", nlErr, gErr)
		}
		var lo bool
		for _, l := range nl.links {
			lo = lo || (l.loopback && l.name == "lo")
		}
		if !lo {
			t.Errorf("netlink saw no loopback link: %+v", nl.links)
		}
		for name, snap := range map[string]snapshot{"netlink": nl, "portable": gen} {
			online, reason := evaluate(snap)
			if online != wantOnline {
				t.Errorf("%s probe: online=%v (%s), want %v", name, online, reason, wantOnline)
			}
		}
	}
	t.Run("BothSeeOfflineWithoutADefaultRoute", func(t *testing.T) { check(t, false) })
	ns.run("route", "add", "default", "via", "10.98.0.1", "dev", "veth0")
	t.Run("BothSeeOnlineWithADefaultRoute", func(t *testing.T) { check(t, true) })
}

// BenchmarkNetlinkEvaluation measures one evaluation on the host: three
// netlink dumps (links, addresses, routes for both families) and the
// decision.
func BenchmarkNetlinkEvaluation(b *testing.B) {
	mon, err := newOSMon()
	if err != nil {
		b.Fatal(err)
	}
	defer mon.Close()
	for b.Loop() {
		snap, err := mon.probe()
		if err != nil {
			b.Fatal(err)
		}
		evaluate(snap)
	}
}

// BenchmarkPortableEvaluation is the same through the portable probe.
func BenchmarkPortableEvaluation(b *testing.B) {
	for b.Loop() {
		snap, err := genericProbe()
		if err != nil {
			b.Fatal(err)
		}
		evaluate(snap)
	}
}
