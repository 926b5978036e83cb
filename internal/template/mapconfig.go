package template

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
)

// Map limits (docs/control-flow.md, "Map").
const (
	// DefaultMapMaxItems is the most items a map step takes unless it says
	// otherwise; more fail the step.
	DefaultMapMaxItems = 10_000
	// MaxMapMaxItems is the highest max_items a template may set.
	MaxMapMaxItems = 100_000
	// DefaultMapMaxConcurrency is the number of instances of one map step
	// in flight at once unless it says otherwise.
	DefaultMapMaxConcurrency = 10
	// MaxMapMaxConcurrency is the highest max_concurrency a template may set.
	MaxMapMaxConcurrency = 1000
)

// Map makes a step run once per item of a list (field `map`): `over` is a
// CEL expression over `context` and `results` (the parents' results),
// compiled at load and type-checked to a list, evaluated when the step's
// parents are done. Safe for concurrent use.
type Map struct {
	// Over is the expression as written.
	Over string
	prg  cel.Program
	refs []string
	// MaxConcurrency caps the instances in flight at once.
	MaxConcurrency int
	// MaxItems is the most items the step takes; more fail it.
	MaxItems int
	// ToleratedFailures is how many instances may fail for good without
	// failing the step; ToleratedPercent, when not 0, says it as a
	// percentage of the items instead.
	ToleratedFailures int
	ToleratedPercent  float64
}

// ErrMap is wrapped by the errors of Map.Items.
var ErrMap = errors.New("map")

// CompileMapOver compiles a map's `over` expression with the environment of
// conditions; an expression CEL can tell is not a list is refused.
func CompileMapOver(expr string) (*Map, error) {
	env, ast, err := compileCEL(expr, "map")
	if err != nil {
		return nil, err
	}
	if t := ast.OutputType(); t.Kind() != types.ListKind && !t.IsExactType(types.DynType) {
		return nil, fmt.Errorf("must be a list expression, but %q is of type %s", expr, t)
	}
	prg, err := env.Program(ast, cel.CostLimit(ConditionCostLimit))
	if err != nil {
		return nil, fmt.Errorf("invalid CEL: %s", oneLine(err.Error()))
	}
	return &Map{Over: expr, prg: prg, refs: resultRefs(ast.NativeRep().Expr()),
		MaxConcurrency: DefaultMapMaxConcurrency, MaxItems: DefaultMapMaxItems}, nil
}

// Items evaluates the expression over a task context and the parents'
// results and returns the items as JSON. An evaluation error (a missing
// key, a value that is not a list, the cost limit) wraps ErrMap.
func (m *Map) Items(context, results json.RawMessage) ([]json.RawMessage, error) {
	ctxv, err := decodeObject(context)
	if err != nil {
		return nil, fmt.Errorf("%w %q: context: %w", ErrMap, m.Over, err)
	}
	resv, err := decodeObject(results)
	if err != nil {
		return nil, fmt.Errorf("%w %q: results: %w", ErrMap, m.Over, err)
	}
	out, _, err := m.prg.Eval(map[string]any{"context": ctxv, "results": resv})
	if err != nil {
		return nil, fmt.Errorf("%w %q: %s", ErrMap, m.Over, oneLine(err.Error()))
	}
	if out.Type() != types.ListType {
		return nil, fmt.Errorf("%w %q: must return a list, returned %s", ErrMap, m.Over, out.Type())
	}
	native, err := out.ConvertToNative(reflect.TypeOf(&structpb.ListValue{}))
	if err != nil {
		return nil, fmt.Errorf("%w %q: %s", ErrMap, m.Over, err)
	}
	b, err := protojson.Marshal(native.(*structpb.ListValue))
	if err != nil {
		return nil, fmt.Errorf("%w %q: items are not JSON: %s", ErrMap, m.Over, err)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(b, &items); err != nil {
		return nil, fmt.Errorf("%w %q: items are not a JSON list: %s", ErrMap, m.Over, err)
	}
	return items, nil
}

// Tolerated is how many instances of n items may fail for good.
func (m *Map) Tolerated(n int) int {
	if m.ToleratedPercent > 0 {
		return int(float64(n) * m.ToleratedPercent / 100)
	}
	return m.ToleratedFailures
}

// mapping reads a step's `map` mapping.
func (b *stepBuild) mapping(f field) {
	v, ok := f.asMapping()
	if !ok {
		return
	}
	over, _ := v["over"].(string)
	if _, present := v["over"]; !present {
		f.errf("needs over: a CEL expression giving the list to map over")
		return
	}
	if over == "" {
		f.errf("over must be a non-empty string (a CEL list expression)")
		return
	}
	m, err := CompileMapOver(over)
	if err != nil {
		f.errf("over: %v", err)
		return
	}
	for _, k := range slices.Sorted(maps.Keys(v)) { // sorted: the same input, the same error
		raw := v[k]
		switch k {
		case "over":
		case "max_concurrency", "max_items":
			n, ok := jsonInt(raw)
			hi := MaxMapMaxConcurrency
			if k == "max_items" {
				hi = MaxMapMaxItems
			}
			if !ok || n < 1 || n > hi {
				f.errf("%s must be an integer from 1 to %d, got %v", k, hi, raw)
				return
			}
			if k == "max_items" {
				m.MaxItems = n
			} else {
				m.MaxConcurrency = n
			}
		case "tolerated_failures":
			if s, isStr := raw.(string); isStr && strings.HasSuffix(s, "%") {
				p, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
				if err != nil || p < 0 || p > 100 {
					f.errf("tolerated_failures must be a count or a percentage from 0%% to 100%%, got %q", s)
					return
				}
				m.ToleratedPercent = p
				continue
			}
			n, ok := jsonInt(raw)
			if !ok || n < 0 {
				f.errf("tolerated_failures must be a count (0 or more) or a percentage such as \"10%%\", got %v", raw)
				return
			}
			m.ToleratedFailures = n
		default:
			f.errf("unknown field %q (want over, max_concurrency, max_items, tolerated_failures)", k)
			return
		}
	}
	b.s.Map = m
}

func jsonInt(v any) (int, bool) {
	switch x := v.(type) {
	case int:
		return x, true
	case int64:
		return int(x), true
	case float64:
		if x == float64(int(x)) {
			return int(x), true
		}
	case json.Number:
		n, err := x.Int64()
		return int(n), err == nil
	}
	return 0, false
}
