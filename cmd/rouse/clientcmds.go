package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/rouse-dev/rouse/client"
	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/wire"
)

// newClient builds an API client from the same config, data dir and
// listen address the agent would use.
func (g *globals) newClient() (*client.Client, error) {
	cfg, _, err := g.loadConfig()
	if err != nil {
		return nil, err
	}
	dataDir, err := g.dataDir(cfg.Data)
	if err != nil {
		return nil, err
	}
	return client.FromEnv(g.listenAddr(cfg.Listen), dataDir)
}

// colour paints s on a terminal only.
type painter struct{ on bool }

func newPainter(w io.Writer) painter {
	f, ok := w.(*os.File)
	return painter{on: ok && isatty.IsTerminal(f.Fd()) && os.Getenv("NO_COLOR") == ""}
}

func (p painter) state(s string) string {
	if !p.on {
		return s
	}
	code := "0"
	switch s {
	case "ready":
		code = "32"
	case "catching_up", "starting", "waiting":
		code = "33"
	case "degraded", "failed", "unhealthy":
		code = "31"
	case "stopped", "paused", "idle":
		code = "90"
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return t.Local().Format("2006-01-02 15:04")
}

func newStatusCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [NAME]",
		Short: "Show every component's state, or one in full (exit 0 when all is well, 1 otherwise)",
		Long: `Show every component's state: attempts, restarts, next try and last error.
With NAME, show that component in full: its last exit and the last lines of
its output. Exit 0 when all is well (or NAME is ready, or idle on demand and
listening), 1 otherwise.`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: g.completeComponents,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient()
			if err != nil {
				return err
			}
			if len(args) == 1 {
				s, err := answered(cmd.Context(), c, c.Service, args[0])
				if err != nil {
					return err
				}
				if asJSON {
					enc := json.NewEncoder(cmd.OutOrStdout())
					enc.SetIndent("", "  ")
					return enc.Encode(s)
				}
				printService(cmd.OutOrStdout(), s)
				if !serviceWell(s) {
					return codeError{1}
				}
				return nil
			}
			h, err := answered0(cmd.Context(), c, c.Health)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(h); err != nil {
					return err
				}
			} else {
				printStatus(out, h)
			}
			if h.Status != wire.StatusOK {
				return codeError{1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the health document as JSON (for scripts)")
	return cmd
}

// serviceWell is whether `rouse status NAME` exits 0: the component is
// ready, or idle (an on-demand chain not running, as the whole status
// counts it: not a problem) unless its entry point cannot listen.
func serviceWell(s wire.Service) bool {
	switch s.State {
	case "ready", "catching_up":
		return true
	case "idle":
		return s.OnDemandError == ""
	}
	return false
}

func printStatus(out io.Writer, h wire.Health) {
	p := newPainter(out)
	ready, idle := 0, 0
	for _, s := range h.Components {
		switch s.State {
		case "ready", "catching_up":
			ready++
		case "idle":
			idle++ // an on-demand component nobody needs now
		}
	}
	fmt.Fprintf(out, "rouse %s: %s · %d/%d ready", h.Version, h.Status, ready, len(h.Components)-idle)
	if idle > 0 {
		fmt.Fprintf(out, " · %d idle (on demand)", idle)
	}
	fmt.Fprintf(out, " · store %s", h.Store.State)
	if h.LastWake != nil {
		fmt.Fprintf(out, " · last wake %s (%s), recovered in %s", ago(h.LastWake.WokeAt), h.LastWake.DetectedBy,
			humanDuration(time.Duration(h.LastWake.Restore.DurationMS)*time.Millisecond))
	}
	fmt.Fprintln(out)
	if h.Config.Error != "" {
		fmt.Fprintf(out, "config edit rejected: %s\n", h.Config.Error)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tSTATE\tSINCE\tATTEMPTS\tRESTARTS\tNOTE")
	for _, s := range h.Components {
		note := serviceNote(s)
		if len(note) > 80 {
			note = note[:77] + "..."
		}
		// Pad before painting so the escape codes do not skew the columns.
		st := p.state(fmt.Sprintf("%-11s", s.State))
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", s.Name, s.Kind, st, ago(s.Since), s.Attempts, s.Restarts, note)
	}
	tw.Flush()
}

// serviceNote is the NOTE column: why it is blocked, when it tries
// next, and its last error.
func serviceNote(s wire.Service) string {
	if s.Blocked != "" {
		return s.Blocked
	}
	if s.OnDemandError != "" {
		return "on demand, not listening: " + s.OnDemandError
	}
	if s.OnDemand != "" && s.State == "idle" {
		return "starts on demand: " + s.OnDemand
	}
	if len(s.Chains) > 0 && s.State == "idle" {
		return "starts with the chain of " + strings.Join(s.Chains, ", ")
	}
	note := s.LastError
	if s.NextRetryAt != nil {
		note = fmt.Sprintf("next try in %s: %s", humanDuration(max(0, time.Until(*s.NextRetryAt)).Round(time.Second)), note)
	}
	return note
}

// printService is `rouse status NAME`: one component in full, with the
// last lines of its output.
func printService(out io.Writer, s wire.Service) {
	p := newPainter(out)
	fmt.Fprintf(out, "%s (%s): %s since %s\n", s.Name, s.Kind, p.state(s.State), ago(s.Since))
	if s.Desired == "stopped" {
		fmt.Fprintln(out, "  stopped by the user; start it with: rouse start "+s.Name)
	}
	if s.Blocked != "" {
		fmt.Fprintln(out, "  "+s.Blocked)
	}
	needs := slices.Clone(s.DependsOn)
	for _, o := range s.Optional {
		needs = append(needs, o+" (optional)")
	}
	if len(needs) > 0 {
		fmt.Fprintf(out, "  needs: %s\n", strings.Join(needs, ", "))
	}
	switch {
	case s.OnDemandError != "":
		fmt.Fprintf(out, "  on demand: %s, NOT listening (trying again): %s\n", s.OnDemand, s.OnDemandError)
	case s.OnDemand != "" && s.State == "idle":
		fmt.Fprintf(out, "  on demand: %s (the first connection there, or rouse start %s, starts it)\n", s.OnDemand, s.Name)
	case s.OnDemand != "":
		fmt.Fprintf(out, "  on demand: %s\n", s.OnDemand)
	}
	switch chains := strings.Join(s.Chains, ", "); {
	case chains == "":
	case s.StartsOnDemand:
		fmt.Fprintf(out, "  on demand: part of the chain of %s (it runs while one of them needs it)\n", chains)
	default:
		fmt.Fprintf(out, "  part of the on-demand chain of %s (it runs all the time: a component that does not start on demand needs it too)\n", chains)
	}
	fmt.Fprintf(out, "  attempts: %d · restarts: %d\n", s.Attempts, s.Restarts)
	switch {
	case s.StartLimited:
		fmt.Fprintf(out, "  next try: none (start limit hit; a wake, a config change or rouse start %s tries again)\n", s.Name)
	case s.NextRetryAt != nil:
		fmt.Fprintf(out, "  next try: in %s\n", humanDuration(max(0, time.Until(*s.NextRetryAt)).Round(time.Second)))
	}
	if s.LastExit != nil {
		how := "stopped"
		if s.LastExit.Error != "" {
			how = s.LastExit.Error
		}
		fmt.Fprintf(out, "  last exit: %s, %s\n", ago(s.LastExit.At), how)
	}
	if s.LastError != "" && s.Blocked == "" {
		fmt.Fprintf(out, "  last error: %s\n", s.LastError)
	}
	if h := s.Health; h != nil {
		fmt.Fprintf(out, "  health: %s every %s (timeout %s, unhealthy after %d failures in a row",
			h.Check, time.Duration(h.IntervalMS)*time.Millisecond, time.Duration(h.TimeoutMS)*time.Millisecond, h.Retries)
		if h.StartPeriodMS > 0 {
			fmt.Fprintf(out, ", first after %s", time.Duration(h.StartPeriodMS)*time.Millisecond)
		}
		fmt.Fprintln(out, ")")
		if h.LastCheck != nil {
			fmt.Fprintf(out, "    last check: %s, %s · failures in a row: %d · health restarts: %d\n", ago(*h.LastCheck), h.LastResult, h.Failures, h.Restarts)
		} else {
			fmt.Fprintf(out, "    no check yet · health restarts: %d\n", h.Restarts)
		}
		if h.LastOutput != "" {
			fmt.Fprintf(out, "    last failure: %s\n", h.LastOutput)
		}
	}
	printStream(out, s.Detail)
	if len(s.Output) > 0 {
		fmt.Fprintf(out, "  last %d lines of output:\n", len(s.Output))
		for _, l := range s.Output {
			fmt.Fprintln(out, "    "+l)
		}
	}
}

func newActionCmd(g *globals, verb, short string) *cobra.Command {
	return &cobra.Command{
		Use:               verb + " NAME",
		Short:             short,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: g.completeComponents, // completion.go
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient()
			if err != nil {
				return err
			}
			var status string
			var code int
			switch verb {
			case "start":
				status, code, err = c.Start(cmd.Context(), args[0])
			case "stop":
				status, code, err = c.Stop(cmd.Context(), args[0])
			default:
				status, code, err = c.Restart(cmd.Context(), args[0])
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", args[0], status)
			if code == http.StatusAccepted {
				fmt.Fprintf(cmd.OutOrStdout(), "it was not ready by its deadline and goes on trying; follow it with: rouse status\n")
			}
			return nil
		},
	}
}

func newWakeCmd(g *globals) *cobra.Command {
	var dry, follow bool
	cmd := &cobra.Command{
		Use:   "wake [NAME]",
		Short: "Run a recovery now, as after a resume, or start one component's chain",
		Long: `Run a recovery now: the same path as after a real resume, recorded as a
manual wake. --dry-run prints the plan instead (start order, what waits for what,
estimated times learned from past wakes); --follow shows each component's progress
until the restore finishes.

With NAME, only that component's chain: NAME and its dependencies (required and
optional), started in dependency order as a wake starts them, as rouse start NAME
does; --dry-run prints the plan of that chain alone.`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: g.completeComponents,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 && follow {
				return usagef("--follow follows a whole wake; with NAME, see the chain with rouse status")
			}
			c, err := g.newClient()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if len(args) == 1 {
				name := args[0]
				if dry {
					p, err := answered(cmd.Context(), c, c.StartPlan, name)
					if err != nil {
						return err
					}
					printPlan(out, p)
					return nil
				}
				status, code, err := c.Start(cmd.Context(), name)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "%s: %s\n", name, status)
				if code == http.StatusAccepted {
					fmt.Fprintf(out, "it was not ready by its deadline and goes on trying; follow it with: rouse status\n")
				}
				return nil
			}
			if dry {
				p, err := answered0(cmd.Context(), c, c.WakePlan)
				if err != nil {
					return err
				}
				printPlan(out, p)
				return nil
			}
			if !follow {
				w, err := answered0(cmd.Context(), c, c.Wake)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "wake %d started; follow it with: rouse wake --follow, or see rouse status\n", w.ID)
				return nil
			}
			return followWake(cmd.Context(), c, out)
		},
	}
	cmd.Flags().BoolVar(&dry, "dry-run", false, "print the plan without doing anything")
	cmd.Flags().BoolVar(&follow, "follow", false, "show progress live until the restore finishes")
	return cmd
}

