// Browser test of the wschat web client: the real wsmaster (2 workers) and
// headless Chromium driven through playwright-core. Run by run.sh, which
// provides WSCHAT_BIN (server binary), WSCHAT_WEB (web_root) and WSCHAT_OUT
// (screenshots). Each test builds on the previous ones (same server, same
// pages), so they run in order; every wait is bounded.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import pw from 'playwright-core';
import { WsClient } from './wsclient.mjs';
import { Server, sleep } from './server.mjs';

const { chromium } = pw;
const HERE = path.dirname(new URL(import.meta.url).pathname);
const OUT = process.env.WSCHAT_OUT || path.join(HERE, 'out');
const ROOM = 'e2e';
const T = 15000;                                  // default bound for one wait

// A raw WebSocket client posting as another user (not a page, so it never
// shares the pages' reconnect timing).
async function postAs(server, nick, text) {
  const c = await WsClient.open(server.port, `/chat/${ROOM}?nick=${encodeURIComponent(nick)}`);
  await c.next((e) => e.type === 'history_end', T, 'history_end');
  c.send({ type: 'message', text });
  await c.next((e) => e.type === 'message' && e.text === text, T, 'own echo');
  c.close();
}

// ---- pages ------------------------------------------------------------------

let server, browser;
const pages = {};
const problems = [];                              // page errors and console errors

async function openPage(name, { nick, viewport, mobile = false, query = `?room=${ROOM}`, dark = false }) {
  const context = await browser.newContext({
    viewport, deviceScaleFactor: mobile ? 2 : 1, isMobile: mobile, hasTouch: mobile,
    colorScheme: dark ? 'dark' : 'light', locale: 'en-GB', timezoneId: 'UTC',
  });
  if (nick) {
    await context.addInitScript((n) => {
      if (!localStorage.getItem('wschat.nick')) localStorage.setItem('wschat.nick', n);
    }, nick);
  }
  // Test instrumentation (not part of the page): record every status change.
  await context.addInitScript(() => {
    window.__states = [];
    document.addEventListener('DOMContentLoaded', () => {
      const s = document.getElementById('status');
      new MutationObserver(() => window.__states.push(s.dataset.state))
        .observe(s, { attributes: true, attributeFilter: ['data-state'] });
    });
  });
  const page = await context.newPage();
  page.on('pageerror', (e) => problems.push(`${name}: page error: ${e.message}`));
  page.on('console', (m) => {
    // Connection refusals while the server is down are expected noise.
    if (m.type() === 'error' && !/WebSocket connection to .* failed/.test(m.text())) {
      problems.push(`${name}: console: ${m.text()}`);
    }
  });
  await page.goto(`http://127.0.0.1:${server.port}/${query}`);
  await waitOpen(page);
  pages[name] = page;
  return page;
}

function waitOpen(page, timeout = T) {
  return page.waitForSelector('#status[data-state="open"]', { timeout });
}

async function send(page, text) {
  await page.fill('#composer-text', text);
  await page.press('#composer-text', 'Enter');
}

// Delivered (not pending) message rows whose text is exactly TEXT.
function rows(page, text) {
  return page.evaluate((t) => [...document.querySelectorAll('#messages li.msg:not(.pending)')]
    .filter((li) => li.querySelector('.text').textContent === t)
    .map((li) => ({ own: li.classList.contains('own'), history: li.classList.contains('history'),
      nick: li.dataset.nick, id: li.dataset.id })), text);
}

async function waitRow(page, text, timeout = T) {
  await page.waitForFunction((t) => [...document.querySelectorAll('#messages li.msg:not(.pending) .text')]
    .some((e) => e.textContent === t), text, { timeout });
  return rows(page, text);
}

// Wait until TEXT is shown exactly once, and stays so for a moment (a
// duplicate would arrive right behind the first copy).
async function expectOnce(page, text, what) {
  await waitRow(page, text);
  await sleep(300);
  const r = await rows(page, text);
  assert.equal(r.length, 1, `${what}: "${text}" shown ${r.length} times`);
  return r[0];
}

