#!/usr/bin/env python3
"""
soak: run the real wsmaster for a long while (SOAK_SECONDS, default 600)
under connection churn, steady chat and every kind of abuse at once, and
assert that it neither grows nor crashes nor loses a well-behaved client's
message. `make soak` (or `make soak SOAK_SECONDS=60`) runs it; it is not
part of `make test`.

  WSCHAT_BIN=build/release/wsmaster WSCHAT_ROOT=. python3 tests/soak/soak.py [--seconds N] [--keep]

What runs, all at once, for N seconds:
  - well-behaved chat: MEMBERS_PER_ROOM members in each of ROOMS (over
    127.0.0.1), each publishing one message every PUBLISH_EVERY seconds
    (a tenth of rate_limit), in varied forms (JSON or bare text, escapes,
    non-ASCII, sometimes fragmented);
  - well-behaved echo: ECHO_CLIENTS clients on /echo, text and binary
    messages up to 16 KiB, some fragmented;
  - abuse.py, a separate niced process that connects from another address
    ([::1], or 127.0.0.2 without IPv6) so max_connections_per_ip limits it
    and never the clients above: churn, floods that never read, pipelined
    GETs never read, ?since=1 joins never read, fragments held open with
    pings past message_timeout, rate-limit floods, duplicate
    Content-Length, invalid UTF-8, oversized frames, slowloris, and bursts
    over max_connections_per_ip.

Assertions (exit 1 if any fails):
  - RSS of the whole server (VmRSS of the master and each worker: the pid
    file's pid and the processes whose parent it is) is flat: the median of
    the 2nd minute against the median of the last minute (for a run under
    10 minutes: the 2nd and the last tenth), allowing +10% or +8 MiB,
    whichever is larger;
  - no crash: the worker pids at the end are those at the start, and the
    error log has no [alert]/[crit] line, no worker death or respawn line
    (server/master.c: "killed by signal", "exited with", "keeps dying:
    respawning") and no sanitizer report;
  - nothing lost for well-behaved clients: every member of a room receives
    every message published in the room by the members exactly once, with
    its text intact; every member's event ids are strictly increasing; over
    the window from the first to the last of those messages every member of
    a room saw the very same sequence of event ids (so nothing the abusers
    published there was lost or doubled either); no member is ever
    disconnected, refused or sent an error or gap event; every echo comes
    back once, intact and in order.

The report of figures on stdout is meant to be quoted by README.
"""
import argparse
import asyncio
import bisect
import collections
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from array import array

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True    # no __pycache__ in the checkout
sys.path.insert(0, HERE)
import wsproto as wp  # noqa: E402

ROOMS = ["soak-a", "soak-b", "soak-c"]
MEMBERS_PER_ROOM = 5
PUBLISH_EVERY = 0.5         # seconds: 2 messages/s per member, rate_limit is 20
ECHO_CLIENTS = 4
ECHO_EVERY = 0.2
WORKERS = 2
MIB = 1024 * 1024

# The server's configuration. Small limits make every abuse trip often and
# cheaply; ring_size at its minimum is filled before the RSS windows start,
# so the ring's shared pages do not pass for growth.
CONF = {
    "workers": WORKERS,
    "log_level": "warn",
    "handshake_timeout": "3s",
    "idle_timeout": "60s",
    "close_timeout": "2s",
    "message_timeout": "2s",
    "worker_shutdown_timeout": "5s",
    "max_request_head": "8k",
    "max_message": "64k",
    "max_text": "4k",
    "max_send_queue": "256k",
    "rate_limit": 20,
    "rate_limit_burst": 40,
    "history_size": 100,
    "ring_size": "1m",
}
MAX_MESSAGE = 64 * 1024
MESSAGE_TIMEOUT = 2.0
HANDSHAKE_TIMEOUT = 3.0
MAX_HEAD = 8 * 1024
PER_IP = 256
SHUTDOWN_TIMEOUT = 5.0

BAD_LOG = re.compile(r"\[(alert|crit)\]|killed by signal|exited with|exited on signal|respawn|"
                     r"keeps dying|Sanitizer|runtime error:")


