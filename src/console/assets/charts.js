// The console's charts, drawn as SVG by this file (no library). Each
// returns an <svg> with role="img", an aria-label and a <title> saying in
// words what it shows; colours come from style.css classes, sizes from the
// viewBox (the SVG scales to its container's width).

import { s } from './dom.js';

const fmt = (n) => (Number.isFinite(n) ? (Math.abs(n) >= 100 ? Math.round(n) : Math.round(n * 10) / 10) : '–');

function frame(width, height, label, testid) {
  return s('svg', {
    viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': label,
    class: 'chart', preserveAspectRatio: 'xMinYMin meet', 'data-testid': testid,
  }, s('title', null, label));
}

/**
 * Horizontal stacked bars: one row per item, one segment per key.
 * rows: [{label, values: {key: number|null}, total?: number}],
 * segments: [{key, label, className}]. Missing values draw nothing.
 */
export function stackedBars(rows, segments, { unit = 'ms', testid = 'stacked-bars', label } = {}) {
  const rowH = 22, gap = 8, left = 70, right = 70, width = 640;
  const legendH = 24;
  const height = legendH + rows.length * (rowH + gap) + 4;
  const max = Math.max(1, ...rows.map((r) => r.total ?? segments.reduce((a, sg) => a + (r.values[sg.key] || 0), 0)));
  const scale = (width - left - right) / max;
  const svg = frame(width, height, label || `Latency split of ${rows.length} turns, in ${unit}`, testid);
  let lx = left;
  for (const sg of segments) {
    svg.append(s('rect', { x: lx, y: 6, width: 10, height: 10, class: sg.className }));
    svg.append(s('text', { x: lx + 14, y: 15, class: 'chart-legend' }, sg.label));
    lx += 14 + sg.label.length * 6.5 + 14;
  }
  rows.forEach((r, i) => {
    const y = legendH + i * (rowH + gap);
    const g = s('g', { 'data-testid': `${testid}-row` });
    g.append(s('text', { x: left - 6, y: y + rowH * 0.7, 'text-anchor': 'end', class: 'chart-label' }, r.label));
    let x = left;
    for (const sg of segments) {
      const v = r.values[sg.key];
      if (!Number.isFinite(v) || v <= 0) continue;
      const w = Math.max(1, v * scale);
      g.append(s('rect', { x, y, width: w, height: rowH, class: sg.className },
        s('title', null, `${sg.label}: ${fmt(v)} ${unit}`)));
      x += w;
    }
    const total = r.total ?? segments.reduce((a, sg) => a + (r.values[sg.key] || 0), 0);
    g.append(s('text', { x: x + 6, y: y + rowH * 0.7, class: 'chart-value' }, Number.isFinite(total) ? `${fmt(total)} ${unit}` : ''));
    svg.append(g);
  });
  return svg;
}

/** A funnel: steps [{label, value}], each bar as wide as its share of the first. */
export function funnel(steps, { testid = 'funnel' } = {}) {
  const rowH = 30, gap = 8, left = 110, width = 640, right = 110;
  const height = steps.length * (rowH + gap);
  const first = Math.max(1, steps[0] ? steps[0].value : 1);
  const svg = frame(width, height,
    `Outcome funnel: ${steps.map((st) => `${st.label} ${st.value}`).join(', ')}`, testid);
  steps.forEach((st, i) => {
    const y = i * (rowH + gap);
    const w = Math.max(2, ((width - left - right) * st.value) / first);
    const x = left + (width - left - right - w) / 2;
    svg.append(s('text', { x: left - 8, y: y + rowH * 0.65, 'text-anchor': 'end', class: 'chart-label' }, st.label));
    svg.append(s('rect', { x, y, width: w, height: rowH, rx: 3, class: `funnel-step funnel-${i}`, 'data-testid': `${testid}-step` },
      s('title', null, `${st.label}: ${st.value}`)));
    const pct = steps[0] && steps[0].value ? ` (${Math.round((100 * st.value) / steps[0].value)} %)` : '';
    svg.append(s('text', { x: width - right + 8, y: y + rowH * 0.65, class: 'chart-value' }, `${st.value}${pct}`));
  });
  return svg;
}

