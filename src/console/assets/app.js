// The talky operator console: sign-in, hash routing, the views.
//
// Routes (hash):
//   #/campaigns                 list, state filter, paging        views/campaigns.js
//   #/campaigns/new             create form                       views/campaigns.js
//   #/campaigns/{id}            lifecycle, progress, upload, contacts  views/campaign.js
//   #/campaigns/{id}/edit       edit form                         views/campaigns.js
//   #/campaigns/{id}/calls      the campaign's calls              views/campaign.js
//   #/campaigns/{id}/report     funnel, latency histogram, export views/campaign.js
//   #/calls/{id}                call detail                       views/call.js
//   #/live                      live calls (server push)          views/live.js
//   #/dnc                       do-not-call list                  views/dnc.js
//   #/webhooks, #/webhooks/{id} endpoints, deliveries             views/webhooks.js
//   #/supervisor                actor tree and metrics (admin)    views/supervisor.js
//
// Stable hooks for browser tests (ids and data-testid; ids are unique,
// test ids may repeat in lists):
//   sign-in            #sign-in-form, #sign-in-key, #sign-in-admin, #sign-in-submit,
//                      [data-testid=sign-in-error], #sign-out, [data-testid=nav-*]
//   every view         [data-testid=view] (container), [data-testid=page-title],
//                      [data-testid=view-error] (a failed load)
//   campaign list      #campaigns-table, [data-testid=campaign-row] (data-id),
//                      [data-testid=campaign-link], [data-testid=campaign-progress],
//                      #new-campaign, #campaigns-next, #campaigns-first, #campaigns-state
//   campaign form      #campaign-form, #cf-name, #cf-caller_id, #cf-telephony,
//                      #cf-agent-system_prompt, #cf-agent-greeting, #cf-agent-voicemail_message,
//                      #cf-agent-voice, #cf-agent-language, #cf-agent-llm_model,
//                      #cf-window-start, #cf-window-end, #cf-window-day-{mon..sun},
//                      #cf-max_attempts, #cf-retry_backoff_secs, #cf-max_concurrent_calls,
//                      #cf-max_call_duration_secs, #cf-ring_timeout_secs, #cf-reprompt_after_secs,
//                      #cf-voicemail_action,
//                      #cf-recording_enabled,
//                      #cf-recording_retention_days, #cf-analysis-enabled,
//                      #cf-analysis-summary_prompt, #cf-analysis-structured_data_schema,
//                      #cf-analysis-success_rubric, #cf-transfer-enabled, #cf-transfer-number,
//                      #cf-transfer-announce, #campaign-save (the create / save button),
//                      [data-testid=form-errors] (general message on top),
//                      [data-testid=error-<field>] e.g. error-agent.greeting (next to the field)
//   campaign detail    #campaign-state [data-testid=state-badge], #campaign-start, #campaign-pause,
//                      #campaign-resume, #campaign-stop, #campaign-edit, #campaign-delete,
//                      [data-testid=lifecycle-message], [data-testid=campaign-progress]
//   contacts           #contacts-drop (drop zone), #contacts-file (file input),
//                      #import-report [data-testid=import-report], [data-testid=import-accepted],
//                      [data-testid=import-error-row] (data-line), #contacts-table,
//                      [data-testid=contact-row], #contacts-status, #contacts-next
//   campaign calls     #calls-table, [data-testid=call-row], [data-testid=call-link]
//   report             [data-testid=funnel], [data-testid=funnel-step], [data-testid=v2v-histogram],
//                      #export-csv
//   call detail        #call-status, #call-outcome, #call-duration, #call-provider,
//                      #transcript, [data-testid=transcript-turn] (data-seq, data-speaker,
//                      data-interrupted), [data-testid=turn-heard], #latency-chart,
//                      #call-events, #recording-audio (the <audio>), [data-testid=recording-message],
//                      #analysis, #analysis-rerun, [data-testid=analysis-data]
//   live               #live-status (feed state text), #live-calls, [data-testid=live-call-row]
//                      (data-call-id), [data-testid=live-call-status], [data-testid=live-speaker],
//                      [data-testid=live-transcript], [data-testid=live-turn]
//   supervisor         #supervisor-tree, [data-testid=tree-call], #metrics-charts,
//                      [data-testid=chart-live-calls], [data-testid=chart-dial-queue],
//                      [data-testid=chart-latency], [data-testid=chart-errors]
//   dnc                #dnc-form, #dnc-phone, #dnc-reason, #dnc-add, #dnc-table,
//                      [data-testid=dnc-row], [data-testid=dnc-remove]
//   webhooks           #webhook-form, #wh-url, #wh-events-*, #webhook-create,
//                      [data-testid=webhook-secret], #webhooks-table, [data-testid=webhook-row],
//                      [data-testid=webhook-delete], #deliveries-table, [data-testid=delivery-row],
//                      [data-testid=delivery-replay]

