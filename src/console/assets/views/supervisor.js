// The supervisor's view (admin token): the actor tree (root children with
// restarts, the dialer and its live calls named by campaign and masked
// number with their status, age and talk time, their STT / LLM / TTS
// children with the provider in use by name and restarts, the running
// campaigns by name) and small charts of /metrics (live calls, dial
// queue, turn latency percentiles from the histogram buckets, errors).
// The tree comes from the live feed's `tree` events (live.js: the server
// pushes one every 2 s to the admin token); while the feed is not open it
// is read from GET /api/v1/supervisor/actors every 5 s, as /metrics always
// is. The server masks the numbers: the tree never holds a whole one.

import { describe, get, request, session } from '../api.js';
import { bars, lineChart } from '../charts.js';
import { badge, fmtDuration, h, heading, mount, notice, shortId } from '../dom.js';
import { LiveFeed, LiveModel } from '../live.js';
import * as prom from '../metrics.js';

const POLL_MS = 5000;
const KEEP = 60; // samples per line chart (5 minutes)

/** A call child's line: "STT: deepgram", "(fallback)" past the primary, restarts. */
export function childLine(ch) {
  return [
    `${String(ch.kind || '?').toUpperCase()}: ${ch.provider || 'unknown'}`,
    ch.position > 0 ? ' (fallback)' : '',
    ch.running === false ? ' (not running)' : '',
    ` · restarts ${ch.restarts ?? 0}`,
  ].join('');
}

/** A call's times: its age, and how long it has been talking once answered. */
export function callTimes(call) {
  const parts = [];
  if (Number.isFinite(call.age_secs)) parts.push(`age ${fmtDuration(call.age_secs)}`);
  if (Number.isFinite(call.duration_secs)) parts.push(`talking ${fmtDuration(call.duration_secs)}`);
  return parts.join(' · ');
}

/** The actor tree as nested lists. */
export function renderTree(tree) {
  const root = h('ul', { class: 'tree', id: 'supervisor-tree-list' });
  for (const c of tree.children || []) {
    root.append(h('li', { testid: 'tree-child' },
      h('strong', null, c.name), ' ', badge(c.running ? 'running' : c.gave_up ? 'given_up' : 'stopped', 'actor'),
      ` restarts ${c.restarts}`));
  }
  const d = tree.dialer;
  if (d) {
    const byProvider = Object.entries(tree.calls_by_provider || {}).map(([k, v]) => `${k} ${v}`).join(', ');
    const calls = h('ul', null, (d.calls || []).map((call) => {
      const key = call.key || {};
      const campaign = call.campaign_name || `campaign ${shortId(key.campaign)}`;
      const times = callTimes(call);
      return h('li', { testid: 'tree-call', dataset: { callId: key.call || '' } },
        h('a', { href: `#/calls/${key.call}`, class: 'tree-number' }, call.number || shortId(key.call)),
        ` ${campaign} · attempt ${key.attempt ?? '?'} · `, badge(call.status, 'call'),
        times ? ` · ${times}` : '',
        ` · ${call.provider || 'dialing'}${call.telephony ? ` (${call.telephony})` : ''}`,
        ` · ${call.turns} turns${call.agent_speaking ? ' · agent speaking' : ''}`,
        h('ul', null, (call.children || []).map((ch) => h('li', { testid: 'tree-call-child' }, childLine(ch)))));
    }));
    root.append(h('li', { testid: 'tree-dialer' },
      h('strong', null, 'dialer'), ` live ${d.live} · queued ${d.queued} · dialled ${d.dialled} · crashed ${d.crashed} · not placed ${d.not_placed}`,
      d.draining ? ' · draining' : '', byProvider ? ` · by provider: ${byProvider}` : '', calls));
  }
  if (!root.children.length && !(tree.campaigns || []).length) {
    root.append(h('li', { class: 'muted' }, 'No actor is running on this node (its dialer is off, or nothing was started yet).'));
  }
  for (const c of tree.campaigns || []) {
    root.append(h('li', { testid: 'tree-campaign' },
      h('strong', null, c.name || `campaign ${shortId(c.campaign)}`), ' ', c.state ? badge(c.state) : '',
      ` live ${c.live_calls} · dialled ${c.dialled} · completed ${c.completed} · failed ${c.failed} · dnc ${c.dnc} · retries ${c.retries}`));
  }
  return root;
}

