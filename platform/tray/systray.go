//go:build !darwin || cgo

package tray

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"fyne.io/systray"
)

// maxSlots is how many component lines the menu holds; beyond it the last
// line says how many more there are.
const maxSlots = 24

// runTray runs the systray library's loop on the calling goroutine (macOS
// wants the main thread) until ctx is done, Quit is clicked, or the
// session bus goes away. The systray library can run once per process.
func runTray(ctx context.Context, c *controller, s *session, log *slog.Logger) (err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	v := &trayView{log: log}
	c.view = v

	var (
		mu      sync.Mutex
		stopped bool
		wg      sync.WaitGroup
		busErr  error
	)
	onReady := func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		v.build()
		wg.Add(4)
		go func() { defer wg.Done(); c.run(ctx) }()
		go func() {
			defer wg.Done()
			if s.whenItemLive(ctx, v.probe) {
				v.reapply()
			}
		}()
		go func() { defer wg.Done(); v.clicks(ctx, c, cancel) }()
		go func() {
			defer wg.Done()
			select {
			case <-ctx.Done():
			case <-s.done():
				mu.Lock()
				busErr = errors.New("the session bus closed")
				mu.Unlock()
				log.Warn("the session bus closed; the tray stops")
			}
			systray.Quit()
		}()
	}
	defer func() {
		// The library panics on some bus failures (a Quit after it could
		// not connect): the tray reports it instead of crashing.
		if r := recover(); r != nil {
			err = fmt.Errorf("tray: %v", r)
		}
		mu.Lock()
		stopped = true
		mu.Unlock()
		cancel()
		wg.Wait()
		mu.Lock()
		if err == nil {
			err = busErr
		}
		mu.Unlock()
	}()
	systray.SetTitle("rouse")
	systray.SetIcon(Icon(LookOffline))
	systray.SetTooltip("connecting to the agent…")
	log.Info("tray started")
	systray.Run(onReady, cancel)
	return nil
}

// trayView is the View over the systray library's global menu.
type trayView struct {
	mu     sync.Mutex // Show and the start-up reapply
	log    *slog.Logger
	broken bool // the library panicked: its bus is gone, stop calling it

	header  *systray.MenuItem
	slots   [maxSlots]*systray.MenuItem
	recover *systray.MenuItem
	open    *systray.MenuItem
	quit    *systray.MenuItem

	// last shown, to send only what changed over D-Bus
	shown   bool
	last    Model
	labels  [maxSlots]string
	visible [maxSlots]bool
}

func (v *trayView) build() {
	v.header = systray.AddMenuItem("Connecting to the agent…", "")
	v.header.Disable()
	for i := range v.slots {
		it := systray.AddMenuItem("", "")
		it.Disable()
		it.Hide()
		v.slots[i] = it
	}
	systray.AddSeparator()
	v.recover = systray.AddMenuItem("Recover now", "Restore every component now, as after a wake")
	v.recover.Disable()
	v.open = systray.AddMenuItem("Open dashboard", "Open the dashboard in the browser, logged in")
	v.open.Disable()
	systray.AddSeparator()
	v.quit = systray.AddMenuItem("Quit", "Remove the icon (the agent keeps running)")
}

func (v *trayView) clicks(ctx context.Context, c *controller, quit func()) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-v.recover.ClickedCh:
			c.request(actRecover)
		case <-v.open.ClickedCh:
			c.request(actOpen)
		case <-v.quit.ClickedCh:
			quit()
			return
		}
	}
}

// probe re-sets the tooltip, which makes the library emit NewToolTip once
// its item is exported.
func (v *trayView) probe() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.safely(func() { systray.SetTooltip(v.last.Tooltip) })
}

// safely calls the library, which panics when its bus connection is gone
// (SetIcon): the tray then stops updating and ends when the session
// bus's loss is noticed, instead of crashing. Call with mu held.
func (v *trayView) safely(f func()) {
	if v.broken {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			v.broken = true
			v.log.Warn("the tray lost its bus connection", "err", r)
		}
	}()
	f()
}

// reapply sets the icon and tooltip again once the item is exported, in
// case a Show raced with the export (see whenItemLive).
func (v *trayView) reapply() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.shown {
		return
	}
	v.safely(func() {
		systray.SetIcon(Icon(v.last.Look))
		systray.SetTooltip(v.last.Tooltip)
	})
}

// Show implements View.
func (v *trayView) Show(m Model) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.safely(func() { v.show(m) })
}

func (v *trayView) show(m Model) {
	first := !v.shown
	v.shown = true
	if first || m.Look != v.last.Look {
		systray.SetIcon(Icon(m.Look))
	}
	if first || m.Tooltip != v.last.Tooltip {
		systray.SetTooltip(m.Tooltip)
	}
	if first || m.Header != v.last.Header {
		v.header.SetTitle(m.Header)
	}
	for i, it := range v.slots {
		label, vis := "", false
		switch {
		case i < len(m.Components) && (i < maxSlots-1 || len(m.Components) == maxSlots):
			label, vis = m.Components[i].Label, true
		case i == maxSlots-1 && len(m.Components) > maxSlots:
			label, vis = fmt.Sprintf("… and %d more (rouse status)", len(m.Components)-maxSlots+1), true
		}
		if label != v.labels[i] {
			it.SetTitle(label)
			v.labels[i] = label
		}
		if vis != v.visible[i] {
			if vis {
				it.Show()
			} else {
				it.Hide()
			}
			v.visible[i] = vis
		}
	}
	setEnabled(v.recover, m.CanRecover, first || m.CanRecover != v.last.CanRecover)
	setEnabled(v.open, m.CanOpen, first || m.CanOpen != v.last.CanOpen)
	v.last = m
}

func setEnabled(it *systray.MenuItem, on, changed bool) {
	if !changed {
		return
	}
	if on {
		it.Enable()
	} else {
		it.Disable()
	}
}