import { session } from './api.js';
import { h, mount, notice } from './dom.js';

const views = {
  campaigns: () => import('./views/campaigns.js'),
  campaign: () => import('./views/campaign.js'),
  call: () => import('./views/call.js'),
  live: () => import('./views/live.js'),
  dnc: () => import('./views/dnc.js'),
  webhooks: () => import('./views/webhooks.js'),
  supervisor: () => import('./views/supervisor.js'),
};

/** The route a hash names: {view, fn, params}, or null for an unknown one. */
export function route(hash) {
  const parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  const [a, b, c] = parts;
  if (!a || (a === 'campaigns' && !b)) return { view: 'campaigns', fn: 'list', params: {} };
  if (a === 'campaigns' && b === 'new') return { view: 'campaigns', fn: 'create', params: {} };
  if (a === 'campaigns' && c === 'edit') return { view: 'campaigns', fn: 'edit', params: { id: b } };
  if (a === 'campaigns' && (!c || c === 'calls' || c === 'report')) {
    return { view: 'campaign', fn: c || 'overview', params: { id: b } };
  }
  if (a === 'calls' && b) return { view: 'call', fn: 'show', params: { id: b } };
  if (a === 'live') return { view: 'live', fn: 'show', params: {} };
  if (a === 'dnc') return { view: 'dnc', fn: 'show', params: {} };
  if (a === 'webhooks') return { view: 'webhooks', fn: b ? 'deliveries' : 'list', params: { id: b } };
  if (a === 'supervisor') return { view: 'supervisor', fn: 'show', params: {} };
  return null;
}

const viewEl = () => document.getElementById('view');
let cleanup = null;
let generation = 0;

async function render() {
  const gen = ++generation;
  if (cleanup) {
    try {
      cleanup();
    } catch {
      // a view's cleanup must not block the next one
    }
    cleanup = null;
  }
  const signedIn = Boolean(session.key() || session.admin());
  document.getElementById('sign-in').hidden = signedIn;
  document.getElementById('nav').hidden = !signedIn;
  document.getElementById('sign-out').hidden = !signedIn;
  document.getElementById('nav-supervisor').hidden = !session.admin();
  if (!signedIn) {
    mount(viewEl());
    document.getElementById('sign-in-key').focus();
    return;
  }
  const r = route(location.hash);
  markNav(r);
  if (!r) {
    mount(viewEl(), notice('No such page.', 'error', 'view-error'), h('a', { href: '#/campaigns' }, 'Back to campaigns'));
    return;
  }
  mount(viewEl(), h('p', { class: 'loading', role: 'status' }, 'Loading…'));
  try {
    const mod = await views[r.view]();
    if (gen !== generation) return;
    const container = h('div', { class: `view view-${r.view}` });
    const result = await mod[r.fn](container, r.params);
    if (gen !== generation) {
      if (typeof result === 'function') result();
      return;
    }
    cleanup = typeof result === 'function' ? result : null;
    mount(viewEl(), container);
    const title = container.querySelector('h1');
    if (title) {
      document.title = `${title.textContent} · talky`;
      title.focus({ preventScroll: true });
    }
  } catch (e) {
    if (gen !== generation) return;
    mount(viewEl(), notice(`This page could not be loaded: ${e.message || e}`, 'error', 'view-error'));
  }
}

function markNav(r) {
  for (const a of document.querySelectorAll('#nav a')) {
    const target = route(a.getAttribute('href'));
    const current = r && target && (target.view === r.view || (target.view === 'campaigns' && r.view === 'campaign'));
    if (current) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

/** Re-renders the current route (after a change the view made). */
export function refresh() {
  render();
}

/** Goes to a route; re-renders even when the hash is already that one. */
export function go(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

function start() {
  document.getElementById('sign-in-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const key = document.getElementById('sign-in-key').value;
    const admin = document.getElementById('sign-in-admin').value;
    const error = document.getElementById('sign-in-error');
    if (!key.trim() && !admin.trim()) {
      error.textContent = 'Type your API key.';
      return;
    }
    error.textContent = '';
    session.signIn(key, admin);
    document.getElementById('sign-in-key').value = '';
    document.getElementById('sign-in-admin').value = '';
    if (!key.trim()) go('#/supervisor');
    else render();
  });
  document.getElementById('sign-out').addEventListener('click', () => {
    session.signOut();
    go('#/campaigns');
  });
  // A refused API key signs the tab out; a refused admin token only hides
  // the supervisor view (the operator's key still works).
  window.addEventListener('talky:unauthorized', (ev) => {
    if (ev.detail && ev.detail.admin) return;
    if (!session.key()) return;
    session.signOut();
    render();
    document.getElementById('sign-in-error').textContent =
      'talky refused the API key (revoked or mistyped). Sign in again.';
  });
  window.addEventListener('hashchange', render);
  render();
}

if (typeof document !== 'undefined') start();
