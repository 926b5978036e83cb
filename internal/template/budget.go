package template

import (
	"errors"
	"fmt"

	"gopkg.in/yaml.v3"
)

// ErrBudget is wrapped by the Error reported for a template that exceeds
// its loading Limits (errors.Is(err, ErrBudget) holds for Parse's error).
var ErrBudget = errors.New("template exceeds the loading budget")

// Default loading limits. A real template is a few KiB with a handful of
// aliases; these leave two orders of magnitude of room while keeping a
// hostile file (a "billion laughs" of nested aliases, a merge-key chain)
// to milliseconds and a few MiB.
const (
	DefaultMaxFileBytes     = 1 << 20 // size of the file as read
	DefaultMaxAliases       = 10_000  // alias occurrences (*name), counted as written
	DefaultMaxExpandedNodes = 100_000 // YAML nodes once every alias and merge key is expanded
	DefaultMaxExpandedBytes = 8 << 20 // scalar text once every alias is expanded
	DefaultMaxDepth         = 100     // nesting of mappings and lists, aliases expanded
)

// Limits bound what loading one template may cost. A zero field takes its
// default.
type Limits struct {
	MaxFileBytes     int
	MaxAliases       int
	MaxExpandedNodes int
	MaxExpandedBytes int
	MaxDepth         int
}

// DefaultLimits returns the limits loading applies unless Options.Limits
// says otherwise.
func DefaultLimits() Limits {
	return Limits{
		MaxFileBytes:     DefaultMaxFileBytes,
		MaxAliases:       DefaultMaxAliases,
		MaxExpandedNodes: DefaultMaxExpandedNodes,
		MaxExpandedBytes: DefaultMaxExpandedBytes,
		MaxDepth:         DefaultMaxDepth,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	pick := func(v, def int) int {
		if v > 0 {
			return v
		}
		return def
	}
	return Limits{
		MaxFileBytes:     pick(l.MaxFileBytes, d.MaxFileBytes),
		MaxAliases:       pick(l.MaxAliases, d.MaxAliases),
		MaxExpandedNodes: pick(l.MaxExpandedNodes, d.MaxExpandedNodes),
		MaxExpandedBytes: pick(l.MaxExpandedBytes, d.MaxExpandedBytes),
		MaxDepth:         pick(l.MaxDepth, d.MaxDepth),
	}
}

// budgetError is the refusal of a template beyond its limits; line is where
// the walk was when the budget ran out (0 when unknown).
type budgetError struct {
	line int
	msg  string
}

func (e *budgetError) Error() string { return e.msg }

// extent is the size of a node with every alias and merge key expanded.
type extent struct {
	nodes, bytes, depth int
}

// measure computes the expanded extent of a document without expanding it:
// each distinct node is visited once and its extent memoised, so a
// billion-laughs file costs as much as its text. Everything the parser
// later expands (resolve, mapPairs' merge keys, toJSON) is a walk of this
// expanded tree, so bounding it here bounds the parser's time and memory.
func measure(doc *yaml.Node, lim Limits) error {
	m := &measurer{lim: lim, memo: map[*yaml.Node]extent{}, open: map[*yaml.Node]bool{}}
	if err := m.countAliases(doc, 0); err != nil {
		return err
	}
	_, err := m.extent(doc)
	return err
}

type measurer struct {
	lim     Limits
	aliases int
	memo    map[*yaml.Node]extent
	open    map[*yaml.Node]bool // on the current path: an alias back to one is a cycle
}

// countAliases counts alias occurrences in the tree as written (aliases are
// not followed, so this is linear in the file). depth counts the mappings
// and lists around n, as extent does, and guards the recursion.
func (m *measurer) countAliases(n *yaml.Node, depth int) error {
	switch n.Kind {
	case yaml.AliasNode:
		if m.aliases++; m.aliases > m.lim.MaxAliases {
			return &budgetError{n.Line, fmt.Sprintf("more than %d aliases, beyond the loading budget (MaxAliases)", m.lim.MaxAliases)}
		}
		return nil
	case yaml.MappingNode, yaml.SequenceNode:
		if depth++; depth > m.lim.MaxDepth {
			return &budgetError{n.Line, fmt.Sprintf("nested deeper than the loading budget of %d levels (MaxDepth)", m.lim.MaxDepth)}
		}
	}
	for _, c := range n.Content {
		if err := m.countAliases(c, depth); err != nil {
			return err
		}
	}
	return nil
}

func (m *measurer) extent(n *yaml.Node) (extent, error) {
	if n == nil {
		return extent{}, nil
	}
	if e, ok := m.memo[n]; ok {
		return e, nil
	}
	if m.open[n] {
		return extent{}, &budgetError{n.Line, "recursive alias: an anchor is used inside itself, so the value is infinite"}
	}
	m.open[n] = true
	defer delete(m.open, n)

	var e extent
	switch n.Kind {
	case yaml.AliasNode:
		// An alias costs what its anchor costs, every time it is used.
		if n.Alias == nil {
			return extent{}, nil
		}
		a, err := m.extent(n.Alias)
		if err != nil {
			return extent{}, err
		}
		e = a
	default:
		e = extent{nodes: 1, bytes: len(n.Value)}
		deepest := 0
		for _, c := range n.Content {
			ce, err := m.extent(c)
			if err != nil {
				return extent{}, err
			}
			// Saturate: a 30-level bomb's true size does not fit an int.
			e.nodes = min(e.nodes+ce.nodes, m.lim.MaxExpandedNodes+1)
			e.bytes = min(e.bytes+ce.bytes, m.lim.MaxExpandedBytes+1)
			deepest = max(deepest, ce.depth)
		}
		e.depth = deepest
		if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
			e.depth++
		}
	}
	switch {
	case e.nodes > m.lim.MaxExpandedNodes:
		return extent{}, &budgetError{n.Line, fmt.Sprintf("expands to more than %d YAML nodes once aliases and merge keys are expanded, beyond the loading budget (MaxExpandedNodes)", m.lim.MaxExpandedNodes)}
	case e.bytes > m.lim.MaxExpandedBytes:
		return extent{}, &budgetError{n.Line, fmt.Sprintf("expands to more than %d bytes of text once aliases are expanded, beyond the loading budget (MaxExpandedBytes)", m.lim.MaxExpandedBytes)}
	case e.depth > m.lim.MaxDepth:
		return extent{}, &budgetError{n.Line, fmt.Sprintf("nested deeper than the loading budget of %d levels once aliases are expanded (MaxDepth)", m.lim.MaxDepth)}
	}
	m.memo[n] = e
	return e, nil
}
