package template

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
)

// Trigger rules: when a step may run, given how its parents ended
// (docs/architecture.md, "States").
const (
	// TriggerAllSuccess (the default): every parent complete, resolved or
	// skipped by its condition. A parent that failed, or was skipped
	// because of a failure upstream, means the step can never run: it is
	// skipped.
	TriggerAllSuccess = "all_success"
	// TriggerAllDone: every parent ended, whatever its state (a finally).
	TriggerAllDone = "all_done"
	// TriggerOneFailed: at least one parent ended in error (a catch or a
	// compensation). When every parent ended and none failed, the step is
	// skipped.
	TriggerOneFailed = "one_failed"
)

// TriggerRules are the accepted trigger_rule values, the default first.
var TriggerRules = []string{TriggerAllSuccess, TriggerAllDone, TriggerOneFailed}

// Limits of a `when` expression.
const (
	// MaxConditionBytes bounds the text of a `when` expression.
	MaxConditionBytes = 4096
	// ConditionCostLimit bounds the work of one evaluation (CEL's cost
	// units: about one per operation, more per byte of strings and lists
	// walked), so that no expression can hold up a scheduler pass.
	ConditionCostLimit = 100_000
)

// Condition is a compiled `when` expression: CEL over `context` (the
// task's context) and `results` (the parents' results by step name), which
// must be true for the step to run. It is compiled once, when its template
// loads, and is safe for concurrent use.
type Condition struct {
	// Expr is the expression as written.
	Expr string
	prg  cel.Program
	// refs are the step names the expression reads from results
	// (results.x, results["x"]), checked against the step's parents.
	refs []string
}

// ErrCondition is wrapped by the errors of Condition.Eval.
var ErrCondition = errors.New("condition")

// celEnv is the one CEL environment of `when` expressions: it declares the
// variables and holds no state that evaluation changes.
var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("context", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("results", cel.MapType(cel.StringType, cel.DynType)),
		cel.CrossTypeNumericComparisons(true),
	)
})

// compileCEL parses and type-checks expr in the environment of conditions
// and maps (context and results); what names the field in errors.
func compileCEL(expr, what string) (*cel.Env, *cel.Ast, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, nil, errors.New("empty expression")
	}
	if len(expr) > MaxConditionBytes {
		return nil, nil, fmt.Errorf("expression is %d bytes, over the limit of %d", len(expr), MaxConditionBytes)
	}
	env, err := celEnv()
	if err != nil {
		return nil, nil, fmt.Errorf("CEL environment: %w", err)
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		msg := oneLine(iss.Err().Error())
		if strings.Contains(msg, "undeclared reference") {
			msg += " (a " + what + " expression sees only context and results)"
		}
		return nil, nil, fmt.Errorf("invalid CEL: %s", msg)
	}
	return env, ast, nil
}

// CompileCondition parses and type-checks a `when` expression. An
// expression CEL can tell is not boolean (e.g. `1 + 2`) is refused; one of
// dynamic type (e.g. `context.flag`) is checked when it is evaluated.
func CompileCondition(expr string) (*Condition, error) {
	env, ast, err := compileCEL(expr, "when")
	if err != nil {
		return nil, err
	}
	if t := ast.OutputType(); !t.IsExactType(types.BoolType) && !t.IsExactType(types.DynType) {
		return nil, fmt.Errorf("must be a boolean expression, but %q is of type %s", expr, t)
	}
	prg, err := env.Program(ast, cel.CostLimit(ConditionCostLimit))
	if err != nil {
		return nil, fmt.Errorf("invalid CEL: %s", oneLine(err.Error()))
	}
	return &Condition{Expr: expr, prg: prg, refs: resultRefs(ast.NativeRep().Expr())}, nil
}

// resultRefs returns the names read from results with a constant key, in
// order of appearance, once each.
func resultRefs(e celast.Expr) []string {
	var refs []string
	add := func(n string) {
		if !slices.Contains(refs, n) {
			refs = append(refs, n)
		}
	}
	isResults := func(x celast.Expr) bool { return x.Kind() == celast.IdentKind && x.AsIdent() == "results" }
	celast.PreOrderVisit(e, celast.NewExprVisitor(func(x celast.Expr) {
		switch x.Kind() {
		case celast.SelectKind:
			if sel := x.AsSelect(); isResults(sel.Operand()) {
				add(sel.FieldName())
			}
		case celast.CallKind:
			c := x.AsCall()
			if c.FunctionName() == operators.Index && len(c.Args()) == 2 && isResults(c.Args()[0]) &&
				c.Args()[1].Kind() == celast.LiteralKind {
				if k, ok := c.Args()[1].AsLiteral().Value().(string); ok {
					add(k)
				}
			}
		}
	}))
	return refs
}

