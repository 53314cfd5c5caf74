// subscriptions.js: every subscription and saga (GET /subscriptions, every
// 2 s): position, lag in events and seconds, handler latency, retries,
// failures and dead letters, as numbers and as charts of the samples taken
// since the page opened.
import {api, every} from './api.js';
import {fill, fmt, h, statusLine} from './dom.js';
import {History, sparkline} from './charts.js';

const INTERVAL_MS = 2000;
const history = new History(90); // kept across visits to the page: 3 minutes

function health(sub) {
  if (sub.dead_letters > 0) return ['stalled', `${fmt.int(sub.dead_letters)} dead letters`];
  if (!sub.live) return ['away', 'not running in this shop'];
  if (sub.lag_events > 0) return ['behind', `${fmt.int(sub.lag_events)} events behind`];
  return ['ok', 'caught up'];
}

// Samples for the charts; latency is the mean over the last interval.
function sample(sub, previous) {
  const name = sub.name;
  const lat = sub.latency;
  let interval = null;
  let rate = null;
  if (lat && previous?.latency && lat.count > previous.latency.count) {
    interval = ((lat.sum_seconds - previous.latency.sum_seconds) / (lat.count - previous.latency.count)) * 1000;
  } else if (lat && previous?.latency) {
    interval = 0;
  }
  if (lat && previous?.latency) rate = (lat.count - previous.latency.count) / (INTERVAL_MS / 1000);
  history.push(`${name}/lag`, sub.lag_events);
  history.push(`${name}/lag_s`, sub.lag_seconds);
  history.push(`${name}/latency`, interval);
  history.push(`${name}/rate`, rate);
  history.push(`${name}/retries`, previous && sub.retries !== null ? sub.retries - (previous.retries ?? 0) : null);
  history.push(`${name}/dead`, sub.dead_letters);
}

function card(sub) {
  const [state, says] = health(sub);
  const n = sub.name;
  const lat = sub.latency;
  return h('article', {class: `card sub ${state}`, 'data-name': n},
    h('header', {},
      h('h3', {class: 'mono', text: n}),
      sub.saga ? h('span', {class: 'badge', text: 'saga'}) : null,
      h('span', {class: `state ${state}`, text: says})),
    h('div', {class: 'numbers'},
      h('div', {}, h('span', {class: 'label', text: 'Position'}), h('b', {class: 'position', text: fmt.int(sub.position)})),
      h('div', {}, h('span', {class: 'label', text: 'Lag'}), h('b', {text: `${fmt.int(sub.lag_events)} ev`})),
      h('div', {}, h('span', {class: 'label', text: 'Lag (oldest)'}), h('b', {text: fmt.seconds(sub.lag_seconds)})),
      h('div', {}, h('span', {class: 'label', text: 'p50 / p95'}),
        h('b', {text: lat ? fmt.msPair(lat.p50_ms, lat.p95_ms) : '—'})),
      h('div', {}, h('span', {class: 'label', text: 'Handled'}), h('b', {text: lat ? fmt.int(lat.count) : sub.live ? '0' : '—'})),
      h('div', {}, h('span', {class: 'label', text: 'Retries / fails'}),
        h('b', {text: `${fmt.int(sub.retries)} / ${fmt.int(sub.failures)}`})),
      h('div', {}, h('span', {class: 'label', text: 'To retry'}), h('b', {text: fmt.int(sub.in_retry)})),
      h('div', {}, h('span', {class: 'label', text: 'Dead letters'}),
        sub.dead_letters > 0 ? h('a', {href: '#/dead-letters', class: 'dead', text: fmt.int(sub.dead_letters)})
                             : h('b', {text: '0'}))),
    h('div', {class: 'charts'},
      sparkline(history.get(`${n}/lag`), {label: 'Lag (events)', format: fmt.int}),
      sparkline(history.get(`${n}/lag_s`), {label: 'Lag (s)', format: fmt.seconds}),
      sparkline(history.get(`${n}/latency`), {label: 'Latency (mean)', format: fmt.ms}),
      sparkline(history.get(`${n}/rate`), {label: 'Handled / s', format: (v) => fmt.num(v, 1)}),
      sparkline(history.get(`${n}/retries`), {label: 'Retries', format: fmt.int}),
      sparkline(history.get(`${n}/dead`), {label: 'Dead letters', format: fmt.int})));
}

let previous = new Map();

export const subscriptions = {
  title: 'Subscriptions',
  mount(root) {
    const status = statusLine();
    const head = h('span', {class: 'muted'});
    const grid = h('div', {class: 'cards'});
    root.append(
      h('h2', {text: 'Subscriptions and sagas'}),
      h('p', {class: 'lead', text: 'Where each handler is in the log and how it keeps up. Latency is from an event’s commit to its handler finishing. Charts hold the samples taken every 2 s since the console opened.'}),
      h('div', {class: 'bar-line'}, head), status, grid);
    return every(INTERVAL_MS, async () => {
      try {
        const body = await api('/subscriptions');
        const now = new Map();
        for (const sub of body.subscriptions) {
          sample(sub, previous.get(sub.name));
          now.set(sub.name, sub);
        }
        previous = now;
        head.textContent = `Log head: #${fmt.int(body.head)} · ${body.subscriptions.length} subscriptions · updated ${new Date().toLocaleTimeString('en-GB')}`;
        fill(grid, ...body.subscriptions.map(card));
        status.say('');
      } catch (e) {
        status.say(e.message, 'error');
      }
    });
  },
};
