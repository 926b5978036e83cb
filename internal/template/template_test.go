package template_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taskerhq/tasker/internal/template"
	"github.com/taskerhq/tasker/internal/testenv"
	"github.com/taskerhq/tasker/templates"
)

type handlerSet map[string]bool

func (h handlerSet) Has(name string) bool { return h[name] }

func TestParseErrors(t *testing.T) {
	t.Parallel()
	reg := handlerSet{"x.a": true, "x.b": true, "x.c": true}
	cases := []struct {
		name string
		yaml string
		opts template.Options
		want []string // substrings of one error message
	}{
		{
			name: "cycle",
			yaml: `
name: wf
steps:
  - {name: a, handler: x.a, depends_on: [c]}
  - {name: b, handler: x.b, depends_on: [a]}
  - {name: c, handler: x.c, depends_on: [b]}
`,
			want: []string{"bad.yaml:4:", `step "a"`, `field "depends_on"`, "dependency cycle: a -> c -> b -> a"},
		},
		{
			name: "missing dependency",
			yaml: `
name: wf
step_templates:
  - {name: a, handler_class: X::A}
  - {name: b, handler_class: X::B, depends_on_step: nope}
`,
			want: []string{"bad.yaml", `step "b"`, `field "depends_on_step"`, `unknown step "nope"`},
		},
		{
			name: "missing dependency suggestion",
			yaml: `
name: wf
steps:
  - {name: validate_order, handler: x.a}
  - {name: b, handler: x.b, depends_on: [validate_ordr]}
`,
			want: []string{`step "b"`, `field "depends_on"`, `unknown step "validate_ordr" (did you mean "validate_order"?)`},
		},
		{
			name: "duplicate step",
			yaml: `
name: wf
steps:
  - {name: a, handler: x.a}
  - {name: a, handler: x.b}
`,
			want: []string{"bad.yaml:5:", `step "a"`, `field "name"`, "duplicate step name (first defined at line 4)"},
		},
		{
			name: "self dependency",
			yaml: `
name: wf
steps:
  - {name: a, handler: x.a, depends_on: a}
`,
			want: []string{`step "a"`, `field "depends_on"`, "depends on itself"},
		},
		{
			name: "bad version",
			yaml: `
name: wf
version: 1.0
steps: [{name: a, handler: x.a}]
`,
			want: []string{"bad.yaml:3:", `field "version"`, `invalid version "1.0"`},
		},
		{
			name: "version with v prefix",
			yaml: `
name: wf
version: v1.0.0
steps: [{name: a, handler: x.a}]
`,
			want: []string{`field "version"`, `invalid version "v1.0.0"`},
		},
		{
			name: "unknown handler with registry",
			yaml: `
name: wf
steps:
  - {name: a, handler: x.nope}
`,
			opts: template.Options{Handlers: reg},
			want: []string{"bad.yaml:4:", `step "a"`, `field "handler"`, `unknown handler "x.nope"`},
		},
		{
			name: "unknown handler_class with registry",
			yaml: `
name: wf
step_templates:
  - name: a
    handler_class: Ecommerce::StepHandlers::X
`,
			opts: template.Options{Handlers: reg},
			want: []string{`step "a"`, `field "handler_class"`, `unknown handler "Ecommerce::StepHandlers::X"`},
		},
		{
			name: "unknown builtin",
			yaml: `
name: wf
steps: [{name: a, handler: tasker.nope}]
`,
			want: []string{`step "a"`, `field "handler"`, `unknown built-in handler "tasker.nope"`},
		},
		{
			name: "missing handler",
			yaml: `
name: wf
steps: [{name: a}]
`,
			want: []string{`step "a"`, `field "handler"`, "no handler"},
		},
		{
			name: "bad lambda arn",
			yaml: `
name: wf
steps: [{name: a, handler: "arn:aws:s3:::bucket"}]
`,
			want: []string{`step "a"`, `field "handler"`, "invalid Lambda function ARN"},
		},
		{
			name: "http without url",
			yaml: `
name: wf
steps: [{name: a, handler: tasker.http, config: {method: GET}}]
`,
			want: []string{`step "a"`, `field "config"`, "tasker.http needs config.url"},
		},
		{
			name: "invalid schema",
			yaml: `
name: wf
context_schema:
  type: object
  properties:
    amount: {type: 12}
steps: [{name: a, handler: x.a}]
`,
			want: []string{"bad.yaml:4:", `field "context_schema"`, "invalid JSON Schema", "/properties/amount/type"},
		},
		{
			name: "invalid rails schema",
			yaml: `
name: wf
schema: {type: object, required: yes}
steps: [{name: a, handler: x.a}]
`,
			want: []string{`field "schema"`, "invalid JSON Schema", "/required"},
		},
		{
			name: "unknown step field",
			yaml: `
name: wf
steps:
  - {name: a, handler: x.a}
  - {name: b, handler: x.b, depend_on: [a]}
`,
			want: []string{"bad.yaml:5:", `step "b"`, `field "depend_on"`, `unknown field (did you mean "depends_on"?)`},
		},
		{
			name: "unknown top-level field",
			yaml: `
name: wf
stepz: []
steps: [{name: a, handler: x.a}]
`,
			want: []string{"bad.yaml:3:", `field "stepz"`, `unknown field (did you mean "steps"?)`},
		},
		{
			name: "unknown retry field",
			yaml: `
name: wf
steps: [{name: a, handler: x.a, retry: {max_attempt: 2}}]
`,
			want: []string{`step "a"`, `field "retry.max_attempt"`, `did you mean "max_attempts"?`},
		},
		{
			name: "max_attempts out of range",
			yaml: `
name: wf
steps: [{name: a, handler: x.a, retry: {max_attempts: 101}}]
`,
			want: []string{`step "a"`, `field "retry.max_attempts"`, "between 1 and 100, got 101"},
		},
		{
			name: "rails retry limit out of range",
			yaml: `
name: wf
step_templates: [{name: a, handler_class: A, default_retry_limit: -1}]
`,
			want: []string{`step "a"`, `field "default_retry_limit"`, "between 1 and 100, got -1"},
		},
		{
			name: "jitter out of range",
			yaml: `
name: wf
steps: [{name: a, handler: x.a, retry: {jitter: 1.5}}]
`,
			want: []string{`step "a"`, `field "retry.jitter"`, "between 0 and 1"},
		},
		{
			name: "backoff base not positive",
			yaml: `
name: wf
steps: [{name: a, handler: x.a, retry: {backoff_base_seconds: 0}}]
`,
			want: []string{`step "a"`, `field "retry.backoff_base_seconds"`, "greater than 0"},
		},
		{
			name: "max backoff below base",
			yaml: `
name: wf
steps: [{name: a, handler: x.a, retry: {backoff_base_seconds: 10, max_backoff_seconds: 5}}]
`,
			want: []string{`step "a"`, `field "retry.max_backoff_seconds"`, "must not be less than backoff_base_seconds"},
		},
		{
			name: "timeout out of range",
			yaml: `
name: wf
steps: [{name: a, handler: x.a, timeout_seconds: 901}]
`,
			want: []string{`step "a"`, `field "timeout_seconds"`, "between 1 and 900"},
		},
		{
			name: "timeout not a number",
			yaml: `
name: wf
steps: [{name: a, handler: x.a, timeout_seconds: "30"}]
`,
			want: []string{`step "a"`, `field "timeout_seconds"`, "must be an integer"},
		},
		{
			name: "negative concurrency",
			yaml: `
name: wf
steps: [{name: a, handler: x.a, concurrency: -1}]
`,
			want: []string{`step "a"`, `field "concurrency"`, "0 (unlimited) or more"},
		},
		{
			name: "invalid step name",
			yaml: `
name: wf
steps: [{name: "a/b", handler: x.a}]
`,
			want: []string{`field "name"`, `invalid step name "a/b"`},
		},
		{
			name: "invalid namespace",
			yaml: `
namespace: ".."
name: wf
steps: [{name: a, handler: x.a}]
`,
			want: []string{`field "namespace"`, `invalid namespace ".."`},
		},
		{
			name: "missing name",
			yaml: `
steps: [{name: a, handler: x.a}]
`,
			want: []string{"bad.yaml", `field "name"`, "no name"},
		},
		{
			name: "no steps",
			yaml: `
name: wf
steps: []
`,
			want: []string{`field "steps"`, "no steps"},
		},
		{
			name: "two spellings",
			yaml: `
name: wf
steps:
  - {name: a, handler: x.a, handler_class: X::A}
`,
			want: []string{`step "a"`, `field "handler_class"`, `conflicts with "handler"`},
		},
		{
			name: "trigger unknown type",
			yaml: `
name: wf
steps: [{name: a, handler: x.a}]
triggers: [{type: sqs}]
`,
			want: []string{`field "triggers[0].type"`, `unknown trigger type "sqs"`},
		},
		{
			name: "s3 trigger without bucket",
			yaml: `
name: wf
steps: [{name: a, handler: x.a}]
triggers: [{type: s3, prefix: in/}]
`,
			want: []string{`field "triggers[0].bucket"`, "needs a bucket"},
		},
		{
			name: "trigger context path",
			yaml: `
name: wf
steps: [{name: a, handler: x.a}]
triggers: [{type: eventbridge, source: shop, context: {order_id: detail.order_id}}]
`,
			want: []string{`field "triggers[0].context.order_id"`, `must start with "$"`},
		},
		{
			name: "environment override for unknown step",
			yaml: `
name: wf
step_templates: [{name: a, handler_class: A}]
environments:
  production:
    step_templates: [{name: b, handler_config: {x: 1}}]
`,
			want: []string{`step "b"`, `field "environments.production.step_templates[0].name"`, `unknown step "b"`},
		},
		{
			name: "invalid yaml",
			yaml: "name: wf\nsteps: [\n",
			want: []string{"bad.yaml", "invalid YAML"},
		},
		{
			name: "not a mapping",
			yaml: "- a\n- b\n",
			want: []string{"bad.yaml", "must be a mapping"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.opts.Env = "development"
			tpl, err := template.Parse("bad.yaml", []byte(tc.yaml), tc.opts)
			if err == nil {
				t.Fatalf("Parse succeeded (%s), want an error containing %q", tpl.Key(), tc.want)
			}
			var es template.Errors
			if !errors.As(err, &es) {
				t.Fatalf("error is %T, want template.Errors: %v", err, err)
			}
			for _, e := range es {
				if containsAll(e.Error(), tc.want) {
					return
				}
			}
			t.Fatalf("no error contains all of %q; got:\n%v", tc.want, err)
		})
	}
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func TestParseCollectsAllErrors(t *testing.T) {
	t.Parallel()
	_, err := template.Parse("many.yaml", []byte(`
name: wf
version: one
steps:
  - {name: a, handler: x.a, depends_on: [zz]}
  - {name: a, handler: x.a, timeout: 3}
`), template.Options{Env: "development"})
	var es template.Errors
	if !errors.As(err, &es) {
		t.Fatalf("want Errors, got %v", err)
	}
	if len(es) < 4 {
		t.Fatalf("want at least 4 errors (version, unknown dep, duplicate, unknown field), got %d:\n%v", len(es), err)
	}
}

func TestParseNativeDefaultsAndValues(t *testing.T) {
	t.Parallel()
	tpl, err := template.Parse("ok.yaml", []byte(`
namespace: shop
name: wf
version: 2.0.0-rc.1
description: demo
steps:
  - name: a
    handler: lambda:my-fn
  - name: b
    handler: arn:aws:lambda:eu-west-1:123456789012:function:my-fn:live
    depends_on: a
    config: {x: {y: 1}}
    retry: {max_attempts: 7, backoff_base_seconds: 0.5, max_backoff_seconds: 30, jitter: 0}
    timeout_seconds: 60
    concurrency: 3
    skippable: true
  - name: c
    handler: tasker.http
    config: {url: "http://example.com/hook"}
    depends_on: [a]
  - {name: d, handler: tasker.noop, depends_on: [b, c]}
`), template.Options{Env: "development", Handlers: handlerSet{}})
	if err != nil {
		t.Fatal(err)
	}
	if got := tpl.Key(); got != "shop/wf@2.0.0-rc.1" {
		t.Errorf("Key = %q", got)
	}
	a, _ := tpl.Step("a")
	if a.Retry != template.DefaultRetry() || a.TimeoutSeconds != 300 || a.Concurrency != 0 || string(a.Config) != "{}" {
		t.Errorf("defaults not applied: %+v", a)
	}
	b, ok := tpl.Step("b")
	if !ok {
		t.Fatal("step b missing")
	}
	want := template.RetryPolicy{MaxAttempts: 7, BackoffBase: 500 * time.Millisecond, MaxBackoff: 30 * time.Second, Jitter: 0}
	if b.Retry != want {
		t.Errorf("retry = %+v, want %+v", b.Retry, want)
	}
	if b.TimeoutSeconds != 60 || b.Concurrency != 3 || !b.Skippable || !slices.Equal(b.DependsOn, []string{"a"}) {
		t.Errorf("step b = %+v", b)
	}
	if string(b.Config) != `{"x":{"y":1}}` {
		t.Errorf("config = %s", b.Config)
	}
	if _, ok := tpl.Step("nope"); ok {
		t.Error("Step(nope) found")
	}
	if got, want := tpl.Levels(), [][]string{{"a"}, {"b", "c"}, {"d"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("Levels = %v, want %v", got, want)
	}
	if fn, ok := template.LambdaFunction(a.Handler); !ok || fn != "my-fn" {
		t.Errorf("LambdaFunction = %q %v", fn, ok)
	}
}

func TestLevelsDepthAndTemplateOrder(t *testing.T) {
	t.Parallel()
	// Hand-built (not parsed) templates work too.
	tpl := &template.Template{Namespace: "n", Name: "w", Version: "1.0.0", Steps: []template.Step{
		{Name: "z_last", DependsOn: []string{"m", "a"}},
		{Name: "m", DependsOn: []string{"a"}},
		{Name: "b"},
		{Name: "a"},
		{Name: "c", DependsOn: []string{"b"}},
	}}
	want := [][]string{{"b", "a"}, {"m", "c"}, {"z_last"}}
	if got := tpl.Levels(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Levels = %v, want %v", got, want)
	}
	if s, ok := tpl.Step("m"); !ok || s.Name != "m" {
		t.Fatal("Step(m) on a hand-built template")
	}
}

// --- Rails compatibility corpus ---

func loadCompat(t *testing.T, file, env string) *template.Template {
	t.Helper()
	tpl, err := template.LoadFile(filepath.Join(testenv.RailsCompatDir(t), file), template.Options{Env: env})
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return tpl
}

func stepConfig(t *testing.T, tpl *template.Template, step string) map[string]any {
	t.Helper()
	s, ok := tpl.Step(step)
	if !ok {
		t.Fatalf("%s: no step %q", tpl.Key(), step)
	}
	var m map[string]any
	if err := json.Unmarshal(s.Config, &m); err != nil {
		t.Fatalf("step %s config %s: %v", step, s.Config, err)
	}
	return m
}

func TestRailsCorpusEachFileValidates(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join(testenv.RailsCompatDir(t), "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("found only %d compat files", len(files))
	}
	for _, f := range files {
		for _, env := range []string{"development", "test", "production"} {
			t.Run(filepath.Base(f)+"/"+env, func(t *testing.T) {
				t.Parallel()
				tpl, err := template.LoadFile(f, template.Options{Env: env})
				if err != nil {
					t.Fatal(err)
				}
				if len(tpl.Steps) == 0 || tpl.Source != f || len(tpl.ContextSchema) == 0 && !strings.Contains(f, "monitored") {
					t.Errorf("unexpected template: %+v", tpl)
				}
			})
		}
	}
}

func TestRailsCorpusDetails(t *testing.T) {
	t.Parallel()
	t.Run("order_processing development override", func(t *testing.T) {
		t.Parallel()
		tpl := loadCompat(t, "order_processing.yaml", "development")
		if tpl.Key() != "ecommerce/process_order@1.0.0" {
			t.Errorf("Key = %s (ns/name rule)", tpl.Key())
		}
		pay := stepConfig(t, tpl, "process_payment")
		if pay["debug_mode"] != true || pay["simulate_failures"] != true || pay["timeout_seconds"] != float64(30) {
			t.Errorf("process_payment config = %v", pay)
		}
		if _, ok := pay["payment_backend"]; ok {
			t.Errorf("production override leaked into development: %v", pay)
		}
		if cart := stepConfig(t, tpl, "validate_cart"); cart["timeout_seconds"] != float64(30) {
			t.Errorf("validate_cart config = %v", cart)
		}
		// handler_config.timeout_seconds is handler configuration, not the step timeout.
		s, _ := tpl.Step("process_payment")
		if s.TimeoutSeconds != template.DefaultTimeoutSeconds {
			t.Errorf("TimeoutSeconds = %d", s.TimeoutSeconds)
		}
		if s.Handler != "Ecommerce::StepHandlers::ProcessPaymentHandler" || !slices.Equal(s.DependsOn, []string{"validate_cart"}) {
			t.Errorf("step = %+v", s)
		}
		conf, _ := tpl.Step("send_confirmation")
		if conf.Retry.MaxAttempts != 5 {
			t.Errorf("default_retry_limit 5 gave MaxAttempts %d", conf.Retry.MaxAttempts)
		}
		for _, f := range []string{"module_namespace", "task_handler_class", "retry_strategies", "monitoring", "environments.production", "environments.test"} {
			if !slices.Contains(tpl.Ignored, f) {
				t.Errorf("Ignored = %v, missing %s", tpl.Ignored, f)
			}
		}
	})
	t.Run("order_processing production override", func(t *testing.T) {
		t.Parallel()
		tpl := loadCompat(t, "order_processing.yaml", "production")
		pay := stepConfig(t, tpl, "process_payment")
		if pay["payment_backend"] != "stripe" || pay["fraud_detection"] != true || pay["timeout_seconds"] != float64(30) {
			t.Errorf("process_payment config = %v", pay)
		}
		if cart := stepConfig(t, tpl, "validate_cart"); cart["timeout_seconds"] != float64(10) {
			t.Errorf("validate_cart config = %v", cart)
		}
		if !slices.Contains(tpl.Ignored, "environments.development") {
			t.Errorf("Ignored = %v", tpl.Ignored)
		}
	})
	t.Run("deep merge of nested handler_config", func(t *testing.T) {
		t.Parallel()
		tpl := loadCompat(t, "integration_yaml_example.yaml", "development")
		cart := stepConfig(t, tpl, "fetch_cart")
		want := map[string]any{"type": "api", "url": "http://localhost:3000/api/cart",
			"params": map[string]any{"cart_id": float64(1), "debug": true}}
		if !reflect.DeepEqual(cart, want) {
			t.Errorf("fetch_cart config = %v, want %v", cart, want)
		}
		if tpl.Key() != "api_tests/integration_yaml_example@0.1.0" {
			t.Errorf("Key = %s (name ns/name with namespace_name keeps the part after the slash)", tpl.Key())
		}
		if got := tpl.Levels(); !reflect.DeepEqual(got, [][]string{{"fetch_cart", "fetch_products"}, {"validate_products"}, {"create_order"}, {"publish_event"}}) {
			t.Errorf("Levels = %v", got)
		}
	})
	t.Run("defaults", func(t *testing.T) {
		t.Parallel()
		tpl := loadCompat(t, "simple_example.yaml", "development")
		if tpl.Namespace != "default" || tpl.Version != "0.1.0" || tpl.Name != "simple_dummy_task" {
			t.Errorf("Key = %s", tpl.Key())
		}
		for _, f := range []string{"module_namespace", "class_name", "concurrent", "named_steps", "default_dependent_system"} {
			if !slices.Contains(tpl.Ignored, f) {
				t.Errorf("Ignored = %v, missing %s", tpl.Ignored, f)
			}
		}
	})
	t.Run("top-level handler_config and custom_events ignored", func(t *testing.T) {
		t.Parallel()
		if tpl := loadCompat(t, "monitored_checkout_handler.yaml", "development"); !slices.Contains(tpl.Ignored, "handler_config") {
			t.Errorf("Ignored = %v", tpl.Ignored)
		}
		if tpl := loadCompat(t, "user_registration_handler.yaml", "development"); !slices.Contains(tpl.Ignored, "custom_events") {
			t.Errorf("Ignored = %v", tpl.Ignored)
		}
	})
	t.Run("depends_on_steps and retry", func(t *testing.T) {
		t.Parallel()
		tpl := loadCompat(t, "customer_analytics_handler.yaml", "development")
		s, _ := tpl.Step("transform_customer_metrics")
		if !slices.Equal(s.DependsOn, []string{"extract_orders", "extract_users"}) || s.Retry.MaxAttempts != 2 {
			t.Errorf("step = %+v", s)
		}
	})
	t.Run("rails schema context validation", func(t *testing.T) {
		t.Parallel()
		tpl := loadCompat(t, "order_processing_handler.yaml", "development")
		err := tpl.ValidateContext(json.RawMessage(`{"cart_items":[{"product_id":1,"quantity":0,"price":5}],
			"payment_info":{"method":"cash","amount":10,"currency":"USD"},"customer_info":{"name":"A"}}`))
		assertViolations(t, err, map[string]string{
			"/cart_items/0/quantity": "minimum",
			"/payment_info/method":   "",
			"/customer_info/email":   "is required",
		})
	})
}

func TestRailsCorpusNamespaceFromName(t *testing.T) {
	t.Parallel()
	tpl, err := template.Parse("x.yaml", []byte(`
name: shop/checkout
step_templates: [{name: a, handler_class: Shop::A}]
`), template.Options{Env: "development"})
	if err != nil {
		t.Fatal(err)
	}
	if tpl.Key() != "shop/checkout@0.1.0" {
		t.Errorf("Key = %s", tpl.Key())
	}
}

func TestRailsRetryRules(t *testing.T) {
	t.Parallel()
	tpl, err := template.Parse("x.yaml", []byte(`
name: wf
step_templates:
  - {name: a, handler_class: A, default_retryable: false, default_retry_limit: 5}
  - {name: b, handler_class: B, default_retryable: true, default_retry_limit: 0}
  - {name: c, handler_class: C, default_retryable: true}
  - {name: d, handler_class: D, skippable: true, custom_events: [{name: x}]}
`), template.Options{Env: "development"})
	if err != nil {
		t.Fatal(err)
	}
	for step, want := range map[string]int{"a": 1, "b": 1, "c": 3, "d": 3} {
		if s, _ := tpl.Step(step); s.Retry.MaxAttempts != want {
			t.Errorf("step %s MaxAttempts = %d, want %d", step, s.Retry.MaxAttempts, want)
		}
	}
	if d, _ := tpl.Step("d"); !d.Skippable || !slices.Contains(tpl.Ignored, "steps.d.custom_events") {
		t.Errorf("d = %+v, Ignored = %v", d, tpl.Ignored)
	}
}

// TestRailsCorpusEnvFromVariable cannot run in parallel: it sets TASKER_ENV.
func TestRailsCorpusEnvFromVariable(t *testing.T) {
	t.Setenv("TASKER_ENV", "production")
	tpl := loadCompat(t, "order_processing.yaml", "")
	if pay := stepConfig(t, tpl, "process_payment"); pay["payment_backend"] != "stripe" {
		t.Errorf("TASKER_ENV=production: process_payment config = %v", pay)
	}
	t.Setenv("TASKER_ENV", "")
	tpl = loadCompat(t, "order_processing.yaml", "")
	if pay := stepConfig(t, tpl, "process_payment"); pay["debug_mode"] != true {
		t.Errorf("default env development: process_payment config = %v", pay)
	}
}

func TestRailsCorpusDirDuplicate(t *testing.T) {
	t.Parallel()
	set, err := template.LoadDir(testenv.RailsCompatDir(t), template.Options{Env: "development"})
	if err == nil {
		t.Fatal("loading the whole corpus must fail: order_processing.yaml and order_processing_handler.yaml collide")
	}
	msg := err.Error()
	for _, want := range []string{"duplicate template ecommerce/process_order@1.0.0", "order_processing.yaml", "order_processing_handler.yaml"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	var es template.Errors
	if !errors.As(err, &es) || len(es) != 1 {
		t.Errorf("want exactly one error, got %v", err)
	}
	if set.Len() != 9 {
		t.Errorf("the set keeps the %d templates that loaded, want 9", set.Len())
	}
}

// --- shipped templates ---

var shippedHandlers = handlerSet{
	"ecommerce.validate_order": true, "ecommerce.process_payment": true, "ecommerce.fraud_check": true,
	"ecommerce.update_inventory": true, "ecommerce.create_shipment": true, "ecommerce.send_confirmation": true,
	"onboarding.create_account": true, "onboarding.send_welcome_email": true, "onboarding.provision_workspace": true,
	"onboarding.setup_billing": true, "onboarding.activate": true,
	"data.extract": true, "data.transform_clean": true, "data.transform_enrich": true, "data.transform_aggregate": true,
	"data.validate": true, "data.load": true, "data.notify": true,
	"data.list_files": true, "data.convert_file": true, "data.summarise_files": true,
	"travel.reserve_flight": true, "travel.reserve_hotel": true, "travel.charge_card": true, "travel.confirm_trip": true,
	"travel.cancel_flight": true, "travel.cancel_hotel": true,
	"media.probe": true, "media.submit_transcode": true, "media.publish": true,
	"payments.validate_refund": true, "payments.process_refund": true, "payments.restock_items": true,
	"payments.update_records": true, "payments.notify_customer": true,
}

func TestShippedTemplates(t *testing.T) {
	t.Parallel()
	set, err := template.LoadFS(templates.FS, template.Options{Env: "development", Handlers: shippedHandlers})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	used := map[string]bool{}
	for _, tpl := range set.List() {
		keys = append(keys, tpl.Key())
		if tpl.Description == "" || len(tpl.ContextSchema) == 0 {
			t.Errorf("%s needs a description and a context_schema", tpl.Key())
		}
		if !strings.HasPrefix(tpl.Source, "embedded:") {
			t.Errorf("%s Source = %q", tpl.Key(), tpl.Source)
		}
		for _, s := range tpl.Steps {
			used[s.Handler] = true
		}
	}
	wantKeys := []string{"data/etl_pipeline@1.0.0", "data/file_batch@1.0.0", "data/nightly_export@1.0.0", "ecommerce/process_order@1.0.0", "media/transcode@1.0.0", "onboarding/customer@1.0.0", "partners/sync@1.0.0",
		"payments/process_refund@1.0.0", "payments/refund_with_approval@1.0.0", "travel/book_trip@1.0.0"}
	if !slices.Equal(keys, wantKeys) {
		t.Errorf("templates = %v, want %v", keys, wantKeys)
	}
	for h := range shippedHandlers {
		if !used[h] {
			t.Errorf("handler %s is not used by any template", h)
		}
	}

	order, err := set.Get("ecommerce", "process_order", "")
	if err != nil {
		t.Fatal(err)
	}
	wantLevels := [][]string{{"validate_order"}, {"process_payment", "fraud_check"}, {"update_inventory"}, {"create_shipment"}, {"send_confirmation"}}
	if got := order.Levels(); !reflect.DeepEqual(got, wantLevels) {
		t.Errorf("Levels = %v, want %v", got, wantLevels)
	}
	if len(order.Triggers) != 1 || order.Triggers[0].Type != template.TriggerEventBridge || order.Triggers[0].Context["order_id"] != "$.detail.order_id" {
		t.Errorf("Triggers = %+v", order.Triggers)
	}
	etl, _ := set.Get("data", "etl_pipeline", "")
	if got := etl.Levels(); len(got) != 6 || len(got[2]) != 2 {
		t.Errorf("etl Levels = %v", got)
	}
	if tr := etl.Triggers; len(tr) != 1 || tr[0].Type != "s3" || tr[0].Bucket == "" || tr[0].Context["source_key"] != "$.key" {
		t.Errorf("etl Triggers = %+v", tr)
	}
	refund, _ := set.Get("payments", "process_refund", "")
	if s, _ := refund.Step("validate_refund"); s.Retry.MaxAttempts != 1 {
		t.Errorf("default_retryable false: %+v", s.Retry)
	}
	if cfg := stepConfig(t, refund, "notify_customer"); cfg["email_backend"] != "log" || cfg["notification_type"] != "refund_confirmation" {
		t.Errorf("notify_customer config = %v", cfg)
	}

	// examples/order.json is a valid context for ecommerce/process_order.
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "order.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := order.ValidateContext(data); err != nil {
		t.Errorf("examples/order.json: %v", err)
	}
}

// --- context validation ---

func assertViolations(t *testing.T, err error, want map[string]string) {
	t.Helper()
	var ce *template.ContextError
	if !errors.As(err, &ce) {
		t.Fatalf("want *ContextError, got %T: %v", err, err)
	}
	got := map[string]string{}
	for _, v := range ce.Violations {
		got[v.Pointer] += v.Message + ";"
	}
	for ptr, sub := range want {
		msg, ok := got[ptr]
		if !ok {
			t.Errorf("no violation at %q; got %v", ptr, ce.Violations)
			continue
		}
		if !strings.Contains(msg, sub) {
			t.Errorf("violation at %q = %q, want it to contain %q", ptr, msg, sub)
		}
	}
	if len(got) != len(want) {
		t.Errorf("violations = %v, want exactly %v", ce.Violations, want)
	}
}

func TestValidateContext(t *testing.T) {
	t.Parallel()
	set, err := template.LoadFS(templates.FS, template.Options{Env: "development"})
	if err != nil {
		t.Fatal(err)
	}
	order, err := set.Get("ecommerce", "process_order", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	noSchema, err := template.Parse("n.yaml", []byte("name: n\nsteps: [{name: a, handler: tasker.noop}]\n"), template.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		tpl  *template.Template
		ctx  string
		want map[string]string // pointer -> message substring; nil = valid
	}{
		{"valid", order, `{"order_id":"1","customer":{"email":"a@b.co"},"items":[{"sku":"x","quantity":1,"price":2}],"payment":{"token":"t"}}`, nil},
		{"nested violations", order,
			`{"order_id":"1","customer":{"email":"not-an-email"},"items":[{"sku":"x","quantity":0,"price":-1}],"payment":{},"currency":"usd"}`,
			map[string]string{
				"/customer/email":   "email",
				"/items/0/quantity": "minimum",
				"/items/0/price":    "minimum",
				"/payment/token":    "is required",
				"/currency":         "does not match pattern",
			}},
		{"missing top-level", order, `{}`, map[string]string{
			"/order_id": "is required", "/customer": "is required", "/items": "is required", "/payment": "is required",
		}},
		{"wrong type", order, `{"order_id":1,"customer":{"email":"a@b.co"},"items":[],"payment":{"token":"t"}}`,
			map[string]string{"/order_id": "string", "/items": "minItems"}},
		{"invalid JSON", order, `{"order_id":`, map[string]string{"": "invalid JSON"}},
		{"not an object", order, `[1,2]`, map[string]string{"": "must be a JSON object"}},
		{"no schema accepts any object", noSchema, `{"anything":[1,{"x":null}]}`, nil},
		{"no schema empty", noSchema, ``, nil},
		{"no schema rejects non-object", noSchema, `"text"`, map[string]string{"": "must be a JSON object"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.tpl.ValidateContext(json.RawMessage(tc.ctx))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			assertViolations(t, err, tc.want)
			if !strings.Contains(err.Error(), "context") {
				t.Errorf("Error() = %q", err.Error())
			}
		})
	}
}

// --- sets and versions ---

func mk(ns, name, version, source string) *template.Template {
	return &template.Template{Namespace: ns, Name: name, Version: version, Source: source,
		Steps: []template.Step{{Name: "a", Handler: template.HandlerNoop}}}
}

func TestSet(t *testing.T) {
	t.Parallel()
	set, err := template.NewSet(
		mk("shop", "order", "1.2.0", "a.yaml"),
		mk("shop", "order", "1.10.0", "b.yaml"),
		mk("shop", "order", "2.0.0-rc.1", "c.yaml"),
		mk("shop", "order", "1.0.0", "d.yaml"),
		mk("shop", "beta", "0.1.0-alpha", "e.yaml"),
		mk("shop", "beta", "0.1.0-alpha.2", "f.yaml"),
		mk("acme", "zed", "3.0.0", "g.yaml"),
	)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		ns, name, version string
		want              string // version wanted, or "" for not found
		errHas            string
	}{
		{"shop", "order", "", "1.10.0", ""},
		{"shop", "order", "1.2.0", "1.2.0", ""},
		{"shop", "order", "2.0.0-rc.1", "2.0.0-rc.1", ""},
		{"shop", "beta", "", "0.1.0-alpha.2", ""},
		{"shop", "order", "9.9.9", "", "shop/order@9.9.9"},
		{"shop", "nope", "", "", "shop/nope"},
		{"other", "order", "1.0.0", "", "other/order"},
	}
	for _, tc := range cases {
		got, err := set.Get(tc.ns, tc.name, tc.version)
		if tc.want == "" {
			if !errors.Is(err, template.ErrNotFound) || !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("Get(%s, %s, %q) = %v, %v; want ErrNotFound naming %q", tc.ns, tc.name, tc.version, got, err, tc.errHas)
			}
			continue
		}
		if err != nil || got.Version != tc.want {
			t.Errorf("Get(%s, %s, %q) = %v, %v; want %s", tc.ns, tc.name, tc.version, got, err, tc.want)
		}
	}
	var keys []string
	for _, tpl := range set.List() {
		keys = append(keys, tpl.Key())
	}
	wantKeys := []string{"acme/zed@3.0.0", "shop/beta@0.1.0-alpha", "shop/beta@0.1.0-alpha.2",
		"shop/order@1.0.0", "shop/order@1.2.0", "shop/order@1.10.0", "shop/order@2.0.0-rc.1"}
	if !slices.Equal(keys, wantKeys) {
		t.Errorf("List = %v, want %v", keys, wantKeys)
	}
	if vs := set.Versions("shop", "order"); len(vs) != 4 || vs[0].Version != "1.0.0" || vs[3].Version != "2.0.0-rc.1" {
		t.Errorf("Versions = %v", vs)
	}
	if vs := set.Versions("shop", "none"); vs != nil {
		t.Errorf("Versions(unknown) = %v", vs)
	}

	_, err = template.NewSet(mk("shop", "order", "1.0.0", "x.yaml"), mk("shop", "order", "1.0.0", "y.yaml"))
	if err == nil || !strings.Contains(err.Error(), "x.yaml") || !strings.Contains(err.Error(), "y.yaml") {
		t.Errorf("duplicate NewSet error = %v, want both sources named", err)
	}
}

func TestCompareVersions(t *testing.T) {
	t.Parallel()
	ordered := []string{"0.0.1", "0.1.0-alpha", "0.1.0-alpha.1", "0.1.0-alpha.beta", "0.1.0-beta.2", "0.1.0-beta.11", "0.1.0-rc.1", "0.1.0", "1.0.0", "1.2.0", "1.10.0", "10.0.0"}
	for i := range ordered {
		for j := range ordered {
			got := template.CompareVersions(ordered[i], ordered[j])
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got != want {
				t.Errorf("CompareVersions(%s, %s) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
}

func TestLoadDirCollectsErrorsAcrossFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("good.yaml", "name: good\nsteps: [{name: a, handler: tasker.noop}]\n")
	write("sub/v2.yml", "name: good\nversion: 2.0.0\nsteps: [{name: a, handler: tasker.noop}]\n")
	write("bad1.yaml", "name: bad1\nsteps: [{name: a, handler: tasker.noop, depends_on: [b]}]\n")
	write("bad2.yaml", "name: bad2\nsteps: [{name: a}]\n")
	write("notes.txt", "not a template")
	write(".hidden/x.yaml", "garbage: [")
	set, err := template.LoadDir(dir, template.Options{Env: "development"})
	var es template.Errors
	if !errors.As(err, &es) || len(es) != 2 {
		t.Fatalf("want 2 errors, got %v", err)
	}
	if !strings.Contains(es[0].Error(), "bad1.yaml") || !strings.Contains(es[1].Error(), "bad2.yaml") {
		t.Errorf("errors = %v", err)
	}
	if got, _ := set.Get("default", "good", ""); got == nil || got.Version != "2.0.0" {
		t.Errorf("Get highest = %v", got)
	}
	if _, err := template.LoadDir(filepath.Join(dir, "missing"), template.Options{}); err == nil {
		t.Error("LoadDir of a missing directory succeeded")
	}
}

func TestErrorFormat(t *testing.T) {
	t.Parallel()
	cases := []struct {
		e    template.Error
		want string
	}{
		{template.Error{File: "file.yaml", Step: "x", Field: "depends_on", Msg: `unknown step "y"`}, `file.yaml: step "x": field "depends_on": unknown step "y"`},
		{template.Error{File: "file.yaml", Line: 7, Field: "version", Msg: "bad"}, `file.yaml:7: field "version": bad`},
		{template.Error{Msg: "bad"}, `bad`},
	}
	for _, tc := range cases {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

func TestYAMLAnchorsAndMergeKeys(t *testing.T) {
	t.Parallel()
	tpl, err := template.Parse("anchors.yaml", []byte(`
x-defaults: &defaults
  handler: shop.step
  timeout_seconds: 20
  retry: {max_attempts: 5}
name: wf
steps:
  - {<<: *defaults, name: a}
  - {<<: *defaults, name: b, timeout_seconds: 30, depends_on: a}
`), template.Options{Env: "development"})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := tpl.Step("a")
	b, _ := tpl.Step("b")
	if a.Handler != "shop.step" || a.TimeoutSeconds != 20 || a.Retry.MaxAttempts != 5 || b.TimeoutSeconds != 30 || b.Retry.MaxAttempts != 5 {
		t.Errorf("a = %+v, b = %+v", a, b)
	}
	if a.DependsOn == nil {
		t.Error("DependsOn must be non-nil (marshals as [])")
	}
}
