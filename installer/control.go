package installer

import (
	"context"
	"errors"
)

// request is one service-manager control request, reduced to what the
// agent cares about. The Windows adapter maps svc.ChangeRequest onto it;
// keeping the loop free of Windows types lets it be tested everywhere.
type request int

const (
	reqIgnore      request = iota
	reqInterrogate         // report the current state again
	reqStop                // stop or shutdown
	reqPower               // a power broadcast; the event type goes to power
)

// serviceState is what the loop reports to the service manager.
type serviceState int

const (
	stateRunning serviceState = iota
	stateStopPending
)

// controlHooks are the loop's outside world.
type controlHooks[R any] struct {
	classify func(R) (request, uint32) // request kind and power event type
	report   func(serviceState)        // tell the manager the state
	again    func(R)                   // answer an interrogate
	power    func(eventType uint32)    // power.HandlePowerEvent
}

// serve runs the agent under a service manager's control requests: it
// starts run, reports running, forwards power events, and on stop cancels
// run and waits for it. It returns run's error, or nil after a requested
// stop when run ended cleanly. It owns the goroutine it starts and never
// returns before that goroutine has finished.
func serve[R any](ctx context.Context, reqs <-chan R, run func(context.Context) error, h controlHooks[R]) error {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(runCtx) }()
	h.report(stateRunning)
	for {
		select {
		case err := <-done:
			return err
		case r, ok := <-reqs:
			if !ok {
				reqs = nil // the manager is gone: run until the agent ends
				cancel()
				continue
			}
			kind, ev := h.classify(r)
			switch kind {
			case reqInterrogate:
				h.again(r)
			case reqPower:
				h.power(ev)
			case reqStop:
				h.report(stateStopPending)
				cancel()
				err := <-done
				if errors.Is(err, context.Canceled) {
					return nil
				}
				return err
			}
		}
	}
}
