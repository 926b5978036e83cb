package engine

import (
	"context"
	"time"

	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/template"
)

// TemplateSchedules lists the schedules: entries of one template version,
// in entry order, with their state and next n fire times (n at most 100),
// as GET /v1/templates/{namespace}/{name} shows them. Only a workflow's
// latest loaded version is scheduled (docs/control-flow.md, "Schedules"):
// the entries of another version are listed with Loaded false and no
// state. The latest version's entries are recorded first, as
// GET /v1/schedules does, so a template loaded since the last sweep shows
// its first fire times.
func (e *Engine) TemplateSchedules(ctx context.Context, tpl *template.Template, n int) ([]ScheduleView, error) {
	out := make([]ScheduleView, len(tpl.Schedules))
	for i := range tpl.Schedules {
		s := &tpl.Schedules[i]
		out[i] = ScheduleView{Schedule: store.Schedule{ScheduleKey: store.ScheduleKey{Namespace: tpl.Namespace, Name: tpl.Name, Index: i},
			Spec: s.Spec}, Cron: s.Cron, Timezone: s.Timezone, CatchUp: s.CatchUp, Next: []time.Time{}}
		if s.Rate > 0 {
			out[i].Rate = s.Rate.String()
		}
	}
	latest, err := e.cfg.Templates.Get(tpl.Namespace, tpl.Name, "")
	if err != nil || latest != tpl || len(tpl.Schedules) == 0 {
		return out, nil
	}
	now := e.clock.Now()
	specs := make([]store.ScheduleSpec, len(tpl.Schedules))
	for i := range tpl.Schedules {
		s := &tpl.Schedules[i]
		specs[i] = store.ScheduleSpec{ScheduleKey: out[i].ScheduleKey, Spec: s.Spec, NextFireAt: s.Next(now)}
	}
	if err := e.store.SyncSchedules(ctx, now, specs); err != nil {
		return nil, err
	}
	rows, err := e.store.ListTemplateSchedules(ctx, tpl.Namespace, tpl.Name)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		if r.Index < len(out) && r.Spec == out[r.Index].Spec {
			out[r.Index] = e.scheduleView(r, n)
		}
	}
	return out, nil
}
