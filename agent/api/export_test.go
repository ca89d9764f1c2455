package api

import (
	"context"
	"net"
	"time"

	"github.com/rouse-dev/rouse/internal/hostcheck"
)

// Hooks for the external tests.

const MaxBodyBytes = maxBodyBytes

const MaxEventsPerFlush = maxEventsPerFlush

// SetKeepAliveInterval changes the SSE keep-alive interval and returns a
// function that restores it.
func SetKeepAliveInterval(d time.Duration) (restore func()) {
	old := keepAliveInterval
	keepAliveInterval = d
	return func() { keepAliveInterval = old }
}

// SetReadTimeout changes the server read timeout; see SetKeepAliveInterval.
func SetReadTimeout(d time.Duration) (restore func()) {
	old := readTimeout
	readTimeout = d
	return func() { readTimeout = old }
}

// SetNow injects the clock used for login codes and sessions.
func (s *Server) SetNow(now func() time.Time) { s.now = now }

// SetLookupHost replaces the resolver used for listen: localhost:P; see
// SetKeepAliveInterval.
func SetLookupHost(f func(ctx context.Context, host string) ([]net.IPAddr, error)) (restore func()) {
	old := hostcheck.LookupHost
	hostcheck.LookupHost = f
	return func() { hostcheck.LookupHost = old }
}

// SetShutdownGrace changes how long Serve waits for in-flight requests.
func SetShutdownGrace(d time.Duration) (restore func()) {
	old := shutdownGrace
	shutdownGrace = d
	return func() { shutdownGrace = old }
}
