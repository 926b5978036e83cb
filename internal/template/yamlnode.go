package template

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"
)

// pair is one key/value of a YAML mapping, after merge keys are expanded.
type pair struct {
	key  string
	k, v *yaml.Node
}

func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		return resolve(n.Content[0])
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

func describe(n *yaml.Node) string {
	n = resolve(n)
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "null"
		case "!!bool":
			return "a boolean"
		case "!!int", "!!float":
			return "a number (" + n.Value + ")"
		}
		return fmt.Sprintf("a string (%q)", n.Value)
	}
	return "an unsupported value"
}

// mapPairs returns the pairs of a mapping in document order. Keys from YAML
// merge keys ("<<: *defaults") come after the explicit ones and never
// override them. Duplicate explicit keys are reported through dup.
func mapPairs(n *yaml.Node, dup func(key string, line int)) []pair {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	var out, merged []pair
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			mv := resolve(v)
			var srcs []*yaml.Node
			if mv.Kind == yaml.SequenceNode {
				srcs = mv.Content
			} else {
				srcs = []*yaml.Node{mv}
			}
			for _, s := range srcs {
				merged = append(merged, mapPairs(s, nil)...)
			}
			continue
		}
		key := k.Value
		if seen[key] {
			if dup != nil {
				dup(key, k.Line)
			}
			continue
		}
		seen[key] = true
		out = append(out, pair{key: key, k: k, v: v})
	}
	for _, p := range merged {
		if !seen[p.key] {
			seen[p.key] = true
			out = append(out, p)
		}
	}
	return out
}

// toJSON converts a YAML value to the plain Go values encoding/json and
// jsonschema understand (map[string]any, []any, string, bool, nil, numbers).
func toJSON(n *yaml.Node, depth int) (any, error) {
	if depth > 200 {
		return nil, fmt.Errorf("line %d: value nested too deeply (recursive alias?)", n.Line)
	}
	n = resolve(n)
	if n == nil {
		return nil, nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := map[string]any{}
		var err error
		for _, p := range mapPairs(n, func(key string, line int) {
			if err == nil {
				err = fmt.Errorf("line %d: duplicate key %q", line, key)
			}
		}) {
			v, e := toJSON(p.v, depth+1)
			if e != nil {
				return nil, e
			}
			m[p.key] = v
		}
		return m, err
	case yaml.SequenceNode:
		a := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := toJSON(c, depth+1)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		return a, nil
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return nil, nil
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err != nil {
				return nil, fmt.Errorf("line %d: %v", n.Line, err)
			}
			return b, nil
		case "!!int":
			var i int64
			if err := n.Decode(&i); err == nil {
				return i, nil
			}
			var u uint64
			if err := n.Decode(&u); err == nil {
				return u, nil
			}
			return nil, fmt.Errorf("line %d: integer %s out of range", n.Line, n.Value)
		case "!!float":
			var f float64
			if err := n.Decode(&f); err != nil {
				return nil, fmt.Errorf("line %d: %v", n.Line, err)
			}
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return nil, fmt.Errorf("line %d: %s is not a JSON number", n.Line, n.Value)
			}
			return f, nil
		default: // !!str, !!timestamp, !!binary, custom tags: keep the text as written
			return n.Value, nil
		}
	}
	return nil, fmt.Errorf("line %d: unsupported YAML value", n.Line)
}

// Typed scalar readers. They return ok=false (and the reason) on a type mismatch.

func scalarString(n *yaml.Node) (string, string) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode {
		return "", "must be a string, got " + describe(n)
	}
	return n.Value, ""
}

func scalarInt(n *yaml.Node) (int, string) {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode {
		switch n.Tag {
		case "!!int":
			var i int
			if err := n.Decode(&i); err == nil {
				return i, ""
			}
		case "!!float":
			f, err := strconv.ParseFloat(n.Value, 64)
			if err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<31 {
				return int(f), ""
			}
		}
	}
	return 0, "must be an integer, got " + describe(n)
}

func scalarFloat(n *yaml.Node) (float64, string) {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && (n.Tag == "!!int" || n.Tag == "!!float") {
		var f float64
		if err := n.Decode(&f); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
			return f, ""
		}
	}
	return 0, "must be a number, got " + describe(n)
}

func scalarBool(n *yaml.Node) (bool, string) {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		var b bool
		if err := n.Decode(&b); err == nil {
			return b, ""
		}
	}
	return false, "must be true or false, got " + describe(n)
}

// stringList accepts one string or a list of strings.
func stringList(n *yaml.Node) ([]string, string) {
	n = resolve(n)
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return nil, ""
		}
		return []string{n.Value}, ""
	case yaml.SequenceNode:
		out := make([]string, 0, len(n.Content))
		for _, c := range n.Content {
			c = resolve(c)
			if c.Kind != yaml.ScalarNode || c.Tag == "!!null" {
				return nil, "must be a string or a list of strings, found " + describe(c) + " in the list"
			}
			out = append(out, c.Value)
		}
		return out, ""
	}
	return nil, "must be a string or a list of strings, got " + describe(n)
}

func seconds(f float64) time.Duration {
	return time.Duration(f * float64(time.Second))
}
