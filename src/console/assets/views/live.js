// Live calls across campaigns: each with its status, duration, who is
// speaking and the transcript growing as it is spoken, fed by the server's
// push (live.js: GET /api/v1/live). Numbers come masked by the server.

import { describe, get } from '../api.js';
import { badge, fmtDuration, h, heading, mount, notice, shortId } from '../dom.js';
import { LiveFeed, LiveModel, openTurns } from '../live.js';

const STATE_TEXT = {
  connecting: 'Connecting to the live feed…',
  open: 'Live: calls appear as they are placed.',
  reconnecting: 'The live feed was interrupted; reconnecting…',
  unavailable: 'live feed unavailable',
  unauthorized: 'The live feed refused the API key.',
  closed: 'Live feed closed.',
};

/** Renders one live call as a row (an <li>), the transcript's last turns included. */
export function renderCall(call, campaignNames = new Map(), now = Date.now()) {
  const started = Date.parse(call.answered_at || call.started_at || '');
  const duration = Number.isFinite(started) ? fmtDuration((now - started) / 1000) : '';
  const speaker = call.speaker === 'agent' ? 'agent speaking' : call.speaker === 'user' ? 'callee speaking' : '';
  const campaign = call.campaign_name || campaignNames.get(call.campaign_id) || shortId(call.campaign_id);
  const turns = [...call.turns.slice(-6), ...openTurns(call).map((t) => ({ ...t, seq: 'open', final: false }))];
  return h('li', { class: 'live-call', testid: 'live-call-row', dataset: { callId: call.call_id } },
    h('div', { class: 'live-head' },
      h('a', { href: `#/calls/${call.call_id}`, class: 'live-number' }, call.number || shortId(call.call_id)),
      h('span', { class: 'muted' }, campaign),
      h('span', { testid: 'live-call-status' }, badge(call.status, 'call')),
      h('span', { class: 'live-duration', testid: 'live-duration' }, duration),
      h('span', { class: ['live-speaker', call.speaker ? `speaking-${call.speaker}` : ''], testid: 'live-speaker', 'aria-live': 'off' }, speaker)),
    h('ol', { class: 'transcript compact', testid: 'live-transcript' },
      turns.map((t) => h('li', { class: ['turn', `turn-${t.speaker}`, t.final ? '' : 'turn-open', t.interrupted ? 'turn-interrupted' : ''], testid: 'live-turn', dataset: { seq: String(t.seq) } },
        h('span', { class: 'speaker' }, t.speaker === 'agent' ? 'Agent' : 'Callee'), ' ',
        t.interrupted && t.heard_text !== undefined ? `${t.heard_text || ''} [cut off]` : t.text))));
}

export async function show(el) {
  const model = new LiveModel();
  const status = h('p', { id: 'live-status', role: 'status', testid: 'live-status' }, STATE_TEXT.connecting);
  const listEl = h('ul', { id: 'live-calls', class: 'live-calls' });
  const empty = notice('No call is live right now.', 'info');
  const names = new Map();
  get('/api/v1/campaigns', { limit: 1000 }).then((p) => {
    for (const c of p.items || []) names.set(c.id, c.name);
    draw();
  }).catch(() => {});

  let pending = false;
  function draw() {
    pending = false;
    const calls = [...model.calls.values()];
    mount(listEl, calls.map((c) => renderCall(c, names)));
    empty.hidden = calls.length > 0;
  }
  // Many frames may arrive at once: draw once per animation frame.
  const schedule = () => { if (!pending) { pending = true; requestAnimationFrame(draw); } };

  const feed = new LiveFeed({
    onMessage: (m) => { if (model.apply(m)) schedule(); },
    onState: (state, detail) => {
      mount(status, STATE_TEXT[state] || state);
      status.dataset.state = state;
      if (state === 'unavailable') {
        mount(status, notice('live feed unavailable', 'error', 'live-unavailable'),
          h('p', { class: 'hint' }, detail || ''),
          h('p', null, 'Calls already placed can be followed from each campaign\'s Calls page.'));
      }
    },
  }).start();
  const ticker = setInterval(schedule, 1000); // durations move on
  mount(el, heading('Live calls', 'page-title'), status, empty, listEl);
  try {
    draw();
  } catch (e) {
    mount(status, notice(describe(e), 'error'));
  }
  return () => {
    clearInterval(ticker);
    feed.stop();
  };
}