class Soak:
    def __init__(self, seconds):
        self.seconds = seconds
        self.failures = []
        self.abuser_pid = None      # abuse.py, while it may still run
        self.suppressed = collections.Counter()

    def fail(self, what, kind=None):
        """Record a failed assertion; past 5 of one KIND only count them."""
        kind = kind or what
        self.suppressed[kind] += 1
        if self.suppressed[kind] <= 5:
            self.failures.append(what)
            print("FAIL: " + what, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- server

def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def free_port(v6):
    """A port free on 127.0.0.1 (and on ::1 when V6)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s4:
            s4.bind(("127.0.0.1", 0))
            port = s4.getsockname()[1]
            if not v6:
                return port
            try:
                with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s6:
                    s6.bind(("::1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port")


def proc_stat(pid):
    """(ppid, comm) of PID, or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    comm = s[s.index("(") + 1:s.rindex(")")]
    return int(s[s.rindex(")") + 2:].split()[1]), comm


def vm_rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Server:
    def __init__(self, binary, root, tmp, port, v6):
        self.binary = binary
        self.root = root
        self.tmp = tmp
        self.port = port
        self.v6 = v6
        self.conf = os.path.join(tmp, "wschat.conf")
        self.pid_file = os.path.join(tmp, "run", "wschat.pid")
        self.error_log = os.path.join(tmp, "error.log")
        self.stderr_log = os.path.join(tmp, "stderr.log")
        self.proc = None
        self.master = None
        self.last_rss = []
        self.exit_status = None
        self.stop_signals = []

    def write_conf(self, per_ip):
        lines = ["# written by tests/soak/soak.py", "listen 127.0.0.1:%d" % self.port]
        if self.v6:
            lines.append("listen [::1]:%d" % self.port)
        lines += ["pid_file %s" % self.pid_file, "history_file %s" % os.path.join(os.path.dirname(self.pid_file), "history"), "error_log %s" % self.error_log,
                  "web_root %s" % os.path.join(self.root, "web")]
        lines += ["%s %s" % kv for kv in CONF.items()]
        if per_ip:
            lines.append("max_connections_per_ip %d" % PER_IP)
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def check_conf(self):
        r = subprocess.run([self.binary, "-t", "-c", self.conf], capture_output=True, text=True)
        return r.returncode == 0, (r.stderr or r.stdout).strip()

    def configure(self):
        """The config, with max_connections_per_ip when this build knows it.
        Returns whether it does."""
        self.write_conf(per_ip=True)
        ok, why = self.check_conf()
        if ok:
            return True
        self.write_conf(per_ip=False)
        ok2, why2 = self.check_conf()
        if not ok2:
            raise RuntimeError("the soak configuration is refused: " + why2)
        print("note: this wsmaster refuses max_connections_per_ip (%s); running without it" % why,
              file=sys.stderr)
        return False

    def start(self):
        out = open(self.stderr_log, "wb")
        self.proc = subprocess.Popen([self.binary, "-c", self.conf], cwd=self.tmp,
                                     stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        out.close()
        end = time.monotonic() + 15
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("wsmaster exited at start with %s: %s"
                                   % (self.proc.returncode, self.log_text()[-2000:]))
            pid = self.read_pid_file()
            if pid is not None and len(self.workers()) == WORKERS and self.accepts():
                if pid != self.proc.pid:
                    raise RuntimeError("pid file says %d, the master is %d" % (pid, self.proc.pid))
                self.master = pid
                return
            time.sleep(0.1)
        raise RuntimeError("wsmaster did not come up within 15 s: " + self.log_text()[-2000:])

    def read_pid_file(self):
        try:
            with open(self.pid_file) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def accepts(self):
        for host in ["127.0.0.1"] + (["::1"] if self.v6 else []):
            try:
                socket.create_connection((host, self.port), timeout=1).close()
            except OSError:
                return False
        return True

    def workers(self):
        """Pids of the master's children (the master is the pid file's pid)."""
        master = self.master or self.read_pid_file()
        if master is None:
            return []
        found = []
        for name in os.listdir("/proc"):
            if name.isdigit():
                st = proc_stat(int(name))
                if st is not None and st[0] == master:
                    found.append(int(name))
        return sorted(found)

    def rss_kib(self):
        """(KiB of VmRSS over the master and every worker, worker pids);
        each process's share is kept in self.last_rss."""
        ws = self.workers()
        self.last_rss = [vm_rss_kib(self.master)] + [vm_rss_kib(p) for p in ws]
        return sum(self.last_rss), ws

    def log_text(self):
        text = ""
        for path in (self.stderr_log, self.error_log):
            try:
                with open(path, errors="replace") as f:
                    text += f.read()
            except OSError:
                pass
        return text

    def stop(self, last_workers):
        """SIGQUIT, then SIGTERM, then SIGKILL: only the master we started and
        the workers we saw. Returns the signals it took."""
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGQUIT, SHUTDOWN_TIMEOUT + 5), (signal.SIGTERM, 5),
                          (signal.SIGKILL, 5)):
            self.stop_signals.append(signal.Signals(sig).name)
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        self.exit_status = self.proc.poll()
        end = time.monotonic() + 5
        left = list(last_workers)
        while left and time.monotonic() < end:
            left = [p for p in left if proc_stat(p) is not None and proc_stat(p)[1] == "wsmaster"]
            time.sleep(0.1)
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return left


