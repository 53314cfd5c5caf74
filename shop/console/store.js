// store.js: the store (GET /store, every 5 s): head, size, events by type,
// and the writer's load, as numbers and charts of the samples since the
// page opened.
import {api, every} from './api.js';
import {fill, fmt, h, statusLine} from './dom.js';
import {History, bars, sparkline} from './charts.js';

const INTERVAL_MS = 5000;
const history = new History(90);
let previous = null;

function tile(label, value) {
  return h('div', {class: 'tile'}, h('span', {class: 'label', text: label}), h('b', {text: value}));
}

export const store = {
  title: 'Store',
  mount(root) {
    const status = statusLine();
    const tiles = h('div', {class: 'tiles'});
    const writer = h('div', {class: 'tiles'});
    const charts = h('div', {class: 'charts wide'});
    const types = h('div', {class: 'types'});
    root.append(
      h('h2', {text: 'The store'}),
      h('p', {class: 'lead', text: 'The log and its writer. The writer runs units of work one after another and commits them in batches (group commit): units per commit shows how well batching works, busy how much of its time it works.'}),
      status, tiles, h('h3', {text: 'Writer (since the shop started)'}), writer, charts,
      h('h3', {text: 'Events by type'}), types);
    return every(INTERVAL_MS, async () => {
      try {
        const st = await api('/store');
        const now = performance.now();
        const w = st.writer;
        let rate = null;
        let busy = null;
        let units = null;
        let disk = null;
        if (previous) {
          const dt = (now - previous.at) / 1000;
          rate = (st.head - previous.st.head) / dt;
          busy = (w.busy_seconds - previous.st.writer.busy_seconds) / dt;
          units = (w.units - previous.st.writer.units) / dt;
          disk = (w.commit_seconds - previous.st.writer.commit_seconds) / dt;
        }
        previous = {at: now, st};
        history.push('rate', rate);
        history.push('busy', busy);
        history.push('units', units);
        history.push('disk', disk);
        fill(tiles,
          tile('State', st.state), tile('Head', `#${fmt.int(st.head)}`), tile('Events', fmt.int(st.events)),
          tile('Streams', fmt.int(st.streams)), tile('Event types', fmt.int(st.types)),
          tile('Documents', fmt.int(st.documents)), tile('Size on disk', fmt.bytes(st.bytes)),
          tile('Schema', String(st.schema_version)));
        fill(writer,
          tile('Units of work', fmt.int(w.units)), tile('Failed units', fmt.int(w.units_failed)),
          tile('Commits', fmt.int(w.commits)), tile('Units per commit', w.commits ? fmt.num(w.units / w.commits, 2) : '—'),
          tile('Busy', fmt.seconds(w.busy_seconds)), tile('Committing', fmt.seconds(w.commit_seconds)),
          tile('Log syncs', fmt.int(w.syncs)));
        fill(charts,
          sparkline(history.get('rate'), {label: 'Events appended per second', format: (v) => fmt.num(v, 1), width: 300}),
          sparkline(history.get('units'), {label: 'Units of work per second', format: (v) => fmt.num(v, 1), width: 300}),
          sparkline(history.get('busy'), {label: 'Writer busy', format: fmt.percent, width: 300}),
          sparkline(history.get('disk'), {label: 'Writer waiting for the disk', format: fmt.percent, width: 300}));
        const sorted = [...st.event_types].sort((a, b) => b.count - a.count).map((t) => ({label: t.type, value: t.count}));
        fill(types, sorted.length ? bars(sorted, {format: fmt.int}) : h('p', {class: 'muted', text: 'No events yet.'}));
        status.say(`Updated ${new Date().toLocaleTimeString('en-GB')}`);
      } catch (e) {
        status.say(e.message, 'error');
      }
    });
  },
};
