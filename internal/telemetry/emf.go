package telemetry

import (
	"encoding/json"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
)

// EMF writes a registry as CloudWatch Embedded Metric Format log lines: in
// Lambda, lines written to stdout become metrics without any API call.
//
// Each Flush writes the change since the previous Flush: counter deltas,
// gauge values, and the raw histogram observations (at most 100 per series
// and flush, the EMF limit on values per metric). EMF puts dimension values
// in top-level fields, so one line carries the metrics of one label-value
// combination; a flush writes one line per combination that changed.
type EMF struct {
	Registry  *Registry
	Namespace string // CloudWatch namespace (default "Tasker")
	W         io.Writer

	mu   sync.Mutex
	last map[string]float64 // counter values at the previous flush
}

type emfGroup struct {
	labels  []string
	values  []string
	fields  map[string]any
	metrics []emfMetric
}

type emfMetric struct {
	Name string `json:"Name"`
	Unit string `json:"Unit,omitempty"`
}

// Flush writes one EMF line per label-value combination with news.
func (e *EMF) Flush(now time.Time) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.last == nil {
		e.last = map[string]float64{}
	}
	ns := e.Namespace
	if ns == "" {
		ns = "Tasker"
	}
	groups := map[string]*emfGroup{}
	var order []string
	group := func(d *desc, values []string) *emfGroup {
		k := strings.Join(d.labels, "\xfe") + "\xfd" + key(values)
		g, ok := groups[k]
		if !ok {
			g = &emfGroup{labels: d.labels, values: values, fields: map[string]any{}}
			groups[k] = g
			order = append(order, k)
		}
		return g
	}
	for _, m := range e.Registry.list() {
		d := m.desc()
		switch d.kind {
		case "counter":
			for _, s := range m.snapshot() {
				k := d.name + "\xfd" + key(s.values)
				delta := s.value - e.last[k]
				e.last[k] = s.value
				if delta <= 0 {
					continue
				}
				g := group(d, s.values)
				g.fields[d.name] = delta
				g.metrics = append(g.metrics, emfMetric{d.name, d.unit})
			}
		case "gauge":
			for _, s := range m.snapshot() {
				g := group(d, s.values)
				g.fields[d.name] = s.value
				g.metrics = append(g.metrics, emfMetric{d.name, d.unit})
			}
		case "histogram":
			h := m.(*Histogram)
			for k, samples := range h.drainSamples() {
				values := strings.Split(k, "\xff")
				if len(d.labels) == 0 {
					values = nil
				}
				g := group(d, values)
				g.fields[d.name] = samples
				g.metrics = append(g.metrics, emfMetric{d.name, d.unit})
			}
		}
	}
	slices.Sort(order)
	ts := now.UnixMilli()
	for _, k := range order {
		g := groups[k]
		line := make(map[string]any, len(g.fields)+len(g.labels)+1)
		for n, v := range g.fields {
			line[n] = v
		}
		for i, l := range g.labels {
			line[l] = g.values[i]
		}
		dims := [][]string{}
		if len(g.labels) > 0 {
			dims = [][]string{g.labels}
		}
		line["_aws"] = map[string]any{
			"Timestamp": ts,
			"CloudWatchMetrics": []any{map[string]any{
				"Namespace": ns, "Dimensions": dims, "Metrics": g.metrics,
			}},
		}
		b, err := json.Marshal(line)
		if err != nil {
			return err
		}
		b = append(b, '\n')
		if _, err := e.W.Write(b); err != nil {
			return err
		}
	}
	return nil
}
