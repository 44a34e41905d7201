// wss:// through nginx: the real wsmaster behind nginx configured from
// conf/nginx-wschat.conf (only its listen port, certificate and upstream
// port changed, and its port-80 redirect left out), TLS with a certificate
// made for this run and trusted by the client as its CA (verification on).
//
// What it shows: two members chat and see each other's messages in one
// order; a member that reconnects with ?since=<last id> gets exactly what
// it missed; a SIGHUP of wschat while both are connected through nginx
// loses nothing (connections handed over, or closed with 1012 and
// resumed); wschat sees the client address nginx forwards, so
// max_connections_per_ip applies to each forwarded address and not to
// nginx's 127.0.0.1, and /stats through nginx is 403 for a forwarded
// address outside stats_allow.
//
// The client names its address with X-Forwarded-For: nginx appends its own
// peer (127.0.0.1, which wschat trusts through real_ip_from), so wschat's
// walk from the right lands on the address the test wrote, the same way
// it lands on a real client's address behind a chain of proxies.
//
// run.sh gives the temp dir (TLS_TMP), the binaries and the deadline;
// every wait here has its own deadline too.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';

const ROOT = process.env.WSCHAT_ROOT;
const BIN = process.env.WSCHAT_BIN;
const NGINX = process.env.NGINX_BIN || 'nginx';
const TMP = process.env.TLS_TMP || fs.mkdtempSync(path.join(os.tmpdir(), 'wschat-tls-'));
const IDLE_TIMEOUT_S = 60;      // wschat's default, which the test keeps
const PER_IP = 2;

let cert;                       // PEM of the self-signed certificate
let wschat, nginx;              // child processes
let wport, nport;               // wschat's and nginx's ports

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() >= end) throw new Error(`timed out after ${ms} ms: ${what}`);
    await sleep(20);
  }
}

