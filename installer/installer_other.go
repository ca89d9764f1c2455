//go:build !linux && !darwin && !windows

package installer

import (
	"errors"
	"io"

	"github.com/kardianos/service"
)

func checkFlavour(*Options) error { return nil }

func checkPlatform(service.System) error {
	return errors.New("rouse installs itself as a service only on Linux (systemd), macOS and Windows; run \"rouse run\" from your init system instead")
}

func configure(Options, *service.Config) error { return nil }
func serviceFile(Options) (string, error)      { return "", nil }
func preflight(Options) error                  { return nil }
func prepare(Options) error                    { return nil }
func hints(Options, io.Writer)                 {}
