// Campaigns: the list (state, progress, live calls, outcomes) and the
// create / edit form with the API's validation errors next to each field.

import { ApiError, describe, get, patch, post } from '../api.js';
import { badge, field, h, heading, mount, notice } from '../dom.js';
import { go } from '../app.js';

const STATES = ['', 'draft', 'running', 'paused', 'stopping', 'completed', 'cancelled'];
const CONTACT_STATUSES = ['pending', 'in_progress', 'retry', 'completed', 'failed', 'dnc'];
const DONE = new Set(['completed', 'failed', 'dnc']);

/**
 * A campaign's figures, counted by the server (GET .../summary): contacts
 * by status, calls live and by outcome, the funnel's counts and the
 * voice-to-voice latency, one request whatever the campaign's size.
 */
export function summaryOf(id) {
  return get(`/api/v1/campaigns/${id}/summary`);
}

/** Finished calls by outcome in words, the commonest first ('' without any). */
export function outcomesText(summary) {
  return Object.entries(summary.calls.by_outcome).filter(([, v]) => v)
    .sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k.replace(/_/g, ' ')} ${v}`).join(', ');
}

/** A bar of a summary's contacts by status, with the count done in words. */
export function progressBar(summary) {
  const byStatus = summary.contacts.by_status;
  const total = summary.contacts.total;
  const done = Object.entries(byStatus).filter(([k]) => DONE.has(k)).reduce((a, [, v]) => a + v, 0);
  const bar = h('div', { class: 'progress', role: 'img', 'aria-label': `${done} of ${total} contacts done` });
  for (const st of CONTACT_STATUSES) {
    const n = byStatus[st] || 0;
    if (!n) continue;
    const seg = h('span', { class: ['progress-seg', `contact-${st}`], title: `${st.replace('_', ' ')}: ${n}` });
    seg.style.width = `${(100 * n) / total}%`;
    bar.append(seg);
  }
  const legend = CONTACT_STATUSES.filter((st) => byStatus[st])
    .map((st) => `${st.replace('_', ' ')} ${byStatus[st]}`).join(' · ');
  return h('div', { class: 'progress-block', testid: 'campaign-progress' },
    h('div', { class: 'progress-text' }, total ? `${done} of ${total} contacts done` : 'no contacts yet'),
    total ? bar : null,
    legend ? h('div', { class: 'progress-legend' }, legend) : null);
}

export async function list(el) {
  let cursors = [undefined];
  const tableBox = h('div');
  const stateSelect = h('select', { id: 'campaigns-state', name: 'state' },
    STATES.map((st) => h('option', { value: st }, st || 'any state')));
  const nextBtn = h('button', { type: 'button', id: 'campaigns-next', class: 'secondary' }, 'Next page');
  const firstBtn = h('button', { type: 'button', id: 'campaigns-first', class: 'secondary' }, 'First page');

  async function load(cursor) {
    mount(tableBox, h('p', { class: 'loading', role: 'status' }, 'Loading…'));
    let page;
    try {
      page = await get('/api/v1/campaigns', { state: stateSelect.value, limit: 25, cursor });
    } catch (e) {
      mount(tableBox, notice(describe(e), 'error', 'view-error'));
      return;
    }
    nextBtn.disabled = !page.next_cursor;
    nextBtn.onclick = () => { cursors.push(page.next_cursor); load(page.next_cursor); };
    firstBtn.disabled = cursors.length <= 1;
    if (!page.items.length) {
      mount(tableBox, notice('No campaigns yet. Create one to start calling.', 'info'));
      return;
    }
    const rows = page.items.map((c) => {
      const progressCell = h('td', { 'data-label': 'Progress' }, h('span', { class: 'muted' }, '…'));
      const liveCell = h('td', { 'data-label': 'Live calls' }, '…');
      const outcomeCell = h('td', { 'data-label': 'Outcomes' }, '…');
      const tr = h('tr', { testid: 'campaign-row', dataset: { id: c.id } },
        h('td', { 'data-label': 'Name' }, h('a', { href: `#/campaigns/${c.id}`, testid: 'campaign-link' }, c.name)),
        h('td', { 'data-label': 'State' }, badge(c.state)),
        h('td', { 'data-label': 'Telephony' }, c.telephony),
        progressCell, liveCell, outcomeCell);
      return { c, tr, progressCell, liveCell, outcomeCell };
    });
    mount(tableBox, h('div', { class: 'table-wrap' }, h('table', { id: 'campaigns-table' },
      h('thead', null, h('tr', null, ['Name', 'State', 'Telephony', 'Progress', 'Live calls', 'Outcomes']
        .map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, rows.map((r) => r.tr)))));
    // Progress row by row (one summary each), a few at a time (the API's
    // rate limit).
    for (let i = 0; i < rows.length; i += 3) {
      await Promise.all(rows.slice(i, i + 3).map(async (r) => {
        try {
          const p = await summaryOf(r.c.id);
          mount(r.progressCell, progressBar(p));
          mount(r.liveCell, String(p.calls.live));
          mount(r.outcomeCell, outcomesText(p) || '–');
        } catch (e) {
          mount(r.progressCell, h('span', { class: 'muted' }, describe(e)));
          mount(r.liveCell, '');
          mount(r.outcomeCell, '');
        }
      }));
      if (!tableBox.isConnected && i > 0) return;
    }
  }

  stateSelect.addEventListener('change', () => { cursors = [undefined]; load(); });
  firstBtn.addEventListener('click', () => { cursors = [undefined]; load(); });
  mount(el,
    h('div', { class: 'page-head' }, heading('Campaigns', 'page-title'),
      h('a', { href: '#/campaigns/new', id: 'new-campaign', class: 'button', testid: 'new-campaign' }, 'New campaign')),
    h('div', { class: 'toolbar' }, field('State', stateSelect), firstBtn, nextBtn),
    tableBox);
  load();
}