function readOr(file, dflt = '') {
  try { return fs.readFileSync(file, 'utf8'); } catch { return dflt; }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function connectable(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.on('connect', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

// ---- set-up ----------------------------------------------------------------

function makeCert() {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-nodes', '-keyout', path.join(TMP, 'key.pem'), '-out', path.join(TMP, 'cert.pem'),
    '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
  { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10000 });
  cert = fs.readFileSync(path.join(TMP, 'cert.pem'));
}

async function startWschat() {
  const conf = path.join(TMP, 'wschat.conf');
  fs.writeFileSync(conf, [
    'listen 127.0.0.1:0',
    'workers 2',
    `pid_file ${TMP}/wschat.pid`,
    `history_file ${TMP}/history`,
    `error_log ${TMP}/wschat.log`,
    `web_root ${ROOT}/web`,
    'real_ip_from 127.0.0.1/32',
    `max_connections_per_ip ${PER_IP}`,
    'worker_shutdown_timeout 3s',
    `idle_timeout ${IDLE_TIMEOUT_S}s`,
    '',
  ].join('\n'));
  const out = fs.openSync(path.join(TMP, 'wschat.out'), 'w');
  wschat = spawn(BIN, ['-c', conf], { stdio: ['ignore', out, out] });
  const log = path.join(TMP, 'wschat.log');
  await waitFor(() => /listening on 127\.0\.0\.1:(\d+)/.test(readOr(log)), 5000,
    'wschat says "listening on"');
  wport = Number(readOr(log).match(/listening on 127\.0\.0\.1:(\d+)/)[1]);
  await waitFor(() => connectable(wport), 5000, 'wschat accepts');
}

// The server block of conf/nginx-wschat.conf for this run: its TLS listen
// on our port, our certificate, our wschat port, no port-80 block, no [::].
function siteConf(text) {
  const lines = text.split('\n');
  const out = [];
  for (let i = 0; i < lines.length; i++) {
    if (/^server\s*\{/.test(lines[i])) {
      let depth = 0, j = i;
      const block = [];
      for (; j < lines.length; j++) {
        block.push(lines[j]);
        depth += (lines[j].match(/\{/g) || []).length - (lines[j].match(/\}/g) || []).length;
        if (depth === 0) break;
      }
      i = j;
      if (block.some((l) => /^\s*listen\s+80;/.test(l))) continue;    // the redirect
      out.push(...block);
      continue;
    }
    out.push(lines[i]);
  }
  let site = out.join('\n');
  const swaps = [
    [/^(\s*)listen 443 ssl;$/m, `$1listen 127.0.0.1:${nport} ssl;`],
    [/^\s*listen \[::\]:443 ssl;\n/m, ''],
    [/^(\s*ssl_certificate)\s+\S+;$/m, `$1 ${TMP}/cert.pem;`],
    [/^(\s*ssl_certificate_key)\s+\S+;$/m, `$1 ${TMP}/key.pem;`],
    [/^(\s*server) 127\.0\.0\.1:8000;/m, `$1 127.0.0.1:${wport};`],
  ];
  for (const [re, to] of swaps) {
    assert.match(site, re, `conf/nginx-wschat.conf no longer has ${re}`);
    site = site.replace(re, to);
  }
  return site;
}

async function startNginx() {
  const shipped = readOr(path.join(ROOT, 'conf/nginx-wschat.conf'));
  for (const need of [/proxy_http_version 1\.1;/, /proxy_set_header Upgrade \$http_upgrade;/,
    /proxy_set_header Connection \$connection_upgrade;/, /map \$http_upgrade \$connection_upgrade/,
    /proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;/,
    /proxy_set_header X-Real-IP \$remote_addr;/, /real_ip_from 127\.0\.0\.1\/32/]) {
    assert.match(shipped, need, `conf/nginx-wschat.conf lacks ${need}`);
  }
  const rt = shipped.match(/proxy_read_timeout (\d+)s;/);
  assert.ok(rt && Number(rt[1]) > IDLE_TIMEOUT_S, 'proxy_read_timeout must exceed idle_timeout');

  nport = await freePort();
  fs.writeFileSync(path.join(TMP, 'wschat-site.conf'), siteConf(shipped));
  const user = process.getuid() === 0 ? `user ${os.userInfo().username};\n` : '';
  const t = (d) => `${TMP}/${d}`;
  fs.writeFileSync(path.join(TMP, 'nginx.conf'), `${user}daemon off;
worker_processes 1;
pid ${t('nginx.pid')};
error_log ${t('nginx-error.log')} info;
events { worker_connections 256; }
http {
    access_log ${t('nginx-access.log')};
    client_body_temp_path ${t('client_body')};
    proxy_temp_path ${t('proxy')};
    fastcgi_temp_path ${t('fastcgi')};
    uwsgi_temp_path ${t('uwsgi')};
    scgi_temp_path ${t('scgi')};
    include ${t('wschat-site.conf')};
}
`);
  const out = fs.openSync(path.join(TMP, 'nginx.out'), 'w');
  nginx = spawn(NGINX, ['-p', TMP, '-e', t('nginx-error.log'), '-c', t('nginx.conf')],
    { stdio: ['ignore', out, out] });
  let exited = false;
  nginx.on('exit', () => { exited = true; });
  await waitFor(async () => exited || await connectable(nport), 5000, 'nginx accepts');
  assert.ok(!exited, `nginx exited: ${readOr(t('nginx.out'))}${readOr(t('nginx-error.log'))}`);
}

function stopChild(child, sig, ms) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); }, ms);
    child.on('exit', () => { clearTimeout(timer); resolve(); });
    child.kill(sig);
  });
}

before(async () => {
  makeCert();
  await startWschat();
  await startNginx();
});

after(async () => {
  await stopChild(nginx, 'SIGQUIT', 3000);
  await stopChild(wschat, 'SIGTERM', 4000);
  const log = readOr(path.join(TMP, 'wschat.log'));
  const bad = log.split('\n').filter((l) => /\[(alert|crit)\]/.test(l));
  assert.deepEqual(bad, [], 'wschat logged [alert]/[crit] lines');
});

// ---- clients -----------------------------------------------------------------

const url = (p) => `wss://127.0.0.1:${nport}${p}`;

// A WebSocket through nginx as FOR_ (X-Forwarded-For; null: none). Resolves
// on open, or with the HTTP status of a refused upgrade.
function openWs(p, for_) {
  return new Promise((resolve, reject) => {
    const headers = for_ ? { 'X-Forwarded-For': for_ } : {};
    const ws = new WebSocket(url(p), { ca: cert, headers, handshakeTimeout: 5000 });
    ws.once('open', () => resolve({ ws, status: 101 }));
    ws.once('unexpected-response', (req, res) => {
      res.resume();
      resolve({ status: res.statusCode, headers: res.headers });
      req.destroy();
    });
    ws.once('error', reject);
  });
}

