// One campaign: lifecycle buttons (with a refused command explained),
// progress, the contact upload with its import report, the contacts and
// calls lists, and the report (outcome funnel, voice-to-voice histogram,
// results export).

import { ApiError, del, describe, download, get, request } from '../api.js';
import { badge, field, fmtDuration, fmtTime, h, heading, mount, notice, shortId, table } from '../dom.js';
import { bucketHistogram, funnel } from '../charts.js';
import { go } from '../app.js';
import { outcomesText, progressBar, summaryOf } from './campaigns.js';

const COMMANDS = {
  start: { label: 'Start', allowed: ['draft'] },
  pause: { label: 'Pause', allowed: ['running'] },
  resume: { label: 'Resume', allowed: ['paused'] },
  stop: { label: 'Stop', allowed: ['draft', 'running', 'paused'] },
};

const STATE_WORDS = {
  draft: 'it has not been started yet',
  running: 'it is already running',
  paused: 'it is paused (resume it to dial again)',
  stopping: 'it is stopping: no new calls are placed and the live ones are finishing; it will then be cancelled',
  completed: 'it has finished: every contact reached a final status',
  cancelled: 'it was stopped for good',
};

/**
 * A 409's detail in words: the API says "cannot {command} a campaign
 * that is {state}" (or "... cannot be changed / deleted"); say why and
 * what to do instead.
 */
export function explainConflict(detail) {
  const m = /cannot (\w+) a campaign that is (\w+)/.exec(detail || '') || /campaign that is (\w+) cannot be (\w+)/.exec(detail || '');
  if (!m) return detail;
  const [command, state] = m[0].startsWith('cannot') ? [m[1], m[2]] : [m[2], m[1]];
  const why = STATE_WORDS[state] || `it is ${state}`;
  const next = {
    completed: ' To call these contacts again, create a new campaign.',
    cancelled: ' To call again, create a new campaign.',
    stopping: ' Wait for it to become cancelled.',
  }[state] || (state === 'draft' && command !== 'start' ? ' Start it first.' : '');
  return `Could not ${command} this campaign: ${why}.${next}`;
}

function subnav(id, current) {
  const link = (href, label, key) => h('a', { href, 'aria-current': current === key ? 'page' : null }, label);
  return h('nav', { class: 'subnav', 'aria-label': 'Campaign' },
    link(`#/campaigns/${id}`, 'Overview', 'overview'),
    link(`#/campaigns/${id}/calls`, 'Calls', 'calls'),
    link(`#/campaigns/${id}/report`, 'Report', 'report'),
    link(`#/campaigns/${id}/edit`, 'Settings', 'edit'));
}

async function load(el, id, title) {
  try {
    return await get(`/api/v1/campaigns/${id}`);
  } catch (e) {
    mount(el, heading(title, 'page-title'), notice(describe(e), 'error', 'view-error'));
    return null;
  }
}

