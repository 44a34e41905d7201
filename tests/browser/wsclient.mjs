// A small RFC 6455 client for the browser test: the "other user" that posts
// while a page is disconnected, and a probe of what the server sends. It is
// independent of the page's code and of the server's sources on purpose.
import net from 'node:net';
import crypto from 'node:crypto';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export class WsClient {
  // Connect to 127.0.0.1:port and upgrade on `path`; resolves once the 101
  // is checked. Every later server frame lands in this.events (text frames
  // parsed as JSON) and wakes anyone blocked in next().
  static open(port, path, timeoutMs = 5000) {
    return new Promise((resolve, reject) => {
      const c = new WsClient();
      const key = crypto.randomBytes(16).toString('base64');
      const sock = net.connect(port, '127.0.0.1');
      c.sock = sock;
      const timer = setTimeout(() => { sock.destroy(); reject(new Error(`handshake timeout on ${path}`)); }, timeoutMs);
      let head = Buffer.alloc(0);
      const onHead = (chunk) => {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        sock.off('data', onHead);
        clearTimeout(timer);
        const text = head.subarray(0, end).toString('latin1');
        const want = crypto.createHash('sha1').update(key + GUID).digest('base64');
        if (!/^HTTP\/1\.1 101 /.test(text) || !text.includes(`Sec-WebSocket-Accept: ${want}`)) {
          sock.destroy();
          reject(new Error(`bad handshake on ${path}: ${text.split('\r\n')[0]}`));
          return;
        }
        sock.on('data', (d) => c.feed(d));
        c.feed(head.subarray(end + 4));
        resolve(c);
      };
      sock.on('data', onHead);
      sock.on('error', (e) => { clearTimeout(timer); c.closed = true; c.wake(); reject(e); });
      sock.on('close', () => { c.closed = true; c.wake(); });
      sock.on('connect', () => {
        sock.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
      });
    });
  }

  constructor() {
    this.buf = Buffer.alloc(0);
    this.events = [];
    this.closeCode = null;
    this.closed = false;
    this.waiters = [];
    this.frag = null;
  }

  wake() { for (const w of this.waiters.splice(0)) w(); }

  feed(d) {
    this.buf = Buffer.concat([this.buf, d]);
    for (;;) {
      if (this.buf.length < 2) break;
      const fin = this.buf[0] & 0x80, op = this.buf[0] & 0x0f;
      let len = this.buf[1] & 0x7f, off = 2;
      if (len === 126) { if (this.buf.length < 4) break; len = this.buf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (this.buf.length < 10) break; len = Number(this.buf.readBigUInt64BE(2)); off = 10; }
      if (this.buf.length < off + len) break;
      const payload = this.buf.subarray(off, off + len);
      this.buf = this.buf.subarray(off + len);
      if (op === 0x8) {
        this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        this.sendFrame(0x8, payload.subarray(0, 2));
        this.sock.end();
      } else if (op === 0x9) {
        this.sendFrame(0xA, payload);
      } else if (op === 0x1 || op === 0x0) {
        this.frag = this.frag ? Buffer.concat([this.frag, payload]) : Buffer.from(payload);
        if (fin) {
          const text = this.frag.toString('utf8');
          this.frag = null;
          let ev;
          try { ev = JSON.parse(text); } catch { ev = { type: 'raw', text }; }
          this.events.push(ev);
        }
      }
    }
    this.wake();
  }

  sendFrame(op, payload) {
    if (this.sock.destroyed) return;
    const mask = crypto.randomBytes(4);
    const len = payload.length;
    const head = len < 126 ? Buffer.from([0x80 | op, 0x80 | len])
      : len < 65536 ? Buffer.from([0x80 | op, 0x80 | 126, len >> 8, len & 255])
        : (() => { const h = Buffer.alloc(10); h[0] = 0x80 | op; h[1] = 0x80 | 127; h.writeBigUInt64BE(BigInt(len), 2); return h; })();
    const body = Buffer.from(payload);
    for (let i = 0; i < body.length; i++) body[i] ^= mask[i & 3];
    this.sock.write(Buffer.concat([head, mask, body]));
  }

  send(obj) { this.sendFrame(0x1, Buffer.from(typeof obj === 'string' ? obj : JSON.stringify(obj), 'utf8')); }

  // Resolve with the first queued event (removed from the queue) that
  // satisfies pred, waiting at most timeoutMs.
  async next(pred, timeoutMs = 5000, what = 'event') {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const i = this.events.findIndex(pred);
      if (i >= 0) return this.events.splice(i, 1)[0];
      if (this.closed) throw new Error(`connection closed while waiting for ${what}`);
      const left = end - Date.now();
      if (left <= 0) throw new Error(`timeout waiting for ${what}; have ${JSON.stringify(this.events).slice(0, 400)}`);
      await new Promise((r) => { const t = setTimeout(r, left); this.waiters.push(() => { clearTimeout(t); r(); }); });
    }
  }

  close() {
    if (!this.sock.destroyed) {
      this.sendFrame(0x8, Buffer.from([0x03, 0xe8]));
      this.sock.end();
      setTimeout(() => this.sock.destroy(), 500).unref();
    }
  }
}
