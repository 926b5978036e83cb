// Tasker web view: a hash-routed single-page app over the HTTP API v1.
//
//   #/tasks?namespace=&name=&status=&tag=   task list, filters, status counts,
//                                      bulk cancel/retry of selected rows or all matching
//   #/tasks/<id>                       task: DAG by state, steps, timeline, context
//   #/tasks/<id>/steps/<step>          the same, with one step's detail
//   #/templates                        workflows with their graphs
//   #/templates/<ns>/<name>?version=   one workflow: graph, levels, steps, analytics
//   #/schedules                        schedules with their next fire times; pause/resume
//
// Pages of live tasks refresh every REFRESH_MS until the task finishes.

import { api, ApiError, getToken, setToken } from './api.js';
import { h, s, swap } from './dom.js';
import { renderGraph } from './graph.js';
import { STEP_STATES } from './states.js';

const REFRESH_MS = 1500;
const LIST_REFRESH_MS = 5000;
const TASK_STATUSES = ['pending', 'in_progress', 'complete', 'error', 'cancelled', 'resolved_manually'];
const LIVE = new Set(['pending', 'in_progress']);
const STEP_DONE = new Set(['complete', 'skipped', 'error', 'cancelled', 'resolved_manually']);
// Steps that count as done in the progress bar: they let dependents run.
const STEP_SATISFIED = new Set(['complete', 'resolved_manually', 'skipped']);

const app = document.getElementById('app');

// ---------------------------------------------------------------- helpers

const human = (st) => String(st || '').replaceAll('_', ' ');
const enc = encodeURIComponent;
const badge = (st) => h('span', { class: ['badge', `st-${st}`], 'data-status': st }, human(st));

function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return d.toLocaleString(undefined, {
    year: d.getFullYear() === new Date().getFullYear() ? undefined : 'numeric',
    month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}

function fmtDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—';
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const sec = ms / 1000;
  if (sec < 60) return `${sec.toFixed(sec < 10 ? 2 : 1)} s`;
  const m = Math.floor(sec / 60);
  if (m < 60) return `${m} m ${Math.round(sec % 60)} s`;
  const hr = Math.floor(m / 60);
  if (hr < 48) return `${hr} h ${m % 60} m`;
  return `${Math.floor(hr / 24)} d ${hr % 24} h`;
}

function ago(iso) {
  if (!iso) return '—';
  const ms = Date.now() - new Date(iso).getTime();
  if (ms < 5000) return 'just now';
  return `${fmtDuration(ms).replace(/\.\d+ s$/, ' s')} ago`;
}

const between = (a, b) => (a ? (b ? new Date(b) : new Date()) - new Date(a) : null);

const time = (iso, text) => (iso ? h('time', { datetime: iso, title: iso }, text ?? fmtTime(iso)) : '—');