export async function overview(el, { id }) {
  const c = await load(el, id, 'Campaign');
  if (!c) return;
  const stateEl = h('span', { id: 'campaign-state' }, badge(c.state));
  const message = h('div', { class: 'lifecycle-message', testid: 'lifecycle-message', role: 'status' });
  const buttons = {};
  const progressBox = h('div', { id: 'campaign-progress-box' }, h('p', { class: 'muted' }, 'Counting…'));
  const contactsBox = h('section', { 'aria-labelledby': 'contacts-title' });

  const setState = (state) => {
    c.state = state;
    mount(stateEl, badge(state));
    for (const [cmd, b] of Object.entries(buttons)) {
      b.disabled = !COMMANDS[cmd].allowed.includes(state);
    }
    del_.disabled = !['draft', 'completed', 'cancelled'].includes(state);
  };

  for (const [cmd, def] of Object.entries(COMMANDS)) {
    buttons[cmd] = h('button', { type: 'button', id: `campaign-${cmd}`, testid: `campaign-${cmd}`, class: cmd === 'stop' ? 'danger' : '' }, def.label);
    buttons[cmd].addEventListener('click', async () => {
      if (cmd === 'stop' && !confirm('Stop this campaign for good? Live calls finish; nothing more is dialled.')) return;
      mount(message);
      buttons[cmd].disabled = true;
      try {
        const updated = await request('POST', `/api/v1/campaigns/${id}/${cmd}`);
        setState(updated.state);
        mount(message, notice(`Campaign ${updated.state}.`, 'info'));
        refreshProgress();
      } catch (e) {
        const text = e instanceof ApiError && e.status === 409 ? explainConflict(e.message) : describe(e);
        mount(message, notice(text, 'error', 'lifecycle-error'));
        // Someone else may have moved it: show the stored state.
        get(`/api/v1/campaigns/${id}`).then((fresh) => setState(fresh.state)).catch(() => setState(c.state));
      }
    });
  }
  const del_ = h('button', { type: 'button', id: 'campaign-delete', class: 'danger secondary' }, 'Delete');
  del_.addEventListener('click', async () => {
    if (!confirm(`Delete "${c.name}" with its contacts and calls?`)) return;
    try {
      await del(`/api/v1/campaigns/${id}`);
      go('#/campaigns');
    } catch (e) {
      mount(message, notice(e instanceof ApiError && e.status === 409 ? explainConflict(e.message) : describe(e), 'error', 'lifecycle-error'));
    }
  });

  async function refreshProgress() {
    try {
      const p = await summaryOf(id);
      mount(progressBox, progressBar(p),
        h('p', null, `Live calls: ${p.calls.live}. `, outcomesText(p)));
    } catch (e) {
      mount(progressBox, notice(describe(e), 'error'));
    }
  }

  setState(c.state);
  mount(el,
    h('p', null, h('a', { href: '#/campaigns' }, '← Campaigns')),
    h('div', { class: 'page-head' }, heading(c.name, 'page-title'), stateEl),
    subnav(id, 'overview'),
    h('div', { class: 'lifecycle', role: 'group', 'aria-label': 'Lifecycle' },
      Object.values(buttons), h('a', { href: `#/campaigns/${id}/edit`, id: 'campaign-edit', class: 'button secondary' }, 'Edit'), del_),
    message,
    h('section', { 'aria-labelledby': 'progress-title' }, h('h2', { id: 'progress-title' }, 'Progress'), progressBox),
    summary(c),
    uploader(id, () => { refreshProgress(); contacts(contactsBox, id); }),
    contactsBox);
  refreshProgress();
  contacts(contactsBox, id);
  const timer = setInterval(() => { if (['running', 'stopping'].includes(c.state)) refreshProgress(); }, 10_000);
  return () => clearInterval(timer);
}

function summary(c) {
  const w = c.calling_window;
  const rows = [
    ['Caller id', c.caller_id], ['Telephony', c.telephony],
    ['Calling window', `${w.start}–${w.end}, ${w.days.join(' ')}`],
    ['Attempts', `${c.max_attempts}, retry after ${c.retry_backoff_secs} s (doubling)`],
    ['Calls at once', String(c.max_concurrent_calls)],
    ['Rings for', `${c.ring_timeout_secs} s`],
    ['Reprompts after', `${c.reprompt_after_secs} s of silence`],
    ['On a machine', c.voicemail_action.replace('_', ' ')],
    ['Recording', c.recording_enabled ? `on${c.recording_retention_days ? `, kept ${c.recording_retention_days} days` : ''}` : 'off'],
    ['Analysis', c.analysis ? 'on' : 'off'],
    ['Transfer', c.transfer ? c.transfer.number : 'off'],
  ];
  return h('details', { class: 'summary' }, h('summary', null, 'Settings'),
    h('dl', null, rows.map(([k, v]) => [h('dt', null, k), h('dd', null, v)])),
    h('p', null, h('strong', null, 'Greeting: '), c.agent.greeting));
}

