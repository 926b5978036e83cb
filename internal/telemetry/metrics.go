// Package telemetry is Tasker's observability plumbing (docs/observability.md): a small
// metrics registry rendered as Prometheus text (local server, /v1/metrics)
// or as CloudWatch Embedded Metric Format log lines (Lambda), and the
// OpenTelemetry tracing setup chosen by the standard OTEL_* variables.
//
// The registry is written here rather than taken from
// prometheus/client_golang: Tasker needs a handful of labelled counters and
// histograms in two output formats, and EMF needs deltas per flush, which
// client_golang does not model; ~300 lines avoid a large dependency tree.
//
// Import rules: telemetry imports only the standard library and
// OpenTelemetry (a leaf: docs/architecture.md, "Import rules").
package telemetry

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// DefaultBuckets are histogram upper bounds in seconds, from 5 ms to 5 min.
var DefaultBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}

// Registry holds metrics. It is safe for concurrent use.
type Registry struct {
	mu      sync.Mutex
	metrics []metric
	byName  map[string]metric
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{byName: map[string]metric{}} }

type metric interface {
	desc() *desc
	// snapshot returns the series, sorted by label values.
	snapshot() []series
}

type desc struct {
	name, help, kind, unit string
	labels                 []string
}

// series is one label combination's state at a point in time.
type series struct {
	values []string
	// counter or gauge
	value float64
	// histogram
	buckets []uint64 // cumulative per bound, excluding +Inf
	count   uint64
	sum     float64
	samples []float64 // raw observations since the last EMF drain (capped)
}

// register adds m, or returns the metric already registered under its
// name when that has the same kind and labels (so independent components
// may declare the same metric); any other clash panics.
func (r *Registry) register(m metric) metric {
	d := m.desc()
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, dup := r.byName[d.name]; dup {
		od := old.desc()
		if od.kind != d.kind || !slices.Equal(od.labels, d.labels) {
			panic("telemetry: metric " + d.name + " registered twice with different kinds or labels")
		}
		return old
	}
	r.byName[d.name] = m
	r.metrics = append(r.metrics, m)
	return m
}

func key(values []string) string { return strings.Join(values, "\xff") }

// Counter is a monotonically increasing labelled value.
type Counter struct {
	d  desc
	mu sync.Mutex
	s  map[string]*series
}

// NewCounter registers a counter (or returns the one registered under
// name with the same labels).
func (r *Registry) NewCounter(name, help string, labels ...string) *Counter {
	c := &Counter{d: desc{name: name, help: help, kind: "counter", unit: "Count", labels: labels}, s: map[string]*series{}}
	return r.register(c).(*Counter)
}

// Add adds v (>= 0) to the series with the given label values (in the
// order the labels were declared).
func (c *Counter) Add(v float64, values ...string) {
	if v < 0 {
		return
	}
	c.update(values, func(s *series) { s.value += v })
}

// update applies fn to the series with the given label values, creating it
// on first use; values that do not match the declared labels are dropped.
func (c *Counter) update(values []string, fn func(*series)) {
	if len(values) != len(c.d.labels) {
		return
	}
	k := key(values)
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.s[k]
	if !ok {
		s = &series{values: slices.Clone(values)}
		c.s[k] = s
	}
	fn(s)
}

// Inc adds one.
func (c *Counter) Inc(values ...string) { c.Add(1, values...) }

func (c *Counter) desc() *desc { return &c.d }

func (c *Counter) snapshot() []series {
	c.mu.Lock()
	out := make([]series, 0, len(c.s))
	for _, s := range c.s {
		out = append(out, series{values: s.values, value: s.value})
	}
	c.mu.Unlock()
	sortSeries(out)
	return out
}

// Gauge is a labelled value that goes up and down.
type Gauge struct{ Counter }

// NewGauge registers a gauge.
func (r *Registry) NewGauge(name, help string, labels ...string) *Gauge {
	g := &Gauge{Counter{d: desc{name: name, help: help, kind: "gauge", unit: "Count", labels: labels}, s: map[string]*series{}}}
	return r.register(g).(*Gauge)
}

// Add adds v (which may be negative).
func (g *Gauge) Add(v float64, values ...string) {
	g.update(values, func(s *series) { s.value += v })
}

// Set sets the value.
func (g *Gauge) Set(v float64, values ...string) {
	g.update(values, func(s *series) { s.value = v })
}

