// Tiny DOM builders. Everything the app shows is built with these (text
// goes in as text nodes), never parsed from HTML strings: the Content-Security-
// Policy refuses string-to-HTML sinks outright (Trusted Types).

const SVG_NS = 'http://www.w3.org/2000/svg';

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class' && Array.isArray(v)) el.setAttribute('class', v.filter(Boolean).join(' '));
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// h('a', {href: '#/x', class: 'link'}, 'text', child…) builds an HTML element.
export const h = (tag, attrs, ...children) => build(document.createElement(tag), attrs, children);

// s('rect', {x: 1}) builds an SVG element.
export const s = (tag, attrs, ...children) => build(document.createElementNS(SVG_NS, tag), attrs, children);

// swap replaces el's children with build()'s result, only when key changed
// since the last swap: polling re-renders keep open <details>, focus and
// selections when nothing changed.
const keys = new WeakMap();

export function swap(el, key, build) {
  if (keys.get(el) === key) return false;
  keys.set(el, key);
  el.replaceChildren(...[build()].flat().filter((c) => c !== null && c !== undefined && c !== false));
  return true;
}