func printPlan(out io.Writer, p wire.Plan) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "START AT\tNAME\tWAITS FOR\tESTIMATE\tSAMPLES\tDEADLINE")
	for _, s := range p.Components {
		wf := strings.Join(s.WaitsFor, ", ")
		if wf == "" {
			wf = "-"
		}
		est := (time.Duration(s.EstimatedMS) * time.Millisecond).String()
		if s.EstimateAtLeast {
			est = "≥" + est // restores that timed out weigh on it
		}
		dl := (time.Duration(s.DeadlineMS) * time.Millisecond).String()
		if c := s.DeadlineAuto; c != nil {
			how := fmt.Sprintf("from %d", c.Samples)
			if c.TooFew {
				how = fmt.Sprintf("default, %d of 3 samples", c.Samples)
			}
			dl += " (auto, " + how + ")"
		}
		fmt.Fprintf(tw, "+%s\t%s\t%s\t%s\t%d\t%s\n", time.Duration(s.StartAtMS)*time.Millisecond, s.Name, wf, est, s.Samples, dl)
	}
	tw.Flush()
	fmt.Fprintf(out, "estimated total %s along %s\n", time.Duration(p.EstimatedTotalMS)*time.Millisecond, strings.Join(p.CriticalPath, " → "))
	for _, n := range p.NotPlanned {
		fmt.Fprintf(out, "not planned: %s (%s)\n", n.Name, n.Reason)
	}
}

