package graph_test

import (
	"encoding/xml"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/taskerhq/tasker/internal/graph"
)

func diamond() *graph.Graph {
	return graph.New("shop/order@1.0.0", []graph.Step{
		{Name: "a", State: "complete", Attempts: 1, MaxAttempts: 3, Handler: "tasker.noop"},
		{Name: "b", DependsOn: []string{"a"}, State: "error", Attempts: 3, MaxAttempts: 3},
		{Name: "c", DependsOn: []string{"a"}, State: "in_progress", Attempts: 1, MaxAttempts: 3},
		{Name: "d", DependsOn: []string{"c", "b"}, State: "pending", MaxAttempts: 3},
	})
}

func TestLevels(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		steps  []graph.Step
		levels string
		edges  int
	}{
		{"empty", nil, "[]", 0},
		{"chain and skip", []graph.Step{{Name: "a"}, {Name: "b", DependsOn: []string{"a"}}, {Name: "c", DependsOn: []string{"a", "b"}}}, "[[a] [b] [c]]", 3},
		{"unknown and self parents ignored", []graph.Step{{Name: "a", DependsOn: []string{"zz", "a"}}, {Name: "b", DependsOn: []string{"a", "a"}}}, "[[a] [b]]", 1},
		{"cycle still drawn", []graph.Step{{Name: "a"}, {Name: "b", DependsOn: []string{"c"}}, {Name: "c", DependsOn: []string{"b"}}}, "[[a] [b c]]", 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := graph.New("t", tc.steps)
			if got := fmt.Sprint(g.Levels); got != tc.levels || len(g.Edges) != tc.edges {
				t.Fatalf("levels = %s edges = %v, want %s and %d", got, g.Edges, tc.levels, tc.edges)
			}
		})
	}
	g := diamond()
	if fmt.Sprint(g.Levels) != "[[a] [b c] [d]]" || g.Nodes[3].Level != 2 {
		t.Fatalf("diamond levels = %v", g.Levels)
	}
	if fmt.Sprint(g.Edges) != "[{a b } {a c } {c d } {b d }]" {
		t.Fatalf("edges = %v", g.Edges)
	}
}

func TestMermaid(t *testing.T) {
	t.Parallel()
	out := diamond().Mermaid()
	for _, want := range []string{
		"flowchart LR\n", `s0["a<br/>complete · 1/3"]`, "s0 --> s1", "s2 --> s3",
		"classDef error fill:#fee2e2,stroke:#dc2626", "classDef cancelled fill:#e5e7eb,stroke:#4b5563,color:#374151,stroke-dasharray:4 3",
		"class s1 error", "class s3 pending",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("mermaid lacks %q:\n%s", want, out)
		}
	}
	tpl := graph.New("tpl", []graph.Step{{Name: `x"<y>`, Handler: "h"}}).Mermaid()
	if strings.Contains(tpl, "classDef") || !strings.Contains(tpl, `s0["x#quot;#lt;y#gt;<br/>h"]`) {
		t.Errorf("template mermaid:\n%s", tpl)
	}
}

func TestDOT(t *testing.T) {
	t.Parallel()
	out := diamond().DOT()
	for _, want := range []string{
		`digraph "shop/order@1.0.0" {`, "rankdir=LR;", `"b" [label="b\nerror · 3/3", fillcolor="#fee2e2", color="#dc2626"`,
		`"a" -> "b";`, `{ rank=same; "b"; "c"; }`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dot lacks %q:\n%s", want, out)
		}
	}
	if q := graph.New(`a"b\c`, nil).DOT(); !strings.HasPrefix(q, `digraph "a\"b\\c" {`) {
		t.Errorf("dot quoting: %s", q)
	}
}