/**
 * A histogram of values in fixed-width bins (width chosen from the data
 * unless given), with the count on each bar and the bin edges below.
 */
export function histogram(values, { unit = 'ms', binWidth, testid = 'histogram', label } = {}) {
  const vals = values.filter(Number.isFinite);
  label = label || `Histogram of ${vals.length} values, in ${unit}`;
  if (!vals.length) return binChart([], { unit, testid, label });
  const min = Math.min(...vals), max = Math.max(...vals);
  const bw = binWidth || niceStep((max - min) / 12 || 1);
  const start = Math.floor(min / bw) * bw;
  const n = Math.max(1, Math.ceil((max - start + 1e-9) / bw));
  const counts = new Array(n).fill(0);
  for (const v of vals) counts[Math.min(n - 1, Math.floor((v - start) / bw))]++;
  const bins = counts.map((count, i) => {
    const lo = start + i * bw;
    return { count, tick: String(fmt(lo)), title: `${fmt(lo)}–${fmt(lo + bw)} ${unit}` };
  });
  return binChart(bins, { unit, testid, label });
}

/**
 * A histogram from counts already binned, e.g. the summary API's
 * `histogram_ms`: buckets [{le, count}] in order, `le` the inclusive upper
 * bound (null: no bound), counts per bucket (not cumulative). Every bucket
 * gets a bar of the same width whatever its range; the tick under a bar
 * is its upper bound (`> last` for the open one).
 */
export function bucketHistogram(buckets, { unit = 'ms', testid = 'histogram', label } = {}) {
  const total = buckets.reduce((a, b) => a + b.count, 0);
  label = label || `Histogram of ${total} values, in ${unit}`;
  if (!total) return binChart([], { unit, testid, label });
  let prev = null;
  const bins = buckets.map((b) => {
    const tick = b.le === null ? `> ${fmt(prev)}` : `≤ ${fmt(b.le)}`;
    const title = b.le === null ? `above ${fmt(prev)} ${unit}`
      : prev === null ? `up to ${fmt(b.le)} ${unit}` : `${fmt(prev)}–${fmt(b.le)} ${unit}`;
    prev = b.le;
    return { count: b.count, tick, title };
  });
  return binChart(bins, { unit, testid, label, centred: true });
}

/**
 * Bars of bins [{count, tick, title}] over an axis, each tick under its
 * bar's left edge (a bin's lower bound) or, `centred`, its middle; "no
 * data yet" without bins.
 */
function binChart(bins, { unit, testid, label, centred = false }) {
  const width = 640, height = 220, left = 36, bottom = 36, top = 16, right = 10;
  const svg = frame(width, height, label, testid);
  if (!bins.length) {
    svg.append(s('text', { x: width / 2, y: height / 2, 'text-anchor': 'middle', class: 'chart-empty' }, 'no data yet'));
    return svg;
  }
  const n = bins.length;
  const peak = Math.max(1, ...bins.map((b) => b.count));
  const plotW = width - left - right, plotH = height - top - bottom;
  const barW = plotW / n;
  svg.append(s('line', { x1: left, y1: top + plotH, x2: width - right, y2: top + plotH, class: 'chart-axis' }));
  bins.forEach((b, i) => {
    const h = (plotH * b.count) / peak;
    const x = left + i * barW;
    svg.append(s('rect', { x: x + 1, y: top + plotH - h, width: Math.max(1, barW - 2), height: h, class: 'hist-bar', 'data-testid': `${testid}-bar` },
      s('title', null, `${b.title}: ${b.count}`)));
    if (b.count) svg.append(s('text', { x: x + barW / 2, y: top + plotH - h - 3, 'text-anchor': 'middle', class: 'chart-value' }, String(b.count)));
    if (n <= 16 || i % Math.ceil(n / 16) === 0) {
      svg.append(s('text', { x: centred ? x + barW / 2 : x, y: height - bottom + 14, 'text-anchor': 'middle', class: 'chart-tick' }, b.tick));
    }
  });
  svg.append(s('text', { x: width - right, y: height - 4, 'text-anchor': 'end', class: 'chart-tick' }, unit));
  return svg;
}

