package tray

import (
	"fmt"
	"strings"
	"time"

	"github.com/rouse-dev/rouse/wire"
)

// Look is what the icon shows.
type Look int

// The looks, one icon each.
const (
	LookOffline    Look = iota // no agent (yet): a grey ring
	LookReady                  // every active component ready: green
	LookRecovering             // a restore is under way, or components are starting: amber
	LookDegraded               // a component missed its deadline and keeps trying: orange
	LookFailed                 // a component (or the store) failed: red
	LookAsleep                 // the machine is going to sleep or asleep: grey
	numLooks
)

var lookNames = [numLooks]string{"offline", "ready", "recovering", "degraded", "failed", "asleep"}

func (l Look) String() string {
	if l < 0 || l >= numLooks {
		return fmt.Sprintf("Look(%d)", int(l))
	}
	return lookNames[l]
}

// Reach is how well the tray is in touch with the agent.
type Reach int

const (
	// ReachOK: the last health read succeeded and nothing failed since.
	ReachOK Reach = iota
	// ReachQuiet: contact lost (or not made yet) less than the grace
	// period ago: the tray keeps showing what it last knew, without noise.
	ReachQuiet
	// ReachLost: contact lost for longer than the grace period.
	ReachLost
)

// Input is everything the tray's display depends on.
type Input struct {
	// Health is the last health read, nil before the first.
	Health *wire.Health
	// Phase is the last wake phase seen on the event stream, "" when none
	// was seen.
	Phase wire.WakePhase
	// Pending and Total are the restore progress from "restoring" events.
	Pending, Total int
	Reach          Reach
	Now            time.Time
	// Agent is the agent's URL, named when it cannot be reached.
	Agent string
	// WakeBy is how the restore under way was detected ("logind",
	// "manual", "boot", ...), "" when unknown: after a real wake the
	// components still starting are "Reconnecting NAME…".
	WakeBy string
}

// Model is what the tray shows: a function of Input only.
type Model struct {
	Look    Look
	Tooltip string // one line
	Header  string // the menu's first, disabled line
	// Components are the menu's component lines, in the agent's order.
	Components []Entry
	// CanRecover enables "Recover now": the agent answers and is neither
	// asleep nor already restoring.
	CanRecover bool
	// CanOpen enables "Open dashboard": the agent answers.
	CanOpen bool
}

// Entry is one component line of the menu.
type Entry struct {
	Name  string
	State string
	Label string // "tunnel: ready"
}

// Build turns what the tray knows into what it shows.
func Build(in Input) Model {
	var m Model
	if in.Health != nil {
		for _, s := range in.Health.Components {
			label := s.Name + ": " + stateLabel(s.State)
			if s.State == "waiting" && strings.HasPrefix(s.LastError, "waiting for ") {
				label = s.Name + ": " + s.LastError // what it waits for, e.g. the user
			}
			m.Components = append(m.Components, Entry{Name: s.Name, State: s.State, Label: label})
		}
	}
	switch {
	case in.Reach == ReachLost:
		m.Look = LookOffline
		m.Tooltip = "cannot reach the agent at " + in.Agent + " · is it running? (rouse service start)"
		m.Header = "Agent not reachable"
		for i := range m.Components {
			m.Components[i].Label += " (last known)"
		}
		return m
	case in.Health == nil:
		m.Look = LookOffline
		m.Tooltip = "connecting to the agent…"
		m.Header = "Connecting to the agent…"
		return m
	}
	h := in.Health
	m.CanOpen = in.Reach == ReachOK

	var active, ready, failed, degraded, starting int
	for _, s := range h.Components {
		if s.State == "stopped" || s.State == "idle" || s.Desired == "stopped" {
			continue // stopped by the user, or on demand and not needed now
		}
		active++
		switch s.State {
		case "ready", "catching_up":
			ready++
		case "failed":
			failed++
		case "degraded", "unhealthy":
			degraded++
		case "starting", "waiting":
			starting++
		}
	}
	asleep := h.Asleep || in.Phase == wire.PhaseSleeping || in.Phase == wire.PhaseAsleep
	restoring := !asleep && (h.Waking || in.Phase == wire.PhaseWaking || in.Phase == wire.PhaseRestoring)
	counts := fmt.Sprintf("%d/%d ready", ready, active)

	switch {
	case asleep:
		m.Look = LookAsleep
		m.Header = "rouse: asleep"
		m.Tooltip = "asleep · " + counts + " before sleep"
		return m
	case restoring:
		m.Look = LookRecovering
		m.Header = "rouse: recovering"
		parts := []string{"recovering"}
		if rc := reconnecting(h, in.WakeBy); len(rc) > 0 {
			// Quietly: the tooltip and the menu say it, no notification.
			parts[0] = "Reconnecting " + strings.Join(rc, ", ") + "…"
			for i := range m.Components {
				if m.Components[i].State == "starting" {
					m.Components[i].Label = m.Components[i].Name + ": reconnecting…"
				}
			}
		}
		if in.Total > 0 && in.Phase == wire.PhaseRestoring {
			parts = append(parts, fmt.Sprintf("%d/%d restored", in.Total-in.Pending, in.Total))
		} else {
			parts = append(parts, counts)
		}
		if w := h.LastWake; w != nil && !w.WokeAt.IsZero() && w.DetectedBy != "boot" {
			parts = append(parts, "woke "+ago(in.Now, w.WokeAt))
		}
		m.Tooltip = strings.Join(parts, " · ")
		m.CanOpen = in.Reach == ReachOK
		return m
	case failed > 0 || h.Store.State == wire.StoreError || h.Status == wire.StatusError:
		m.Look = LookFailed
		m.Header = "rouse: failed"
	case degraded > 0 || h.Status == wire.StatusDegraded:
		m.Look = LookDegraded
		m.Header = "rouse: degraded"
	case starting > 0 || h.Status == wire.StatusStarting || h.Store.State == "reopening":
		m.Look = LookRecovering
		m.Header = "rouse: starting"
	default:
		m.Look = LookReady
		m.Header = "rouse: all ready"
	}
	m.CanRecover = in.Reach == ReachOK

	parts := []string{}
	if h.Store.State == wire.StoreError {
		parts = append(parts, "store error")
	}
	parts = append(parts, counts)
	if w := h.LastWake; w != nil && !w.WokeAt.IsZero() {
		verb := "woke "
		if w.DetectedBy == "boot" {
			verb = "started "
		}
		parts = append(parts, verb+ago(in.Now, w.WokeAt))
		if w.Done {
			rec := "recovered in " + Seconds(time.Duration(w.Restore.DurationMS)*time.Millisecond)
			if w.Restore.TimedOut > 0 {
				rec += fmt.Sprintf(", %d timed out", w.Restore.TimedOut)
			}
			if w.Restore.Failed > 0 {
				rec += fmt.Sprintf(", %d failed", w.Restore.Failed)
			}
			parts = append(parts, rec)
		}
	}
	m.Tooltip = strings.Join(parts, " · ")
	return m
}

