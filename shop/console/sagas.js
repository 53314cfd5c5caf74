// sagas.js: saga instances by state (GET /sagas), the instances in one
// state a page at a time, and one instance: its data, compensations and
// history.
import {api, q} from './api.js';
import {field, fill, fmt, h, jsonBlock, statusLine} from './dom.js';

const PAGE = 25;

export const sagas = {
  title: 'Sagas',
  mount(root) {
    const status = statusLine();
    const overview = h('div', {class: 'sagas'});
    const listing = h('section', {class: 'panel', hidden: true});
    const detail = h('section', {class: 'panel', hidden: true});
    let stopped = false;

    const showInstance = async (saga, id) => {
      try {
        const i = await api(`/sagas/${encodeURIComponent(saga)}/instances/${encodeURIComponent(id)}`);
        fill(detail,
          h('h3', {}, 'Instance ', h('span', {class: 'mono', text: i.correlation_id})),
          h('div', {class: 'fields'},
            field('Saga', i.saga), field('State', h('span', {class: 'pill', text: i.state ?? '—'})),
            field('Completed', i.completed ? 'yes' : 'no'), field('Started', fmt.time(i.started_at)),
            field('Updated', fmt.time(i.updated_at)), field('Deadline', i.deadline ? fmt.time(i.deadline) : 'none'),
            field('Compensations registered', (i.compensations || []).join(', ') || 'none')),
          h('div', {class: 'actions'}, h('a', {href: `#/story/${encodeURIComponent(i.correlation_id)}`, text: 'Open the order’s story'})),
          h('h4', {text: 'History'}),
          h('table', {class: 'grid history'},
            h('thead', {}, h('tr', {}, ...['When', 'Event', 'Position', 'From', 'To'].map((t) => h('th', {text: t})))),
            h('tbody', {}, ...(i.history || []).map((e) => h('tr', {},
              h('td', {text: fmt.time(e.at)}), h('td', {text: e.event}), h('td', {class: 'num', text: `#${e.position}`}),
              h('td', {text: e.from ?? '(start)'}), h('td', {}, h('b', {text: e.to ?? '—'})))))),
          (i.ignored || []).length ? h('h4', {text: 'Ignored (no transition fitted)'}) : null,
          (i.ignored || []).length ? h('table', {class: 'grid'},
            h('tbody', {}, ...i.ignored.map((e) => h('tr', {},
              h('td', {text: fmt.time(e.at)}), h('td', {text: e.event}), h('td', {class: 'num', text: `#${e.position}`}))))) : null,
          h('h4', {text: 'Data'}), jsonBlock(i.data));
        detail.hidden = false;
      } catch (e) {
        status.say(e.message, 'error');
      }
    };

    const showState = async (saga, state, after = null, rows = null) => {
      try {
        const page = await api(`/sagas/${encodeURIComponent(saga)}/instances${q({state, after, limit: PAGE})}`);
        const body = rows || h('tbody');
        for (const i of page.instances) {
          body.append(h('tr', {class: 'clickable', 'data-id': i.correlation_id, on: {click: () => showInstance(saga, i.correlation_id)}},
            h('td', {class: 'mono', text: i.correlation_id}), h('td', {text: i.state ?? '—'}),
            h('td', {text: fmt.time(i.started_at)}), h('td', {text: fmt.time(i.updated_at)}),
            h('td', {text: i.deadline ? fmt.time(i.deadline) : ''})));
        }
        const more = page.next ? h('button', {type: 'button', text: 'More', on: {click: (e) => {
          e.target.remove();
          showState(saga, state, page.next, body);
        }}}) : null;
        if (!rows) {
          fill(listing,
            h('h3', {}, `${saga}: `, h('span', {class: 'pill', text: state}), ' instances'),
            h('table', {class: 'grid'},
              h('thead', {}, h('tr', {}, ...['Correlation id', 'State', 'Started', 'Updated', 'Deadline'].map((t) => h('th', {text: t})))),
              body));
          listing.hidden = false;
          detail.hidden = true;
        }
        if (more) listing.append(more);
      } catch (e) {
        status.say(e.message, 'error');
      }
    };

    const load = async () => {
      try {
        const body = await api('/sagas');
        if (stopped) return;
        fill(overview, ...(body.sagas.length ? body.sagas.map((saga) => {
          const max = Math.max(...saga.states.map((s) => s.instances), 1);
          return h('article', {class: 'card saga'},
            h('header', {}, h('h3', {class: 'mono', text: saga.name}),
              h('span', {class: 'muted', text: `${fmt.int(saga.instances)} instances`})),
            h('ul', {class: 'states'}, ...saga.states.map((st) => {
              const meter = h('meter', {min: 0, max, value: st.instances});
              return h('li', {},
                h('button', {type: 'button', class: 'state-button', 'data-state': st.state,
                             on: {click: () => showState(saga.name, st.state)}},
                  h('span', {class: 'state-name', text: st.state || '(none)'}), meter,
                  h('b', {text: fmt.int(st.instances)})));
            })));
        }) : [h('p', {class: 'muted', text: 'No saga has run on this store yet.'})]));
        status.say('');
      } catch (e) {
        status.say(e.message, 'error');
      }
    };

    root.append(
      h('h2', {text: 'Sagas'}),
      h('p', {class: 'lead', text: 'Saga instances by state. Pick a state for its instances, and an instance for its history.'}),
      h('div', {class: 'bar-line'}, h('button', {type: 'button', text: 'Refresh counts', on: {click: load}})),
      status, overview, listing, detail);
    load();
    return () => {
      stopped = true;
    };
  },
};
