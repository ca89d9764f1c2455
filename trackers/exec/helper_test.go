package exec

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/rouse-dev/rouse/trackers"
)

// The test binary doubles as the child for tests that need a TCP listener:
// with helperEnv set, TestMain runs helperMain instead of the tests.
const helperEnv = "ROUSE_EXEC_TEST_HELPER"

func helperMode() string { return os.Getenv(helperEnv) }

// helperMain is the child side. "listen ADDR DELAY": listen on ADDR after
// DELAY and accept connections until killed.
func helperMain(mode string) {
	args := os.Args[1:]
	switch mode {
	case "listen":
		delay, _ := time.ParseDuration(args[1])
		time.Sleep(delay)
		ln, err := net.Listen("tcp", args[0])
		if err != nil {
			os.Stderr.WriteString("listen: " + err.Error() + "\n")
			os.Exit(3)
		}
		os.Stdout.WriteString("listening on " + ln.Addr().String() + "\n")
		for {
			c, err := ln.Accept()
			if err != nil {
				os.Exit(4)
			}
			c.Close()
		}
	case "supervise", "supervise-group":
		// An agent in miniature: supervise "sleep 300" (supervise-group:
		// a shell that also leaves a grandchild in the group, with its
		// group recorded in the state directory args[0]), print its pid,
		// wait to be killed.
		o := DefaultOptions()
		o.Command = []string{"sleep", "300"}
		deps := trackers.Deps{Name: "child", Logger: slog.New(slog.DiscardHandler)}
		if mode == "supervise-group" {
			o.Command = []string{"sh", "-c", "sleep 300 & sleep 300"}
			deps.StateDir = args[0]
		}
		tr, err := New(*o, deps)
		if err != nil {
			os.Exit(3)
		}
		go tr.Run(context.Background(), newHost())
		for tr.Pid() == 0 {
			time.Sleep(time.Millisecond)
		}
		fmt.Println(tr.Pid())
		select {}
	case "contain":
		helperContain(args)
	default:
		os.Exit(2)
	}
}
