package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/template"
)

// Template analytics (docs/operating.md, "Template analytics"): per step of
// a template, over the tasks created in a window, how often it ran and
// failed and how long it took and waited, and the slowest path through the
// template's DAG. The figures come from the transitions of at most
// AnalyticsMaxTasks tasks (the newest of the window), read by key, so the
// cost is bounded by the window and the cap, never by the history.

// Analytics limits.
const (
	AnalyticsMaxTasks      = 10_000
	DefaultAnalyticsWindow = 24 * time.Hour
	MaxAnalyticsWindow     = 90 * 24 * time.Hour
)

// AnalyticsQuery selects a template and a window ending at Until (default
// now). The figures cover every version's tasks; Version picks the DAG the
// steps are ordered by and the slowest path is found in (default: the
// newest version that has every step seen in the window).
type AnalyticsQuery struct {
	Namespace, Name, Version string
	Window                   time.Duration
	Until                    time.Time
}

// Percentiles of a duration, in milliseconds.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
}

// StepAnalytics are one step's figures.
type StepAnalytics struct {
	Step string `json:"step"`
	// Runs counts attempts claimed; Failures those that failed
	// (retryable or not); Retries the attempts after the first.
	Runs        int64   `json:"runs"`
	Failures    int64   `json:"failures"`
	Retries     int64   `json:"retries"`
	FailureRate float64 `json:"failure_rate"`
	// DurationMS is claim to result; QueueWaitMS is from the moment a
	// first attempt became ready (its parents done, or the task created)
	// to its claim. Nil when no attempt qualified.
	DurationMS  *Percentiles `json:"duration_ms"`
	QueueWaitMS *Percentiles `json:"queue_wait_ms"`
}

// TemplateAnalytics are a template's figures over a window.
type TemplateAnalytics struct {
	Namespace     string    `json:"namespace"`
	Name          string    `json:"name"`
	Version       string    `json:"version"`
	Since         time.Time `json:"since"`
	Until         time.Time `json:"until"`
	WindowSeconds int64     `json:"window_seconds"`
	// Tasks counts the tasks examined; Truncated says the window held
	// more than AnalyticsMaxTasks and only the newest were examined.
	Tasks     int64           `json:"tasks"`
	Truncated bool            `json:"truncated"`
	Steps     []StepAnalytics `json:"steps"`
	// SlowestPath is the chain of dependent steps with the largest sum of
	// median queue wait and median duration, first to last, and that sum.
	SlowestPath   []string `json:"slowest_path"`
	SlowestPathMS float64  `json:"slowest_path_ms"`
}