export async function create(el) {
  mount(el, heading('New campaign', 'page-title'), form(null));
}

export async function edit(el, { id }) {
  let c;
  try {
    c = await get(`/api/v1/campaigns/${id}`);
  } catch (e) {
    mount(el, heading('Edit campaign', 'page-title'), notice(describe(e), 'error', 'view-error'));
    return;
  }
  mount(el, h('p', null, h('a', { href: `#/campaigns/${id}` }, `← ${c.name}`)),
    heading(`Edit ${c.name}`, 'page-title'), form(c));
}

const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];

function input(id, name, attrs = {}) {
  return h('input', { id, name, ...attrs });
}

function textarea(id, name, value, rows = 4) {
  return h('textarea', { id, name, rows, value: value ?? '' });
}

function select(id, name, options, value) {
  return h('select', { id, name, value }, options.map(([v, label]) => h('option', { value: v }, label)));
}

/** The form: `c` the campaign to edit, or null to create one. */
function form(c) {
  const a = (c && c.agent) || {};
  const w = (c && c.calling_window) || { start: '09:00', end: '18:00', days: ['mon', 'tue', 'wed', 'thu', 'fri'] };
  const an = c && c.analysis;
  const tr = c && c.transfer;
  const f = {
    name: input('cf-name', 'name', { required: true, maxlength: 200, value: c ? c.name : '' }),
    caller_id: input('cf-caller_id', 'caller_id', { required: true, type: 'tel', value: c ? c.caller_id : '', placeholder: '+14155550100' }),
    telephony: select('cf-telephony', 'telephony', [['', 'server default'], ['vonage', 'Vonage'], ['twilio', 'Twilio'], ['vonage_then_twilio', 'Vonage, then Twilio']], c ? c.telephony : ''),
    system_prompt: textarea('cf-agent-system_prompt', 'agent.system_prompt', a.system_prompt, 6),
    greeting: textarea('cf-agent-greeting', 'agent.greeting', a.greeting, 2),
    voicemail_message: textarea('cf-agent-voicemail_message', 'agent.voicemail_message', a.voicemail_message, 2),
    voice: input('cf-agent-voice', 'agent.voice', { value: a.voice || '', placeholder: 'rachel' }),
    language: input('cf-agent-language', 'agent.language', { value: a.language || '', placeholder: 'en-US' }),
    llm_model: input('cf-agent-llm_model', 'agent.llm_model', { value: a.llm_model || '', placeholder: 'llama-3.3-70b-versatile' }),
    start: input('cf-window-start', 'calling_window.start', { type: 'time', value: w.start }),
    end: input('cf-window-end', 'calling_window.end', { type: 'time', value: w.end }),
    days: DAYS.map((d) => input(`cf-window-day-${d}`, 'calling_window.days', { type: 'checkbox', value: d, checked: w.days.includes(d) })),
    max_attempts: input('cf-max_attempts', 'max_attempts', { type: 'number', min: 1, max: 100, value: c ? c.max_attempts : 3 }),
    retry_backoff_secs: input('cf-retry_backoff_secs', 'retry_backoff_secs', { type: 'number', min: 0, max: 2592000, value: c ? c.retry_backoff_secs : 3600 }),
    max_concurrent_calls: input('cf-max_concurrent_calls', 'max_concurrent_calls', { type: 'number', min: 1, max: 10000, value: c ? c.max_concurrent_calls : 10 }),
    max_call_duration_secs: input('cf-max_call_duration_secs', 'max_call_duration_secs', { type: 'number', min: 10, max: 7200, value: c ? c.max_call_duration_secs : 600 }),
    ring_timeout_secs: input('cf-ring_timeout_secs', 'ring_timeout_secs', { type: 'number', min: 15, max: 120, value: c ? c.ring_timeout_secs : 45 }),
    reprompt_after_secs: input('cf-reprompt_after_secs', 'reprompt_after_secs', { type: 'number', min: 3, max: 60, value: c ? c.reprompt_after_secs : 8 }),
    voicemail_action: select('cf-voicemail_action', 'voicemail_action', [['hangup', 'Hang up'], ['leave_message', 'Leave the voicemail message']], c ? c.voicemail_action : 'hangup'),
    recording_enabled: input('cf-recording_enabled', 'recording_enabled', { type: 'checkbox', checked: Boolean(c && c.recording_enabled) }),
    recording_retention_days: input('cf-recording_retention_days', 'recording_retention_days', { type: 'number', min: 1, max: 3650, value: c && c.recording_retention_days ? c.recording_retention_days : '' }),
    analysis: input('cf-analysis-enabled', 'analysis', { type: 'checkbox', checked: Boolean(an) }),
    summary_prompt: textarea('cf-analysis-summary_prompt', 'analysis.summary_prompt', an && an.summary_prompt, 2),
    schema: textarea('cf-analysis-structured_data_schema', 'analysis.structured_data_schema',
      an && an.structured_data_schema ? JSON.stringify(an.structured_data_schema, null, 2) : '', 6),
    success_rubric: textarea('cf-analysis-success_rubric', 'analysis.success_rubric', an && an.success_rubric, 2),
    transfer: input('cf-transfer-enabled', 'transfer', { type: 'checkbox', checked: Boolean(tr) }),
    transfer_number: input('cf-transfer-number', 'transfer.number', { type: 'tel', value: tr ? tr.number : '' }),
    transfer_announce: input('cf-transfer-announce', 'transfer.announce', { value: tr ? tr.announce : '' }),
  };
  f.schema.classList.add('mono');
  const general = h('div', { class: 'form-errors', role: 'alert', testid: 'form-errors' });
  const save = h('button', { type: 'submit', id: 'campaign-save', testid: c ? 'campaign-save' : 'campaign-create' }, c ? 'Save changes' : 'Create campaign');
  const analysisBox = h('div', { class: 'sub-fields' },
    field('Summary prompt', f.summary_prompt, 'What the summary should say; blank: 2-3 sentences.'),
    field('Structured data schema (JSON Schema)', f.schema, 'An object schema; each top-level property becomes a results column.'),
    field('Success rubric', f.success_rubric, 'e.g. "pass/fail: the callee agreed to a demo".'));
  const transferBox = h('div', { class: 'sub-fields' },
    field('Transfer to number', f.transfer_number),
    field('Announce line', f.transfer_announce, 'Said before the handover; blank: "Please hold while I connect you to a colleague."'));
  const sync = () => {
    analysisBox.hidden = !f.analysis.checked;
    transferBox.hidden = !f.transfer.checked;
  };
  f.analysis.addEventListener('change', sync);
  f.transfer.addEventListener('change', sync);
  sync();

  const daysBox = h('fieldset', { class: 'days', dataset: { field: 'calling_window.days' } },
    h('legend', null, 'Days'),
    f.days.map((box) => h('label', { class: 'check' }, box, ` ${box.value}`)),
    h('p', { class: 'field-error', id: 'cf-window-days-error', role: 'alert', testid: 'error-calling_window.days' }));

  const formEl = h('form', { id: 'campaign-form', testid: 'campaign-form', novalidate: true },
    general,
    h('fieldset', null, h('legend', null, 'Campaign'),
      field('Name', f.name),
      field('Caller id (number shown to the callee)', f.caller_id),
      field('Telephony', f.telephony)),
    h('fieldset', null, h('legend', null, 'Agent'),
      field('System prompt', f.system_prompt),
      field('Greeting (first words of every answered call)', f.greeting),
      field('Voicemail message', f.voicemail_message, 'Needed when the voicemail action is to leave a message.'),
      h('div', { class: 'row' }, field('Voice', f.voice), field('Language', f.language), field('LLM model', f.llm_model))),
    h('fieldset', { dataset: { field: 'calling_window' } }, h('legend', null, 'Calling window (the contact\'s local time)'),
      h('div', { class: 'row' }, field('From', f.start), field('To', f.end)),
      daysBox,
      h('p', { class: 'field-error', id: 'cf-window-error', role: 'alert', testid: 'error-calling_window' })),
    h('fieldset', null, h('legend', null, 'Dialling'),
      h('div', { class: 'row' },
        field('Attempts per contact', f.max_attempts),
        field('Retry after (seconds, doubles per attempt)', f.retry_backoff_secs),
        field('Calls at once', f.max_concurrent_calls),
        field('Longest call (seconds)', f.max_call_duration_secs),
        field('Ring for (seconds, 15 to 120)', f.ring_timeout_secs),
        field('Ask again after silence (seconds)', f.reprompt_after_secs)),
      field('On an answering machine', f.voicemail_action)),
    h('fieldset', null, h('legend', null, 'Recording'),
      h('div', { class: 'field check-field' }, f.recording_enabled, h('label', { for: f.recording_enabled.id }, ' Record both sides of each call'),
        h('p', { class: 'field-error', id: 'cf-recording_enabled-error', role: 'alert', testid: 'error-recording_enabled' })),
      field('Keep recordings for (days; blank: as long as the campaign)', f.recording_retention_days)),
    h('fieldset', null, h('legend', null, 'Post-call analysis'),
      h('div', { class: 'field check-field', dataset: { field: 'analysis' } }, f.analysis, h('label', { for: f.analysis.id }, ' Analyse every conversation'),
        h('p', { class: 'field-error', id: 'cf-analysis-enabled-error', role: 'alert', testid: 'error-analysis' })),
      analysisBox),
    h('fieldset', null, h('legend', null, 'Transfer to a person'),
      h('div', { class: 'field check-field', dataset: { field: 'transfer' } }, f.transfer, h('label', { for: f.transfer.id }, ' Offer a cold transfer when the callee asks for a person'),
        h('p', { class: 'field-error', id: 'cf-transfer-enabled-error', role: 'alert', testid: 'error-transfer' })),
      transferBox),
    h('div', { class: 'actions' }, save, c ? h('a', { href: `#/campaigns/${c.id}`, class: 'button secondary' }, 'Cancel') : null));

  formEl.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(formEl, general);
    const body = bodyOf(f, Boolean(c));
    if (body.error) {
      showErrors(formEl, general, [body.error], 'Fix the marked field.');
      return;
    }
    save.disabled = true;
    try {
      const saved = c
        ? await patch(`/api/v1/campaigns/${c.id}`, body.value)
        : await post('/api/v1/campaigns', body.value);
      go(`#/campaigns/${saved.id}`);
    } catch (e) {
      if (e instanceof ApiError && e.fieldErrors.length) {
        showErrors(formEl, general, e.fieldErrors, e.status === 422 ? 'Some settings are not valid:' : describe(e));
      } else if (e instanceof ApiError && e.status === 409) {
        showErrors(formEl, general, [], `${describe(e)}. Only draft, running and paused campaigns can be changed (the recording retention always can).`);
      } else {
        showErrors(formEl, general, [], describe(e));
      }
    } finally {
      save.disabled = false;
    }
  });
  return formEl;
}

