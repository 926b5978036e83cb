package graphql

import (
	"context"
	"errors"
	"time"

	"github.com/taskerhq/tasker/internal/engine"
)

// Analyst is what templateAnalytics asks of the engine; *engine.Engine
// implements it. An Engine without it answers not-found, as the REST
// route does.
type Analyst interface {
	TemplateAnalytics(ctx context.Context, q engine.AnalyticsQuery) (engine.TemplateAnalytics, error)
}

var _ Analyst = (*engine.Engine)(nil)

// TemplateAnalytics is GET /v1/analytics/templates/{namespace}/{name}.
func (r *queryResolver) TemplateAnalytics(ctx context.Context, namespace, name string, version, window *string) (*TemplateAnalytics, error) {
	a, ok := r.eng.(Analyst)
	if !ok {
		return nil, coded(CodeNotFound, "this deployment does not serve analytics")
	}
	for _, p := range []struct{ arg, v string }{{"namespace", namespace}, {"name", name}} {
		if err := checkName(p.arg, p.v); err != nil {
			return nil, err
		}
	}
	q := engine.AnalyticsQuery{Namespace: namespace, Name: name}
	if version != nil {
		if len(*version) > maxVersionLen {
			return nil, coded(CodeInvalidParameter, "version: at most %d characters", maxVersionLen)
		}
		q.Version = *version
	}
	if window != nil {
		d, err := time.ParseDuration(*window)
		if err != nil || d < time.Minute || d > engine.MaxAnalyticsWindow {
			return nil, coded(CodeInvalidParameter, "window: a duration from 1m to 2160h, such as 1h or 24h")
		}
		q.Window = d
	}
	if _, err := r.tpls.Get(q.Namespace, q.Name, q.Version); err != nil {
		return nil, err // template.ErrNotFound: not-found with its detail (known)
	}
	res, err := a.TemplateAnalytics(ctx, q)
	if err != nil {
		switch {
		case errors.Is(err, engine.ErrNotFound):
			return nil, coded(CodeNotFound, "no workflow %s/%s", namespace, name)
		case errors.Is(err, engine.ErrInvalid):
			return nil, coded(CodeInvalidParameter, "%s", err.Error())
		}
		return nil, err
	}
	out := &TemplateAnalytics{Namespace: res.Namespace, Name: res.Name, Version: res.Version, Since: res.Since, Until: res.Until,
		WindowSeconds: int(res.WindowSeconds), Tasks: int(res.Tasks), Truncated: res.Truncated,
		Steps: make([]StepAnalytics, len(res.Steps)), SlowestPath: res.SlowestPath, SlowestPathMs: res.SlowestPathMS}
	if out.SlowestPath == nil {
		out.SlowestPath = []string{}
	}
	for i, s := range res.Steps {
		out.Steps[i] = StepAnalytics{Step: s.Step, Runs: int(s.Runs), Failures: int(s.Failures), Retries: int(s.Retries),
			FailureRate: s.FailureRate, DurationMs: percentiles(s.DurationMS), QueueWaitMs: percentiles(s.QueueWaitMS)}
	}
	return out, nil
}

func percentiles(p *engine.Percentiles) *Percentiles {
	if p == nil {
		return nil
	}
	return &Percentiles{P50: p.P50, P95: p.P95, P99: p.P99}
}
