// The tenant's do-not-call list: add a number, remove one, page through.

import { ApiError, del, describe, get, post } from '../api.js';
import { field, fmtTime, h, heading, mount, notice, table } from '../dom.js';

export async function show(el) {
  const phone = h('input', { id: 'dnc-phone', name: 'phone', type: 'tel', required: true, placeholder: '+14155550123' });
  const reason = h('input', { id: 'dnc-reason', name: 'reason', maxlength: 500 });
  const add = h('button', { type: 'submit', id: 'dnc-add' }, 'Add to the list');
  const msg = h('div', { role: 'status' });
  const list = h('div');
  const next = h('button', { type: 'button', id: 'dnc-next', class: 'secondary' }, 'Next page');
  const first = h('button', { type: 'button', id: 'dnc-first', class: 'secondary' }, 'First page');

  async function page(cursor) {
    try {
      const p = await get('/api/v1/dnc', { limit: 50, cursor });
      next.disabled = !p.next_cursor;
      next.onclick = () => page(p.next_cursor);
      first.disabled = !cursor;
      mount(list, p.items.length ? table([
        { label: 'Number', cell: (d) => d.phone, rowAttrs: (d) => ({ testid: 'dnc-row', dataset: { phone: d.phone } }) },
        { label: 'Reason', cell: (d) => d.reason || '' },
        { label: 'Added', cell: (d) => fmtTime(d.created_at) },
        { label: '', cell: (d) => removeButton(d.phone) },
      ], p.items, { id: 'dnc-table' }) : notice('The list is empty.', 'info'));
    } catch (e) {
      mount(list, notice(describe(e), 'error'));
    }
  }

  function removeButton(number) {
    const b = h('button', { type: 'button', class: 'secondary small', testid: 'dnc-remove', 'aria-label': `Remove ${number}` }, 'Remove');
    b.addEventListener('click', async () => {
      if (!confirm(`Remove ${number} from the do-not-call list? It may be called again.`)) return;
      try {
        await del(`/api/v1/dnc/${encodeURIComponent(number)}`);
        mount(msg, notice(`${number} removed.`, 'info'));
        page();
      } catch (e) {
        mount(msg, notice(describe(e), 'error'));
      }
    });
    return b;
  }

  const form = h('form', { id: 'dnc-form', testid: 'dnc-form', class: 'inline-form', novalidate: true },
    field('Number', phone), field('Reason (optional)', reason), add);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    for (const p of form.querySelectorAll('.field-error')) p.textContent = '';
    try {
      const r = await post('/api/v1/dnc', { phone: phone.value.trim(), reason: reason.value.trim() || undefined });
      mount(msg, notice(`${r.phone} is on the list; its undialled contacts will not be called.`, 'info'));
      phone.value = '';
      reason.value = '';
      page();
    } catch (e) {
      const errs = e instanceof ApiError ? e.fieldErrors : [];
      for (const fe of errs) {
        const slot = form.querySelector(`[data-testid="error-${fe.field}"]`);
        if (slot) slot.textContent = fe.message;
      }
      mount(msg, notice(describe(e), 'error'));
    }
  });
  first.addEventListener('click', () => page());
  mount(el, heading('Do not call', 'page-title'),
    h('p', null, 'Numbers on this list are never dialled in any campaign. Callees who ask to be removed are added automatically.'),
    form, msg, h('div', { class: 'toolbar' }, first, next), list);
  await page();
}
