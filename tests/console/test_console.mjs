// test_console.mjs: the operator console in a real browser. Starts a real
// `shop serve` (tracing on) on a free loopback port, drives Debian's
// Chromium with playwright-core, and checks what an operator would: the key
// form refuses a wrong key and keeps the right one in sessionStorage only;
// orders placed through the API appear in the live feed; the filters work;
// subscriptions show positions; a poison event parks in the dead-letter
// queue, is shown with why (its hostile data as text, never markup), is
// retried from the console and the retry is recorded with who and when;
// sagas list by state with an instance's history; an order's story shows
// causation arrows and handler spans; the store shows its figures. Every
// page is saved as a screenshot; no page logs an error (a CSP violation
// would). Waits are on what the page shows, never fixed sleeps. The store
// is on the backend under test (TD_TEST_STORE: sqlite, or postgres, a schema
// of its own on the server of TD_TEST_PG_URL or TD_TEST_PG_STATE's url= line).
// Usage: node test_console.mjs SHOP TIDINGS SCREENSHOT_DIR
import {spawn, execFileSync} from 'node:child_process';
import {randomUUID} from 'node:crypto';
import {mkdirSync, mkdtempSync, readFileSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {chromium} from 'playwright-core';

const [shopBin, tidingsBin, shotsArg] = process.argv.slice(2);
if (!shopBin || !tidingsBin || !shotsArg) {
  console.error('usage: test_console.mjs SHOP TIDINGS SCREENSHOT_DIR');
  process.exit(2);
}
// the PostgreSQL run's screenshots beside the SQLite run's, not over them
const shots = process.env.TD_TEST_STORE === 'postgres' ? join(shotsArg, 'postgres') : shotsArg;
const started = Date.now();
const dir = mkdtempSync(join(tmpdir(), 'console-test-'));
const data = join(dir, 'data');
const db = storeUrl();
mkdirSync(shots, {recursive: true});
let shop = null;
let shopErr = '';
let browser = null;
let checks = 0;

// The store's URL for the backend under test, as tests/support/store_url.sh
// makes it.
function storeUrl() {
  if ((process.env.TD_TEST_STORE ?? 'sqlite') !== 'postgres') {
    return `sqlite:${join(data, 'tidings.db')}`;
  }
  let server = process.env.TD_TEST_PG_URL ?? '';
  if (!server && process.env.TD_TEST_PG_STATE) {
    const m = /^url=(.*)$/m.exec(readFileSync(process.env.TD_TEST_PG_STATE, 'utf8'));
    server = m ? m[1] : '';
  }
  if (!server) {
    console.error('no PostgreSQL server for the tests: set TD_TEST_PG_URL or TD_TEST_PG_STATE');
    process.exit(1);
  }
  return `${server}?options=-csearch_path%3Dconsole_${process.pid}`;
}

function check(ok, what) {
  if (!ok) throw new Error(what);
  checks++;
}

// ---- the shop ----------------------------------------------------------------------

async function serve() {
  shop = spawn(shopBin, ['serve', '--listen', '127.0.0.1:0', '--data', data, '--db', db,
                         '--payment-timeout', '400', '--log-level', 'error',
                         '--trace-file', join(dir, 'spans.jsonl')],
               {stdio: ['ignore', 'pipe', 'pipe']});
  shop.stderr.on('data', (b) => { shopErr = (shopErr + b).slice(-4000); });
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the shop did not start: ${shopErr}`)), 30000);
    shop.stdout.on('data', (b) => {
      out += b;
      const m = /listening on (http:\/\/[0-9.:]+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    shop.on('exit', (code) => reject(new Error(`the shop exited (${code}): ${shopErr}`)));
  });
}

async function stopShop() {
  if (!shop || shop.exitCode !== null) return shop?.exitCode;
  const exited = new Promise((resolve) => shop.on('exit', (code, signal) => resolve(code ?? signal)));
  shop.kill('SIGTERM');
  return exited;
}

let url = '';
let adminKey = '';
async function call(method, path, body, token = adminKey) {
  const res = await fetch(url + path, {
    method,
    headers: {...(token ? {Authorization: `Bearer ${token}`} : {}), ...(body ? {'Content-Type': 'application/json'} : {})},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

// ---- the browser ---------------------------------------------------------------------

const errors = [];
async function launch() {
  // Debian's Chromium, never a browser of Playwright's own; as root, with
  // nothing that reaches out to the network.
  browser = await chromium.launchPersistentContext(join(dir, 'chromium'), {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: {width: 1400, height: 900},
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = browser.pages()[0] || (await browser.newPage());
  page.setDefaultTimeout(15000);
  // Any error a page logs fails the test (a CSP violation is one), but for
  // the answers the steps ask for: 401 to the wrong key, 404 for an entry
  // that left the queue. An answer of 5xx fails it too.
  page.on('console', (m) => {
    if (m.type() === 'error' && !/^Failed to load resource: .* status of (401|404)/.test(m.text()))
      errors.push(`console: ${m.text()}`);
  });
  page.on('response', (r) => { if (r.status() >= 500) errors.push(`${r.status()} for ${r.url()}`); });
  page.on('pageerror', (e) => errors.push(`page: ${e.message}`));
  page.on('dialog', (d) => d.accept());
  return page;
}

// Saves the page, once it shows no placeholder a person should never see
// (outside the JSON blocks): undefined, NaN, null.
async function shot(page, name) {
  const text = await page.evaluate(() => {
    const body = document.body.cloneNode(true);
    body.querySelectorAll('pre').forEach((pre) => pre.remove());
    return body.textContent;
  });
  const odd = /undefined|null|\bNaN\b/.exec(text);
  check(!odd, `the ${name} page shows "${odd?.[0]}": ${text.slice(Math.max(0, (odd?.index ?? 0) - 80), (odd?.index ?? 0) + 40)}`);
  await page.screenshot({path: join(shots, `${name}.png`), fullPage: true});
}

// ---- the steps -----------------------------------------------------------------------

async function setUp() {
  url = await serve();
  adminKey = readFileSync(join(data, 'admin.key'), 'utf8').trim();
  const product = await call('POST', '/products', {name: 'Fountain pen', price: 2500, currency: 'USD', stock: 1000});
  await call('POST', '/users', {email: 'ada@example.com', full_name: 'Ada Lovelace', password: 'correct horse battery'}, '');
  const session = await call('POST', '/sessions', {email: 'ada@example.com', password: 'correct horse battery'}, '');
  return {product: product.id, customer: session.token};
}

function placeOrder(ctx, quantity = 1) {
  return call('POST', '/orders', {
    items: [{product_id: ctx.product, quantity}],
    shipping_address: {line1: '1 Main St', city: 'Springfield', postal_code: '12345', country: 'US'},
    payment: {method: 'card', token: 'tok_visa'},
  }, ctx.customer).then((o) => o.id);
}

async function signIn(page) {
  const res = await page.goto(`${url}/console`);
  const csp = res.headers()['content-security-policy'] || '';
  check(csp.includes("default-src 'self'") && csp.includes("frame-ancestors 'none'") && !csp.includes('unsafe-inline'),
        `the console's CSP: ${csp}`);
  check(!res.headers()['access-control-allow-origin'], 'the console sends CORS headers');
  await page.fill('input[name=key]', 'shop_k_not-a-key');
  await page.click('button[type=submit]');
  await page.getByText('That key is not valid').waitFor();
  check(await page.evaluate(() => sessionStorage.length) === 0, 'a refused key is kept');
  await shot(page, '0-sign-in');
  await page.fill('input[name=key]', adminKey);
  await page.click('button[type=submit]');
  await page.getByText('Following the log live.').waitFor();
  check(await page.evaluate(() => sessionStorage.getItem('tidings.console.key')) === adminKey,
        'the key is not in sessionStorage');
  check(!page.url().includes(adminKey), 'the key is in the URL');
  check((await browser.cookies()).length === 0, 'the console set cookies');
}

async function liveFeed(page, ctx) {
  const first = await placeOrder(ctx, 2);
  const second = await placeOrder(ctx);
  // both appear live, up to the status change the saga makes
  for (const id of [first, second])
    await page.locator('ol.feed li.event', {hasText: `order-${id}`}).filter({hasText: 'OrderStatusChanged'}).first().waitFor();
  const stream = await call('GET', `/streams/order-${first}`);
  const created = stream.events.find((e) => e.type === 'OrderCreated');
  await page.fill('input[name=correlation]', created.id);
  const visible = page.locator('ol.feed li.event:visible');
  await page.waitForFunction(() => document.querySelectorAll('ol.feed li.event:not([hidden])').length > 0);
  const texts = await visible.allTextContents();
  check(texts.length >= 6, `the correlation filter shows ${texts.length} events of the first order's work`);
  check(texts.every((t) => !t.includes(second)), 'the correlation filter shows another order');
  await visible.filter({hasText: 'OrderCreated'}).first().locator('button.summary').click();
  await page.locator('ol.feed .detail pre', {hasText: '"correlation_id"'}).first().waitFor();
  await page.locator('ol.feed .detail pre', {hasText: '"total_amount": 5000'}).first().waitFor();
  await shot(page, '1-feed');
  await page.fill('input[name=correlation]', '');
  // the type filter is asked of the shop: only that type comes
  await page.fill('input[name=type]', 'PaymentProcessed');
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('ol.feed li.event')];
    return rows.length >= 2 && rows.every((r) => r.textContent.includes('PaymentProcessed'));
  });
  await page.fill('input[name=type]', '');
  return first;
}

