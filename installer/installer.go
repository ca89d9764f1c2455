// Package installer owns rouse as an operating-system service: it installs,
// updates, removes, starts, stops and queries the service through
// github.com/kardianos/service, with rouse's own service files (a systemd
// unit with Type=notify, a watchdog and a short restart delay, a user
// LaunchAgent on macOS, a Windows service), and it runs the agent under the
// Windows service manager so power events reach the agent (RunAgent).
//
// Decisions: installing is idempotent: a second install rewrites the
// service file and restarts the service, so the same command updates an
// install. Install starts the service unless told not to (the user asked
// for it); uninstall stops it first and is a no-op when nothing is
// installed. On Linux only systemd is supported (user and system units);
// on macOS rouse is a per-user LaunchAgent (it follows the user's session
// and sleep); on Windows it is a system service.
//
// The templates are exported (UserUnit, SystemUnit, LaunchdPlist, Render)
// so the Debian package ships exactly the units the installer writes.
package installer

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/kardianos/service"
)

// Name is the service name: rouse.service, the rouse LaunchAgent, the
// rouse Windows service.
const Name = "rouse"

// Options say which service to manage.
type Options struct {
	// User selects the per-user service (systemd --user; on macOS always
	// a LaunchAgent). Windows has only the system service.
	User bool
	// Executable is the binary the service runs; default: this process's
	// own executable, symlinks resolved.
	Executable string
	// NoStart leaves the service stopped after Install.
	NoStart bool
	// System forces a kardianos/service backend by name ("linux-systemd"),
	// for machines whose detection is wrong (containers report
	// "interactive"); "" detects.
	System string
	// Out receives the messages meant for the user (default io.Discard).
	Out io.Writer
	// Logger receives diagnostics (default slog.Default()).
	Logger *slog.Logger
}

// State is what Status reports.
type State int

// States of an installed or missing service.
const (
	NotInstalled State = iota
	Stopped
	Running
	Failed // the manager gave up on it (systemd's "failed")
)

func (s State) String() string {
	switch s {
	case Running:
		return "running"
	case Stopped:
		return "stopped"
	case Failed:
		return "failed"
	}
	return "not installed"
}

// Installer manages one flavour (user or system) of the rouse service.
type Installer struct {
	o    Options
	exe  string
	file string // the service file; "" where the manager keeps no file (Windows)
	svc  service.Service
	log  *slog.Logger
}

// New prepares an installer; it changes nothing on the machine.
func New(o Options) (*Installer, error) {
	if o.Out == nil {
		o.Out = io.Discard
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "installer")
	if err := checkFlavour(&o); err != nil {
		return nil, err
	}
	exe := o.Executable
	if exe == "" {
		p, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find the rouse executable: %w", err)
		}
		exe = p
	}
	if p, err := filepath.EvalSymlinks(exe); err == nil {
		exe = p
	}
	exe, err := filepath.Abs(exe)
	if err != nil {
		return nil, fmt.Errorf("find the rouse executable: %w", err)
	}
	if o.System != "" {
		if err := chooseSystem(o.System); err != nil {
			return nil, err
		}
	}
	if err := checkPlatform(service.ChosenSystem()); err != nil {
		return nil, err
	}
	cfg := &service.Config{
		Name:        Name,
		DisplayName: "rouse",
		Description: Description,
		Executable:  exe,
		Option:      service.KeyValue{"UserService": o.User},
	}
	if err := configure(o, cfg); err != nil {
		return nil, err
	}
	s, err := service.New(program{}, cfg)
	if err != nil {
		return nil, fmt.Errorf("service manager: %w", err)
	}
	file, err := serviceFile(o)
	if err != nil {
		return nil, err
	}
	return &Installer{o: o, exe: exe, file: file, svc: s, log: log}, nil
}

// program satisfies service.Interface; rouse never calls the library's Run
// (systemd and launchd run `rouse run` directly; Windows goes through
// RunAgent), so these are never used.
type program struct{}

func (program) Start(service.Service) error { return nil }
func (program) Stop(service.Service) error  { return nil }

// chooseSystem forces the named backend even where its detection says no.
func chooseSystem(name string) error {
	var names []string
	for _, s := range service.AvailableSystems() {
		if s.String() == name {
			service.ChooseSystem(forced{s})
			return nil
		}
		names = append(names, s.String())
	}
	return fmt.Errorf("no service manager %q here (known: %s)", name, strings.Join(names, ", "))
}

type forced struct{ service.System }

func (forced) Detect() bool { return true }

// Flavour says "user service" or "system service".
func (in *Installer) Flavour() string {
	if in.o.User {
		return "user service"
	}
	return "system service"
}

// Platform names the service manager backend ("linux-systemd").
func (in *Installer) Platform() string { return in.svc.Platform() }

