// Package fakelogind is a fake org.freedesktop.login1 for tests.
//
// It owns the well-known name on a given bus (so NameOwnerChanged fires when it
// starts and closes), exports the Manager at /org/freedesktop/login1 with an
// Inhibit method that hands out a REAL file descriptor — the write end of a
// pipe — and notices when the holder closes it (the read end reaches EOF), and
// emits PrepareForSleep on demand. Like logind, it refuses a new delay lock
// while a sleep is being prepared.
//
// Handing out an fd has one subtlety: the fake must close its own copy of the
// write end, or the read end never sees EOF, but only after the reply carrying
// it has been written to the socket. godbus sends replies itself, so the fake
// notes the reply's serial in an outgoing interceptor and closes its copy when
// godbus retires that serial, which it does right after a successful send.
package fakelogind

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/prop"
)

// D-Bus names of logind.
const (
	BusName   = "org.freedesktop.login1"
	Path      = dbus.ObjectPath("/org/freedesktop/login1")
	Interface = "org.freedesktop.login1.Manager"
)

// ErrOperationInProgress is the D-Bus error name logind uses when a delay lock
// is asked for while the operation it would delay is already running.
const ErrOperationInProgress = "org.freedesktop.login1.OperationInProgress"

// DefaultInhibitDelayMax is the InhibitDelayMaxUSec property a fake starts
// with: logind's own default, 5 s.
const DefaultInhibitDelayMax = 5 * time.Second

// Holder describes one inhibitor lock handed out by Inhibit.
type Holder struct {
	ID     int
	What   string
	Who    string
	Why    string
	Mode   string
	Sender string // unique bus name of the caller
	Taken  time.Time
}

type holder struct {
	Holder
	read     *os.File
	released bool
}

// Logind is a running fake. Its methods are safe for concurrent use.
type Logind struct {
	conn  *dbus.Conn
	log   *slog.Logger
	wg    sync.WaitGroup
	props *prop.Properties

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every change
	holders  []*holder
	nextID   int
	inhibits int
	sleeping bool
	closed   bool
	byFD     map[dbus.UnixFD]*os.File // write ends not yet in a reply
	bySerial map[uint32][]*os.File    // write ends in a reply not yet sent
	serial   uint32
	hook     func() *dbus.Error // InhibitHook
}

// Start runs a fake logind on the bus at addr for t; it is closed in t.Cleanup.
func Start(t testing.TB, addr string) *Logind {
	t.Helper()
	l, err := Open(addr)
	if err != nil {
		t.Fatalf("fakelogind: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// Open runs a fake logind on the bus at addr. The caller must Close it.
func Open(addr string) (*Logind, error) {
	l := &Logind{
		log:      slog.Default().With("component", "fakelogind"),
		changed:  make(chan struct{}),
		byFD:     map[dbus.UnixFD]*os.File{},
		bySerial: map[uint32][]*os.File{},
	}
	conn, err := dbus.Connect(addr,
		dbus.WithOutgoingInterceptor(l.outgoing),
		dbus.WithSerialGenerator((*serials)(l)))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	l.conn = conn
	if err := conn.Export((*manager)(l), Path, Interface); err != nil {
		conn.Close()
		return nil, fmt.Errorf("export manager: %w", err)
	}
	l.props, err = prop.Export(conn, Path, prop.Map{Interface: {
		"InhibitDelayMaxUSec": {Value: uint64(DefaultInhibitDelayMax / time.Microsecond), Emit: prop.EmitFalse},
	}})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("export properties: %w", err)
	}
	reply, err := conn.RequestName(BusName, dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		conn.Close()
		return nil, fmt.Errorf("own %s: reply %v: %w", BusName, reply, err)
	}
	return l, nil
}

// Close releases the name (watchers see NameOwnerChanged), drops the
// connection and forgets every lock. Closing twice does nothing.
func (l *Logind) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()

	_, _ = l.conn.ReleaseName(BusName)
	err := l.conn.Close()

	l.mu.Lock()
	for _, h := range l.holders {
		h.read.Close() // ends the watcher
	}
	for _, w := range l.byFD {
		w.Close()
	}
	for _, ws := range l.bySerial {
		for _, w := range ws {
			w.Close()
		}
	}
	l.byFD, l.bySerial = map[dbus.UnixFD]*os.File{}, map[uint32][]*os.File{}
	l.mu.Unlock()
	l.wg.Wait()

	l.mu.Lock()
	l.holders = nil
	l.notifyLocked()
	l.mu.Unlock()
	return err
}

// SetInhibitDelayMax sets the InhibitDelayMaxUSec property (logind.conf's
// InhibitDelayMaxSec) that clients read.
func (l *Logind) SetInhibitDelayMax(d time.Duration) {
	l.props.SetMust(Interface, "InhibitDelayMaxUSec", uint64(d/time.Microsecond))
}

// InhibitHook makes every Inhibit call run f first: f may block (a slow
// polkit) or return an error that the call then fails with (a refusal). Nil
// removes it.
func (l *Logind) InhibitHook(f func() *dbus.Error) {
	l.mu.Lock()
	l.hook = f
	l.mu.Unlock()
}

// PrepareForSleep emits the PrepareForSleep signal. While a sleep is being
// prepared (true emitted, false not yet), Inhibit refuses delay locks.
func (l *Logind) PrepareForSleep(start bool) error {
	l.mu.Lock()
	l.sleeping = start
	l.notifyLocked()
	l.mu.Unlock()
	if err := l.conn.Emit(Path, Interface+".PrepareForSleep", start); err != nil {
		return fmt.Errorf("emit PrepareForSleep(%v): %w", start, err)
	}
	return nil
}

// Suspend plays one suspend the way logind does: PrepareForSleep(true), wait
// until every delay lock for sleep is released or maxDelay passes, then
// PrepareForSleep(false). It reports whether the locks were released in time.
func (l *Logind) Suspend(ctx context.Context, maxDelay time.Duration) (released bool, err error) {
	if err := l.PrepareForSleep(true); err != nil {
		return false, err
	}
	wctx, cancel := context.WithTimeout(ctx, maxDelay)
	werr := l.WaitLockReleased(wctx)
	cancel()
	if err := ctx.Err(); err != nil {
		return false, err
	}
	return werr == nil, l.PrepareForSleep(false)
}

// LockHeld reports whether any delay lock on sleep is held.
func (l *Logind) LockHeld() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lockHeldLocked()
}