// A chat member that keeps every event with an id, in the order received,
// and on a close it did not ask for reconnects with ?since=<last id> (as the
// web client does): what a reload costs shows up as a gap or a duplicate.
class Member {
  constructor(name, for_) {
    this.name = name;
    this.for_ = for_;
    this.events = [];           // {id, type, text, nick} of every event with an id
    this.lastId = 0;
    this.replays = [];          // per connection: the events before history_end
    this.closes = [];           // close codes seen
    this.problems = [];
    this.ws = null;
    this.leaving = false;
  }

  connect(since) {
    const q = `?nick=${this.name}` + (since !== undefined ? `&since=${since}` : '');
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url(`/chat/tls${q}`), {
        ca: cert, handshakeTimeout: 5000, headers: { 'X-Forwarded-For': this.for_ } });
      const replay = [];
      let inHistory = true;
      this.ws = ws;
      this.replays.push(replay);
      ws.on('message', (data) => {
        const ev = JSON.parse(data.toString());
        if (ev.type === 'welcome') this.welcome = ev;
        if (ev.type === 'history_end') { inHistory = false; this.ready = true; resolve(); }
        if (typeof ev.id !== 'number') return;
        if (ev.id <= this.lastId) {
          this.problems.push(`${this.name}: id ${ev.id} after ${this.lastId} (duplicate or out of order)`);
          return;
        }
        this.lastId = ev.id;
        const e = { id: ev.id, type: ev.type, text: ev.text, nick: ev.nick };
        this.events.push(e);
        if (inHistory) replay.push(e);
      });
      ws.on('error', (err) => { if (!this.ready) reject(err); });
      ws.on('close', (code) => {
        this.closes.push(code);
        this.ready = false;
        if (!this.leaving && this.ws === ws) {
          this.reconnecting = this.connect(this.lastId).catch((err) => {
            this.problems.push(`${this.name}: reconnect failed: ${err.message}`);
          });
        }
      });
    });
  }

  say(text) {
    this.ws.send(JSON.stringify({ type: 'message', text }));
  }

  texts() {
    return this.events.filter((e) => e.type === 'message').map((e) => e.text);
  }

  leave() {
    this.leaving = true;
    const ws = this.ws;
    if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => { ws.once('close', resolve); ws.close(1000); });
  }
}

