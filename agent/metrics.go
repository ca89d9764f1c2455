package agent

import (
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/rouse-dev/rouse/trackers"
)

// metrics are the agent's Prometheus collectors, on a registry of its own
// (never the global one: two agents in one test process must not collide).
type metrics struct {
	reg           *prometheus.Registry
	wakes         *prometheus.CounterVec
	restoreDur    prometheus.Histogram
	startDur      *prometheus.HistogramVec
	stateGauge    *prometheus.GaugeVec
	starts        *prometheus.CounterVec
	failures      *prometheus.CounterVec
	droppedEvents prometheus.Counter
	preSleepDur   prometheus.Histogram
	// Restores and on-demand chains.
	startsBy      *prometheus.CounterVec   // restores and chain starts by trigger
	chainStepDur  *prometheus.HistogramVec // each component's own start time in a chain start
	chainFailures *prometheus.CounterVec   // chain starts that failed, by reason
	parEff        *prometheus.HistogramVec // sum of the components' own start times ÷ wall time
	lastEff       *prometheus.GaugeVec
}

var allStates = []trackers.State{
	trackers.StateStopped, trackers.StateWaiting, trackers.StateStarting, trackers.StateReady,
	trackers.StateCatchingUp, trackers.StateDegraded, trackers.StateFailed, trackers.StatePaused,
	trackers.StateUnhealthy,
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		wakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rouse_wakes_total", Help: "Wakes (and manual recoveries) by how they were detected.",
		}, []string{"detected_by"}),
		restoreDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "rouse_restore_duration_seconds", Help: "Time from a wake to the end of its restore.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 30, 60, 120, 300},
		}),
		startDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rouse_component_start_duration_seconds", Help: "Time from a component's dependencies being ready to the component being ready.",
			Buckets: []float64{.005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 30},
		}, []string{"component"}),
		stateGauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rouse_component_state", Help: "1 for the state each component is in, 0 for the others.",
		}, []string{"component", "state"}),
		starts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rouse_component_restarts_total", Help: "Runs started per component (first start included).",
		}, []string{"component"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rouse_component_failures_total", Help: "Component failures by reason (run: its Run returned an error; deadline: not ready in time).",
		}, []string{"component", "reason"}),
		droppedEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rouse_state_events_dropped_total", Help: "State events not stored because the writer queue was full.",
		}),
		preSleepDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "rouse_presleep_duration_seconds", Help: "Time the pre-sleep work took (pause, checkpoint, close).",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2, 3, 5},
		}),
	}
	m.startsBy = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rouse_starts_total", Help: "Restores and on-demand chain starts by trigger (boot, wake, demand, manual).",
	}, []string{"trigger"})
	m.chainStepDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "rouse_chain_component_start_duration_seconds", Help: "In an on-demand chain start, the time from a component's dependencies being ready to it being ready.",
		Buckets: []float64{.005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 30},
	}, []string{"chain", "component"})
	m.chainFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rouse_chain_failures_total", Help: "On-demand chain starts that failed, by reason (failed, deadline, stopped, blocked).",
	}, []string{"chain", "reason"})
	m.parEff = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "rouse_restore_parallel_efficiency", Help: "Per restore or chain start: the sum of the components' own start times divided by its wall time (above 1: they overlapped).",
		Buckets: []float64{.25, .5, .75, 1, 1.5, 2, 3, 4, 6, 8, 12, 16},
	}, []string{"trigger"})
	m.lastEff = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rouse_restore_parallel_efficiency_last", Help: "The parallel efficiency of the last restore or chain start, by trigger.",
	}, []string{"trigger"})
	m.reg.MustRegister(m.startsBy, m.chainStepDur, m.chainFailures, m.parEff, m.lastEff)
	m.reg.MustRegister(m.wakes, m.restoreDur, m.startDur, m.stateGauge, m.starts, m.failures, m.droppedEvents, m.preSleepDur,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// state moves the state gauge of one component.
func (m *metrics) state(name string, from, to trackers.State) {
	if from != "" {
		m.stateGauge.WithLabelValues(name, string(from)).Set(0)
	}
	m.stateGauge.WithLabelValues(name, string(to)).Set(1)
}

// forget drops a removed component's series.
func (m *metrics) forget(name string) {
	for _, s := range allStates {
		m.stateGauge.DeleteLabelValues(name, string(s))
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
	m.parEff.WithLabelValues(trigger).Observe(e)
	m.lastEff.WithLabelValues(trigger).Set(e)
	return math.Round(e*100) / 100
}