/** The CSV upload: drop zone + file picker, then the import report. */
function uploader(id, onDone) {
  const report = h('div', { id: 'import-report', testid: 'import-report', 'aria-live': 'polite' });
  const fileInput = h('input', { type: 'file', id: 'contacts-file', name: 'contacts_file', accept: '.csv,text/csv', testid: 'contacts-file' });
  const zone = h('div', { id: 'contacts-drop', class: 'dropzone', tabindex: '0', role: 'button', testid: 'contacts-drop',
    'aria-describedby': 'contacts-drop-hint' },
    h('p', null, 'Drop a CSV file here, or press Enter to pick one.'),
    h('p', { class: 'hint', id: 'contacts-drop-hint' }, 'A header row with a "phone" column; "name" and "timezone" are optional; other columns become metadata.'));

  async function send(file) {
    if (!file) return;
    mount(report, h('p', { role: 'status' }, `Uploading ${file.name}…`));
    try {
      const r = await request('POST', `/api/v1/campaigns/${id}/contacts`, { body: file, contentType: 'text/csv' });
      mount(report, importReport(r, file.name));
      onDone();
    } catch (e) {
      mount(report, notice(`The upload was refused: ${describe(e)}`, 'error', 'import-error'));
    } finally {
      fileInput.value = '';
    }
  }
  fileInput.addEventListener('change', () => send(fileInput.files[0]));
  zone.addEventListener('click', () => fileInput.click());
  zone.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); fileInput.click(); }
  });
  zone.addEventListener('dragover', (ev) => { ev.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (ev) => {
    ev.preventDefault();
    zone.classList.remove('over');
    send(ev.dataTransfer && ev.dataTransfer.files[0]);
  });
  return h('section', { 'aria-labelledby': 'upload-title' },
    h('h2', { id: 'upload-title' }, 'Upload contacts'),
    zone, field('CSV file', fileInput), report);
}

function importReport(r, name) {
  const errors = Array.isArray(r.errors) ? r.errors : [];
  return h('div', { class: 'report' },
    h('p', { role: 'status' }, `${name}: `,
      h('strong', { testid: 'import-accepted' }, `${r.accepted} accepted`),
      `, ${r.duplicates} duplicate${r.duplicates === 1 ? '' : 's'}, `,
      h('span', { testid: 'import-invalid' }, `${r.invalid} rejected`),
      `, ${r.do_not_call} on the do-not-call list.`),
    errors.length ? table([
      { label: 'Line', cell: (e) => String(e.line), rowAttrs: (e) => ({ testid: 'import-error-row', dataset: { line: String(e.line) } }) },
      { label: 'Field', cell: (e) => e.field || '' },
      { label: 'Why', cell: (e) => e.message },
    ], errors, { id: 'import-errors' }) : null,
    r.errors_truncated ? h('p', { class: 'muted' }, 'More rows were rejected than are listed.') : null);
}

/** The contacts list with its status filter and paging. */
async function contacts(box, id) {
  const status = h('select', { id: 'contacts-status', name: 'contacts_status' },
    ['', 'pending', 'in_progress', 'retry', 'completed', 'failed', 'dnc'].map((s) => h('option', { value: s }, s ? s.replace('_', ' ') : 'any status')));
  const next = h('button', { type: 'button', id: 'contacts-next', class: 'secondary' }, 'Next page');
  const first = h('button', { type: 'button', id: 'contacts-first', class: 'secondary' }, 'First page');
  const list = h('div');
  async function page(cursor) {
    try {
      const p = await get(`/api/v1/campaigns/${id}/contacts`, { status: status.value, limit: 50, cursor });
      next.disabled = !p.next_cursor;
      next.onclick = () => page(p.next_cursor);
      first.disabled = !cursor;
      mount(list, p.items.length ? table([
        { label: 'Phone', cell: (c) => c.phone, rowAttrs: (c) => ({ testid: 'contact-row', dataset: { id: c.id, status: c.status } }) },
        { label: 'Name', cell: (c) => c.name || '' },
        { label: 'Status', cell: (c) => badge(c.status, 'contact') },
        { label: 'Attempts', cell: (c) => String(c.attempts) },
        { label: 'Last outcome', cell: (c) => c.last_outcome ? c.last_outcome.replace(/_/g, ' ') : '' },
        { label: 'Next attempt', cell: (c) => fmtTime(c.next_attempt_at) },
      ], p.items, { id: 'contacts-table' }) : notice('No contacts here.', 'info'));
    } catch (e) {
      mount(list, notice(describe(e), 'error'));
    }
  }
  status.addEventListener('change', () => page());
  first.addEventListener('click', () => page());
  mount(box, h('h2', { id: 'contacts-title' }, 'Contacts'),
    h('div', { class: 'toolbar' }, field('Status', status), first, next), list);
  await page();
}