// TemplateAnalytics returns a template's analytics. An unknown template is
// ErrNotFound; a window outside 1 minute to 90 days is ErrInvalid.
func (e *Engine) TemplateAnalytics(ctx context.Context, q AnalyticsQuery) (TemplateAnalytics, error) {
	tpl, err := e.cfg.Templates.Get(q.Namespace, q.Name, q.Version)
	if err != nil {
		return TemplateAnalytics{}, &Error{Kind: ErrNotFound, cause: fmt.Errorf("template %s/%s: %w", q.Namespace, q.Name, err)}
	}
	if q.Window == 0 {
		q.Window = DefaultAnalyticsWindow
	}
	if q.Window < time.Minute || q.Window > MaxAnalyticsWindow {
		return TemplateAnalytics{}, invalid("window %s: want 1m to %s", q.Window, MaxAnalyticsWindow)
	}
	if q.Until.IsZero() {
		q.Until = e.clock.Now()
	}
	since := q.Until.Add(-q.Window)
	n, stats, err := e.store.TemplateStats(ctx, q.Namespace, q.Name, since, q.Until, AnalyticsMaxTasks)
	if err != nil {
		return TemplateAnalytics{}, err
	}
	if q.Version == "" {
		tpl = e.analyticsVersion(tpl, stats)
	}
	out := TemplateAnalytics{Version: tpl.Version, Namespace: q.Namespace, Name: q.Name, Since: since.UTC(), Until: q.Until.UTC(),
		WindowSeconds: int64(q.Window / time.Second), Tasks: n, Truncated: n >= AnalyticsMaxTasks, Steps: []StepAnalytics{}}
	byName := map[string]StepAnalytics{}
	for _, s := range stats {
		sa := StepAnalytics{Step: s.Step, Runs: s.Runs, Failures: s.Failures, Retries: s.Retries,
			DurationMS: percentiles(s.DurationMS), QueueWaitMS: percentiles(s.QueueWaitMS)}
		if s.Runs > 0 {
			sa.FailureRate = float64(s.Failures) / float64(s.Runs)
		}
		byName[s.Step] = sa
	}
	// Template order; steps of older versions no longer in the template
	// come after.
	for _, st := range tpl.Steps {
		if sa, ok := byName[st.Name]; ok {
			out.Steps = append(out.Steps, sa)
			delete(byName, st.Name)
		} else {
			out.Steps = append(out.Steps, StepAnalytics{Step: st.Name})
		}
	}
	for _, s := range stats {
		if sa, ok := byName[s.Step]; ok {
			out.Steps = append(out.Steps, sa)
		}
	}
	out.SlowestPath, out.SlowestPathMS = slowestPath(tpl, out.Steps)
	return out, nil
}

// analyticsVersion is the newest version of tpl's workflow whose steps
// include every step seen, or tpl.
func (e *Engine) analyticsVersion(tpl *template.Template, stats []store.StepStats) *template.Template {
	vs := e.cfg.Templates.Versions(tpl.Namespace, tpl.Name)
	for i := len(vs) - 1; i >= 0; i-- {
		has := map[string]bool{}
		for _, st := range vs[i].Steps {
			has[st.Name] = true
		}
		all := true
		for _, s := range stats {
			all = all && has[s.Step]
		}
		if all {
			return vs[i]
		}
	}
	return tpl
}

func percentiles(v []float64) *Percentiles {
	if len(v) != 3 {
		return nil
	}
	return &Percentiles{P50: v[0], P95: v[1], P99: v[2]}
}

// slowestPath is the longest path through the template's DAG, weighing each
// step by its median queue wait plus median duration (steps are in
// dependency order in a template, so one pass suffices).
func slowestPath(tpl *template.Template, steps []StepAnalytics) ([]string, float64) {
	weight := map[string]float64{}
	for _, s := range steps {
		w := 0.0
		if s.DurationMS != nil {
			w += s.DurationMS.P50
		}
		if s.QueueWaitMS != nil {
			w += s.QueueWaitMS.P50
		}
		weight[s.Step] = w
	}
	best := map[string]float64{}
	prev := map[string]string{}
	// Templates list a step after its dependencies (template.Parse checks
	// the graph); iterate until stable in case one does not.
	for range len(tpl.Steps) {
		changed := false
		for _, st := range tpl.Steps {
			b, p := 0.0, ""
			for _, d := range st.DependsOn {
				if v, ok := best[d]; ok && (p == "" || v > b) {
					b, p = v, d
				}
			}
			v := b + weight[st.Name]
			if old, ok := best[st.Name]; !ok || v > old || prev[st.Name] != p {
				if !ok || v != old || prev[st.Name] != p {
					changed = true
				}
				best[st.Name], prev[st.Name] = v, p
			}
		}
		if !changed {
			break
		}
	}
	end, total := "", -1.0
	for _, st := range tpl.Steps {
		if best[st.Name] > total {
			end, total = st.Name, best[st.Name]
		}
	}
	if end == "" {
		return []string{}, 0
	}
	var path []string
	for s := end; s != ""; s = prev[s] {
		path = append([]string{s}, path...)
		if len(path) > len(tpl.Steps) {
			break
		}
	}
	return path, total
}