function httpsGet(p, for_) {
  return new Promise((resolve, reject) => {
    const headers = for_ ? { 'X-Forwarded-For': for_ } : {};
    const req = https.get({ host: '127.0.0.1', port: nport, path: p, ca: cert, headers,
      timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${p}: timeout`)));
    req.on('error', reject);
  });
}

// ---- the test ------------------------------------------------------------------

test('wss:// through nginx', async (t) => {
  const alice = new Member('alice', '192.0.2.1');
  const bob = new Member('bob', '192.0.2.2');

  await t.test('two members chat in one order', async () => {
    await alice.connect();
    await bob.connect();
    for (let i = 1; i <= 3; i++) {
      alice.say(`a${i}`);
      bob.say(`b${i}`);
    }
    const all = ['a1', 'a2', 'a3', 'b1', 'b2', 'b3'];
    const has = (m) => all.every((x) => m.texts().includes(x));
    await waitFor(() => has(alice) && has(bob), 5000, 'both see all six messages');
    // One order for everyone: the same messages with the same ids.
    const msgs = (m) => m.events.filter((e) => e.type === 'message').map((e) => `${e.id}:${e.text}`);
    assert.deepEqual(msgs(bob), msgs(alice));
    // Each sender's messages in the order sent.
    for (const p of ['a', 'b']) {
      assert.deepEqual(alice.texts().filter((x) => x[0] === p), [1, 2, 3].map((i) => `${p}${i}`));
    }
  });

  await t.test('a member resumes with ?since and gets exactly what it missed', async () => {
    const last = bob.lastId;
    await bob.leave();
    const before = alice.events.length;
    for (let i = 1; i <= 3; i++) alice.say(`missed${i}`);
    await waitFor(() => alice.texts().includes('missed3'), 5000, 'alice sees her messages');
    const missed = alice.events.slice(before).filter((e) => e.id > last);
    bob.leaving = false;
    await bob.connect(last);
    // The history replays chat messages (join/leave are presence, not history).
    const top = missed.at(-1).id;
    const replay = bob.replays.at(-1).filter((e) => e.type === 'message');
    assert.deepEqual(replay, alice.events.filter((e) => e.type === 'message' && e.id > last && e.id <= top));
    assert.deepEqual(replay.map((e) => e.text), ['missed1', 'missed2', 'missed3']);
    assert.ok(bob.welcome.last_id >= top, `welcome last_id ${bob.welcome.last_id} < ${top}`);
    assert.deepEqual(bob.problems, []);
  });

  await t.test('SIGHUP of wschat while connected through nginx loses nothing', async () => {
    const log = path.join(TMP, 'wschat.log');
    const gens = () => (readOr(log).match(/generation \d+: \d+ workers/g) || []).length;
    const closesBefore = alice.closes.length + bob.closes.length;
    alice.say('before-hup');
    await waitFor(() => bob.texts().includes('before-hup'), 5000, 'bob sees before-hup');
    process.kill(wschat.pid, 'SIGHUP');
    await waitFor(() => gens() >= 1, 5000, 'wschat logs the new generation');
    // Keep talking while the old workers hand their connections over.
    for (let i = 1; i <= 5; i++) {
      await waitFor(() => alice.ready && bob.ready, 8000, 'both connected');
      alice.say(`hup-a${i}`);
      bob.say(`hup-b${i}`);
      await sleep(100);
    }
    const want = [1, 2, 3, 4, 5].flatMap((i) => [`hup-a${i}`, `hup-b${i}`]);
    const has = (m) => want.every((x) => m.texts().includes(x));
    await waitFor(() => has(alice) && has(bob), 10000, 'both see every message sent across the reload');
    await waitFor(() => /handed to new workers/.test(readOr(log)), 8000, 'old workers finish');
    assert.deepEqual([...alice.problems, ...bob.problems], []);
    const msgs = (m) => m.events.filter((e) => e.type === 'message').map((e) => `${e.id}:${e.text}`);
    assert.deepEqual(msgs(bob).filter((x) => !x.includes('missed')),
      msgs(alice).filter((x) => !x.includes('missed')));
    const closes = alice.closes.length + bob.closes.length - closesBefore;
    const handed = readOr(log).match(/stopping: (\d+) of (\d+) connections handed to new workers/g);
    t.diagnostic(`reload: ${closes} close(s) seen by the members; ${handed ? handed.join('; ') : 'no hand-over line'}`);
  });

  await t.test('max_connections_per_ip applies to the forwarded address', async () => {
    const A = '198.51.100.1', B = '198.51.100.2';
    const open = [];
    for (let i = 0; i < PER_IP; i++) {
      const r = await openWs('/echo', A);
      assert.equal(r.status, 101, `connection ${i + 1} of ${A}`);
      open.push(r.ws);
    }
    const refused = await openWs('/echo', A);
    assert.equal(refused.status, 503, `connection ${PER_IP + 1} of ${A}`);
    assert.ok(Number(refused.headers['retry-after']) > 0, '503 carries Retry-After');
    // B, and the chat members, all reach wschat from nginx's 127.0.0.1.
    const b = await openWs('/echo', B);
    assert.equal(b.status, 101, `${B} connects while ${A} is at the limit`);
    open.push(b.ws);
    const echoed = await new Promise((resolve) => {
      b.ws.once('message', (d) => resolve(d.toString()));
      b.ws.send('through nginx');
    });
    assert.equal(echoed, 'through nginx');
    // A closed connection gives A's count back.
    await new Promise((resolve) => { open[0].once('close', resolve); open[0].close(1000); });
    let again;
    await waitFor(async () => { again = await openWs('/echo', A); return again.status === 101; },
      3000, `${A} connects again after a close`);
    open.push(again.ws);
    for (const ws of open) ws.close(1000);
  });

  await t.test('/stats through nginx only for stats_allow clients', async () => {
    const denied = await httpsGet('/stats', '198.51.100.9');
    assert.equal(denied.status, 403);
    assert.equal((await httpsGet('/metrics', '198.51.100.9')).status, 403);
    const ok = await httpsGet('/stats');          // nginx's own address: 127.0.0.1
    assert.equal(ok.status, 200);
    assert.ok(JSON.parse(ok.body).total.handshakes_ok > 0);
    const m = await httpsGet('/metrics');
    assert.equal(m.status, 200);
    assert.match(m.body, /^wschat_build_info\{version="[^"]+"\} 1$/m);
    assert.match(m.body, /^# TYPE wschat_handshakes_ok_total counter$/m);
  });

  await alice.leave();
  await bob.leave();
});