// Histogram counts observations into buckets.
type Histogram struct {
	d       desc
	bounds  []float64
	mu      sync.Mutex
	s       map[string]*series
	samples int // cap of raw samples kept per series for EMF
}

// maxSamples is the most values one EMF metric may carry.
const maxSamples = 100

// NewHistogram registers a histogram with the given bucket upper bounds
// (nil: DefaultBuckets). Unit is a CloudWatch unit ("Seconds").
func (r *Registry) NewHistogram(name, help, unit string, bounds []float64, labels ...string) *Histogram {
	if bounds == nil {
		bounds = DefaultBuckets
	}
	bounds = slices.Clone(bounds)
	slices.Sort(bounds)
	h := &Histogram{d: desc{name: name, help: help, kind: "histogram", unit: unit, labels: labels}, bounds: bounds,
		s: map[string]*series{}, samples: maxSamples}
	return r.register(h).(*Histogram)
}

// Observe records v in the series with the given label values.
func (h *Histogram) Observe(v float64, values ...string) {
	if len(values) != len(h.d.labels) || math.IsNaN(v) {
		return
	}
	k := key(values)
	h.mu.Lock()
	s, ok := h.s[k]
	if !ok {
		s = &series{values: slices.Clone(values), buckets: make([]uint64, len(h.bounds))}
		h.s[k] = s
	}
	for i, b := range h.bounds {
		if v <= b {
			s.buckets[i]++
		}
	}
	s.count++
	s.sum += v
	if len(s.samples) < h.samples {
		s.samples = append(s.samples, v)
	}
	h.mu.Unlock()
}

func (h *Histogram) desc() *desc { return &h.d }

func (h *Histogram) snapshot() []series {
	h.mu.Lock()
	out := make([]series, 0, len(h.s))
	for _, s := range h.s {
		out = append(out, series{values: s.values, buckets: slices.Clone(s.buckets), count: s.count, sum: s.sum})
	}
	h.mu.Unlock()
	sortSeries(out)
	return out
}

// drainSamples returns and forgets the raw observations of every series.
func (h *Histogram) drainSamples() map[string][]float64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string][]float64, len(h.s))
	for k, s := range h.s {
		if len(s.samples) > 0 {
			out[k] = s.samples
			s.samples = nil
		}
	}
	return out
}

func sortSeries(ss []series) {
	slices.SortFunc(ss, func(a, b series) int { return slices.Compare(a.values, b.values) })
}

func (r *Registry) list() []metric {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.metrics)
}

// WritePrometheus writes every metric in the Prometheus text exposition
// format (version 0.0.4).
func (r *Registry) WritePrometheus(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for _, m := range r.list() {
		d := m.desc()
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s %s\n", d.name, escapeHelp(d.help), d.name, d.kind)
		for _, s := range m.snapshot() {
			if d.kind != "histogram" {
				fmt.Fprintf(bw, "%s%s %s\n", d.name, labelText(d.labels, s.values, "", ""), num(s.value))
				continue
			}
			h := m.(*Histogram)
			for i, b := range h.bounds {
				fmt.Fprintf(bw, "%s_bucket%s %d\n", d.name, labelText(d.labels, s.values, "le", num(b)), s.buckets[i])
			}
			fmt.Fprintf(bw, "%s_bucket%s %d\n", d.name, labelText(d.labels, s.values, "le", "+Inf"), s.count)
			fmt.Fprintf(bw, "%s_sum%s %s\n", d.name, labelText(d.labels, s.values, "", ""), num(s.sum))
			fmt.Fprintf(bw, "%s_count%s %d\n", d.name, labelText(d.labels, s.values, "", ""), s.count)
		}
	}
	return bw.Flush()
}

// Handler serves WritePrometheus.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_ = r.WritePrometheus(w)
	})
}

func labelText(names, values []string, extraName, extraValue string) string {
	if len(names) == 0 && extraName == "" {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
		b.WriteString(`="`)
		b.WriteString(escapeLabel(values[i]))
		b.WriteByte('"')
	}
	if extraName != "" {
		if len(names) > 0 {
			b.WriteByte(',')
		}
		b.WriteString(extraName)
		b.WriteString(`="`)
		b.WriteString(extraValue)
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }
func escapeHelp(s string) string  { return helpEscaper.Replace(s) }

func num(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
