// One call: status, outcome, duration, provider; the transcript (what the
// agent generated beside what the callee heard, for a barged-in turn);
// each agent turn's latency split as bars; the provider events; the
// recording in an <audio> element; the post-call analysis; the webhook
// deliveries of the call's events.

import { ApiError, blob, describe, get, post } from '../api.js';
import { badge, fmtDuration, fmtTime, h, heading, mount, notice, shortId, table } from '../dom.js';
import { stackedBars } from '../charts.js';

const STAGES = [
  { key: 'stt_ms', label: 'STT', className: 'seg-stt' },
  { key: 'llm_first_token_ms', label: 'LLM first token', className: 'seg-llm' },
  { key: 'tts_first_audio_ms', label: 'TTS first audio', className: 'seg-tts' },
  { key: 'first_frame_ms', label: 'first frame', className: 'seg-frame' },
];

export async function show(el, { id }) {
  let call;
  try {
    call = await get(`/api/v1/calls/${id}`);
  } catch (e) {
    mount(el, heading('Call', 'page-title'), notice(describe(e), 'error', 'view-error'));
    return;
  }
  const audioBox = h('div', { id: 'recording' });
  const analysisBox = h('section', { id: 'analysis', 'aria-labelledby': 'analysis-title' });
  const deliveriesBox = h('section', { id: 'call-deliveries', 'aria-labelledby': 'deliveries-title' },
    h('h2', { id: 'deliveries-title' }, 'Webhook deliveries'), h('p', { class: 'muted' }, 'Reading…'));
  mount(el,
    h('p', null, h('a', { href: `#/campaigns/${call.campaign_id}/calls` }, '← Calls of the campaign')),
    heading(`Call ${shortId(call.id)}`, 'page-title'),
    facts(call),
    h('section', { 'aria-labelledby': 'recording-title' }, h('h2', { id: 'recording-title' }, 'Recording'), audioBox),
    transcript(call.turns),
    latency(call.turns),
    analysisBox,
    deliveriesBox,
    events(call.events));
  renderAnalysis(analysisBox, call);
  deliveries(deliveriesBox, call.id);
  const release = await recording(audioBox, call.id);
  return release;
}

function facts(c) {
  const item = (label, id, value) => [h('dt', null, label), h('dd', { id }, value)];
  return h('dl', { class: 'facts' },
    item('Status', 'call-status', badge(c.status, 'call')),
    item('Outcome', 'call-outcome', c.outcome ? badge(c.outcome, 'outcome') : '–'),
    item('Duration', 'call-duration', c.duration_secs === null || c.duration_secs === undefined ? '–' : fmtDuration(c.duration_secs)),
    item('Provider', 'call-provider', c.provider + (c.provider_call_id ? ` (${c.provider_call_id})` : '')),
    item('Number', 'call-phone', c.phone),
    item('Attempt', 'call-attempt', String(c.attempt)),
    item('Dialled', 'call-dialed', fmtTime(c.dialed_at) || '–'),
    item('Answered', 'call-answered', fmtTime(c.answered_at) || '–'),
    item('Ended', 'call-ended', fmtTime(c.ended_at) || '–'),
    c.hangup_reason ? item('Hang-up reason', 'call-hangup', c.hangup_reason) : null);
}

function transcript(turns) {
  const list = h('ol', { id: 'transcript', class: 'transcript' });
  for (const t of turns) {
    const cut = t.interrupted && t.heard_text !== null && t.heard_text !== undefined && t.heard_text !== t.text;
    list.append(h('li', {
      class: ['turn', `turn-${t.speaker}`, t.interrupted ? 'turn-interrupted' : ''],
      testid: 'transcript-turn',
      dataset: { seq: String(t.seq), speaker: t.speaker, interrupted: String(Boolean(t.interrupted)) },
    },
    h('div', { class: 'turn-head' }, h('span', { class: 'speaker' }, t.speaker === 'agent' ? 'Agent' : 'Callee'),
      h('time', { datetime: t.started_at }, fmtTime(t.started_at)),
      t.interrupted ? h('span', { class: 'badge outcome-interrupted' }, 'interrupted') : null),
    cut
      ? [h('p', { class: 'heard', testid: 'turn-heard' }, h('span', { class: 'label' }, 'Heard: '), t.heard_text || '(nothing)'),
        h('p', { class: 'generated', testid: 'turn-generated' }, h('span', { class: 'label' }, 'Generated: '), t.text)]
      : h('p', { class: 'text', testid: 'turn-text' }, t.text)));
  }
  return h('section', { 'aria-labelledby': 'transcript-title' }, h('h2', { id: 'transcript-title' }, 'Transcript'),
    turns.length ? list : notice('No turns: the call had no conversation.', 'info'));
}

function latency(turns) {
  const rows = turns.filter((t) => t.speaker === 'agent' && t.latency && STAGES.some((s) => Number.isFinite(t.latency[s.key])))
    .map((t) => ({
      label: `turn ${t.seq}`,
      values: Object.fromEntries(STAGES.map((s) => [s.key, t.latency[s.key]])),
      total: Number.isFinite(t.latency.voice_to_voice_ms) ? t.latency.voice_to_voice_ms : undefined,
    }));
  return h('section', { 'aria-labelledby': 'latency-title' }, h('h2', { id: 'latency-title' }, 'Latency per agent turn'),
    rows.length
      ? [h('div', { id: 'latency-chart', class: 'chart-box' }, stackedBars(rows, STAGES, { unit: 'ms', testid: 'latency-bars', label: `Latency split of ${rows.length} agent turns; the figure at the end is voice-to-voice, in ms` })),
        h('p', { class: 'hint' }, 'End of the callee\'s speech → STT final → LLM first token → first TTS audio → first frame sent; the number is voice-to-voice.')]
      : notice('No agent turn with a measured latency.', 'info'));
}