func TestSVG(t *testing.T) {
	t.Parallel()
	out := diamond().SVG()
	// Well-formed XML.
	dec := xml.NewDecoder(strings.NewReader(out))
	for {
		_, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, out)
		}
	}
	// Self-contained: nothing fetched, nothing run.
	for _, bad := range []string{"href", "<script", "<style", "@import", "<image", "<foreignObject"} {
		if strings.Contains(out, bad) {
			t.Errorf("svg contains %q", bad)
		}
	}
	if n := strings.Count(out, "http"); n != 1 { // the xmlns only
		t.Errorf("svg mentions http %d times", n)
	}
	// Columns by level: a left of b and c (one column), left of d.
	x := map[string]int{}
	re := regexp.MustCompile(`data-step="(\w+)" data-state="(\w+)" data-kind="step"><title>[^<]*</title><rect x="(\d+)" y="\d+" width="\d+" height="\d+" rx="8" ry="8" fill="(#[0-9a-f]+)"`)
	for _, m := range re.FindAllStringSubmatch(out, -1) {
		x[m[1]], _ = strconv.Atoi(m[3])
		if m[4] != graph.StyleOf(m[2]).Fill {
			t.Errorf("%s filled %s, want %s", m[1], m[4], graph.StyleOf(m[2]).Fill)
		}
	}
	if len(x) != 4 || !(x["a"] < x["b"] && x["b"] == x["c"] && x["c"] < x["d"]) {
		t.Fatalf("columns = %v\n%s", x, out)
	}
	// A legend naming every state.
	for _, st := range graph.States {
		if !strings.Contains(out, ">"+strings.ReplaceAll(st, "_", " ")+"</text>") {
			t.Errorf("legend lacks %s", st)
		}
	}
	// Escaping and truncation of long names.
	long := graph.New("<t>", []graph.Step{{Name: strings.Repeat("n", 100) + "&", State: "pending"}}).SVG()
	if strings.Contains(long, "<t>") || !strings.Contains(long, "&lt;t&gt;") || !strings.Contains(long, "…") {
		t.Errorf("escaping/truncation:\n%s", long)
	}
}

func TestMapNodeDetail(t *testing.T) {
	t.Parallel()
	cases := []struct {
		step graph.Step
		want string
	}{
		{graph.Step{Name: "convert", Handler: "data.convert_file", Map: true}, "data.convert_file · map"},
		{graph.Step{Name: "convert", State: "waiting", Attempts: 1, MaxAttempts: 3, Map: true,
			MapCounts: map[string]int{"complete": 3, "in_progress": 2, "pending": 5}},
			"waiting · map 3/10 complete, 2 in progress, 5 pending"},
	}
	for _, tc := range cases {
		g := graph.New("t", []graph.Step{tc.step, {Name: "plain", State: tc.step.State}})
		if got := g.Mermaid(); !strings.Contains(got, `[["convert<br/>`+tc.want+`"]]`) || !strings.Contains(got, `["plain`) {
			t.Errorf("mermaid = %s, want a stacked node labelled %q", got, tc.want)
		}
		if got := g.DOT(); !strings.Contains(got, tc.want) || strings.Count(got, "shape=box3d") != 1 {
			t.Errorf("dot = %s, want one box3d node labelled %q", got, tc.want)
		}
		// The SVG draws a stack behind the map node; a task graph's legend
		// says what the stack means.
		svg := g.SVG()
		if strings.Count(svg, `class="map-stack"`) != 1 {
			t.Errorf("svg: want one map stack:\n%s", svg)
		}
		if legend := strings.Contains(svg, "map step: one node for its instances"); legend != (tc.step.State != "") {
			t.Errorf("svg legend mentions map: %v, want %v", legend, tc.step.State != "")
		}
	}
	if svg := graph.New("t", []graph.Step{{Name: "a", State: "complete"}}).SVG(); strings.Contains(svg, "map") {
		t.Errorf("a graph without map steps mentions map:\n%s", svg)
	}
}

