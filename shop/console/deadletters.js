// deadletters.js: the dead-letter queue: browse with a filter, show why an
// entry is there (and the event), retry or drop it, retry every dead entry
// that matches the filter; and the audit trail of those requests (who and
// when, recorded by the shop as `tidings dlq` records them).
import {api, every, q} from './api.js';
import {field, fill, fmt, h, jsonBlock, statusLine} from './dom.js';

export const deadLetters = {
  title: 'Dead letters',
  mount(root) {
    const status = statusLine();
    const subscription = h('select', {name: 'subscription'}, h('option', {value: '', text: 'any'}));
    const type = h('input', {type: 'text', name: 'type', placeholder: 'any type', spellcheck: false});
    const stream = h('input', {type: 'text', name: 'stream', placeholder: 'any stream', spellcheck: false});
    const retryAll = h('button', {type: 'button', class: 'primary', text: 'Retry all that match'});
    const table = h('tbody');
    const count = h('span', {class: 'muted'});
    const detail = h('section', {class: 'panel detail-panel', hidden: true});
    const audit = h('tbody');
    let selected = null;
    let known = new Set();

    const filter = () => ({subscription: subscription.value, type: type.value.trim(), stream: stream.value.trim()});

    const act = async (path, body, done) => {
      try {
        const answer = await api(path, {method: 'POST', body});
        status.say(done(answer), 'ok');
        await refresh();
      } catch (e) {
        status.say(e.message, 'error');
      }
    };

    const showEntry = async (id) => {
      selected = id;
      try {
        const e = await api(`/dead-letters/${encodeURIComponent(id)}`);
        const {data, ...envelope} = e.event || {};
        const retry = h('button', {type: 'button', class: 'primary', text: 'Retry', disabled: e.status !== 'dead',
          on: {click: () => act(`/dead-letters/${encodeURIComponent(id)}/retry`, undefined,
                                () => `Retry of ${fmt.short(id)} requested; the ${e.subscription} subscription delivers it again.`)}});
        const drop = h('button', {type: 'button', class: 'danger', text: 'Drop', disabled: e.status !== 'dead',
          on: {click: () => {
            if (window.confirm(`Drop this ${e.type} for ${e.subscription}? It will not be delivered to it again.`))
              act(`/dead-letters/${encodeURIComponent(id)}/drop`, undefined, () => `Drop of ${fmt.short(id)} requested.`);
          }}});
        fill(detail,
          h('h3', {}, `${e.type} for `, h('span', {class: 'mono', text: e.subscription})),
          h('div', {class: 'why'}, h('span', {class: 'label', text: 'Why it is here'}),
            h('p', {class: 'error-text', text: e.last_error || 'no error was recorded'})),
          h('div', {class: 'fields'},
            field('Status', e.status), field('Attempts', fmt.int(e.attempts)),
            field('First failure', fmt.time(e.first_failure)), field('Last failure', fmt.time(e.last_failure)),
            field('Stream', e.stream, 'mono'), field('Position', `#${e.position}`),
            field('Pending request', e.request || 'none'), field('Parked behind', e.behind || '—', 'mono'),
            field('Entry id', e.id, 'mono')),
          h('div', {class: 'actions'}, retry, drop),
          e.event ? h('div', {class: 'two'},
            h('section', {}, h('h4', {text: 'Envelope'}), jsonBlock(envelope)),
            h('section', {}, h('h4', {text: 'Data'}), jsonBlock(data))) : h('p', {class: 'muted', text: 'The event itself is not in the store.'}));
        detail.hidden = false;
      } catch (err) {
        selected = null;
        if (err.status !== 404) {
          detail.hidden = true;
          status.say(err.message, 'error');
          return;
        }
        fill(detail, h('p', {class: 'gone', text: 'This entry has left the queue: the subscription carried out the retry or drop asked for. An event that fails again is parked anew, as a new entry.'}));
        detail.hidden = false;
      }
    };

    const refresh = async () => {
      const f = filter();
      const [list, trail] = await Promise.all([api(`/dead-letters${q(f)}`), api('/dead-letters/audit?limit=50')]);
      for (const e of list.dead_letters) {
        if (!known.has(e.subscription)) {
          known.add(e.subscription);
          subscription.append(h('option', {value: e.subscription, text: e.subscription}));
        }
      }
      const dead = list.dead_letters.filter((e) => e.status === 'dead').length;
      count.textContent = `${list.dead_letters.length} entries, ${dead} dead (the others wait behind them)`;
      retryAll.disabled = dead === 0;
      fill(table, ...(list.dead_letters.length ? list.dead_letters.map((e) =>
        h('tr', {class: e.id === selected ? 'selected' : '', 'data-id': e.id, on: {click: () => showEntry(e.id).then(refresh)}},
          h('td', {}, h('span', {class: `pill ${e.status}`, text: e.status})),
          h('td', {class: 'mono', text: e.subscription}),
          h('td', {text: e.type}),
          h('td', {class: 'mono', text: e.stream}),
          h('td', {class: 'num', text: fmt.int(e.attempts)}),
          h('td', {class: 'clip', title: e.last_error || '', text: e.last_error || ''}),
          h('td', {text: fmt.time(e.last_failure)}),
          h('td', {text: e.request || ''}))) : [h('tr', {}, h('td', {colspan: 8, class: 'muted', text: 'No dead letters match.'}))]));
      fill(audit, ...(trail.audit.length ? trail.audit.map((a) =>
        h('tr', {},
          h('td', {text: fmt.time(a.at)}), h('td', {class: 'mono by', text: a.who}),
          h('td', {}, h('span', {class: `pill ${a.action}`, text: a.action})),
          h('td', {class: 'mono', text: a.subscription}), h('td', {text: a.type}),
          h('td', {class: 'mono', text: a.stream}), h('td', {class: 'mono', title: a.dead_letter, text: fmt.short(a.dead_letter)}))) :
        [h('tr', {}, h('td', {colspan: 7, class: 'muted', text: 'No retries or drops have been asked for.'}))]));
      if (selected) await showEntry(selected);
    };

    retryAll.addEventListener('click', () => {
      const f = filter();
      const any = f.subscription || f.type || f.stream;
      if (!any && !window.confirm('No filter is set: retry every dead letter of every subscription?')) return;
      act('/dead-letters/retry', any ? Object.fromEntries(Object.entries(f).filter(([, v]) => v)) : {all: true},
          (a) => `Retry requested for ${a.count} dead letters.`);
    });
    for (const input of [subscription, type, stream]) input.addEventListener('change', () => refresh().catch((e) => status.say(e.message, 'error')));

    root.append(
      h('h2', {text: 'Dead letters'}),
      h('p', {class: 'lead', text: 'Events a subscription gave up on, with why. A retry or a drop is a request the subscription carries out; each is recorded with who asked and when.'}),
      h('form', {class: 'filters', on: {submit: (e) => e.preventDefault()}},
        h('label', {}, 'Subscription ', subscription), h('label', {}, 'Type ', type),
        h('label', {}, 'Stream ', stream), retryAll, count),
      status,
      h('div', {class: 'split'},
        h('table', {class: 'grid dlq'},
          h('thead', {}, h('tr', {}, ...['Status', 'Subscription', 'Type', 'Stream', 'Attempts', 'Last error', 'Last failure', 'Request'].map((t) => h('th', {text: t})))),
          table),
        detail),
      h('h3', {text: 'Requests (audit trail)'}),
      h('table', {class: 'grid audit'},
        h('thead', {}, h('tr', {}, ...['When', 'Who', 'Action', 'Subscription', 'Type', 'Stream', 'Entry'].map((t) => h('th', {text: t})))),
        audit));
    return every(3000, () => refresh().catch((e) => status.say(e.message, 'error')));
  },
};
