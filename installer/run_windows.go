package installer

import (
	"context"
	"fmt"

	"golang.org/x/sys/windows/svc"

	"github.com/rouse-dev/rouse/platform/power"
)

// RunAgent runs the agent (run) directly, or, when the process was started
// by the Windows service control manager, as the service's handler: it
// accepts stop, shutdown and power events, and hands every power event's
// type (PBT_APMSUSPEND, PBT_APMRESUMESUSPEND, ...) to
// power.HandlePowerEvent. kardianos/service cannot do the latter: its
// handler accepts only stop and shutdown.
func RunAgent(ctx context.Context, run func(context.Context) error) error {
	isService, err := svc.IsWindowsService()
	if err != nil || !isService {
		return run(ctx)
	}
	h := &handler{ctx: ctx, run: run}
	if err := svc.Run(Name, h); err != nil {
		return fmt.Errorf("run as a Windows service: %w", err)
	}
	return h.err
}

type handler struct {
	ctx context.Context
	run func(context.Context) error
	err error
}

const accepted = svc.AcceptStop | svc.AcceptShutdown | svc.AcceptPowerEvent

func (h *handler) Execute(_ []string, r <-chan svc.ChangeRequest, changes chan<- svc.Status) (bool, uint32) {
	changes <- svc.Status{State: svc.StartPending}
	h.err = serve(h.ctx, r, h.run, controlHooks[svc.ChangeRequest]{
		classify: classify,
		report: func(s serviceState) {
			switch s {
			case stateRunning:
				changes <- svc.Status{State: svc.Running, Accepts: accepted}
			case stateStopPending:
				changes <- svc.Status{State: svc.StopPending}
			}
		},
		again: func(c svc.ChangeRequest) { changes <- c.CurrentStatus },
		power: power.HandlePowerEvent,
	})
	changes <- svc.Status{State: svc.StopPending}
	if h.err != nil {
		return true, 1
	}
	return false, 0
}

func classify(c svc.ChangeRequest) (request, uint32) {
	switch c.Cmd {
	case svc.Interrogate:
		return reqInterrogate, 0
	case svc.Stop, svc.Shutdown:
		return reqStop, 0
	case svc.PowerEvent:
		return reqPower, c.EventType
	}
	return reqIgnore, 0
}
