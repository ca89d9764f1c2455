//go:build !windows

package engine

import (
	"context"
	"errors"
	"net"
)

// defaultHost is the engine's standard socket.
const defaultHost = "unix:///var/run/docker.sock"

// dialPipe: named pipes are Windows's.
func dialPipe(context.Context, string) (net.Conn, error) {
	return nil, errors.New("npipe:// addresses are for Windows; use unix:///path/to/docker.sock")
}
