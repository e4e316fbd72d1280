// Customer webhooks: endpoints (create, showing the secret once; delete)
// and each endpoint's deliveries with their attempts, and replay.

import { ApiError, del, describe, get, post } from '../api.js';
import { badge, field, fmtTime, h, heading, mount, notice, shortId, table } from '../dom.js';

const EVENTS = ['call.started', 'call.ended', 'call.analyzed', 'contact.do_not_call', 'campaign.completed'];

export async function list(el) {
  const url = h('input', { id: 'wh-url', name: 'url', type: 'url', required: true, placeholder: 'your receiver\'s HTTPS address' });
  const boxes = EVENTS.map((ev) => h('input', { type: 'checkbox', id: `wh-events-${ev.replace(/\./g, '-')}`, name: 'events', value: ev, checked: true }));
  const create = h('button', { type: 'submit', id: 'webhook-create' }, 'Add endpoint');
  const msg = h('div', { 'aria-live': 'polite' });
  const listBox = h('div');

  async function load() {
    try {
      const p = await get('/api/v1/webhooks', { limit: 100 });
      mount(listBox, p.items.length ? table([
        { label: 'URL', cell: (w) => h('a', { href: `#/webhooks/${w.id}` }, w.url), rowAttrs: (w) => ({ testid: 'webhook-row', dataset: { id: w.id } }) },
        { label: 'Events', cell: (w) => w.events.join(', ') },
        { label: 'State', cell: (w) => (w.disabled_at ? badge('disabled', 'webhook') : badge('active', 'webhook')) },
        { label: 'Created', cell: (w) => fmtTime(w.created_at) },
        { label: '', cell: (w) => removeButton(w) },
      ], p.items, { id: 'webhooks-table' }) : notice('No endpoints yet.', 'info'));
    } catch (e) {
      mount(listBox, notice(describe(e), 'error'));
    }
  }

  function removeButton(w) {
    const b = h('button', { type: 'button', class: 'secondary small', testid: 'webhook-delete', 'aria-label': `Delete ${w.url}` }, 'Delete');
    b.addEventListener('click', async () => {
      if (!confirm(`Delete the endpoint ${w.url}? Nothing more is sent to it.`)) return;
      try {
        await del(`/api/v1/webhooks/${w.id}`);
        load();
      } catch (e) {
        mount(msg, notice(describe(e), 'error'));
      }
    });
    return b;
  }

  const eventsBox = h('fieldset', { dataset: { field: 'events' } }, h('legend', null, 'Events'),
    boxes.map((b) => h('label', { class: 'check' }, b, ` ${b.value}`)),
    h('p', { class: 'field-error', id: 'wh-events-error', role: 'alert', testid: 'error-events' }));
  const form = h('form', { id: 'webhook-form', testid: 'webhook-form', novalidate: true }, field('Endpoint URL', url), eventsBox, create);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    for (const p of form.querySelectorAll('.field-error')) p.textContent = '';
    mount(msg);
    try {
      const r = await post('/api/v1/webhooks', { url: url.value.trim(), events: boxes.filter((b) => b.checked).map((b) => b.value) });
      const secret = h('code', { class: 'secret', testid: 'webhook-secret' }, r.secret);
      const copy = h('button', { type: 'button', class: 'secondary small' }, 'Copy');
      copy.addEventListener('click', () => navigator.clipboard && navigator.clipboard.writeText(r.secret));
      mount(msg, h('div', { class: 'notice notice-info', role: 'status' },
        h('p', null, 'Endpoint added. Its signing secret is shown this once; store it now:'), h('p', null, secret, ' ', copy)));
      url.value = '';
      load();
    } catch (e) {
      for (const fe of e instanceof ApiError ? e.fieldErrors : []) {
        const name = fe.field.replace(/\[\d+\]$/, '');
        const slot = form.querySelector(`[data-testid="error-${name}"]`);
        if (slot) slot.textContent = `${fe.field}: ${fe.message}`;
      }
      mount(msg, notice(describe(e), 'error'));
    }
  });
  mount(el, heading('Webhooks', 'page-title'),
    h('p', null, 'talky POSTs signed events (Standard Webhooks) to these endpoints and retries until they answer 2xx.'),
    form, msg, h('h2', null, 'Endpoints'), listBox);
  await load();
}

export async function deliveries(el, { id }) {
  let w;
  try {
    w = await get(`/api/v1/webhooks/${id}`);
  } catch (e) {
    mount(el, heading('Deliveries', 'page-title'), notice(describe(e), 'error', 'view-error'));
    return;
  }
  const msg = h('div', { 'aria-live': 'polite' });
  const listBox = h('div');
  const next = h('button', { type: 'button', id: 'deliveries-next', class: 'secondary' }, 'Next page');
  const first = h('button', { type: 'button', id: 'deliveries-first', class: 'secondary' }, 'First page');
  async function page(cursor) {
    try {
      const p = await get(`/api/v1/webhooks/${id}/deliveries`, { limit: 50, cursor });
      next.disabled = !p.next_cursor;
      next.onclick = () => page(p.next_cursor);
      first.disabled = !cursor;
      mount(listBox, p.items.length ? table([
        { label: 'Event', cell: (d) => d.type, rowAttrs: (d) => ({ testid: 'delivery-row', dataset: { id: d.id, state: d.state } }) },
        { label: 'webhook-id', cell: (d) => h('code', null, d.webhook_id) },
        { label: 'When', cell: (d) => fmtTime(d.timestamp) },
        { label: 'State', cell: (d) => badge(d.state, 'delivery') },
        { label: 'Attempts', cell: (d) => attempts(d) },
        { label: 'Next attempt', cell: (d) => fmtTime(d.next_attempt_at) },
        { label: '', cell: (d) => replayButton(d) },
      ], p.items, { id: 'deliveries-table' }) : notice('Nothing sent to this endpoint yet.', 'info'));
    } catch (e) {
      mount(listBox, notice(describe(e), 'error'));
    }
  }
  function attempts(d) {
    const log = d.attempt_log || [];
    if (!log.length) return String(d.attempts);
    return h('details', null, h('summary', null, `${d.attempts} (last ${d.last_status ?? 'no answer'})`),
      h('ol', null, log.map((a) => h('li', null,
        `${fmtTime(a.started_at)}: ${a.status_code ? `HTTP ${a.status_code}` : a.error || 'no answer'}, ${a.duration_ms} ms`))));
  }
  function replayButton(d) {
    const b = h('button', { type: 'button', class: 'secondary small', testid: 'delivery-replay', 'aria-label': `Replay ${d.type} ${shortId(d.id)}` }, 'Replay');
    b.addEventListener('click', async () => {
      try {
        await post(`/api/v1/webhooks/${id}/deliveries/${d.id}/replay`);
        mount(msg, notice(`Queued again with the same webhook-id ${d.webhook_id}.`, 'info'));
        page();
      } catch (e) {
        mount(msg, notice(e instanceof ApiError && e.status === 409 ? `Not replayed: ${e.message} (a disabled endpoint receives nothing).` : describe(e), 'error'));
      }
    });
    return b;
  }
  first.addEventListener('click', () => page());
  mount(el, h('p', null, h('a', { href: '#/webhooks' }, '← Webhooks')),
    heading(`Deliveries to ${w.url}`, 'page-title'),
    w.disabled_at ? notice(`Disabled since ${fmtTime(w.disabled_at)} (it answered 410).`, 'error') : null,
    msg, h('div', { class: 'toolbar' }, first, next), listBox);
  await page();
}
