package template

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// AliasesFile is the file LoadDir and LoadFS read, at the root they load,
// as handler aliases for every template instead of as a template.
const AliasesFile = "handler_aliases.yaml"

// ParseAliases reads a handler aliases file: a YAML mapping of handler
// names as written in templates to the handlers that run them, e.g.
//
//	Ecommerce::ValidateOrderHandler: lambda:validate-order
//	Ecommerce::ShipOrderHandler: shop.ship_order
func ParseAliases(source string, data []byte) (map[string]string, error) {
	p := &parser{file: source}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		p.yamlError(err)
		return nil, p.errs
	}
	root := resolve(&doc)
	if root == nil || isNull(root) {
		return map[string]string{}, nil
	}
	m := p.aliasMap(root, "")
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	return m, nil
}

// aliasMap decodes a mapping of alias to handler; field prefixes the
// field names in errors.
func (p *parser) aliasMap(n *yaml.Node, field string) map[string]string {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		p.errf(n.Line, "", strings.TrimSuffix(field, "."), "handler aliases must be a mapping of name to handler, e.g. \"Ecommerce::ValidateOrderHandler: lambda:validate-order\", got %s", describe(n))
		return nil
	}
	out := map[string]string{}
	for _, kv := range mapPairs(n, p.dupKey("", field)) {
		target, bad := scalarString(kv.v)
		switch {
		case bad != "" || isNull(kv.v):
			p.errf(kv.v.Line, "", field+kv.key, "the handler an alias maps to must be a string, got %s", describe(kv.v))
		case strings.TrimSpace(target) == "":
			p.errf(kv.v.Line, "", field+kv.key, "maps to an empty handler")
		default:
			out[strings.TrimSpace(kv.key)] = strings.TrimSpace(target)
		}
	}
	return out
}

// aliases replaces each step's handler by its alias target: the
// template's own handler_aliases first, then Options.HandlerAliases.
// Targets are then checked like any handler (parser.handlers).
func (p *parser) aliases(t *Template, kv *pair, metas []*stepMeta) {
	var own map[string]string
	if kv != nil {
		own = p.aliasMap(kv.v, kv.key+".")
	}
	for i := range t.Steps {
		s := &t.Steps[i]
		target, ok := own[s.Handler]
		if !ok {
			target, ok = p.opts.HandlerAliases[s.Handler]
		}
		if !ok || target == s.Handler {
			continue
		}
		if _, chained := own[target]; chained {
			p.errf(metas[i].fieldLine("handler"), metas[i].label, metas[i].field("handler"),
				"handler alias %q maps to %q, itself an alias: map it to the final handler", s.Handler, target)
			continue
		}
		s.HandlerAlias, s.Handler = s.Handler, target
	}
}

// gatherUnknownHandlers replaces the ErrUnknownHandler problems of a load
// by one that names every unknown handler, with where each is used, so a
// team moving templates over sees the whole alias map to write at once.
func gatherUnknownHandlers(errs Errors) Errors {
	uses := map[string][]string{}
	var rest Errors
	for _, e := range errs {
		if e.Err != ErrUnknownHandler || e.Handler == "" {
			rest = append(rest, e)
			continue
		}
		where := e.File
		if e.Line > 0 {
			where = fmt.Sprintf("%s:%d", e.File, e.Line)
		}
		uses[e.Handler] = append(uses[e.Handler], where)
	}
	if len(uses) == 0 {
		return errs
	}
	names := make([]string, 0, len(uses))
	for n := range uses {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		ws := slices.Compact(uses[n])
		parts[i] = fmt.Sprintf("%s (%s)", n, strings.Join(ws, ", "))
	}
	return append(rest, &Error{Err: ErrUnknownHandler, Msg: fmt.Sprintf(
		"%d unknown handlers: %s; register them, or map each in handler_aliases (in %s or the template), e.g. %q",
		len(names), strings.Join(parts, "; "), AliasesFile, names[0]+": lambda:FUNCTION-NAME")})
}

// InputsAll is the value of a step's inputs field that hands the handler
// the results of every ancestor.
const InputsAll = "all"

// inputs reads a step's inputs: "all", or a list of step names whose
// results the handler gets besides its direct parents'.
func (b *stepBuild) inputs(f field) {
	if s, bad := scalarString(f.kv.v); bad == "" && resolve(f.kv.v).Kind == yaml.ScalarNode {
		if s != InputsAll {
			f.errf("must be %q or a list of step names, got %q", InputsAll, s)
			return
		}
		b.m.inputsAll = true
		return
	}
	if list, ok := f.asList(); ok {
		b.m.inputs = list
		b.m.inputsGiven = true
	}
}

// resolveInputs sets Step.Inputs for the steps with an inputs field. A
// listed step must be an ancestor: only an ancestor has surely finished
// when the step runs, so its result is always there.
func (p *parser) resolveInputs(t *Template, metas []*stepMeta) {
	if len(p.errs) > 0 {
		return // the graph may be broken; its problems are reported
	}
	index := map[string]int{}
	for i, s := range t.Steps {
		index[s.Name] = i
	}
	anc := make([]map[string]bool, len(t.Steps))
	var ancestors func(i int) map[string]bool
	ancestors = func(i int) map[string]bool {
		if anc[i] != nil {
			return anc[i]
		}
		a := map[string]bool{}
		anc[i] = a // the graph is acyclic here
		for _, d := range t.Steps[i].DependsOn {
			a[d] = true
			for n := range ancestors(index[d]) {
				a[n] = true
			}
		}
		return a
	}
	for i := range t.Steps {
		m, s := metas[i], &t.Steps[i]
		if !m.inputsAll && !m.inputsGiven {
			continue
		}
		a := ancestors(i)
		want := map[string]bool{}
		for _, d := range s.DependsOn {
			want[d] = true
		}
		for _, n := range m.inputs {
			n = strings.TrimSpace(n)
			switch {
			case n == s.Name:
				p.errf(m.fieldLine("inputs"), m.label, "inputs", "a step cannot read its own result")
			case !a[n]:
				msg := fmt.Sprintf("step %q is not an ancestor of this step: a handler reads only results of steps that finished before it (add it to depends_on)", n)
				if _, ok := index[n]; !ok {
					msg = fmt.Sprintf("unknown step %q", n)
				}
				p.errf(m.fieldLine("inputs"), m.label, "inputs", "%s", msg)
			default:
				want[n] = true
			}
		}
		if m.inputsAll {
			want = a
		}
		s.Inputs = []string{}
		for _, o := range t.Steps {
			if want[o.Name] {
				s.Inputs = append(s.Inputs, o.Name)
			}
		}
	}
}
