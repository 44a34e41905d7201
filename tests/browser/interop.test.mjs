// Interoperability with a real client library: npm's `ws` (the WebSocket
// implementation most Node.js software uses) against the real wsmaster.
// It offers permessage-deflate by default, which wschat must decline, then
// speaks plain RFC 6455: echo of text and binary, ping/pong, close codes,
// max_message (1009), and the chat room's JSON protocol.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import WebSocket from 'ws';
import { Server } from './server.mjs';

const T = 10000;
let server;

before(async () => {
  server = new Server(['max_message 4m']);
  await server.start();
});

after(async () => {
  await server.stop();
  fs.rmSync(server.dir, { recursive: true, force: true });
});

// Resolve with EVENT's arguments, or reject after T ms.
function once(ws, event) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${T} ms`)), T);
    ws.once(event, (...args) => { clearTimeout(timer); resolve(args); });
  });
}

async function open(path, options = {}) {
  const ws = new WebSocket(`ws://127.0.0.1:${server.port}${path}`, options);
  await once(ws, 'open');
  return ws;
}

test('permessage-deflate offered by ws is declined; text and binary echo', async () => {
  const ws = await open('/echo', { perMessageDeflate: true });
  assert.equal(ws.extensions, '', 'no extension may be negotiated');
  ws.send('héllo 世界 🚀');
  const [text, textIsBinary] = await once(ws, 'message');
  assert.equal(textIsBinary, false);
  assert.equal(text.toString('utf8'), 'héllo 世界 🚀');
  const big = Buffer.alloc(3 * 1024 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
  ws.send(big);
  const [echoed, isBinary] = await once(ws, 'message');
  assert.equal(isBinary, true);
  assert.ok(big.equals(echoed), '3 MiB binary message comes back unchanged');
  ws.close(4000, 'done');
  const [code] = await once(ws, 'close');
  assert.equal(code, 4000);
});

test('ping gets a pong with the same payload; fragmented send is reassembled', async () => {
  const ws = await open('/echo');
  ws.ping(Buffer.from('are you there'));
  const [pong] = await once(ws, 'pong');
  assert.equal(pong.toString(), 'are you there');
  ws.send('frag-', { fin: false });
  ws.send('ment', { fin: true });
  const [msg] = await once(ws, 'message');
  assert.equal(msg.toString(), 'frag-ment');
  ws.close(1000);
  const [code] = await once(ws, 'close');
  assert.equal(code, 1000);
});

test('a message over max_message is refused with 1009', async () => {
  const ws = await open('/echo');
  ws.send(Buffer.alloc(4 * 1024 * 1024 + 1));
  const [code] = await once(ws, 'close');
  assert.equal(code, 1009);
});

test('chat: welcome, history_end, then our own message from the room', async () => {
  // The welcome can arrive in the same packet as the 101: listen before 'open'.
  const a = new WebSocket(`ws://127.0.0.1:${server.port}/chat/interop?nick=node-ws`);
  const events = [];
  a.on('message', (d) => events.push(JSON.parse(d.toString())));
  await once(a, 'open');
  const until = async (pred) => {
    const end = Date.now() + T;
    while (!events.some(pred)) {
      if (Date.now() > end) throw new Error(`timed out; got ${JSON.stringify(events)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  await until((m) => m.type === 'history_end');
  assert.equal(events[0].type, 'welcome');
  assert.equal(events[0].nick, 'node-ws');
  assert.equal(events[0].room, 'interop');
  a.send(JSON.stringify({ type: 'message', text: 'from the ws library' }));
  await until((m) => m.type === 'message' && m.text === 'from the ws library');
  const msg = events.find((m) => m.type === 'message');
  assert.equal(msg.uid, events[0].uid);
  assert.ok(Number.isSafeInteger(msg.id) && msg.id > 0);
  a.close();
  await once(a, 'close');
});
