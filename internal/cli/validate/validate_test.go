package validate

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taskerhq/tasker/internal/testenv"
)

// validateCase is one run of tasker validate and what it must print.
type validateCase struct {
	name       string
	args       []string
	code       int
	stdout     []string
	stderr     []string
	stderrNone bool
}

func TestCmdValidate(t *testing.T) {
	t.Parallel()
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("name: wf\nsteps:\n  - {name: a, handler: x.a, depends_on: [b]}\n  - {name: b, handler: x.b, depends_on: [a]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waits := filepath.Join(t.TempDir(), "waits.yaml")
	if err := os.WriteFile(waits, []byte("namespace: n\nname: w\nversion: 1.0.0\nsteps:\n"+
		"  - {name: a, handler: tasker.wait, config: {seconds: 90}}\n"+
		"  - {name: b, handler: tasker.wait, depends_on: [a], config: {until: '${context.due}'}}\n"+
		"  - {name: c, handler: tasker.callback, depends_on: [b], config: {notify: {url: 'https://example.com/hook'}}}\n"+
		"  - {name: d, handler: x.d, depends_on: [c], trigger_rule: all_done}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badCEL := filepath.Join(t.TempDir(), "cond.yaml")
	if err := os.WriteFile(badCEL, []byte("name: wf\nsteps:\n  - {name: a, handler: tasker.noop}\n"+
		"  - {name: b, handler: tasker.noop, depends_on: [a], when: 'context.amount >'}\n"+
		"  - {name: c, handler: tasker.noop, depends_on: [a], when: 'amount > 1'}\n"+
		"  - {name: d, handler: tasker.noop, depends_on: [a], when: '1 + 2'}\n"+
		"  - {name: e, handler: tasker.noop, depends_on: [a], when: 'results.b.ok'}\n"+
		"  - {name: f, handler: tasker.noop, depends_on: [a], trigger_rule: any_failed}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runValidateCases(t, []validateCase{
		{
			name: "conditions and trigger rules",
			args: []string{badCEL},
			code: 1,
			stderr: []string{
				`cond.yaml:4: step "b": field "when": invalid CEL: 1:17: Syntax error`,
				`cond.yaml:5: step "c": field "when": invalid CEL: 1:1: undeclared reference to 'amount'`,
				`cond.yaml:6: step "d": field "when": must be a boolean expression, but "1 + 2" is of type int`,
				`cond.yaml:7: step "e": field "when": reads results.b, but "b" is not a parent of this step (depends_on: [a])`,
				`cond.yaml:8: step "f": field "trigger_rule": unknown trigger rule "any_failed": want one of all_success, all_done, one_failed`,
			},
		},
		{
			name: "waits and callbacks",
			args: []string{waits},
			stdout: []string{"n/w@1.0.0  4 steps", "\n  a: wait 90s\n", "\n  b: wait until ${context.due}\n",
				"\n  c: callback, timeout 24h0m0s, notify\n", "\n  d: trigger_rule all_done\n"},
			stderrNone: true,
		},
		{
			name: "shipped templates",
			args: []string{"../../../templates"},
			stdout: []string{"ecommerce/process_order@1.0.0  6 steps  levels: [validate_order] [process_payment fraud_check] [update_inventory] [create_shipment] [send_confirmation]\n", "data/etl_pipeline@1.0.0", "onboarding/customer@1.0.0", "payments/process_refund@1.0.0",
				// Control flow, one line per step that has any (docs/control-flow.md).
				"payments/refund_with_approval@1.0.0  6 steps",
				"\n  manager_approval: callback, timeout 72h0m0s; when context.refund_amount > 50000\n",
				"\n  cancel_flight: trigger_rule one_failed\n", "media/transcode@1.0.0  4 steps", "\n  propagate: wait 2s\n",
				"partners/sync@1.0.0  2 steps", "\n  push: rate_limit 0.2/s burst 1 per ${context.partner}\n"},
			stderrNone: true,
		},
		{
			name:   "cycle",
			args:   []string{bad},
			code:   1,
			stderr: []string{"bad.yaml:3: step \"a\": field \"depends_on\": dependency cycle: a -> b -> a\n"},
		},
		{
			name:   "missing path",
			args:   []string{filepath.Join(t.TempDir(), "nope.yaml")},
			code:   1,
			stderr: []string{"nope.yaml"},
		},
		{
			name:   "bad flag",
			args:   []string{"--nope"},
			code:   2,
			stderr: []string{"usage: tasker validate"},
		},
	})
}

func TestCmdValidateRailsCorpus(t *testing.T) {
	t.Parallel()
	compat := testenv.RailsCompatDir(t)
	files, err := filepath.Glob(filepath.Join(compat, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	runValidateCases(t, []validateCase{
		{
			name:       "rails file verbose",
			args:       []string{"--verbose", filepath.Join(compat, "order_processing.yaml")},
			stdout:     []string{"ecommerce/process_order@1.0.0  5 steps  levels: [validate_cart] [process_payment] [update_inventory] [create_order] [send_confirmation]", "ignored: module_namespace, task_handler_class, retry_strategies, monitoring, environments.test, environments.production"},
			stderrNone: true,
		},
		{
			name:       "flags after paths and env",
			args:       []string{filepath.Join(compat, "order_processing.yaml"), "--env", "production", "-verbose"},
			stdout:     []string{"environments.development"},
			stderrNone: true,
		},
		{
			name:       "each rails file on its own",
			args:       files,
			stdout:     []string{"default/simple_dummy_task@0.1.0  2 steps  levels: [step_one] [step_two]", "api_tests/integration_yaml_example@0.1.0"},
			stderrNone: true,
		},
		{
			name:   "rails dir has a duplicate",
			args:   []string{compat},
			code:   1,
			stdout: []string{"blog_examples/customer_analytics@1.0.0"},
			stderr: []string{"duplicate template ecommerce/process_order@1.0.0", "order_processing.yaml and", "order_processing_handler.yaml"},
		},
	})
}

func runValidateCases(t *testing.T, cases []validateCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := Run(context.Background(), tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit code = %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout.String(), stderr.String())
			}
			for _, want := range tc.stdout {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout does not contain %q:\n%s", want, stdout.String())
				}
			}
			for _, want := range tc.stderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr does not contain %q:\n%s", want, stderr.String())
				}
			}
			if tc.stderrNone && stderr.Len() > 0 {
				t.Errorf("unexpected stderr:\n%s", stderr.String())
			}
		})
	}
}