// Holders lists the locks currently held, oldest first.
func (l *Logind) Holders() []Holder {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Holder
	for _, h := range l.holders {
		if !h.released {
			out = append(out, h.Holder)
		}
	}
	return out
}

// Inhibits counts the locks handed out since Open.
func (l *Logind) Inhibits() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inhibits
}

// WaitLockReleased waits until no delay lock on sleep is held.
func (l *Logind) WaitLockReleased(ctx context.Context) error {
	return l.wait(ctx, func() bool { return !l.lockHeldLocked() })
}

// WaitLockHeld waits until some delay lock on sleep is held.
func (l *Logind) WaitLockHeld(ctx context.Context) error {
	return l.wait(ctx, l.lockHeldLocked)
}

// WaitInhibits waits until at least n locks have been handed out since Open.
func (l *Logind) WaitInhibits(ctx context.Context, n int) error {
	return l.wait(ctx, func() bool { return l.inhibits >= n })
}

func (l *Logind) wait(ctx context.Context, cond func() bool) error {
	for {
		l.mu.Lock()
		ok, ch := cond(), l.changed
		l.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (l *Logind) lockHeldLocked() bool {
	for _, h := range l.holders {
		if !h.released && h.Mode == "delay" && h.What == "sleep" {
			return true
		}
	}
	return false
}

func (l *Logind) notifyLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// inhibit hands out the write end of a new pipe and watches the read end.
func (l *Logind) inhibit(sender dbus.Sender, what, who, why, mode string) (dbus.UnixFD, *dbus.Error) {
	if mode != "delay" && mode != "block" {
		return -1, dbus.NewError("org.freedesktop.DBus.Error.InvalidArgs", []any{"invalid mode " + mode})
	}
	l.mu.Lock()
	hook := l.hook
	l.mu.Unlock()
	if hook != nil {
		if derr := hook(); derr != nil {
			return -1, derr
		}
	}
	r, w, err := os.Pipe()
	if err != nil {
		return -1, dbus.MakeFailedError(err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || (mode == "delay" && l.sleeping) {
		r.Close()
		w.Close()
		return -1, dbus.NewError(ErrOperationInProgress,
			[]any{"The operation inhibition has been requested for is already running"})
	}
	l.nextID++
	l.inhibits++
	h := &holder{Holder: Holder{ID: l.nextID, What: what, Who: who, Why: why, Mode: mode,
		Sender: string(sender), Taken: time.Now()}, read: r}
	l.holders = append(l.holders, h)
	fd := dbus.UnixFD(w.Fd())
	l.byFD[fd] = w
	l.notifyLocked()
	l.wg.Add(1)
	go l.watch(h)
	l.log.Debug("lock taken", "id", h.ID, "who", who, "mode", mode, "sender", sender)
	return fd, nil
}

// watch marks h released when every copy of the write end is closed.
func (l *Logind) watch(h *holder) {
	defer l.wg.Done()
	_, err := io.Copy(io.Discard, h.read)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil && errors.Is(err, os.ErrClosed) {
		return // the fake is closing
	}
	h.released = true
	h.read.Close()
	l.notifyLocked()
	l.log.Debug("lock released", "id", h.ID, "who", h.Who)
}

// outgoing notes which reply carries which write end.
func (l *Logind) outgoing(msg *dbus.Message) {
	if msg.Type != dbus.TypeMethodReply {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, v := range msg.Body {
		fd, ok := v.(dbus.UnixFD)
		if !ok {
			continue
		}
		if w, ok := l.byFD[fd]; ok {
			delete(l.byFD, fd)
			l.bySerial[msg.Serial()] = append(l.bySerial[msg.Serial()], w)
		}
	}
}

// serials is the connection's serial generator; retiring a reply's serial
// means godbus has written it, so the fake's copies of its fds can go.
type serials Logind

func (s *serials) GetSerial() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.serial++
	if s.serial == 0 {
		s.serial++
	}
	return s.serial
}

func (s *serials) RetireSerial(serial uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.bySerial[serial] {
		w.Close()
	}
	delete(s.bySerial, serial)
}

// manager is the exported org.freedesktop.login1.Manager.
type manager Logind

// Inhibit implements org.freedesktop.login1.Manager.Inhibit.
func (m *manager) Inhibit(sender dbus.Sender, what, who, why, mode string) (dbus.UnixFD, *dbus.Error) {
	return (*Logind)(m).inhibit(sender, what, who, why, mode)
}
