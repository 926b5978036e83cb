package api

import (
	"net/http"
	"strconv"

	"github.com/taskerhq/tasker/internal/engine"
)

// GET /v1/schedules?next=N: every schedule with its next N fire times
// (default 5, at most 100).
func (s *server) listSchedules(w http.ResponseWriter, r *http.Request) {
	q, err := query(r, []string{"next"})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	n := 5
	if q.Has("next") {
		v, err := strconv.Atoi(q.Get("next"))
		if err != nil || v < 0 || v > 100 {
			s.fail(w, r, badParam("next", "next must be an integer from 0 to 100"))
			return
		}
		n = v
	}
	views, err := s.eng.Schedules(r.Context(), n)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := ScheduleList{Schedules: make([]Schedule, len(views))}
	for i, v := range views {
		out.Schedules[i] = scheduleView(v)
	}
	s.writeJSON(w, r, http.StatusOK, out)
}

// POST /v1/schedules/{id}/pause
func (s *server) pauseSchedule(w http.ResponseWriter, r *http.Request) { s.setPaused(w, r, true) }

// POST /v1/schedules/{id}/resume
func (s *server) resumeSchedule(w http.ResponseWriter, r *http.Request) { s.setPaused(w, r, false) }

func (s *server) setPaused(w http.ResponseWriter, r *http.Request, paused bool) {
	if _, err := query(r, nil); err != nil {
		s.fail(w, r, err)
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		s.fail(w, r, badParam("id", "id must be a schedule id (a positive integer, from GET /v1/schedules)"))
		return
	}
	v, err := s.eng.PauseSchedule(r.Context(), id, paused)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, scheduleView(v))
}

func scheduleView(v engine.ScheduleView) Schedule {
	out := Schedule{ID: v.ID, Namespace: v.Namespace, Name: v.Name, Index: v.Index, Spec: v.Spec, Cron: v.Cron,
		Timezone: v.Timezone, Rate: v.Rate, CatchUp: v.CatchUp, Paused: v.Paused, Loaded: v.Loaded,
		NextFireAt: ts(v.NextFireAt), NextFires: make([]string, len(v.Next)), LastFiredAt: tsp(v.LastFiredAt)}
	for i, t := range v.Next {
		out.NextFires[i] = ts(t)
	}
	if v.LastTaskID != nil {
		id := v.LastTaskID.String()
		out.LastTaskID = &id
	}
	return out
}
