package template_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/taskerhq/tasker/internal/template"
)

// httpStep is a one-step tasker.http template with the given flow-mapping
// config body.
func httpStep(config string) string {
	return "name: wf\nsteps:\n  - name: call\n    handler: tasker.http\n    config: {" + config + "}\n"
}

func TestHTTPStepConfigValidation(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		yaml string
		want []string // substrings of one error; nil = the template loads
	}{
		{"https", httpStep(`url: "https://api.example.com/orders/${context.order_id}", method: PATCH, timeout_seconds: 12.5`), nil},
		{"http with port", httpStep(`url: "http://localhost:8080/x?id=${context.id}", method: get, timeout_seconds: 900`), nil},
		{"custom method token", httpStep(`url: "https://a.example", method: "PURGE"`), nil},
		{"file url", httpStep(`url: "file:///etc/passwd"`), []string{`bad.yaml:`, `step "call"`, `field "config.url"`, "must use http or https"}},
		{"gopher url", httpStep(`url: "gopher://a.example:70/x"`), []string{`field "config.url"`, "must use http or https"}},
		{"relative url", httpStep(`url: "/orders"`), []string{`field "config.url"`, "must use http or https"}},
		{"no host", httpStep(`url: "https:///orders"`), []string{`field "config.url"`, "has no host"}},
		{"placeholder scheme", httpStep(`url: "${context.u}"`), []string{`field "config.url"`, "placeholder before its path"}},
		{"placeholder host", httpStep(`url: "https://${context.host}/x"`), []string{`field "config.url"`, "placeholder before its path"}},
		{"placeholder after host", httpStep(`url: "https://api.partner.example${context.path}"`), []string{`field "config.url"`, "placeholder before its path"}},
		{"placeholder port", httpStep(`url: "https://a.example:${context.port}/x"`), []string{`field "config.url"`, "placeholder before its path"}},
		{"placeholder in query", httpStep(`url: "https://a.example?q=${context.q}"`), nil},
		{"redirects same origin", httpStep(`url: "https://a.example", follow_redirects: same_origin`), nil},
		{"redirects unknown", httpStep(`url: "https://a.example", follow_redirects: always`), []string{`field "config.follow_redirects"`, "never or same_origin"}},
		{"unparsable url", httpStep(`url: "https://a b.example/"`), []string{`field "config.url"`, "invalid URL"}},
		{"crlf in method", httpStep(`url: "https://a.example", method: "GET\r\nX-Injected: 1"`), []string{`step "call"`, `field "config.method"`, "must be an HTTP method name"}},
		{"space in method", httpStep(`url: "https://a.example", method: "GET /admin"`), []string{`field "config.method"`}},
		{"empty method", httpStep(`url: "https://a.example", method: ""`), []string{`field "config.method"`}},
		{"numeric method", httpStep(`url: "https://a.example", method: 7`), []string{`field "config.method"`}},
		{"timeout overflows duration", httpStep(`url: "https://a.example", timeout_seconds: 1e10`), []string{`step "call"`, `field "config.timeout_seconds"`, "at most 900"}},
		{"huge integer timeout", httpStep(`url: "https://a.example", timeout_seconds: 9223372036854775807`), []string{`field "config.timeout_seconds"`}},
		{"negative timeout", httpStep(`url: "https://a.example", timeout_seconds: -5`), []string{`field "config.timeout_seconds"`, "greater than 0"}},
		{"zero timeout", httpStep(`url: "https://a.example", timeout_seconds: 0`), []string{`field "config.timeout_seconds"`}},
		{"string timeout", httpStep(`url: "https://a.example", timeout_seconds: "30"`), []string{`field "config.timeout_seconds"`, `got "30"`}},
		{
			"bad url in the selected environment",
			httpStep(`url: "https://a.example"`) + "environments:\n  development:\n    step_templates:\n      - {name: call, handler_config: {url: \"file:///etc/passwd\"}}\n",
			[]string{`step "call"`, `field "config.url"`, "must use http or https"},
		},
		{
			"bad url in another environment",
			httpStep(`url: "https://a.example"`) + "environments:\n  production:\n    step_templates:\n      - {name: call, handler_config: {url: \"file:///etc/passwd\", method: \"GET\\r\\n\"}}\n",
			[]string{`step "call"`, `field "environments.production.step_templates[0].handler_config.url"`, "must use http or https"},
		},
		{
			// Rails templates put timeout_seconds in the config of their own
			// handlers; only tasker.http gives it a meaning to check.
			"other handlers' config is theirs",
			"name: wf\nsteps:\n  - {name: a, handler: shop.a, config: {url: \"file:///x\", method: \"a b\", timeout_seconds: 1e12}}\n",
			nil,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tpl, err := template.Parse("bad.yaml", []byte(tc.yaml), template.Options{Env: "development"})
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse succeeded (%s), want an error containing %q", tpl.Key(), tc.want)
			}
			assertOneError(t, err, tc.want)
		})
	}
}

// The step's own timeout_seconds is bounded too; values that would overflow
// an int or a time.Duration are refused, not wrapped.
func TestStepTimeoutSecondsRange(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"0", "-1", "901", "1e10", "9223372036854775807", "18446744073709551616", "0x7fffffffffffffff", "2.5"} {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			src := "name: wf\nsteps:\n  - {name: a, handler: tasker.noop, timeout_seconds: " + v + "}\n"
			_, err := template.Parse("bad.yaml", []byte(src), template.Options{Env: "development"})
			if err == nil {
				t.Fatalf("timeout_seconds: %s accepted", v)
			}
			assertOneError(t, err, []string{`step "a"`, `field "timeout_seconds"`})
		})
	}
}

// assertOneError fails unless one error in err contains every one of want.
func assertOneError(t *testing.T, err error, want []string) {
	t.Helper()
	var es template.Errors
	if !errors.As(err, &es) {
		t.Fatalf("error is %T, want template.Errors: %v", err, err)
	}
	for _, e := range es {
		if containsAll(e.Error(), want) {
			return
		}
	}
	t.Fatalf("no error contains all of %q; got:\n%v", want, strings.TrimSpace(err.Error()))
}