// jsonView pretty-prints a JSON value with token classes for colour.
function jsonView(value, cls = '') {
  const text = JSON.stringify(value, null, 2) ?? 'null';
  const pre = h('pre', { class: ['json', cls] });
  const re = /("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g;
  let last = 0;
  for (const m of text.matchAll(re)) {
    pre.append(text.slice(last, m.index));
    if (m[1]) {
      pre.append(h('span', { class: m[2] ? 'j-key' : 'j-str' }, m[1]));
      if (m[2]) pre.append(m[2]);
    } else if (m[3]) pre.append(h('span', { class: 'j-lit' }, m[3]));
    else pre.append(h('span', { class: 'j-num' }, m[4]));
    last = m.index + m[0].length;
  }
  pre.append(text.slice(last));
  return pre;
}

function card(title, body, extra) {
  return h('section', { class: 'card' },
    title ? h('div', { class: 'card-head' }, h('h2', null, title), extra) : null, body);
}

function legend() {
  return h('ul', { class: 'legend', 'aria-label': 'Step states' },
    STEP_STATES.map((st) => h('li', null, h('span', { class: ['swatch', `st-${st}`] }), human(st))));
}

function facts(pairs) {
  return h('dl', { class: 'facts' },
    pairs.filter(Boolean).map(([k, v, cls]) => h('div', { class: cls }, h('dt', null, k), h('dd', null, v ?? '—'))));
}

function table(head, rows, cls) {
  return h('div', { class: 'table-wrap' }, h('table', { class: cls },
    h('thead', null, h('tr', null, head.map(([label, c]) => h('th', { class: c, scope: 'col' }, label)))),
    rows instanceof HTMLTableSectionElement ? rows : h('tbody', null, rows)));
}

function errorMessage(e) {
  if (!e) return '';
  if (typeof e === 'string') return e;
  return e.message || e.error || JSON.stringify(e);
}

// progress draws a bar split by step state.
function progress(steps) {
  const counts = {};
  for (const st of steps) counts[st.status] = (counts[st.status] || 0) + 1;
  const done = steps.filter((st) => STEP_SATISFIED.has(st.status)).length;
  const bar = h('div', { class: 'bar', role: 'img', 'aria-label': `${done} of ${steps.length} steps done` });
  for (const st of STEP_STATES) {
    if (!counts[st]) continue;
    const seg = h('span', { class: ['seg', `st-${st}`], title: `${human(st)}: ${counts[st]}` });
    seg.style.flexGrow = String(counts[st]); // CSSOM, allowed by the CSP
    bar.append(seg);
  }
  return h('div', { class: 'progress' }, bar,
    h('span', { class: 'muted' }, `${done} of ${steps.length} steps done`));
}

// ------------------------------------------------------------ control flow
// (docs/control-flow.md)

// waitUntil is when a waiting step moves on by itself: a timer's due time,
// a callback's expiry.
const waitUntil = (st) => (st.status === 'waiting' ? st.waiting_until || null : null);

// isTimer: a waiting step parked on a timer (tasker.wait), not a callback.
const isTimer = (st) => (st.wait_kind ? st.wait_kind === 'timer' : st.handler === 'tasker.wait');

// waitText says what a waiting step waits for and until when.
function waitText(st) {
  const until = waitUntil(st);
  const what = isTimer(st) ? 'due' : 'callback expires';
  if (!until) return isTimer(st) ? 'timer' : 'for a callback';
  const ms = new Date(until) - Date.now();
  return `${what} ${fmtTime(until)}${ms > 0 ? ` (in ${fmtDuration(ms).replace(/\.\d+ s$/, ' s')})` : ''}`;
}

// note is the graph tooltip's word on a waiting or skipped step.
function note(st) {
  if (st.map) return `map: ${mapText(st.map)}`;
  if (st.status === 'waiting') return waitText(st);
  if (st.status === 'skipped' && st.skip_reason) return `skipped: ${st.skip_reason}`;
  if (st.blocked_reason) return `held: ${st.blocked_reason}`;
  return '';
}

// ------------------------------------------------------------------- maps
// (docs/control-flow.md, "Map")

// A map step is listed once, with its instances counted by state
// (step.map); its instances ("<step>[<i>]") are paged in index order from
// GET /v1/tasks/{id}/steps/{step}/instances, MAP_PAGE per click, optionally
// of one state.
const MAP_PAGE = 50;
const MAP_STATES = [['in_progress', 'in progress'], ['waiting_for_retry', 'retrying'], ['waiting', 'waiting'],
  ['pending', 'pending'], ['error', 'failed'], ['cancelled', 'cancelled'], ['skipped', 'skipped'],
  ['resolved_manually', 'resolved manually']];

// mapText: "37/100 complete, 10 in progress, 2 failed".
function mapText(m) {
  const c = m.counts || {};
  let out = `${c.complete || 0}/${m.items} complete`;
  for (const [st, label] of MAP_STATES) if (c[st]) out += `, ${c[st]} ${label}`;
  return out;
}

const instanceHref = (id, name) => `#/tasks/${enc(id)}/steps/${enc(name)}`;

// mapPanel is the expandable list of one map step's instances. It
// outlives re-renders of the steps table (its element is moved, not
// rebuilt), so an open list stays open while a live task refreshes.
function mapPanel(panels, name) {
  let p = panels.get(name);
  if (!p) {
    p = { open: false, shown: 0, state: '', more: false, key: '', loading: null,
      box: h('div', { class: 'map-instances', 'data-map': name }) };
    panels.set(name, p);
  }
  return p;
}

// loadInstances lists the first n instances (of p.state, if set), reading
// pages of the instances route until it has them or the list ends. A page
// filtered by state may be short and still go on: it is followed too.
function loadInstances(v, id, st, p, n) {
  if (p.loading) return p.loading;
  const key = JSON.stringify([st.map, p.state]);
  if (!p.shown) p.box.replaceChildren(h('p', { class: 'muted' }, 'Loading instances…'));
  p.loading = (async () => {
    const rows = [];
    let cursor;
    do {
      const page = await v.get(`/v1/tasks/${enc(id)}/steps/${enc(st.name)}/instances`,
        { state: p.state, limit: Math.min(500, Math.max(n - rows.length, 1)), cursor });
      if (v.stopped) return;
      rows.push(...page.instances);
      cursor = page.next_cursor;
    } while (cursor && rows.length < n);
    p.shown = rows.length;
    p.more = Boolean(cursor);
    p.key = key;
    p.box.replaceChildren(...instancesView(v, id, st, p, rows));
  })().finally(() => { p.loading = null; });
  return p.loading;
}

function instancesView(v, id, st, p, rows) {
  const open = (e) => {
    e.preventDefault();
    const i = e.target.elements.index.value;
    if (i !== '') location.hash = instanceHref(id, `${st.name}[${Number(i)}]`);
  };
  const filter = (e) => {
    p.state = e.target.value;
    p.shown = 0;
    p.key = '';
    loadInstances(v, id, st, p, MAP_PAGE).catch(fail);
  };
  const total = p.state ? (st.map.counts || {})[p.state] || 0 : st.map.items;
  const states = [['complete', 'complete'], ...MAP_STATES].filter(([s]) => (st.map.counts || {})[s] || s === p.state);
  return [
    h('div', { class: 'map-head' },
      h('label', { class: 'small' }, 'Show ',
        h('select', { class: 'small map-state', onchange: filter },
          h('option', { value: '' }, `all ${st.map.items} instances`),
          states.map(([s, label]) => h('option', { value: s, selected: s === p.state },
            `${(st.map.counts || {})[s] || 0} ${label}`))))),
    rows.length ? table([['#', 'num'], ['Instance'], ['Status'], ['Attempts', 'num'], ['Duration', 'hide-sm num'], ['Last error', 'hide-sm']],
      rows.map((r) => h('tr', { 'data-instance': r.name },
        h('td', { class: 'num' }, String(r.index)),
        h('td', null, h('a', { href: instanceHref(id, r.name), class: 'mono' }, r.name)),
        h('td', null, badge(r.status)),
        h('td', { class: 'num' }, `${r.attempts}/${r.max_attempts}`),
        h('td', { class: 'hide-sm num' }, stepDuration(r)),
        h('td', { class: 'hide-sm error-text' }, r.status === 'complete' ? '' : errorMessage(r.last_error)))),
      'instances') : h('p', { class: 'muted map-none' }, 'No instances in this state.'),
    h('div', { class: 'map-foot' },
      h('span', { class: 'muted small map-shown' }, `${rows.length} of ${total} ${p.state ? `${p.state.replaceAll('_', ' ')} ` : ''}instances shown`),
      p.more ? h('button', { type: 'button', class: 'small map-more',
        onclick: () => loadInstances(v, id, st, p, rows.length + MAP_PAGE).catch(fail) },
      `Show ${Math.min(MAP_PAGE, Math.max(total - rows.length, 1))} more`) : null,
      st.map.items > 0 ? h('form', { class: 'map-open', onsubmit: open },
        h('label', null, 'Open instance # ',
          h('input', { type: 'number', name: 'index', min: 0, max: st.map.items - 1, required: true, class: 'small' })),
        ' ', h('button', { type: 'submit', class: 'small' }, 'Open')) : null),
  ];
}

// tokenAllows reports whether the stored token grants permission, read
// from its scope / permissions claims with the server's wildcard rules
// (docs/auth.md). It only decides what to offer: the server checks every
// request. Without a token (a local server running open) it allows.
function tokenAllows(permission) {
  const token = getToken();
  if (!token) return true;
  let claims;
  try {
    const part = token.split('.')[1].replaceAll('-', '+').replaceAll('_', '/');
    claims = JSON.parse(atob(part.padEnd(Math.ceil(part.length / 4) * 4, '=')));
  } catch { return false; }
  const grants = [];
  for (const name of ['scope', 'permissions']) {
    const v = claims[name];
    if (typeof v === 'string') grants.push(...v.split(/\s+/).filter(Boolean));
    else if (Array.isArray(v)) grants.push(...v.filter((x) => typeof x === 'string'));
  }
  return grants.some((g) => g === '*' || g === permission
    || (g.length > 2 && g.endsWith(':*') && permission.startsWith(g.slice(0, -1))));
}

// decisionForm is the Approve / Reject form of a waiting tasker.callback
// step. Both complete the step through POST /v1/tasks/{id}/steps/{step}/complete
// (permission steps:complete): Approve with {approved: true}, Reject with
// {approved: false}; a comment is added to either. The workflow decides
// what a rejection means with `when` on the steps after it.
function decisionForm(v, id, step) {
  const comment = h('input', {
    id: 'decision-comment', name: 'comment', autocomplete: 'off', maxlength: 2000, placeholder: 'optional',
  });
  const msg = h('p', { class: 'error-text', role: 'alert' });
  const decide = async (approved, ev) => {
    ev.preventDefault();
    msg.textContent = '';
    for (const b of form.querySelectorAll('button')) b.disabled = true;
    const result = { approved };
    if (comment.value.trim()) result.comment = comment.value.trim();
    try {
      await api(`/v1/tasks/${enc(id)}/steps/${enc(step.name)}/complete`, { method: 'POST', body: { result } });
      v.refresh();
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) { tokenBox(err); return; }
      msg.textContent = err.message;
      for (const b of form.querySelectorAll('button')) b.disabled = false;
    }
  };
  const form = h('form', { class: 'decision-form', id: 'decision', onsubmit: (ev) => decide(true, ev) },
    h('p', null, 'This step waits for a decision. ', h('span', { class: 'muted small' }, waitText(step))),
    h('label', { for: 'decision-comment' }, 'Comment'),
    h('div', { class: 'row' }, comment,
      h('button', { type: 'submit', class: 'primary', 'data-action': 'approve' }, 'Approve'),
      h('button', { type: 'button', class: 'danger', 'data-action': 'reject', onclick: (ev) => decide(false, ev) }, 'Reject')),
    msg);
  return form;
}

// ------------------------------------------------------------ view state

// A View is the page on screen: its requests are aborted and its timer
// cleared when the route changes.
class View {
  constructor() {
    this.ctl = new AbortController();
    this.signal = this.ctl.signal;
    this.timer = 0;
    this.stopped = false;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.ctl.abort();
  }

  get(path, query) {
    return api(path, { query, signal: this.signal });
  }

  // poll runs load() now and again every ms while it returns true. The
  // first failure is thrown (the page shows it); later ones are shown as a
  // notice and retried, except 401, which asks for a token.
  async poll(ms, load) {
    let first = true;
    const run = async () => {
      clearTimeout(this.timer);
      if (this.stopped) return;
      let again;
      try {
        again = await load();
        notice(null);
      } catch (err) {
        if (this.stopped || err.name === 'AbortError') return;
        if (first || (err instanceof ApiError && (err.status === 401 || err.status === 403))) throw err;
        notice(`Refresh failed: ${err.message}. Retrying…`);
        again = true;
      } finally {
        first = false;
      }
      if (again && !this.stopped) this.timer = setTimeout(() => run().catch(fail), ms);
    };
    this.refresh = () => run().catch(fail);
    return run();
  }
}