/** The JSON body from the form, or {error} for a field the browser can judge. */
function bodyOf(f, isEdit) {
  const text = (el) => el.value.trim();
  const opt = (el) => (text(el) ? text(el) : undefined);
  const num = (el) => (text(el) === '' ? undefined : Number(text(el)));
  const agent = {
    system_prompt: text(f.system_prompt),
    greeting: text(f.greeting),
    voice: opt(f.voice),
    language: opt(f.language),
    llm_model: opt(f.llm_model),
  };
  const vm = text(f.voicemail_message);
  if (vm) agent.voicemail_message = vm;
  else if (isEdit) agent.voicemail_message = null;
  const body = {
    name: text(f.name),
    caller_id: text(f.caller_id),
    agent,
    calling_window: {
      start: text(f.start) || undefined,
      end: text(f.end) || undefined,
      days: f.days.filter((d) => d.checked).map((d) => d.value),
    },
    max_attempts: num(f.max_attempts),
    retry_backoff_secs: num(f.retry_backoff_secs),
    max_concurrent_calls: num(f.max_concurrent_calls),
    max_call_duration_secs: num(f.max_call_duration_secs),
    ring_timeout_secs: num(f.ring_timeout_secs),
    reprompt_after_secs: num(f.reprompt_after_secs),
    voicemail_action: f.voicemail_action.value,
    recording_enabled: f.recording_enabled.checked,
  };
  if (f.telephony.value) body.telephony = f.telephony.value;
  const days = num(f.recording_retention_days);
  if (days !== undefined) body.recording_retention_days = days;
  else if (isEdit) body.recording_retention_days = null;
  if (f.analysis.checked) {
    const analysis = { summary_prompt: opt(f.summary_prompt), success_rubric: opt(f.success_rubric) };
    if (text(f.schema)) {
      try {
        analysis.structured_data_schema = JSON.parse(text(f.schema));
      } catch (e) {
        return { error: { field: 'analysis.structured_data_schema', message: `is not valid JSON: ${e.message}` } };
      }
    }
    body.analysis = analysis;
  } else if (isEdit) {
    body.analysis = null;
  }
  if (f.transfer.checked) {
    body.transfer = { number: text(f.transfer_number), announce: opt(f.transfer_announce) };
  } else if (isEdit) {
    body.transfer = null;
  }
  return { value: JSON.parse(JSON.stringify(body)) };
}

