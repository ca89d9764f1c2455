//go:build windows

package engine

import (
	"context"
	"net"

	"github.com/Microsoft/go-winio"
)

// defaultHost is Docker Desktop's named pipe.
const defaultHost = "npipe:////./pipe/docker_engine"

// dialPipe opens a named pipe, e.g. //./pipe/docker_engine.
func dialPipe(ctx context.Context, name string) (net.Conn, error) {
	return winio.DialPipeContext(ctx, name)
}
