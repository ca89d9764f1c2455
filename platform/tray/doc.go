// Package tray owns rouse's desktop status icon, run as `rouse tray`: a
// separate per-user process that is only a client of the agent's REST API
// (never part of the service). It shows one of five looks — ready,
// recovering, degraded, failed, asleep (and a grey ring while the agent
// cannot be reached) — a one-line tooltip ("4/5 ready · woke 2 min ago ·
// recovered in 1.3 s") and a menu listing every component with its state,
// plus Recover now (POST /api/v1/wake), Open dashboard (a one-time login
// URL handed to the desktop's opener) and Quit.
//
// Shape: Build is a pure function from what the tray knows (last health,
// last wake phase, reachability, time) to a Model, table-tested; the
// controller follows /api/v1/events (reconnecting), re-reads
// /api/v1/health on connect and after any event (bursts merged by a short
// debounce), and hands Models to a View; the systray adapter (fyne.io/systray,
// StatusNotifierItem + dbusmenu over D-Bus on Linux) is the View.
//
// Decisions, written down:
//   - Quiet reconnects: when the agent cannot be reached (not started yet,
//     restarting, a stream cut by a wake), the tray keeps showing what it
//     last knew for a grace period (60 s, measured on the monotonic clock,
//     which stops during suspend, so sleeping does not use it up). Only then
//     does it log one warning and show the grey ring; one info line says
//     when the agent is back.
//   - Alerts: a desktop notification (org.freedesktop.Notifications) only
//     when a restore finishes having missed its deadline (a wake "done"
//     event with timed_out > 0 or failed > 0), once per wake; without a
//     notification service, and outside Linux, the icon alone says it.
//   - Before touching the systray library, the tray opens its own
//     connection to the session bus without auto-starting one (the library
//     would spawn dbus-launch, leaving a stray bus daemon, and panics on
//     Quit when it could not connect). No session bus: a clear error, exit 1.
//     No org.kde.StatusNotifierWatcher (no tray host): it says so once and
//     waits for NameOwnerChanged. The session bus going away ends the tray
//     with an error (the desktop session is ending).
//   - The menu has a fixed set of component lines, made once and shown or
//     hidden as components come and go (the library appends new items at
//     the end, after Quit, and rebuilding its menu races with hosts reading
//     it); past 24 components the last line says how many more there are.
//   - Library defects worked around: SetIcon panics once its bus is gone
//     (recovered; the tray stops updating and ends on the bus loss it
//     notices itself); a tooltip or icon set while the library exports the
//     item is lost (the view re-applies both once the item emits
//     NewToolTip). Its property setters also race with hosts reading them
//     (godbus prop, its menu refresh): harmless in practice, and the adapter
//     test logs such races instead of failing on them, but fails on any race
//     with a frame of ours.
//   - The library fixes the item's Status to "Active" (it has no setter for
//     NeedsAttention): the icon's colour carries the state.
//   - Relative times in the tooltip are re-rendered once a minute from the
//     last health read; no polling of the agent — the event stream says
//     when to read again.
//   - A Dial that fails (no token file yet) or an agent that refuses the
//     token is retried with backoff (1 s to 30 s), re-reading the token, so
//     the tray can start at login before the agent's first run.
//   - macOS needs a cgo build (the library calls AppKit); a build without
//     cgo says so at `rouse tray`.
package tray
