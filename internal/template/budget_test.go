package template_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taskerhq/tasker/internal/template"
)

// refuseDeadline is far above what a refusal takes (milliseconds); it only
// turns a runaway expansion into a failure instead of a hung or OOM-killed run.
const refuseDeadline = 5 * time.Second

// parseWithin parses src, failing the test if Parse does not return within
// refuseDeadline.
func parseWithin(t *testing.T, file string, src []byte, opts template.Options) (*template.Template, error) {
	t.Helper()
	type result struct {
		tpl *template.Template
		err error
	}
	done := make(chan result, 1)
	go func() {
		tpl, err := template.Parse(file, src, opts)
		done <- result{tpl, err}
	}()
	select {
	case r := <-done:
		return r.tpl, r.err
	case <-time.After(refuseDeadline):
		t.Fatalf("%s: Parse did not return within %s", file, refuseDeadline)
		return nil, nil
	}
}

// laughs is a billion-laughs ladder like the 619-byte file of issue 15:
// ten levels of nine aliases each, so *i stands for 9^10 (3.5 billion)
// scalars. Used from a field the parser expands, it must be refused, not
// expanded.
const laughs = `# billion laughs: each level repeats the one above nine times
x-z: &z [lolololol,lolololol,lolololol,lolololol,lolololol,lolololol,lolololol,lolololol,lolololol]
x-a: &a [*z,*z,*z,*z,*z,*z,*z,*z,*z]
x-b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
x-c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
x-d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
x-e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
x-f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
x-g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
x-h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
x-i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
name: bomb
`

// mergeChain is a 25-level merge-key chain: each level merges the one
// below twice, so expanding the last costs 2^25 merges.
func mergeChain(levels int) string {
	var b strings.Builder
	b.WriteString("x-l0: &l0 {a: 1}\n")
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, "x-l%d: &l%d {<<: [*l%d, *l%d], k%d: %d}\n", i, i, i-1, i-1, i, i)
	}
	fmt.Fprintf(&b, "name: chain\nsteps:\n  - {<<: *l%d, name: s, handler: tasker.noop}\n", levels)
	return b.String()
}

func TestLoadRefusesAliasBombs(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		src    string
		budget string // the limit the error must name
	}{
		{"steps config", laughs + "steps:\n  - {name: s, handler: tasker.noop, config: {v: *i}}\n", "MaxExpandedNodes"},
		{"step list", laughs + "steps: *i\n", "MaxExpandedNodes"},
		{"context_schema", laughs + "context_schema: {type: object, default: *i}\nsteps:\n  - {name: s, handler: tasker.noop}\n", "MaxExpandedNodes"},
		{"environments", laughs + "steps:\n  - {name: s, handler: tasker.noop}\nenvironments:\n  production:\n    step_templates:\n      - {name: s, handler_config: {v: *i}}\n", "MaxExpandedNodes"},
		{"merge chain", mergeChain(25), "MaxExpandedNodes"},
		{"long string", "x-a: &a " + strings.Repeat("y", 60_000) + "\nx-b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nx-c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nname: big\nsteps:\n  - {name: s, handler: tasker.noop, config: {v: *c}}\n", "MaxExpandedBytes"},
		{"recursive alias", "x-a: &a [x, *a]\nname: r\nsteps:\n  - {name: s, handler: tasker.noop, config: {v: *a}}\n", "recursive alias"},
		{"deep nesting", "name: d\nsteps: " + strings.Repeat("[", 150) + strings.Repeat("]", 150) + "\n", "MaxDepth"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tpl, err := parseWithin(t, "bomb.yaml", []byte(tc.src), template.Options{Env: "development"})
			if err == nil {
				t.Fatalf("accepted %s", tpl.Key())
			}
			if tc.name == "steps config" && len(tc.src) > 700 {
				t.Errorf("the bomb is %d bytes; the point is that a small file is refused", len(tc.src))
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "bomb.yaml") || !strings.Contains(msg, tc.budget) {
				t.Errorf("error must name the file and %q, got: %v", tc.budget, err)
			}
			if !errors.Is(err, template.ErrBudget) {
				t.Errorf("errors.Is(err, ErrBudget) = false: %v", err)
			}
		})
	}
}

