// charts.js: small charts in plain SVG (no library, nothing from the
// network): a sparkline of recent samples, and horizontal bars.
import {s} from './dom.js';

// A time chart of values (numbers or null), newest last, with its label
// and latest value above it.
export function sparkline(values, {label, format = String, width = 220, height = 44} = {}) {
  const known = values.filter((v) => v !== null && v !== undefined && Number.isFinite(v));
  const max = Math.max(...known, 0);
  const min = Math.min(...known, 0);
  const span = max - min || 1;
  const n = Math.max(values.length, 2);
  const x = (i) => (i / (n - 1)) * width;
  const y = (v) => height - 2 - ((v - min) / span) * (height - 4);
  const points = values
    .map((v, i) => (v === null || v === undefined || !Number.isFinite(v) ? null : `${x(i).toFixed(1)},${y(v).toFixed(1)}`))
    .filter(Boolean);
  const last = known.length ? known[known.length - 1] : null;
  const svg = s('svg', {class: 'spark', viewBox: `0 0 ${width} ${height}`, width, height,
                        role: 'img', 'aria-label': `${label}: ${last === null ? 'no data' : format(last)}`},
    s('title', {}, `${label}: ${last === null ? 'no data' : format(last)} (max ${format(max)})`),
    s('line', {x1: 0, y1: height - 1, x2: width, y2: height - 1, class: 'axis'}),
    points.length > 1 ? s('polygon', {class: 'area', points: `${points[0].split(',')[0]},${height - 1} ${points.join(' ')} ${points[points.length - 1].split(',')[0]},${height - 1}`}) : null,
    points.length > 1 ? s('polyline', {class: 'line', points: points.join(' ')}) : null,
    points.length === 1 ? s('circle', {class: 'dot', cx: points[0].split(',')[0], cy: points[0].split(',')[1], r: 2}) : null);
  const chart = document.createElement('figure');
  chart.className = 'chart';
  const caption = document.createElement('figcaption');
  const name = document.createElement('span');
  name.textContent = label;
  const value = document.createElement('b');
  value.textContent = last === null ? '—' : format(last);
  caption.append(name, value);
  chart.append(caption, svg);
  return chart;
}

// Horizontal bars: items [{label, value}], largest first.
export function bars(items, {format = String, width = 640, row = 22} = {}) {
  const max = Math.max(...items.map((i) => i.value), 1);
  const labelWidth = 220;
  const height = items.length * row + 4;
  const svg = s('svg', {class: 'bars', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img'});
  items.forEach((item, i) => {
    const y = i * row + 2;
    const w = Math.max(1, ((width - labelWidth - 90) * item.value) / max);
    svg.append(
      s('text', {x: labelWidth - 8, y: y + row * 0.68, class: 'bar-label', 'text-anchor': 'end'}, item.label),
      s('rect', {x: labelWidth, y: y + 3, width: w.toFixed(1), height: row - 7, class: 'bar', rx: 2}),
      s('text', {x: labelWidth + w + 6, y: y + row * 0.68, class: 'bar-value'}, format(item.value)));
  });
  return svg;
}

// Keeps the last `size` samples of named series.
export class History {
  constructor(size = 90) {
    this.size = size;
    this.series = new Map();
  }
  push(name, value) {
    let list = this.series.get(name);
    if (!list) this.series.set(name, (list = []));
    list.push(value);
    if (list.length > this.size) list.shift();
    return list;
  }
  get(name) {
    return this.series.get(name) || [];
  }
}
