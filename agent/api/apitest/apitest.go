// Package apitest owns a hand-written fake of api.Backend for tests of the
// REST server and of its clients (CLI, tray). Each method calls the
// function field of the same name; a nil field answers a harmless default
// (empty lists, ErrNotFound for lookups), so a test sets only what it needs.
// It stands in for the agent in handler and client tests only; end-to-end
// tests use the real agent.
package apitest

import (
	"context"
	"sync/atomic"

	"github.com/rouse-dev/rouse/agent/api"
	"github.com/rouse-dev/rouse/wire"
)

// Backend is a fake api.Backend with function fields.
type Backend struct {
	HealthFunc    func(ctx context.Context) wire.Health
	ReadyFunc     func(ctx context.Context, detail bool) wire.Ready
	ServicesFunc  func(ctx context.Context) []wire.Service
	ServiceFunc   func(ctx context.Context, name string) (wire.Service, error)
	StartFunc     func(ctx context.Context, name string) (string, error)
	StopFunc      func(ctx context.Context, name string) (string, error)
	RestartFunc   func(ctx context.Context, name string) (string, error)
	WakeFunc      func(ctx context.Context) (wire.Wake, error)
	WakePlanFunc  func(ctx context.Context) (wire.Plan, error)
	WakesFunc     func(ctx context.Context, limit int, before int64) ([]wire.Wake, error)
	WakeByIDFunc  func(ctx context.Context, id int64) (wire.Wake, error)
	SubscribeFunc func(ctx context.Context, lastID int64) <-chan wire.Event
	ItemsFunc     func(ctx context.Context, tracker string, q api.ItemQuery) ([]api.Item, error)
	JobsFunc      func(ctx context.Context) ([]wire.Job, error)
	RunJobFunc    func(ctx context.Context, name string) (wire.JobRun, error)
	JobRunsFunc   func(ctx context.Context, name string, limit int, before int64) ([]wire.JobRun, error)

	calls atomic.Int64
}

var _ api.Backend = (*Backend)(nil)

// Calls counts every method call so far: a security test asserts a refused
// request never reached the backend.
func (b *Backend) Calls() int64 { return b.calls.Load() }

// Health implements api.Backend.
func (b *Backend) Health(ctx context.Context) wire.Health {
	b.calls.Add(1)
	if b.HealthFunc == nil {
		return wire.Health{Status: wire.StatusOK, Components: []wire.Service{}}
	}
	return b.HealthFunc(ctx)
}

// Ready implements api.Backend.
func (b *Backend) Ready(ctx context.Context, detail bool) wire.Ready {
	b.calls.Add(1)
	if b.ReadyFunc == nil {
		return wire.Ready{Ready: true}
	}
	return b.ReadyFunc(ctx, detail)
}

// Services implements api.Backend.
func (b *Backend) Services(ctx context.Context) []wire.Service {
	b.calls.Add(1)
	if b.ServicesFunc == nil {
		return nil
	}
	return b.ServicesFunc(ctx)
}

// Service implements api.Backend.
func (b *Backend) Service(ctx context.Context, name string) (wire.Service, error) {
	b.calls.Add(1)
	if b.ServiceFunc == nil {
		return wire.Service{}, api.ErrNotFound
	}
	return b.ServiceFunc(ctx, name)
}

// Start implements api.Backend.
func (b *Backend) Start(ctx context.Context, name string) (string, error) {
	b.calls.Add(1)
	if b.StartFunc == nil {
		return "", api.ErrNotFound
	}
	return b.StartFunc(ctx, name)
}

// Stop implements api.Backend.
func (b *Backend) Stop(ctx context.Context, name string) (string, error) {
	b.calls.Add(1)
	if b.StopFunc == nil {
		return "", api.ErrNotFound
	}
	return b.StopFunc(ctx, name)
}

// Restart implements api.Backend.
func (b *Backend) Restart(ctx context.Context, name string) (string, error) {
	b.calls.Add(1)
	if b.RestartFunc == nil {
		return "", api.ErrNotFound
	}
	return b.RestartFunc(ctx, name)
}

// Wake implements api.Backend.
func (b *Backend) Wake(ctx context.Context) (wire.Wake, error) {
	b.calls.Add(1)
	if b.WakeFunc == nil {
		return wire.Wake{ID: 1, DetectedBy: "manual"}, nil
	}
	return b.WakeFunc(ctx)
}

// WakePlan implements api.Backend.
func (b *Backend) WakePlan(ctx context.Context) (wire.Plan, error) {
	b.calls.Add(1)
	if b.WakePlanFunc == nil {
		return wire.Plan{}, nil
	}
	return b.WakePlanFunc(ctx)
}

// Wakes implements api.Backend.
func (b *Backend) Wakes(ctx context.Context, limit int, before int64) ([]wire.Wake, error) {
	b.calls.Add(1)
	if b.WakesFunc == nil {
		return nil, nil
	}
	return b.WakesFunc(ctx, limit, before)
}

// WakeByID implements api.Backend.
func (b *Backend) WakeByID(ctx context.Context, id int64) (wire.Wake, error) {
	b.calls.Add(1)
	if b.WakeByIDFunc == nil {
		return wire.Wake{}, api.ErrNotFound
	}
	return b.WakeByIDFunc(ctx, id)
}

// Subscribe implements api.Backend. Without SubscribeFunc the stream stays
// open and silent until ctx is done.
func (b *Backend) Subscribe(ctx context.Context, lastID int64) <-chan wire.Event {
	b.calls.Add(1)
	if b.SubscribeFunc == nil {
		ch := make(chan wire.Event)
		go func() {
			<-ctx.Done()
			close(ch)
		}()
		return ch
	}
	return b.SubscribeFunc(ctx, lastID)
}

// Items implements api.Backend.
func (b *Backend) Items(ctx context.Context, tracker string, q api.ItemQuery) ([]api.Item, error) {
	b.calls.Add(1)
	if b.ItemsFunc == nil {
		return nil, api.ErrNotFound
	}
	return b.ItemsFunc(ctx, tracker, q)
}

// Jobs implements api.Backend.
func (b *Backend) Jobs(ctx context.Context) ([]wire.Job, error) {
	b.calls.Add(1)
	if b.JobsFunc == nil {
		return nil, nil
	}
	return b.JobsFunc(ctx)
}

// RunJob implements api.Backend.
func (b *Backend) RunJob(ctx context.Context, name string) (wire.JobRun, error) {
	b.calls.Add(1)
	if b.RunJobFunc == nil {
		return wire.JobRun{}, api.ErrNotFound
	}
	return b.RunJobFunc(ctx, name)
}

// JobRuns implements api.Backend.
func (b *Backend) JobRuns(ctx context.Context, name string, limit int, before int64) ([]wire.JobRun, error) {
	b.calls.Add(1)
	if b.JobRunsFunc == nil {
		return nil, api.ErrNotFound
	}
	return b.JobRunsFunc(ctx, name, limit, before)
}
