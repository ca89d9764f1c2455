// Package promreg is rouse's metrics registry: a thin layer over
// github.com/VictoriaMetrics/metrics (one metrics.Set per Registry) that
// keeps what /metrics served when rouse used client_golang:
//
//   - families declared once with their HELP text, type and label names;
//     a series' labels are written sorted by name (le last), as
//     client_golang writes them;
//   - a family declared again with the same type, help, labels and
//     buckets (a component rebuilt by a config reload, a second scheduler
//     on one registry) shares the series already there instead of failing
//     or counting apart; a different declaration under the same name is an
//     error, and the family returned with it counts but is not exported;
//   - a nil *Registry is valid: its families count, unexported.
//
// Histograms are the library's PrometheusHistogram: cumulative `le`
// buckets with the bounds given, +Inf, _sum and _count.
package promreg

import (
	"bytes"
	"fmt"
	"io"
	"iter"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/VictoriaMetrics/metrics"
)

// The series types, the library's own.
type (
	// Counter is one counter series (Inc, Add, Get).
	Counter = metrics.Counter
	// Gauge is one gauge series (Set, Add, Get).
	Gauge = metrics.Gauge
	// Histogram is one histogram series (Update; negative values and NaN
	// are ignored).
	Histogram = metrics.PrometheusHistogram
)

// Registry holds the families of one agent (or test).
type Registry struct {
	set *metrics.Set

	mu   sync.Mutex
	fams map[string]*family
}

// New returns an empty registry.
func New() *Registry {
	metrics.ExposeMetadata(true) // # HELP and # TYPE lines, process-wide
	return &Registry{set: metrics.NewSet(), fams: map[string]*family{}}
}

// The family kinds, as written on # TYPE lines.
const (
	kindCounter   = "counter"
	kindGauge     = "gauge"
	kindHistogram = "histogram"
)

// family is one metric name: its type, help and label names, and the set
// its series live in.
type family struct {
	set     *metrics.Set
	name    string
	kind    string
	help    string
	labels  []string // as declared
	order   []int    // indexes into labels, sorted by label name
	buckets []float64
}

