package scheduler

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rouse-dev/rouse/internal/promreg"
)

// metrics are the scheduler's Prometheus collectors; a nil *metrics is a
// no-op.
type metrics struct {
	runs     *prometheus.CounterVec
	misfires *prometheus.CounterVec
	lateness *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rouse_job_runs_total",
			Help: "Job runs by job and result (ok, failed, timeout, skipped).",
		}, []string{"job", "result"}),
		misfires: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rouse_job_misfires_total",
			Help: "Scheduled job times found missed (machine asleep, agent down, clock jump), by job and misfire policy.",
		}, []string{"job", "policy"}),
		lateness: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rouse_job_lateness_seconds",
			Help:    "Actual start minus scheduled time of scheduled job runs.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 3600, 4 * 3600, 24 * 3600},
		}, []string{"job"}),
	}
	var err error
	m.runs, err = promreg.Register(reg, m.runs)
	if err != nil {
		return nil, err
	}
	m.misfires, err = promreg.Register(reg, m.misfires)
	if err != nil {
		return nil, err
	}
	m.lateness, err = promreg.Register(reg, m.lateness)
	if err != nil {
		return nil, err
	}
	return m, nil
}

func (m *metrics) run(job, result string) {
	if m != nil {
		m.runs.WithLabelValues(job, result).Inc()
	}
}

func (m *metrics) misfire(job, policy string, n int) {
	if m != nil && n > 0 {
		m.misfires.WithLabelValues(job, policy).Add(float64(n))
	}
}

func (m *metrics) late(job string, seconds float64) {
	if m != nil {
		m.lateness.WithLabelValues(job).Observe(seconds)
	}
}
