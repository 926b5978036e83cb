// Lays out a workflow DAG by dependency level and draws it as SVG, the
// same way internal/graph does on the server: one column per level (a
// step's level is one more than its deepest parent's), each column centred,
// edges that skip levels routed through lanes above the graph. Nodes carry
// the class "node st-<state>" (states.css colours them) and data-step /
// data-state attributes; template nodes are "node st-none".

import { s } from './dom.js';
import { EDGE_LABELS } from './states.js';

const M = 16;          // margin
const NODE_H = 46;
const COL_GAP = 64;
const ROW_GAP = 16;
const MIN_W = 120;
const MAX_W = 260;
const PAD_X = 12;
const LANE_H = 8;
const LANE_GAP = 10;
const MAX_LANES = 8;
const FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif";

// layout(steps) with steps [{name, depends_on, …}] → {nodes, edges, levels}.
// Unknown, self and repeated parents are ignored; steps caught in a cycle
// go one level after everything else so they are still drawn.
export function layout(steps) {
  const index = new Map();
  steps.forEach((st, i) => { if (!index.has(st.name)) index.set(st.name, i); });
  const parents = steps.map(() => []);
  const children = steps.map(() => []);
  const indeg = steps.map(() => 0);
  const edges = [];
  steps.forEach((st, i) => {
    for (const d of st.depends_on || []) {
      const j = index.get(d);
      if (j === undefined || j === i || parents[i].includes(j)) continue;
      parents[i].push(j);
      children[j].push(i);
      indeg[i]++;
      const rule = st.trigger_rule && st.trigger_rule !== 'all_success' ? st.trigger_rule : '';
      edges.push({ from: steps[j].name, to: st.name, rule });
    }
  });
  const level = steps.map(() => 0);
  const placed = steps.map(() => false);
  const queue = [];
  indeg.forEach((d, i) => { if (d === 0) queue.push(i); });
  let maxLevel = 0;
  while (queue.length) {
    const i = queue.shift();
    placed[i] = true;
    maxLevel = Math.max(maxLevel, level[i]);
    for (const c of children[i]) {
      level[c] = Math.max(level[c], level[i] + 1);
      if (--indeg[c] === 0) queue.push(c);
    }
  }
  const cyclic = placed.some((p) => !p);
  placed.forEach((p, i) => { if (!p) level[i] = maxLevel + 1; });
  const n = steps.length === 0 ? 0 : maxLevel + 1 + (cyclic ? 1 : 0);
  const levels = Array.from({ length: n }, () => []);
  const nodes = steps.map((st, i) => ({ ...st, level: level[i] }));
  nodes.forEach((nd) => levels[nd.level].push(nd.name));
  return { nodes, edges, levels };
}

let measureCtx;
function textWidth(text, font) {
  measureCtx ??= document.createElement('canvas').getContext('2d');
  if (!measureCtx) return text.length * 7;
  measureCtx.font = font;
  return measureCtx.measureText(text).width;
}

function fit(text, font, width) {
  if (textWidth(text, font) <= width) return text;
  let lo = 0;
  let hi = text.length;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (textWidth(text.slice(0, mid) + '…', font) <= width) lo = mid; else hi = mid - 1;
  }
  return text.slice(0, lo) + '…';
}

const humanState = (st) => st.replaceAll('_', ' ');

// kindOf is what a step is drawn as, from its handler (as internal/graph
// KindOf): a durable timer, a wait for a callback, or a plain step.
export function kindOf(handler) {
  if (handler === 'tasker.wait') return 'wait';
  if (handler === 'tasker.callback') return 'callback';
  return 'step';
}

// kindIcon is the 12×12 badge of a wait (a clock) or callback (an
// envelope) node with its top-left corner at x, y.
function kindIcon(kind, x, y) {
  if (kind === 'wait') {
    return s('g', { class: 'kind' }, s('circle', { cx: x + 6, cy: y + 6, r: 5.5 }),
      s('path', { d: `M${x + 6},${y + 2} V${y + 6} H${x + 9}` }));
  }
  if (kind === 'callback') {
    return s('g', { class: 'kind' }, s('rect', { x, y: y + 1, width: 12, height: 9, rx: 1 }),
      s('path', { d: `M${x},${y + 1} L${x + 6},${y + 6} L${x + 12},${y + 1}` }));
  }
  return null;
}

// detail is a node's second line: state and attempts for a task step, the
// handler for a template step.
function detail(nd) {
  if (!nd.status) return nd.handler || '';
  let d = humanState(nd.status);
  // A map step is one node for all its instances: how many are complete.
  if (nd.map) return `${d} · map ${(nd.map.counts || {}).complete || 0}/${nd.map.items}`;
  if (nd.max_attempts > 0) d += ` · ${nd.attempts}/${nd.max_attempts}`;
  return d;
}

let graphSeq = 0;

