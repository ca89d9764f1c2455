//go:build linux

package harness

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// helperFlag is the first argument that turns the test binary into a helper.
const helperFlag = "-rouse-e2e-helper"

// Helper modes (HelperCommand's mode argument):
//
//	listen ADDR DELAY     listen on ADDR after DELAY, accept and close forever
//	spawn-listen ADDR     like listen with no delay, and also start a
//	                      grandchild (sleep) that must die with it
//	listen-once ADDR FILE listen only when FILE does not exist yet (it is
//	                      created): every later start hangs without listening
//	crash-if FILE ADDR    when FILE exists, remove it and exit 3 at once;
//	                      otherwise listen on ADDR
//	proxy ADDR TARGET DELAY  after DELAY, listen on ADDR and forward every
//	                      connection to TARGET (a stand-in for an SSH tunnel)
//	hang                  never listen, never exit
//	http ADDR DELAY BODY  after DELAY, serve HTTP on ADDR: every request gets
//	                      200 and BODY
//	echo ADDR DELAY       after DELAY, a TCP echo server on ADDR
const (
	ModeHTTP        = "http"
	ModeEcho        = "echo"
	ModeProxy       = "proxy"
	ModeListen      = "listen"
	ModeSpawnListen = "spawn-listen"
	ModeListenOnce  = "listen-once"
	ModeCrashIf     = "crash-if"
	ModeHang        = "hang"
)

// HelperCommand is the argv of an exec component running the test binary
// as a helper in mode. marker tags the process (see Survivors).
func HelperCommand(marker, mode string, args ...string) []string {
	self, err := os.Executable()
	if err != nil {
		panic(fmt.Sprintf("harness: own executable: %v", err))
	}
	return append([]string{self, helperFlag, marker, mode}, args...)
}

// YAMLList renders argv as a YAML flow list of quoted strings.
func YAMLList(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = fmt.Sprintf("%q", a)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// ExecEnv is the env mapping (YAML flow) that tags an exec child with marker.
func ExecEnv(marker string) string {
	return fmt.Sprintf("{%s: %q}", MarkerEnv, marker)
}

// RunHelperIfAsked turns the process into a helper when its arguments ask
// for one, and never returns then. Call it first in TestMain.
func RunHelperIfAsked() {
	if len(os.Args) < 4 || os.Args[1] != helperFlag {
		return
	}
	mode, args := os.Args[3], os.Args[4:]
	if err := runHelper(mode, args); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	os.Exit(0)
}

func runHelper(mode string, args []string) error {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	switch mode {
	case ModeListen:
		if len(args) != 2 {
			return fmt.Errorf("listen ADDR DELAY, got %q", args)
		}
		if up, err := waitFor(args[1], term); !up {
			return err
		}
		return serve(args[0], term)
	case ModeSpawnListen:
		if len(args) != 1 {
			return fmt.Errorf("spawn-listen ADDR, got %q", args)
		}
		gc := exec.Command("sleep", "3600")
		gc.Env = os.Environ()
		if err := gc.Start(); err != nil {
			return fmt.Errorf("start grandchild: %w", err)
		}
		fmt.Println("grandchild", gc.Process.Pid)
		// No Wait: the group kill is what must end it.
		return serve(args[0], term)
	case ModeListenOnce:
		if len(args) != 2 {
			return fmt.Errorf("listen-once ADDR FILE, got %q", args)
		}
		f, err := os.OpenFile(args[1], os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			fmt.Println("not the first start: hanging without listening")
			<-term
			return nil
		}
		f.Close()
		return serve(args[0], term)
	case ModeCrashIf:
		if len(args) != 2 {
			return fmt.Errorf("crash-if FILE ADDR, got %q", args)
		}
		if _, err := os.Stat(args[0]); err == nil {
			_ = os.Remove(args[0])
			fmt.Println("crashing on purpose")
			os.Exit(3)
		}
		return serve(args[1], term)
	case ModeProxy:
		if len(args) != 3 {
			return fmt.Errorf("proxy ADDR TARGET DELAY, got %q", args)
		}
		if up, err := waitFor(args[2], term); !up {
			return err
		}
		return proxy(args[0], args[1], term)
	case ModeHang:
		<-term
		return nil
	case ModeHTTP, ModeEcho:
		if (mode == ModeHTTP && len(args) != 3) || (mode == ModeEcho && len(args) != 2) {
			return fmt.Errorf("%s ADDR DELAY [BODY], got %q", mode, args)
		}
		if up, err := waitFor(args[1], term); !up {
			return err
		}
		l, err := net.Listen("tcp", args[0])
		if err != nil {
			return err
		}
		fmt.Println(mode, "on", args[0])
		if mode == ModeHTTP {
			body := args[2]
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				io.WriteString(w, body)
			}), ReadHeaderTimeout: 10 * time.Second}
			go srv.Serve(l) //nolint:errcheck // ends with the listener
		} else {
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					go func() {
						defer c.Close()
						io.Copy(c, c) //nolint:errcheck // an echo: ends with the connection
					}()
				}
			}()
		}
		<-term
		l.Close()
		return nil
	}
	return fmt.Errorf("unknown helper mode %q", mode)
}

// waitFor waits out the delay given as a duration string, and reports
// false (with nil for a signal) when the helper should end instead.
func waitFor(delay string, term <-chan os.Signal) (bool, error) {
	d, err := time.ParseDuration(delay)
	if err != nil {
		return false, err
	}
	select {
	case <-time.After(d):
		return true, nil
	case <-term:
		return false, nil
	}
}

// serve accepts and closes connections on addr until a signal.
func serve(addr string, term <-chan os.Signal) error {
	var l net.Listener
	var err error
	// The previous instance may still hold the port for a moment.
	for range 100 {
		if l, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	fmt.Println("listening on", addr)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	<-term
	l.Close()
	return nil
}

// proxy forwards every connection on addr to target until a signal.
func proxy(addr, target string, term <-chan os.Signal) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Println("tunnel up on", addr)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
				go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
				<-done
			}()
		}
	}()
	<-term
	l.Close()
	return nil
}
