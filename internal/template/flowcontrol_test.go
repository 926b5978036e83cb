package template

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestConcurrencyField(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, value string
		err         string // "" for a template that loads
		limit       int
		key         string
	}{
		{name: "integer", value: "3", limit: 3},
		{name: "keyed", value: `{limit: 2, key: "${context.customer_id}"}`, limit: 2, key: "${context.customer_id}"},
		{name: "composite key", value: `{limit: 1, key: "${context.org}/${context.region}"}`, limit: 1, key: "${context.org}/${context.region}"},
		{name: "negative", value: "-1", err: "must be 0 (unlimited) or more"},
		{name: "no limit", value: `{key: "${context.x}"}`, err: "limit must be an integer of 1 or more"},
		{name: "zero limit", value: `{limit: 0, key: "${context.x}"}`, err: "limit must be an integer of 1 or more"},
		{name: "no key", value: `{limit: 2}`, err: "key must be a non-empty string"},
		{name: "constant key", value: `{limit: 2, key: acme}`, err: "has no ${context.x} placeholder"},
		{name: "bad placeholder", value: `{limit: 2, key: "${context.x}-${task.id}"}`, err: "only ${context.path} placeholders"},
		{name: "unknown field", value: `{limit: 2, key: "${context.x}", per: 1}`, err: `unknown field "per"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := "name: flow\nsteps:\n  - name: sync\n    handler: tasker.noop\n    concurrency: " + tc.value + "\n"
			tpl, err := Parse("flow.yaml", []byte(src), Options{})
			if tc.err != "" {
				var te *Error
				if !errors.As(err, &te) || te.File != "flow.yaml" || te.Step != "sync" || te.Field != "concurrency" ||
					!strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v (%+v), want one naming flow.yaml, step sync, field concurrency and saying %q", err, te, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			st, _ := tpl.Step("sync")
			if st.Concurrency != tc.limit || st.ConcurrencyKey != tc.key {
				t.Fatalf("concurrency = %d key %q, want %d %q", st.Concurrency, st.ConcurrencyKey, tc.limit, tc.key)
			}
		})
	}
}

func TestResolveConcurrencyKey(t *testing.T) {
	t.Parallel()
	cases := []struct{ key, ctx, want, err string }{
		{key: "${context.customer}", ctx: `{"customer":"acme"}`, want: "acme"},
		{key: "${context.org.id}-${context.n}", ctx: `{"org":{"id":"o1"},"n":7}`, want: "o1-7"},
		{key: "${context.customer}", ctx: `{}`, err: "step sync: concurrency.key: ${context.customer} is not a string or number"},
		{key: "${context.customer}", ctx: `{"customer":"` + strings.Repeat("x", MaxConcurrencyKeyBytes+1) + `"}`, err: "over 256"},
	}
	for _, tc := range cases {
		s := &Step{Name: "sync", ConcurrencyKey: tc.key}
		got, err := s.ResolveConcurrencyKey(json.RawMessage(tc.ctx))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s with %s: err = %v, want %q", tc.key, tc.ctx, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s with %s = %q, %v; want %q", tc.key, tc.ctx, got, err, tc.want)
		}
	}
}

func TestRateLimitField(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, handler, extra, value string
		err                         string // "" for a template that loads
		want                        RateLimit
	}{
		{name: "keyed", value: `{per_second: 2, burst: 5, key: "${context.customer}"}`, want: RateLimit{2, 5, "${context.customer}"}},
		{name: "default burst", value: `{per_second: 2.5}`, want: RateLimit{2.5, 3, ""}},
		{name: "fraction", value: `{per_second: 0.5}`, want: RateLimit{0.5, 1, ""}},
		{name: "http", handler: "tasker.http", extra: "\n    config: {url: \"https://example.com\"}", value: `{per_second: 1}`, want: RateLimit{1, 1, ""}},
		{name: "zero rate", value: `{per_second: 0}`, err: "per_second must be a number above 0"},
		{name: "too fast", value: `{per_second: 10001}`, err: "at most 10000"},
		{name: "rate a string", value: `{per_second: fast}`, err: `per_second must be a number above 0 and at most 10000 (0.5 is one start every 2 s), got "fast"`},
		{name: "no rate", value: `{burst: 2}`, err: "per_second must be a number"},
		{name: "fractional burst", value: `{per_second: 1, burst: 1.5}`, err: "burst must be an integer from 1"},
		{name: "zero burst", value: `{per_second: 1, burst: 0}`, err: "burst must be an integer from 1"},
		{name: "constant key", value: `{per_second: 1, key: acme}`, err: "has no ${context.x} placeholder"},
		{name: "bad placeholder", value: `{per_second: 1, key: "${task.id}${context.x}"}`, err: "only ${context.path} placeholders"},
		{name: "unknown field", value: `{per_second: 1, per_minute: 2}`, err: `unknown field "per_minute"`},
		{name: "not a mapping", value: `5`, err: "mapping"},
		{name: "wait", handler: "tasker.wait", extra: "\n    config: {seconds: 5}", value: `{per_second: 1}`, err: "tasker.wait starts no handler"},
		{name: "callback", handler: "tasker.callback", value: `{per_second: 1}`, err: "tasker.callback starts no handler"},
		{name: "map", extra: "\n    map: {over: \"context.items\"}", value: `{per_second: 1}`, err: "rate_limit on a map step is not supported"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			handler := tc.handler
			if handler == "" {
				handler = "tasker.noop"
			}
			src := "name: flow\nsteps:\n  - name: sync\n    handler: " + handler + tc.extra + "\n    rate_limit: " + tc.value + "\n"
			tpl, err := Parse("flow.yaml", []byte(src), Options{})
			if tc.err != "" {
				var te *Error
				if !errors.As(err, &te) || te.File != "flow.yaml" || te.Step != "sync" || te.Field != "rate_limit" ||
					!strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v (%+v), want one naming flow.yaml, step sync, field rate_limit and saying %q", err, te, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			st, _ := tpl.Step("sync")
			if st.RateLimit == nil || *st.RateLimit != tc.want {
				t.Fatalf("rate_limit = %+v, want %+v", st.RateLimit, tc.want)
			}
		})
	}
}

func TestResolveRateLimitKey(t *testing.T) {
	t.Parallel()
	s := &Step{Name: "sync", RateLimit: &RateLimit{PerSecond: 1, Burst: 1, Key: "${context.customer}"}}
	if got, err := s.ResolveRateLimitKey(json.RawMessage(`{"customer":"acme"}`)); err != nil || got != "acme" {
		t.Fatalf("= %q, %v; want acme", got, err)
	}
	if _, err := s.ResolveRateLimitKey(json.RawMessage(`{}`)); err == nil || !strings.Contains(err.Error(), "step sync: rate_limit.key") {
		t.Fatalf("err = %v, want one naming step sync's rate_limit.key", err)
	}
	unkeyed := &Step{Name: "sync", RateLimit: &RateLimit{PerSecond: 1, Burst: 1}}
	if got, err := unkeyed.ResolveRateLimitKey(json.RawMessage(`{}`)); err != nil || got != "" {
		t.Fatalf("unkeyed = %q, %v; want \"\", nil", got, err)
	}
}
