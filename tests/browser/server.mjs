// The real wsmaster for the node tests: a temp dir with a config, started on
// a free port (or the same port again after a stop, with the same config and
// journal folder), stopped by pid only. The master leads its own process
// group, so kill9() can take it down whole (workers and journal included)
// the way a crash or the OOM killer would, and nothing else with it.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';

const HERE = path.dirname(new URL(import.meta.url).pathname);
const BIN = process.env.WSCHAT_BIN || path.resolve(HERE, '../../wsmaster');
const WEB = process.env.WSCHAT_WEB || path.resolve(HERE, '../../web');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Masters started here and not yet seen to exit: if this test process ends
// first (an exception, the run's timeout), their groups go with it, since
// being in their own group they would no longer get the terminal's signals.
const live = new Set();
function killLive() {
  for (const pid of live) {
    try { process.kill(-pid, 'SIGKILL'); } catch { /* already gone */ }
  }
  live.clear();
}
process.once('exit', killLive);
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.once(sig, () => { killLive(); process.exit(128 + os.constants.signals[sig]); });
}

// Pids of the processes of group PGID that have not exited yet (zombies,
// already dead but not yet reaped by whoever adopted them, do not count).
function groupMembers(pgid) {
  const pids = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat;
    try { stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8'); } catch { continue; }
    // pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(f[2]) === pgid && f[0] !== 'Z' && f[0] !== 'X') pids.push(Number(name));
  }
  return pids;
}

export class Server {
  constructor(extra = []) {
    this.extra = extra;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wschat-browser-'));
    this.log = path.join(this.dir, 'error.log');
    this.conf = path.join(this.dir, 'wschat.conf');
    this.port = 0;
    this.proc = null;
    this.logStart = 0;
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
    this.logStart = logStart;
    const out = fs.openSync(path.join(this.dir, 'stdout'), 'a');
    // detached: the master gets a session and process group of its own.
    this.proc = spawn(BIN, ['-c', this.conf], { stdio: ['ignore', out, out], detached: true });
    fs.closeSync(out);
    const pid = this.proc.pid;
    live.add(pid);
    this.exited = new Promise((r) => this.proc.once('exit', (code, sig) => {
      live.delete(pid);
      r({ code, sig });
    }));
    const end = Date.now() + 10000;
    while (Date.now() < end) {
      const text = this.logOfRun();
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

  running() {
    return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  // SIGTERM by pid, then SIGKILL to the whole group after 5 s; resolves once
  // the master is gone (its exit status, or null if it was not running).
  async stop() {
    if (!this.running()) return null;
    this.proc.kill('SIGTERM');
    const done = await Promise.race([this.exited, sleep(5000).then(() => null)]);
    if (done) return done;
    await this.kill9();
    return null;
  }

  // kill -9 of the master's process group: master, workers and journal die
  // at once, with no chance to close, flush or sync anything. Resolves once
  // the master is reaped and no process of the group is left alive.
  async kill9() {
    if (!this.running()) return;
    const pgid = this.proc.pid;
    process.kill(-pgid, 'SIGKILL');
    await this.exited;
    const end = Date.now() + 5000;
    for (let left = groupMembers(pgid); left.length > 0; left = groupMembers(pgid)) {
      if (Date.now() > end) throw new Error(`processes ${left.join(' ')} of group ${pgid} outlived SIGKILL`);
      await sleep(20);
    }
  }

  hup() { this.proc.kill('SIGHUP'); }

  // What the error log gained since the last start().
  logOfRun() {
    // logStart counts bytes: cut the Buffer, then decode.
    return fs.existsSync(this.log) ? fs.readFileSync(this.log).subarray(this.logStart).toString('utf8') : '';
  }

  // GET /stats, parsed.
  async stats() {
    const res = await fetch(`http://127.0.0.1:${this.port}/stats`);
    if (res.status !== 200) throw new Error(`/stats answered ${res.status}`);
    return res.json();
  }

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

