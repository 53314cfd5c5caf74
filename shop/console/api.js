// api.js: the shop's admin JSON routes, with the administrator's API key.
// The key is kept in sessionStorage (gone when the tab closes), sent only
// as Authorization: Bearer, never put in a URL or a cookie. The live feed
// is Server-Sent Events read with fetch() and a stream reader, because
// EventSource cannot send that header.

const KEY = 'tidings.console.key';

export const auth = {
  key: () => sessionStorage.getItem(KEY),
  set: (key) => sessionStorage.setItem(KEY, key),
  forget: () => sessionStorage.removeItem(KEY),
  onRefused: () => {}, // set by main.js: a 401 sends the operator back to the key form
};

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem?.code;
  }
}

function headers(extra = {}) {
  const key = auth.key();
  return key ? {Authorization: `Bearer ${key}`, ...extra} : extra;
}

// probe: a 401 is the caller's to handle (the key form trying a key).
export async function api(path, {method = 'GET', body, signal, probe = false} = {}) {
  const init = {
    method,
    headers: headers(body === undefined ? {Accept: 'application/json'}
                                         : {Accept: 'application/json', 'Content-Type': 'application/json'}),
    cache: 'no-store',
    credentials: 'omit',
    signal,
  };
  if (body !== undefined) init.body = JSON.stringify(body);
  const res = await fetch(path, init);
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (res.status === 401 && !probe) auth.onRefused();
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}

export const q = (params) => {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, v);
  const text = u.toString();
  return text ? `?${text}` : '';
};

// The live feed: yields {id, event, data} for each Server-Sent Event until
// the stream ends or signal aborts.
export async function* serverEvents(path, signal) {
  const res = await fetch(path, {
    headers: headers({Accept: 'text/event-stream'}), cache: 'no-store', credentials: 'omit', signal,
  });
  if (res.status === 401) auth.onRefused();
  if (!res.ok) {
    let problem = null;
    try { problem = await res.json(); } catch { problem = null; }
    throw new ApiError(res.status, problem);
  }
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  try {
    for (;;) {
      const {value, done} = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, '\n');
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const message = {id: null, event: 'message', data: ''};
        const data = [];
        for (const line of block.split('\n')) {
          if (line === '' || line.startsWith(':')) continue; // a comment: keep-alive
          const colon = line.indexOf(':');
          const name = colon < 0 ? line : line.slice(0, colon);
          const val = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (name === 'id') message.id = val;
          else if (name === 'event') message.event = val;
          else if (name === 'data') data.push(val);
        }
        if (data.length) {
          message.data = data.join('\n');
          yield message;
        }
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

// Calls fn now and every ms after the last call ended; returns stop().
export function every(ms, fn) {
  let timer = null;
  let stopped = false;
  const run = async () => {
    try {
      await fn();
    } finally {
      if (!stopped) timer = setTimeout(run, ms);
    }
  };
  run();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
