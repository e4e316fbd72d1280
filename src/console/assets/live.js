// The live feed: server push of what the actors are doing, for the live
// and supervisor views.
//
// TRANSPORT
//   GET /api/v1/live with `Authorization: Bearer <token>`, answered as
//   `text/event-stream` (SSE). The live view sends the tenant's API key
//   (its calls only); the supervisor view sends the admin token (every
//   tenant's calls, plus the `tree` event). EventSource
//   cannot send headers and a key in the URL (`?access_token=`) would end
//   up in logs and history, so the page reads the stream with fetch() and
//   parses the SSE frames itself (`SseParser`). Lines starting with `:`
//   are keep-alive comments. When the stream ends or fails the feed
//   reconnects after `retry:` ms (default 3 s), sending `Last-Event-ID`
//   when frames carried an `id:`. A 404 means this server has no live
//   feed: the feed stops and says "live feed unavailable".
//
// MESSAGES: one SSE frame per message, `event: <type>` and `data: <one
// JSON object>`. Times are RFC 3339; ids are the REST API's.
//
//   event: snapshot         sent first on every (re)connection: the calls
//                           live now, each as `call.started` data plus
//                           `turns` so far (`turn.text` data) and
//                           `speaking` (`turn.partial` data, one per side
//                           at most)
//     {"calls": [ ... ]}
//   event: call.started     a call was placed
//     {"call_id", "campaign_id", "campaign_name"?, "phone", "attempt",
//      "provider"?, "status", "started_at"}
//   event: call.status      the call moved on (ringing, answered,
//                           conversation, ...); `speaker` when known
//     {"call_id", "status", "at", "speaker"?: "agent"|"user"|null}
//   event: turn.partial     the turn being spoken, not stored yet: its
//                           whole text so far (the agent's sentences as
//                           they go to speech, the callee's transcript
//                           with the latest interim); each one replaces
//                           the last of that speaker; `started_at` names
//                           the turn
//     {"call_id", "speaker": "agent"|"user", "text", "started_at"}
//   event: turn.text        a turn was stored: its whole text, with what
//                           the callee heard when the agent was cut off;
//                           it ends the partial of its speaker begun at
//                           or before its `started_at`
//     {"call_id", "seq", "speaker": "agent"|"user", "text", "final": true,
//      "started_at", "heard_text"?, "interrupted"?}
//   event: call.ended       the call is over (it leaves the live list)
//     {"call_id", "outcome", "ended_at", "duration_secs"?}
//   event: tree             (admin token only) the actor tree, the same
//                           JSON as GET /api/v1/supervisor/actors: sent on
//                           connecting, then every 2 s
//     {"children": [{name, running, restarts, ...}],
//      "dialer": {live, queued, dialled, crashed, not_placed, draining,
//        "calls": [{key: {tenant, campaign, contact, call, attempt},
//          campaign_name, number (masked: "+44 •••• ••77"), status,
//          age_secs, duration_secs (null until answered), turns,
//          agent_speaking, telephony, provider ("vonage"|"twilio"|null),
//          children: [{kind: "stt"|"llm"|"tts", provider ("deepgram",
//            "groq", "elevenlabs", ...), position (0 = primary),
//            restarts, running}]}]} | null,
//      "campaigns": [{campaign, name, state, live_calls, dialled, ...}],
//      "calls_by_provider": {"<provider>|dialing": <count>}}
//   (The supervisor view reads its charts from GET /metrics.)
//
// Unknown event types are ignored (the server may add some).

import { session } from './api.js';

/** Incremental SSE parser (WHATWG "event stream interpretation"). */
export class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = '';
    this.reset();
    this.lastId = '';
    this.retry = null;
  }

  reset() {
    this.data = [];
    this.type = '';
  }

  /** Feeds decoded text; calls onEvent({type, data, id}) per complete frame. */
  push(text) {
    this.buffer += text;
    let nl;
    while ((nl = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = this.buffer.slice(0, nl);
      const width = this.buffer.startsWith('\r\n', nl) ? 2 : 1;
      // A lone \r at the very end may be the first half of \r\n: wait.
      if (this.buffer[nl] === '\r' && nl + 1 === this.buffer.length) break;
      this.buffer = this.buffer.slice(nl + width);
      this.line(line);
    }
  }

  line(line) {
    if (line === '') {
      if (this.data.length) {
        this.onEvent({ type: this.type || 'message', data: this.data.join('\n'), id: this.lastId });
      }
      this.reset();
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (name === 'data') this.data.push(value);
    else if (name === 'event') this.type = value;
    else if (name === 'id' && !value.includes('\0')) this.lastId = value;
    else if (name === 'retry' && /^\d+$/.test(value)) this.retry = Number(value);
  }
}

/**
 * A connection to the live feed. Handlers: onMessage({type, data}) with
 * data parsed; onState(state, detail) with state one of 'connecting',
 * 'open', 'reconnecting', 'unavailable' (404), 'unauthorized', 'closed'.
 */
export class LiveFeed {
  constructor({ path = '/api/v1/live', admin = false, onMessage, onState } = {}) {
    this.path = path;
    this.admin = admin;
    this.onMessage = onMessage || (() => {});
    this.onState = onState || (() => {});
    this.controller = null;
    this.stopped = false;
    this.parser = null;
  }

  start() {
    this.stopped = false;
    this.connect();
    return this;
  }

  stop() {
    this.stopped = true;
    if (this.controller) this.controller.abort();
    this.onState('closed');
  }

  async connect() {
    if (this.stopped) return;
    this.onState('connecting');
    this.controller = new AbortController();
    const headers = { Accept: 'text/event-stream' };
    const token = this.admin ? session.admin() : session.key();
    if (token) headers.Authorization = `Bearer ${token}`;
    const parser = this.parser || new SseParser(() => {});
    if (parser.lastId) headers['Last-Event-ID'] = parser.lastId;
    let res;
    try {
      res = await fetch(this.path, { headers, signal: this.controller.signal, cache: 'no-store' });
    } catch {
      if (this.stopped) return;
      return this.retryLater(parser, 'network error');
    }
    if (res.status === 404 || res.status === 405) {
      this.onState('unavailable', 'live feed unavailable: this server has no /api/v1/live yet');
      return;
    }
    if (res.status === 401 || res.status === 403) {
      this.onState('unauthorized', 'the live feed refused the key');
      return;
    }
    const type = res.headers.get('content-type') || '';
    if (!res.ok || !res.body || !type.startsWith('text/event-stream')) {
      return this.retryLater(parser, `HTTP ${res.status}`);
    }
    this.onState('open');
    this.parser = new SseParser((ev) => this.dispatch(ev));
    this.parser.lastId = parser.lastId;
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        this.parser.push(value);
      }
    } catch {
      if (this.stopped) return;
    }
    this.retryLater(this.parser, 'stream ended');
  }

  retryLater(parser, why) {
    if (this.stopped) return;
    this.parser = parser;
    const wait = parser.retry ?? 3000;
    this.onState('reconnecting', `${why}; reconnecting in ${Math.round(wait / 1000)} s`);
    setTimeout(() => this.connect(), wait);
  }

  dispatch(ev) {
    let data;
    try {
      data = JSON.parse(ev.data);
    } catch {
      return; // not ours to guess at
    }
    this.onMessage({ type: ev.type, data, id: ev.id });
  }
}