function niceStep(raw) {
  const pow = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * pow >= raw) return m * pow;
  return 10 * pow;
}

/**
 * A small line chart of one or more series over time:
 * series [{label, className, points: [{t: ms, v: number}]}].
 */
export function lineChart(series, { testid = 'line-chart', label, unit = '' } = {}) {
  const width = 320, height = 120, left = 34, right = 8, top = 8, bottom = 20;
  const pts = series.flatMap((sr) => sr.points);
  const svg = frame(width, height, label || series.map((sr) => sr.label).join(', '), testid);
  if (!pts.length) {
    svg.append(s('text', { x: width / 2, y: height / 2, 'text-anchor': 'middle', class: 'chart-empty' }, 'no data yet'));
    return svg;
  }
  const t0 = Math.min(...pts.map((p) => p.t)), t1 = Math.max(...pts.map((p) => p.t));
  const vmax = Math.max(1, ...pts.map((p) => p.v));
  const x = (t) => left + ((width - left - right) * (t - t0)) / Math.max(1, t1 - t0);
  const y = (v) => top + (height - top - bottom) * (1 - v / vmax);
  svg.append(s('line', { x1: left, y1: y(0), x2: width - right, y2: y(0), class: 'chart-axis' }));
  svg.append(s('text', { x: left - 4, y: top + 8, 'text-anchor': 'end', class: 'chart-tick' }, String(fmt(vmax))));
  svg.append(s('text', { x: left - 4, y: y(0), 'text-anchor': 'end', class: 'chart-tick' }, '0'));
  for (const sr of series) {
    if (!sr.points.length) continue;
    const d = sr.points.map((p, i) => `${i ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ');
    svg.append(s('path', { d, class: ['line', sr.className].join(' ') }, s('title', null, sr.label)));
    const last = sr.points[sr.points.length - 1];
    svg.append(s('circle', { cx: x(last.t), cy: y(last.v), r: 2.5, class: ['dot', sr.className].join(' ') }));
  }
  let lx = left;
  for (const sr of series) {
    const last = sr.points.length ? sr.points[sr.points.length - 1].v : null;
    const text = `${sr.label}${last === null ? '' : `: ${fmt(last)}${unit}`}`;
    svg.append(s('text', { x: lx, y: height - 4, class: ['chart-legend', sr.className].join(' ') }, text));
    lx += text.length * 6 + 12;
  }
  return svg;
}

/** Horizontal bars of labelled counts: items [{label, value, className?}]. */
export function bars(items, { testid = 'bars', label, unit = '' } = {}) {
  const rowH = 18, gap = 6, left = 150, right = 60, width = 420;
  const height = Math.max(rowH, items.length * (rowH + gap));
  const max = Math.max(1, ...items.map((i) => i.value));
  const svg = frame(width, height, label || items.map((i) => `${i.label} ${i.value}`).join(', '), testid);
  if (!items.length) {
    svg.append(s('text', { x: 4, y: 14, class: 'chart-empty' }, 'none'));
    return svg;
  }
  items.forEach((it, i) => {
    const y = i * (rowH + gap);
    const w = ((width - left - right) * it.value) / max;
    svg.append(s('text', { x: left - 6, y: y + rowH * 0.75, 'text-anchor': 'end', class: 'chart-label' }, it.label));
    svg.append(s('rect', { x: left, y, width: Math.max(1, w), height: rowH, class: it.className || 'bar' }));
    svg.append(s('text', { x: left + w + 6, y: y + rowH * 0.75, class: 'chart-value' }, `${fmt(it.value)}${unit}`));
  });
  return svg;
}
