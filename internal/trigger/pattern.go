package trigger

import (
	"encoding/json"
	"math"
	"strings"
)

// Content-filter operators of EventBridge patterns supported here.
var operators = map[string]bool{
	"prefix": true, "suffix": true, "anything-but": true, "numeric": true,
	"exists": true, "equals-ignore-case": true, "wildcard": true,
}

// matchPattern reports whether value matches an EventBridge-style pattern
// object, following EventBridge's semantics for the common cases:
//
//   - every field of the pattern must match (AND); "$or" takes a list of
//     patterns of which one must match as well;
//   - a list is any-of: literals (strings, numbers, booleans, null) and
//     operator objects {"prefix"}, {"suffix"}, {"anything-but"} (a value, a
//     list or {"prefix"/"suffix"}), {"numeric": [">", 0, "<=", 5]},
//     {"exists": bool}, {"equals-ignore-case"} and {"wildcard"} ('*' only);
//   - a single literal stands for a one-element list, and an object with
//     one operator key for a list holding that operator (template authors
//     write YAML, not EventBridge JSON);
//   - any other object matches a nested object field by field;
//   - an array in the event matches when any of its elements does;
//   - a missing field matches only {"exists": false}.
func matchPattern(pattern map[string]any, value any) bool {
	obj, _ := value.(map[string]any)
	for k, pv := range pattern {
		if k == "$or" {
			alts, ok := pv.([]any)
			if !ok {
				return false
			}
			matched := false
			for _, a := range alts {
				if ap, ok := a.(map[string]any); ok && matchPattern(ap, value) {
					matched = true
					break
				}
			}
			if !matched {
				return false
			}
			continue
		}
		ev, present := obj[k]
		if !matchField(pv, ev, present) {
			return false
		}
	}
	return true
}

// matchField matches one pattern value against one event field.
func matchField(pv, ev any, present bool) bool {
	switch p := pv.(type) {
	case []any:
		for _, alt := range p {
			if matchAlternative(alt, ev, present) {
				return true
			}
		}
		return false
	case map[string]any:
		if isOperator(p) {
			return matchAlternative(p, ev, present)
		}
		if !present {
			// A nested pattern on a missing object matches only if all it
			// asks is that fields be absent.
			return matchPattern(p, nil)
		}
		nested, ok := ev.(map[string]any)
		if !ok {
			return false
		}
		return matchPattern(p, nested)
	default:
		return matchAlternative(p, ev, present)
	}
}

func isOperator(p map[string]any) bool {
	if len(p) != 1 {
		return false
	}
	for k := range p {
		return operators[k]
	}
	return false
}

// matchAlternative matches one element of a pattern list.
func matchAlternative(alt, ev any, present bool) bool {
	op, isOp := alt.(map[string]any)
	if isOp && isOperator(op) {
		if want, ok := op["exists"]; ok {
			b, isBool := want.(bool)
			return isBool && b == present
		}
	} else if isOp {
		return false // a nested object inside a list is not a pattern EventBridge accepts
	}
	if !present {
		return false
	}
	if arr, ok := ev.([]any); ok {
		for _, e := range arr {
			if matchAlternative(alt, e, true) {
				return true
			}
		}
		return false
	}
	if !isOp {
		return equalValues(alt, ev)
	}
	for name, arg := range op {
		switch name {
		case "prefix":
			s, ok1 := ev.(string)
			p, ok2 := arg.(string)
			return ok1 && ok2 && strings.HasPrefix(s, p)
		case "suffix":
			s, ok1 := ev.(string)
			p, ok2 := arg.(string)
			return ok1 && ok2 && strings.HasSuffix(s, p)
		case "equals-ignore-case":
			s, ok1 := ev.(string)
			p, ok2 := arg.(string)
			return ok1 && ok2 && strings.EqualFold(s, p)
		case "wildcard":
			s, ok1 := ev.(string)
			p, ok2 := arg.(string)
			return ok1 && ok2 && wildcard(p, s)
		case "anything-but":
			return anythingBut(arg, ev)
		case "numeric":
			return numeric(arg, ev)
		}
	}
	return false
}

func anythingBut(arg, ev any) bool {
	switch a := arg.(type) {
	case []any:
		for _, x := range a {
			if equalValues(x, ev) {
				return false
			}
		}
		return true
	case map[string]any:
		if isOperator(a) {
			return !matchAlternative(a, ev, true)
		}
		return false
	default:
		return !equalValues(a, ev)
	}
}

// numeric evaluates [op, n, op, n…] against a number.
func numeric(arg, ev any) bool {
	conds, ok := arg.([]any)
	if !ok || len(conds) == 0 || len(conds)%2 != 0 {
		return false
	}
	v, ok := toFloat(ev)
	if !ok {
		return false
	}
	for i := 0; i < len(conds); i += 2 {
		op, _ := conds[i].(string)
		n, ok := toFloat(conds[i+1])
		if !ok {
			return false
		}
		var hold bool
		switch op {
		case "=":
			hold = v == n
		case "<":
			hold = v < n
		case "<=":
			hold = v <= n
		case ">":
			hold = v > n
		case ">=":
			hold = v >= n
		default:
			return false
		}
		if !hold {
			return false
		}
	}
	return true
}

// wildcard matches s against p where '*' matches any run of characters.
func wildcard(p, s string) bool {
	parts := strings.Split(p, "*")
	if len(parts) == 1 {
		return p == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, mid := range parts[1 : len(parts)-1] {
		i := strings.Index(s, mid)
		if i < 0 {
			return false
		}
		s = s[i+len(mid):]
	}
	return strings.HasSuffix(s, last)
}

// equalValues compares a pattern literal with an event value: numbers by
// value, everything else exactly.
func equalValues(p, ev any) bool {
	if pf, ok := toFloat(p); ok {
		ef, ok := toFloat(ev)
		return ok && pf == ef
	}
	switch pv := p.(type) {
	case nil:
		return ev == nil
	case string:
		s, ok := ev.(string)
		return ok && s == pv
	case bool:
		b, ok := ev.(bool)
		return ok && b == pv
	}
	return false
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil && !math.IsInf(f, 0)
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	}
	return 0, false
}