let view = null;

function notice(text) {
  let el = document.getElementById('notice');
  if (!text) { el?.remove(); return; }
  if (!el) {
    el = h('div', { id: 'notice', class: 'notice', role: 'status' });
    app.prepend(el);
  }
  el.textContent = text;
}

// fail shows an error as the page, or the token box on 401.
function fail(err) {
  if (err?.name === 'AbortError') return;
  if (err instanceof ApiError && err.status === 401) { tokenBox(err); return; }
  const p = err instanceof ApiError ? err.problem : {};
  const title = err instanceof ApiError && err.status === 403 ? 'Not allowed'
    : err instanceof ApiError && err.status === 404 ? 'Not found' : (p.title || 'Something went wrong');
  app.replaceChildren(h('section', { class: 'card error-card' },
    h('h1', null, title),
    h('p', null, err?.message || String(err)),
    p.permission ? h('p', null, 'This needs the permission ', h('code', null, p.permission), '.') : null,
    p.correlation_id ? h('p', { class: 'muted' }, 'Correlation id ', h('code', null, p.correlation_id)) : null,
    h('p', { class: 'actions' },
      h('a', { class: 'button', href: '#/tasks' }, 'All tasks'),
      err instanceof ApiError && err.status === 403
        ? h('button', { type: 'button', onclick: () => tokenBox(err) }, 'Use another token') : null)));
}

function tokenBox(err) {
  view?.stop();
  const had = getToken();
  const input = h('input', {
    type: 'password', id: 'token', name: 'token', autocomplete: 'off', spellcheck: 'false', required: true,
    placeholder: 'eyJhbGciOi…', 'aria-describedby': 'token-help',
  });
  const form = h('form', {
    class: 'token-form',
    onsubmit: (ev) => {
      ev.preventDefault();
      setToken(input.value.trim().replace(/^Bearer\s+/i, ''));
      session();
      route();
    },
  },
  h('label', { for: 'token' }, 'Bearer token'),
  h('div', { class: 'row' }, input, h('button', { type: 'submit', class: 'primary' }, 'Save token')),
  h('p', { id: 'token-help', class: 'muted small' },
    'Kept in this browser (localStorage) and sent to this server as ',
    h('code', null, 'Authorization: Bearer …'), '. ',
    'It needs the permissions of the pages you open: tasks:list, tasks:read, steps:read, templates:read, system:read.'));
  app.replaceChildren(h('section', { class: 'card auth-card', id: 'auth' },
    h('h1', null, 'Sign in with an API token'),
    h('p', null, had ? 'The API refused the stored token: ' : 'This Tasker API needs a bearer token: ',
      h('span', { class: 'muted' }, err?.message || '')),
    form,
    had ? h('p', null, h('button', {
      type: 'button', onclick: () => { setToken(''); session(); route(); },
    }, 'Forget the stored token')) : null));
  input.focus();
}

// session draws the top-right corner: the token state.
function session() {
  const el = document.getElementById('session');
  if (!el) return;
  el.replaceChildren(h('a', { class: 'muted small', href: '/v1/openapi.json', title: 'OpenAPI document' }, 'API'));
  if (getToken()) {
    el.append(h('button', {
      type: 'button', class: 'small', title: 'Forget the bearer token stored in this browser',
      onclick: () => { setToken(''); session(); route(); },
    }, 'Sign out'));
  }
}

// ------------------------------------------------------------------ router

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, qs] = raw.split('?');
  const parts = path.split('/').filter(Boolean).map((p) => {
    try { return decodeURIComponent(p); } catch { return p; }
  });
  return { parts, query: new URLSearchParams(qs || '') };
}

