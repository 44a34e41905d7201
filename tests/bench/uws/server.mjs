// The peer of `make bench`: the subset of wschat's wire protocol that the
// wsbench scenarios drive, on uWebSockets.js (npm package `uwebsockets`,
// a republication of uWebSockets.js binaries), so join, echo and rooms
// can be run against both servers on the same machine in the same run.
//
//   node server.mjs PORT        listens on 127.0.0.1:PORT until SIGTERM/SIGINT
//
// What it does, per endpoint (the work wschat does, minus what the scenarios
// never exercise):
//   /echo                 every text or binary message back, same opcode
//   /chat, /chat/<room>   ?nick=; welcome JSON, the room's last 10 events
//                         (history_size 10, as in the bench config), then
//                         history_end. An input text is parsed as JSON when
//                         it starts with '{' ({"type":"message","text":...}
//                         or {"type":"nick",...}), otherwise taken as the
//                         text; the message event is built with the next
//                         global id, a timestamp, room, uid and nick, kept
//                         in the room's history and published to the room's
//                         uWS topic, the sender included (wschat echoes a
//                         member's own message too). Rooms of at most 100
//                         members (wschat's presence_events_max default) get
//                         join/leave events the same way; a larger room gets
//                         a {"type":"presence"} count once a second when it
//                         changed. Not done: ?since= resume, rate limits,
//                         nick validation beyond length, shared memory
//                         between processes (this is one thread).
import uWS from 'uwebsockets';
import { randomUUID } from 'node:crypto';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port < 1 || port > 65535) {
    console.error('usage: node server.mjs PORT');
    process.exit(2);
}

const HISTORY = 10;
const PRESENCE_EVENTS_MAX = 100;
const ROOM_RE = /^[A-Za-z0-9_-]{1,32}$/;
const decoder = new TextDecoder('utf-8');

let lastId = 0;
// name -> { online, history: [event strings], presence: last count told }
const rooms = new Map();

function roomOf(name) {
    let r = rooms.get(name);
    if (!r) {
        r = { online: 0, history: [], told: 0 };
        rooms.set(name, r);
    }
    return r;
}

// Build the event once, keep it for newcomers, publish it to the room.
function publish(app, name, r, fields) {
    const ev = JSON.stringify({ type: fields.type, id: ++lastId, ts: Date.now(),
                                ...fields.body });
    r.history.push(ev);
    if (r.history.length > HISTORY)
        r.history.shift();
    app.publish('room/' + name, ev, false);
}

function sendError(ws, code, reason) {
    ws.send(JSON.stringify({ type: 'error', code, reason }), false);
}

const app = uWS.App();

app.ws('/echo', {
    compression: uWS.DISABLED,
    maxPayloadLength: 1024 * 1024,
    maxBackpressure: 4 * 1024 * 1024,
    idleTimeout: 60,
    message: (ws, message, isBinary) => {
        ws.send(message, isBinary);
    },
});

const chat = {
    compression: uWS.DISABLED,
    maxPayloadLength: 1024 * 1024,
    maxBackpressure: 4 * 1024 * 1024,   // max_send_queue 4m in the bench
    idleTimeout: 60,
    upgrade: (res, req, context) => {
        const room = req.getParameter(0) || 'lobby';
        if (!ROOM_RE.test(room)) {
            res.writeStatus('404 Not Found').end();
            return;
        }
        let nick = req.getQuery('nick');
        nick = nick ? decodeURIComponent(nick) : '';
        const uid = randomUUID();
        if (nick.length < 1 || nick.length > 32)
            nick = 'guest-' + uid.slice(0, 4);
        res.upgrade({ room, nick, uid },
                    req.getHeader('sec-websocket-key'),
                    req.getHeader('sec-websocket-protocol'),
                    req.getHeader('sec-websocket-extensions'),
                    context);
    },
    open: (ws) => {
        const u = ws.getUserData();
        const r = roomOf(u.room);
        r.online++;
        ws.send(JSON.stringify({ type: 'welcome', uid: u.uid, nick: u.nick,
                                 room: u.room, online: r.online,
                                 last_id: lastId }), false);
        for (const ev of r.history)
            ws.send(ev, false);
        ws.send('{"type":"history_end"}', false);
        ws.subscribe('room/' + u.room);
        if (r.online <= PRESENCE_EVENTS_MAX)
            publish(app, u.room, r, { type: 'join', body: {
                room: u.room, uid: u.uid, nick: u.nick, online: r.online } });
    },
    message: (ws, message, isBinary) => {
        const u = ws.getUserData();
        if (isBinary) {
            sendError(ws, 'binary', 'binary messages are not chat');
            return;
        }
        let text = decoder.decode(message);
        if (text.charCodeAt(0) === 0x7b) {            // '{': a JSON input
            let v;
            try {
                v = JSON.parse(text);
            } catch {
                v = null;
            }
            if (v && v.type === 'nick' && typeof v.nick === 'string' &&
                v.nick.length >= 1 && v.nick.length <= 32) {
                const r = roomOf(u.room);
                const old = u.nick;
                u.nick = v.nick;
                publish(app, u.room, r, { type: 'nick', body: {
                    room: u.room, uid: u.uid, nick: u.nick, old } });
                return;
            }
            if (!v || v.type !== 'message' || typeof v.text !== 'string') {
                sendError(ws, 'bad_request', 'expected {"type":"message","text":...}');
                return;
            }
            text = v.text;
        }
        if (text.length === 0) {
            sendError(ws, 'empty', 'empty message');
            return;
        }
        if (Buffer.byteLength(text) > 4096) {
            sendError(ws, 'too_long', 'text over max_text');
            return;
        }
        publish(app, u.room, roomOf(u.room), { type: 'message', body: {
            room: u.room, uid: u.uid, nick: u.nick, text } });
    },
    close: (ws) => {
        const u = ws.getUserData();
        const r = rooms.get(u.room);
        if (!r)
            return;
        r.online--;
        if (r.online + 1 <= PRESENCE_EVENTS_MAX)
            publish(app, u.room, r, { type: 'leave', body: {
                room: u.room, uid: u.uid, nick: u.nick, online: r.online } });
        if (r.online === 0)
            rooms.delete(u.room);
    },
};
app.ws('/chat', chat);
app.ws('/chat/:room', chat);

// Large rooms: one coalesced count a second, only when it changed.
const presenceTimer = setInterval(() => {
    for (const [name, r] of rooms) {
        if (r.online > PRESENCE_EVENTS_MAX && r.online !== r.told) {
            r.told = r.online;
            app.publish('room/' + name, JSON.stringify({
                type: 'presence', room: name, online: r.online }), false);
        }
    }
}, 1000);

let listenSocket = null;
app.listen('127.0.0.1', port, (s) => {
    if (!s) {
        console.error(`uws peer: cannot listen on 127.0.0.1:${port}`);
        process.exit(1);
    }
    listenSocket = s;
    console.error(`uws peer: listening on 127.0.0.1:${port}`);
});

function stop() {
    clearInterval(presenceTimer);
    if (listenSocket)
        uWS.us_listen_socket_close(listenSocket);
    app.close?.();
    process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