var errWakeDone = errors.New("done")

// answerTimeout bounds a call the agent answers at once (its health, a
// component, a wake request, the plan): an agent that took the connection
// but does not answer by then is stopped or hung, and the command says so
// instead of waiting for ever. Start, stop and restart wait for the
// component and are not bounded.
var answerTimeout = 10 * time.Second

// answered0 calls f under answerTimeout.
func answered0[T any](ctx context.Context, c *client.Client, f func(context.Context) (T, error)) (T, error) {
	return answered(ctx, c, func(ctx context.Context, _ struct{}) (T, error) { return f(ctx) }, struct{}{})
}

// answered calls f(ctx, arg) under answerTimeout and says what a timeout
// means.
func answered[T, A any](ctx context.Context, c *client.Client, f func(context.Context, A) (T, error), arg A) (T, error) {
	actx, cancel := context.WithTimeout(ctx, answerTimeout)
	defer cancel()
	v, err := f(actx, arg)
	if err != nil && ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("the agent at %s took the connection but did not answer within %s: is it stopped or hung? Its log, or rouse doctor, says more", c.BaseURL(), answerTimeout)
	}
	return v, err
}

// followReconnect is how long `rouse wake --follow` keeps trying to get
// its event stream back once it broke mid-wake, before it gives up and
// says where to look instead.
var followReconnect = 30 * time.Second