async function route() {
  view?.stop();
  view = new View();
  const v = view;
  const { parts, query } = parseHash();
  for (const a of document.querySelectorAll('[data-nav]')) {
    a.classList.toggle('active', a.dataset.nav === (parts[0] || 'tasks'));
    if (a.dataset.nav === (parts[0] || 'tasks')) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  app.replaceChildren(h('p', { class: 'muted loading' }, 'Loading…'));
  try {
    if (parts.length === 0 || (parts[0] === 'tasks' && parts.length === 1)) await taskList(v, query);
    else if (parts[0] === 'tasks' && parts.length === 2) await taskPage(v, parts[1], null);
    else if (parts[0] === 'tasks' && parts.length === 4 && parts[2] === 'steps') await taskPage(v, parts[1], parts[3]);
    else if (parts[0] === 'templates' && parts.length === 1) await templateList(v);
    else if (parts[0] === 'schedules' && parts.length === 1) await scheduleList(v);
    else if (parts[0] === 'templates' && parts.length === 3) await templatePage(v, parts[1], parts[2], query.get('version'));
    else throw new ApiError(404, { detail: `There is no page #/${parts.map(enc).join('/')}.` });
  } catch (err) {
    if (!v.stopped) fail(err);
  }
}

// --------------------------------------------------------------- task list

async function taskList(v, query) {
  const filters = {
    namespace: query.get('namespace') || '', name: query.get('name') || '', status: query.get('status') || '',
    tag: query.get('tag') || '',
  };
  // Bulk selection: ids picked row by row, or every task the filters match.
  const selected = new Set();
  let allMatching = false;
  const bulkBar = h('div', { class: 'bulk-bar', id: 'bulk' });
  const counts = h('div', { class: 'counts', id: 'counts' });
  const rows = h('tbody');
  const more = h('div', { class: 'more' });
  const namespaces = h('datalist', { id: 'dl-namespaces' });
  const names = h('datalist', { id: 'dl-names' });
  const field = (label, name, extra) => h('label', null, h('span', null, label),
    h('input', { name, value: filters[name], autocomplete: 'off', spellcheck: 'false', ...extra }));
  const form = h('form', {
    class: 'filters', role: 'search',
    onsubmit: (ev) => {
      ev.preventDefault();
      const q = new URLSearchParams();
      for (const [k, val] of new FormData(ev.target)) if (String(val).trim()) q.set(k, String(val).trim());
      location.hash = `#/tasks${q.size ? `?${q}` : ''}`;
    },
  },
  field('Namespace', 'namespace', { list: 'dl-namespaces', placeholder: 'any' }),
  field('Name', 'name', { list: 'dl-names', placeholder: 'any' }),
  field('Tag', 'tag', { placeholder: 'k:v' }),
  h('label', null, h('span', null, 'Status'),
    h('select', { name: 'status', onchange: (ev) => ev.target.form.requestSubmit() },
      h('option', { value: '' }, 'any'),
      TASK_STATUSES.map((st) => h('option', { value: st, selected: filters.status === st }, human(st))))),
  h('div', { class: 'filter-buttons' },
    h('button', { type: 'submit', class: 'primary' }, 'Filter'),
    (filters.namespace || filters.name || filters.status || filters.tag) ? h('a', { class: 'button', href: '#/tasks' }, 'Clear') : null),
  namespaces, names);

  app.replaceChildren(
    h('div', { class: 'page-head' }, h('h1', null, 'Tasks'),
      h('span', { class: 'muted small', id: 'list-updated' })),
    counts, form, bulkBar,
    card(null, [table(
      [['', 'select'], ['Workflow'], ['Status'], ['Created', 'hide-sm'], ['Duration', 'hide-sm num'], ['Initiator', 'hide-md'], ['Task id', 'hide-md']],
      rows, 'tasks'), more]));

  // Filter suggestions from the templates (best effort).
  v.get('/v1/templates').then((tl) => {
    const ns = [...new Set(tl.templates.map((t) => t.namespace))];
    namespaces.replaceChildren(...ns.map((n) => h('option', { value: n })));
    names.replaceChildren(...[...new Set(tl.templates.map((t) => t.name))].map((n) => h('option', { value: n })));
  }).catch(() => {});

  const row = (t) => h('tr', { 'data-task': t.id },
    h('td', { class: 'select' }, h('input', {
      type: 'checkbox', 'aria-label': `Select ${t.id}`, 'data-select': t.id, checked: allMatching || selected.has(t.id),
      disabled: allMatching,
      onchange: (ev) => {
        if (ev.target.checked) selected.add(t.id); else selected.delete(t.id);
        renderBulk();
      },
    })),
    h('td', null, h('a', { href: `#/tasks/${enc(t.id)}`, class: 'strong' }, `${t.namespace}/${t.name}`),
      h('span', { class: 'muted small' }, ` v${t.version}`)),
    h('td', t.blocked_reason ? { title: t.blocked_reason, 'data-blocked': '' } : null, badge(t.status),
      t.blocked_reason ? h('div', { class: 'muted small held-note' }, `held: ${t.blocked_reason}`) : null),
    h('td', { class: 'hide-sm' }, time(t.created_at, ago(t.created_at))),
    h('td', { class: 'hide-sm num' }, t.completed_at ? fmtDuration(between(t.created_at, t.completed_at))
      : (LIVE.has(t.status) ? h('span', { class: 'muted' }, `${fmtDuration(between(t.created_at))}…`) : '—')),
    h('td', { class: 'hide-md' }, t.initiator || h('span', { class: 'muted' }, '—')),
    h('td', { class: 'hide-md mono small' }, t.id.slice(0, 8)));

  let paged = false;
  const listQuery = { namespace: filters.namespace, name: filters.name, status: filters.status, tag: filters.tag, limit: 50 };
  // The bulk filter: the list's filters by the API's names.
  const bulkFilter = {};
  for (const k of ['namespace', 'name', 'status', 'tag']) if (filters[k]) bulkFilter[k] = filters[k];
  const resetRows = () => {
    for (const cb of rows.querySelectorAll('input[data-select]')) {
      cb.checked = allMatching || selected.has(cb.dataset.select);
      cb.disabled = allMatching;
    }
  };
  // The bar: what is selected, the actions, and a confirmation step that
  // names how many tasks an action will touch (a dry run for "all matching").
  const renderBulk = (confirmFor, result) => {
    const n = selected.size;
    const what = allMatching ? 'all matching tasks' : `${n} selected`;
    const act = (action) => async () => {
      let count = n;
      if (allMatching) {
        try {
          const dry = await api(`/v1/tasks/bulk/${action}`, { method: 'POST', body: { filter: bulkFilter, dry_run: true } });
          count = dry.capped ? `${dry.matched}+` : dry.matched;
        } catch (err) { renderBulk(null, err.message); return; }
      }
      renderBulk({ action, count });
    };
    const run = async (action, reason) => {
      renderBulk(null, `${action === 'cancel' ? 'Cancelling' : 'Retrying'}…`);
      let changed = 0; let skipped = 0;
      try {
        if (allMatching) {
          let cursor;
          do {
            const r = await api(`/v1/tasks/bulk/${action}`, { method: 'POST', body: { filter: bulkFilter, reason, cursor } });
            changed += r.changed; skipped += r.skipped; cursor = r.next_cursor || undefined;
            renderBulk(null, `${changed} done, ${skipped} skipped…`);
          } while (cursor);
        } else {
          for (const id of selected) {
            try {
              await api(`/v1/tasks/${enc(id)}/${action}`, { method: 'POST', body: reason ? { reason } : {} });
              changed++;
            } catch (err) {
              if (err instanceof ApiError && err.status === 409) skipped++; else throw err;
            }
          }
        }
      } catch (err) { renderBulk(null, `Stopped after ${changed}: ${err.message}`); return; }
      selected.clear(); allMatching = false;
      renderBulk(null, `${changed} tasks ${action === 'cancel' ? 'cancelled' : 'retried'}, ${skipped} skipped (their status did not allow it).`);
      resetRows();
      v.refresh();
    };
    const reasonBox = h('input', { name: 'reason', placeholder: 'reason (optional)', autocomplete: 'off' });
    bulkBar.replaceChildren(
      h('span', { class: 'bulk-what', 'data-selected': allMatching ? 'all' : String(n) }, what),
      h('button', { type: 'button', 'data-bulk': 'page', onclick: () => {
        allMatching = false;
        for (const cb of rows.querySelectorAll('input[data-select]')) selected.add(cb.dataset.select);
        resetRows(); renderBulk();
      } }, 'Select page'),
      h('button', { type: 'button', 'data-bulk': 'all', onclick: () => { allMatching = true; resetRows(); renderBulk(); } },
        'Select all matching'),
      (n || allMatching) ? h('button', { type: 'button', 'data-bulk': 'clear', onclick: () => {
        selected.clear(); allMatching = false; resetRows(); renderBulk();
      } }, 'Clear selection') : null,
      (n || allMatching) ? h('button', { type: 'button', class: 'danger', 'data-bulk': 'cancel', onclick: act('cancel') }, 'Cancel…') : null,
      (n || allMatching) ? h('button', { type: 'button', 'data-bulk': 'retry', onclick: act('retry') }, 'Retry…') : null,
      confirmFor ? h('div', { class: 'bulk-confirm', id: 'bulk-confirm', 'data-action': confirmFor.action, 'data-count': String(confirmFor.count) },
        h('span', null, `${confirmFor.action === 'cancel' ? 'Cancel' : 'Retry'} ${confirmFor.count} tasks?`),
        reasonBox,
        h('button', { type: 'button', class: 'primary', 'data-bulk': 'confirm',
          onclick: () => run(confirmFor.action, reasonBox.value.trim()) }, 'Confirm'),
        h('button', { type: 'button', 'data-bulk': 'back', onclick: () => renderBulk() }, 'Back')) : null,
      result ? h('div', { class: 'bulk-result', id: 'bulk-result', role: 'status' }, result) : null);
  };
  renderBulk();
  const showMore = (cursor) => {
    more.replaceChildren();
    if (cursor) more.append(h('button', {
      type: 'button',
      onclick: async (ev) => {
        ev.target.disabled = true;
        paged = true;
        try {
          const page = await v.get('/v1/tasks', { ...listQuery, cursor });
          rows.append(...page.tasks.map(row));
          showMore(page.next_cursor);
        } catch (err) { fail(err); }
      },
    }, 'Load more'));
  };

  await v.poll(LIST_REFRESH_MS, async () => {
    const [list, status] = await Promise.all([
      paged ? null : v.get('/v1/tasks', listQuery),
      v.get('/v1/health/status').catch((err) => {
        if (err instanceof ApiError && err.status === 403) return null; // no system:read: no counts
        throw err;
      }),
    ]);
    if (list) {
      swap(rows, JSON.stringify(list.tasks.map((t) => [t.id, t.status, t.completed_at, t.blocked_reason])) + Math.floor(Date.now() / 10000),
        () => (list.tasks.length ? list.tasks.map(row)
          : h('tr', null, h('td', { colspan: 7, class: 'empty' }, 'No tasks match these filters.'))));
      showMore(list.next_cursor);
    }
    if (status) {
      const total = Object.values(status.tasks).reduce((a, b) => a + b, 0);
      const chip = (st, label, n) => {
        const q = new URLSearchParams();
        if (filters.namespace) q.set('namespace', filters.namespace);
        if (filters.name) q.set('name', filters.name);
        if (st) q.set('status', st);
        return h('a', {
          class: ['count', st && `st-${st}`, filters.status === st && 'active'],
          href: `#/tasks${q.size ? `?${q}` : ''}`, 'data-count': st || 'all',
        }, h('span', { class: ['dot', 'seg', st ? `st-${st}` : 'st-none'] }), h('span', null, label), h('strong', null, String(n)));
      };
      swap(counts, JSON.stringify(status.tasks), () => [
        chip('', 'All tasks', total),
        ...TASK_STATUSES.map((st) => chip(st, human(st), status.tasks[st] ?? 0)),
      ]);
    }
    const upd = document.getElementById('list-updated');
    if (upd) upd.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    return true;
  });
}

// --------------------------------------------------------------- task page

async function taskPage(v, id, stepName) {
  const head = h('div', { class: 'task-head' });
  const meta = h('div');
  const graphBox = h('div', { class: 'graph-scroll', id: 'graph' });
  const stepBox = h('div', { id: 'step' });
  const stepsBox = h('div');
  const contextBox = h('div');
  const timelineBox = h('div', { id: 'timeline' });
  const panels = new Map(); // map step name -> its instance list (mapPanel)
  let shownOnce = false;
  let drawSteps = () => {};

  const load = async () => {
    const [task, step] = await Promise.all([
      v.get(`/v1/tasks/${enc(id)}`),
      stepName ? v.get(`/v1/tasks/${enc(id)}/steps/${enc(stepName)}`) : null,
    ]);
    if (v.stopped) return false;
    const live = LIVE.has(task.status) || Boolean(step && !STEP_DONE.has(step.status));
    if (!shownOnce) {
      shownOnce = true;
      app.replaceChildren(
        h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
          h('a', { href: '#/tasks' }, 'Tasks'), ' / ',
          h('a', { href: `#/tasks?namespace=${enc(task.namespace)}&name=${enc(task.name)}` }, `${task.namespace}/${task.name}`),
          stepName ? [' / ', h('a', { href: `#/tasks/${enc(id)}` }, task.id.slice(0, 8))] : null),
        head, meta,
        card('Graph', graphBox, legend()),
        stepBox,
        card('Steps', stepsBox),
        card('Timeline', timelineBox),
        card('Context', contextBox));
      document.title = `${task.namespace}/${task.name} · Tasker`;
    }
    swap(head, JSON.stringify([task.status, live]), () => taskHead(v, task, live));
    swap(meta, JSON.stringify([task.updated_at, task.completed_at, task.steps.map((st) => st.status)]) + (live ? Date.now() : ''),
      () => [taskFacts(task), progress(task.steps)]);
    swap(graphBox, JSON.stringify(task.steps.map((st) => [st.name, st.status, st.attempts, st.waiting_until, st.skip_reason, st.blocked_reason, st.map])) + stepName,
      () => renderGraph(task.steps.map((st) => ({ ...st, note: note(st) })), {
        title: `${task.namespace}/${task.name}@${task.version} · ${task.id}`,
        link: (st) => `#/tasks/${enc(id)}/steps/${enc(st.name)}`,
        selected: stepName,
      }));
    const opened = () => JSON.stringify([...panels].filter(([, p]) => p.open).map(([n]) => n));
    drawSteps = (force) => swap(stepsBox, JSON.stringify(task.steps) + opened() + (live ? Math.floor(Date.now() / 1000) : '') + (force ? Date.now() : ''),
      () => stepsTable(v, id, task.steps, stepName, panels, () => drawSteps(true)));
    drawSteps();
    // An open instance list follows its map step's counts.
    for (const st of task.steps) {
      const p = st.map && panels.get(st.name);
      if (p && p.open && p.key && p.key !== JSON.stringify([st.map, p.state])) loadInstances(v, id, st, p, Math.max(p.shown, MAP_PAGE)).catch(fail);
    }
    // A context stored out of line that cannot be read comes as its
    // reference, with context_error saying why.
    swap(contextBox, JSON.stringify([task.context, task.context_error]), () => [
      task.context_error ? h('p', { class: 'error-text context-error' }, task.context_error) : null, jsonView(task.context)]);
    const trs = await timelineOf(v, id);
    swap(timelineBox, String(trs.length) + (trs.length ? trs[trs.length - 1].seq : ''), () => timeline(id, trs));
    if (step) swap(stepBox, JSON.stringify(step), () => stepDetail(v, id, task, step));
    return live;
  };
  await v.poll(REFRESH_MS, load);
}