// declare returns the family name, registering it on r, or the one
// registered before with the same declaration. On a conflicting
// declaration (or a nil r) the family lives in a set of its own that
// nothing exports.
func (r *Registry) declare(name, kind, help string, buckets []float64, labels []string) (*family, error) {
	f := &family{name: name, kind: kind, help: help, labels: slices.Clone(labels), buckets: slices.Clone(buckets)}
	f.order = make([]int, len(labels))
	for i := range f.order {
		f.order[i] = i
	}
	sort.SliceStable(f.order, func(a, b int) bool { return labels[f.order[a]] < labels[f.order[b]] })
	if err := f.validate(); err != nil {
		f.set = metrics.NewSet()
		return f, err
	}
	if r == nil {
		f.set = metrics.NewSet()
		return f, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.fams[name]; ok {
		if old.kind != kind || old.help != help || !slices.Equal(old.labels, labels) || !slices.Equal(old.buckets, buckets) {
			f.set = metrics.NewSet()
			return f, fmt.Errorf("metric %s is already registered as a %s with other help, labels or buckets", name, old.kind)
		}
		return old, nil
	}
	f.set = r.set
	r.fams[name] = f
	return f, nil
}

// validate checks the names and buckets (the library panics on them).
func (f *family) validate() error {
	if err := metrics.ValidateMetric(f.name); err != nil || strings.ContainsAny(f.name, "{.") {
		return fmt.Errorf("metric name %q is not valid", f.name)
	}
	for i, l := range f.labels {
		if err := metrics.ValidateMetric(l); err != nil || strings.ContainsAny(l, "{.") || l == "le" && f.kind == kindHistogram {
			return fmt.Errorf("metric %s: label name %q is not valid", f.name, l)
		}
		if slices.Contains(f.labels[:i], l) {
			return fmt.Errorf("metric %s: label %q twice", f.name, l)
		}
	}
	if f.kind == kindHistogram {
		if err := metrics.ValidateBuckets(f.buckets); err != nil {
			return fmt.Errorf("metric %s: %w", f.name, err)
		}
	}
	return nil
}

// series is the exposed name of one series: name{label="value",...} with
// the labels sorted by name. It panics on a wrong number of values, as
// client_golang's WithLabelValues did: that is a bug at the call site.
func (f *family) series(values []string) string {
	if len(values) != len(f.labels) {
		panic(fmt.Sprintf("metric %s: %d label values for %d labels", f.name, len(values), len(f.labels)))
	}
	if len(values) == 0 {
		return f.name
	}
	var b strings.Builder
	b.WriteString(f.name)
	for n, i := range f.order {
		if n == 0 {
			b.WriteByte('{')
		} else {
			b.WriteByte(',')
		}
		b.WriteString(f.labels[i])
		b.WriteString(`="`)
		escapeLabel(&b, values[i])
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// escapeLabel writes v escaped as the text format wants a label value.
func escapeLabel(b *strings.Builder, v string) { escape(b, v, true) }

// escape writes v with backslash and newline escaped, and the double
// quote when quote (HELP texts leave it as it is).
func escape(b interface {
	WriteByte(byte) error
	WriteString(string) (int, error)
}, v string, quote bool) {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\':
			b.WriteString(`\\`)
		case c == '"' && quote:
			b.WriteString(`\"`)
		case c == '\n':
			b.WriteString(`\n`)
		default:
			b.WriteByte(c)
		}
	}
}

// delete drops one series.
func (f *family) delete(values []string) bool { return f.set.UnregisterMetric(f.series(values)) }

// CounterVec is a counter family with labels (none: one series). A
// family declared twice is the same *CounterVec.
type CounterVec family

// CounterVec declares a counter family. The error is a conflicting or
// invalid declaration; the family returned with it counts unexported.
func (r *Registry) CounterVec(name, help string, labels ...string) (*CounterVec, error) {
	f, err := r.declare(name, kindCounter, help, nil, labels)
	return (*CounterVec)(f), err
}

// With returns the series with these label values (in declaration
// order), creating it at 0.
func (v *CounterVec) With(values ...string) *Counter {
	f := (*family)(v)
	return f.set.GetOrCreateCounter(f.series(values))
}

// GaugeVec is a gauge family with labels.
type GaugeVec family

// GaugeVec declares a gauge family (see CounterVec).
func (r *Registry) GaugeVec(name, help string, labels ...string) (*GaugeVec, error) {
	f, err := r.declare(name, kindGauge, help, nil, labels)
	return (*GaugeVec)(f), err
}

// With returns the series with these label values, creating it at 0.
func (v *GaugeVec) With(values ...string) *Gauge {
	f := (*family)(v)
	return f.set.GetOrCreateGauge(f.series(values), nil)
}

// Delete drops the series with these label values; false when there was
// none.
func (v *GaugeVec) Delete(values ...string) bool { return (*family)(v).delete(values) }

// HistogramVec is a histogram family with labels.
type HistogramVec family

// HistogramVec declares a histogram family with these bucket upper bounds
// (strictly increasing; +Inf is implied). See CounterVec.
func (r *Registry) HistogramVec(name, help string, buckets []float64, labels ...string) (*HistogramVec, error) {
	f, err := r.declare(name, kindHistogram, help, buckets, labels)
	if err != nil && metrics.ValidateBuckets(f.buckets) != nil {
		f.buckets = []float64{1} // usable though invalid; never exported
	}
	return (*HistogramVec)(f), err
}

// With returns the series with these label values, creating it empty.
// Its Update ignores negative values and NaN.
func (v *HistogramVec) With(values ...string) *Histogram {
	f := (*family)(v)
	return f.set.GetOrCreatePrometheusHistogramExt(f.series(values), f.buckets)
}

// WritePrometheus writes every series of r in the Prometheus text format
// (version 0.0.4), each family under its # HELP and # TYPE lines.
func (r *Registry) WritePrometheus(w io.Writer) {
	if r == nil {
		return
	}
	var out bytes.Buffer
	r.set.WritePrometheus(&out)
	// The library writes "# HELP name" with no text: add the family's.
	var b bytes.Buffer
	b.Grow(out.Len() + out.Len()/8)
	r.mu.Lock()
	for line := range bytes.Lines(out.Bytes()) {
		if name, ok := bytes.CutPrefix(line, []byte("# HELP ")); ok {
			name = bytes.TrimSuffix(name, []byte("\n"))
			if f := r.fams[string(name)]; f != nil && f.help != "" {
				b.WriteString("# HELP ")
				b.Write(name)
				b.WriteByte(' ')
				escape(&b, f.help, false)
				b.WriteByte('\n')
				continue
			}
		}
		b.Write(line)
	}
	r.mu.Unlock()
	_, _ = w.Write(b.Bytes())
}

// WriteProcessMetrics writes the go_* and process_* metrics of this
// process (the library's: runtime and /proc figures, open and max file
// descriptors included).
func WriteProcessMetrics(w io.Writer) {
	metrics.ExposeMetadata(true)
	metrics.WriteProcessMetrics(w)
	metrics.WriteFDMetrics(w)
}

// Sample returns the value of one series as r exposes it, e.g.
// `rouse_wakes_total{detected_by="boot"}` or a histogram's
// `name_count{...}`; false when r has no such series.
func (r *Registry) Sample(series string) (float64, bool) {
	for s, v := range r.samples() {
		if s == series {
			return v, true
		}
	}
	return 0, false
}

// Samples returns every series named name (labels aside) as r exposes
// it, by series: e.g. Samples("rouse_wakes_total") or a histogram's
// Samples("name_count").
func (r *Registry) Samples(name string) map[string]float64 {
	m := map[string]float64{}
	for s, v := range r.samples() {
		if n, _, _ := strings.Cut(s, "{"); n == name {
			m[s] = v
		}
	}
	return m
}

// samples yields each sample line of r's exposition as series and value.
func (r *Registry) samples() iter.Seq2[string, float64] {
	var b bytes.Buffer
	r.WritePrometheus(&b)
	return func(yield func(string, float64) bool) {
		for line := range strings.Lines(b.String()) {
			i := strings.LastIndexByte(line, ' ')
			if strings.HasPrefix(line, "#") || i < 0 {
				continue
			}
			v, err := strconv.ParseFloat(strings.TrimSpace(line[i+1:]), 64)
			if err == nil && !yield(line[:i], v) {
				return
			}
		}
	}
}
