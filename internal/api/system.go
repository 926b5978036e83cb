package api

import (
	"context"
	_ "embed"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/template"
	"github.com/taskerhq/tasker/internal/wire"
)

// GET /v1/templates
func (s *server) listTemplates(w http.ResponseWriter, r *http.Request) {
	q, err := query(r, []string{"namespace"})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ns := q.Get("namespace")
	if q.Has("namespace") && !template.ValidName(ns) {
		s.fail(w, r, badParam("namespace", "namespace must be 1-128 letters, digits, '_', '.' or '-'"))
		return
	}
	out := TemplateList{Templates: []TemplateSummary{}}
	seen := map[string]bool{}
	for _, t := range s.tpls.List() {
		key := t.Namespace + "/" + t.Name
		if seen[key] || (ns != "" && t.Namespace != ns) {
			continue
		}
		seen[key] = true
		latest, err := s.tpls.Get(t.Namespace, t.Name, "")
		if err != nil {
			s.fail(w, r, err)
			return
		}
		out.Templates = append(out.Templates, TemplateSummary{
			Namespace: latest.Namespace, Name: latest.Name, Version: latest.Version,
			Versions: versionsOf(s.tpls, t.Namespace, t.Name), Description: latest.Description,
			StepCount: len(latest.Steps),
		})
	}
	s.writeJSON(w, r, http.StatusOK, out)
}

// GET /v1/templates/{namespace}/{name}?version=
func (s *server) getTemplate(w http.ResponseWriter, r *http.Request) {
	q, err := query(r, []string{"version"})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	for _, p := range []struct{ param, v string }{{"namespace", ns}, {"name", name}} {
		if !template.ValidName(p.v) {
			s.fail(w, r, badParam(p.param, p.param+" must be 1-128 letters, digits, '_', '.' or '-'"))
			return
		}
	}
	version := q.Get("version")
	if len(version) > maxVersionLen {
		s.fail(w, r, badParam("version", "version is too long"))
		return
	}
	t, err := s.tpls.Get(ns, name, version)
	if err != nil {
		s.fail(w, r, err) // template.ErrNotFound: a 404 naming what is missing (problemFor)
		return
	}
	out := templateDetail(s.tpls, t)
	scheds, err := s.eng.TemplateSchedules(r.Context(), t, templateNextFires)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out.Schedules = make([]wire.TemplateSchedule, len(scheds))
	for i, v := range scheds {
		out.Schedules[i] = templateScheduleView(v)
	}
	s.writeJSON(w, r, http.StatusOK, out)
}

// templateNextFires is how many fire times a template's schedules show.
const templateNextFires = 3

func templateScheduleView(v engine.ScheduleView) wire.TemplateSchedule {
	out := wire.TemplateSchedule{Index: v.Index, Spec: v.Spec, Cron: v.Cron, Timezone: v.Timezone, Rate: v.Rate,
		CatchUp: v.CatchUp, Scheduled: v.Loaded, Paused: v.Paused, NextFires: make([]string, len(v.Next))}
	if v.CatchUp == "" {
		out.CatchUp = template.CatchUpLatest
	}
	if v.Loaded {
		id := v.ID
		out.ID = &id
	}
	for i, t := range v.Next {
		out.NextFires[i] = ts(t)
	}
	return out
}

// GET /v1/health/live: the process answers.
func (s *server) live(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, r, http.StatusOK, Health{Status: "ok"})
}

// readyTimeout bounds the readiness probe's database ping.
const readyTimeout = 2 * time.Second

// GET /v1/health/ready: the database answers within readyTimeout.
func (s *server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.log.WarnContext(r.Context(), "readiness check failed", "error", err)
		s.writeProblem(w, r, newProblem(http.StatusServiceUnavailable, TypeUnavailable, "the database is not reachable"))
		return
	}
	s.writeJSON(w, r, http.StatusOK, Health{Status: "ready"})
}

// statusWindow is the window of the recent step outcomes in the status.
const statusWindow = 5 * time.Minute

// GET /v1/health/status
func (s *server) status(w http.ResponseWriter, r *http.Request) {
	if _, err := query(r, nil); err != nil {
		s.fail(w, r, err)
		return
	}
	now := time.Now().UTC()
	st, err := s.store.Status(r.Context(), now.Add(-statusWindow))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	hs, capN := s.eng.Health()
	out := SystemStatus{
		Status: "ok", Time: ts(now), Tasks: st.Tasks, Steps: st.LiveSteps,
		InFlight: InFlight{Current: st.InFlight},
		Recent: Recent{WindowSeconds: int(statusWindow / time.Second), Completed: st.RecentCompleted,
			Retried: st.RecentRetried, Failed: st.RecentFailed},
		Engine: EngineHealth{InstanceID: s.eng.InstanceID(), RecentResults: hs.RecentResults,
			RecentFailures: hs.RecentFailures, ErrorRate: hs.ErrorRate, PoolPressure: hs.PoolPressure, CapFactor: hs.CapFactor,
			Instances: hs.Instances, Connections: hs.Connections, MaxConnections: hs.MaxConnections, CommitMS: hs.CommitMS,
			PoolWaitMS: hs.PoolWaitMS, Throttles: hs.Throttles},
		Templates: s.tpls.Len(),
	}
	if total := st.RecentCompleted + st.RecentRetried + st.RecentFailed; total > 0 {
		out.Recent.ErrorRate = float64(st.RecentRetried+st.RecentFailed) / float64(total)
	}
	if capN > 0 {
		out.InFlight.Cap = &capN
		maxN := hs.MaxLimit
		out.InFlight.Max = &maxN
	}
	out.InFlight.Reason, out.InFlight.Detail = hs.Reason, hs.Detail
	if hs.CapFactor < 1 {
		out.Status = "degraded"
	}
	s.writeJSON(w, r, http.StatusOK, out)
}

// GET /v1/metrics
func (s *server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if s.metrics == nil {
		s.writeProblem(w, r, notFound("metrics are not served by this deployment"))
		return
	}
	s.metrics.ServeHTTP(w, r)
}

//go:embed openapi.json
var openAPIJSON []byte

var openAPIOnce = sync.OnceValues(func() (map[string]any, error) {
	var doc map[string]any
	if err := json.Unmarshal(openAPIJSON, &doc); err != nil {
		return nil, err
	}
	return doc, nil
})

func openAPIDocument() (map[string]any, error) { return openAPIOnce() }

// OpenAPI returns the embedded OpenAPI 3.1 document.
func OpenAPI() []byte { return append([]byte(nil), openAPIJSON...) }

// GET /v1/openapi.json
func (s *server) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(openAPIJSON)
}
