"""
wsproto: a small RFC 6455 client over asyncio streams, written for the soak
test (tests/soak/soak.py). It never shares code with the server.

Two levels:
  - frame() builds any client frame, including broken ones (wrong length,
    reserved bits, unmasked), for the abusers;
  - Client is a strict, well-behaved client: it checks every server frame
    (no mask, no reserved bits, control frames short and whole, text frames
    valid UTF-8, continuation frames only inside a message) and raises
    ProtocolError on any violation, answers pings, and reassembles messages.
"""
import asyncio
import base64
import hashlib
import os
import socket
import struct

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA


class ProtocolError(Exception):
    """The server broke RFC 6455 or the HTTP handshake."""


class Closed(Exception):
    """The server closed the WebSocket (code None: no close frame, just EOF)."""

    def __init__(self, code, reason=b""):
        super().__init__("closed %s %r" % (code, reason))
        self.code = code
        self.reason = reason


def mask_payload(key, data):
    """XOR DATA with the 4-byte KEY repeated (one big-integer XOR: fast enough)."""
    n = len(data)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def frame(opcode, payload=b"", fin=True, rsv=0, masked=True, length=None):
    """One client frame. LENGTH overrides the announced payload length."""
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    n = len(payload) if length is None else length
    mbit = 0x80 if masked else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + mask_payload(key, payload)


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


def new_key():
    return base64.b64encode(os.urandom(16)).decode()


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def upgrade_request(path, host, key, extra=""):
    return ("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n"
            % (path, host, key, extra)).encode()


def parse_head(raw):
    """(status, {lower-case name: value}) of an HTTP response head."""
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError("bad status line %r" % lines[0])
    headers = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ProtocolError("bad header line %r" % line)
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


async def read_head(reader, timeout):
    raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    return parse_head(raw)


async def open_tcp(host, port, local=None, timeout=5.0):
    """(reader, writer); LOCAL is a source address to bind, or None."""
    return await asyncio.wait_for(
        asyncio.open_connection(host, port, local_addr=(local, 0) if local else None,
                                limit=1 << 20),
        timeout)


def reset(writer):
    """Drop the connection with a TCP RST (SO_LINGER 0), not a FIN."""
    if writer is None:
        return
    try:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()


def hard_close(writer):
    if writer is not None:
        writer.transport.abort()


async def read_frame(reader):
    """(fin, rsv, opcode, masked, payload) of one server frame; EOF raises Closed(None)."""
    try:
        b0, b1 = await reader.readexactly(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await reader.readexactly(8))
        key = await reader.readexactly(4) if b1 & 0x80 else None
        if n > (64 << 20):
            raise ProtocolError("server frame of %d bytes" % n)
        payload = await reader.readexactly(n) if n else b""
    except (asyncio.IncompleteReadError, ConnectionError):
        raise Closed(None)
    if key is not None:
        payload = mask_payload(key, payload)
    return bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, key is not None, payload


class Client:
    """A strict client of one WebSocket connection."""

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer
        self.close_code = None

    @classmethod
    async def connect(cls, host, port, path, local=None, timeout=10.0, extra=""):
        reader, writer = await open_tcp(host, port, local, timeout)
        try:
            key = new_key()
            writer.write(upgrade_request(path, "%s:%d" % (host, port), key, extra))
            status, headers = await read_head(reader, timeout)
            if status != 101:
                raise ProtocolError("handshake of %s answered %d" % (path, status))
            if headers.get("sec-websocket-accept") != accept_for(key):
                raise ProtocolError("bad Sec-WebSocket-Accept %r" % headers.get("sec-websocket-accept"))
            if headers.get("upgrade", "").lower() != "websocket":
                raise ProtocolError("no Upgrade: websocket in the 101")
        except BaseException:
            hard_close(writer)
            raise
        return cls(reader, writer)

    def send(self, opcode, payload=b"", fin=True):
        self.writer.write(frame(opcode, payload, fin))

    async def send_drain(self, opcode, payload=b"", fin=True, timeout=10.0):
        self.send(opcode, payload, fin)
        await asyncio.wait_for(self.writer.drain(), timeout)

    async def recv(self):
        """(opcode, payload) of the next data message; pings are answered.
        A close frame is answered and raises Closed(code)."""
        parts = []
        opcode = None
        while True:
            fin, rsv, op, masked, payload = await read_frame(self.reader)
            if rsv:
                raise ProtocolError("server frame with reserved bits %d" % rsv)
            if masked:
                raise ProtocolError("masked server frame")
            if op >= 8:
                if not fin or len(payload) > 125:
                    raise ProtocolError("bad control frame (fin %d, %d bytes)" % (fin, len(payload)))
                if op == OP_PING:
                    self.send(OP_PONG, payload)
                    continue
                if op == OP_PONG:
                    continue
                if op == OP_CLOSE:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                    if len(payload) == 1:
                        raise ProtocolError("close frame of one byte")
                    self.close_code = code
                    try:
                        self.send(OP_CLOSE, payload[:2])
                    except (ConnectionError, RuntimeError):
                        pass
                    raise Closed(code, payload[2:])
                raise ProtocolError("reserved control opcode %d" % op)
            if op == OP_CONT:
                if opcode is None:
                    raise ProtocolError("continuation frame outside a message")
            elif op in (OP_TEXT, OP_BINARY):
                if opcode is not None:
                    raise ProtocolError("new message inside a fragmented one")
                opcode = op
            else:
                raise ProtocolError("reserved data opcode %d" % op)
            parts.append(payload)
            if fin:
                data = b"".join(parts)
                if opcode == OP_TEXT:
                    try:
                        data.decode("utf-8")
                    except UnicodeDecodeError:
                        raise ProtocolError("text message that is not UTF-8")
                return opcode, data

    async def close(self, code=1000, timeout=3.0):
        """Closing handshake: send close, wait for the server's close or EOF."""
        try:
            self.send(OP_CLOSE, close_payload(code))
            await asyncio.wait_for(self._wait_close(), timeout)
        except (Closed, ConnectionError, asyncio.TimeoutError, ProtocolError, RuntimeError):
            pass
        finally:
            hard_close(self.writer)

    async def _wait_close(self):
        while True:
            await self.recv()

    def abort(self):
        hard_close(self.writer)
