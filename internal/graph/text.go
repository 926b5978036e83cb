package graph

import (
	"fmt"
	"strings"
)

// Mermaid renders a Mermaid flowchart, left to right, with one classDef
// per step state.
func (g *Graph) Mermaid() string {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	if g.Title != "" {
		fmt.Fprintf(&b, "    %%%% %s\n", mermaidComment(g.Title))
	}
	ids := make(map[string]string, len(g.Nodes))
	for i, n := range g.Nodes {
		ids[n.Name] = fmt.Sprintf("s%d", i)
	}
	for i, n := range g.Nodes {
		label := mermaidText(n.Name)
		if d := n.detail(); d != "" {
			label += "<br/>" + mermaidText(d)
		}
		// Shapes by kind: a stadium for a timer, a hexagon for a callback,
		// a double-edged box for a map step (one node for its instances).
		open, close := "[", "]"
		switch {
		case n.Map:
			open, close = "[[", "]]"
		case KindOf(n.Handler) == KindWait:
			open, close = "([", "])"
		case KindOf(n.Handler) == KindCallback:
			open, close = "{{", "}}"
		}
		fmt.Fprintf(&b, "    s%d%s\"%s\"%s\n", i, open, label, close)
	}
	var ruled []int // indexes of edges with a trigger rule, for linkStyle
	for i, e := range g.Edges {
		if es := EdgeStyleOf(e.Rule); es.Label != "" {
			fmt.Fprintf(&b, "    %s -. %s .-> %s\n", ids[e.From], mermaidText(es.Label), ids[e.To])
			ruled = append(ruled, i)
			continue
		}
		fmt.Fprintf(&b, "    %s --> %s\n", ids[e.From], ids[e.To])
	}
	for _, i := range ruled {
		fmt.Fprintf(&b, "    linkStyle %d stroke:%s\n", i, EdgeStyleOf(g.Edges[i].Rule).Stroke)
	}
	if !g.hasStates() {
		return b.String()
	}
	for _, st := range States {
		s := StyleOf(st)
		fmt.Fprintf(&b, "    classDef %s fill:%s,stroke:%s,color:%s", st, s.Fill, s.Stroke, s.Text)
		if s.Dashed {
			b.WriteString(",stroke-dasharray:4 3")
		}
		b.WriteByte('\n')
	}
	for _, st := range States {
		var members []string
		for i, n := range g.Nodes {
			if n.State == st {
				members = append(members, fmt.Sprintf("s%d", i))
			}
		}
		if len(members) > 0 {
			fmt.Fprintf(&b, "    class %s %s\n", strings.Join(members, ","), st)
		}
	}
	return b.String()
}

// mermaidText escapes a label for a quoted Mermaid node (entity codes).
func mermaidText(s string) string {
	return strings.NewReplacer(`"`, "#quot;", "<", "#lt;", ">", "#gt;", "\n", " ").Replace(s)
}

func mermaidComment(s string) string {
	return strings.NewReplacer("\n", " ", "\r", " ").Replace(s)
}

// DOT renders a Graphviz digraph, left to right, with the nodes of each
// dependency level in one rank and filled by state.
func (g *Graph) DOT() string {
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %s {\n", dotQuote(g.Title))
	b.WriteString("    rankdir=LR;\n")
	b.WriteString("    node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=11];\n")
	b.WriteString("    edge [color=\"#6b7280\"];\n")
	for _, n := range g.Nodes {
		s := StyleOf(n.State)
		style := "rounded,filled"
		if s.Dashed {
			style += ",dashed"
		}
		label := n.Name
		if d := n.detail(); d != "" {
			label += "\n" + d
		}
		fmt.Fprintf(&b, "    %s [label=%s, fillcolor=%s, color=%s, fontcolor=%s, style=%s",
			dotQuote(n.Name), dotQuote(label), dotQuote(s.Fill), dotQuote(s.Stroke), dotQuote(s.Text), dotQuote(style))
		// Shapes by kind: a doubled box for a timer, a hexagon for a callback,
		// a 3-D box (a stack) for a map step.
		switch {
		case n.Map:
			b.WriteString(", shape=box3d")
		case KindOf(n.Handler) == KindWait:
			b.WriteString(", peripheries=2")
		case KindOf(n.Handler) == KindCallback:
			b.WriteString(", shape=hexagon")
		}
		if n.State != "" || n.When != "" || n.TriggerRule != "" {
			fmt.Fprintf(&b, ", tooltip=%s", dotQuote(n.tooltip()))
		}
		b.WriteString("];\n")
	}
	for _, e := range g.Edges {
		fmt.Fprintf(&b, "    %s -> %s", dotQuote(e.From), dotQuote(e.To))
		if es := EdgeStyleOf(e.Rule); es.Label != "" {
			style := "dashed"
			if e.Rule == RuleAllDone {
				style = "dotted"
			}
			fmt.Fprintf(&b, " [style=%s, color=%s, fontcolor=%s, label=%s, fontsize=9]", style, dotQuote(es.Stroke), dotQuote(es.Stroke), dotQuote(es.Label))
		}
		b.WriteString(";\n")
	}
	for _, lv := range g.Levels {
		if len(lv) < 2 {
			continue
		}
		q := make([]string, len(lv))
		for i, name := range lv {
			q[i] = dotQuote(name)
		}
		fmt.Fprintf(&b, "    { rank=same; %s; }\n", strings.Join(q, "; "))
	}
	b.WriteString("}\n")
	return b.String()
}

// dotQuote returns s as a DOT double-quoted string ("\n" becomes a
// centred line break).
func dotQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", "")
	return `"` + r.Replace(s) + `"`
}