# ---------------------------------------------------------------- well-behaved chat

def payload_text(rnd):
    """Varied text: plain, escapes, control characters, non-ASCII, long."""
    v = rnd.randrange(6)
    if v == 0:
        return ""
    if v == 1:
        return "plain %d" % rnd.randrange(10 ** 6)
    if v == 2:
        return 'quotes " and \\ backslash, tab\tnewline\n and \u0001 control'
    if v == 3:
        return "caf\u00e9 \u6f22\u5b57 \U0001F389 \u2028 mixed " * rnd.randrange(1, 6)
    if v == 4:
        return "".join(rnd.choice("abcdefghij KLMNOP-_.,") for _ in range(rnd.randrange(100, 900)))
    return "<script>alert(1)</script> & {\"type\":\"nick\"}"


class Room:
    def __init__(self, name):
        self.name = name
        self.members = []
        self.expected = {}      # (publisher, seq) -> text


class Member:
    def __init__(self, soak, host, port, room, idx):
        self.soak = soak
        self.host = host
        self.port = port
        self.room = room
        self.name = "%s-m%d" % (room.name, idx)
        self.client = None
        self.last_id = 0
        self.ids = array("Q")
        self.got = collections.Counter()
        self.fins = {}          # publisher -> id of its fin message
        self.first_soak_id = None   # id of the first soak message it saw
        self.sent = 0
        self.stopping = False
        self.connected = asyncio.Event()
        self.rnd = random.Random(self.name)

    async def connect(self, since=None):
        path = "/chat/%s?nick=%s" % (self.room.name, self.name)
        if since:
            path += "&since=%d" % since
        c = await wp.Client.connect(self.host, self.port, path)
        op, data = await asyncio.wait_for(c.recv(), 10)
        ev = json.loads(data)
        if ev.get("type") != "welcome" or ev.get("room") != self.room.name:
            raise wp.ProtocolError("%s: first event is not its welcome: %r" % (self.name, ev))
        while True:
            op, data = await asyncio.wait_for(c.recv(), 10)
            if self.handle(op, data) == "history_end":
                break
        self.client = c
        self.connected.set()

    def handle(self, op, data):
        s = self.soak
        if op != wp.OP_TEXT:
            s.fail("%s: a binary message from /chat" % self.name, "binary")
            return None
        try:
            ev = json.loads(data)
        except ValueError:
            s.fail("%s: event is not JSON: %r" % (self.name, data[:200]), "json")
            return None
        t = ev.get("type")
        if "id" in ev:
            i = ev["id"]
            if not isinstance(i, int) or i <= self.last_id:
                s.fail("%s: event id %r after id %d (duplicate or out of order): %r"
                       % (self.name, i, self.last_id, data[:200]), "order")
                return t
            self.last_id = i
            self.ids.append(i)
            if ev.get("room") != self.room.name:
                s.fail("%s: event of room %r delivered in %s" % (self.name, ev.get("room"), self.room.name),
                       "room")
        if t == "message":
            text = ev.get("text")
            if not isinstance(text, str):
                s.fail("%s: message without text: %r" % (self.name, data[:200]), "text")
            elif text.startswith("soak|"):
                parts = text.split("|", 4)
                key = (parts[2], int(parts[3]))
                self.got[key] += 1
                if self.first_soak_id is None:
                    self.first_soak_id = ev["id"]
                want = self.room.expected.get(key)
                if want is None or want != text or parts[1] != self.room.name:
                    s.fail("%s: message %r is not what %s sent in %s: %r"
                           % (self.name, key, key[0], self.room.name, text[:100]), "corrupt")
            elif text.startswith("soakfin|"):
                self.fins[text.split("|")[2]] = ev["id"]
        elif t in ("error", "gap"):
            s.fail("%s: %s event for a well-behaved member: %r" % (self.name, t, data[:200]), t)
        return t

    async def reader(self):
        while not self.stopping:
            try:
                op, data = await self.client.recv()
            except (wp.Closed, wp.ProtocolError, ConnectionError, OSError) as e:
                if self.stopping:
                    return
                self.connected.clear()
                self.soak.fail("%s: disconnected (%s)" % (self.name, e), "disconnect")
                self.client.abort()
                await self.reconnect()
                continue
            self.handle(op, data)

    async def reconnect(self):
        """Go on with since=<last id>, as a real client would."""
        for _ in range(20):
            try:
                await self.connect(since=self.last_id or None)
                return
            except (wp.Closed, wp.ProtocolError, ConnectionError, OSError, asyncio.TimeoutError) as e:
                self.soak.fail("%s: reconnect failed (%s)" % (self.name, e), "reconnect")
                await asyncio.sleep(0.5)
        raise RuntimeError("%s cannot reconnect" % self.name)

    def encode(self, text):
        """A chat input in one of the forms the protocol allows."""
        if self.rnd.random() < 0.2:
            return text.encode()        # bare text frame, taken as the message
        return json.dumps({"type": "message", "text": text},
                          ensure_ascii=self.rnd.random() < 0.5).encode()

    async def send(self, body):
        await asyncio.wait_for(self.connected.wait(), 30)
        c = self.client
        if self.rnd.random() < 0.1 and len(body) > 4:
            a, b = sorted(self.rnd.sample(range(1, len(body)), 2)) if len(body) > 5 else (1, 2)
            c.send(wp.OP_TEXT, body[:a], fin=False)
            c.send(wp.OP_CONT, body[a:b], fin=False)
            c.send(wp.OP_CONT, body[b:], fin=True)
        else:
            c.send(wp.OP_TEXT, body)
        await asyncio.wait_for(c.writer.drain(), 10)

    async def publisher(self, start, stop):
        await start.wait()
        seq = 0
        next_t = time.monotonic() + self.rnd.uniform(0, PUBLISH_EVERY)
        while not stop.is_set():
            await asyncio.sleep(max(0.0, next_t - time.monotonic()))
            next_t += PUBLISH_EVERY
            if stop.is_set():
                break
            seq += 1
            text = "soak|%s|%s|%d|%s" % (self.room.name, self.name, seq, payload_text(self.rnd))
            self.room.expected[(self.name, seq)] = text
            try:
                await self.send(self.encode(text))
                self.sent += 1
            except (ConnectionError, OSError, RuntimeError, asyncio.TimeoutError) as e:
                self.soak.fail("%s: publishing failed (%s)" % (self.name, e), "publish")

    async def send_fin(self):
        await self.send(self.encode("soakfin|%s|%s" % (self.room.name, self.name)))


