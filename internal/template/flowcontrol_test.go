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

func TestTaskConcurrencyField(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, value string
		err         string // "" for a template that loads
		limit       int
		key         string
	}{
		{name: "integer", value: "3", limit: 3},
		{name: "unlimited", value: "0", limit: 0},
		{name: "keyed", value: `{limit: 2, key: "${context.customer_id}"}`, limit: 2, key: "${context.customer_id}"},
		{name: "negative", value: "-1", err: "must be 0 (unlimited) or more"},
		{name: "not a number", value: "many", err: "many"},
		{name: "zero limit", value: `{limit: 0, key: "${context.x}"}`, err: "limit must be an integer of 1 or more, got 0"},
		{name: "no key", value: `{limit: 2}`, err: "key must be a non-empty string"},
		{name: "constant key", value: `{limit: 2, key: acme}`, err: "has no ${context.x} placeholder"},
		{name: "unknown field", value: `{limit: 2, key: "${context.x}", burst: 1}`, err: `unknown field "burst"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := "name: flow\nconcurrency: " + tc.value + "\nsteps:\n  - name: sync\n    handler: tasker.noop\n"
			tpl, err := Parse("flow.yaml", []byte(src), Options{})
			if tc.err != "" {
				var te *Error
				if !errors.As(err, &te) || te.File != "flow.yaml" || te.Step != "" || te.Field != "concurrency" ||
					te.Line != 2 || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v (%+v), want one naming flow.yaml:2, field concurrency and saying %q", err, te, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tpl.Concurrency != tc.limit || tpl.ConcurrencyKey != tc.key {
				t.Fatalf("concurrency = %d key %q, want %d %q", tpl.Concurrency, tpl.ConcurrencyKey, tc.limit, tc.key)
			}
		})
	}
}

func TestTemplateResolveConcurrencyKey(t *testing.T) {
	t.Parallel()
	tpl := &Template{Concurrency: 2, ConcurrencyKey: "${context.tenant}"}
	if got, err := tpl.ResolveConcurrencyKey(json.RawMessage(`{"tenant":"acme"}`)); err != nil || got != "acme" {
		t.Fatalf("resolve = %q, %v; want acme", got, err)
	}
	if _, err := tpl.ResolveConcurrencyKey(json.RawMessage(`{}`)); err == nil ||
		!strings.Contains(err.Error(), "concurrency.key: ${context.tenant}") {
		t.Fatalf("resolve without the key: err = %v, want one naming concurrency.key", err)
	}
}
