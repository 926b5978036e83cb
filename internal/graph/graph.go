// Package graph lays out a workflow's step DAG by dependency level and
// renders it as Mermaid, Graphviz DOT or a self-contained SVG, coloured by
// step state. It knows nothing about tasks or templates: callers hand it
// steps with their parents.
//
// Import rules: standard library only.
package graph

import (
	"slices"
	"strconv"
	"strings"

	"github.com/taskerhq/tasker/internal/domain"
)

// Step is one input node: a step name, its parents, and (for a task) its
// state and attempts. State "" draws a plain template node.
type Step struct {
	Name        string
	DependsOn   []string
	State       string
	Handler     string
	Attempts    int
	MaxAttempts int
	// Map marks a map step (one node for all its instances); MapCounts
	// are its instances by state, for a task whose map step ran.
	Map       bool
	MapCounts map[string]int
	// TriggerRule is the step's trigger rule ("" or "all_success" for the
	// default); its incoming edges are drawn by it (EdgeStyleOf).
	TriggerRule string
	// When is the step's condition, shown in tooltips.
	When string
	// Note says more about the state, shown in tooltips: when a waiting
	// step is due, why a step was skipped.
	Note string
}

// The trigger rules with an edge style of their own
// (docs/control-flow.md, "Trigger rules").
const (
	RuleAllSuccess = "all_success"
	RuleAllDone    = "all_done"
	RuleOneFailed  = "one_failed"
)

// Kind is what a node is drawn as, from its handler: a step (the default),
// a durable timer (tasker.wait) or a wait for a callback (tasker.callback).
type Kind string

// The node kinds.
const (
	KindStep     Kind = "step"
	KindWait     Kind = "wait"
	KindCallback Kind = "callback"
)

// KindOf returns the kind of a step with the given handler.
func KindOf(handler string) Kind {
	switch handler {
	case "tasker.wait":
		return KindWait
	case "tasker.callback":
		return KindCallback
	}
	return KindStep
}

// Node is a laid-out step. Level 0 holds the steps without parents; a
// step's level is one more than its deepest parent's.
type Node struct {
	Step
	Level int
}

// Edge runs from a parent to a dependent step. Rule is the dependent's
// trigger rule when it is not the default (all_done, one_failed), else "".
type Edge struct {
	From, To string
	Rule     string
}

// Graph is a laid-out DAG.
type Graph struct {
	// Title names the graph in renderings (e.g. "shop/order@1.0.0").
	Title string
	// Nodes in input order.
	Nodes []Node
	// Edges in input order of the dependent step, then of its parents.
	Edges []Edge
	// Levels holds the node names of each level, in input order.
	Levels [][]string
}

// New lays out steps. Parents that are not among the steps are ignored; a
// step caught in a cycle (never the case for a valid template) is placed
// one level after everything else so it is still drawn.
func New(title string, steps []Step) *Graph {
	g := &Graph{Title: title}
	index := make(map[string]int, len(steps))
	for i, s := range steps {
		if _, dup := index[s.Name]; !dup {
			index[s.Name] = i
		}
	}
	parents := make([][]int, len(steps))
	children := make([][]int, len(steps))
	indeg := make([]int, len(steps))
	for i, s := range steps {
		for _, d := range s.DependsOn {
			j, ok := index[d]
			if !ok || j == i || slices.Contains(parents[i], j) {
				continue
			}
			parents[i] = append(parents[i], j)
			children[j] = append(children[j], i)
			indeg[i]++
			rule := s.TriggerRule
			if rule == RuleAllSuccess {
				rule = ""
			}
			g.Edges = append(g.Edges, Edge{From: steps[j].Name, To: s.Name, Rule: rule})
		}
	}
	level := make([]int, len(steps))
	placed := make([]bool, len(steps))
	var queue []int
	for i := range steps {
		if indeg[i] == 0 {
			queue = append(queue, i)
		}
	}
	maxLevel := 0
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		placed[i] = true
		maxLevel = max(maxLevel, level[i])
		for _, c := range children[i] {
			level[c] = max(level[c], level[i]+1)
			if indeg[c]--; indeg[c] == 0 {
				queue = append(queue, c)
			}
		}
	}
	cyclic := false
	for i := range steps {
		if !placed[i] {
			cyclic = true
			level[i] = maxLevel + 1
		}
	}
	n := maxLevel + 1
	if cyclic {
		n++
	}
	if len(steps) == 0 {
		n = 0
	}
	g.Levels = make([][]string, n)
	for i, s := range steps {
		g.Nodes = append(g.Nodes, Node{Step: s, Level: level[i]})
		g.Levels[level[i]] = append(g.Levels[level[i]], s.Name)
	}
	return g
}

// Style is how a state is drawn.
type Style struct {
	Fill, Stroke, Text string
	Dashed             bool
}

