// main.js: the console's frame: the administrator's key (asked for once
// per tab, kept in sessionStorage), the navigation, and which page shows
// (#/feed, #/subscriptions, #/dead-letters, #/sagas, #/story/<order id>,
// #/store). A page's mount() returns what stops its polling or feed.
import {api, auth} from './api.js';
import {fill, h} from './dom.js';
import {feed} from './feed.js';
import {subscriptions} from './subscriptions.js';
import {deadLetters} from './deadletters.js';
import {sagas} from './sagas.js';
import {story} from './story.js';
import {store} from './store.js';

const pages = {feed, subscriptions, 'dead-letters': deadLetters, sagas, story, store};
const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
let stop = () => {};

function signIn(message) {
  stop();
  stop = () => {};
  nav.replaceChildren();
  who.replaceChildren();
  const key = h('input', {type: 'password', name: 'key', autocomplete: 'off', spellcheck: false, required: true,
                          placeholder: 'shop_k_…', size: 56, 'aria-label': 'Administrator API key'});
  const said = h('p', {class: message ? 'status error' : 'status', role: 'alert', text: message || ''});
  const form = h('form', {class: 'signin panel'},
    h('h2', {text: 'Sign in'}),
    h('p', {}, 'Paste an administrator’s API key: the content of ', h('code', {text: 'DATA/admin.key'}),
      ', or a key made with ', h('code', {text: 'shop keys create --role admin'}), '.'),
    h('p', {class: 'muted', text: 'The key stays in this tab only (sessionStorage) and is sent as an Authorization header; closing the tab forgets it.'}),
    h('label', {}, 'API key ', key), h('button', {type: 'submit', class: 'primary', text: 'Sign in'}), said);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    auth.set(key.value.trim());
    key.value = '';
    try {
      await api('/subscriptions', {probe: true});
      if (!window.location.hash) window.location.hash = '#/feed';
      route();
    } catch (err) {
      auth.forget();
      said.className = 'status error';
      said.textContent = err.status === 401 ? 'That key is not valid (unknown, revoked or mistyped).'
        : err.status === 403 ? 'That key is not an administrator’s: the console needs one.' : err.message;
    }
  });
  fill(main, form);
  key.focus();
}

function navigation(current) {
  fill(nav, ...Object.entries(pages).map(([name, page]) =>
    h('a', {href: `#/${name}`, class: name === current ? 'current' : '', 'aria-current': name === current ? 'page' : null, text: page.title})));
  fill(who, 'Administrator ', h('button', {type: 'button', class: 'link', text: 'Sign out', on: {click: () => {
    auth.forget();
    signIn('Signed out.');
  }}}));
}

function route() {
  if (!auth.key()) return signIn();
  const [, name = 'feed', ...rest] = window.location.hash.split('/');
  const page = pages[name] || feed;
  stop();
  navigation(pages[name] ? name : 'feed');
  document.title = `${page.title} · tidings console`;
  const root = h('div', {class: `page page-${name}`});
  fill(main, root);
  stop = page.mount(root, rest.map(decodeURIComponent).join('/')) || (() => {});
}

auth.onRefused = () => {
  auth.forget();
  signIn('The shop refused the key (revoked or expired?): sign in again.');
};
window.addEventListener('hashchange', route);
route();