// followWake subscribes first (so no event is missed), wakes once the
// stream is accepted, then prints state changes until this wake's restore
// is done. With no agent it fails at once; a stream that breaks while the
// wake is followed is reopened for at most followReconnect.
func followWake(ctx context.Context, c *client.Client, out io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p := newPainter(out)
	t0 := time.Now()
	var id int64 = -1 // -1: not asked yet; 0: asked, no answer yet
	var wakeErr error
	onConnect := func() {
		if id >= 0 {
			return // a reconnect: the wake was already asked for
		}
		id = 0
		w, err := c.Wake(ctx)
		if err != nil {
			wakeErr = err
			cancel()
			return
		}
		id = w.ID
		fmt.Fprintf(out, "wake %d: restoring\n", w.ID)
	}
	o := client.StreamOptions{OnConnect: onConnect, FailFast: true, GiveUpAfter: followReconnect, AnswerTimeout: answerTimeout}
	err := c.Events(ctx, o, func(ev wire.Event) error {
		switch {
		case ev.State != nil:
			line := fmt.Sprintf("%7s  %-24s %s", humanDuration(time.Since(t0)), ev.State.Name, p.state(ev.State.State))
			if ev.State.Error != "" {
				line += "  " + ev.State.Error
			}
			fmt.Fprintln(out, line)
		case ev.Wake != nil && ev.Wake.Phase == wire.PhaseDone && ev.Wake.Wake != nil && ev.Wake.Wake.ID == id:
			printRestore(out, *ev.Wake.Wake)
			if r := ev.Wake.Wake.Restore; r.TimedOut+r.Failed > 0 {
				return codeError{1}
			}
			return errWakeDone
		}
		return nil
	})
	switch {
	case wakeErr != nil:
		return wakeErr
	case errors.Is(err, errWakeDone):
		return nil
	case id > 0 && err != nil && ctx.Err() == nil && !errors.As(err, new(codeError)):
		return fmt.Errorf("lost the agent while following wake %d: %w; see how it ended with: rouse status", id, err)
	}
	return err
}

