// feed.js: the live event feed (GET /events/stream), newest first,
// filtered by type and stream on the server and by correlation id here;
// a row opens to the event's envelope and data.
import {api, q, serverEvents} from './api.js';
import {fill, fmt, h, jsonBlock, statusLine} from './dom.js';

const KEPT = 500; // rows kept; older ones are dropped
const BACKLOG = 100; // positions shown from before the page opened

function matches(envelope, correlation) {
  return !correlation || envelope.correlation_id === correlation || envelope.id === correlation;
}

function orderId(envelope) {
  const m = /^order-(.+)$/.exec(envelope.stream || '');
  return m ? m[1] : envelope.data?.order_id || null;
}

export const feed = {
  title: 'Live feed',
  mount(root) {
    const status = statusLine();
    const type = h('input', {type: 'text', placeholder: 'OrderCreated', name: 'type', spellcheck: false});
    const stream = h('input', {type: 'text', placeholder: 'order-…', name: 'stream', spellcheck: false});
    const correlation = h('input', {type: 'text', placeholder: 'correlation id', name: 'correlation', spellcheck: false});
    const pause = h('button', {type: 'button', text: 'Pause'});
    const count = h('span', {class: 'muted'});
    const list = h('ol', {class: 'feed', 'aria-live': 'polite'});
    const rows = []; // {envelope, row}
    let paused = false;
    let held = [];
    let controller = null;

    const refilter = () => {
      let shown = 0;
      for (const r of rows) {
        r.row.hidden = !matches(r.envelope, correlation.value.trim());
        if (!r.row.hidden) shown++;
      }
      count.textContent = `${shown} of ${rows.length} events shown`;
    };
    const filterBy = (value) => {
      correlation.value = value;
      refilter();
    };

    const rowFor = (message) => {
      if (message.event === 'unreadable') {
        const why = JSON.parse(message.data);
        return {envelope: {position: why.position, type: why.type}, row: h('li', {class: 'event unreadable'},
          h('span', {class: 'pos', text: `#${why.position}`}), h('span', {class: 'type', text: why.type}),
          h('span', {class: 'muted', text: `unreadable: ${why.error}`}))};
      }
      const env = JSON.parse(message.data);
      const detail = h('div', {class: 'detail', hidden: true});
      const summary = h('button', {type: 'button', class: 'summary', 'aria-expanded': 'false'},
        h('span', {class: 'pos', text: `#${env.position}`}),
        h('span', {class: 'time', text: fmt.clock(env.occurred_at)}),
        h('span', {class: 'type', text: env.type}),
        h('span', {class: 'stream mono', text: env.stream}),
        h('span', {class: 'corr mono', title: env.correlation_id || '', text: env.correlation_id ? `corr ${fmt.short(env.correlation_id)}` : 'begins its work'}));
      summary.addEventListener('click', () => {
        if (detail.hidden && !detail.firstChild) {
          const {data, ...envelope} = env;
          const order = orderId(env);
          detail.append(
            h('div', {class: 'actions'},
              h('button', {type: 'button', class: 'link', text: 'Show this work only',
                           on: {click: () => filterBy(env.correlation_id || env.id)}}),
              order ? h('a', {href: `#/story/${encodeURIComponent(order)}`, text: 'Open the order’s story'}) : null),
            h('div', {class: 'two'},
              h('section', {}, h('h4', {text: 'Envelope'}), jsonBlock(envelope)),
              h('section', {}, h('h4', {text: 'Data'}), jsonBlock(data))));
        }
        detail.hidden = !detail.hidden;
        summary.setAttribute('aria-expanded', String(!detail.hidden));
      });
      return {envelope: env, row: h('li', {class: 'event'}, summary, detail)};
    };

    const show = (message) => {
      const r = rowFor(message);
      r.row.hidden = !matches(r.envelope, correlation.value.trim());
      rows.unshift(r);
      list.prepend(r.row);
      while (rows.length > KEPT) rows.pop().row.remove();
    };

    // Follows the feed from position `after`, reconnecting after a drop
    // from the last position received (no gap, no repeat).
    const follow = async (mine, after) => {
      while (!mine.signal.aborted) {
        const path = `/events/stream${q({after, type: type.value.trim(), stream: stream.value.trim()})}`;
        try {
          status.say('Following the log live.', 'ok');
          for await (const message of serverEvents(path, mine.signal)) {
            after = Number(message.id) || after;
            if (paused) {
              held.push(message);
              if (held.length > KEPT) held.shift(); // what would have scrolled away
            } else {
              show(message);
            }
            refilter();
          }
          if (mine.signal.aborted) return;
          status.say('The feed ended. Reconnecting…', 'error');
        } catch (e) {
          if (mine.signal.aborted) return;
          status.say(`The feed stopped: ${e.message}. Reconnecting…`, 'error');
        }
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    };

    // A fresh view: the last BACKLOG positions, then live.
    const connect = async () => {
      controller?.abort();
      const mine = (controller = new AbortController());
      list.replaceChildren();
      rows.length = 0;
      held = [];
      refilter();
      try {
        const health = await api('/health', {signal: mine.signal});
        follow(mine, Math.max(0, (health.head || 0) - BACKLOG));
      } catch (e) {
        if (!mine.signal.aborted) status.say(e.message, 'error');
      }
    };

    let debounce = null;
    const restart = () => {
      clearTimeout(debounce);
      debounce = setTimeout(connect, 400);
    };
    type.addEventListener('input', restart);
    stream.addEventListener('input', restart);
    correlation.addEventListener('input', refilter);
    pause.addEventListener('click', () => {
      paused = !paused;
      pause.textContent = paused ? `Resume` : 'Pause';
      if (!paused) {
        held.forEach(show);
        held = [];
        refilter();
      }
      status.say(paused ? 'Paused: new events are held until you resume.' : 'Following the log live.', paused ? '' : 'ok');
    });

    root.append(
      h('h2', {text: 'Live feed'}),
      h('p', {class: 'lead', text: 'Events as they are committed, newest first. Filter by type or stream (asked of the shop) or by correlation id (the work one request or event set off). Click an event for its envelope and data.'}),
      h('form', {class: 'filters', on: {submit: (e) => e.preventDefault()}},
        h('label', {}, 'Type ', type), h('label', {}, 'Stream ', stream),
        h('label', {}, 'Correlation id ', correlation), pause, count),
      status, list);
    connect();
    return () => {
      clearTimeout(debounce);
      controller?.abort();
    };
  },
};
