package api_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/taskerhq/tasker/internal/api"
	"github.com/taskerhq/tasker/internal/auth"
)

const nightlyYAML = `
namespace: ops
name: nightly
version: 1.0.0
steps:
  - {name: run, handler: tasker.noop}
schedules:
  - {cron: "0 2 * * *", timezone: Europe/Berlin}
  - {rate: "15 minutes", catch_up: none}
`

func TestSchedulesListPauseResume(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{auth: true, templates: []string{nightlyYAML}})
	read, manage := e.token("ops", auth.SchedulesRead), e.token("ops", auth.SchedulesManage)

	r := e.get("/v1/schedules?next=3", read)
	wantStatus(t, r, http.StatusOK)
	var list api.ScheduleList
	r.decode(t, &list)
	if len(list.Schedules) != 2 {
		t.Fatalf("schedules = %+v", list.Schedules)
	}
	cron := list.Schedules[0]
	if cron.Namespace != "ops" || cron.Name != "nightly" || cron.Index != 0 || cron.Timezone != "Europe/Berlin" ||
		cron.CatchUp != "latest" || !cron.Loaded || cron.Paused || len(cron.NextFires) != 3 {
		t.Errorf("cron schedule = %+v", cron)
	}
	if rate := list.Schedules[1]; rate.Rate != "15m0s" || rate.CatchUp != "none" {
		t.Errorf("rate schedule = %+v", rate)
	}

	// Pausing needs schedules:manage.
	wantProblem(t, e.post(fmt.Sprintf("/v1/schedules/%d/pause", cron.ID), nil, read), http.StatusForbidden, "forbidden")
	r = e.post(fmt.Sprintf("/v1/schedules/%d/pause", cron.ID), nil, manage)
	wantStatus(t, r, http.StatusOK)
	var s api.Schedule
	r.decode(t, &s)
	if !s.Paused || len(s.NextFires) != 0 {
		t.Errorf("paused = %+v", s)
	}
	r = e.post(fmt.Sprintf("/v1/schedules/%d/resume", cron.ID), nil, manage)
	wantStatus(t, r, http.StatusOK)
	r.decode(t, &s)
	if s.Paused || len(s.NextFires) == 0 {
		t.Errorf("resumed = %+v", s)
	}
	wantProblem(t, e.post("/v1/schedules/999/pause", nil, manage), http.StatusNotFound, "not-found")
	wantProblem(t, e.post("/v1/schedules/x/pause", nil, manage), http.StatusBadRequest, "invalid-parameter")
	wantProblem(t, e.get("/v1/schedules?next=101", read), http.StatusBadRequest, "invalid-parameter")
}
