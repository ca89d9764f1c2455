package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/agent/api/apitest"
	"github.com/rouse-dev/rouse/wire"
)

// backlog is a fake event source: Subscribe replays events after lastID,
// then either closes (drop) or stays open until the subscriber leaves.
type backlog struct {
	events  []wire.Event
	drop    bool
	perConn int // events per subscription at most (0: all)
	subs    syncList[int64]
}

func (b *backlog) subscribe(ctx context.Context, lastID int64) <-chan wire.Event {
	b.subs.add(lastID)
	ch := make(chan wire.Event, len(b.events))
	n := 0
	for _, e := range b.events {
		if e.ID > lastID && (b.perConn == 0 || n < b.perConn) {
			ch <- e
			n++
		}
	}
	if b.drop {
		close(ch)
		return ch
	}
	go func() {
		<-ctx.Done()
		close(ch)
	}()
	return ch
}

func stateEvent(id int64, name string) wire.Event {
	return wire.Event{ID: id, Type: wire.EventState, At: t0, State: &wire.StateEvent{Name: name, State: "ready", Previous: "starting"}}
}

var errEnough = errors.New("enough")

// shortReconnects makes reconnect waits small for a test.
func shortReconnects(t *testing.T) {
	oldI, oldM := reconnectInitial, reconnectMax
	reconnectInitial, reconnectMax = 10*time.Millisecond, 50*time.Millisecond
	t.Cleanup(func() { reconnectInitial, reconnectMax = oldI, oldM })
}