// printRestore is the closing line of a followed wake: the counts, then
// which components did not make it and why.
func printRestore(out io.Writer, w wire.Wake) {
	r := w.Restore
	fmt.Fprintf(out, "restore done in %s: %d ready, %d timed out, %d failed", humanDuration(time.Duration(r.DurationMS)*time.Millisecond), r.Ready, r.TimedOut, r.Failed)
	if r.Skipped > 0 {
		fmt.Fprintf(out, ", %d stopped or blocked", r.Skipped)
	}
	if r.WaitingForUser > 0 {
		fmt.Fprintf(out, ", %d waiting for you", r.WaitingForUser)
	}
	fmt.Fprintln(out)
	for _, c := range w.Components {
		var what string
		switch trackers.State(c.State) {
		case trackers.StateReady, trackers.StateCatchingUp:
			continue
		case trackers.StateFailed:
			what = "failed"
		case trackers.StateWaiting:
			if strings.HasPrefix(c.Error, "blocked: ") {
				fmt.Fprintf(out, "  %s not started: %s\n", c.Name, c.Error)
				continue
			}
			what = "timed out (" + c.State + ")"
		default:
			what = "timed out (" + c.State + ")"
		}
		line := fmt.Sprintf("  %s %s after %s", c.Name, what, humanDuration(time.Duration(c.DurationMS)*time.Millisecond))
		if c.Error != "" {
			line += ": " + c.Error
		}
		fmt.Fprintln(out, line)
	}
}

// humanDuration is a duration as a person reads it: never "0s" for a
// restore that took 2 ms — "2ms", "1.3s", "2m5s", and "<1ms" below a millisecond
// (the wire counts whole milliseconds).
func humanDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return "<1ms"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// streamDetail is the detail of a component that holds a long-lived
// connection (websocket, roon: wire.StreamDetail), with roon's core.
type streamDetail struct {
	Connects          *int             `json:"connects"` // present only in a stream's detail
	Reconnects        int              `json:"reconnects"`
	DisconnectsByCode map[string]int   `json:"disconnects_by_code"`
	LastDisconnect    *wire.Disconnect `json:"last_disconnect"`
	Core              string           `json:"core"`
	Address           string           `json:"address"`
	Paired            *bool            `json:"paired"`
	Zones             *int             `json:"zones"`
}

// printStream prints the connection record of a websocket or roon
// component (Service.Detail, as the API shows it); any other detail
// prints nothing.
func printStream(out io.Writer, detail any) {
	if detail == nil {
		return
	}
	b, err := json.Marshal(detail)
	if err != nil {
		return
	}
	var d streamDetail
	if json.Unmarshal(b, &d) != nil || d.Connects == nil {
		return
	}
	if d.Core != "" || d.Address != "" || d.Paired != nil {
		core := cmp.Or(d.Core, "core")
		if d.Address != "" {
			core += " at " + d.Address
		}
		paired := "not paired"
		if d.Paired != nil && *d.Paired {
			paired = "paired"
		}
		fmt.Fprintf(out, "  roon: %s, %s", core, paired)
		if d.Zones != nil {
			fmt.Fprintf(out, ", %d zones", *d.Zones)
		}
		fmt.Fprintln(out)
	}
	fmt.Fprintf(out, "  connection: %d connects · %d reconnects", *d.Connects, d.Reconnects)
	if len(d.DisconnectsByCode) > 0 {
		codes := slices.Sorted(maps.Keys(d.DisconnectsByCode))
		parts := make([]string, len(codes))
		for i, c := range codes {
			parts[i] = fmt.Sprintf("%s ×%d", c, d.DisconnectsByCode[c])
		}
		fmt.Fprintf(out, " · disconnects by code: %s", strings.Join(parts, ", "))
	}
	fmt.Fprintln(out)
	if l := d.LastDisconnect; l != nil {
		fmt.Fprintf(out, "    last disconnect: %s, code %s", ago(l.At), l.Code)
		if l.Reason != "" {
			fmt.Fprintf(out, ": %s", l.Reason)
		}
		fmt.Fprintln(out)
	}
}
