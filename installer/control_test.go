package installer

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeReq stands in for svc.ChangeRequest.
type fakeReq struct {
	kind  request
	event uint32
}

type recorder struct {
	mu      sync.Mutex
	reports []serviceState
	powers  []uint32
	agains  int
}

func (r *recorder) hooks() controlHooks[fakeReq] {
	return controlHooks[fakeReq]{
		classify: func(q fakeReq) (request, uint32) { return q.kind, q.event },
		report:   func(s serviceState) { r.mu.Lock(); r.reports = append(r.reports, s); r.mu.Unlock() },
		again:    func(fakeReq) { r.mu.Lock(); r.agains++; r.mu.Unlock() },
		power:    func(ev uint32) { r.mu.Lock(); r.powers = append(r.powers, ev); r.mu.Unlock() },
	}
}

const guard = 10 * time.Second

func TestServe(t *testing.T) {
	t.Run("PowerEventsReachPowerAndStopEndsTheAgentCleanly", func(t *testing.T) {
		reqs := make(chan fakeReq)
		r := &recorder{}
		agentCtxDone := make(chan struct{})
		run := func(ctx context.Context) error {
			<-ctx.Done()
			close(agentCtxDone)
			return ctx.Err()
		}
		res := make(chan error, 1)
		go func() { res <- serve(context.Background(), reqs, run, r.hooks()) }()
		for _, q := range []fakeReq{{reqPower, 0x4}, {reqInterrogate, 0}, {reqIgnore, 0}, {reqPower, 0x7}, {reqPower, 0x12}, {reqStop, 0}} {
			select {
			case reqs <- q:
			case <-time.After(guard):
				t.Fatalf("serve stopped reading requests at %+v", q)
			}
		}
		select {
		case err := <-res:
			if err != nil {
				t.Fatalf("serve = %v, want nil after a requested stop", err)
			}
		case <-time.After(guard):
			t.Fatal("serve did not return after stop")
		}
		select {
		case <-agentCtxDone:
		default:
			t.Fatal("serve returned before the agent saw its context cancelled")
		}
		if want := []uint32{0x4, 0x7, 0x12}; !slices.Equal(r.powers, want) {
			t.Errorf("power events = %#x, want %#x", r.powers, want)
		}
		if want := []serviceState{stateRunning, stateStopPending}; !slices.Equal(r.reports, want) {
			t.Errorf("reports = %v, want %v", r.reports, want)
		}
		if r.agains != 1 {
			t.Errorf("interrogations answered = %d, want 1", r.agains)
		}
	})
	t.Run("AnAgentFailingOnItsOwnEndsTheLoopWithItsError", func(t *testing.T) {
		boom := errors.New("store unreadable")
		r := &recorder{}
		err := serve(context.Background(), make(chan fakeReq), func(context.Context) error { return boom }, r.hooks())
		if !errors.Is(err, boom) {
			t.Fatalf("serve = %v, want %v", err, boom)
		}
	})
	t.Run("AnAgentFailingWhileStoppingReportsItsError", func(t *testing.T) {
		boom := errors.New("checkpoint failed")
		reqs := make(chan fakeReq, 1)
		reqs <- fakeReq{kind: reqStop}
		r := &recorder{}
		err := serve(context.Background(), reqs, func(ctx context.Context) error { <-ctx.Done(); return boom }, r.hooks())
		if !errors.Is(err, boom) {
			t.Fatalf("serve = %v, want %v", err, boom)
		}
	})
	t.Run("AClosedRequestChannelStopsTheAgent", func(t *testing.T) {
		reqs := make(chan fakeReq)
		close(reqs)
		r := &recorder{}
		err := serve(context.Background(), reqs, func(ctx context.Context) error { <-ctx.Done(); return nil }, r.hooks())
		if err != nil {
			t.Fatalf("serve = %v, want nil", err)
		}
	})
}