// renderGraph(steps, {title, link(step) → href, selected}) → <svg>.
// Steps are task steps ({name, depends_on, status, attempts, max_attempts,
// handler, note?}) or template steps ({name, depends_on, handler}); both may
// carry when and trigger_rule. Edges into a step with a trigger rule other
// than all_success are dashed and labelled (states.css, EDGE_LABELS).
export function renderGraph(steps, { title = 'workflow graph', link, selected } = {}) {
  const g = layout(steps);
  const nameFont = `600 12px ${FONT}`;
  const detailFont = `11px ${FONT}`;
  let w = MIN_W;
  for (const nd of g.nodes) {
    const need = Math.max(textWidth(nd.name, nameFont), textWidth(detail(nd), detailFont)) + 2 * PAD_X + 4;
    w = Math.max(w, Math.min(Math.ceil(need), MAX_W));
  }
  const cols = g.levels.length;
  const rows = Math.max(0, ...g.levels.map((lv) => lv.length));
  const levelOf = new Map(g.nodes.map((nd) => [nd.name, nd.level]));
  const skips = g.edges.filter((e) => levelOf.get(e.to) - levelOf.get(e.from) > 1).length;
  const lanes = Math.min(skips, MAX_LANES);
  const top = M + (lanes > 0 ? LANE_GAP + lanes * LANE_H : 0);
  const graphW = cols * w + Math.max(cols - 1, 0) * COL_GAP;
  const graphH = rows * NODE_H + Math.max(rows - 1, 0) * ROW_GAP;
  const width = graphW + 2 * M;
  const height = top + graphH + M;

  const at = new Map();
  g.levels.forEach((lv, li) => {
    const colH = lv.length * NODE_H + Math.max(lv.length - 1, 0) * ROW_GAP;
    let y = top + (graphH - colH) / 2;
    for (const name of lv) {
      at.set(name, { x: M + li * (w + COL_GAP), y });
      y += NODE_H + ROW_GAP;
    }
  });

  const arrow = `tasker-arrow-${++graphSeq}`;
  const byName = new Map(g.nodes.map((nd) => [nd.name, nd]));
  let lane = 0;
  const edges = g.edges.map((e) => {
    const p = at.get(e.from);
    const c = at.get(e.to);
    const x1 = p.x + w;
    const y1 = p.y + NODE_H / 2;
    const x2 = c.x;
    const y2 = c.y + NODE_H / 2;
    let d;
    if (levelOf.get(e.to) - levelOf.get(e.from) > 1) {
      const ly = top - LANE_GAP / 2 - (lane++ % MAX_LANES) * LANE_H;
      const hgap = COL_GAP / 2;
      d = `M${x1},${y1} C${x1 + hgap},${y1} ${x1 + hgap},${ly} ${x1 + COL_GAP},${ly} L${x2 - COL_GAP},${ly} ` +
        `C${x2 - hgap},${ly} ${x2 - hgap},${y2} ${x2},${y2}`;
    } else {
      const dx = Math.max((x2 - x1) / 2, 20);
      d = `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`;
    }
    const parent = byName.get(e.from).status;
    const done = parent === 'complete' || parent === 'resolved_manually' || parent === 'skipped';
    const path = s('path', {
      d, class: ['edge', done && 'done', e.rule && `rule-${e.rule}`], 'data-rule': e.rule || null,
      'marker-end': `url(#${arrow})`,
    });
    if (!e.rule || !EDGE_LABELS[e.rule]) return path;
    return [path, s('text', { class: ['edge-label', `rule-${e.rule}`], x: x2 - 4, y: y2 - 5, 'text-anchor': 'end' },
      EDGE_LABELS[e.rule])];
  });

  const nodes = g.nodes.map((nd) => {
    const { x, y } = at.get(nd.name);
    const state = nd.status || '';
    const kind = kindOf(nd.handler);
    let tip = nd.name;
    if (state) {
      tip += `: ${humanState(state)}`;
      if (nd.max_attempts > 0) tip += `, attempt ${nd.attempts} of ${nd.max_attempts}`;
    }
    if (nd.note) tip += ` (${nd.note})`;
    if (nd.handler) tip += ` [${nd.handler}]`;
    if (nd.when) tip += ` when ${nd.when}`;
    if (nd.trigger_rule && nd.trigger_rule !== 'all_success') tip += ` trigger_rule ${nd.trigger_rule}`;
    const node = s('g', {
      class: ['node', `st-${state || 'none'}`, selected === nd.name && 'selected'],
      'data-kind': kind, 'data-step': nd.name, 'data-state': state,
    },
    s('title', null, tip),
    s('rect', { x, y, width: w, height: NODE_H, rx: 8, ry: 8 }),
    kindIcon(kind, x + 6, y + 6),
    s('text', { class: 'name', x: x + w / 2, y: y + 19, 'text-anchor': 'middle' }, fit(nd.name, nameFont, w - 2 * PAD_X)),
    s('text', { class: 'detail', x: x + w / 2, y: y + 35, 'text-anchor': 'middle' }, fit(detail(nd), detailFont, w - 2 * PAD_X)));
    const href = link && link(nd);
    return href ? s('a', { href, class: 'node-link', 'aria-label': tip }, node) : node;
  });

  const svg = s('svg', {
    class: 'dag', xmlns: 'http://www.w3.org/2000/svg', role: 'img', 'aria-label': title,
    width, height, viewBox: `0 0 ${width} ${height}`,
  },
  s('title', null, title),
  s('defs', null, s('marker', {
    id: arrow, viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 8, markerHeight: 8, orient: 'auto-start-reverse',
  }, s('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrow' }))),
  s('g', { class: 'edges' }, edges),
  s('g', { class: 'nodes' }, nodes));
  svg.style.minWidth = `${Math.round(width * 0.6)}px`; // CSSOM, allowed by the CSP
  return svg;
}
