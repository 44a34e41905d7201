// The real wsmaster for the node tests: a temp dir with a config, started on
// a free port (or the same port again after a stop), stopped by pid only.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';

const HERE = path.dirname(new URL(import.meta.url).pathname);
const BIN = process.env.WSCHAT_BIN || path.resolve(HERE, '../../wsmaster');
const WEB = process.env.WSCHAT_WEB || path.resolve(HERE, '../../web');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class Server {
  constructor(extra = []) {
    this.extra = extra;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wschat-browser-'));
    this.log = path.join(this.dir, 'error.log');
    this.conf = path.join(this.dir, 'wschat.conf');
    this.port = 0;
    this.proc = null;
  }

  writeConfig() {
    fs.writeFileSync(this.conf, [
      `listen 127.0.0.1:${this.port}`,
      'workers 2',
      `pid_file ${path.join(this.dir, 'wschat.pid')}`,
      `history_file ${path.join(this.dir, 'history')}`,
      `error_log ${this.log}`,
      'log_level info',
      `web_root ${WEB}`,
      'worker_shutdown_timeout 2s',
      // The SIGHUP scenario tests the reconnect path (1012, resume by id);
      // the integration suites cover the default hand-over of live sockets.
      'reload_handoff off',
      ...this.extra,
      '',
    ].join('\n'));
  }

  // Start (on this.port; 0 the first time picks a free one) and wait for the
  // "listening on" line and a successful TCP connect.
  async start() {
    this.writeConfig();
    const logStart = fs.existsSync(this.log) ? fs.statSync(this.log).size : 0;
    const out = fs.openSync(path.join(this.dir, 'stdout'), 'a');
    this.proc = spawn(BIN, ['-c', this.conf], { stdio: ['ignore', out, out] });
    fs.closeSync(out);
    this.exited = new Promise((r) => this.proc.once('exit', (code, sig) => r({ code, sig })));
    const end = Date.now() + 10000;
    while (Date.now() < end) {
      const text = fs.existsSync(this.log) ? fs.readFileSync(this.log, 'utf8').slice(logStart) : '';
      const m = text.match(/listening on 127\.0\.0\.1:(\d+)/);
      if (m && await canConnect(Number(m[1]))) {
        this.port = Number(m[1]);
        return;
      }
      if (this.proc.exitCode !== null) break;
      await sleep(50);
    }
    throw new Error(`server did not come up:\n${this.tail()}`);
  }

  // SIGTERM by pid, then SIGKILL after 5 s; resolves once the master is gone.
  async stop() {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill('SIGTERM');
    const done = await Promise.race([this.exited, sleep(5000).then(() => null)]);
    if (!done) {
      this.proc.kill('SIGKILL');
      await this.exited;
    }
  }

  hup() { this.proc.kill('SIGHUP'); }

  tail(n = 30) {
    const text = fs.existsSync(this.log) ? fs.readFileSync(this.log, 'utf8') : '(no log)';
    return text.split('\n').slice(-n).join('\n');
  }
}

function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const done = (ok) => { s.destroy(); resolve(ok); };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    setTimeout(() => done(false), 1000).unref();
  });
}