// The task's whole audit (GET /v1/tasks/{id}/transitions), up to 5 pages.
async function timelineOf(v, id) {
  const out = [];
  let cursor;
  for (let i = 0; i < 5; i++) {
    const page = await v.get(`/v1/tasks/${enc(id)}/transitions`, { limit: 1000, cursor });
    out.push(...page.transitions);
    if (!page.next_cursor) break;
    cursor = page.next_cursor;
  }
  return out;
}

// timeline: task and step transitions interleaved, oldest first.
function timeline(id, trs) {
  if (!trs.length) return h('p', { class: 'muted' }, 'No transitions recorded.');
  return h('ol', { class: 'timeline' }, trs.map((tr) => h('li', { 'data-seq': tr.seq, 'data-step': tr.step || '', 'data-to': tr.to },
    time(tr.at),
    h('span', { class: 'who' }, tr.step ? h('a', { href: `#/tasks/${enc(id)}/steps/${enc(tr.step)}` }, tr.step) : h('strong', null, 'task')),
    h('span', { class: 'change' }, tr.from ? [badge(tr.from), ' → '] : null, badge(tr.to)),
    tr.attempt ? h('span', { class: 'muted small' }, ` attempt ${tr.attempt}`) : null,
    tr.reason ? h('span', { class: 'reason' }, ` ${tr.reason}`) : null,
    tr.actor ? h('span', { class: 'muted small actor' }, ` by ${tr.actor}`) : null)));
}

function taskHead(v, task, live) {
  const act = async (what, verb) => {
    const reason = prompt(`${verb} this task? Optional reason:`, '');
    if (reason === null) return;
    try {
      await api(`/v1/tasks/${enc(task.id)}/${what}`, { method: 'POST', body: reason ? { reason } : {} });
      v.refresh();
    } catch (err) { alert(err.message); }
  };
  return [
    h('div', { class: 'title-row', 'data-live': String(live) },
      h('h1', null, task.name, h('span', { class: 'muted version' }, ` v${task.version}`)),
      h('span', { id: 'task-status', 'data-status': task.status }, badge(task.status)),
      live ? h('span', { class: 'live', title: `Refreshing every ${REFRESH_MS / 1000} s` }, 'live')
        : h('span', { class: 'muted small' }, 'finished')),
    h('div', { class: 'actions' },
      LIVE.has(task.status) ? h('button', { type: 'button', class: 'danger', onclick: () => act('cancel', 'Cancel') }, 'Cancel task') : null,
      task.status === 'error' ? h('button', { type: 'button', onclick: () => act('retry', 'Retry the failed steps of') }, 'Retry failed steps') : null),
  ];
}

function taskFacts(task) {
  const started = task.steps.map((st) => st.started_at).filter(Boolean).sort()[0];
  return facts([
    ['Template', h('a', { href: `#/templates/${enc(task.namespace)}/${enc(task.name)}?version=${enc(task.version)}` },
      `${task.namespace}/`, h('wbr'), task.name)],
    ['Task id', h('code', { class: 'small' }, task.id), 'wide'],
    ['Created', time(task.created_at)],
    ['Started', time(started)],
    ['Completed', time(task.completed_at)],
    ['Duration', task.completed_at ? fmtDuration(between(task.created_at, task.completed_at))
      : `${fmtDuration(between(task.created_at))} so far`],
    // Task concurrency (docs/control-flow.md): why a pending task waits.
    task.blocked_reason ? ['Held back', h('span', { class: 'held-note' }, task.blocked_reason), 'wide'] : null,
    ['Initiator', task.initiator || '—'],
    task.source_system ? ['Source system', task.source_system] : null,
    task.reason ? ['Reason', task.reason] : null,
    task.tags?.length ? ['Tags', task.tags.map((t) => h('span', { class: 'tag' }, t))] : null,
    ['Correlation id', h('code', { class: 'small' }, task.correlation_id || '—'), 'wide'],
    task.idempotency_key ? ['Idempotency key', h('code', { class: 'small' }, task.idempotency_key), 'wide'] : null,
    // Child workflows (docs/control-flow.md): links both ways.
    task.parent_task_id ? ['Parent task', h('a', { href: `#/tasks/${enc(task.parent_task_id)}` },
      h('code', { class: 'small' }, task.parent_task_id), ` (step ${task.parent_step})`), 'wide'] : null,
    task.children?.length ? ['Child tasks', task.children.map((c) => h('div', null,
      h('a', { href: `#/tasks/${enc(c.id)}` }, h('code', { class: 'small' }, c.id)), ` ${c.step}: ${c.status}`)), 'wide'] : null,
  ]);
}

