package api_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/taskerhq/tasker/internal/api"
	"github.com/taskerhq/tasker/internal/wire"
)

const nightlyOldYAML = `
namespace: ops
name: nightly
version: 0.9.0
steps:
  - {name: run, handler: tasker.noop}
schedules:
  - {rate: "1 hour", catch_up: all}
`

// The template detail lists the version's schedules with their state and
// next 3 fire times, from the same rows as GET /v1/schedules; a version
// that is not the latest is not scheduled.
func TestTemplateDetailSchedules(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{templates: []string{nightlyYAML, nightlyOldYAML}})
	detail := func(path string) wire.TemplateDetail {
		t.Helper()
		r := e.get(path, "")
		wantStatus(t, r, http.StatusOK)
		var d wire.TemplateDetail
		r.decode(t, &d)
		return d
	}
	now := e.clock.Now()
	d := detail("/v1/templates/ops/nightly")
	if d.Version != "1.0.0" || len(d.Schedules) != 2 {
		t.Fatalf("schedules of %s: %+v", d.Version, d.Schedules)
	}
	cron, rate := d.Schedules[0], d.Schedules[1]
	if cron.Index != 0 || cron.Cron != "0 2 * * *" || cron.Timezone != "Europe/Berlin" || cron.CatchUp != "latest" || !cron.Scheduled ||
		cron.Paused || cron.ID == nil || len(cron.NextFires) != 3 {
		t.Errorf("cron entry %+v", cron)
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	for i, f := range cron.NextFires {
		at, err := time.Parse(time.RFC3339Nano, f)
		if err != nil || !at.After(now) || at.In(berlin).Hour() != 2 || at.In(berlin).Minute() != 0 {
			t.Errorf("cron fire time %d: %s, %v", i, f, err)
		}
	}
	want := []string{}
	for i := 1; i <= 3; i++ {
		want = append(want, now.UTC().Truncate(15*time.Minute).Add(time.Duration(i)*15*time.Minute).Format(time.RFC3339Nano))
	}
	if rate.Rate != "15m0s" || rate.CatchUp != "none" || rate.Cron != "" || fmt.Sprint(rate.NextFires) != fmt.Sprint(want) {
		t.Errorf("rate entry %+v, want fire times %v", rate, want)
	}

	// The same schedules as GET /v1/schedules; a pause shows here too.
	var list api.ScheduleList
	e.get("/v1/schedules?next=3", "").decode(t, &list)
	if len(list.Schedules) != 2 || list.Schedules[0].ID != *cron.ID || list.Schedules[1].ID != *rate.ID ||
		fmt.Sprint(list.Schedules[1].NextFires) != fmt.Sprint(rate.NextFires) {
		t.Errorf("GET /v1/schedules: %+v", list.Schedules)
	}
	wantStatus(t, e.post(fmt.Sprintf("/v1/schedules/%d/pause", *rate.ID), nil, ""), http.StatusOK)
	if rate := detail("/v1/templates/ops/nightly").Schedules[1]; !rate.Paused || len(rate.NextFires) != 0 || !rate.Scheduled {
		t.Errorf("paused rate entry %+v", rate)
	}

	// An older version's entries are listed, not scheduled.
	d = detail("/v1/templates/ops/nightly?version=0.9.0")
	if len(d.Schedules) != 1 || d.Schedules[0].Scheduled || d.Schedules[0].ID != nil || d.Schedules[0].Rate != "1h0m0s" ||
		d.Schedules[0].CatchUp != "all" || len(d.Schedules[0].NextFires) != 0 {
		t.Errorf("the older version's schedules: %+v", d.Schedules)
	}
	// A template without schedules lists none.
	if d := detail("/v1/templates/shop/order"); d.Schedules == nil || len(d.Schedules) != 0 {
		t.Errorf("shop/order schedules: %#v", d.Schedules)
	}
}