// reconnecting names the active components still starting during the
// restore after a real wake (not the boot restore).
func reconnecting(h *wire.Health, wakeBy string) []string {
	if wakeBy == "" || wakeBy == "boot" {
		return nil
	}
	var out []string
	for _, s := range h.Components {
		if s.State == "starting" && s.Desired != "stopped" {
			out = append(out, s.Name)
		}
	}
	if len(out) > 3 {
		out = append(out[:3:3], fmt.Sprintf("and %d more", len(out)-3))
	}
	return out
}

func stateLabel(s string) string {
	if s == "catching_up" {
		return "catching up"
	}
	return s
}

// ago is a short relative time: "12 s ago", "2 min ago", "3 h ago", or a
// date. Both times are compared on the wall clock.
func ago(now, t time.Time) string {
	d := now.Round(0).Sub(t.Round(0))
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%d s ago", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d/time.Hour))
	}
	return "on " + t.Local().Format("Jan 2")
}

// Seconds is a short duration for people: "350 ms", "1.3 s", "42 s",
// "2 min 5 s", "3 h 10 min".
func Seconds(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Round(time.Second)/time.Second))
	}
	if d < time.Hour {
		d = d.Round(time.Second)
		return fmt.Sprintf("%d min %d s", int(d/time.Minute), int(d%time.Minute/time.Second))
	}
	d = d.Round(time.Minute)
	return fmt.Sprintf("%d h %d min", int(d/time.Hour), int(d%time.Hour/time.Minute))
}

// Alert is a desktop notification.
type Alert struct {
	Title string
	Body  string
}

// alertFor decides whether a finished restore deserves a notification:
// only when it missed its deadline (a component timed out or failed).
func alertFor(w *wire.Wake) (Alert, bool) {
	if w == nil || !w.Done || w.Restore.TimedOut+w.Restore.Failed == 0 {
		return Alert{}, false
	}
	var timedOut, failed []string
	for _, c := range w.Components {
		switch c.State {
		case "ready", "catching_up", "stopped":
		case "failed":
			failed = append(failed, c.Name)
		default:
			timedOut = append(timedOut, c.Name)
		}
	}
	var what []string
	if w.Restore.TimedOut > 0 {
		what = append(what, fmt.Sprintf("%d timed out%s", w.Restore.TimedOut, names(timedOut)))
	}
	if w.Restore.Failed > 0 {
		what = append(what, fmt.Sprintf("%d failed%s", w.Restore.Failed, names(failed)))
	}
	after := "After the wake"
	switch {
	case w.DetectedBy == "manual":
		after = "During a manual recovery"
	case w.DetectedBy == "boot":
		after = "At start"
	case w.SleptSeconds > 0:
		after = "After " + Seconds(time.Duration(w.SleptSeconds*float64(time.Second))) + " asleep"
	}
	return Alert{
		Title: "rouse: recovery missed its deadline",
		Body: fmt.Sprintf("%s, %d of %d components were ready in %s; %s. They keep retrying in the background.",
			after, w.Restore.Ready, w.Restore.Ready+w.Restore.TimedOut+w.Restore.Failed,
			Seconds(time.Duration(w.Restore.DurationMS)*time.Millisecond), strings.Join(what, ", ")),
	}, true
}

func names(ns []string) string {
	if len(ns) == 0 {
		return ""
	}
	if len(ns) > 3 {
		ns = append(ns[:3:3], "…")
	}
	return " (" + strings.Join(ns, ", ") + ")"
}