function clearErrors(formEl, general) {
  mount(general);
  for (const p of formEl.querySelectorAll('.field-error')) p.textContent = '';
  for (const i of formEl.querySelectorAll('[aria-invalid]')) i.removeAttribute('aria-invalid');
}

/**
 * Puts each field error next to its field: the input named exactly like
 * the error's field, else the closest named ancestor path
 * (`analysis.structured_data_schema.properties` -> the schema box,
 * `calling_window` -> the window fieldset); what fits nowhere is listed
 * in the general message on top.
 */
function showErrors(formEl, general, errors, summary) {
  const unplaced = [];
  let first = null;
  for (const e of errors) {
    const slot = slotFor(formEl, e.field);
    if (!slot) {
      unplaced.push(e);
      continue;
    }
    slot.error.textContent = slot.error.textContent ? `${slot.error.textContent}; ${e.message}` : `${e.field === slot.name ? '' : `${e.field}: `}${e.message}`;
    if (slot.input) slot.input.setAttribute('aria-invalid', 'true');
    first ||= slot.input || slot.error;
  }
  mount(general,
    h('p', null, summary),
    unplaced.length ? h('ul', null, unplaced.map((e) => h('li', null, `${e.field}: ${e.message}`))) : null);
  if (first && first.focus) first.focus();
  else general.scrollIntoView({ block: 'nearest' });
}

function slotFor(formEl, name) {
  let path = name.replace(/\[\d+\]/g, '');
  while (path) {
    const input = [...formEl.querySelectorAll('[name]')].find((i) => i.name === path && i.type !== 'checkbox') ||
      [...formEl.querySelectorAll('[name]')].find((i) => i.name === path);
    const box = [...formEl.querySelectorAll('[data-field]')].find((b) => b.dataset.field === path);
    if (box || input) {
      const holder = box || input.closest('.field');
      const error = holder && [...holder.querySelectorAll('.field-error')].pop();
      if (error) return { error, input, name: path };
    }
    const dot = path.lastIndexOf('.');
    path = dot > 0 ? path.slice(0, dot) : '';
  }
  return null;
}
