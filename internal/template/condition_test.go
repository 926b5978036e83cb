package template_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/taskerhq/tasker/internal/template"
)

func TestConditionLoadErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		step string // the step's fields after name and handler
		want []string
	}{
		{"syntax", `when: "context.amount >"`, []string{`cond.yaml:6:`, `step "b"`, `field "when"`, "invalid CEL", "Syntax error"}},
		{"unknown variable", `when: "ctx.amount > 1"`, []string{`step "b"`, `field "when"`, "invalid CEL", "undeclared reference to 'ctx'"}},
		{"not boolean", `when: "1 + 2"`, []string{`step "b"`, `field "when"`, "must be a boolean expression", "type int"}},
		{"string", `when: "'yes'"`, []string{`field "when"`, "type string"}},
		{"empty", `when: " "`, []string{`field "when"`, "empty expression"}},
		{"not a string", `when: [a]`, []string{`field "when"`}},
		{"too long", `when: "` + strings.Repeat("true && ", 600) + `true"`, []string{`field "when"`, "over the limit of 4096"}},
		{"results of a non-parent", `when: "results.a.ok && results.zzz.ok"`, []string{`step "b"`, `field "when"`, `reads results.zzz, but "zzz" is not a parent of this step (depends_on: [a])`}},
		{"results of a non-parent, indexed", `when: "results['zzz'] == null"`, []string{`field "when"`, `reads results.zzz`}},
		{"unknown trigger rule", `trigger_rule: one_success`, []string{`step "b"`, `field "trigger_rule"`, `unknown trigger rule "one_success": want one of all_success, all_done, one_failed`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			y := "name: wf\nsteps:\n  - name: a\n    handler: tasker.noop\n  - name: b\n    " + tc.step + "\n    handler: tasker.noop\n    depends_on: [a]\n"
			_, err := template.Parse("cond.yaml", []byte(y), template.Options{Env: "development"})
			if err == nil {
				t.Fatal("loaded; want an error")
			}
			var te *template.Error
			if !errors.As(err, &te) {
				t.Fatalf("error %T is not a *template.Error: %v", err, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestOneFailedNeedsParents(t *testing.T) {
	t.Parallel()
	y := "name: wf\nsteps:\n  - {name: a, handler: tasker.noop, trigger_rule: one_failed}\n"
	_, err := template.Parse("c.yaml", []byte(y), template.Options{Env: "development"})
	if err == nil || !strings.Contains(err.Error(), `step "a": field "trigger_rule": one_failed needs depends_on`) {
		t.Fatalf("err = %v", err)
	}
}

func TestConditionFields(t *testing.T) {
	t.Parallel()
	y := `
name: saga
steps:
  - {name: reserve, handler: tasker.noop}
  - {name: charge, handler: tasker.noop, depends_on: [reserve], when: "context.amount > 0"}
  - {name: refund, handler: tasker.noop, depends_on: [charge], trigger_rule: one_failed}
  - {name: done, handler: tasker.noop, depends_on: [refund], trigger_rule: all_done}
`
	tpl, err := template.Parse("saga.yaml", []byte(y), template.Options{Env: "development"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct{ rule, when string }{
		"reserve": {template.TriggerAllSuccess, ""},
		"charge":  {template.TriggerAllSuccess, "context.amount > 0"},
		"refund":  {template.TriggerOneFailed, ""},
		"done":    {template.TriggerAllDone, ""},
	}
	for _, s := range tpl.Steps {
		w := want[s.Name]
		got := ""
		if s.When != nil {
			got = s.When.Expr
		}
		if s.TriggerRule != w.rule || got != w.when {
			t.Errorf("step %s: trigger_rule %q when %q; want %q %q", s.Name, s.TriggerRule, got, w.rule, w.when)
		}
	}
}

func TestConditionEval(t *testing.T) {
	t.Parallel()
	ctx := json.RawMessage(`{"amount": 120, "price": 9.5, "country": "DE", "flag": true, "n": "x", "items": [1,2,3]}`)
	res := json.RawMessage(`{"charge": {"ok": true, "id": "ch_1"}, "skipped_parent": null}`)
	cases := []struct {
		expr    string
		want    bool
		wantErr string
	}{
		{expr: "context.amount > 100", want: true},
		{expr: "context.amount == 120", want: true},
		{expr: "context.price > 9", want: true},
		{expr: "context.price == 9.5 && context.country == 'DE'", want: true},
		{expr: "context.flag", want: true},
		{expr: "results.charge.ok && results.charge.id.startsWith('ch_')", want: true},
		{expr: "size(context.items) == 3", want: true},
		{expr: "'missing' in context", want: false},
		{expr: "has(context.missing)", want: false},
		{expr: "results.skipped_parent == null", want: true},
		{expr: "context.missing > 1", wantErr: `condition "context.missing > 1": no such key: missing`},
		{expr: "context.n", wantErr: `condition "context.n": must return a boolean, returned string`},
		{expr: "context.items.map(x, context.items.map(y, context.items.map(z, x+y+z))).size() > 0", want: true},
	}
	for _, tc := range cases {
		c, err := template.CompileCondition(tc.expr)
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		got, err := c.Eval(ctx, res)
		if tc.wantErr != "" {
			if !errors.Is(err, template.ErrCondition) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: err = %v; want %q", tc.expr, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s = %v, %v; want %v", tc.expr, got, err, tc.want)
		}
	}
}

// TestConditionCostLimit: an expression whose work explodes stops at the
// cost limit with an error instead of holding up the scheduler.
func TestConditionCostLimit(t *testing.T) {
	t.Parallel()
	expr := "context.l.all(a, context.l.all(b, context.l.all(c, context.l.all(d, a + b + c + d >= 0))))"
	c, err := template.CompileCondition(expr)
	if err != nil {
		t.Fatal(err)
	}
	items := make([]int, 200)
	ctx, _ := json.Marshal(map[string]any{"l": items})
	_, err = c.Eval(ctx, nil)
	if !errors.Is(err, template.ErrCondition) || !strings.Contains(err.Error(), "cost limit") {
		t.Fatalf("err = %v; want the cost limit", err)
	}
}

// FuzzCondition: compiling and evaluating any expression never panics, and
// whatever compiles evaluates to a boolean or an ErrCondition.
func FuzzCondition(f *testing.F) {
	for _, s := range []string{"context.a > 1", "results.x.ok", "1 + 2", "(((((", "context.l.all(a, a > 0)",
		"'a' + 'b' == 'ab'", "size(context) > 0 ? true : false", "\x00", "context[\"a\"] == null"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		c, err := template.CompileCondition(expr)
		if err != nil {
			return
		}
		_, err = c.Eval(json.RawMessage(`{"a": 1, "l": [1, 2], "s": "x"}`), json.RawMessage(`{"x": {"ok": true}}`))
		if err != nil && !errors.Is(err, template.ErrCondition) {
			t.Fatalf("%q: error %v does not wrap ErrCondition", expr, err)
		}
	})
}

func ExampleCompileCondition() {
	c, err := template.CompileCondition("context.amount > 100 && results.fraud_check.score < 0.5")
	if err != nil {
		fmt.Println(err)
		return
	}
	run, err := c.Eval(json.RawMessage(`{"amount": 250}`), json.RawMessage(`{"fraud_check": {"score": 0.1}}`))
	fmt.Println(run, err)
	_, err = c.Eval(json.RawMessage(`{}`), json.RawMessage(`{"fraud_check": {"score": 0.1}}`))
	fmt.Println(err)
	_, err = template.CompileCondition("context.amount + 1")
	fmt.Println(err)
	// Output:
	// true <nil>
	// condition "context.amount > 100 && results.fraud_check.score < 0.5": no such key: amount
	// must be a boolean expression, but "context.amount + 1" is of type int
}
