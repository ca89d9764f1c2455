//go:build !linux

package exec

import (
	"log/slog"
	"syscall"
	"time"
)

// jail is Linux-only (cgroup or subreaper): elsewhere a run's processes are
// its process group, which stopping kills; what leaves the group (setsid, a
// double fork) is not tracked. Every method is a no-op on the nil jail.
type jail struct{}

func newJail(string, *slog.Logger) (*jail, error)                   { return nil, nil }
func (*jail) prepare(_ *syscall.SysProcAttr, env []string) []string { return env }
func (*jail) id() string                                            { return "" }
func (*jail) started(int)                                           {}
func (*jail) terminate()                                            {}
func (*jail) settle(time.Time)                                      {}
func (*jail) kill(bool) error                                       { return nil }
func (*jail) close()                                                {}