async function shot(page, file) {
  fs.mkdirSync(OUT, { recursive: true });
  await page.screenshot({ path: path.join(OUT, file) });
}

// ---- setup and teardown -----------------------------------------------------

before(async () => {
  server = new Server();
  await server.start();
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    // launch() already gives every run a fresh temporary profile directory.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 30000,
  });
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (server) {
    await server.stop();
    const log = fs.existsSync(server.log) ? fs.readFileSync(server.log, 'utf8') : '';
    const bad = log.split('\n').filter((l) => /\[(alert|crit)\]/.test(l));
    fs.rmSync(server.dir, { recursive: true, force: true });
    assert.deepEqual(bad, [], 'the server logged alert/crit lines');
  }
});

// ---- scenarios --------------------------------------------------------------

test('static page is served with its security headers', async () => {
  const res = await fetch(`http://127.0.0.1:${server.port}/`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/html/);
  assert.match(res.headers.get('content-security-policy'), /default-src 'self'/);
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
  const js = await fetch(`http://127.0.0.1:${server.port}/chat.js`);
  assert.match(js.headers.get('content-type'), /javascript/);
});

test('two pages exchange messages both ways', { timeout: 60000 }, async () => {
  const alice = await openPage('alice', { nick: 'alice', viewport: { width: 1280, height: 800 } });
  const bob = await openPage('bob', { nick: 'bob', viewport: { width: 390, height: 844 }, mobile: true });
  assert.equal(await alice.textContent('#nick-display'), 'alice');
  assert.equal(await alice.textContent('#room-name'), ROOM);
  await alice.waitForFunction(() => /^[2-9]\d* online$/.test(document.getElementById('online').textContent),
    null, { timeout: T });

  await send(alice, 'Hi Bob! Ready for the demo?');
  const atBob = await expectOnce(bob, 'Hi Bob! Ready for the demo?', 'bob');
  assert.deepEqual([atBob.own, atBob.nick], [false, 'alice']);
  const atAlice = await expectOnce(alice, 'Hi Bob! Ready for the demo?', 'alice');
  assert.equal(atAlice.own, true, 'own message is marked as own');

  // Shift+Enter inserts a newline; Enter sends.
  await bob.click('#composer-text');
  await bob.keyboard.type('Almost — two lines:');
  await bob.keyboard.press('Shift+Enter');
  await bob.keyboard.type('this is the second one');
  await bob.keyboard.press('Enter');
  const r = await expectOnce(alice, 'Almost — two lines:\nthis is the second one', 'alice');
  assert.equal(r.own, false);
  assert.equal(await bob.inputValue('#composer-text'), '', 'composer cleared after send');
});

test('Chinese, emoji and long words round-trip and wrap', { timeout: 30000 }, async () => {
  const { alice, bob } = pages;
  const text = '你好，世界！这是一条中文消息 🌏🎉👩🏽‍💻 naïve café';
  await send(bob, text);
  await expectOnce(alice, text, 'alice');
  const long = 'https://example.invalid/' + 'a-very-long-unbroken-word'.repeat(12);
  await send(alice, long);
  await expectOnce(bob, long, 'bob');
  for (const p of [alice, bob]) {
    const overflow = await p.evaluate(() => {
      const s = document.getElementById('scroller');
      return s.scrollWidth - s.clientWidth;
    });
    assert.ok(overflow <= 0, `the timeline scrolls sideways by ${overflow}px`);
  }
});

test('HTML and script in messages stay inert text', { timeout: 30000 }, async () => {
  const { alice, bob } = pages;
  const payloads = ['<img src=x onerror="window.__xss=1">', '<script>window.__xss=2</script>',
    '"><svg onload=window.__xss=3>'];
  for (const p of payloads) await send(bob, p);
  for (const p of payloads) await expectOnce(alice, p, 'alice');
  for (const page of [alice, bob]) {
    assert.equal(await page.evaluate(() => window.__xss), undefined, 'payload executed');
    assert.equal(await page.locator('#messages img, #messages script, #messages svg').count(), 0,
      'payload became markup');
    assert.ok(await page.getByText(payloads[0], { exact: true }).isVisible(), 'payload text visible');
  }
});