/**
 * The live calls as the feed describes them: apply() each message, then
 * read `calls` (Map call_id -> call) to render. Pure: no DOM, no I/O.
 */
export class LiveModel {
  constructor() {
    this.calls = new Map();
    this.tree = null;
  }

  call(id) {
    let c = this.calls.get(id);
    if (!c) {
      c = { call_id: id, status: 'queued', turns: [], speaking: {}, speaker: null };
      this.calls.set(id, c);
    }
    return c;
  }

  apply({ type, data }) {
    if (!data || typeof data !== 'object') return false;
    switch (type) {
      case 'snapshot':
        this.calls.clear();
        for (const c of Array.isArray(data.calls) ? data.calls : []) {
          if (!c || !c.call_id) continue;
          const call = this.call(c.call_id);
          Object.assign(call, c, { turns: Array.isArray(c.turns) ? c.turns.map((t) => ({ ...t })) : [], speaking: {} });
          for (const p of Array.isArray(c.speaking) ? c.speaking : []) {
            if (p && (p.speaker === 'agent' || p.speaker === 'user')) call.speaking[p.speaker] = { ...p };
          }
          call.speaker = currentSpeaker(call);
        }
        return true;
      case 'call.started':
        if (!data.call_id) return false;
        Object.assign(this.call(data.call_id), data);
        return true;
      case 'call.status': {
        if (!data.call_id) return false;
        const c = this.call(data.call_id);
        c.status = data.status || c.status;
        if ('speaker' in data) c.speaker = data.speaker;
        if (data.status === 'answered' && !c.answered_at) c.answered_at = data.at;
        return true;
      }
      case 'turn.partial': {
        if (!data.call_id || (data.speaker !== 'agent' && data.speaker !== 'user')) return false;
        const c = this.call(data.call_id);
        const now = c.speaking[data.speaker];
        if (now && time(now.started_at) > time(data.started_at)) return false; // stale
        c.speaking[data.speaker] = { speaker: data.speaker, text: String(data.text || ''), started_at: data.started_at };
        c.speaker = currentSpeaker(c);
        return true;
      }
      case 'turn.text': {
        if (!data.call_id || !Number.isFinite(data.seq)) return false;
        const c = this.call(data.call_id);
        const t = { seq: data.seq, speaker: data.speaker, text: String(data.text || ''), final: true, started_at: data.started_at };
        if ('heard_text' in data) t.heard_text = data.heard_text;
        if ('interrupted' in data) t.interrupted = Boolean(data.interrupted);
        const i = c.turns.findIndex((x) => x.seq === data.seq);
        if (i >= 0) c.turns[i] = t;
        else {
          c.turns.push(t);
          c.turns.sort((a, b) => a.seq - b.seq);
        }
        const open = c.speaking[data.speaker];
        if (open && time(open.started_at) <= time(data.started_at)) delete c.speaking[data.speaker];
        c.speaker = currentSpeaker(c);
        return true;
      }
      case 'call.ended':
        if (!data.call_id) return false;
        this.calls.delete(data.call_id);
        return true;
      case 'tree':
        this.tree = data;
        return true;
      default:
        return false;
    }
  }
}

/** A time of the feed as ms since the epoch (-Infinity when absent). */
function time(at) {
  const t = Date.parse(at || '');
  return Number.isFinite(t) ? t : -Infinity;
}

/** The turns being spoken (partials), oldest first. */
export function openTurns(call) {
  return Object.values(call.speaking || {}).sort((a, b) => time(a.started_at) - time(b.started_at));
}

/** Who is speaking now: the speaker of the newest turn still being spoken, else none. */
export function currentSpeaker(call) {
  const open = openTurns(call);
  return open.length ? open[open.length - 1].speaker : null;
}