func TestEvents(t *testing.T) {
	t.Run("EventsArriveDecodedAndInOrder", func(t *testing.T) {
		bl := &backlog{events: []wire.Event{stateEvent(1, "a"), {ID: 2, Type: wire.EventWake, At: t0, Wake: &wire.WakeEvent{Phase: "done"}}}}
		a := startAgent(t, &apitest.Backend{SubscribeFunc: bl.subscribe}, "127.0.0.1:0")
		c := newClient(t, a)
		connects := 0
		o := StreamOptions{OnConnect: func() { connects++ }}
		var got []wire.Event
		err := c.Events(context.Background(), o, func(e wire.Event) error {
			got = append(got, e)
			if len(got) == 2 {
				return errEnough
			}
			return nil
		})
		if !errors.Is(err, errEnough) {
			t.Fatalf("Events returned %v, want fn's error", err)
		}
		if connects != 1 {
			t.Fatalf("OnConnect called %d times, want 1", connects)
		}
		if got[0].State == nil || got[0].State.Name != "a" || got[1].Type != wire.EventWake || got[1].Wake.Phase != "done" {
			t.Fatalf("got %+v", got)
		}
	})
	t.Run("ItResumesFromLastIDAfterTheStreamDrops", func(t *testing.T) {
		shortReconnects(t)
		// Each connection carries one event, then the server drops it.
		bl := &backlog{drop: true, perConn: 1, events: []wire.Event{stateEvent(1, "a"), stateEvent(2, "b"), stateEvent(3, "c"), stateEvent(4, "d")}}
		a := startAgent(t, &apitest.Backend{SubscribeFunc: bl.subscribe}, "127.0.0.1:0")
		c := newClient(t, a)
		var reconnects syncList[error]
		o := StreamOptions{LastID: 1, OnReconnect: func(err error, _ time.Duration) { reconnects.add(err) }}
		var ids []int64
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		err := c.Events(ctx, o, func(e wire.Event) error {
			ids = append(ids, e.ID)
			if e.ID == 4 {
				return errEnough
			}
			return nil
		})
		if !errors.Is(err, errEnough) {
			t.Fatalf("Events: %v", err)
		}
		if fmt.Sprint(ids) != "[2 3 4]" {
			t.Fatalf("ids %v, want [2 3 4]", ids)
		}
		if subs := bl.subs.get(); fmt.Sprint(subs) != "[1 2 3]" {
			t.Fatalf("subscribed from %v, want [1 2 3]", subs)
		}
		r := reconnects.get()
		if len(r) != 2 || !errors.Is(r[0], errStreamEnded) {
			t.Fatalf("reconnect reasons %v", r)
		}
	})
	t.Run("ItReconnectsAfterTheAgentRestarts", func(t *testing.T) {
		shortReconnects(t)
		bl := &backlog{events: []wire.Event{stateEvent(1, "a")}}
		a := startAgent(t, &apitest.Backend{SubscribeFunc: bl.subscribe}, "127.0.0.1:0")
		addr := strings.TrimPrefix(a.url, "http://")
		c := newClient(t, a)
		got := make(chan int64, 8)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Events(ctx, StreamOptions{}, func(e wire.Event) error { got <- e.ID; return nil }) }()
		waitID(t, got, 1)

		a.stop() // the agent goes away (a restart, a suspend)
		bl2 := &backlog{events: []wire.Event{stateEvent(1, "a"), stateEvent(2, "b")}}
		startAgent(t, &apitest.Backend{SubscribeFunc: bl2.subscribe}, addr)
		waitID(t, got, 2) // and only 2: the client resumed after 1
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Events: %v", err)
		}
		if subs := bl2.subs.get(); len(subs) == 0 || subs[0] != 1 {
			t.Fatalf("the new agent saw subscriptions from %v, want 1 first", subs)
		}
	})
	t.Run("ASilentStreamIsDroppedAndReopened", func(t *testing.T) {
		shortReconnects(t)
		old := streamIdleTimeout
		streamIdleTimeout = 200 * time.Millisecond // the server's keep-alive stays at 15 s
		t.Cleanup(func() { streamIdleTimeout = old })
		bl := &backlog{}
		a := startAgent(t, &apitest.Backend{SubscribeFunc: bl.subscribe}, "127.0.0.1:0")
		c := newClient(t, a)
		idle := make(chan error, 8)
		o := StreamOptions{OnReconnect: func(err error, _ time.Duration) { idle <- err }}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Events(ctx, o, func(wire.Event) error { return nil }) }()
		select {
		case err := <-idle:
			if !errors.Is(err, errStreamIdle) {
				t.Fatalf("reconnect reason %v", err)
			}
		case <-time.After(guard):
			t.Fatal("a silent stream was never dropped")
		}
		cancel()
		<-done
	})
	t.Run("AWrongTokenStopsAtOnce", func(t *testing.T) {
		a := startAgent(t, &apitest.Backend{}, "127.0.0.1:0")
		c := New(a.url, strings.Repeat("e", 64))
		defer c.Close()
		err := c.Events(context.Background(), StreamOptions{}, func(wire.Event) error { return nil })
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusForbidden {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("ItKeepsTryingWhileTheAgentIsDown", func(t *testing.T) {
		shortReconnects(t)
		c := New("http://127.0.0.1:1", testToken)
		defer c.Close()
		tries := make(chan struct{}, 16)
		o := StreamOptions{OnReconnect: func(error, time.Duration) {
			select {
			case tries <- struct{}{}:
			default:
			}
		}}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Events(ctx, o, func(wire.Event) error { return nil }) }()
		for range 3 {
			select {
			case <-tries:
			case <-time.After(guard):
				t.Fatal("no retry")
			}
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("FailFastReturnsAtOnceWhenNoAgentListens", func(t *testing.T) {
		c := New("http://"+deadAddr(t), testToken)
		defer c.Close()
		tried := false
		o := StreamOptions{FailFast: true, OnReconnect: func(error, time.Duration) { tried = true }}
		err := c.Events(context.Background(), o, func(wire.Event) error { return nil })
		if !IsNoAgent(err) {
			t.Fatalf("err = %v, want a NoAgentError", err)
		}
		if tried {
			t.Fatal("FailFast retried")
		}
	})
	t.Run("GiveUpAfterEndsTheReconnectsOnceTheAgentIsGone", func(t *testing.T) {
		shortReconnects(t)
		bl := &backlog{events: []wire.Event{stateEvent(1, "a")}}
		a := startAgent(t, &apitest.Backend{SubscribeFunc: bl.subscribe}, "127.0.0.1:0")
		c := newClient(t, a)
		o := StreamOptions{FailFast: true, GiveUpAfter: 300 * time.Millisecond}
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		err := c.Events(ctx, o, func(e wire.Event) error {
			a.stop() // the agent goes away mid-follow and does not come back
			return nil
		})
		if !IsNoAgent(err) || ctx.Err() != nil {
			t.Fatalf("err = %v (ctx %v), want the agent given up on", err, ctx.Err())
		}
	})
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func waitID(t *testing.T, got <-chan int64, want int64) {
	t.Helper()
	select {
	case id := <-got:
		if id != want {
			t.Fatalf("event %d, want %d", id, want)
		}
	case <-time.After(guard):
		t.Fatalf("event %d never came", want)
	}
}