// stepDuration: of the last attempt when it ended, so far while running.
function stepDuration(st) {
  if (st.started_at && st.completed_at) return fmtDuration(between(st.started_at, st.completed_at));
  if (st.started_at && st.status === 'in_progress') return `${fmtDuration(between(st.started_at))}…`;
  return '—';
}

function stepsTable(v, id, steps, selected, panels, redraw) {
  const toggle = (st) => () => {
    const p = mapPanel(panels, st.name);
    p.open = !p.open;
    if (p.open && !p.key) loadInstances(v, id, st, p, MAP_PAGE).catch(fail);
    redraw();
  };
  return table(
    [['Step'], ['Status'], ['Attempts', 'num'], ['Handler', 'hide-sm'], ['Started', 'hide-md'], ['Duration', 'hide-sm num'], ['Last error', 'hide-sm']],
    steps.map((st) => [h('tr', { class: selected === st.name ? 'selected' : null, 'data-step': st.name },
      h('td', null, h('a', { href: `#/tasks/${enc(id)}/steps/${enc(st.name)}`, class: 'strong' }, st.name)),
      h('td', null, badge(st.status), st.next_retry_at && st.status === 'waiting_for_retry'
        ? h('span', { class: 'muted small' }, ` retry at ${new Date(st.next_retry_at).toLocaleTimeString()}`) : null,
        st.status === 'waiting' ? h('span', { class: 'muted small wait-note' }, ` ${waitText(st)}`) : null,
        st.status === 'waiting' && st.handler === 'tasker.callback' && tokenAllows('steps:complete')
          ? [' ', h('a', { href: `#/tasks/${enc(id)}/steps/${enc(st.name)}`, class: 'small decide-link' }, 'decide…')] : null,
        st.status === 'skipped' && st.skip_reason ? h('span', { class: 'muted small skip-note' }, ` ${st.skip_reason}`) : null,
        st.blocked_reason ? h('span', { class: 'muted small held-note' }, ` held: ${st.blocked_reason}`) : null,
        st.map ? [h('span', { class: 'muted small map-note' }, ` map ${mapText(st.map)}`), ' ',
          h('button', { type: 'button', class: 'small map-toggle', 'aria-expanded': String(mapPanel(panels, st.name).open),
            onclick: toggle(st) }, mapPanel(panels, st.name).open ? 'Hide instances' : 'Instances')] : null),
      h('td', { class: 'num' }, st.map ? '—' : `${st.attempts}/${st.max_attempts}`),
      h('td', { class: 'hide-sm mono small' }, st.handler),
      h('td', { class: 'hide-md nowrap' }, time(st.started_at)),
      h('td', { class: 'hide-sm num' }, stepDuration(st)),
      h('td', { class: 'hide-sm error-text' }, st.status === 'complete' ? '' : errorMessage(st.last_error))),
    st.map && mapPanel(panels, st.name).open
      ? h('tr', { class: 'map-row', 'data-map-row': st.name }, h('td', { colspan: 7 }, mapPanel(panels, st.name).box)) : null]),
    'steps');
}

// Attempt outcomes whose reason is an error message.
const FAILED_OUTCOMES = new Set(['error', 'waiting_for_retry', 'cancelled']);

// attemptsOf groups a step's transitions by attempt: when it started, how
// it ended and why.
function attemptsOf(transitions) {
  const byAttempt = new Map();
  for (const tr of transitions) {
    if (!tr.attempt) continue;
    const a = byAttempt.get(tr.attempt) || { attempt: tr.attempt };
    if (tr.to === 'in_progress' && !a.started) a.started = tr.at;
    else if (tr.to === 'waiting') { a.outcome = tr.to; a.reason = tr.reason; } // parked: not over yet
    else if (tr.to !== 'in_progress') { a.ended = tr.at; a.outcome = tr.to; a.reason = tr.reason; a.metadata = tr.metadata; }
    byAttempt.set(tr.attempt, a);
  }
  return [...byAttempt.values()].sort((a, b) => a.attempt - b.attempt);
}

function stepDetail(v, id, task, step) {
  const resolve = async () => {
    const reason = prompt('Mark this step resolved by hand? Optional reason:', '');
    if (reason === null) return;
    try {
      await api(`/v1/tasks/${enc(id)}/steps/${enc(step.name)}/resolve`, { method: 'POST', body: reason ? { reason } : {} });
      v.refresh();
    } catch (err) { alert(err.message); }
  };
  const err = step.last_error;
  const attempts = attemptsOf(step.transitions || []);
  return h('section', { class: 'card step-card', 'data-step': step.name },
    h('div', { class: 'card-head' },
      h('h2', null, 'Step ', h('span', { class: 'mono' }, step.name), ' ', badge(step.status)),
      h('div', { class: 'actions' },
        step.status === 'error' && task.status !== 'cancelled'
          ? h('button', { type: 'button', onclick: resolve }, 'Resolve manually') : null,
        h('a', { class: 'button', href: `#/tasks/${enc(id)}` }, 'Close'))),
    facts([
      ['Handler', h('code', null, step.handler)],
      ['Depends on', step.depends_on.length ? step.depends_on.map((d, i) => [i ? ', ' : '',
        h('a', { href: `#/tasks/${enc(id)}/steps/${enc(d)}` }, d)]) : 'nothing (first level)'],
      ['Attempts', `${step.attempts} of ${step.max_attempts}`],
      ['Started', time(step.started_at)],
      ['Completed', time(step.completed_at)],
      ['Duration', stepDuration(step)],
      step.next_retry_at ? ['Next retry', time(step.next_retry_at)] : null,
      step.status === 'waiting' ? [isTimer(step) ? 'Due' : 'Waiting',
        h('span', { class: 'wait-note' }, waitText(step))] : null,
      step.status === 'skipped' ? ['Skipped because', h('span', { class: 'skip-note' }, step.skip_reason || '—')] : null,
      step.blocked_reason ? ['Held back', h('span', { class: 'held-note' }, step.blocked_reason)] : null,
      step.when ? ['Condition', h('code', null, step.when)] : null,
      step.trigger_rule && step.trigger_rule !== 'all_success' ? ['Trigger rule', h('code', null, step.trigger_rule)] : null,
    ]),
    step.status === 'waiting' && step.handler === 'tasker.callback' && tokenAllows('steps:complete')
      ? decisionForm(v, id, step) : null,
    err ? h('div', { class: ['error-box', step.status !== 'error' && 'earlier'], role: step.status === 'error' ? 'alert' : null },
      h('strong', null, step.status === 'error' ? 'Error: ' : 'Error of an earlier attempt: '), errorMessage(err),
      err.code ? h('span', { class: 'tag' }, err.code) : null,
      err.permanent ? h('span', { class: 'tag' }, 'permanent') : null,
      h('details', null, h('summary', null, 'Error JSON'), jsonView(err))) : null,
    h('h3', null, 'Result'),
    // A result stored out of line that cannot be read comes as its
    // reference, with result_error saying why.
    step.result_error ? h('p', { class: 'error-text result-error' }, step.result_error) : null,
    step.result === null || step.result === undefined ? h('p', { class: 'muted' }, 'No result yet.') : jsonView(step.result, 'result'),
    h('h3', null, 'Attempts'),
    attempts.length ? table([['#', 'num'], ['Started'], ['Ended'], ['Duration', 'num'], ['Outcome'], ['Reason']],
      attempts.map((a) => h('tr', null,
        h('td', { class: 'num' }, String(a.attempt)),
        h('td', null, time(a.started)),
        h('td', null, time(a.ended)),
        h('td', { class: 'num' }, a.started ? fmtDuration(between(a.started, a.ended)) : '—'),
        h('td', null, a.outcome ? badge(a.outcome) : badge('in_progress')),
        h('td', { class: FAILED_OUTCOMES.has(a.outcome) ? 'error-text' : null }, a.reason || '')))) : h('p', { class: 'muted' }, 'Not attempted yet.'),
    h('h3', null, 'Transitions'),
    table([['At'], ['From → to'], ['Attempt', 'num'], ['Actor', 'hide-sm'], ['Reason'], ['Metadata', 'hide-md']],
      (step.transitions || []).map((tr) => h('tr', null,
        h('td', { class: 'nowrap' }, time(tr.at)),
        h('td', { class: 'nowrap' }, tr.from ? badge(tr.from) : h('span', { class: 'muted' }, '∅'), ' → ', badge(tr.to)),
        h('td', { class: 'num' }, tr.attempt ?? '—'),
        h('td', { class: 'hide-sm' }, tr.actor || '—'),
        h('td', null, tr.reason || ''),
        h('td', { class: 'hide-md mono small' }, tr.metadata && Object.keys(tr.metadata).length ? JSON.stringify(tr.metadata) : '')))));
}

