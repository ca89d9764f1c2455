package agent

import (
	"math"
	"time"

	"github.com/rouse-dev/rouse/internal/promreg"
	"github.com/rouse-dev/rouse/trackers"
)

// metrics are the agent's own families, on a registry of its own (two
// agents in one test process must not collide); trackers and the
// scheduler declare theirs on the same registry.
type metrics struct {
	reg           *promreg.Registry
	wakes         *promreg.CounterVec
	restoreDur    *promreg.Histogram
	startDur      *promreg.HistogramVec
	stateGauge    *promreg.GaugeVec
	starts        *promreg.CounterVec
	failures      *promreg.CounterVec
	droppedEvents *promreg.Counter
	preSleepDur   *promreg.Histogram
	// Restores and on-demand chains.
	startsBy      *promreg.CounterVec   // restores and chain starts by trigger
	chainStepDur  *promreg.HistogramVec // each component's own start time in a chain start
	chainFailures *promreg.CounterVec   // chain starts that failed, by reason
	parEff        *promreg.HistogramVec // sum of the components' own start times ÷ wall time
	lastEff       *promreg.GaugeVec
}

var allStates = []trackers.State{
	trackers.StateStopped, trackers.StateWaiting, trackers.StateStarting, trackers.StateReady,
	trackers.StateCatchingUp, trackers.StateDegraded, trackers.StateFailed, trackers.StatePaused,
	trackers.StateUnhealthy,
}

func newMetrics() *metrics {
	r := promreg.New()
	m := &metrics{reg: r}
	// The names are constants and the registry is new: an error is a bug.
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	var err error
	m.wakes, err = r.CounterVec("rouse_wakes_total", "Wakes (and manual recoveries) by how they were detected.", "detected_by")
	must(err)
	restoreDur, err := r.HistogramVec("rouse_restore_duration_seconds", "Time from a wake to the end of its restore.",
		[]float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 30, 60, 120, 300})
	must(err)
	m.restoreDur = restoreDur.With()
	m.startDur, err = r.HistogramVec("rouse_component_start_duration_seconds", "Time from a component's dependencies being ready to the component being ready.",
		[]float64{.005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 30}, "component")
	must(err)
	m.stateGauge, err = r.GaugeVec("rouse_component_state", "1 for the state each component is in, 0 for the others.", "component", "state")
	must(err)
	m.starts, err = r.CounterVec("rouse_component_restarts_total", "Runs started per component (first start included).", "component")
	must(err)
	m.failures, err = r.CounterVec("rouse_component_failures_total", "Component failures by reason (run: its Run returned an error; deadline: not ready in time).", "component", "reason")
	must(err)
	dropped, err := r.CounterVec("rouse_state_events_dropped_total", "State events not stored because the writer queue was full.")
	must(err)
	m.droppedEvents = dropped.With()
	preSleepDur, err := r.HistogramVec("rouse_presleep_duration_seconds", "Time the pre-sleep work took (pause, checkpoint, close).",
		[]float64{.01, .05, .1, .25, .5, 1, 2, 3, 5})
	must(err)
	m.preSleepDur = preSleepDur.With()
	m.startsBy, err = r.CounterVec("rouse_starts_total", "Restores and on-demand chain starts by trigger (boot, wake, demand, manual).", "trigger")
	must(err)
	m.chainStepDur, err = r.HistogramVec("rouse_chain_component_start_duration_seconds", "In an on-demand chain start, the time from a component's dependencies being ready to it being ready.",
		[]float64{.005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 30}, "chain", "component")
	must(err)
	m.chainFailures, err = r.CounterVec("rouse_chain_failures_total", "On-demand chain starts that failed, by reason (failed, deadline, stopped, blocked).", "chain", "reason")
	must(err)
	m.parEff, err = r.HistogramVec("rouse_restore_parallel_efficiency", "Per restore or chain start: the sum of the components' own start times divided by its wall time (above 1: they overlapped).",
		[]float64{.25, .5, .75, 1, 1.5, 2, 3, 4, 6, 8, 12, 16}, "trigger")
	must(err)
	m.lastEff, err = r.GaugeVec("rouse_restore_parallel_efficiency_last", "The parallel efficiency of the last restore or chain start, by trigger.", "trigger")
	must(err)
	return m
}

// state moves the state gauge of one component.
func (m *metrics) state(name string, from, to trackers.State) {
	if from != "" {
		m.stateGauge.With(name, string(from)).Set(0)
	}
	m.stateGauge.With(name, string(to)).Set(1)
}

// forget drops a removed component's series.
func (m *metrics) forget(name string) {
	for _, s := range allStates {
		m.stateGauge.Delete(name, string(s))
	}
}

// efficiency records the parallel efficiency of one restore or chain
// start: the sum of its components' own start times (from their
// dependencies being ready to ready, or to giving up) over its wall time,
// and returns it rounded to two decimals (0 with nothing started).
func (m *metrics) efficiency(trigger string, results []result, wall time.Duration) float64 {
	var sum time.Duration
	for _, r := range results {
		sum += r.dur
	}
	if wall <= 0 || sum <= 0 {
		return 0
	}
	e := sum.Seconds() / wall.Seconds()
	m.parEff.With(trigger).Update(e)
	m.lastEff.With(trigger).Set(e)
	return math.Round(e*100) / 100
}