// saga is a task graph using the control-flow step kinds, states and
// trigger rules (docs/control-flow.md).
func saga() *graph.Graph {
	return graph.New("travel/trip@1.0.0", []graph.Step{
		{Name: "book", State: "error", Attempts: 1, MaxAttempts: 1},
		{Name: "hold", Handler: "tasker.wait", State: "waiting", Note: "due 2026-12-06T08:00:00Z"},
		{Name: "approve", Handler: "tasker.callback", DependsOn: []string{"hold"}, State: "pending", When: "context.amount > 100"},
		{Name: "refund", DependsOn: []string{"book"}, TriggerRule: "one_failed", State: "complete", Attempts: 1, MaxAttempts: 3},
		{Name: "notify", DependsOn: []string{"book", "approve"}, TriggerRule: "all_done", State: "pending"},
		{Name: "ship", DependsOn: []string{"book"}, TriggerRule: "all_success", State: "skipped", Note: "skipped: a parent failed"},
	})
}

func TestControlFlowStyles(t *testing.T) {
	t.Parallel()
	// Every step state has a style of its own, distinct from the others.
	fills := map[string]string{}
	for _, st := range graph.States {
		s := graph.StyleOf(st)
		if s == graph.StyleOf("") {
			t.Errorf("state %s is drawn plain", st)
		}
		if other, dup := fills[s.Fill+s.Stroke]; dup {
			t.Errorf("states %s and %s look the same", st, other)
		}
		fills[s.Fill+s.Stroke] = st
	}
	for _, st := range []string{"waiting", "skipped"} {
		if !strings.Contains(strings.Join(graph.States, " "), st) {
			t.Errorf("legend lacks %s", st)
		}
	}
	kinds := map[string]graph.Kind{"tasker.wait": graph.KindWait, "tasker.callback": graph.KindCallback,
		"tasker.noop": graph.KindStep, "": graph.KindStep, "lambda:x": graph.KindStep}
	for h, want := range kinds {
		if got := graph.KindOf(h); got != want {
			t.Errorf("KindOf(%q) = %s, want %s", h, got, want)
		}
	}
	g := saga()
	rules := map[string]string{}
	for _, e := range g.Edges {
		rules[e.From+">"+e.To] = e.Rule
	}
	if want := map[string]string{"hold>approve": "", "book>refund": "one_failed", "book>notify": "all_done",
		"approve>notify": "all_done", "book>ship": ""}; fmt.Sprint(rules) != fmt.Sprint(want) {
		t.Errorf("edge rules = %v, want %v", rules, want)
	}
}

func TestControlFlowFormats(t *testing.T) {
	t.Parallel()
	g := saga()
	tests := []struct {
		format string
		out    string
		want   []string
	}{
		{"mermaid", g.Mermaid(), []string{
			`s1(["hold<br/>waiting"])`, `s2{{"approve<br/>pending"}}`, `s0 -. on failure .-> s3`, `s0 -. always .-> s4`,
			"s0 --> s5", "linkStyle 1 stroke:#dc2626", "class s1 waiting", "class s5 skipped",
			"classDef waiting fill:" + graph.StyleOf("waiting").Fill, "classDef skipped fill:" + graph.StyleOf("skipped").Fill,
		}},
		{"dot", g.DOT(), []string{
			`"hold" [label="hold\nwaiting", fillcolor="#cffafe"`, `peripheries=2`, `shape=hexagon`,
			`"book" -> "refund" [style=dashed, color="#dc2626", fontcolor="#dc2626", label="on failure"`,
			`"approve" -> "notify" [style=dotted`, `"book" -> "ship";`,
			`tooltip="ship: skipped (skipped: a parent failed)"`, `when context.amount > 100`,
		}},
		{"svg", g.SVG(), []string{
			`data-step="hold" data-state="waiting" data-kind="wait"`, `data-step="approve" data-state="pending" data-kind="callback"`,
			`fill="` + graph.StyleOf("waiting").Fill + `"`, `data-rule="one_failed" stroke-dasharray="6 4"`,
			`>on failure</text>`, `>always</text>`, `<circle`, `>waiting</text>`, `>skipped</text>`,
			`hold: waiting (due 2026-12-06T08:00:00Z) [tasker.wait]`, `when context.amount &gt; 100`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.format, func(t *testing.T) {
			t.Parallel()
			for _, w := range tc.want {
				if !strings.Contains(tc.out, w) {
					t.Errorf("%s lacks %q:\n%s", tc.format, w, tc.out)
				}
			}
		})
	}
}
