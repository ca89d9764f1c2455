package power

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
)

// logind's D-Bus names.
const (
	logindName  = "org.freedesktop.login1"
	logindPath  = dbus.ObjectPath("/org/freedesktop/login1")
	logindIface = "org.freedesktop.login1.Manager"
	inhibitWhy  = "Checkpoint the store and pause components"
)

// Reconnect and lock-retry backoff: exponential with jitter, capped.
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
	delay := backoffMin
	for {
		start := time.Now()
		conn, err := s.dial(ctx)
		if err == nil {
			err = s.session(ctx, conn)
		}
		s.release()
		s.m.setLogind(false)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) >= healthySession {
			delay = backoffMin
		}
		s.m.setError(err)
		s.log.Warn("system bus unavailable; reconnecting", "err", err, "in", delay)
		if !sleepCtx(ctx, jitter(delay)) {
			return
		}
		delay = min(delay*2, backoffMax)
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

	retry := time.NewTimer(0)
	defer retry.Stop()
	retryDelay := backoffMin
	armRetry := func(err error) {
		s.m.setError(err)
		s.log.Warn("could not take the sleep delay lock; will retry", "err", err, "in", retryDelay)
		retry.Reset(jitter(retryDelay))
		retryDelay = min(retryDelay*2, backoffMax)
	}
	ensureLock := func() {
		if !present || s.lock != nil {
			return
		}
		if err := s.takeLock(ctx, conn); err != nil {
			armRetry(err)
			return
		}
		retryDelay = backoffMin
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
						s.m.sleep(ctx, "logind", s.m.o.Budget)
						s.release()
						continue
					}
					// Take the new lock first, then report the wake: the
					// agent may be asked to sleep again at any time.
					present = true
					s.m.setLogind(true)
					ensureLock()
					s.m.wake("logind")
				case "org.freedesktop.DBus.NameOwnerChanged":
					if len(sig.Body) != 3 || sig.Body[0] != logindName {
						continue
					}
					owner, _ := sig.Body[2].(string)
					// The old lock belonged to the old logind: let it go.
					s.release()
					present = owner != ""
					s.m.setLogind(present)
					s.log.Info("logind changed owner", "present", present)
					retryDelay = backoffMin
					ensureLock()
				}
			}
		}
	}
}

// takeLock takes a delay inhibitor on sleep and keeps its fd.
func (s *logindSource) takeLock(ctx context.Context, conn *dbus.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var fd dbus.UnixFD
	err := conn.Object(logindName, logindPath).CallWithContext(ctx, logindIface+".Inhibit", 0,
		"sleep", "rouse", inhibitWhy, "delay").Store(&fd)
	if err != nil {
		return fmt.Errorf("take the sleep delay lock: %w", err)
	}
	s.lock = os.NewFile(uintptr(fd), "logind-delay-lock")
	s.m.setLock(true)
	s.m.setError(nil)
	s.log.Debug("sleep delay lock taken")
	return nil
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

// jitter spreads d over [d/2, d).
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

// sleepCtx waits d or until ctx is done; it reports whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