func TestLoadLimitsAreConfigurable(t *testing.T) {
	t.Parallel()
	src := "x-d: &d {handler: tasker.noop}\nname: wf\nsteps:\n  - {<<: *d, name: a}\n  - {<<: *d, name: b}\n  - {<<: *d, name: c}\n"
	cases := []struct {
		name   string
		limits template.Limits
		budget string // "" = loads
	}{
		{"defaults", template.Limits{}, ""},
		{"aliases", template.Limits{MaxAliases: 2}, "more than 2 aliases"},
		{"nodes", template.Limits{MaxExpandedNodes: 20}, "more than 20 YAML nodes"},
		{"bytes", template.Limits{MaxExpandedBytes: 40}, "more than 40 bytes"},
		{"depth", template.Limits{MaxDepth: 2}, "budget of 2 levels"},
		{"file size", template.Limits{MaxFileBytes: 50}, "budget of 50 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseWithin(t, "limits.yaml", []byte(src), template.Options{Env: "development", Limits: tc.limits})
			if tc.budget == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, template.ErrBudget) || !strings.Contains(err.Error(), tc.budget) || !strings.HasPrefix(err.Error(), "limits.yaml") {
				t.Errorf("want a budget error naming limits.yaml and %q, got %v", tc.budget, err)
			}
		})
	}
}

func TestLoadFileRefusesOversizedFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "huge.yaml")
	src := "name: wf\nsteps:\n  - {name: a, handler: tasker.noop}\n# " + strings.Repeat("padding ", 200) + "\n"
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := template.LoadFile(path, template.Options{Env: "development", Limits: template.Limits{MaxFileBytes: 1000}})
	if !errors.Is(err, template.ErrBudget) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "MaxFileBytes") {
		t.Errorf("want a MaxFileBytes error naming %s, got %v", path, err)
	}
	if _, err := template.LoadFile(path, template.Options{Env: "development"}); err != nil {
		t.Errorf("under the default limit: %v", err)
	}
}

// Anchors used the way real templates use them (shared step defaults,
// reused schema fragments, an environment reusing a base config) stay well
// inside the budget.
func TestLoadLegitimateAnchors(t *testing.T) {
	t.Parallel()
	src := `
x-defaults: &defaults
  handler: shop.step
  timeout_seconds: 20
  retry: &retry {max_attempts: 5, backoff_base_seconds: 2}
x-slow: &slow {timeout_seconds: 120}
x-config: &config {region: eu-west-1, tags: [a, b]}
name: wf
context_schema:
  type: object
  $defs:
    id: &id {type: string, minLength: 1}
  properties:
    order_id: *id
    customer_id: *id
    items: {type: array, items: {type: object, properties: {sku: *id}}}
steps:
  - {<<: *defaults, name: a, config: *config}
  - {<<: [*slow, *defaults], name: b, depends_on: a, config: {<<: *config, region: us-east-1}}
  - name: c
    <<: *defaults
    retry: {<<: *retry, max_attempts: 2}
    depends_on: [a, b]
environments:
  production:
    step_templates:
      - {name: a, handler_config: *config}
  development:
    step_templates:
      - {name: a, handler_config: {<<: *config, tags: [dev]}}
`
	tpl, err := parseWithin(t, "anchors.yaml", []byte(src), template.Options{Env: "development"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := tpl.Step("b")
	c, _ := tpl.Step("c")
	if b.TimeoutSeconds != 120 || b.Handler != "shop.step" || c.Retry.MaxAttempts != 2 || c.Retry.BackoffBase != 2*time.Second {
		t.Errorf("b = %+v, c = %+v", b, c)
	}
	if a, _ := tpl.Step("a"); !strings.Contains(string(a.Config), `"tags":["dev"]`) {
		t.Errorf("a.Config = %s", a.Config)
	}
	if !strings.Contains(string(tpl.ContextSchema), `"customer_id":{"minLength":1,"type":"string"}`) {
		t.Errorf("ContextSchema = %s", tpl.ContextSchema)
	}
}
