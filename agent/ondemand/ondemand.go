// Package ondemand owns rouse's on-demand entry points (a tracker's
// `on_demand:` key): the listener in front of a component, which starts the
// component's chain when the first connection or request arrives, shows a
// browser the waiting page (live over Server-Sent Events) while the chain
// starts, holds other clients until it is ready, and then forwards —
// httputil.ReverseProxy in http mode (WebSocket upgrades included), a
// spliced TCP connection in tcp mode. It counts activity (open connections
// and requests) and asks the agent to stop the chain after idle_stop.
//
// The package never imports the agent: the agent passes a Chains, its side
// of the contract, and owns each Front (Run until its context ends).
package ondemand

import (
	"time"

	"github.com/rouse-dev/rouse/wire"
)

// Chains is the agent's side of an on-demand entry point. Its methods are
// safe for concurrent use and return promptly (none waits for a chain to
// start or stop).
type Chains interface {
	// Demand starts name's chain (its required and optional dependencies in
	// dependency order, then name) with trigger "demand" unless it is
	// already starting or ready. It returns at once.
	Demand(name string)
	// Chain is the chain's current view.
	Chain(name string) wire.Chain
	// Watch returns a channel that receives (coalesced, one slot) after
	// every change of name's chain view, and a func that stops the watch.
	Watch(name string) (<-chan struct{}, func())
	// IdleStop stops name's chain because nobody used it for idle_stop:
	// name, then each dependency no other running component needs, in
	// reverse start order. A later wake does not start it again.
	IdleStop(name string)
}

// Options configure one Front; they are the tracker's on_demand key.
type Options struct {
	Name     string        // the component whose chain this entry point starts
	Listen   string        // host:port rouse listens on
	Upstream string        // host:port the component serves on
	Mode     string        // ModeHTTP or ModeTCP
	IdleStop time.Duration // 0: never
	// Hold bounds how long a non-browser request or a tcp connection is
	// held while the chain starts; then 503 with Retry-After (http) or the
	// connection is closed (tcp). A client is held for the chain's
	// deadline as its view says now (wire.Chain.DeadlineMS, read when the
	// client arrives and again on every change of the view, so it follows
	// `deadline: auto` and config edits), at most Hold.
	Hold time.Duration
	// MaxHeld caps the clients waiting on the chain at once: held
	// requests, held tcp connections and waiting pages' event streams.
	// Beyond it a request gets 503 with Retry-After at once and a tcp
	// connection is closed. 0: DefaultMaxHeld.
	MaxHeld int
}

// Defaults for Options left zero.
const (
	DefaultHold    = 5 * time.Minute // the global bound of a chain's start
	DefaultMaxHeld = 256
)

// The modes of an on-demand entry point.
const (
	ModeHTTP = "http"
	ModeTCP  = "tcp"
)
