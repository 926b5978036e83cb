package graph

import (
	"fmt"
	"html"
	"strings"
	"unicode/utf8"
)

// SVG layout, in pixels. Text widths are estimated (no font metrics): the
// name line is ~7 px per character at 12 px, the detail line ~6.2 at 11 px.
const (
	svgMargin    = 24
	svgTitleH    = 30
	svgNodeH     = 46
	svgColGap    = 72
	svgRowGap    = 18
	svgMinNodeW  = 120
	svgMaxNodeW  = 280
	svgPadX      = 12
	svgNameCW    = 7.0
	svgDetailCW  = 6.2
	svgLegendH   = 22
	svgLegendGap = 20
	svgMinWidth  = 360
	svgLaneH     = 8
	svgLaneGap   = 10
	svgMaxLanes  = 8
	svgFont      = "-apple-system,BlinkMacSystemFont,'Segoe UI',Helvetica,Arial,sans-serif"
)

// SVG renders the graph as a self-contained SVG document: no external
// references, no stylesheet, presentation attributes only. Steps are laid
// out left to right in one column per dependency level, filled by state,
// with a legend of the states underneath (task graphs only).
func (g *Graph) SVG() string {
	// Node width: fit the longest label, within bounds.
	w := svgMinNodeW
	for _, n := range g.Nodes {
		need := max(int(float64(utf8.RuneCountInString(n.Name)+1)*svgNameCW),
			int(float64(utf8.RuneCountInString(n.detail())+1)*svgDetailCW)) + 2*svgPadX
		w = max(w, min(need, svgMaxNodeW))
	}
	nameFit := int(float64(w-2*svgPadX) / svgNameCW)
	detailFit := int(float64(w-2*svgPadX) / svgDetailCW)

	cols := len(g.Levels)
	rows := 0
	for _, lv := range g.Levels {
		rows = max(rows, len(lv))
	}
	// Edges that skip levels would run behind the nodes in between; they
	// take lanes above the graph instead.
	level := make(map[string]int, len(g.Nodes))
	for _, n := range g.Nodes {
		level[n.Name] = n.Level
	}
	skips := 0
	for _, e := range g.Edges {
		if level[e.To]-level[e.From] > 1 {
			skips++
		}
	}
	lanes := min(skips, svgMaxLanes)
	top := svgMargin
	if g.Title != "" {
		top += svgTitleH
	}
	if lanes > 0 {
		top += svgLaneGap + lanes*svgLaneH
	}
	graphW := cols*w + max(cols-1, 0)*svgColGap
	graphH := rows*svgNodeH + max(rows-1, 0)*svgRowGap
	width := max(graphW+2*svgMargin, svgMinWidth)

	// Legend: all states, wrapped to the width.
	type legendItem struct {
		state string
		x, y  int
		width int
	}
	var legend []legendItem
	legendRows := 0
	if g.hasStates() {
		x, y := svgMargin, 0
		legendRows = 1
		for _, st := range States {
			label := strings.ReplaceAll(st, "_", " ")
			iw := 14 + 6 + int(float64(len(label))*svgDetailCW) + 18
			if x+iw > width-svgMargin && x > svgMargin {
				x, y = svgMargin, y+svgLegendH
				legendRows++
			}
			legend = append(legend, legendItem{state: st, x: x, y: y})
			x += iw
		}
		if g.hasMap() {
			n := len(mapLegend)
			iw := 14 + 6 + int(float64(n)*svgDetailCW) + 18
			if x+iw > width-svgMargin && x > svgMargin {
				x, y = svgMargin, y+svgLegendH
				legendRows++
			}
			legend = append(legend, legendItem{state: mapLegendItem, x: x, y: y})
		}
	}
	height := top + graphH + svgMargin
	if legendRows > 0 {
		height += svgLegendGap + legendRows*svgLegendH
	}

	// Positions: columns by level, each column centred vertically.
	type pos struct{ x, y int }
	at := make(map[string]pos, len(g.Nodes))
	offsetX := svgMargin + (width-2*svgMargin-graphW)/2
	for li, lv := range g.Levels {
		colH := len(lv)*svgNodeH + max(len(lv)-1, 0)*svgRowGap
		y := top + (graphH-colH)/2
		for _, name := range lv {
			at[name] = pos{x: offsetX + li*(w+svgColGap), y: y}
			y += svgNodeH + svgRowGap
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="%s" role="img">`+"\n",
		width, height, width, height, svgFont)
	title := g.Title
	if title == "" {
		title = "workflow graph"
	}
	fmt.Fprintf(&b, "<title>%s</title>\n", esc(title))
	b.WriteString(`<defs><marker id="tasker-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#6b7280"/></marker></defs>` + "\n")
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>`+"\n", width, height)
	if g.Title != "" {
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="15" font-weight="600" fill="#111827">%s</text>`+"\n",
			svgMargin, svgMargin+14, esc(g.Title))
	}

	b.WriteString(`<g fill="none" stroke="#6b7280" stroke-width="1.5">` + "\n")
	lane := 0
	var labels []string
	for _, e := range g.Edges {
		p, c := at[e.From], at[e.To]
		x1, y1 := p.x+w, p.y+svgNodeH/2
		x2, y2 := c.x, c.y+svgNodeH/2
		es := EdgeStyleOf(e.Rule)
		attrs := ""
		if e.Rule != "" {
			attrs = fmt.Sprintf(` stroke="%s" data-rule="%s"`, es.Stroke, esc(e.Rule))
			if es.Dash != "" {
				attrs += fmt.Sprintf(` stroke-dasharray="%s"`, es.Dash)
			}
		}
		if level[e.To]-level[e.From] > 1 {
			// Up into a lane, across, and down into the child.
			ly := top - svgLaneGap/2 - (lane%svgMaxLanes)*svgLaneH
			lane++
			h := svgColGap / 2
			fmt.Fprintf(&b, `<path d="M%d,%d C%d,%d %d,%d %d,%d L%d,%d C%d,%d %d,%d %d,%d"%s marker-end="url(#tasker-arrow)"/>`+"\n",
				x1, y1, x1+h, y1, x1+h, ly, x1+svgColGap, ly, x2-svgColGap, ly, x2-h, ly, x2-h, y2, x2, y2, attrs)
		} else {
			dx := max((x2-x1)/2, 20)
			fmt.Fprintf(&b, `<path d="M%d,%d C%d,%d %d,%d %d,%d"%s marker-end="url(#tasker-arrow)"/>`+"\n",
				x1, y1, x1+dx, y1, x2-dx, y2, x2, y2, attrs)
		}
		if es.Label != "" {
			// The label sits just before the arrow head, above the line.
			labels = append(labels, fmt.Sprintf(`<text x="%d" y="%d" text-anchor="end" font-size="10" fill="%s">%s</text>`,
				x2-4, y2-5, es.Stroke, esc(es.Label)))
		}
	}
	b.WriteString("</g>\n")
	for _, l := range labels {
		b.WriteString(l + "\n")
	}

	for _, n := range g.Nodes {
		p := at[n.Name]
		s := StyleOf(n.State)
		kind := KindOf(n.Handler)
		fmt.Fprintf(&b, `<g data-step="%s" data-state="%s" data-kind="%s">`, esc(n.Name), esc(n.State), kind)
		fmt.Fprintf(&b, "<title>%s</title>", esc(n.tooltip()))
		dash := ""
		if s.Dashed {
			dash = ` stroke-dasharray="5 3"`
		}
		if n.Map {
			// A map step is one node for all its instances: a card
			// behind it draws a stack.
			fmt.Fprintf(&b, `<rect class="map-stack" x="%d" y="%d" width="%d" height="%d" rx="8" ry="8" fill="%s" stroke="%s" stroke-width="1.5"%s/>`,
				p.x+4, p.y-4, w, svgNodeH, s.Fill, s.Stroke, dash)
		}
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" rx="8" ry="8" fill="%s" stroke="%s" stroke-width="1.5"%s/>`,
			p.x, p.y, w, svgNodeH, s.Fill, s.Stroke, dash)
		b.WriteString(kindIcon(kind, p.x+6, p.y+6, s.Stroke))
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" font-size="12" font-weight="600" fill="%s">%s</text>`,
			p.x+w/2, p.y+19, s.Text, esc(truncate(n.Name, nameFit)))
		if d := n.detail(); d != "" {
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" font-size="11" fill="%s">%s</text>`,
				p.x+w/2, p.y+35, s.Text, esc(truncate(d, detailFit)))
		}
		b.WriteString("</g>\n")
	}

	if len(legend) > 0 {
		ly := top + graphH + svgLegendGap
		b.WriteString(`<g font-size="11" fill="#374151">` + "\n")
		for _, it := range legend {
			if it.state == mapLegendItem {
				fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="12" rx="3" fill="#fff" stroke="#6b7280"/>`, it.x+3, ly+it.y-1)
				fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="12" rx="3" fill="#fff" stroke="#6b7280"/>`, it.x, ly+it.y+2)
				fmt.Fprintf(&b, `<text class="legend-map" x="%d" y="%d">%s</text>`+"\n", it.x+20, ly+it.y+11, esc(mapLegend))
				continue
			}
			s := StyleOf(it.state)
			dash := ""
			if s.Dashed {
				dash = ` stroke-dasharray="3 2"`
			}
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="14" height="14" rx="3" fill="%s" stroke="%s"%s/>`,
				it.x, ly+it.y, s.Fill, s.Stroke, dash)
			fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", it.x+20, ly+it.y+11, esc(strings.ReplaceAll(it.state, "_", " ")))
		}
		b.WriteString("</g>\n")
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// The legend's word on map steps (docs/control-flow.md, "Map").
const (
	mapLegendItem = "\x00map" // not a state
	mapLegend     = "map step: one node for its instances"
)

// hasMap reports whether any node is a map step.
func (g *Graph) hasMap() bool {
	for _, n := range g.Nodes {
		if n.Map {
			return true
		}
	}
	return false
}

// kindIcon draws the 12×12 badge of a wait (a clock) or callback (an
// envelope) step with its top-left corner at x, y; plain steps get none.
func kindIcon(k Kind, x, y int, stroke string) string {
	switch k {
	case KindWait:
		return fmt.Sprintf(`<g class="kind" fill="none" stroke="%s" stroke-width="1.3"><circle cx="%d" cy="%d" r="5.5"/><path d="M%d,%d V%d H%d"/></g>`,
			stroke, x+6, y+6, x+6, y+2, y+6, y+9)
	case KindCallback:
		return fmt.Sprintf(`<g class="kind" fill="none" stroke="%s" stroke-width="1.3"><rect x="%d" y="%d" width="12" height="9" rx="1"/><path d="M%d,%d L%d,%d L%d,%d"/></g>`,
			stroke, x, y+1, x, y+1, x+6, y+6, x+12, y+1)
	}
	return ""
}

func esc(s string) string { return html.EscapeString(s) }

// truncate shortens s to n runes, ending with an ellipsis when cut.
func truncate(s string, n int) string {
	if n < 1 || utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
