package template_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/taskerhq/tasker/internal/template"
)

func waitStep(handler, config string) string {
	return "name: wf\nsteps:\n  - name: w\n    handler: " + handler + "\n    config: {" + config + "}\n"
}

func TestWaitAndCallbackConfigValidation(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		yaml string
		want []string // substrings of the one error; nil = loads
	}{
		{"seconds", waitStep("tasker.wait", "seconds: 1800"), nil},
		{"zero seconds", waitStep("tasker.wait", "seconds: 0"), nil},
		{"fractional seconds", waitStep("tasker.wait", "seconds: 1.5"), nil},
		{"until", waitStep("tasker.wait", `until: "2027-03-01T09:00:00Z"`), nil},
		{"until placeholder", waitStep("tasker.wait", `until: "${context.renew_at}"`), nil},
		{"seconds placeholder", waitStep("tasker.wait", `seconds: "${context.delay}"`), nil},
		{"neither", waitStep("tasker.wait", ""), []string{`step "w"`, `field "config.seconds"`, "needs config.seconds or config.until"}},
		{"both", waitStep("tasker.wait", `seconds: 5, until: "2027-03-01T09:00:00Z"`), []string{`field "config.seconds"`, "not both"}},
		{"negative", waitStep("tasker.wait", "seconds: -1"), []string{`field "config.seconds"`, "from 0 to"}},
		{"string seconds", waitStep("tasker.wait", `seconds: "soon"`), []string{`field "config.seconds"`}},
		{"bad until", waitStep("tasker.wait", `until: "next tuesday"`), []string{`field "config.until"`, "RFC 3339"}},
		{"callback default", waitStep("tasker.callback", ""), nil},
		{"callback timeout", waitStep("tasker.callback", "timeout_seconds: 31536000"), nil},
		{"callback notify", waitStep("tasker.callback", `notify: {url: "https://approvals.example/${context.id}", method: PUT}`), nil},
		{"callback timeout too long", waitStep("tasker.callback", "timeout_seconds: 31536001"), []string{`field "config.timeout_seconds"`, "from 1 to 31536000"}},
		{"callback timeout zero", waitStep("tasker.callback", "timeout_seconds: 0"), []string{`field "config.timeout_seconds"`}},
		{"callback timeout fraction", waitStep("tasker.callback", "timeout_seconds: 1.5"), []string{`field "config.timeout_seconds"`, "whole number"}},
		{"notify not a mapping", waitStep("tasker.callback", `notify: "https://a.example"`), []string{`field "config.notify"`, "mapping"}},
		{"notify without url", waitStep("tasker.callback", `notify: {method: POST}`), []string{`field "config.notify.url"`, "required"}},
		{"notify file url", waitStep("tasker.callback", `notify: {url: "file:///etc/passwd"}`), []string{`field "config.notify.url"`, "http or https"}},
		{"unknown built-in", waitStep("tasker.sleep", ""), []string{`unknown built-in handler "tasker.sleep"`, "tasker.wait", "tasker.callback"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := template.Parse("bad.yaml", []byte(tc.yaml), template.Options{Env: "development"})
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse succeeded, want an error containing %q", tc.want)
			}
			assertOneError(t, err, tc.want)
		})
	}
}

func TestWaitConfigDue(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)
	cases := []struct {
		config, context string
		want            time.Time
		err             string
	}{
		{`{"seconds":1800}`, `{}`, now.Add(30 * time.Minute), ""},
		{`{"seconds":"${context.d}"}`, `{"d":90}`, now.Add(90 * time.Second), ""},
		{`{"until":"2027-03-01T09:00:00+01:00"}`, `{}`, time.Date(2027, 3, 1, 8, 0, 0, 0, time.UTC), ""},
		{`{"until":"${context.at}"}`, `{"at":"2027-01-01T00:00:00Z"}`, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), ""},
		{`{"until":"${context.order.renews}"}`, `{"order":{"renews":"2027-01-01T00:00:00Z"}}`, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), ""},
		{`{"until":"${context.at}"}`, `{}`, time.Time{}, "${context.at} is not a string or number"},
		{`{"until":"${context.at}"}`, `{"at":"tomorrow"}`, time.Time{}, "RFC 3339"},
		{`{"seconds":"${context.d}"}`, `{"d":-4}`, time.Time{}, "number of seconds"},
	}
	for _, tc := range cases {
		cfg, err := template.ParseWaitConfig(json.RawMessage(tc.config))
		if err != nil {
			t.Fatalf("%s: %v", tc.config, err)
		}
		got, err := cfg.Due(now, json.RawMessage(tc.context))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s with %s: %v, want an error containing %q", tc.config, tc.context, err, tc.err)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("%s with %s = %s, %v; want %s", tc.config, tc.context, got, err, tc.want)
		}
	}
}