// Eval evaluates the condition over a task context and the parents'
// results (JSON objects; empty means {}). An evaluation error (a missing
// key, a non-boolean value, the cost limit) wraps ErrCondition and names
// the expression.
func (c *Condition) Eval(context, results json.RawMessage) (bool, error) {
	ctxv, err := decodeObject(context)
	if err != nil {
		return false, fmt.Errorf("%w %q: context: %w", ErrCondition, c.Expr, err)
	}
	resv, err := decodeObject(results)
	if err != nil {
		return false, fmt.Errorf("%w %q: results: %w", ErrCondition, c.Expr, err)
	}
	out, _, err := c.prg.Eval(map[string]any{"context": ctxv, "results": resv})
	if err != nil {
		return false, fmt.Errorf("%w %q: %s", ErrCondition, c.Expr, oneLine(err.Error()))
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("%w %q: must return a boolean, returned %s", ErrCondition, c.Expr, out.Type())
	}
	return b, nil
}

// decodeObject decodes a JSON object for CEL; numbers stay exact when they
// are integers (int64) and are doubles otherwise.
func decodeObject(raw json.RawMessage) (map[string]any, error) {
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return map[string]any{}, nil
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	m, ok := celValue(v).(map[string]any)
	if !ok {
		return nil, errors.New("not a JSON object")
	}
	return m, nil
}

func celValue(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = celValue(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = celValue(e)
		}
		return x
	}
	return v
}

// oneLine folds CEL's multi-line messages (with a caret under the column)
// into one line.
func oneLine(s string) string {
	s = strings.TrimPrefix(s, "ERROR: <input>:")
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.Trim(l, "|.^ ") == "" || strings.HasPrefix(l, "| ") {
			continue
		}
		parts = append(parts, strings.TrimPrefix(l, "ERROR: <input>:"))
	}
	return strings.Join(parts, "; ")
}

// when reads and compiles a step's `when` expression.
func (b *stepBuild) when(f field) {
	expr, ok := f.asString()
	if !ok {
		return
	}
	c, err := CompileCondition(expr)
	if err != nil {
		f.errf("%v", err)
		return
	}
	b.s.When = c
}

// triggerRule reads a step's trigger_rule.
func (b *stepBuild) triggerRule(f field) {
	v, ok := f.asString()
	if !ok {
		return
	}
	if !slices.Contains(TriggerRules, v) {
		f.errf("unknown trigger rule %q: want one of %s", v, strings.Join(TriggerRules, ", "))
		return
	}
	b.s.TriggerRule = v
	b.m.fields["trigger_rule"] = spelled{f.name, f.line()}
}

// triggerRules checks that a step whose trigger rule waits for a failure
// has parents that can fail, and that a condition reads the results of the
// step's parents only (a handler sees no other results either).
func (p *parser) triggerRules(t *Template, metas []*stepMeta) {
	for i, s := range t.Steps {
		if s.When != nil {
			m := metas[i]
			for _, r := range s.When.refs {
				if !slices.Contains(s.DependsOn, r) {
					p.errf(m.fieldLine("when"), m.label, m.field("when"),
						"reads results.%s, but %q is not a parent of this step (depends_on: [%s])", r, r, strings.Join(s.DependsOn, ", "))
				}
			}
		}
		if s.Map != nil {
			m := metas[i]
			for _, r := range s.Map.refs {
				if !slices.Contains(s.DependsOn, r) {
					p.errf(m.fieldLine("map"), m.label, m.field("map"),
						"over reads results.%s, but %q is not a parent of this step (depends_on: [%s])", r, r, strings.Join(s.DependsOn, ", "))
				}
			}
			if s.Concurrency > 0 {
				p.errf(m.fieldLine("map"), m.label, m.field("map"),
					"a map step takes max_concurrency, not concurrency")
			}
		}
		if s.RateLimit != nil {
			// Refused rather than ignored (docs/control-flow.md, "Rate
			// limits"): a map step's instances and a wait start no handler
			// under the step's key.
			m := metas[i]
			switch {
			case s.Map != nil:
				p.errf(m.fieldLine("rate_limit"), m.label, m.field("rate_limit"),
					"a map step takes map.max_concurrency; rate_limit on a map step is not supported")
			case s.Handler == HandlerWait || s.Handler == HandlerCallback:
				p.errf(m.fieldLine("rate_limit"), m.label, m.field("rate_limit"),
					"%s starts no handler: rate_limit applies to steps that call something", s.Handler)
			}
		}
		if s.TriggerRule == TriggerOneFailed && len(s.DependsOn) == 0 {
			m := metas[i]
			p.errf(m.fieldLine("trigger_rule"), m.label, m.field("trigger_rule"),
				"%s needs depends_on: the step runs when one of its parents fails", TriggerOneFailed)
		}
	}
}
