package promreg

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRegister(t *testing.T) {
	newCounter := func() prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "x_total", Help: "x"})
	}
	t.Run("ASecondRegistrationSharesTheFirstCollector", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		a, err := Register(reg, newCounter())
		if err != nil {
			t.Fatal(err)
		}
		b, err := Register(reg, newCounter())
		if err != nil {
			t.Fatal(err)
		}
		if a != b {
			t.Fatal("the second registration got a collector of its own, not the registered one")
		}
	})
	t.Run("ANilRegistryLeavesItUnregistered", func(t *testing.T) {
		c := newCounter()
		got, err := Register(nil, c)
		if err != nil || got != c {
			t.Fatalf("Register(nil) = %v, %v", got, err)
		}
	})
	t.Run("AConflictingCollectorIsAnError", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		if _, err := Register(reg, newCounter()); err != nil {
			t.Fatal(err)
		}
		other := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x_total", Help: "other help"})
		if _, err := Register(reg, other); err == nil {
			t.Fatal("a gauge under the counter's name was accepted")
		}
	})
}
