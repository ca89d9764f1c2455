package power

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/rouse-dev/rouse/internal/backoff"
)

// logind's D-Bus names.
const (
	logindName  = "org.freedesktop.login1"
	logindPath  = dbus.ObjectPath("/org/freedesktop/login1")
	logindIface = "org.freedesktop.login1.Manager"
	inhibitWhy  = "Checkpoint the store and pause components"
)

// Reconnect and lock-retry backoff: capped exponential with full jitter
// (internal/backoff).
const (
	backoffMin = 100 * time.Millisecond
	backoffMax = 30 * time.Second
	// healthySession is how long a session must have lasted for the next
	// reconnect to start again from backoffMin.
	healthySession = 5 * time.Second
	// callTimeout bounds one Inhibit call (D-Bus's own default is 25 s).
	callTimeout = 25 * time.Second
)

// logindSource follows logind on the system bus. Its fields are owned by the
// goroutine running run.
type logindSource struct {
	m    *Monitor
	log  *slog.Logger
	lock *os.File // the delay inhibitor; nil when not held
}

func newLogindSource(m *Monitor) *logindSource {
	return &logindSource{m: m, log: m.log.With("source", "logind")}
}

// run dials the bus and follows logind until ctx is done, redialling with
// capped backoff whenever the connection dies.
func (s *logindSource) run(ctx context.Context) {
	redial := backoff.Retry{Policy: backoff.Policy{Initial: backoffMin, Max: backoffMax}}
	told := false // the missing bus was logged at info once; then at debug
	for {
		start := time.Now()
		conn, err := s.dial(ctx)
		connected := err == nil
		if connected {
			err = s.session(ctx, conn)
		}
		s.release()
		s.m.setLogind(false)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) >= healthySession {
			redial.Reset()
		}
		s.m.setError(err)
		delay := redial.Next()
		switch {
		case connected:
			s.log.Warn("lost the system bus; reconnecting (meanwhile sleep and wake are detected by the clock fallback)", "err", err, "in", delay)
			told = true
		case !told:
			// A machine without a system bus (a container, a minimal
			// install) is normal: say it once, with what it means.
			s.log.Info("no system bus: sleep and wake are detected by the clock fallback (rouse keeps looking for the bus)", "err", err)
			told = true
		default:
			s.log.Debug("system bus still unavailable; retrying", "err", err, "in", delay)
		}
		if backoff.Sleep(ctx, delay) != nil {
			return
		}
	}
}

func (s *logindSource) dial(ctx context.Context) (*dbus.Conn, error) {
	if addr := s.m.o.BusAddress; addr != "" {
		conn, err := dbus.Connect(addr, dbus.WithContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("connect to the system bus at %s: %w", addr, err)
		}
		return conn, nil
	}
	conn, err := dbus.ConnectSystemBus(dbus.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("connect to the system bus: %w", err)
	}
	return conn, nil
}