export async function calls(el, { id }) {
  const c = await load(el, id, 'Calls');
  if (!c) return;
  const list = h('div');
  const next = h('button', { type: 'button', id: 'calls-next', class: 'secondary' }, 'Next page');
  const first = h('button', { type: 'button', id: 'calls-first', class: 'secondary' }, 'First page');
  async function page(cursor) {
    try {
      const p = await get('/api/v1/calls', { campaign_id: id, limit: 50, cursor });
      next.disabled = !p.next_cursor;
      next.onclick = () => page(p.next_cursor);
      first.disabled = !cursor;
      mount(list, p.items.length ? callsTable(p.items) : notice('No calls yet.', 'info'));
    } catch (e) {
      mount(list, notice(describe(e), 'error'));
    }
  }
  first.addEventListener('click', () => page());
  mount(el, h('p', null, h('a', { href: '#/campaigns' }, '← Campaigns')),
    heading(`${c.name}: calls`, 'page-title'), subnav(id, 'calls'),
    h('div', { class: 'toolbar' }, first, next), list);
  await page();
}

export function callsTable(items) {
  return table([
    { label: 'Call', cell: (x) => h('a', { href: `#/calls/${x.id}`, testid: 'call-link' }, shortId(x.id)), rowAttrs: (x) => ({ testid: 'call-row', dataset: { id: x.id, status: x.status } }) },
    { label: 'Phone', cell: (x) => x.phone },
    { label: 'Attempt', cell: (x) => String(x.attempt) },
    { label: 'Status', cell: (x) => badge(x.status, 'call') },
    { label: 'Outcome', cell: (x) => x.outcome ? badge(x.outcome, 'outcome') : '' },
    { label: 'Provider', cell: (x) => x.provider },
    { label: 'Started', cell: (x) => fmtTime(x.dialed_at || x.created_at) },
    { label: 'Duration', cell: (x) => fmtDuration(x.duration_secs) },
  ], items, { id: 'calls-table' });
}

export async function report(el, { id }) {
  const c = await load(el, id, 'Report');
  if (!c) return;
  const funnelBox = h('div', { class: 'chart-box' }, h('p', { class: 'muted' }, 'Counting…'));
  const histBox = h('div', { class: 'chart-box' }, h('p', { class: 'muted' }, 'Counting…'));
  const exportMsg = h('p', { role: 'status' });
  const exportBtn = h('button', { type: 'button', id: 'export-csv', testid: 'export-csv' }, 'Download results (CSV)');
  exportBtn.addEventListener('click', async () => {
    exportBtn.disabled = true;
    mount(exportMsg, 'Preparing…');
    try {
      await download(`/api/v1/campaigns/${id}/results?format=csv`, `${c.name.replace(/[^A-Za-z0-9_-]+/g, '_') || 'campaign'}-results.csv`, { accept: 'text/csv' });
      mount(exportMsg, 'Downloaded.');
    } catch (e) {
      mount(exportMsg, notice(describe(e), 'error'));
    } finally {
      exportBtn.disabled = false;
    }
  });
  mount(el, h('p', null, h('a', { href: '#/campaigns' }, '← Campaigns')),
    heading(`${c.name}: report`, 'page-title'), subnav(id, 'report'),
    h('section', null, h('h2', null, 'Outcome funnel'), funnelBox,
      h('p', { class: 'hint' }, 'Contacts → dialled (at least one attempt) → answered (a call was answered) → conversation (answered by a person, not a machine) → completed (contact status completed).')),
    h('section', null, h('h2', null, 'Voice-to-voice latency'), histBox),
    h('section', null, h('h2', null, 'Results export'), h('p', null, 'One row per contact with its latest analysed call.'), exportBtn, exportMsg));

  let p;
  try {
    p = await summaryOf(id);
  } catch (e) {
    mount(funnelBox, notice(describe(e), 'error'));
    mount(histBox);
    return;
  }
  const steps = [
    { label: 'Contacts', value: p.contacts.total },
    { label: 'Dialled', value: p.contacts.dialled },
    { label: 'Answered', value: p.calls.answered_contacts },
    { label: 'Conversation', value: p.calls.conversation_contacts },
    { label: 'Completed', value: p.contacts.by_status.completed || 0 },
  ];
  mount(funnelBox, funnel(steps, { testid: 'funnel' }));

  const lat = p.latency;
  mount(histBox,
    bucketHistogram(lat.histogram_ms, { unit: 'ms', testid: 'v2v-histogram', label: `Voice-to-voice latency of ${lat.count} agent replies, in ms` }),
    h('p', null, lat.count
      ? `${lat.count} agent replies: p50 ${lat.p50_ms} ms, p95 ${lat.p95_ms} ms, p99 ${lat.p99_ms} ms.`
      : 'No agent replies with a measured latency yet.'));
}
