package template_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/taskerhq/tasker/internal/template"
)

// fuzzLimits are small so the oracle below can expand inputs naively.
var fuzzLimits = template.Limits{
	MaxFileBytes:     64 << 10,
	MaxAliases:       200,
	MaxExpandedNodes: 2_000,
	MaxExpandedBytes: 32 << 10,
	MaxDepth:         40,
}

// FuzzLoadAliases feeds alias-heavy YAML to the parser with small limits.
// Parse must return promptly, and refuse with ErrBudget exactly when a
// naive expansion of the first document (every alias and merge key
// followed, stopping just past the limit) exceeds a limit. Seeds: the
// corpus in testdata/fuzz/FuzzLoadAliases (bombs in steps, context_schema
// and environments, merge chains, recursive aliases, legitimate anchors).
func FuzzLoadAliases(f *testing.F) {
	f.Add([]byte(laughs + "steps:\n  - {name: s, handler: tasker.noop, config: {v: *i}}\n"))
	f.Add([]byte(mergeChain(12)))
	f.Add([]byte("x-d: &d {handler: tasker.noop}\nname: wf\nsteps:\n  - {<<: *d, name: a}\n  - {<<: *d, name: b, depends_on: a}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-done:
			case <-time.After(parseBudget):
				panic(fmt.Sprintf("template.Parse did not return within %s on %d bytes: %q", parseBudget, len(data), data))
			}
		}()
		_, err := template.Parse("fuzz.yaml", data, template.Options{Env: "development", Limits: fuzzLimits})
		refused := errors.Is(err, template.ErrBudget)

		want, why := overBudget(data, fuzzLimits)
		if refused != want {
			t.Fatalf("refused = %v, want %v (%s); err = %v", refused, want, why, err)
		}
	})
}

// overBudget is the oracle: it decodes the first document as Parse does and
// expands it node by node, with no memoisation, until a limit is passed.
func overBudget(data []byte, lim template.Limits) (bool, string) {
	if len(data) > lim.MaxFileBytes {
		return true, "file size"
	}
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		return false, "not YAML"
	}
	aliases := 0
	var count func(n *yaml.Node)
	count = func(n *yaml.Node) {
		if n.Kind == yaml.AliasNode {
			aliases++
			return
		}
		for _, c := range n.Content {
			count(c)
		}
	}
	count(&doc)
	if aliases > lim.MaxAliases {
		return true, "aliases"
	}
	nodes, size := 0, 0
	var over string
	// expand returns the depth of n (mappings and lists) and stops at the
	// first limit passed, which also ends a recursive alias.
	var expand func(n *yaml.Node) int
	expand = func(n *yaml.Node) int {
		if over != "" || n == nil {
			return 0
		}
		if n.Kind == yaml.AliasNode {
			return expand(n.Alias)
		}
		nodes++
		size += len(n.Value)
		switch {
		case nodes > lim.MaxExpandedNodes:
			over = "nodes"
			return 0
		case size > lim.MaxExpandedBytes:
			over = "bytes"
			return 0
		}
		depth := 0
		for _, c := range n.Content {
			depth = max(depth, expand(c))
		}
		if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
			depth++
		}
		if depth > lim.MaxDepth && over == "" {
			over = "depth"
		}
		return depth
	}
	expand(&doc)
	return over != "", over
}