// session follows logind on one connection until it dies or ctx is done. It
// closes conn before returning.
func (s *logindSource) session(ctx context.Context, conn *dbus.Conn) error {
	// Signals are drained at once into an unbounded queue: a full channel
	// makes godbus deliver from new goroutines, out of order.
	sigs := make(chan *dbus.Signal, 64)
	conn.Signal(sigs)
	q := newSignalQueue()
	var wg sync.WaitGroup
	wg.Go(func() {
		for sig := range sigs {
			q.push(sig)
		}
		q.close()
	})
	defer wg.Wait()    // the drain ends when godbus closes sigs...
	defer conn.Close() // ...which it does on Close.

	if err := conn.AddMatchSignal(
		dbus.WithMatchObjectPath(logindPath),
		dbus.WithMatchInterface(logindIface),
		dbus.WithMatchMember("PrepareForSleep")); err != nil {
		return fmt.Errorf("subscribe to PrepareForSleep: %w", err)
	}
	if err := conn.AddMatchSignal(
		dbus.WithMatchSender("org.freedesktop.DBus"),
		dbus.WithMatchInterface("org.freedesktop.DBus"),
		dbus.WithMatchMember("NameOwnerChanged"),
		dbus.WithMatchArg(0, logindName)); err != nil {
		return fmt.Errorf("subscribe to NameOwnerChanged: %w", err)
	}

	var present bool
	if err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, logindName).Store(&present); err != nil {
		return fmt.Errorf("look for logind: %w", err)
	}
	s.m.setLogind(present)
	s.log.Info("connected to the system bus", "logind", present)

	// The delay lock is taken by a goroutine of its own (a call can take
	// the whole call timeout when logind or polkit is slow), so a wake is
	// reported at once and signals keep flowing meanwhile. One call at a
	// time; its result comes back on taken.
	type lockResult struct {
		f   *os.File
		err error
	}
	taken := make(chan lockResult, 1)
	taking := false
	sleeping := false // between PrepareForSleep(true) and (false)
	var callers sync.WaitGroup
	defer func() {
		// Deferred calls run last-first, so conn's own deferred Close has
		// not run yet: close it here, which ends a lock call still in
		// flight, before waiting for its goroutine.
		conn.Close()
		callers.Wait()
		select {
		case r := <-taken:
			if r.f != nil {
				r.f.Close()
			}
		default:
		}
	}()

	retry := time.NewTimer(0)
	defer retry.Stop()
	retryLock := backoff.Retry{Policy: backoff.Policy{Initial: backoffMin, Max: backoffMax}}
	ensureLock := func() {
		if !present || s.lock != nil || taking || sleeping {
			return
		}
		taking = true
		callers.Go(func() {
			f, err := s.takeLock(ctx, conn)
			taken <- lockResult{f, err}
		})
	}
	if !present {
		retry.Stop()
	}

	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-conn.Context().Done():
			return errors.New("system bus connection closed")
		case <-retry.C:
			ensureLock()
		case r := <-taken:
			taking = false
			switch {
			case r.err != nil:
				s.m.setLockError(r.err)
				d := retryLock.Next()
				s.log.Warn("could not take the sleep delay lock; will retry", "err", r.err, "in", d)
				retry.Reset(d)
			case sleeping || !present:
				// Granted just before a sleep began (or logind went away):
				// holding it now would only delay that sleep.
				r.f.Close()
				ensureLock()
			default:
				s.lock = r.f
				s.m.setLockError(nil)
				s.m.setLock(true)
				retryLock.Reset()
				s.log.Debug("sleep delay lock taken")
			}
		case <-q.ready:
			for {
				sig, ok, closed := q.pop()
				if closed {
					return errors.New("system bus connection closed")
				}
				if !ok {
					break
				}
				switch sig.Name {
				case logindIface + ".PrepareForSleep":
					start, ok := signalBool(sig)
					if !ok {
						s.log.Warn("malformed PrepareForSleep ignored", "body", sig.Body)
						continue
					}
					if start {
						sleeping = true
						s.m.sleep(ctx, "logind", s.m.o.Budget)
						s.release()
						continue
					}
					// Report the wake first: the restore must not wait for
					// logind or polkit. The new lock is taken beside it.
					sleeping = false
					present = true
					s.m.setLogind(true)
					s.m.wake("logind")
					retryLock.Reset()
					ensureLock()
				case "org.freedesktop.DBus.NameOwnerChanged":
					if len(sig.Body) != 3 || sig.Body[0] != logindName {
						continue
					}
					owner, _ := sig.Body[2].(string)
					// The old lock belonged to the old logind: let it go.
					s.release()
					present = owner != ""
					sleeping = false
					s.m.setLogind(present)
					s.log.Info("logind changed owner", "present", present)
					retryLock.Reset()
					ensureLock()
				}
			}
		}
	}
}

// takeLock asks logind for a delay inhibitor on sleep and returns its fd.
// It runs on its own goroutine: it touches no field of s.
func (s *logindSource) takeLock(ctx context.Context, conn *dbus.Conn) (*os.File, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var fd dbus.UnixFD
	err := conn.Object(logindName, logindPath).CallWithContext(ctx, logindIface+".Inhibit", 0,
		"sleep", "rouse", inhibitWhy, "delay").Store(&fd)
	if err != nil {
		return nil, fmt.Errorf("take the sleep delay lock: %w", err)
	}
	return os.NewFile(uintptr(fd), "logind-delay-lock"), nil
}

// release closes the delay inhibitor, if held: logind may now proceed.
func (s *logindSource) release() {
	if s.lock == nil {
		return
	}
	if err := s.lock.Close(); err != nil {
		s.log.Warn("closing the sleep delay lock failed", "err", err)
	}
	s.lock = nil
	s.m.setLock(false)
	s.log.Debug("sleep delay lock released")
}

func signalBool(sig *dbus.Signal) (bool, bool) {
	if len(sig.Body) != 1 {
		return false, false
	}
	b, ok := sig.Body[0].(bool)
	return b, ok
}

// signalQueue is an unbounded FIFO between godbus's channel and the session.
type signalQueue struct {
	mu     sync.Mutex
	items  []*dbus.Signal
	closed bool
	ready  chan struct{} // 1-slot: something to pop
}

func newSignalQueue() *signalQueue { return &signalQueue{ready: make(chan struct{}, 1)} }

func (q *signalQueue) push(sig *dbus.Signal) {
	q.mu.Lock()
	q.items = append(q.items, sig)
	q.mu.Unlock()
	q.notify()
}

func (q *signalQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.notify()
}

func (q *signalQueue) notify() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// pop returns the next signal; closed is true once the queue is drained and
// closed.
func (q *signalQueue) pop() (sig *dbus.Signal, ok, closed bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return nil, false, q.closed
	}
	sig = q.items[0]
	q.items[0] = nil
	q.items = q.items[1:]
	return sig, true, false
}