// TestCmdValidateRefusesHostileTemplates: an alias bomb, a merge-key chain
// and an outbound-request config that only failed at run time are refused
// by validate (file or directory) promptly, naming the file and the limit or
// field. The deadline is generous: it turns an expansion that runs away
// into a failure instead of a hung or OOM-killed test.
func TestCmdValidateRefusesHostileTemplates(t *testing.T) {
	t.Parallel()
	var laughs strings.Builder
	laughs.WriteString("x-a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n")
	for i, c := range "bcdefghi" {
		prev := "*" + string("abcdefgh"[i])
		fmt.Fprintf(&laughs, "x-%c: &%c [%s]\n", c, c, strings.Repeat(prev+",", 8)+prev)
	}
	laughs.WriteString("name: bomb\nsteps:\n  - {name: s, handler: tasker.noop, config: {v: *i}}\n")
	var chain strings.Builder
	chain.WriteString("x-l0: &l0 {a: 1}\n")
	for i := 1; i <= 25; i++ {
		fmt.Fprintf(&chain, "x-l%d: &l%d {<<: [*l%d, *l%d], k%d: %d}\n", i, i, i-1, i-1, i, i)
	}
	chain.WriteString("name: chain\nsteps:\n  - {<<: *l25, name: s, handler: tasker.noop}\n")

	dir := t.TempDir()
	files := map[string]string{
		"bomb.yaml":  laughs.String(),
		"chain.yaml": chain.String(),
		"http.yaml":  "name: call\nsteps:\n  - {name: c, handler: tasker.http, config: {url: \"file:///etc/passwd\", method: \"GET\\r\\nX: y\", timeout_seconds: 1e10}}\n",
	}
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wantErr := []string{
		"bomb.yaml:", "chain.yaml:", "MaxExpandedNodes",
		`http.yaml:3: step "c": field "config.url": URL "file:///etc/passwd" must use http or https`,
		`field "config.method"`, `field "config.timeout_seconds"`,
	}
	for _, args := range [][]string{{dir}, {filepath.Join(dir, "bomb.yaml"), filepath.Join(dir, "chain.yaml"), filepath.Join(dir, "http.yaml")}} {
		var stdout, stderr bytes.Buffer
		code := make(chan int, 1)
		go func() { code <- Run(context.Background(), args, &stdout, &stderr) }()
		select {
		case c := <-code:
			if c != 1 {
				t.Errorf("%v: exit code %d, want 1", args, c)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%v: validate did not finish within 5s", args)
		}
		for _, want := range wantErr {
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("%v: stderr does not contain %q:\n%s", args, want, stderr.String())
			}
		}
	}
}
