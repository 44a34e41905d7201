"""
abuse: every kind of hostile client of the soak test at once, each kind in
its own task(s), each looping until the deadline: connect, misbehave, get
cut off (close frame, 400/431/503, EOF, reset), count what happened, go
again. Run by soak.py as a separate, niced process so its CPU never starves
the well-behaved clients it is meant to disturb; it writes its tallies as
JSON to --out when it ends.

  python3 abuse.py --host ::1 --port P [--local ADDR] --seconds N --out FILE
                   --rooms a,b,c --max-message BYTES --message-timeout SEC
                   --handshake-timeout SEC --max-head BYTES

Tallies: conns[kind] = connections opened, outcomes[kind][what] = how each
one ended ("close 1008", "http 400", "eof", "blocked", ...).
"""
import argparse
import asyncio
import collections
import json
import os
import random
import signal
import struct
import sys
import time

sys.dont_write_bytecode = True    # no __pycache__ in the checkout
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wsproto as wp  # noqa: E402

NETERR = (ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.TimeoutError,
          asyncio.LimitOverrunError, wp.Closed, wp.ProtocolError, ValueError)


class Abuse:
    def __init__(self, a):
        self.host = a.host
        self.port = a.port
        self.local = a.local
        self.deadline = time.monotonic() + a.seconds
        self.rooms = a.rooms.split(",")
        self.max_message = a.max_message
        self.message_timeout = a.message_timeout
        self.handshake_timeout = a.handshake_timeout
        self.max_head = a.max_head
        self.conns = collections.Counter()
        self.outcomes = collections.defaultdict(collections.Counter)
        self.seq = 0
        self.live = 0
        self.peak = 0
        self.open_by_task = {}  # task -> writers it opened and has not closed

    # ---- helpers ----

    def running(self):
        return time.monotonic() < self.deadline

    def note(self, kind, what):
        self.outcomes[kind][what] += 1

    def room(self, wb_share=0.3):
        """A room for an abuser: sometimes a well-behaved one, else one of ours."""
        if random.random() < wb_share:
            return random.choice(self.rooms)
        return "abuse-%d" % random.randrange(8)

    def fresh_room(self):
        self.seq += 1
        return "churn-%d-%d" % (os.getpid(), self.seq)

    async def tcp(self, kind):
        r, w = await wp.open_tcp(self.host, self.port, self.local, 5.0)
        self.conns[kind] += 1
        self.live += 1
        self.peak = max(self.peak, self.live)
        self.open_by_task.setdefault(asyncio.current_task(), set()).add(w)
        return r, w

    def done(self, w, rst=False):
        mine = self.open_by_task.get(asyncio.current_task())
        if mine is None or w not in mine:
            return      # already closed
        mine.discard(w)
        self.live -= 1
        if rst:
            wp.reset(w)
        else:
            wp.hard_close(w)

    async def ws(self, kind, path, extra=""):
        """A WebSocket of KIND at PATH: (reader, writer) after a 101, or None
        (the refusal, e.g. http 503 from the per-address limit, is noted)."""
        r, w = await self.tcp(kind)
        key = wp.new_key()
        w.write(wp.upgrade_request(path, "soak", key, extra))
        try:
            status, _ = await wp.read_head(r, 5.0)
        except NETERR as e:
            self.note(kind, "handshake " + type(e).__name__)
            self.done(w)
            return None
        if status != 101:
            self.note(kind, "http %d" % status)
            self.done(w)
            return None
        return r, w

    async def await_close(self, kind, r, w, timeout):
        """Read (answering pings) until the server closes; note the close code."""
        c = wp.Client(r, w)
        try:
            await asyncio.wait_for(self._drain(c), timeout)
        except wp.Closed as e:
            self.note(kind, "eof" if e.code is None else "close %d" % e.code)
        except asyncio.TimeoutError:
            self.note(kind, "not cut off")
        except NETERR as e:
            self.note(kind, type(e).__name__)
        self.done(w)

    @staticmethod
    async def _drain(c):
        while True:
            await c.recv()

    async def forever(self, kind, body, pause):
        """Run BODY again and again until the deadline, pausing PAUSE seconds."""
        me = asyncio.current_task()
        try:
            while self.running():
                try:
                    await body(kind)
                except NETERR as e:
                    self.note(kind, type(e).__name__)
                finally:
                    for w in list(self.open_by_task.get(me, ())):
                        self.done(w, rst=True)   # a round that ended by an exception
                await asyncio.sleep(pause * random.uniform(0.5, 1.5))
        finally:
            for w in list(self.open_by_task.pop(me, ())):
                self.live -= 1
                wp.hard_close(w)

    # ---- the abuse kinds ----

    async def churn(self, kind):
        """Connect/handshake/close, connect-then-reset, half a request then
        reset: on chat rooms (ours, the well-behaved ones, brand new ones)
        and on /echo."""
        v = random.randrange(6)
        if v == 5:
            _, w = await self.tcp(kind)
            w.write(b"GET /chat/" + self.room().encode() + b" HTTP/1.1\r\nHost: x\r\nUpg")
            await asyncio.sleep(0.01)
            self.note(kind, "half request, reset")
            self.done(w, rst=True)
            return
        path = random.choice(["/echo", "/chat/" + self.room(0.5), "/chat/" + self.fresh_room(),
                              "/chat?nick=churner"])
        rw = await self.ws(kind, path)
        if rw is None:
            return
        r, w = rw
        if v <= 1:
            c = wp.Client(r, w)
            if v == 1 and path != "/echo":
                c.send(wp.OP_TEXT, b"churn says hi")
            c.send(wp.OP_CLOSE, wp.close_payload(1000))
            await self.await_close(kind, r, w, 5.0)
        elif v == 2:
            self.note(kind, "reset")
            self.done(w, rst=True)
        elif v == 3:
            w.write(wp.frame(wp.OP_TEXT, b"half a frame", fin=False)[:5])
            self.note(kind, "reset mid-frame")
            self.done(w, rst=True)
        else:
            self.note(kind, "fin without close frame")
            self.done(w)

    async def flood_noread(self, kind):
        """Tiny frames as fast as the socket takes them (pings, empty binary,
        malformed and wrongly typed JSON), never reading a byte back."""
        path = random.choice(["/echo", "/chat/" + self.room(0.2)])
        rw = await self.ws(kind, path)
        if rw is None:
            return
        r, w = rw
        w.transport.pause_reading()     # asyncio would otherwise buffer megabytes for us
        batch = b"".join([
            wp.frame(wp.OP_PING, b"p" * 100),
            wp.frame(wp.OP_BINARY, b""),
            wp.frame(wp.OP_TEXT, b'{"type":'),
            wp.frame(wp.OP_TEXT, b'{"type":"bogus","text":1}'),
            wp.frame(wp.OP_TEXT, b'{"type":"message"}'),
            wp.frame(wp.OP_PING, b""),
        ] * 50)
        end = time.monotonic() + random.uniform(4, 10)
        what = "flooded until our deadline"
        try:
            while time.monotonic() < end and self.running():
                w.write(batch)
                try:
                    await asyncio.wait_for(w.drain(), 2.0)
                except asyncio.TimeoutError:
                    what = "blocked (server stopped reading)"
                    await asyncio.sleep(max(0.0, end - time.monotonic()))
                    break
                await asyncio.sleep(0.01)
        except (ConnectionError, OSError):
            what = "cut off"
        self.note(kind, what)
        self.done(w, rst=True)

    async def pipeline_noread(self, kind):
        """Pipelined GETs, thousands of them, never reading an answer (all
        of them keep-alive: an error answer would end the connection)."""
        _, w = await self.tcp(kind)
        w.transport.pause_reading()
        reqs = b"".join([b"GET /chat.js HTTP/1.1\r\nHost: x\r\n\r\n",
                         b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n",
                         b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
                         b"GET /favicon.svg HTTP/1.1\r\nHost: x\r\n\r\n"] * 100)
        what = "sent everything"
        try:
            for _ in range(1000):     # 14 MB: more than the kernel buffers hold
                w.write(reqs)
                try:
                    await asyncio.wait_for(w.drain(), 2.0)
                except asyncio.TimeoutError:
                    what = "blocked (server stopped reading)"
                    break
            await asyncio.sleep(random.uniform(1, 4))
        except (ConnectionError, OSError):
            what = "cut off"
        self.note(kind, what)
        self.done(w, rst=True)

    async def since_noread(self, kind):
        """Join with ?since=1 (replay all the ring holds) and never read."""
        rw = await self.ws(kind, "/chat/%s?since=1&nick=lurker" % self.room(0.5))
        if rw is None:
            return
        _, w = rw
        w.transport.pause_reading()
        await asyncio.sleep(random.uniform(2, 8))
        # Closed by then (1013) or not: the server must cope either way.
        self.note(kind, "held, then reset")
        self.done(w, rst=True)

    async def frag_hold(self, kind):
        """Begin a fragmented message and keep it open with pings only: the
        server must close with 1008 once message_timeout has passed."""
        path = random.choice(["/echo", "/chat/" + self.room(0.2)])
        rw = await self.ws(kind, path)
        if rw is None:
            return
        r, w = rw
        w.write(wp.frame(random.choice([wp.OP_TEXT, wp.OP_BINARY]), b"the first part", fin=False))
        trickle = random.random() < 0.5    # also empty continuation frames

        async def pinger():
            try:
                while True:
                    await asyncio.sleep(0.4)
                    w.write(wp.frame(wp.OP_PING, b"still here"))
                    if trickle:
                        w.write(wp.frame(wp.OP_CONT, b"", fin=False))
            except (ConnectionError, OSError, RuntimeError):
                pass

        t = asyncio.ensure_future(pinger())
        try:
            await self.await_close(kind, r, w, self.message_timeout * 3 + 5)
        finally:
            t.cancel()

    async def rate_flood(self, kind):
        """Chat messages as fast as the socket takes them, reading the
        answers: rate_limited errors, then a 1008 close."""
        rw = await self.ws(kind, "/chat/%s?nick=flooder" % self.room(0.4))
        if rw is None:
            return
        r, w = rw

        async def writer():
            try:
                i = 0
                while True:
                    w.write(b"".join(wp.frame(wp.OP_TEXT, b"flood %d" % (i + k)) for k in range(20)))
                    i += 20
                    await asyncio.wait_for(w.drain(), 5.0)
                    await asyncio.sleep(0.005)
            except (ConnectionError, OSError, RuntimeError, asyncio.TimeoutError):
                pass

        t = asyncio.ensure_future(writer())
        try:
            await self.await_close(kind, r, w, 20.0)
        finally:
            t.cancel()

    async def bad_http(self, kind):
        """Duplicate Content-Length, Content-Length with Transfer-Encoding,
        an oversized head, too many headers: 400 or 431, never a crash."""
        v = random.randrange(6)
        if v == 0:
            req = b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n"
        elif v == 1:
            req = (b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   b"Sec-WebSocket-Key: " + wp.new_key().encode() + b"\r\nSec-WebSocket-Version: 13\r\n"
                   b"Content-Length: 5\r\nContent-Length: 0\r\n\r\nhello")
        elif v == 2:
            req = (b"GET /index.html HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        elif v == 3:
            req = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (self.max_head + 16) + b"\r\n\r\n"
        elif v == 4:
            req = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(300)) + b"\r\n"
        else:
            req = b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nAGET / HTTP/1.1\r\n\r\n"
        r, w = await self.tcp(kind)
        try:
            w.write(req)
            status, _ = await wp.read_head(r, 5.0)
            self.note(kind, "http %d" % status)
        except NETERR as e:
            self.note(kind, type(e).__name__)
        self.done(w)

    async def bad_utf8(self, kind):
        """Text that is not UTF-8 (whole, split across fragments, in a close
        reason): 1007."""
        path = random.choice(["/echo", "/chat/" + self.room(0.2)])
        rw = await self.ws(kind, path)
        if rw is None:
            return
        r, w = rw
        bad = random.choice([b"\xff", b"ok \xc0\xaf", b"\xed\xa0\x80 surrogate", b"\xf4\x90\x80\x80",
                             b"caf\xc3", b"\xe2\x82"])
        v = random.randrange(3)
        if v == 0:
            w.write(wp.frame(wp.OP_TEXT, bad))
        elif v == 1:
            # The bad sequence split across two fragments (the second may be empty).
            w.write(wp.frame(wp.OP_TEXT, b"valid start " + bad[:1], fin=False) +
                    wp.frame(wp.OP_CONT, bad[1:], fin=True))
        else:
            w.write(wp.frame(wp.OP_CLOSE, wp.close_payload(1000, b"bye \xff")))
        await self.await_close(kind, r, w, 5.0)

    async def oversize(self, kind):
        """max_message+1 bytes in one frame or across fragments, and frames
        no server may accept (64-bit length with the top bit, long ping,
        reserved bits, unmasked): 1009 or 1002."""
        path = random.choice(["/echo", "/chat/" + self.room(0.2)])
        rw = await self.ws(kind, path)
        if rw is None:
            return
        r, w = rw
        v = random.randrange(6)
        big = self.max_message + 1
        try:
            if v == 0:
                w.write(wp.frame(wp.OP_BINARY, os.urandom(big)))
            elif v == 1:
                half = big // 2
                w.write(wp.frame(wp.OP_TEXT, b"x" * half, fin=False) +
                        wp.frame(wp.OP_CONT, b"y" * (big - half), fin=True))
            elif v == 2:
                w.write(struct.pack("!BBQ", 0x82, 0xFF, 1 << 63) + os.urandom(4))
            elif v == 3:
                w.write(wp.frame(wp.OP_PING, b"z" * 126))
            elif v == 4:
                w.write(wp.frame(wp.OP_TEXT, b"rsv", rsv=random.choice([1, 2, 4])))
            else:
                w.write(wp.frame(wp.OP_TEXT, b"unmasked", masked=False))
        except (ConnectionError, OSError):
            pass
        await self.await_close(kind, r, w, 5.0)

    async def slowloris(self, kind):
        """A request head trickled a byte at a time, never finished: the
        server must drop it at handshake_timeout."""
        r, w = await self.tcp(kind)
        head = (b"GET /chat/" + self.room().encode() + b" HTTP/1.1\r\nHost: x\r\n" +
                b"X-Slow: " + b"s" * 4000)
        end = time.monotonic() + self.handshake_timeout * 3 + 5
        what = "not cut off"
        i = 0
        try:
            while time.monotonic() < end:
                if i < len(head):
                    w.write(head[i:i + 1])
                    i += 1
                try:
                    data = await asyncio.wait_for(r.read(4096), 0.25)
                except asyncio.TimeoutError:
                    continue
                if not data:
                    what = "eof"
                else:
                    line = data.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
                    what = "http " + line[1] if len(line) > 1 and line[0].startswith("HTTP/") else "garbage"
                break
        except (ConnectionError, OSError) as e:
            what = type(e).__name__
        self.note(kind, what)
        self.done(w)

    async def per_ip_burst(self, kind):
        """More connections from one address than max_connections_per_ip:
        the extra ones must get 503 (each sends a keep-alive GET, then all
        are read at once and closed)."""
        ws = []
        try:
            for _ in range(300):
                if not self.running():
                    break
                try:
                    r, w = await self.tcp(kind)
                except NETERR as e:
                    self.note(kind, type(e).__name__)
                    continue
                w.write(b"GET /favicon.svg HTTP/1.1\r\nHost: x\r\n\r\n")
                ws.append((r, w))

            async def status(r):
                try:
                    s, _ = await wp.read_head(r, 5.0)
                    return "http %d" % s
                except NETERR as e:
                    return type(e).__name__

            for what in await asyncio.gather(*[status(r) for r, _ in ws]):
                self.note(kind, what)
            await asyncio.sleep(1.0)
        finally:
            for _, w in ws:
                self.done(w)

    # ---- all of them ----

    async def run(self):
        plan = [  # kind, method, parallel loops, pause between rounds (s)
            ("churn", self.churn, 6, 0.02),
            ("flood_noread", self.flood_noread, 2, 0.5),
            ("pipeline_noread", self.pipeline_noread, 2, 0.5),
            ("since_noread", self.since_noread, 3, 0.3),
            ("frag_hold", self.frag_hold, 3, 0.2),
            ("rate_flood", self.rate_flood, 2, 0.5),
            ("bad_http", self.bad_http, 2, 0.02),
            ("bad_utf8", self.bad_utf8, 2, 0.02),
            ("oversize", self.oversize, 2, 0.05),
            ("slowloris", self.slowloris, 16, 0.2),
            ("per_ip_burst", self.per_ip_burst, 1, 15.0),
        ]
        tasks = []
        for kind, fn, n, pause in plan:
            self.conns[kind] += 0
            for _ in range(n):
                tasks.append(asyncio.ensure_future(self.forever(kind, fn, pause)))
        while self.running():          # SIGTERM moves the deadline to now
            await asyncio.sleep(min(1.0, max(0.0, self.deadline - time.monotonic())))
        # Rounds under way finish within a few seconds; cut the slow ones.
        _, pending = await asyncio.wait(tasks, timeout=12.0)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--local", default=None)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--rooms", required=True)
    ap.add_argument("--max-message", type=int, required=True)
    ap.add_argument("--message-timeout", type=float, required=True)
    ap.add_argument("--handshake-timeout", type=float, required=True)
    ap.add_argument("--max-head", type=int, required=True)
    a = ap.parse_args()
    try:
        os.nice(5)
    except OSError:
        pass
    ab = Abuse(a)
    loop = asyncio.new_event_loop()
    # SIGTERM from soak.py (it gave up waiting): end now, still write tallies.
    loop.add_signal_handler(signal.SIGTERM, lambda: setattr(ab, "deadline", 0))
    loop.run_until_complete(ab.run())
    loop.close()
    with open(a.out + ".tmp", "w") as f:
        json.dump({"conns": ab.conns, "outcomes": ab.outcomes, "peak": ab.peak}, f)
    os.rename(a.out + ".tmp", a.out)


if __name__ == "__main__":
    main()