test('a page opened later shows the history, marked as such', { timeout: 30000 }, async () => {
  const carol = await openPage('carol', { nick: 'carol', viewport: { width: 1280, height: 800 } });
  const r = await rows(carol, 'Hi Bob! Ready for the demo?');
  assert.equal(r.length, 1);
  assert.equal(r[0].history, true, 'replayed message is marked as history');
  assert.equal(await carol.locator('#messages .history-divider').count(), 1);
  await send(pages.alice, 'Welcome, Carol 👋');
  const live = await expectOnce(carol, 'Welcome, Carol 👋', 'carol');
  assert.equal(live.history, false, 'live message is not marked as history');
  await shot(carol, 'desktop-history.png');
});

test('nickname can be changed, is announced and persists', { timeout: 30000 }, async () => {
  const { alice, bob } = pages;
  await bob.click('#nick-button');
  await bob.fill('#nick-input', 'Bob 🚀');
  await bob.press('#nick-input', 'Enter');
  await bob.waitForFunction(() => document.getElementById('nick-display').textContent === 'Bob 🚀',
    null, { timeout: T });
  await alice.getByText('bob is now Bob 🚀').waitFor({ timeout: T });
  assert.equal(await bob.evaluate(() => localStorage.getItem('wschat.nick')), 'Bob 🚀');
  await send(bob, 'New name, same me.');
  const r = await expectOnce(alice, 'New name, same me.', 'alice');
  assert.equal(r.nick, 'Bob 🚀');
});

// Record a state sequence from now on, then wait for the page to have gone
// through a non-open state and back to open.
async function resetStates(page) { await page.evaluate(() => { window.__states = []; }); }
async function waitReconnected(page, timeout = 30000) {
  await page.waitForFunction(() => window.__states.some((s) => s !== 'open') &&
    document.getElementById('status').dataset.state === 'open', null, { timeout });
}

test('SIGHUP: pages reconnect by themselves and miss nothing', { timeout: 60000 }, async () => {
  const all = Object.values(pages);
  for (const p of all) await resetStates(p);
  server.hup();
  // As soon as the first page has been closed (1012), post from outside.
  await pages.alice.waitForFunction(() => window.__states.some((s) => s !== 'open'), null, { timeout: T });
  const text = 'Posted during the reload ♻️';
  await postAs(server, 'dave', text);
  for (const p of all) await waitReconnected(p);
  for (const [name, p] of Object.entries(pages)) await expectOnce(p, text, name);
  await send(pages.bob, 'After the reload');
  for (const [name, p] of Object.entries(pages)) await expectOnce(p, 'After the reload', name);
});

test('server restart: pages reconnect and get what was sent meanwhile, once', { timeout: 90000 }, async () => {
  const all = Object.entries(pages);
  for (const [, p] of all) await resetStates(p);
  const port = server.port;
  await server.stop();
  // Let the pages fail a few attempts, until each one's next try is far
  // enough away that the message below is surely posted before it.
  const end = Date.now() + 30000;
  let retryAt = {};
  for (;;) {
    retryAt = {};
    for (const [name, p] of all) {
      retryAt[name] = await p.evaluate(() => {
        const s = document.getElementById('status');
        return s.dataset.state === 'waiting' ? Number(s.dataset.retryAt) : 0;
      });
    }
    if (Object.values(retryAt).every((t) => t - Date.now() > 1200)) break;
    assert.ok(Date.now() < end, `pages never settled into back-off: ${JSON.stringify(retryAt)}`);
    await sleep(50);
  }
  assert.equal(server.port, port);
  await server.start();
  assert.equal(server.port, port, 'restarted on the same port');
  const text = 'Sent while you were away 📨';
  await postAs(server, 'erin', text);
  const sentAt = Date.now();
  for (const [, p] of all) await waitReconnected(p, 45000);
  for (const [name, p] of all) {
    const r = await expectOnce(p, text, name);
    if (retryAt[name] > sentAt) assert.equal(r.history, true, `${name}: missed message came back as history`);
  }
  await send(pages.alice, 'Back online after the restart');
  for (const [name, p] of all) await expectOnce(p, 'Back online after the restart', name);
  // Nothing from before the restart was duplicated by the catch-up.
  for (const [name, p] of all) {
    assert.equal((await rows(p, 'Hi Bob! Ready for the demo?')).length, name === 'carol' ? 1 : 1);
  }
});

