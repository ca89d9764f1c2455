//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rouse-dev/rouse/tests/internal/harness"
)

func TestMain(m *testing.M) {
	harness.RunHelperIfAsked()
	runHelperIfAsked()
	goleak.VerifyTestMain(m)
}

// TestQuickRun is the smoke run: every benchmark at tiny sizes, through
// the same code as the full run, and a final line that parses with every
// section present and plausible.
func TestQuickRun(t *testing.T) {
	o := quickOptions()
	var out bytes.Buffer
	r, err := run(o, &out)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	if len(r.Errors) > 0 {
		t.Fatalf("errors: %v", r.Errors)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var back report
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &back); err != nil {
		t.Fatalf("the last line is not the JSON report: %v", err)
	}

	t.Run("TheMachineIsDescribed", func(t *testing.T) {
		if back.Machine.CPUs < 1 || back.Machine.Kernel == "" || back.Machine.MemoryMB <= 0 {
			t.Errorf("machine %+v", back.Machine)
		}
		if len(back.Load) != 6 {
			t.Errorf("load averages of %d steps, want 6: %+v", len(back.Load), back.Load)
		}
		for _, l := range back.Load {
			if len(strings.Fields(l.Before)) != 3 || len(strings.Fields(l.After)) != 3 {
				t.Errorf("load average of %s: %+v", l.Step, l)
			}
		}
	})
	t.Run("EveryRestoreTakesAtLeastTheCriticalPath", func(t *testing.T) {
		if len(back.Restore) != 1 {
			t.Fatalf("restore rows %+v", back.Restore)
		}
		rr := back.Restore[0]
		// Nothing can beat the critical path; rounding allows 0.99.
		for name, v := range map[string]float64{"in-process": rr.InProcessRatio, "binary": rr.BinaryRatio,
			"sequential": rr.SequentialRatio, "groups": rr.GroupsRatio} {
			if v < 0.99 {
				t.Errorf("%s ratio %.3f is below the critical path", name, v)
			}
		}
		if rr.SequentialRatio < rr.GroupsRatio {
			t.Errorf("sequential (%.2f) beat start-order groups (%.2f)", rr.SequentialRatio, rr.GroupsRatio)
		}
	})
	t.Run("TheStormAnsweredEveryRequest", func(t *testing.T) {
		s := back.Storm
		if s == nil || s.Storm.Count == 0 || s.Storm.Fails != 0 || s.Idle.Count == 0 || s.BodyKB <= 0 ||
			s.CPUPerReqMS < 0 || s.RestoreMS <= 0 || s.RestoreLoadMS <= 0 {
			t.Errorf("storm %+v", s)
		}
		// The loader keeps its rate: about StormIdle × rate requests.
		if want := int(o.StormIdle.Seconds() * stormRate); s != nil && (s.Idle.Count < want/2 || s.Idle.Count > want*3/2) {
			t.Errorf("%d requests on the idle agent, want about %d", s.Idle.Count, want)
		}
	})
	t.Run("ColdStartIdleSupervisordAndPreSleepMeasuredSomething", func(t *testing.T) {
		if back.Cold == nil || len(back.Cold.Runs) != o.ColdRuns || back.Cold.MedianMS <= 0 {
			t.Errorf("cold %+v", back.Cold)
		}
		if len(back.Idle) != 3 || back.Idle[0].RSSMB <= 0 || back.Idle[2].Config != idleBareGo || back.Idle[2].RSSMB <= 0 {
			t.Errorf("idle %+v", back.Idle)
		}
		// Every program waits programDelay before it listens: no restart
		// can be timed shorter.
		least := ms(programDelay)
		if sv := back.Supervisord; sv == nil || sv.RouseMS < least || sv.SupervisordMS < least || sv.PM2MS < least || sv.RouseCPUMS <= 0 {
			t.Errorf("supervisord %+v", back.Supervisord)
		}
		if back.PreSleep == nil || back.PreSleep.MaxMS <= 0 || back.PreSleep.GrowthKB <= 0 {
			t.Errorf("presleep %+v", back.PreSleep)
		}
	})
	t.Run("EveryGoalRowHasItsFigure", func(t *testing.T) {
		if len(back.Goals) != 12 {
			t.Errorf("%d goal rows, want 12: %+v", len(back.Goals), back.Goals)
		}
		for _, g := range back.Goals {
			if g.Goal != 0 && g.Ratio != round3(g.Figure/g.Goal) {
				t.Errorf("%s: ratio %v for %v ÷ %v", g.Row, g.Ratio, g.Figure, g.Goal)
			}
		}
	})
}

func TestCriticalPathAndReferenceStrategies(t *testing.T) {
	// a(10) → b(30) → d(5) and a(10) → c(50): the critical path is a→c.
	g := dag{names: []string{"a", "b", "c", "d"},
		latency:  []time.Duration{10 * time.Millisecond, 30 * time.Millisecond, 50 * time.Millisecond, 5 * time.Millisecond},
		requires: [][]int{nil, {0}, {0}, {1}}}
	if d, hops := g.criticalPath(); d != 60*time.Millisecond || hops != 2 {
		t.Errorf("critical path %v over %d hops, want 60ms over 2 (a→c)", d, hops)
	}
	if got := g.sequential(time.Second); got != 95*time.Millisecond {
		t.Errorf("sequential %v, want 95ms", got)
	}
	if got := g.sequential(20 * time.Millisecond); got != 55*time.Millisecond {
		t.Errorf("sequential with a 20ms timeout %v, want 55ms", got)
	}
	// levels: {a} 10, {b, c} 50, {d} 5.
	if got := g.groups(); got != 65*time.Millisecond {
		t.Errorf("groups %v, want 65ms", got)
	}
}