async function subscriptionsPage(page, ctx) {
  await page.goto(`${url}/console#/subscriptions`);
  await page.locator('article.sub[data-name="notifications"]').waitFor();
  // more orders while the page samples, so that its charts have something to show
  for (let i = 0; i < 8; i++) {
    await placeOrder(ctx, 1 + (i % 3));
    await page.waitForTimeout(600); // paced like customers, not a wait for state
  }
  const {head} = await call('GET', '/subscriptions');
  await page.waitForFunction((h) => {
    const card = document.querySelector('article.sub[data-name="saga.order_processing"] .position');
    return card && Number(card.textContent.replace(/,/g, '')) >= h;
  }, head);
  await page.waitForFunction(() => document.querySelectorAll('article.sub[data-name="notifications"] svg.spark polyline').length >= 4);
  check(await page.locator('article.sub').count() >= 7, 'fewer subscriptions than the shop runs');
  await shot(page, '2-subscriptions');
}

async function deadLetters(page) {
  // A poison event: an order for a customer who does not exist, with
  // hostile text in its data. The notifications handler parks it for good.
  const order = randomUUID();
  execFileSync(tidingsBin, ['--db', db, 'append', `order-${order}`, 'OrderCreated', JSON.stringify({
    order_id: order, user_id: randomUUID(), total_amount: 100, currency: 'USD', order_date: '2026-12-01T00:00:00Z',
    items: [], payment_method: 'card', payment_method_id: null,
    note: '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>',
  }), '--schema-version', '3'], {stdio: ['ignore', 'ignore', 'pipe']});
  await page.goto(`${url}/console#/dead-letters`);
  const row = page.locator('table.dlq tbody tr', {hasText: `order-${order}`}).filter({hasText: 'OrderCreated'});
  await row.waitFor();
  const firstId = await row.getAttribute('data-id');
  await row.click();
  await page.locator('.detail-panel .error-text', {hasText: 'does not exist'}).waitFor();
  await page.locator('.detail-panel pre', {hasText: '<img src=x onerror'}).waitFor();
  check(await page.evaluate(() => window.__pwned) === undefined, 'event data ran as script');
  check(await page.locator('.detail-panel img, .detail-panel script').count() === 0, 'event data became markup');
  const before = Date.now() - 1000;
  await page.locator('.detail-panel button', {hasText: 'Retry'}).click();
  await page.getByText(/Retry of .* requested/).waitFor();
  const recorded = page.locator('table.audit tbody tr', {hasText: `order-${order}`}).filter({hasText: 'retry'});
  await recorded.waitFor();
  check((await recorded.textContent()).includes('http:admin'), 'the audit row does not say who');
  const {audit} = await call('GET', '/dead-letters/audit?limit=5');
  const entry = audit.find((a) => a.stream === `order-${order}`);
  check(entry && entry.who === 'http:admin' && entry.action === 'retry' && Date.parse(entry.at) >= before,
        `the retry is not recorded with who and when: ${JSON.stringify(entry)}`);
  // the subscription carries the retry out: the entry leaves the queue, the
  // poison fails again and is parked anew
  await page.getByText('This entry has left the queue').waitFor();
  await page.waitForFunction(([stream, old]) => [...document.querySelectorAll('table.dlq tbody tr')]
    .some((r) => r.textContent.includes(stream) && r.textContent.includes('OrderCreated') && r.dataset.id !== old),
  [`order-${order}`, firstId]);
  await page.locator('table.dlq tbody tr', {hasText: `order-${order}`}).filter({hasText: 'OrderCreated'}).click();
  await page.locator('.detail-panel .error-text', {hasText: 'does not exist'}).waitFor();
  await shot(page, '3-dead-letters');
}

