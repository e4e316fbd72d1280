// The REST API as the console calls it. Credentials live in the tab's
// sessionStorage only (gone when the tab closes; never in localStorage or
// a cookie), and every request carries them as `Authorization: Bearer`.
// Errors come back as ApiError, holding the API's problem+json document
// (RFC 9457 / 7807: type, title, status, detail, and `errors`
// [{field, message}] for a 422; `invalid_params` [{name, reason}] is read
// too).

const KEY = 'talky.apiKey';
const ADMIN = 'talky.adminToken';

export const session = {
  key: () => sessionStorage.getItem(KEY) || '',
  admin: () => sessionStorage.getItem(ADMIN) || '',
  signIn(key, admin) {
    sessionStorage.setItem(KEY, key.trim());
    if (admin && admin.trim()) sessionStorage.setItem(ADMIN, admin.trim());
    else sessionStorage.removeItem(ADMIN);
  },
  signOut() {
    sessionStorage.removeItem(KEY);
    sessionStorage.removeItem(ADMIN);
  },
};

/** An error answer of the API (or no answer: status 0). */
export class ApiError extends Error {
  constructor(status, problem, fallback) {
    const detail = (problem && (problem.detail || problem.title)) || fallback || `HTTP ${status}`;
    super(detail);
    this.status = status;
    this.problem = problem || null;
  }

  /** Field errors as [{field, message}], whichever member carried them. */
  get fieldErrors() {
    const p = this.problem || {};
    const out = [];
    for (const e of Array.isArray(p.errors) ? p.errors : []) {
      if (e && e.field) out.push({ field: String(e.field), message: String(e.message || 'invalid') });
    }
    for (const e of Array.isArray(p.invalid_params) ? p.invalid_params : []) {
      if (e && e.name) out.push({ field: String(e.name), message: String(e.reason || 'invalid') });
    }
    return out;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function withQuery(path, query) {
  if (!query) return path;
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const qs = q.toString();
  return qs ? `${path}${path.includes('?') ? '&' : '?'}${qs}` : path;
}

async function problemOf(res) {
  const type = res.headers.get('content-type') || '';
  try {
    if (type.includes('json')) return await res.json();
    const text = await res.text();
    return text ? { detail: text.slice(0, 500) } : null;
  } catch {
    return null;
  }
}

/** Signs the tab out and returns to the sign-in form when the key is refused. */
function unauthorized(admin) {
  window.dispatchEvent(new CustomEvent('talky:unauthorized', { detail: { admin } }));
}

/**
 * One request. `body` is sent as JSON unless `contentType` says otherwise
 * (a CSV File or string for uploads). `admin` uses the admin token.
 * A 429 is retried after its Retry-After (twice at most). Returns the
 * parsed JSON (null for 204), or the Response itself with `raw`.
 */
export async function request(method, path, opts = {}) {
  const token = opts.admin ? session.admin() : session.key();
  const headers = { Accept: opts.accept || 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  let body;
  if (opts.body !== undefined) {
    if (opts.contentType) {
      headers['Content-Type'] = opts.contentType;
      body = opts.body;
    } else {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(opts.body);
    }
  }
  const url = withQuery(path, opts.query);
  for (let attempt = 0; ; attempt++) {
    let res;
    try {
      res = await fetch(url, { method, headers, body, signal: opts.signal, cache: 'no-store' });
    } catch (e) {
      if (e && e.name === 'AbortError') throw e;
      throw new ApiError(0, null, 'talky did not answer (network error)');
    }
    if (res.status === 429 && attempt < 2) {
      const wait = Math.min(10, Number(res.headers.get('retry-after')) || 1);
      await sleep(wait * 1000);
      continue;
    }
    if (!res.ok) {
      const problem = await problemOf(res);
      if (res.status === 401) unauthorized(Boolean(opts.admin));
      throw new ApiError(res.status, problem);
    }
    if (opts.raw) return res;
    if (res.status === 204) return null;
    const type = res.headers.get('content-type') || '';
    return type.includes('json') ? res.json() : res.text();
  }
}

export const get = (path, query, opts = {}) => request('GET', path, { ...opts, query });
export const post = (path, body, opts = {}) => request('POST', path, { ...opts, body });
export const patch = (path, body, opts = {}) => request('PATCH', path, { ...opts, body });
export const del = (path, opts = {}) => request('DELETE', path, opts);

/**
 * A binary resource fetched with the key (an `<audio>` or a link cannot
 * send an Authorization header), as a Blob.
 */
export async function blob(path, opts = {}) {
  const res = await request('GET', path, { ...opts, raw: true, accept: opts.accept || '*/*' });
  return res.blob();
}

/** Fetches with the key and hands the result to the browser as a download. */
export async function download(path, filename, opts = {}) {
  const data = await blob(path, opts);
  const url = URL.createObjectURL(data);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** Operator-facing text for an error, with the status when it helps. */
export function describe(err) {
  if (!(err instanceof ApiError)) return String((err && err.message) || err);
  if (err.status === 0) return err.message;
  return `${err.message} (HTTP ${err.status})`;
}
