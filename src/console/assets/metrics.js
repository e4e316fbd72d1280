// Prometheus text exposition (`GET /metrics`) read in the browser: the
// samples, and percentiles estimated from histogram buckets the way
// Prometheus' histogram_quantile() does (linear within a bucket).

/** Parses the text into [{name, labels: {k: v}, value}] (HELP/TYPE lines skipped). */
export function parse(text) {
  const out = [];
  for (const raw of String(text).split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let l;
      while ((l = re.exec(m[3]))) labels[l[1]] = l[2].replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    }
    const value = m[4] === '+Inf' ? Infinity : m[4] === '-Inf' ? -Infinity : Number(m[4]);
    out.push({ name: m[1], labels, value });
  }
  return out;
}

/** The sum of every sample of a series (all label sets), or null when absent. */
export function total(samples, name) {
  const found = samples.filter((x) => x.name === name);
  return found.length ? found.reduce((a, x) => a + x.value, 0) : null;
}

/** The samples of a series grouped by one label: {labelValue: sum}. */
export function byLabel(samples, name, label) {
  const out = {};
  for (const x of samples) {
    if (x.name !== name) continue;
    const k = x.labels[label] ?? '';
    out[k] = (out[k] || 0) + x.value;
  }
  return out;
}

/**
 * The q-quantile (0..1) of a histogram from its cumulative buckets
 * [{le, count}], or null without observations. Beyond the last finite
 * bound the answer is that bound (as Prometheus answers).
 */
export function quantile(q, buckets) {
  const bs = [...buckets].sort((a, b) => a.le - b.le);
  if (!bs.length) return null;
  const count = bs[bs.length - 1].count;
  if (!count) return null;
  const rank = q * count;
  let prevLe = 0, prevCount = 0;
  for (const b of bs) {
    if (b.count >= rank) {
      if (b.le === Infinity) return prevLe;
      const inBucket = b.count - prevCount;
      return inBucket ? prevLe + ((b.le - prevLe) * (rank - prevCount)) / inBucket : b.le;
    }
    prevLe = b.le;
    prevCount = b.count;
  }
  return prevLe;
}

/**
 * Percentiles per value of `label` of the histogram `base` (its
 * `base_bucket` series), in the histogram's unit times `scale` (1000 for
 * a `_seconds` histogram shown in ms): {stage: {p50, p95, p99, count}}.
 */
export function percentiles(samples, base, label, scale = 1) {
  const groups = {};
  for (const x of samples) {
    if (x.name !== `${base}_bucket`) continue;
    const k = x.labels[label] ?? '';
    const le = x.labels.le === '+Inf' ? Infinity : Number(x.labels.le);
    (groups[k] ||= []).push({ le, count: x.value });
  }
  const out = {};
  for (const [k, buckets] of Object.entries(groups)) {
    const q = (p) => {
      const v = quantile(p, buckets);
      return v === null ? null : v * scale;
    };
    const count = Math.max(0, ...buckets.map((b) => b.count));
    out[k] = { p50: q(0.5), p95: q(0.95), p99: q(0.99), count };
  }
  return out;
}

/** The turn latency percentiles per stage (`talky_turn_latency_seconds`), in ms. */
export function turnLatency(samples) {
  return percentiles(samples, 'talky_turn_latency_seconds', 'stage', 1000);
}