async function sagasPage(page, order) {
  await page.goto(`${url}/console#/sagas`);
  await page.locator('.state-button[data-state="processing"]').click();
  await page.locator(`tr[data-id="${order}"]`).click();
  await page.locator('table.history tbody tr', {hasText: 'PaymentProcessed'}).waitFor();
  check(await page.locator('table.history tbody tr').count() >= 3, 'the instance history is short');
  await shot(page, '4-sagas');
}

async function storyPage(page, order) {
  await page.goto(`${url}/console#/story/${order}`);
  await page.locator('svg.timeline').waitFor();
  const events = await page.locator('ol.story-events > li').count();
  const arrows = await page.locator('svg.timeline path.cause').count();
  const roots = await page.locator('svg.timeline circle.dot.root').count();
  const spans = await page.locator('svg.timeline rect.span.consumer').count();
  check(events >= 7, `the story has ${events} events`);
  check(roots === 1 && arrows === events - roots, `the story has ${arrows} causation arrows for ${events} events`);
  check(spans >= 5, `the story shows ${spans} handler spans`);
  await shot(page, '5-story');
}

async function storePage(page) {
  await page.goto(`${url}/console#/store`);
  const {head, event_types: types} = await call('GET', '/store');
  await page.locator('.tile', {hasText: 'Head'}).filter({hasText: /#\d/}).waitFor();
  await page.waitForFunction((n) => document.querySelectorAll('svg.bars rect.bar').length === n, types.length);
  const shown = Number((await page.locator('.tile', {hasText: 'Head'}).locator('b').textContent()).replace(/[#,]/g, ''));
  check(shown >= head, `the store page shows head ${shown}, the store has ${head}`);
  // a second sample: the rate charts draw
  await page.waitForFunction(() => document.querySelectorAll('svg.spark circle, svg.spark polyline').length >= 4, null, {timeout: 15000});
  await shot(page, '6-store');
}

async function signOut(page) {
  await page.locator('#who button', {hasText: 'Sign out'}).click();
  await page.locator('input[name=key]').waitFor();
  check(await page.evaluate(() => sessionStorage.length) === 0, 'signing out leaves the key');
}

// ---- run ---------------------------------------------------------------------------------

let failed = null;
try {
  const ctx = await setUp();
  const page = await launch();
  await signIn(page);
  const order = await liveFeed(page, ctx);
  await subscriptionsPage(page, ctx);
  await deadLetters(page);
  await sagasPage(page, order);
  await storyPage(page, order);
  await storePage(page);
  await signOut(page);
  check(errors.length === 0, `the pages logged errors: ${errors.join(' | ')}`);
} catch (e) {
  failed = e;
} finally {
  await browser?.close().catch(() => {});
  const code = await stopShop();
  if (!failed && code !== 0) failed = new Error(`the shop did not stop cleanly (${code}): ${shopErr}`);
  rmSync(dir, {recursive: true, force: true});
}
const seconds = ((Date.now() - started) / 1000).toFixed(1);
if (failed) {
  console.error(`FAIL: ${failed.message}`);
  if (shopErr) console.error(`shop: ${shopErr.slice(-1000)}`);
  console.log(`${checks} passed, 1 failed`);
  process.exit(1);
}
console.log(`console: ${checks} checks in ${seconds} s; screenshots in ${shots}`);
console.log(`${checks} passed, 0 failed`);
