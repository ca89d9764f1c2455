package tray

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/rouse-dev/rouse/client"
	"github.com/rouse-dev/rouse/internal/backoff"
	"github.com/rouse-dev/rouse/wire"
)

// Agent is what the tray needs from the agent's API; *client.Client
// provides it through ClientAgent.
type Agent interface {
	// BaseURL is the agent's URL, named in messages.
	BaseURL() string
	Health(ctx context.Context) (wire.Health, error)
	Wake(ctx context.Context) (wire.Wake, error)
	LoginCode(ctx context.Context) (wire.LoginCode, error)
	// Follow streams events to fn until ctx is done or an error retrying
	// cannot fix (a refused token). It reconnects by itself, calling
	// connected each time the stream is live and lost each time it breaks.
	Follow(ctx context.Context, fn func(wire.Event) error, connected func(), lost func(error)) error
}

// ClientAgent adapts an API client to Agent.
func ClientAgent(c *client.Client) Agent { return clientAgent{c} }

type clientAgent struct{ *client.Client }

// Follow passes its hooks with this one stream, so a client shared with
// other code keeps its own.
func (a clientAgent) Follow(ctx context.Context, fn func(wire.Event) error, connected func(), lost func(error)) error {
	return a.Events(ctx, client.StreamOptions{
		OnConnect:   connected,
		OnReconnect: func(err error, _ time.Duration) { lost(err) },
	}, fn)
}

// View shows a Model. The controller calls Show from one goroutine only.
type View interface {
	Show(Model)
}

// Tuning; vars so tests can read them.
var (
	// DefaultGrace is how long a lost agent stays unreported: the time it
	// takes an agent to restart, or a stream to come back after a wake.
	DefaultGrace = 60 * time.Second
	// debounce merges a burst of events into one health read.
	debounce = 150 * time.Millisecond
	// retick re-renders relative times ("woke 2 min ago") while idle.
	retick = time.Minute
	// callTimeout bounds one API call.
	callTimeout = 10 * time.Second
	// redialInitial and redialMax pace new attempts (full jitter) to reach an agent
	// whose token could not be read or was refused (it re-reads the token).
	redialInitial = time.Second
	redialMax     = 30 * time.Second
)

// controller follows the agent and drives a View. All its state is owned
// by the run goroutine; follow feeds it through msgs, clicks through
// actions.
type controller struct {
	dial   func() (Agent, error)
	view   View
	notify func(Alert) error
	open   func(url string) error
	log    *slog.Logger
	grace  time.Duration

	msgs    chan msg
	actions chan action
}

type msgKind int

const (
	msgDialed msgKind = iota
	msgConnected
	msgLost
	msgEvent
)

type msg struct {
	kind  msgKind
	agent Agent
	err   error
	ev    wire.Event
}

type action int

const (
	actRecover action = iota
	actOpen
)

func newController(dial func() (Agent, error), view View, notify func(Alert) error, open func(string) error, log *slog.Logger, grace time.Duration) *controller {
	return &controller{
		dial: dial, view: view, notify: notify, open: open, log: log, grace: grace,
		msgs:    make(chan msg, 64),
		actions: make(chan action, 4),
	}
}

// request queues a click; a click while the queue is full is dropped.
func (c *controller) request(a action) {
	select {
	case c.actions <- a:
	default:
	}
}

