package template_test

import (
	"strings"
	"testing"
	"time"

	"github.com/taskerhq/tasker/internal/template"
)

func scheduled(s string) string {
	return "name: wf\nsteps:\n  - name: a\n    handler: tasker.noop\nschedules:\n" + s
}

func TestSchedulesValidation(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		yaml string
		want []string // substrings of the error; nil = loads
	}{
		{"cron", `  - {cron: "0 9 * * MON-FRI", timezone: Europe/Berlin, context: {a: 1}}`, nil},
		{"rate", `  - {rate: "5 minutes", catch_up: all}`, nil},
		{"rate duration", `  - {rate: 90m}`, nil},
		{"neither", `  - {context: {}}`, []string{`field "schedules[0].cron"`, "needs a cron expression or a rate"}},
		{"both", `  - {cron: "* * * * *", rate: "1 minute"}`, []string{`field "schedules[0].rate"`, "not both"}},
		{"too fast", `  - {rate: 30s}`, []string{`field "schedules[0].rate"`, "at least 1 minute"}},
		{"bad cron", `  - {cron: "61 * * * *"}`, []string{`field "schedules[0].cron"`, "invalid cron expression"}},
		{"bad zone", `  - {cron: "0 * * * *", timezone: Mars/Olympus}`, []string{`field "schedules[0].timezone"`, "unknown time zone"}},
		{"zone on rate", `  - {rate: 1 hour, timezone: UTC}`, []string{`field "schedules[0].timezone"`, "only valid with cron"}},
		{"bad unit", `  - {rate: 5 fortnights}`, []string{`field "schedules[0].rate"`, "unknown unit"}},
		{"bad catch-up", `  - {rate: 5 minutes, catch_up: some}`, []string{`field "schedules[0].catch_up"`, "want"}},
		{"unknown field", `  - {rate: 5 minutes, every: 3}`, []string{`schedules[0].every`}},
		{"not a list", `  {rate: 5 minutes}`, []string{`field "schedules"`, "list"}},
		{"never", `  - {cron: "0 0 30 2 *"}`, []string{`field "schedules[0].cron"`, "never fires"}},
		{"every", `  - {cron: "@every 30s"}`, []string{"use rate"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := template.Parse("s.yaml", []byte(scheduled(tc.yaml)), template.Options{})
			if tc.want == nil {
				if err != nil {
					t.Fatalf("want no error, got %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("want an error with %q, got none", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestScheduleNext(t *testing.T) {
	t.Parallel()
	tp, err := template.Parse("s.yaml", []byte(scheduled(`  - {cron: "0 9 * * MON-FRI", timezone: Europe/Berlin}
  - {rate: "5 minutes"}`)), template.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Friday 2026-12-04 10:00 UTC: the next weekday 09:00 Berlin (UTC+1) is Monday 08:00 UTC.
	from := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	if got, want := tp.Schedules[0].Next(from), time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("cron next = %s, want %s", got, want)
	}
	if got, want := tp.Schedules[1].Next(from.Add(time.Second)), from.Add(5*time.Minute); !got.Equal(want) {
		t.Errorf("rate next = %s, want %s", got, want)
	}
	if tp.Schedules[0].Spec != "cron(0 9 * * MON-FRI) Europe/Berlin" || tp.Schedules[1].Spec != "rate(5m0s)" {
		t.Errorf("specs = %q, %q", tp.Schedules[0].Spec, tp.Schedules[1].Spec)
	}
	if tp.Schedules[1].CatchUp != template.CatchUpLatest {
		t.Errorf("default catch_up = %q", tp.Schedules[1].CatchUp)
	}
}