// --------------------------------------------------------------- schedules

async function scheduleList(v) {
  document.title = 'Schedules · Tasker';
  const load = async () => {
    const sl = await v.get('/v1/schedules', { next: 3 });
    const act = async (s, what) => {
      try {
        await api(`/v1/schedules/${enc(s.id)}/${what}`, { method: 'POST', body: {} });
        v.refresh();
      } catch (err) { alert(err.message); }
    };
    const rows = sl.schedules.map((s) => h('tr', { 'data-schedule': String(s.id), 'data-paused': String(s.paused) },
      h('td', null, h('a', { href: `#/templates/${enc(s.namespace)}/${enc(s.name)}` }, `${s.namespace}/${s.name}`),
        h('span', { class: 'muted' }, ` [${s.index}]`)),
      h('td', null, h('code', null, s.spec)),
      h('td', null, s.catch_up || '—'),
      h('td', { class: 'schedule-state' }, !s.loaded ? 'not loaded' : s.paused ? 'paused' : 'active'),
      h('td', { class: 'small' }, s.next_fire_times.length ? s.next_fire_times.map((t) => h('div', null, fmtTime(t))) : '—'),
      h('td', { class: 'small' }, s.last_fired_at ? fmtTime(s.last_fired_at) : '—',
        s.last_task_id ? [' ', h('a', { href: `#/tasks/${enc(s.last_task_id)}` }, 'task')] : null),
      h('td', null, s.loaded ? h('button', { type: 'button', onclick: () => act(s, s.paused ? 'resume' : 'pause') },
        s.paused ? 'Resume' : 'Pause') : null)));
    app.replaceChildren(h('div', { class: 'page-head' }, h('h1', null, 'Schedules'),
      h('span', { class: 'muted small' }, `${sl.schedules.length} schedules`)),
    sl.schedules.length
      ? table([['Workflow'], ['Schedule'], ['Catch up'], ['State'], ['Next fire times'], ['Last fired'], ['']], rows, 'schedules')
      : card(null, h('p', { class: 'muted' }, 'No loaded template has schedules.')));
    return true;
  };
  await v.poll(LIST_REFRESH_MS, load);
}

// --------------------------------------------------------------- templates

async function templateList(v) {
  const tl = await v.get('/v1/templates');
  document.title = 'Templates · Tasker';
  const cards = tl.templates.map((t) => {
    const graphBox = h('div', { class: 'graph-scroll mini' }, h('p', { class: 'muted small' }, 'Loading graph…'));
    v.get(`/v1/templates/${enc(t.namespace)}/${enc(t.name)}`).then((d) => {
      graphBox.replaceChildren(renderGraph(d.steps, { title: `${d.namespace}/${d.name}@${d.version}` }));
    }).catch((err) => { if (err.name !== 'AbortError') graphBox.replaceChildren(h('p', { class: 'muted small' }, err.message)); });
    const href = `#/templates/${enc(t.namespace)}/${enc(t.name)}`;
    return h('article', { class: 'card template-card', 'data-template': `${t.namespace}/${t.name}` },
      h('div', { class: 'card-head' },
        h('h2', null, h('a', { href }, h('span', { class: 'muted' }, `${t.namespace}/`), t.name)),
        h('span', { class: 'tag' }, `v${t.version}`)),
      t.description ? h('p', null, t.description) : null,
      h('p', { class: 'muted small' }, `${t.step_count} steps`,
        t.versions.length > 1 ? ` · ${t.versions.length} versions` : '', ' · ',
        h('a', { href: `#/tasks?namespace=${enc(t.namespace)}&name=${enc(t.name)}` }, 'tasks')),
      graphBox);
  });
  app.replaceChildren(h('div', { class: 'page-head' }, h('h1', null, 'Templates'),
    h('span', { class: 'muted small' }, `${tl.templates.length} workflows`)),
  tl.templates.length ? h('div', { class: 'template-grid' }, cards) : card(null, h('p', { class: 'muted' }, 'No templates are loaded.')));
}