func (c *controller) send(ctx context.Context, m msg) error {
	select {
	case c.msgs <- m:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// follow dials the agent and follows its events until ctx is done. It
// returns only then.
func (c *controller) follow(ctx context.Context) {
	wait := backoff.Retry{Policy: backoff.Policy{Initial: redialInitial, Max: redialMax}}
	for {
		a, err := c.dial()
		if err == nil {
			_ = c.send(ctx, msg{kind: msgDialed, agent: a})
			err = a.Follow(ctx,
				func(ev wire.Event) error { return c.send(ctx, msg{kind: msgEvent, ev: ev}) },
				func() { wait.Reset(); _ = c.send(ctx, msg{kind: msgConnected}) },
				func(err error) { _ = c.send(ctx, msg{kind: msgLost, err: err}) })
		}
		if ctx.Err() != nil {
			return
		}
		_ = c.send(ctx, msg{kind: msgLost, err: err})
		if backoff.Sleep(ctx, wait.Next()) != nil {
			return
		}
	}
}

// loopState is what the run loop knows.
type loopState struct {
	agent   Agent
	health  *wire.Health
	phase   wire.WakePhase
	wakeBy  string // how the wake under way was detected
	pending int
	total   int
	contact bool
	lostAt  time.Time // monotonic: a suspend does not eat the grace period
	lostErr error
	noisy   bool  // "cannot reach" was said
	alerted int64 // newest wake alerted
}

// run drives the view until ctx is done. It owns follow's goroutine.
func (c *controller) run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); c.follow(ctx) }()
	defer func() { cancel(); <-done }()

	s := &loopState{lostAt: time.Now()}
	grace := time.NewTimer(c.grace)
	defer grace.Stop()
	tick := time.NewTicker(retick)
	defer tick.Stop()
	var settle *time.Timer
	var settleC <-chan time.Time
	defer func() {
		if settle != nil {
			settle.Stop()
		}
	}()
	c.render(s)

	lose := func(err error) {
		s.lostErr = err
		if !s.contact {
			return
		}
		s.contact = false
		s.lostAt = time.Now()
		grace.Reset(c.grace)
		c.log.Debug("lost contact with the agent", "err", err)
	}
	refresh := func() {
		if s.agent == nil {
			return
		}
		hctx, hcancel := context.WithTimeout(ctx, callTimeout)
		h, err := s.agent.Health(hctx)
		hcancel()
		if err != nil {
			if ctx.Err() == nil {
				lose(err)
				c.render(s)
			}
			return
		}
		s.health = &h
		if !s.contact {
			s.contact = true
			grace.Stop()
			if s.noisy {
				c.log.Info("agent reachable again", "agent", s.agent.BaseURL())
				s.noisy = false
			}
		}
		c.render(s)
	}

	for {
		select {
		case <-ctx.Done():
			return
		case m := <-c.msgs:
			switch m.kind {
			case msgDialed:
				s.agent = m.agent
			case msgConnected:
				// A new stream: the health read is the truth now, and
				// replayed events follow it.
				s.phase = ""
				refresh()
			case msgLost:
				lose(m.err)
			case msgEvent:
				c.onEvent(s, m.ev)
				if settle == nil {
					settle = time.NewTimer(debounce)
				} else {
					settle.Reset(debounce)
				}
				settleC = settle.C
			}
		case <-settleC:
			settleC = nil
			refresh()
		case <-grace.C:
			if !s.contact && !s.noisy {
				s.noisy = true
				url := "the agent"
				if s.agent != nil {
					url = s.agent.BaseURL()
				}
				c.log.Warn("cannot reach the agent; is it running? (rouse service start)", "agent", url, "err", s.lostErr)
			}
			c.render(s)
		case <-tick.C:
			c.render(s)
		case a := <-c.actions:
			c.act(ctx, s, a)
		}
	}
}

// onEvent follows wake phases and alerts on a restore that missed its
// deadline. Any event also triggers a health read (debounced by run).
func (c *controller) onEvent(s *loopState, ev wire.Event) {
	if ev.Type != wire.EventWake || ev.Wake == nil {
		return
	}
	s.phase = ev.Wake.Phase
	if ev.Wake.Phase == wire.PhaseWaking && ev.Wake.Wake != nil {
		s.wakeBy = ev.Wake.Wake.DetectedBy
	}
	if ev.Wake.Phase == wire.PhaseRestoring || ev.Wake.Phase == wire.PhaseDone {
		s.pending, s.total = ev.Wake.Pending, ev.Wake.Total
	}
	if ev.Wake.Phase != wire.PhaseDone || ev.Wake.Wake == nil || ev.Wake.Wake.ID <= s.alerted {
		return
	}
	al, ok := alertFor(ev.Wake.Wake)
	if !ok {
		return
	}
	s.alerted = ev.Wake.Wake.ID
	c.log.Warn("recovery missed its deadline", "wake", ev.Wake.Wake.ID,
		"timed_out", ev.Wake.Wake.Restore.TimedOut, "failed", ev.Wake.Wake.Restore.Failed)
	if err := c.notify(al); err != nil {
		c.log.Debug("no desktop notification; the icon shows it", "err", err)
	}
}

func (c *controller) act(ctx context.Context, s *loopState, a action) {
	if s.agent == nil || !s.contact {
		c.log.Warn("the agent is not reachable; try again when the icon is no longer grey")
		return
	}
	actx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	switch a {
	case actRecover:
		w, err := s.agent.Wake(actx)
		if err != nil {
			c.log.Warn("recover now failed", "err", err)
			return
		}
		c.log.Info("recovery started", "wake", w.ID)
	case actOpen:
		l, err := s.agent.LoginCode(actx)
		if err != nil {
			c.log.Warn("cannot get a dashboard login", "err", err)
			return
		}
		if err := c.open(l.URL); err != nil {
			c.log.Warn("cannot open the dashboard; run: rouse open", "err", err)
		}
	}
}

func (c *controller) render(s *loopState) {
	in := Input{Health: s.health, Phase: s.phase, Pending: s.pending, Total: s.total, Now: time.Now(), WakeBy: s.wakeBy}
	switch {
	case s.contact:
		in.Reach = ReachOK
	case time.Since(s.lostAt) < c.grace && !s.noisy:
		in.Reach = ReachQuiet
	default:
		in.Reach = ReachLost
	}
	if s.agent != nil {
		in.Agent = s.agent.BaseURL()
	}
	c.view.Show(Build(in))
}

// errNoNotifications: this desktop has no notification service.
var errNoNotifications = errors.New("no notification service")
