// story.js: one order's story (GET /orders/{id}/story): its events as a
// timeline, an arrow from each event to the ones it caused, and the
// handler spans kept when the shop traces; then each event in full.
import {api} from './api.js';
import {fill, fmt, h, jsonBlock, micros, s, statusLine} from './dom.js';

const LABELS = 390; // the left column of the timeline
const WIDTH = 1300;
const ROW = 30;
const SPAN_ROW = 13;

function timeline(events, spans) {
  const byId = new Map(events.map((e) => [e.id, e]));
  const handled = new Map(); // event id → its spans
  for (const span of spans) {
    if (!span.event_id || !byId.has(span.event_id)) continue;
    if (!handled.has(span.event_id)) handled.set(span.event_id, []);
    handled.get(span.event_id).push(span);
  }
  const times = events.map((e) => micros(e.occurred_at));
  for (const span of spans) times.push(micros(span.start), micros(span.end));
  const t0 = Math.min(...times);
  const t1 = Math.max(...times, t0 + 1000);
  const x = (t) => LABELS + ((t - t0) / (t1 - t0)) * (WIDTH - LABELS - 150);
  const rows = [];
  let y = 28;
  for (const e of events) {
    const own = (handled.get(e.id) || []).sort((a, b) => micros(a.start) - micros(b.start));
    const height = ROW + own.length * SPAN_ROW;
    rows.push({e, y, height, spans: own, cx: x(micros(e.occurred_at)), cy: y + 12});
    y += height;
  }
  const at = new Map(rows.map((r) => [r.e.id, r]));
  const svg = s('svg', {class: 'timeline', viewBox: `0 0 ${WIDTH} ${y + 8}`, width: WIDTH, height: y + 8, role: 'img',
                        'aria-label': `Timeline of ${events.length} events`},
    s('defs', {}, s('marker', {id: 'arrow', viewBox: '0 0 8 8', refX: 7, refY: 4, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse'},
      s('path', {d: 'M0,0 L8,4 L0,8 z', class: 'arrow-head'}))));
  // the time axis
  for (let i = 0; i <= 4; i++) {
    const t = t0 + ((t1 - t0) * i) / 4;
    svg.append(s('line', {x1: x(t), y1: 18, x2: x(t), y2: y, class: 'tick'}),
               s('text', {x: x(t), y: 12, class: 'tick-label', 'text-anchor': 'middle'}, `+${fmt.ms((t - t0) / 1000)}`));
  }
  rows.forEach((r, i) => {
    if (i % 2) svg.append(s('rect', {x: 0, y: r.y - 4, width: WIDTH, height: r.height, class: 'stripe'}));
  });
  for (const r of rows) {
    svg.append(
      s('text', {x: 8, y: r.y + 10, class: 'ev-type'}, `#${r.e.position} ${r.e.type}`),
      s('text', {x: 8, y: r.y + 23, class: 'ev-stream'}, r.e.stream));
    r.spans.forEach((span, k) => {
      const sy = r.y + 20 + k * SPAN_ROW;
      const x0 = x(micros(span.start));
      const x1 = Math.max(x(micros(span.end)), x0 + 2);
      const who = span.kind === 'producer' ? 'append → commit' : span.subscription;
      svg.append(
        s('rect', {x: x0, y: sy, width: x1 - x0, height: 8, rx: 2, class: `span ${span.kind}${span.error ? ' failed' : ''}`},
          s('title', {}, `${span.name} (${who}): ${fmt.ms(span.duration_ms)}${span.error ? `, failed: ${span.status_message || ''}` : ''}`)),
        s('text', {x: x1 + 4, y: sy + 8, class: 'span-label'}, `${who} ${fmt.ms(span.duration_ms)}${span.error ? ' ✗' : ''}`));
    });
  }
  // causation: an arrow from each cause to what it caused
  for (const r of rows) {
    const cause = r.e.causation_id && at.get(r.e.causation_id);
    if (!cause) continue;
    const bend = Math.max(24, Math.abs(r.cy - cause.cy) / 3);
    svg.append(s('path', {class: 'cause', 'marker-end': 'url(#arrow)',
      d: `M${cause.cx},${cause.cy} C${cause.cx - bend},${cause.cy} ${r.cx - bend},${r.cy} ${r.cx - 5},${r.cy}`}));
  }
  for (const r of rows) {
    svg.append(s('circle', {cx: r.cx, cy: r.cy, r: 5, class: `dot ${r.e.causation_id ? 'caused' : 'root'}`},
      s('title', {}, `#${r.e.position} ${r.e.type} at ${fmt.time(r.e.occurred_at)}`)));
  }
  return svg;
}

function eventList(events) {
  const byId = new Map(events.map((e) => [e.id, e]));
  return h('ol', {class: 'story-events'}, ...events.map((e) => {
    const cause = e.causation_id ? byId.get(e.causation_id) : null;
    const {data, ...envelope} = e;
    const detail = h('div', {class: 'two', hidden: true},
      h('section', {}, h('h4', {text: 'Envelope'}), jsonBlock(envelope)),
      h('section', {}, h('h4', {text: 'Data'}), jsonBlock(data)));
    return h('li', {},
      h('button', {type: 'button', class: 'summary', on: {click: () => { detail.hidden = !detail.hidden; }}},
        h('span', {class: 'pos', text: `#${e.position}`}), h('span', {class: 'time', text: fmt.clock(e.occurred_at)}),
        h('span', {class: 'type', text: e.type}), h('span', {class: 'stream mono', text: e.stream}),
        h('span', {class: 'muted', text: cause ? `caused by #${cause.position} ${cause.type}` : e.causation_id ? 'caused by an event outside this story' : 'began the work'})),
      detail);
  }));
}

export const story = {
  title: 'Order story',
  mount(root, arg) {
    const status = statusLine();
    const input = h('input', {type: 'text', name: 'order', placeholder: 'order id', size: 40, spellcheck: false, value: arg || ''});
    const out = h('div', {class: 'story'});
    const show = async (id) => {
      out.replaceChildren();
      if (!id) return;
      status.say('Reading the order’s events…');
      try {
        const st = await api(`/orders/${encodeURIComponent(id)}/story`);
        const first = st.events[0];
        const last = st.events[st.events.length - 1];
        const took = first && last ? (micros(last.occurred_at) - micros(first.occurred_at)) / 1000 : 0;
        const roots = st.events.filter((e) => !e.causation_id).length;
        out.append(
          h('div', {class: 'fields summary-fields'},
            h('div', {class: 'field'}, h('span', {class: 'label', text: 'Order'}), h('span', {class: 'value mono', text: st.order_id})),
            h('div', {class: 'field'}, h('span', {class: 'label', text: 'Events'}), h('span', {class: 'value', text: String(st.events.length)})),
            h('div', {class: 'field'}, h('span', {class: 'label', text: 'First → last'}), h('span', {class: 'value', text: fmt.ms(took)})),
            h('div', {class: 'field'}, h('span', {class: 'label', text: 'Began by'}), h('span', {class: 'value', text: `${roots} request${roots === 1 ? '' : 's'}`})),
            h('div', {class: 'field'}, h('span', {class: 'label', text: 'Handler spans'}),
              h('span', {class: 'value', text: st.tracing ? String(st.spans.length) : 'tracing is off (shop serve --trace-file or --otlp-endpoint)'}))),
          h('div', {class: 'legend'},
            h('span', {class: 'key root', text: 'began the work'}), h('span', {class: 'key caused', text: 'caused by the event the arrow comes from'}),
            st.tracing ? h('span', {class: 'key consumer', text: 'handler span'}) : null,
            st.tracing ? h('span', {class: 'key producer', text: 'append, to its durable commit'}) : null),
          h('div', {class: 'scroll'}, timeline(st.events, st.spans)),
          h('h3', {text: 'Events'}), eventList(st.events));
        status.say('');
      } catch (e) {
        status.say(e.status === 404 ? `No order ${id}.` : e.message, 'error');
      }
    };
    root.append(
      h('h2', {text: 'An order’s story'}),
      h('p', {class: 'lead', text: 'Every event of one order in log order: which event caused which, and how long each handler took.'}),
      h('form', {class: 'filters', on: {submit: (e) => {
        e.preventDefault();
        const id = input.value.trim();
        if (`#/story/${encodeURIComponent(id)}` !== window.location.hash) window.location.hash = `#/story/${encodeURIComponent(id)}`;
        else show(id);
      }}}, h('label', {}, 'Order id ', input), h('button', {type: 'submit', class: 'primary', text: 'Show'})),
      status, out);
    show(arg);
    return () => {};
  },
};