class Echoer:
    def __init__(self, soak, host, port, idx):
        self.soak = soak
        self.host = host
        self.port = port
        self.name = "echo-%d" % idx
        self.rnd = random.Random(self.name)
        self.pending = collections.deque()
        self.sent = self.received = self.bytes = 0
        self.client = None
        self.stopping = False

    async def connect(self):
        self.client = await wp.Client.connect(self.host, self.port, "/echo")

    async def reader(self):
        while not self.stopping:
            try:
                op, data = await self.client.recv()
            except (wp.Closed, wp.ProtocolError, ConnectionError, OSError) as e:
                if self.stopping:
                    return
                self.soak.fail("%s: disconnected (%s), %d echoes lost"
                               % (self.name, e, len(self.pending)), "disconnect")
                self.pending.clear()
                self.client.abort()
                await self.connect()
                continue
            if not self.pending:
                self.soak.fail("%s: an echo nobody sent (%d bytes)" % (self.name, len(data)), "echo")
                continue
            want = self.pending.popleft()
            if (op, data) != want:
                self.soak.fail("%s: echo %d differs (opcode %d/%d, %d/%d bytes)"
                               % (self.name, self.received, op, want[0], len(data), len(want[1])), "echo")
            self.received += 1

    def message(self):
        n = self.rnd.choice([0, 1, 125, 126, 127, 1000, 16383, 16384, self.rnd.randrange(16384)])
        if self.rnd.random() < 0.5:
            return wp.OP_BINARY, os.urandom(n)
        s = "".join(self.rnd.choice("echo \u00e9\u6f22\U0001F600") for _ in range(n // 3))
        return wp.OP_TEXT, s.encode()

    async def writer(self, start, stop):
        await start.wait()
        next_t = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(max(0.0, next_t - time.monotonic()))
            next_t += ECHO_EVERY
            if stop.is_set():
                break
            op, data = self.message()
            c = self.client
            self.pending.append((op, data))
            try:
                if self.rnd.random() < 0.2 and len(data) > 2:
                    cut = self.rnd.randrange(1, len(data))
                    c.send(op, data[:cut], fin=False)
                    c.send(wp.OP_PING, b"mid-message ping")
                    c.send(wp.OP_CONT, data[cut:], fin=True)
                else:
                    c.send(op, data)
                await asyncio.wait_for(c.writer.drain(), 10)
                self.sent += 1
                self.bytes += len(data)
            except (ConnectionError, OSError, RuntimeError, asyncio.TimeoutError) as e:
                self.soak.fail("%s: sending failed (%s)" % (self.name, e), "echo-send")


async def prefill(host, port):
    """Fill the 1m ring once (10 members x 30 messages of 3.9 KB) so both
    workers have touched all of it before RSS is measured."""
    async def one(i):
        c = await wp.Client.connect(host, port, "/chat/prefill?nick=prefill%d" % i)
        text = "x" * 3900
        for k in range(30):
            c.send(wp.OP_TEXT, ("%d|%d|%s" % (i, k, text)).encode())
        await c.writer.drain()
        end = time.monotonic() + 10
        mine = 0
        try:
            while mine < 30 and time.monotonic() < end:
                op, data = await asyncio.wait_for(c.recv(), max(0.1, end - time.monotonic()))
                if data.find(b'"text":"%d|' % i) >= 0:
                    mine += 1
        except (wp.Closed, asyncio.TimeoutError):
            pass
        await c.close()
    await asyncio.gather(*[one(i) for i in range(10)])


# ---------------------------------------------------------------- checks

def rss_verdict(samples, seconds):
    """(start median, end median, allowed, windows text) in KiB: the 2nd
    minute against the last one, or the 2nd and last tenths of a run shorter
    than 10 minutes."""
    w = min(60.0, max(seconds / 10.0, 1.0))
    first = [r for t, r in samples if w <= t < 2 * w]
    last = [r for t, r in samples if seconds - w <= t <= seconds + 1]
    if not first or not last:
        return None
    a, b = statistics.median(first), statistics.median(last)
    allowed = a + max(0.10 * a, 8 * 1024)
    return a, b, allowed, "%d-%d s" % (w, 2 * w), "%d-%d s" % (seconds - w, seconds)


def check_rooms(soak, rooms):
    """Deliveries and per-room event sequences. Returns report figures."""
    sent = deliveries = expected_deliveries = lost = dup = compared = 0
    for room in rooms:
        keys = set(room.expected)
        sent += len(keys)
        for m in room.members:
            expected_deliveries += len(keys)
            for k in keys:
                n = m.got.get(k, 0)
                deliveries += min(n, 1)
                if n == 0:
                    lost += 1
                    soak.fail("%s never received %s's message %d" % (m.name, k[0], k[1]), "lost")
                elif n > 1:
                    dup += n - 1
                    soak.fail("%s received %s's message %d %d times" % (m.name, k[0], k[1], n), "dup")
            extra = set(m.got) - keys
            if extra:
                soak.fail("%s received %d soak messages nobody sent" % (m.name, len(extra)), "extra")
            missing_fins = [p.name for p in room.members if p.name not in m.fins]
            if missing_fins:
                soak.fail("%s never received the fin of %s" % (m.name, ", ".join(missing_fins)), "fin")
        # The window: from the room's first soak message to its last fin.
        lo = room_first_message(room)
        hi = max((max(m.fins.values()) for m in room.members if m.fins), default=0)
        if lo is None or hi < lo:
            soak.fail("%s: no window of soak messages to compare" % room.name, "window")
            continue
        seqs = {}
        for m in room.members:
            a = bisect.bisect_left(m.ids, lo)
            b = bisect.bisect_right(m.ids, hi)
            seqs[m.name] = m.ids[a:b]
        union = set()
        for s in seqs.values():
            union.update(s)
        compared += len(union)
        for name, s in seqs.items():
            if len(s) != len(union):
                miss = sorted(union - set(s))
                soak.fail("%s: %d events of %s (ids %d..%d) missing, e.g. %s"
                          % (name, len(miss), room.name, lo, hi, miss[:5]), "window")
    return sent, deliveries, expected_deliveries, lost, dup, compared


def room_first_message(room):
    """The smallest id at which any member saw a soak message of ROOM."""
    best = None
    for m in room.members:
        if m.first_soak_id is not None and (best is None or m.first_soak_id < best):
            best = m.first_soak_id
    return best


def check_log(soak, server):
    bad = [line for line in server.log_text().splitlines() if BAD_LOG.search(line)]
    for line in bad[:10]:
        soak.fail("error log: " + line.strip(), "log")
    if len(bad) > 10:
        soak.fail("error log: %d such lines in all" % len(bad), "log-count")
    return len(bad)


# ---------------------------------------------------------------- main

async def run(soak, server, abuse_host, abuse_local, tmp, per_ip):
    host, port = "127.0.0.1", server.port
    pids_start = server.workers()
    print("server up: master %d, workers %s, port %d" % (server.master, pids_start, port),
          file=sys.stderr, flush=True)
    await prefill(host, port)

    rooms = [Room(n) for n in ROOMS]
    members = []
    for room in rooms:
        for i in range(MEMBERS_PER_ROOM):
            m = Member(soak, host, port, room, i)
            room.members.append(m)
            members.append(m)
    await asyncio.gather(*[m.connect() for m in members])
    echoers = [Echoer(soak, host, port, i) for i in range(ECHO_CLIENTS)]
    await asyncio.gather(*[e.connect() for e in echoers])

    start, stop = asyncio.Event(), asyncio.Event()
    readers = [asyncio.ensure_future(x.reader()) for x in members + echoers]
    writers = [asyncio.ensure_future(m.publisher(start, stop)) for m in members]
    writers += [asyncio.ensure_future(e.writer(start, stop)) for e in echoers]

    abuse_out = os.path.join(tmp, "abuse.json")
    cmd = [sys.executable, os.path.join(HERE, "abuse.py"), "--host", abuse_host, "--port", str(port),
           "--seconds", str(soak.seconds), "--out", abuse_out, "--rooms", ",".join(ROOMS),
           "--max-message", str(MAX_MESSAGE), "--message-timeout", str(MESSAGE_TIMEOUT),
           "--handshake-timeout", str(HANDSHAKE_TIMEOUT), "--max-head", str(MAX_HEAD)]
    if abuse_local:
        cmd += ["--local", abuse_local]
    abuser = await asyncio.create_subprocess_exec(*cmd)
    soak.abuser_pid = abuser.pid

    t0 = time.monotonic()
    start.set()
    samples = []
    respawn_seen = None
    next_report = 60
    while True:
        t = time.monotonic() - t0
        if t >= soak.seconds:
            break
        rss, ws = server.rss_kib()
        samples.append((t, rss))
        if ws != pids_start and respawn_seen is None:
            respawn_seen = (t, ws)
            soak.fail("worker pids changed at %.0f s: %s -> %s" % (t, pids_start, ws), "respawn")
        if t >= next_report:
            print("  %4.0f s  rss %.1f MiB  failures %d" % (t, rss / 1024, len(soak.failures)),
                  file=sys.stderr, flush=True)
            next_report += 60
        if abuser.returncode is not None and t < soak.seconds - 15:
            soak.fail("abuse.py exited early with %s" % abuser.returncode, "abuser")
        await asyncio.sleep(max(0.0, min(1.0, soak.seconds - t)))
    duration = time.monotonic() - t0
    stop.set()
    await asyncio.gather(*writers)

    try:
        await asyncio.wait_for(abuser.wait(), 40)
    except asyncio.TimeoutError:
        abuser.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(abuser.wait(), 10)
        except asyncio.TimeoutError:
            abuser.kill()
            await abuser.wait()
    if abuser.returncode != 0:
        soak.fail("abuse.py exited with %s" % abuser.returncode, "abuser")
    soak.abuser_pid = None

    # Fins: one last message from every member, once the abusers are gone.
    for m, e in zip(members, await asyncio.gather(*[m.send_fin() for m in members],
                                                  return_exceptions=True)):
        if isinstance(e, Exception):
            soak.fail("%s: fin failed (%r)" % (m.name, e), "publish")
    end = time.monotonic() + 20
    while time.monotonic() < end:
        if (all(len(m.fins) == MEMBERS_PER_ROOM for m in members)
                and all(not e.pending for e in echoers)):
            break
        await asyncio.sleep(0.2)
    for e in echoers:
        if e.pending:
            soak.fail("%s: %d echoes never came back" % (e.name, len(e.pending)), "echo-lost")

    pids_end = server.workers()
    if pids_end != pids_start:
        soak.fail("workers at the end %s are not those at the start %s" % (pids_end, pids_start),
                  "respawn-end")
    for x in members + echoers:
        x.stopping = True
    await asyncio.gather(*[x.client.close() for x in members + echoers], return_exceptions=True)
    for r in readers:
        r.cancel()
    await asyncio.gather(*readers, return_exceptions=True)

    abuse = {"conns": {}, "outcomes": {}, "peak": 0}
    try:
        with open(abuse_out) as f:
            abuse = json.load(f)
    except (OSError, ValueError):
        soak.fail("abuse.py wrote no tallies", "abuser")
    for kind, n in abuse["conns"].items():
        if n == 0:
            soak.fail("abuse kind %s made no connection" % kind, "abuse-idle")
    # The server must end every hostile connection it is meant to end (the
    # abusers wait three times the relevant timeout and more), and never
    # serve a request whose body framing cannot be trusted.
    for kind, outcomes in abuse["outcomes"].items():
        if outcomes.get("not cut off"):
            soak.fail("%d %s connections were never cut off by the server"
                      % (outcomes["not cut off"], kind), "abuse-hang")
    served = sum(n for what, n in abuse["outcomes"].get("bad_http", {}).items()
                 if what.startswith("http 2"))
    if served:
        soak.fail("%d requests with duplicate Content-Length, Transfer-Encoding or an oversized "
                  "head were served" % served, "abuse-served")
    if per_ip and not abuse["outcomes"].get("per_ip_burst", {}).get("http 503"):
        soak.fail("%d connections from one address and not one 503 (max_connections_per_ip %d)"
                  % (abuse["conns"].get("per_ip_burst", 0), PER_IP), "abuse-per-ip")

    return dict(samples=samples, duration=duration, pids_start=pids_start, pids_end=pids_end,
                rss_by_process=list(server.last_rss),
                rooms=rooms, members=members, echoers=echoers, abuse=abuse)


def report(soak, server, r, per_ip, abuse_via, log_bad, stop_left):
    now = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    ok = lambda cond: "PASS" if cond else "FAIL"   # noqa: E731
    out = []
    out.append("wschat soak   %s   %d s of churn, chat and abuse at once, workers %d"
               % (now, round(r["duration"]), WORKERS))
    v = rss_verdict(r["samples"], soak.seconds)
    if v is None:
        soak.fail("too few RSS samples", "rss")
        out.append("rss       too few samples   FAIL")
    else:
        a, b, allowed, wa, wb = v
        peak = max(x for _, x in r["samples"])
        good = b <= allowed
        if not good:
            soak.fail("RSS grew: median %.1f MiB over %s, %.1f MiB over %s (allowed %.1f MiB)"
                      % (a / 1024, wa, b / 1024, wb, allowed / 1024), "rss")
        out.append("rss       start %.1f MiB (median %s), end %.1f MiB (median %s), allowed %.1f MiB, "
                   "peak %.1f MiB   %s" % (a / 1024, wa, b / 1024, wb, allowed / 1024, peak / 1024, ok(good)))
        byp = r["rss_by_process"]
        if byp:
            out.append("          at the end: master %.1f MiB, workers %s MiB (VmRSS, shared ring pages included)"
                       % (byp[0] / 1024, " + ".join("%.1f" % (x / 1024) for x in byp[1:])))
    same = r["pids_start"] == r["pids_end"]
    clean_stop = server.exit_status == 0 and not stop_left and "SIGKILL" not in server.stop_signals
    if server.exit_status != 0:
        soak.fail("wsmaster exited with status %s after %s" % (server.exit_status,
                                                               "+".join(server.stop_signals)), "exit")
    if stop_left:
        soak.fail("workers %s outlived the master" % stop_left, "exit")
    out.append("crashes   workers %s at start and end, %d bad log lines, stopped by %s, exit %s   %s"
               % (" ".join(map(str, r["pids_start"])) if same else "%s -> %s" % (r["pids_start"], r["pids_end"]),
                  log_bad, "+".join(server.stop_signals), server.exit_status,
                  ok(same and log_bad == 0 and clean_stop)))
    sent, got, want, lost, dup, compared = check_rooms(soak, r["rooms"])
    order = soak.suppressed.get("order", 0)
    disc = soak.suppressed.get("disconnect", 0)
    chat_ok = lost == 0 and dup == 0 and got == want and order == 0 and compared > 0 and not any(
        soak.suppressed.get(k) for k in ("corrupt", "extra", "fin", "window", "error", "gap", "room",
                                         "json", "binary", "text", "publish", "reconnect"))
    out.append("chat      %d members in %d rooms: %d messages sent, %d/%d deliveries, %d lost, "
               "%d duplicated, %d out of order; %d room events seen alike by every member   %s"
               % (len(r["members"]), len(r["rooms"]), sent, got, want, lost, dup, order, compared,
                  ok(chat_ok)))
    es = sum(e.sent for e in r["echoers"])
    er = sum(e.received for e in r["echoers"])
    eb = sum(e.bytes for e in r["echoers"])
    echo_ok = es == er and es > 0 and not any(soak.suppressed.get(k) for k in
                                              ("echo", "echo-lost", "echo-send"))
    out.append("echo      %d clients: %d messages (%.1f MiB) sent, %d echoed back intact   %s"
               % (len(r["echoers"]), es, eb / MIB, er, ok(echo_ok)))
    out.append("clients   %d disconnects of well-behaved clients   %s" % (disc, ok(disc == 0)))
    ab = r["abuse"]
    total = sum(ab["conns"].values())
    out.append("abuse     %d connections from %s (%.0f/s, at most %d open at once%s):"
               % (total, abuse_via, total / max(r["duration"], 1), ab.get("peak", 0),
                  ", max_connections_per_ip %d" % PER_IP if per_ip else ""))
    for kind, n in ab["conns"].items():
        top = sorted(ab["outcomes"].get(kind, {}).items(), key=lambda kv: -kv[1])[:5]
        out.append("          %-16s %7d   %s" % (kind, n, ", ".join("%s %d" % kv for kv in top)))
    out.append("result    %s" % ("PASS" if not soak.failures else
                                 "FAIL (%d failed assertions)" % sum(soak.suppressed.values())))
    print("\n".join(out), flush=True)


def main():
    ap = argparse.ArgumentParser(description="wschat soak test")
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 600)))
    ap.add_argument("--bin", default=os.environ.get("WSCHAT_BIN", "build/release/wsmaster"))
    ap.add_argument("--root", default=os.environ.get("WSCHAT_ROOT", "."))
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (config, logs)")
    a = ap.parse_args()
    if a.seconds < 20:
        ap.error("--seconds must be at least 20")
    binary = os.path.abspath(a.bin)
    root = os.path.abspath(a.root)
    if not os.access(binary, os.X_OK):
        sys.exit("soak: no server binary at %s (make build/release/wsmaster)" % binary)

    soak = Soak(a.seconds)
    tmp = tempfile.mkdtemp(prefix="wschat-soak-")
    v6 = ipv6_loopback()
    server = Server(binary, root, tmp, free_port(v6), v6)
    # Abusers come from another address than the well-behaved clients, so
    # the per-address limit stops them and never the clients under test.
    abuse_host, abuse_local = ("::1", None) if v6 else ("127.0.0.1", "127.0.0.2")
    abuse_via = "[::1]" if v6 else "127.0.0.2"
    rc = 1
    try:
        per_ip = server.configure()
        server.start()
        loop = asyncio.new_event_loop()
        try:
            r = loop.run_until_complete(run(soak, server, abuse_host, abuse_local, tmp, per_ip))
        finally:
            loop.close()
        last = server.workers()
        left = server.stop(last)
        log_bad = check_log(soak, server)
        report(soak, server, r, per_ip, abuse_via, log_bad, left)
        rc = 1 if soak.failures else 0
    except KeyboardInterrupt:
        print("soak: interrupted", file=sys.stderr)
    except Exception as e:      # the server would not start, a client gave up, ...
        print("soak: error: %r" % e, file=sys.stderr)
    finally:
        if soak.abuser_pid is not None:
            try:
                os.kill(soak.abuser_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if server.proc is not None and server.proc.poll() is None:
            server.stop(server.workers())
        if soak.failures or rc != 0:
            bad = [ln for ln in server.log_text().splitlines() if BAD_LOG.search(ln)]
            if bad:
                print("error log lines:\n  " + "\n  ".join(bad[:20]), file=sys.stderr)
        if a.keep:
            print("soak: kept %s" % tmp, file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