/** The deliveries of the call's events to the tenant's webhooks. */
async function deliveries(box, id) {
  const title = h('h2', { id: 'deliveries-title' }, 'Webhook deliveries');
  let page;
  try {
    page = await get(`/api/v1/calls/${id}/deliveries`);
  } catch (e) {
    mount(box, title, notice(describe(e), 'error'));
    return;
  }
  const items = page.items || [];
  mount(box, title, items.length
    ? table([
      { label: 'Event', cell: (d) => d.type, rowAttrs: (d) => ({ testid: 'delivery-row', dataset: { state: d.state } }) },
      { label: 'Webhook', cell: (d) => h('a', { href: '#/webhooks' }, shortId(d.endpoint_id)) },
      { label: 'State', cell: (d) => badge(d.state, 'delivery') },
      { label: 'Attempts', cell: (d) => String(d.attempts) },
      { label: 'Last status', cell: (d) => (d.last_status === null || d.last_status === undefined ? '–' : String(d.last_status)) },
      { label: 'webhook-id', cell: (d) => h('code', null, d.webhook_id) },
    ], items, { id: 'deliveries-table' })
    : notice('No webhook deliveries for this call (no webhook subscribed to its events).', 'info'));
}

function events(list) {
  if (!list || !list.length) return h('section', null, h('h2', null, 'Provider events'), notice('No provider events.', 'info'));
  return h('section', { 'aria-labelledby': 'events-title' }, h('h2', { id: 'events-title' }, 'Provider events'),
    table([
      { label: 'Status', cell: (e) => e.status, rowAttrs: () => ({ testid: 'event-row' }) },
      { label: 'Provider time', cell: (e) => fmtTime(e.provider_timestamp) },
      { label: 'Received', cell: (e) => fmtTime(e.received_at) },
      { label: 'Payload', cell: (e) => h('details', null, h('summary', null, 'show'), h('pre', null, JSON.stringify(e.payload, null, 2))) },
    ], list, { id: 'call-events' }));
}

/**
 * Fetches the recording with the key into a Blob (an <audio> element
 * cannot send the Authorization header) and plays it from an object URL.
 * 404: no recording; 409: not ready yet (offers to try again). Returns
 * the function that frees the object URL when the view is left.
 */
async function recording(box, id) {
  let url = null;
  const load = async () => {
    mount(box, h('p', { role: 'status', testid: 'recording-message' }, 'Loading the recording…'));
    try {
      const data = await blob(`/api/v1/calls/${id}/recording`, { accept: 'audio/ogg' });
      if (url) URL.revokeObjectURL(url);
      url = URL.createObjectURL(data);
      const audio = h('audio', { id: 'recording-audio', controls: true, preload: 'metadata', testid: 'recording-audio', src: url });
      mount(box, audio, h('p', { class: 'hint' }, 'Stereo: left the callee, right the agent.'));
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        mount(box, h('p', { testid: 'recording-message' }, `No recording: ${e.message}.`));
      } else if (e instanceof ApiError && e.status === 409) {
        const again = h('button', { type: 'button', id: 'recording-retry', class: 'secondary' }, 'Try again');
        again.addEventListener('click', load);
        mount(box, h('p', { testid: 'recording-message' }, 'The recording is not ready yet (the call is live or its audio is being encoded or stored). '), again);
      } else {
        mount(box, notice(`The recording could not be loaded: ${describe(e)}`, 'error', 'recording-message'));
      }
    }
  };
  await load();
  return () => { if (url) URL.revokeObjectURL(url); };
}

function renderAnalysis(box, call) {
  const a = call.analysis;
  const msg = h('p', { role: 'status', testid: 'analysis-message' });
  const rerun = h('button', { type: 'button', id: 'analysis-rerun', class: 'secondary' }, 'Re-run analysis');
  rerun.addEventListener('click', async () => {
    rerun.disabled = true;
    try {
      await post(`/api/v1/calls/${call.id}/analyze`);
      mount(msg, 'Queued: reload the page in a few seconds for the result.');
    } catch (e) {
      mount(msg, e instanceof ApiError && e.status === 409 ? `Not re-run: ${e.message}.` : describe(e));
    } finally {
      rerun.disabled = false;
    }
  });
  const body = [];
  if (!a) {
    body.push(notice('No analysis for this call (no conversation, or its campaign has no analysis settings).', 'info'));
  } else {
    body.push(h('p', null, 'State: ', badge(a.state, 'analysis'), a.provider ? ` (by ${a.provider})` : ''));
    if (a.summary) body.push(h('p', { testid: 'analysis-summary' }, a.summary));
    if (a.success !== null && a.success !== undefined) body.push(h('p', { testid: 'analysis-success' }, 'Success: ', h('strong', null, JSON.stringify(a.success))));
    if (a.structured_data && typeof a.structured_data === 'object') {
      body.push(table([
        { label: 'Field', cell: ([k]) => k },
        { label: 'Value', cell: ([, v]) => (typeof v === 'string' ? v : JSON.stringify(v)) },
      ], Object.entries(a.structured_data), { testid: 'analysis-data' }));
    }
    if (a.error) body.push(notice(`Error: ${a.error}`, 'error', 'analysis-error'));
  }
  mount(box, h('h2', { id: 'analysis-title' }, 'Analysis'), body, rerun, msg);
}
