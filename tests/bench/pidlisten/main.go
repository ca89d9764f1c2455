// Command pidlisten is benchmark 5's program (tests/bench, supervisord.go):
// it waits DELAY, then accepts on ADDR and writes its pid to each
// connection, and once it listens it tells the bench so (a line "ADDR PID"
// to REPORT). SIGTERM or SIGINT ends it. MARKER only tags its command line.
// The bench builds it on its own, with nothing but what it needs, so that
// starting fifty of them costs the machine little and the same for
// supervisord, pm2 and rouse.
//
//	pidlisten ADDR DELAY [MARKER [REPORT]]
package main

import (
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		os.Stderr.WriteString("pidlisten: " + err.Error() + "\n")
		os.Exit(2)
	}
}

func run(args []string) error {
	if len(args) < 2 {
		return errorString("want ADDR DELAY [MARKER [REPORT]]")
	}
	delay, err := time.ParseDuration(args[1])
	if err != nil {
		return err
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-time.After(delay):
	case <-term:
		return nil
	}
	var l net.Listener
	for range 200 { // the previous instance may hold the port a moment longer
		if l, err = net.Listen("tcp", args[0]); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	pid := strconv.Itoa(os.Getpid())
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte(pid + "\n"))
			c.Close()
		}
	}()
	if len(args) > 3 { // tell the bench: listening now
		if c, err := net.DialTimeout("tcp", args[3], time.Second); err == nil {
			_, _ = c.Write([]byte(args[0] + " " + pid + "\n"))
			c.Close()
		}
	}
	<-term
	return l.Close()
}

type errorString string

func (e errorString) Error() string { return string(e) }