test('network loss: the page waits for the network, then resumes', { timeout: 60000 }, async () => {
  const { alice, bob } = pages;
  await resetStates(alice);
  await alice.context().setOffline(true);
  await alice.waitForSelector('#status[data-state="offline"]', { timeout: T });
  const text = 'Posted while Alice was offline';
  await send(bob, text);
  await expectOnce(bob, text, 'bob');
  await sleep(300);
  assert.equal((await rows(alice, text)).length, 0, 'delivered to an offline page?');
  // Typed while offline: shown as pending, sent once the page is back.
  await send(alice, 'Typed while offline');
  assert.equal(await alice.locator('#messages li.pending').count(), 1);
  await alice.context().setOffline(false);
  await waitReconnected(alice);
  const r = await expectOnce(alice, text, 'alice');
  assert.equal(r.history, true, 'came back through since= replay');
  await expectOnce(bob, 'Typed while offline', 'bob');
  await expectOnce(alice, 'Typed while offline', 'alice');
  assert.equal(await alice.locator('#messages li.pending').count(), 0, 'pending row left behind');
});

test('rooms come from the URL and can be switched in the page', { timeout: 30000 }, async () => {
  const { carol, bob } = pages;
  await carol.fill('#room-input', 'ops');
  await carol.press('#room-input', 'Enter');
  await carol.waitForFunction(() => document.getElementById('room-name').textContent === 'ops', null, { timeout: T });
  await waitOpen(carol);
  assert.match(carol.url(), /\?room=ops$/);
  await send(carol, 'Only ops can see this');
  await expectOnce(carol, 'Only ops can see this', 'carol');
  await send(bob, 'Only e2e can see this');
  await sleep(500);
  assert.equal((await rows(carol, 'Only e2e can see this')).length, 0, 'room leak');
  assert.equal((await rows(bob, 'Only ops can see this')).length, 0, 'room leak');
  // Bad room names are refused in the page.
  await carol.fill('#room-input', 'no spaces!');
  await carol.press('#room-input', 'Enter');
  assert.ok(await carol.isVisible('#room-error'));
  // Back button returns to the previous room, with its history.
  await carol.goBack();
  await carol.waitForFunction(() => document.getElementById('room-name').textContent === 'e2e', null, { timeout: T });
  await waitOpen(carol);
  await waitRow(carol, 'Only e2e can see this');
});

test('nick survives a reload; screenshots', { timeout: 60000 }, async () => {
  const { alice, bob } = pages;
  await bob.reload();
  await waitOpen(bob);
  assert.equal(await bob.textContent('#nick-display'), 'Bob 🚀');
  const before = await rows(bob, 'Only e2e can see this');
  assert.deepEqual([before.length, before[0].own, before[0].history], [1, true, true],
    'own messages in the replayed history stay marked as own after a reload');
  await send(bob, 'Reloaded and still Bob 🚀 — looks good on a phone too.');
  await expectOnce(alice, 'Reloaded and still Bob 🚀 — looks good on a phone too.', 'alice');
  await waitRow(bob, 'Reloaded and still Bob 🚀 — looks good on a phone too.');
  await shot(alice, 'desktop.png');
  await shot(bob, 'phone.png');
  const dark = await openPage('dark', { nick: 'night-owl', viewport: { width: 1280, height: 800 }, dark: true });
  await shot(dark, 'desktop-dark.png');
  await bob.click('#nick-button');
  await shot(bob, 'phone-nick.png');
  await bob.press('#nick-input', 'Escape');
});

test('no page errors or console errors (CSP violations included)', () => {
  assert.deepEqual(problems, []);
});
