//go:build linux

package main

import (
	"fmt"
	"io"
)

// goal is one row of the table of goals (issue 12): the figure this run
// measured, the goal, and their ratio (figure ÷ goal: at most 1 meets an
// upper bound, at least 1 meets a lower bound).
type goal struct {
	Row     string  `json:"row"`
	Figure  float64 `json:"figure"`
	Unit    string  `json:"unit"`
	Goal    float64 `json:"goal"`
	AtLeast bool    `json:"at_least,omitempty"` // the goal is a lower bound
	Ratio   float64 `json:"ratio"`
	Met     bool    `json:"met"`
}

func newGoal(row string, figure float64, unit string, target float64, atLeast bool) goal {
	g := goal{Row: row, Figure: figure, Unit: unit, Goal: target, AtLeast: atLeast}
	if target != 0 {
		g.Ratio = round3(figure / target)
	}
	if atLeast {
		g.Met = figure >= target
	} else {
		g.Met = figure <= target
	}
	return g
}

// goals lists the rows this run measured.
func goals(r *report) []goal {
	var gs []goal
	if s := r.Storm; s != nil {
		gs = append(gs,
			newGoal(fmt.Sprintf("GET /api/v1/health p99 at %d req/s during a wake, %d components", s.Rate, s.N), s.Storm.P99MS, "ms", 5, false),
			newGoal("  failed requests", float64(s.Storm.Fails), "", 0, false),
			newGoal("  restore under that load ÷ without", s.Slowdown, "×", 1.05, false),
			newGoal("agent CPU per health request", s.CPUPerReqMS, "ms", 0.1, false))
	}
	if c := r.Cold; c != nil {
		gs = append(gs, newGoal(fmt.Sprintf("start → first /healthz 200, %d components, %.0f MB store (median)", c.N, c.StoreMB), c.MedianMS, "ms", 30, false))
	}
	for _, i := range r.Idle {
		switch i.Config {
		case idleDefault:
			gs = append(gs,
				newGoal("idle default agent: wakeups", i.WakeupsPerMin, "/min", 12, false),
				newGoal("idle default agent: CPU", i.CPUMSPerMin, "ms/min", 2, false))
		case idleFifty:
			gs = append(gs,
				newGoal("idle, 50 components: wakeups", i.WakeupsPerMin, "/min", 30, false),
				newGoal("RSS, 50 components", i.RSSMB, "MB", 25, false))
		}
	}
	if n := len(r.Restore); n > 0 {
		last := r.Restore[n-1]
		gs = append(gs, newGoal(fmt.Sprintf("restore ÷ critical path, real binary, N = %d", last.N), last.BinaryRatio, "×", 1.03, false))
	}
	if m := r.Supervisord; m != nil {
		gs = append(gs,
			newGoal(fmt.Sprintf("%d programs back: supervisorctl restart all ÷ rouse", m.Programs), m.Ratio, "×", 4, true),
			newGoal(fmt.Sprintf("%d programs back: pm2 restart all ÷ rouse", m.Programs), m.PM2Ratio, "×", 4, true))
	}
	return gs
}

func printGoals(w io.Writer, gs []goal) {
	if len(gs) == 0 {
		return
	}
	fmt.Fprintln(w, "Goals (issue 12): figure, goal, figure ÷ goal")
	for _, g := range gs {
		cmp, met := "≤", "met"
		if g.AtLeast {
			cmp = "≥"
		}
		if !g.Met {
			met = "NOT MET"
		}
		ratio := fmt.Sprintf("%.3f", g.Ratio)
		if g.Goal == 0 {
			ratio = "-"
		}
		fmt.Fprintf(w, "  %-72s %10.3f %-6s goal %s %-6g %7s  %s\n", g.Row, g.Figure, g.Unit, cmp, g.Goal, ratio, met)
	}
	fmt.Fprintln(w)
}
