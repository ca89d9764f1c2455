package tray

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/godbus/dbus/v5"
)

// liveTimeout bounds whenItemLive's probing.
const liveTimeout = 30 * time.Second

// D-Bus names the tray relies on.
const (
	watcherName      = "org.kde.StatusNotifierWatcher"
	notificationName = "org.freedesktop.Notifications"
	notificationPath = "/org/freedesktop/Notifications"
)

// session is the tray's own private connection to the user's session bus:
// it checks the bus before the systray library touches it, waits for a tray
// host, sends notifications, and notices the bus going away.
type session struct {
	conn *dbus.Conn
	log  *slog.Logger
}

// openSession connects to the session bus without ever starting one: an
// unset DBUS_SESSION_BUS_ADDRESS falls back to $XDG_RUNTIME_DIR/bus only.
// On success DBUS_SESSION_BUS_ADDRESS is set, so the systray library finds
// the same bus and has no reason to launch another.
func openSession(log *slog.Logger) (*session, error) {
	conn, err := dbus.SessionBusPrivateNoAutoStartup()
	if err != nil {
		return nil, fmt.Errorf("no desktop session bus (DBUS_SESSION_BUS_ADDRESS is unset and $XDG_RUNTIME_DIR/bus is missing): %w; run rouse tray inside your desktop session", err)
	}
	if err := conn.Auth(nil); err != nil {
		conn.Close()
		return nil, fmt.Errorf("session bus: authenticate: %w", err)
	}
	if err := conn.Hello(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("session bus: hello: %w", err)
	}
	if a := os.Getenv("DBUS_SESSION_BUS_ADDRESS"); a == "" || a == "autolaunch:" {
		// Only reachable if discovery did not set it; never leave it empty
		// for the systray library.
		conn.Close()
		return nil, errors.New("session bus address unknown; set DBUS_SESSION_BUS_ADDRESS")
	}
	return &session{conn: conn, log: log}, nil
}

func (s *session) close() { s.conn.Close() }

// done is closed when the session bus goes away.
func (s *session) done() <-chan struct{} { return s.conn.Context().Done() }

func (s *session) hasOwner(name string) (bool, error) {
	var ok bool
	err := s.conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, name).Store(&ok)
	return ok, err
}

// waitForHost returns when a StatusNotifierWatcher (the tray host's
// registry) is on the bus. Without one it says so once and waits for
// NameOwnerChanged. It fails when the bus goes away.
func (s *session) waitForHost(ctx context.Context) error {
	match := []dbus.MatchOption{
		dbus.WithMatchObjectPath("/org/freedesktop/DBus"),
		dbus.WithMatchInterface("org.freedesktop.DBus"),
		dbus.WithMatchMember("NameOwnerChanged"),
		dbus.WithMatchArg(0, watcherName),
	}
	if err := s.conn.AddMatchSignal(match...); err != nil {
		return fmt.Errorf("session bus: watch for a tray host: %w", err)
	}
	defer func() { _ = s.conn.RemoveMatchSignal(match...) }()
	ch := make(chan *dbus.Signal, 8)
	s.conn.Signal(ch)
	defer s.conn.RemoveSignal(ch)

	ok, err := s.hasOwner(watcherName)
	if err != nil {
		return fmt.Errorf("session bus: look for a tray host: %w", err)
	}
	if ok {
		return nil
	}
	s.log.Warn("no tray host on the session bus; waiting for one (a panel with StatusNotifierItem support: KDE, GNOME with the AppIndicator extension, Xfce, waybar...)",
		"name", watcherName)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done():
			return errors.New("the session bus closed")
		case sig := <-ch:
			if sig == nil || sig.Name != "org.freedesktop.DBus.NameOwnerChanged" || len(sig.Body) < 3 {
				continue
			}
			if name, _ := sig.Body[0].(string); name != watcherName {
				continue
			}
			if owner, _ := sig.Body[2].(string); owner != "" {
				s.log.Info("tray host appeared")
				return nil
			}
		}
	}
}

// notify shows a desktop notification through org.freedesktop.Notifications.
func (s *session) notify(a Alert) error {
	if ok, err := s.hasOwner(notificationName); err != nil || !ok {
		return errNoNotifications
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hints := map[string]dbus.Variant{"urgency": dbus.MakeVariant(byte(1)), "desktop-entry": dbus.MakeVariant("rouse")}
	var id uint32
	err := s.conn.Object(notificationName, notificationPath).CallWithContext(ctx,
		notificationName+".Notify", 0,
		"rouse", uint32(0), "dialog-warning", a.Title, a.Body, []string{}, hints, int32(-1)).Store(&id)
	if err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	return nil
}

// whenItemLive works around a race in the systray library: a tooltip or
// icon set while it is exporting the item is kept in memory but never
// reaches the exported properties. It calls probe (which re-sets the
// tooltip) every 100 ms until the item emits NewToolTip from the library's
// connection — proof that sets now reach the bus — and returns true; false
// if ctx ends first or the item never shows up (liveTimeout).
func (s *session) whenItemLive(ctx context.Context, probe func()) bool {
	ctx, cancel := context.WithTimeout(ctx, liveTimeout)
	defer cancel()
	shared, err := dbus.SessionBus() // the library's cached connection
	if err != nil || len(shared.Names()) == 0 {
		return false
	}
	match := []dbus.MatchOption{
		dbus.WithMatchSender(shared.Names()[0]),
		dbus.WithMatchObjectPath("/StatusNotifierItem"),
		dbus.WithMatchInterface("org.kde.StatusNotifierItem"),
		dbus.WithMatchMember("NewToolTip"),
	}
	if err := s.conn.AddMatchSignal(match...); err != nil {
		return false
	}
	defer func() { _ = s.conn.RemoveMatchSignal(match...) }()
	ch := make(chan *dbus.Signal, 8)
	s.conn.Signal(ch)
	defer s.conn.RemoveSignal(ch)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		probe()
		select {
		case <-ctx.Done():
			return false
		case <-s.done():
			return false
		case sig := <-ch:
			if sig != nil && sig.Name == "org.kde.StatusNotifierItem.NewToolTip" && sig.Sender == shared.Names()[0] {
				return true
			}
		case <-tick.C:
		}
	}
}