// File is the service file Install writes ("" on Windows).
func (in *Installer) File() string { return in.file }

// Executable is the binary the service runs.
func (in *Installer) Executable() string { return in.exe }

// Install installs the service, or updates it when it is installed already
// (the service file is rewritten), then starts or restarts it unless
// NoStart is set.
func (in *Installer) Install() error {
	if err := preflight(in.o); err != nil {
		return err
	}
	if dir := os.TempDir(); strings.HasPrefix(in.exe, filepath.Clean(dir)+string(filepath.Separator)) {
		fmt.Fprintf(in.o.Out, "warning: %s is in a temporary directory; the service will break when it is cleaned up\n", in.exe)
	}
	was, err := in.Status()
	if err != nil {
		if in.file == "" {
			return err
		}
		in.log.Warn("cannot query the installed service; replacing it anyway", "err", err)
	}
	if was != NotInstalled {
		if was == Running {
			if err := in.svc.Stop(); err != nil {
				in.log.Warn("stop before update failed", "err", err)
			}
		}
		if err := in.svc.Uninstall(); err != nil {
			return fmt.Errorf("update the %s: remove the old one: %w", in.Flavour(), err)
		}
	}
	if err := prepare(in.o); err != nil {
		return err
	}
	if err := in.svc.Install(); err != nil {
		return fmt.Errorf("install the %s: %w", in.Flavour(), err)
	}
	verb := "installed"
	if was != NotInstalled {
		verb = "updated"
	}
	where := in.file
	if where == "" {
		where = in.svc.Platform()
	}
	fmt.Fprintf(in.o.Out, "rouse %s as a %s (%s)\n", verb, in.Flavour(), where)
	in.log.Debug("service installed", "flavour", in.Flavour(), "file", in.file, "updated", was != NotInstalled)
	if !in.o.NoStart {
		if err := in.svc.Start(); err != nil {
			return fmt.Errorf("start the %s: %w", in.Flavour(), err)
		}
		fmt.Fprintln(in.o.Out, "rouse started")
	}
	hints(in.o, in.o.Out)
	return nil
}

// Uninstall stops and removes the service; when it is not installed it
// says so and succeeds.
func (in *Installer) Uninstall() error {
	st, err := in.Status()
	if err != nil && st == NotInstalled {
		return err
	}
	if st == NotInstalled {
		fmt.Fprintf(in.o.Out, "rouse is not installed as a %s; nothing to do\n", in.Flavour())
		return nil
	}
	if st == Running || st == Failed {
		if err := in.svc.Stop(); err != nil {
			return fmt.Errorf("stop the %s: %w", in.Flavour(), err)
		}
	}
	if err := in.svc.Uninstall(); err != nil {
		return fmt.Errorf("uninstall the %s: %w", in.Flavour(), err)
	}
	fmt.Fprintf(in.o.Out, "rouse %s removed\n", in.Flavour())
	return nil
}

// Start starts the installed service.
func (in *Installer) Start() error {
	if err := in.requireInstalled(); err != nil {
		return err
	}
	if err := in.svc.Start(); err != nil {
		return fmt.Errorf("start the %s: %w", in.Flavour(), err)
	}
	return nil
}

// Stop stops the installed service.
func (in *Installer) Stop() error {
	if err := in.requireInstalled(); err != nil {
		return err
	}
	if err := in.svc.Stop(); err != nil {
		return fmt.Errorf("stop the %s: %w", in.Flavour(), err)
	}
	return nil
}

// ErrNotInstalled is returned by Start and Stop when there is no service.
var ErrNotInstalled = errors.New("rouse is not installed as a service")

func (in *Installer) requireInstalled() error {
	st, err := in.Status()
	if err != nil && st == NotInstalled {
		return err
	}
	if st == NotInstalled {
		return fmt.Errorf("%w (%s): run \"rouse install%s\" first", ErrNotInstalled, in.Flavour(), map[bool]string{true: " --user"}[in.o.User])
	}
	return nil
}

// Status reports whether the service is installed and running.
func (in *Installer) Status() (State, error) {
	if in.file != "" {
		if _, err := os.Stat(in.file); errors.Is(err, os.ErrNotExist) {
			return NotInstalled, nil
		}
	}
	st, err := in.svc.Status()
	switch {
	case errors.Is(err, service.ErrNotInstalled):
		if in.file != "" {
			return Stopped, nil // the file is there; the manager has not loaded it
		}
		return NotInstalled, nil
	case err != nil && strings.Contains(err.Error(), "failed state"):
		// kardianos reports systemd's "failed" only as this error text.
		return Failed, nil
	case err != nil:
		return Stopped, fmt.Errorf("query the %s: %w", in.Flavour(), err)
	case st == service.StatusRunning:
		return Running, nil
	}
	return Stopped, nil
}
