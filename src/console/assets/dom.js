// Small DOM helpers shared by every view. Elements are always built with
// createElement and textContent (never HTML strings), so nothing the API
// returns (a contact's name, a transcript) can inject markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

function apply(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
    else if (k === 'testid') el.setAttribute('data-testid', v);
    else if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'text') el.textContent = String(v);
    else if (k === 'value') continue; // set after the children (a select's options)
    else if (k in el && typeof v !== 'string' && !(el instanceof SVGElement)) el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** An HTML element: h('button', {class: 'x', on: {click}}, 'Label'). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  apply(el, attrs);
  append(el, children);
  if (attrs && attrs.value !== undefined && attrs.value !== null) el.value = String(attrs.value);
  return el;
}

/** An SVG element (charts). */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  apply(el, attrs);
  return append(el, children);
}

/** Empties an element and puts children in it. */
export function mount(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A labelled form field: the label is tied to the input by id. */
export function field(label, input, hint) {
  const errorId = `${input.id}-error`;
  const hintId = hint ? `${input.id}-hint` : null;
  input.setAttribute('aria-describedby', [hintId, errorId].filter(Boolean).join(' '));
  return h('div', { class: 'field', dataset: { field: input.name || '' } },
    h('label', { for: input.id }, label),
    input,
    hint ? h('p', { class: 'hint', id: hintId }, hint) : null,
    h('p', { class: 'field-error', id: errorId, role: 'alert', testid: `error-${input.name}` }));
}

/** "12 Jan 14:03:07" in the browser's time zone; "" for nothing. */
export function fmtTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString(undefined, { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

/** "1:05" for 65 seconds, "1:02:03" past an hour. */
export function fmtDuration(secs) {
  if (secs === null || secs === undefined || Number.isNaN(secs)) return '';
  const t = Math.max(0, Math.round(secs));
  const hh = Math.floor(t / 3600), mm = Math.floor((t % 3600) / 60), ss = t % 60;
  const two = (n) => String(n).padStart(2, '0');
  return hh ? `${hh}:${two(mm)}:${two(ss)}` : `${mm}:${two(ss)}`;
}

/** A status or outcome as a coloured badge. */
export function badge(value, kind = 'state') {
  const v = value || 'none';
  return h('span', { class: ['badge', `${kind}-${v}`], testid: `${kind}-badge` }, v.replace(/_/g, ' '));
}

/** A message line (info or error) that screen readers announce. */
export function notice(text, kind = 'info', testid) {
  return h('p', { class: ['notice', `notice-${kind}`], role: kind === 'error' ? 'alert' : 'status', testid }, text);
}

/** A page heading that takes focus after navigation (keyboard users land on it). */
export function heading(text, testid) {
  return h('h1', { tabindex: '-1', class: 'page-title', testid }, text);
}

/** A table from column definitions: [{label, cell: (row) => node|string}]. */
export function table(columns, rows, attrs = {}) {
  return h('div', { class: 'table-wrap' },
    h('table', attrs,
      h('thead', null, h('tr', null, columns.map((c) => h('th', { scope: 'col' }, c.label)))),
      h('tbody', null, rows.map((r) => {
        const tr = h('tr', rowAttrs(columns, r));
        for (const c of columns) tr.append(h('td', { 'data-label': c.label }, c.cell(r)));
        return tr;
      }))));
}

function rowAttrs(columns, row) {
  const withRow = columns.find((c) => c.rowAttrs);
  return withRow ? withRow.rowAttrs(row) : null;
}

/** The first eight characters of an id ("0190b3c4…"), for tables. */
export function shortId(id) {
  return id ? `${String(id).slice(0, 8)}…` : '';
}
