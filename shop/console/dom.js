// dom.js: builds the page from elements, never from HTML text: every text
// (event data is untrusted) goes in as a text node or textContent, so
// nothing a customer typed can become markup or script. Also formats
// numbers, sizes and times for people.

const SVG = 'http://www.w3.org/2000/svg';

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function setProps(el, props) {
  for (const [name, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'on') {
      for (const [type, fn] of Object.entries(value)) el.addEventListener(type, fn);
    } else if (name === 'text') {
      el.textContent = String(value);
    } else if (name === 'class') {
      el.setAttribute('class', value);
    } else if (name in el && !(el instanceof SVGElement)) {
      el[name] = value; // value, checked, disabled, hidden, type, title…
    } else {
      el.setAttribute(name, String(value));
    }
  }
  return el;
}

// h('div', {class: 'x', on: {click: fn}}, 'text', child…)
export function h(tag, props, ...children) {
  return append(setProps(document.createElement(tag), props), children);
}

// Replaces el's children, skipping null, undefined and false as h() does
// (the DOM's own replaceChildren would show them as text).
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

// An SVG element, the same way.
export function s(tag, props, ...children) {
  return append(setProps(document.createElementNS(SVG, tag), props), children);
}

// A JSON value pretty-printed as text in a <pre>.
export function jsonBlock(value, cls = 'json') {
  return h('pre', {class: cls, text: JSON.stringify(value, null, 2)});
}

export function field(label, value, cls) {
  return h('div', {class: 'field'}, h('span', {class: 'label', text: label}),
           h('span', {class: cls ? `value ${cls}` : 'value'}, value ?? '—'));
}

export const fmt = {
  int(n) {
    return n === null || n === undefined ? '—' : Math.round(n).toLocaleString('en-US');
  },
  num(n, digits = 1) {
    if (n === null || n === undefined || Number.isNaN(n)) return '—';
    return n.toLocaleString('en-US', {maximumFractionDigits: digits, minimumFractionDigits: 0});
  },
  ms(n) {
    if (n === null || n === undefined) return '—';
    if (n >= 1000) return `${fmt.num(n / 1000, 2)} s`;
    return `${fmt.num(n, n < 1 ? 3 : n < 10 ? 2 : 1)} ms`;
  },
  // two durations in one unit: "0.38 / 0.85 ms"
  msPair(a, b) {
    if (a === null || b === null || a === undefined || b === undefined) return '—';
    if (Math.max(a, b) >= 1000) return `${fmt.num(a / 1000, 2)} / ${fmt.num(b / 1000, 2)} s`;
    const digits = Math.max(a, b) < 10 ? 2 : 1;
    return `${fmt.num(a, digits)} / ${fmt.num(b, digits)} ms`;
  },
  seconds(n) {
    if (n === null || n === undefined) return '—';
    return n < 1 ? fmt.ms(n * 1000) : `${fmt.num(n, 1)} s`;
  },
  bytes(n) {
    if (n === null || n === undefined) return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return `${fmt.num(n, i ? 1 : 0)} ${units[i]}`;
  },
  percent(x) {
    return x === null || x === undefined ? '—' : `${fmt.num(x * 100, 1)} %`;
  },
  // "2026-12-04T21:41:00.706876Z" → "2026-12-04 21:41:00.706"
  time(iso) {
    if (!iso) return '—';
    return `${iso.slice(0, 10)} ${iso.slice(11, 23)}`;
  },
  clock(iso) {
    return iso ? iso.slice(11, 23) : '—';
  },
  short(id) {
    return id ? `${id.slice(0, 8)}…${id.slice(-4)}` : '—';
  },
};

// Microseconds since the epoch from RFC 3339 text with up to 6 decimals.
export function micros(iso) {
  if (!iso) return null;
  const m = /^(.{19})(?:\.(\d{1,6}))?Z$/.exec(iso);
  if (!m) return Date.parse(iso) * 1000;
  return Date.parse(`${m[1]}Z`) * 1000 + Number((m[2] || '').padEnd(6, '0'));
}

// A status line for a page: say(text), say(text, 'error').
export function statusLine() {
  const el = h('p', {class: 'status', role: 'status'});
  el.say = (text, kind = '') => {
    el.textContent = text;
    el.className = `status ${kind}`;
  };
  return el;
}