// States lists the step states in lifecycle order (domain.AllStepStates),
// as drawn in legends; each has a style of its own.
var States = func() []string {
	out := make([]string, len(domain.AllStepStates))
	for i, s := range domain.AllStepStates {
		out[i] = string(s)
	}
	return out
}()

var styles = map[domain.StepState]Style{
	domain.StepPending:          {Fill: "#f3f4f6", Stroke: "#6b7280", Text: "#111827"},
	domain.StepInProgress:       {Fill: "#dbeafe", Stroke: "#2563eb", Text: "#1e3a8a"},
	domain.StepWaitingForRetry:  {Fill: "#fef3c7", Stroke: "#d97706", Text: "#78350f"},
	domain.StepWaiting:          {Fill: "#cffafe", Stroke: "#0891b2", Text: "#164e63"},
	domain.StepComplete:         {Fill: "#dcfce7", Stroke: "#16a34a", Text: "#14532d"},
	domain.StepSkipped:          {Fill: "#fafaf9", Stroke: "#a8a29e", Text: "#78716c", Dashed: true},
	domain.StepError:            {Fill: "#fee2e2", Stroke: "#dc2626", Text: "#7f1d1d"},
	domain.StepCancelled:        {Fill: "#e5e7eb", Stroke: "#4b5563", Text: "#374151", Dashed: true},
	domain.StepResolvedManually: {Fill: "#ede9fe", Stroke: "#7c3aed", Text: "#4c1d95"},
}

var plain = Style{Fill: "#ffffff", Stroke: "#374151", Text: "#111827"}

// EdgeStyle is how an edge is drawn: edges into a step with a trigger rule
// other than all_success are dashed, coloured and labelled by the rule.
type EdgeStyle struct {
	Stroke string
	Dash   string // SVG stroke-dasharray; "" is solid
	Label  string // "" for the default rule
}

var edgeStyles = map[string]EdgeStyle{
	"":            {Stroke: "#6b7280"},
	RuleOneFailed: {Stroke: "#dc2626", Dash: "6 4", Label: "on failure"},
	RuleAllDone:   {Stroke: "#7c3aed", Dash: "2 3", Label: "always"},
}

// EdgeStyleOf returns the style of edges into a step with the given
// trigger rule; the default and unknown rules are plain.
func EdgeStyleOf(rule string) EdgeStyle {
	if s, ok := edgeStyles[rule]; ok {
		return s
	}
	return edgeStyles[""]
}

// StyleOf returns the style of a state; unknown states and "" are plain.
func StyleOf(state string) Style {
	if s, ok := styles[domain.StepState(state)]; ok {
		return s
	}
	return plain
}

// hasStates reports whether any node carries a state (a task graph).
func (g *Graph) hasStates() bool {
	for _, n := range g.Nodes {
		if n.State != "" {
			return true
		}
	}
	return false
}

// tooltip describes a node: name, state, attempts, handler, condition,
// trigger rule and note.
func (n Node) tooltip() string {
	tip := n.Name
	if n.State != "" {
		tip += ": " + n.State
		if n.MaxAttempts > 0 {
			tip += ", attempt " + strconv.Itoa(n.Attempts) + " of " + strconv.Itoa(n.MaxAttempts)
		}
	}
	if n.Note != "" {
		tip += " (" + n.Note + ")"
	}
	if n.Handler != "" {
		tip += " [" + n.Handler + "]"
	}
	if n.When != "" {
		tip += " when " + n.When
	}
	if n.TriggerRule != "" && n.TriggerRule != RuleAllSuccess {
		tip += " trigger_rule " + n.TriggerRule
	}
	return tip
}

// detail is the second label line of a node: its state and attempts for a
// task, its handler for a template.
func (n Node) detail() string {
	if n.State == "" {
		if n.Map {
			return n.Handler + " · map"
		}
		return n.Handler
	}
	s := n.State
	if n.MaxAttempts > 0 && !n.Map {
		s += " · " + strconv.Itoa(n.Attempts) + "/" + strconv.Itoa(n.MaxAttempts)
	}
	if len(n.MapCounts) > 0 {
		s += " · " + mapCounts(n.MapCounts)
	}
	return s
}

// mapCounts summarises a map step's instances: "map 3/5 complete, 2 in
// progress" (the word says the node stands for many instances).
func mapCounts(c map[string]int) string {
	total := 0
	states := make([]string, 0, len(c))
	for st, n := range c {
		total += n
		if st != string(domain.StepComplete) {
			states = append(states, st)
		}
	}
	slices.Sort(states)
	s := "map " + strconv.Itoa(c[string(domain.StepComplete)]) + "/" + strconv.Itoa(total) + " complete"
	for _, st := range states {
		s += ", " + strconv.Itoa(c[st]) + " " + strings.ReplaceAll(st, "_", " ")
	}
	return s
}