async function templatePage(v, ns, name, version) {
  const t = await v.get(`/v1/templates/${enc(ns)}/${enc(name)}`, { version });
  document.title = `${t.namespace}/${t.name} · Tasker`;
  const versionPicker = t.versions.length > 1 ? h('label', { class: 'inline' }, 'Version ',
    h('select', {
      onchange: (ev) => { location.hash = `#/templates/${enc(ns)}/${enc(name)}?version=${enc(ev.target.value)}`; },
    }, t.versions.map((ver) => h('option', { value: ver, selected: ver === t.version }, ver)))) : null;

  const ctxInput = h('textarea', { id: 'new-context', rows: 8, spellcheck: 'false', class: 'mono' }, '{\n  \n}');
  const startMsg = h('p', { class: 'error-text', role: 'alert' });
  const start = h('form', {
    class: 'start-form',
    onsubmit: async (ev) => {
      ev.preventDefault();
      startMsg.textContent = '';
      let context;
      try { context = JSON.parse(ctxInput.value); } catch (e) { startMsg.textContent = `The context is not JSON: ${e.message}`; return; }
      try {
        const task = await api('/v1/tasks', { method: 'POST', body: { namespace: t.namespace, name: t.name, version: t.version, context, initiator: 'web' } });
        location.hash = `#/tasks/${enc(task.id)}`;
      } catch (err) {
        if (err instanceof ApiError && err.status === 401) { tokenBox(err); return; }
        const details = (err.problem?.errors || []).map((e) => `${e.pointer || e.parameter || ''} ${e.detail}`.trim());
        startMsg.replaceChildren(err.message, details.length ? h('ul', null, details.map((d) => h('li', null, d))) : null);
      }
    },
  },
  h('label', { for: 'new-context' }, 'Context (JSON, checked against the context schema)'),
  ctxInput, startMsg,
  h('button', { type: 'submit', class: 'primary' }, `Start ${t.name} v${t.version}`));

  app.replaceChildren(
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/templates' }, 'Templates'), ' / ', t.namespace),
    h('div', { class: 'title-row' }, h('h1', null, t.name, h('span', { class: 'muted version' }, ` v${t.version}`)), versionPicker,
      h('a', { class: 'button small', href: `#/tasks?namespace=${enc(t.namespace)}&name=${enc(t.name)}` }, 'Tasks of this workflow')),
    t.description ? h('p', { class: 'lead' }, t.description) : null,
    // Task concurrency (docs/control-flow.md).
    t.concurrency ? h('p', { class: 'small', 'data-task-concurrency': '' }, `At most ${t.concurrency.limit} running `,
      t.concurrency.limit === 1 ? 'task' : 'tasks', t.concurrency.key ? [' per ', h('code', null, t.concurrency.key)] : ' in all') : null,
    card('Graph', h('div', { class: 'graph-scroll', id: 'graph' }, renderGraph(t.steps, { title: `${t.namespace}/${t.name}@${t.version}` }))),
    card('Execution levels', h('ol', { class: 'levels' },
      t.levels.map((lv, i) => h('li', null, h('span', { class: 'level' }, `level ${i}`),
        lv.map((n, j) => [j ? ', ' : '', h('code', null, n)]),
        lv.length > 1 ? h('span', { class: 'muted small' }, ' — run in parallel') : null)))),
    card('Steps', table(
      [['Step'], ['Handler'], ['Depends on', 'hide-sm'], ['Retry', 'hide-sm'], ['Timeout', 'num hide-md'], ['Concurrency', 'num hide-md']],
      t.steps.map((st) => h('tr', { 'data-step': st.name },
        h('td', null, h('strong', { class: 'mono' }, st.name), st.description ? h('div', { class: 'muted small' }, st.description) : null,
          st.when ? h('div', { class: 'small' }, 'when ', h('code', null, st.when)) : null,
          st.trigger_rule && st.trigger_rule !== 'all_success' ? h('div', { class: 'small' }, 'trigger rule ', h('code', null, st.trigger_rule)) : null),
        h('td', { class: 'mono small' }, st.handler),
        h('td', { class: 'hide-sm' }, st.depends_on.length ? st.depends_on.join(', ') : h('span', { class: 'muted' }, '—')),
        h('td', { class: 'hide-sm small' }, `${st.retry.max_attempts}× · ${st.retry.backoff_base_seconds}s base · ≤${st.retry.max_backoff_seconds}s`),
        h('td', { class: 'num hide-md' }, `${st.timeout_seconds}s`),
        h('td', { class: 'num hide-md' }, st.concurrency ?? '—'))))),
    t.schedules?.length ? card('Schedules', schedulesTable(t.schedules)) : null,
    analyticsCard(v, t),
    card('Context schema', t.context_schema ? h('details', null, h('summary', null, 'JSON Schema'), jsonView(t.context_schema))
      : h('p', { class: 'muted' }, 'No schema: any JSON object is accepted.')),
    card('Start a task', start));
}

// schedulesTable lists a template version's schedules: entries
// (docs/control-flow.md, "Schedules"): when each fires, its catch-up rule,
// whether it is paused, and its next fire times.
function schedulesTable(schedules) {
  return table([['#', 'num'], ['Fires'], ['Catch-up', 'hide-sm'], ['State'], ['Next fire times']],
    schedules.map((sc) => h('tr', { 'data-schedule': String(sc.index) },
      h('td', { class: 'num' }, String(sc.index)),
      h('td', null, sc.cron ? [h('code', null, sc.cron), sc.timezone ? h('span', { class: 'muted small' }, ` ${sc.timezone}`) : null]
        : ['every ', h('code', null, sc.rate)]),
      h('td', { class: 'hide-sm' }, sc.catch_up),
      h('td', { class: 'schedule-state' }, !sc.scheduled ? h('span', { class: 'muted' }, 'not scheduled (not the latest version)')
        : sc.paused ? 'paused' : 'active'),
      h('td', { class: 'next-fires' }, sc.next_fire_times.length
        ? sc.next_fire_times.map((f, i) => [i ? ', ' : '', time(f)]) : h('span', { class: 'muted' }, '—')))),
    'schedules');
}

// ---------------------------------------------------------------- analytics

// analyticsCard shows GET /v1/analytics/templates/… for the last 24 hours:
// a bar chart of each step's p50 and p95 duration (inline SVG) and a table
// of runs, failures, retries and queue wait. It loads after the page; a
// token without system:read gets a note instead.
function analyticsCard(v, t) {
  const body = h('div', { id: 'analytics' }, h('p', { class: 'muted' }, 'Loading…'));
  v.get(`/v1/analytics/templates/${enc(t.namespace)}/${enc(t.name)}`, { window: '24h', version: t.version })
    .then((a) => body.replaceChildren(...renderAnalytics(a)))
    .catch((err) => {
      if (err.name === 'AbortError') return;
      body.replaceChildren(h('p', { class: 'muted' }, `Analytics are not available: ${err.message}`));
    });
  return card('Last 24 hours', body);
}

const ms = (x) => (x == null ? '—' : x >= 1000 ? `${(x / 1000).toFixed(x >= 10000 ? 0 : 1)} s` : `${Math.round(x)} ms`);

function renderAnalytics(a) {
  if (!a.tasks) return [h('p', { class: 'muted' }, 'No tasks of this workflow were created in the last 24 hours.')];
  const steps = a.steps;
  const max = Math.max(1, ...steps.map((st) => st.duration_ms?.p95 ?? 0));
  const row = 22, label = 130, width = 520;
  const bars = steps.map((st, i) => {
    const y = i * row;
    const p50 = st.duration_ms?.p50 ?? 0, p95 = st.duration_ms?.p95 ?? 0;
    const w = (x) => Math.max(1, Math.round((x / max) * (width - label - 70)));
    return s('g', { 'data-step': st.step },
      s('text', { x: 0, y: y + 15, class: 'chart-label' }, st.step),
      s('rect', { x: label, y: y + 4, width: w(p95), height: 14, class: 'chart-p95' }, s('title', null, `${st.step} p95 ${ms(p95)}`)),
      s('rect', { x: label, y: y + 4, width: w(p50), height: 14, class: 'chart-p50' }, s('title', null, `${st.step} p50 ${ms(p50)}`)),
      s('text', { x: label + w(p95) + 6, y: y + 15, class: 'chart-value' }, ms(st.duration_ms?.p50)));
  });
  const chart = s('svg', {
    class: 'chart', xmlns: 'http://www.w3.org/2000/svg', role: 'img', viewBox: `0 0 ${width} ${steps.length * row}`,
    'aria-label': 'Step durations: p50 (dark) and p95 (light)',
  }, bars);
  const onPath = new Set(a.slowest_path);
  return [
    h('p', { class: 'muted small' }, `${a.tasks} task${a.tasks === 1 ? '' : 's'}${a.truncated ? ' (the newest)' : ''}; `,
      'slowest path ', h('strong', null, a.slowest_path.join(' → ')), ` (${ms(a.slowest_path_ms)} at the median).`),
    chart,
    table(
      [['Step'], ['Runs', 'num'], ['Failure rate', 'num'], ['Retries', 'num hide-sm'], ['p50 / p95 / p99', 'num'], ['Queue wait p50', 'num hide-sm']],
      steps.map((st) => h('tr', { 'data-analytics': st.step, class: onPath.has(st.step) ? 'on-path' : null },
        h('td', { class: 'mono' }, st.step),
        h('td', { class: 'num' }, st.runs),
        h('td', { class: 'num' }, `${Math.round(st.failure_rate * 100)}%`),
        h('td', { class: 'num hide-sm' }, st.retries),
        h('td', { class: 'num' }, st.duration_ms ? `${ms(st.duration_ms.p50)} / ${ms(st.duration_ms.p95)} / ${ms(st.duration_ms.p99)}` : '—'),
        h('td', { class: 'num hide-sm' }, ms(st.queue_wait_ms?.p50))))),
  ];
}

// -------------------------------------------------------------------- boot

window.addEventListener('hashchange', route);
session();
route();
