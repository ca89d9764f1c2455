package promreg

import (
	"bytes"
	"strings"
	"testing"
)

func TestRegister(t *testing.T) {
	declare := func(r *Registry) *CounterVec {
		v, err := r.CounterVec("x_total", "x", "job")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	t.Run("ASecondDeclarationSharesTheFirstFamily", func(t *testing.T) {
		reg := New()
		a, b := declare(reg), declare(reg)
		a.With("j").Inc()
		b.With("j").Inc()
		if a != b || a.With("j") != b.With("j") {
			t.Fatal("the second declaration got a series of its own, not the registered one")
		}
		if v, ok := reg.Sample(`x_total{job="j"}`); !ok || v != 2 {
			t.Fatalf("x_total = %v, %v; want 2 (one series counted twice)", v, ok)
		}
	})
	t.Run("ANilRegistryCountsUnexported", func(t *testing.T) {
		var reg *Registry
		c := declare(reg).With("j")
		c.Inc()
		if c.Get() != 1 {
			t.Fatalf("counter = %d", c.Get())
		}
		if _, ok := reg.Sample(`x_total{job="j"}`); ok {
			t.Fatal("a nil registry exported something")
		}
	})
	t.Run("AConflictingDeclarationIsAnError", func(t *testing.T) {
		reg := New()
		declare(reg).With("j").Inc()
		for name, f := range map[string]func() error{
			"gauge":        func() error { _, err := reg.GaugeVec("x_total", "x", "job"); return err },
			"other help":   func() error { _, err := reg.CounterVec("x_total", "other help", "job"); return err },
			"other labels": func() error { _, err := reg.CounterVec("x_total", "x", "job", "result"); return err },
			"histogram":    func() error { _, err := reg.HistogramVec("x_total", "x", []float64{1}, "job"); return err },
		} {
			if f() == nil {
				t.Errorf("%s under the counter's name was accepted", name)
			}
		}
		g, _ := reg.GaugeVec("x_total", "x", "job")
		g.With("j").Set(7) // usable, not exported
		if v, _ := reg.Sample(`x_total{job="j"}`); v != 1 {
			t.Fatalf("x_total = %v, want the counter's 1", v)
		}
	})
	t.Run("BadNamesAndBucketsAreErrors", func(t *testing.T) {
		reg := New()
		if _, err := reg.CounterVec("a-b", "x"); err == nil {
			t.Error("name a-b accepted")
		}
		if _, err := reg.CounterVec("a", "x", "l", "l"); err == nil {
			t.Error("a label twice accepted")
		}
		h, err := reg.HistogramVec("h", "x", []float64{2, 1})
		if err == nil {
			t.Error("decreasing buckets accepted")
		}
		h.With().Update(1) // usable all the same
		if _, err := reg.HistogramVec("h2", "x", []float64{1}, "le"); err == nil {
			t.Error("a histogram label le accepted")
		}
	})
}

// TestExposition pins the text format: what client_golang wrote for the
// same families (labels sorted by name, le last, cumulative buckets,
// HELP and TYPE once per family, label values and help escaped).
func TestExposition(t *testing.T) {
	reg := New()
	c, _ := reg.CounterVec("rouse_items_refused_total", "Items refused.", "tracker", "reason")
	c.With("feed", "too_large").Add(3)
	c.With(`we"ird\`+"\n", "too_large").Inc()
	g, _ := reg.GaugeVec("rouse_component_state", "1 for the state.\nSecond \\ line.", "component", "state")
	g.With("a", "ready").Set(1)
	g.With("a", "starting").Set(0)
	g.With("b", "ready").Set(0.5)
	g.Delete("b", "ready")
	h, _ := reg.HistogramVec("rouse_restore_duration_seconds", "Restore time.", []float64{.01, 1, 86400})
	h.With().Update(0.5)
	h.With().Update(2)
	h.With().Update(-1) // ignored by the library
	hv, _ := reg.HistogramVec("rouse_network_after_wake_seconds", "After wake.", []float64{0.1, 0.5}, "tracker")
	hv.With("net").Update(0.25)
	n, _ := reg.CounterVec("rouse_state_events_dropped_total", "Dropped.")
	n.With()

	var b bytes.Buffer
	reg.WritePrometheus(&b)
	want := `# HELP rouse_component_state 1 for the state.\nSecond \\ line.
# TYPE rouse_component_state gauge
rouse_component_state{component="a",state="ready"} 1
rouse_component_state{component="a",state="starting"} 0
# HELP rouse_items_refused_total Items refused.
# TYPE rouse_items_refused_total counter
rouse_items_refused_total{reason="too_large",tracker="feed"} 3
rouse_items_refused_total{reason="too_large",tracker="we\"ird\\\n"} 1
# HELP rouse_network_after_wake_seconds After wake.
# TYPE rouse_network_after_wake_seconds histogram
rouse_network_after_wake_seconds_bucket{tracker="net",le="0.1"} 0
rouse_network_after_wake_seconds_bucket{tracker="net",le="0.5"} 1
rouse_network_after_wake_seconds_bucket{tracker="net",le="+Inf"} 1
rouse_network_after_wake_seconds_sum{tracker="net"} 0.25
rouse_network_after_wake_seconds_count{tracker="net"} 1
# HELP rouse_restore_duration_seconds Restore time.
# TYPE rouse_restore_duration_seconds histogram
rouse_restore_duration_seconds_bucket{le="0.01"} 0
rouse_restore_duration_seconds_bucket{le="1"} 1
rouse_restore_duration_seconds_bucket{le="86400"} 2
rouse_restore_duration_seconds_bucket{le="+Inf"} 2
rouse_restore_duration_seconds_sum 2.5
rouse_restore_duration_seconds_count 2
# HELP rouse_state_events_dropped_total Dropped.
# TYPE rouse_state_events_dropped_total counter
rouse_state_events_dropped_total 0
`
	if got := b.String(); got != want {
		t.Fatalf("exposition:\n%s\nwant:\n%s", got, want)
	}
}

func TestWriteProcessMetrics(t *testing.T) {
	var b bytes.Buffer
	WriteProcessMetrics(&b)
	for _, s := range []string{"\n# TYPE go_goroutines gauge\ngo_goroutines ", "\nprocess_resident_memory_bytes ", "\nprocess_cpu_seconds_total ", "\nprocess_open_fds "} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("no %q in:\n%s", s, b.String())
		}
	}
}