/** The figures of one /metrics reading. */
export function figures(text) {
  const samples = prom.parse(text);
  const errors = {};
  for (const [provider, n] of Object.entries(prom.byLabel(samples, 'talky_provider_errors_total', 'provider'))) errors[`provider ${provider}`] = n;
  const crashes = prom.total(samples, 'talky_call_crashes_total');
  if (crashes) errors['call crashes'] = crashes;
  const restarts = prom.total(samples, 'talky_actor_restarts_total');
  if (restarts) errors['actor restarts'] = restarts;
  const childFailures = prom.total(samples, 'talky_call_child_failures_total');
  if (childFailures) errors['call child failures'] = childFailures;
  const http5xx = samples.filter((x) => x.name === 'talky_http_requests_total' && /^5/.test(x.labels.status || '')).reduce((a, x) => a + x.value, 0);
  if (http5xx) errors['HTTP 5xx'] = http5xx;
  const breakers = Object.entries(prom.byLabel(samples, 'talky_provider_breaker_open', 'provider')).filter(([, v]) => v > 0).map(([k]) => k);
  return {
    live: prom.total(samples, 'talky_calls_active') ?? 0,
    queue: prom.total(samples, 'talky_dial_queue') ?? 0,
    latency: prom.turnLatency(samples),
    errors,
    breakers,
  };
}

export async function show(el) {
  if (!session.admin()) {
    mount(el, heading('Supervisor', 'page-title'), notice('Sign in with the admin token to see the actor tree and the metrics.', 'info'));
    return;
  }
  const treeBox = h('div', { id: 'supervisor-tree', 'aria-live': 'off' }, h('p', { class: 'muted' }, 'Reading the actor tree…'));
  const charts = {
    live: h('div', { class: 'chart-box', testid: 'chart-live-calls' }),
    queue: h('div', { class: 'chart-box', testid: 'chart-dial-queue' }),
    latency: h('div', { class: 'chart-box', testid: 'chart-latency' }),
    errors: h('div', { class: 'chart-box', testid: 'chart-errors' }),
  };
  const metricsMsg = h('p', { role: 'status' });
  const feedState = h('p', { class: 'muted', id: 'supervisor-feed' });
  const history = [];

  function drawMetrics(f, t) {
    history.push({ t, live: f.live, queue: f.queue });
    while (history.length > KEEP) history.shift();
    mount(charts.live, h('h3', null, 'Live calls'), lineChart([{ label: 'live calls', className: 'series-a', points: history.map((x) => ({ t: x.t, v: x.live })) }], { testid: 'chart-live-calls-svg' }));
    mount(charts.queue, h('h3', null, 'Dial queue'), lineChart([{ label: 'queued dials', className: 'series-b', points: history.map((x) => ({ t: x.t, v: x.queue })) }], { testid: 'chart-dial-queue-svg' }));
    const stages = Object.entries(f.latency).filter(([, v]) => v.count > 0);
    mount(charts.latency, h('h3', null, 'Turn latency p50 / p95 / p99 (ms, since start)'),
      stages.length
        ? bars(stages.flatMap(([stage, v]) => [
          { label: `${stage} p50`, value: v.p50 ?? 0, className: 'bar p50' },
          { label: `${stage} p95`, value: v.p95 ?? 0, className: 'bar p95' },
          { label: `${stage} p99`, value: v.p99 ?? 0, className: 'bar p99' },
        ]), { unit: ' ms', testid: 'chart-latency-svg' })
        : h('p', { class: 'muted' }, 'No turn measured yet.'));
    mount(charts.errors, h('h3', null, 'Errors (since start)'),
      bars(Object.entries(f.errors).map(([label, value]) => ({ label, value, className: 'bar error' })), { testid: 'chart-errors-svg' }),
      f.breakers.length ? notice(`Circuit open: ${f.breakers.join(', ')}`, 'error') : null);
  }

  let pushed = false;
  async function poll() {
    if (!pushed) {
      try {
        const tree = await get('/api/v1/supervisor/actors', {}, { admin: true });
        mount(treeBox, renderTree(tree));
      } catch (e) {
        mount(treeBox, notice(`Actor tree: ${describe(e)}`, 'error'));
      }
    }
    try {
      const text = await request('GET', '/metrics', { admin: true, accept: 'text/plain' });
      drawMetrics(figures(text), Date.now());
      mount(metricsMsg);
    } catch (e) {
      mount(metricsMsg, notice(`Metrics: ${describe(e)}`, 'error'));
    }
  }

  const model = new LiveModel();
  const feed = new LiveFeed({
    admin: true,
    onMessage: (m) => {
      if (!model.apply(m)) return;
      if (m.type === 'tree') {
        pushed = true;
        mount(treeBox, renderTree(model.tree));
      }
    },
    onState: (state) => {
      mount(feedState, state === 'open' ? 'Live feed connected.' : state === 'unavailable' ? 'live feed unavailable: reading every 5 s.' : '');
      if (state !== 'open') pushed = false;
    },
  }).start();

  mount(el, heading('Supervisor', 'page-title'), feedState,
    h('section', { 'aria-labelledby': 'metrics-title' }, h('h2', { id: 'metrics-title' }, 'Metrics'), metricsMsg,
      h('div', { id: 'metrics-charts', class: 'chart-grid' }, Object.values(charts))),
    h('section', { 'aria-labelledby': 'tree-title' }, h('h2', { id: 'tree-title' }, 'Actor tree'), treeBox));
  await poll();
  const timer = setInterval(poll, POLL_MS);
  return () => {
    clearInterval(timer);
    feed.stop();
  };
}
