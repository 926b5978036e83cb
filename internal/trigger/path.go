package trigger

import (
	"fmt"
	"strconv"
	"strings"
)

// segment is one step of a path: a member name or an array index.
type segment struct {
	name  string
	index int
	isIdx bool
}

// parsePath parses the small JSONPath subset triggers use to pick event
// fields: "$" (the whole view), ".name" (any characters but '.' and '['),
// "['name']" or "[\"name\"]" (any characters), and "[n]" (an array index).
// Examples: "$.detail.order_id", "$.detail.items[0].sku",
// "$.detail['line-items']", "$.key".
func parsePath(p string) ([]segment, error) {
	if !strings.HasPrefix(p, "$") {
		return nil, fmt.Errorf("path %q must start with \"$\"", p)
	}
	rest := p[1:]
	var segs []segment
	for rest != "" {
		switch rest[0] {
		case '.':
			rest = rest[1:]
			end := strings.IndexAny(rest, ".[")
			if end < 0 {
				end = len(rest)
			}
			if end == 0 {
				return nil, fmt.Errorf("path %q has an empty member name", p)
			}
			segs = append(segs, segment{name: rest[:end]})
			rest = rest[end:]
		case '[':
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				return nil, fmt.Errorf("path %q has an unclosed [", p)
			}
			inner := strings.TrimSpace(rest[1:end])
			// A quoted name may itself contain ']'.
			if len(inner) > 0 && (inner[0] == '\'' || inner[0] == '"') {
				q := inner[0]
				closeAt := strings.IndexByte(rest[2:], q)
				if closeAt < 0 {
					return nil, fmt.Errorf("path %q has an unclosed quote", p)
				}
				name := rest[2 : 2+closeAt]
				after := strings.TrimLeft(rest[2+closeAt+1:], " ")
				if !strings.HasPrefix(after, "]") {
					return nil, fmt.Errorf("path %q: want ] after the quoted name %q", p, name)
				}
				segs = append(segs, segment{name: name})
				rest = after[1:]
				continue
			}
			n, err := strconv.Atoi(inner)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("path %q: [%s] is neither an array index nor a quoted name", p, inner)
			}
			segs = append(segs, segment{index: n, isIdx: true})
			rest = rest[end+1:]
		default:
			return nil, fmt.Errorf("path %q: unexpected %q after %q", p, rest[0], p[:len(p)-len(rest)])
		}
	}
	return segs, nil
}

// lookup resolves a parsed path in a decoded JSON value.
func lookup(v any, segs []segment) (any, bool) {
	cur := v
	for _, s := range segs {
		if s.isIdx {
			arr, ok := cur.([]any)
			if !ok || s.index >= len(arr) {
				return nil, false
			}
			cur = arr[s.index]
			continue
		}
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[s.name]; !ok {
			return nil, false
		}
	}
	return cur, true
}
