package scheduler

import (
	"github.com/rouse-dev/rouse/internal/promreg"
)

// metrics are the scheduler's families; a nil *metrics is a no-op.
type metrics struct {
	runs     *promreg.CounterVec
	misfires *promreg.CounterVec
	lateness *promreg.HistogramVec
}

func newMetrics(reg *promreg.Registry) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{}
	var err error
	m.runs, err = reg.CounterVec("rouse_job_runs_total",
		"Job runs by job and result (ok, failed, timeout, skipped).", "job", "result")
	if err != nil {
		return nil, err
	}
	m.misfires, err = reg.CounterVec("rouse_job_misfires_total",
		"Scheduled job times found missed (machine asleep, agent down, clock jump), by job and misfire policy.", "job", "policy")
	if err != nil {
		return nil, err
	}
	m.lateness, err = reg.HistogramVec("rouse_job_lateness_seconds",
		"Actual start minus scheduled time of scheduled job runs.",
		[]float64{0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 3600, 4 * 3600, 24 * 3600}, "job")
	if err != nil {
		return nil, err
	}
	return m, nil
}

func (m *metrics) run(job, result string) {
	if m != nil {
		m.runs.With(job, result).Inc()
	}
}

func (m *metrics) misfire(job, policy string, n int) {
	if m != nil && n > 0 {
		m.misfires.With(job, policy).Add(n)
	}
}

// late records a run's lateness; a negative one (the wall clock stepped
// back between the scheduled time and the start) counts as 0, as the
// histogram ignores negative values.
func (m *metrics) late(job string, seconds float64) {
	if m != nil {
		m.lateness.With(job).Update(max(seconds, 0))
	}
}
