// wschat browser client: one WebSocket to /chat/<room>, a timeline, a composer.
//
// Delivery model: every event from the server carries a global, increasing
// id. The page remembers the highest id it has seen (lastId) and reconnects
// with ?since=lastId, so the server replays exactly what was missed. Ids are
// also kept in a set so that a replay overlapping what is on screen can never
// show a message twice. A message typed here stays "pending" until the server
// echoes it back under one of this page's uids (each connection gets a new
// uid); pending messages are re-sent after a reconnect unless the replay
// shows they already arrived.
//
// Safety: user-provided strings reach the DOM only through textContent.
// Nothing here uses innerHTML, and the server's CSP forbids inline script.
'use strict';

(() => {
  const ROOM_RE = /^[A-Za-z0-9_-]{1,32}$/;
  const NICK_KEY = 'wschat.nick';
  const UIDS_KEY = 'wschat.uids';
  const UIDS_KEPT = 200;              // own uids remembered across reloads
  const BACKOFF_BASE_MS = 500;
  const BACKOFF_MAX_MS = 30000;
  const SYNC_TIMEOUT_MS = 15000;      // connect + welcome + history, or retry
  const GROUP_MS = 5 * 60 * 1000;     // consecutive messages by one author fold together
  const MAX_ITEMS = 1500;             // the DOM keeps this many timeline rows
  const AVATAR_COLOURS = 8;

  const $ = (id) => document.getElementById(id);
  const ui = {
    roomName: $('room-name'), status: $('status'), statusText: $('status-text'),
    online: $('online'), roomForm: $('room-form'), roomInput: $('room-input'),
    roomError: $('room-error'), nickButton: $('nick-button'), nickDisplay: $('nick-display'),
    nickAvatar: $('nick-avatar'), nickForm: $('nick-form'), nickInput: $('nick-input'),
    nickCancel: $('nick-cancel'), nickHelp: $('nick-help'), scroller: $('scroller'),
    list: $('messages'), empty: $('empty'), jump: $('jump'), composer: $('composer'),
    text: $('composer-text'), announcer: $('announcer'), retry: $('retry'),
  };

  const state = {
    room: 'lobby',
    nick: loadNick(),
    ws: null,
    gen: 0,                 // bumped per connection; stale socket callbacks check it
    uids: loadUids(),       // every uid the server gave this browser: "own" messages
    lastId: null,           // highest event id seen in this room (null: none yet)
    sinceSent: null,        // the since= of the current connection
    welcomeLastId: 0,
    seen: new Set(),
    synced: false,          // between history_end and close
    inHistory: false,
    historyMark: null,      // the divider opening the current replay
    historyCount: 0,
    epoch: null,
    attempt: 0,
    retryTimer: null,
    syncTimer: null,
    tick: null,
    retryAt: 0,
    pending: [],            // { text, li, sent }
    everSynced: false,
    lastDay: '',            // date of the last message row, for day dividers
  };

  // ---- small helpers -------------------------------------------------------

  function loadNick() {
    try { return localStorage.getItem(NICK_KEY) || ''; } catch { return ''; }
  }

  // Each connection gets a fresh uid; remembering ours lets a reloaded page
  // still tell its own messages in the replayed history.
  function loadUids() {
    try {
      const list = JSON.parse(localStorage.getItem(UIDS_KEY) || '[]');
      return new Set(Array.isArray(list) ? list.filter((u) => typeof u === 'string') : []);
    } catch { return new Set(); }
  }

  function rememberUid(uid) {
    if (typeof uid !== 'string' || state.uids.has(uid)) return;
    state.uids.add(uid);
    if (state.uids.size > 2 * UIDS_KEPT) state.uids = new Set([...state.uids].slice(-UIDS_KEPT));
    try { localStorage.setItem(UIDS_KEY, JSON.stringify([...state.uids].slice(-UIDS_KEPT))); } catch { /* memory only */ }
  }

  function saveNick(nick) {
    try { localStorage.setItem(NICK_KEY, nick); } catch { /* private mode: keep it in memory */ }
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // Same rules as the server: 1-32 characters, no C0/C1 control characters.
  function nickProblem(nick) {
    const chars = [...nick];
    if (chars.length === 0) return 'Please enter a nickname.';
    if (chars.length > 32) return 'At most 32 characters.';
    if (/[\u0000-\u001f\u007f-\u009f]/.test(nick)) return 'Control characters are not allowed.';
    return '';
  }

  function initial(nick) {
    const first = [...(nick || '?').trim()][0] || '?';
    return first.toUpperCase();
  }

  function colourOf(key) {
    let h = 0;
    for (const ch of key || '') h = (h * 31 + ch.codePointAt(0)) >>> 0;
    return 'c' + (h % AVATAR_COLOURS);
  }

  const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
  const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
  const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', month: 'long', day: 'numeric' });

  function dayLabel(d) {
    const today = new Date();
    const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
    if (d.toDateString() === today.toDateString()) return 'Today';
    if (d.toDateString() === yesterday.toDateString()) return 'Yesterday';
    return dayFmt.format(d);
  }

  function timeEl(ts) {
    const d = new Date(typeof ts === 'number' ? ts : Date.now());
    const t = el('time', 'time', timeFmt.format(d));
    t.dateTime = d.toISOString();
    t.title = fullFmt.format(d);
    return t;
  }

  // ---- room and URL --------------------------------------------------------

  function roomFromUrl() {
    const r = new URLSearchParams(location.search).get('room');
    return r && ROOM_RE.test(r) ? r : 'lobby';
  }

  function setUrlRoom(room, push) {
    const url = new URL(location.href);
    if (room === 'lobby') url.searchParams.delete('room');
    else url.searchParams.set('room', room);
    if (url.href === location.href) return;
    if (push) history.pushState({ room }, '', url);
    else history.replaceState({ room }, '', url);
  }

  function switchRoom(room, push) {
    if (!ROOM_RE.test(room)) {
      showRoomError('Room names use letters, digits, _ and -, up to 32 characters.');
      return;
    }
    showRoomError('');
    setUrlRoom(room, push);
    if (room === state.room && state.ws) return;
    state.room = room;
    state.lastId = null;
    state.seen.clear();
    state.pending.forEach((p) => p.li.remove());
    state.pending = [];
    state.everSynced = false;
    state.epoch = null;
    ui.list.replaceChildren();
    state.lastDay = '';
    ui.roomName.textContent = room;
    ui.roomInput.value = '';
    ui.online.textContent = '– online';
    document.title = `#${room} · wschat`;
    updateEmpty();
    state.attempt = 0;
    connect();
  }

  function showRoomError(msg) {
    ui.roomError.textContent = msg;
    ui.roomError.hidden = !msg;
    ui.roomInput.setAttribute('aria-invalid', msg ? 'true' : 'false');
  }

  // ---- connection ----------------------------------------------------------

  function wsUrl() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const q = [];
    if (state.nick) q.push('nick=' + encodeURIComponent(state.nick));
    if (state.lastId !== null) q.push('since=' + state.lastId);
    // A deployment with auth hands the page its token in the page's own URL
    // (?token=...): pass it on, since a browser cannot set WebSocket headers.
    const token = new URLSearchParams(location.search).get('token');
    if (token) q.push('token=' + encodeURIComponent(token));
    return `${proto}//${location.host}/chat/${encodeURIComponent(state.room)}` +
      (q.length ? '?' + q.join('&') : '');
  }

  function clearTimers() {
    clearTimeout(state.retryTimer);
    clearTimeout(state.syncTimer);
    clearInterval(state.tick);
    state.retryTimer = state.syncTimer = state.tick = null;
  }

  function connect() {
    clearTimers();
    const gen = ++state.gen;
    if (state.ws) {
      const old = state.ws;
      state.ws = null;
      try { old.close(1000, 'leaving'); } catch { /* already closing */ }
    }
    state.synced = false;
    state.inHistory = false;
    state.sinceSent = state.lastId;
    setStatus('connecting', state.everSynced ? 'Reconnecting…' : 'Connecting…');
    let ws;
    try {
      ws = new WebSocket(wsUrl());
    } catch {
      scheduleReconnect(0);
      return;
    }
    state.ws = ws;
    // A server that accepts but never finishes the welcome/history must not
    // leave the page waiting forever.
    state.syncTimer = setTimeout(() => { if (gen === state.gen) ws.close(4000, 'sync timeout'); },
      SYNC_TIMEOUT_MS);
    ws.onmessage = (ev) => {
      if (gen !== state.gen) return;
      let m;
      try { m = JSON.parse(ev.data); } catch { return; }
      if (m && typeof m === 'object') handle(m);
    };
    ws.onclose = (ev) => {
      if (gen !== state.gen) return;
      state.ws = null;
      state.synced = false;
      // The backend closed this user's connections (POST /api/disconnect):
      // coming straight back would undo it. The Retry button still works.
      if (ev.code === 1008 && ev.reason === 'disconnected') {
        clearTimers();
        state.retryAt = 0;
        ui.status.dataset.retryAt = '0';
        setStatus('offline', 'Disconnected by the server');
        return;
      }
      scheduleReconnect(ev.code);
    };
  }

  // Exponential back-off with jitter (half fixed, half random), so a
  // restarted server is not hit by every page at the same instant.
  function scheduleReconnect(code) {
    clearTimers();
    state.attempt++;
    const exp = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(state.attempt - 1, 10));
    let delay = exp / 2 + Math.random() * exp / 2;
    if (code === 1012 && state.attempt === 1) delay = 150 + Math.random() * 600;  // restart: come back soon
    if (code === 1013) delay = Math.max(delay, 2000 + Math.random() * 2000);      // overloaded: ease off
    if (!navigator.onLine) {
      setStatus('offline', 'Offline — waiting for the network');
      state.retryAt = 0;
      ui.status.dataset.retryAt = '0';
      state.retryTimer = setTimeout(connect, BACKOFF_MAX_MS);
      return;
    }
    state.retryAt = Date.now() + delay;
    ui.status.dataset.retryAt = String(Math.round(state.retryAt));
    state.retryTimer = setTimeout(connect, delay);
    const show = () => {
      const s = Math.max(1, Math.ceil((state.retryAt - Date.now()) / 1000));
      setStatus('waiting', `Reconnecting in ${s}s…`);
    };
    show();
    state.tick = setInterval(show, 1000);
  }

  function send(obj) {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return false;
    state.ws.send(JSON.stringify(obj));
    return true;
  }

  // Spoken once per change of kind, never per countdown tick.
  const SPOKEN = { waiting: 'Connection lost. Reconnecting…', offline: 'Offline.' };

  function setStatus(kind, text) {
    if (ui.status.dataset.state !== kind && SPOKEN[kind] && state.everSynced) announce(SPOKEN[kind]);
    ui.status.dataset.state = kind;
    ui.statusText.textContent = text;
    ui.retry.hidden = kind !== 'waiting' && kind !== 'offline';
  }

  function setOnline(n) {
    if (typeof n !== 'number') return;
    ui.online.textContent = `${n} online`;
  }

  // ---- server events -------------------------------------------------------

  function handle(m) {
    switch (m.type) {
      case 'welcome': onWelcome(m); break;
      case 'history_end': onHistoryEnd(); break;
      case 'message': onMessage(m); break;
      case 'join': case 'leave': case 'nick': onPresence(m); break;
      case 'presence': onCount(m); break;
      case 'gap': onGap(m); break;
      case 'error': onError(m); break;
      default: break;
    }
  }

  // A higher id than any event since= could have seen means nothing; a lower
  // last_id than since= means the server lost its memory (a full restart
  // starts the id sequence again), so the ids we hold name other events now.
  function serverForgot(m) {
    if (m.epoch !== undefined && state.epoch !== null && m.epoch !== state.epoch) return true;
    return state.sinceSent !== null && typeof m.last_id === 'number' && m.last_id < state.sinceSent;
  }

  function onWelcome(m) {
    if (serverForgot(m)) {
      // Everything the new server holds is newer than what is on screen:
      // ask for all of it. since=0 replays the whole ring for this room.
      state.epoch = m.epoch !== undefined ? m.epoch : null;
      state.seen.clear();
      state.lastId = 0;
      addNotice('The server restarted. Catching up…', 'notice-info');
      connect();
      return;
    }
    if (m.epoch !== undefined) state.epoch = m.epoch;
    rememberUid(m.uid);
    state.welcomeLastId = typeof m.last_id === 'number' ? m.last_id : 0;
    if (typeof m.nick === 'string') setNick(m.nick, true);
    setOnline(m.online);
    state.inHistory = true;
    state.historyCount = 0;
    state.historyMark = el('li', 'divider history-divider');
    state.historyMark.setAttribute('role', 'separator');
    state.historyMark.append(el('span', '', state.everSynced ? 'Missed while you were away' : 'Earlier messages'));
    setStatus('syncing', 'Syncing…');
  }

  function onHistoryEnd() {
    clearTimeout(state.syncTimer);
    state.inHistory = false;
    // History covered everything up to last_id: resume after it even when
    // the room itself had nothing to replay.
    if (state.lastId === null || state.lastId < state.welcomeLastId) state.lastId = state.welcomeLastId;
    if (state.historyCount > 0) {
      const end = el('li', 'divider live-divider');
      end.setAttribute('role', 'separator');
      end.append(el('span', '', 'Live'));
      appendItem(end, false);
    }
    state.historyMark = null;
    state.synced = true;
    if (state.everSynced && state.attempt > 0) announce('Reconnected.');
    state.everSynced = true;
    state.attempt = 0;
    setStatus('open', 'Connected');
    // Whatever was typed while disconnected, or sent but never echoed, goes now.
    for (const p of state.pending) {
      if (send({ type: 'message', text: p.text })) p.sent = true;
    }
  }

  // 1 if the event is new; records its id. Events without an id pass.
  function fresh(m) {
    if (typeof m.id !== 'number') return true;
    if (state.seen.has(m.id)) return false;
    state.seen.add(m.id);
    if (state.seen.size > 4 * MAX_ITEMS) {
      // Ids only grow: forget the oldest half; lastId still guards resumes.
      const keep = [...state.seen].sort((a, b) => a - b).slice(2 * MAX_ITEMS);
      state.seen = new Set(keep);
    }
    if (state.lastId === null || m.id > state.lastId) state.lastId = m.id;
    return true;
  }

  function onMessage(m) {
    if (typeof m.text !== 'string' || !fresh(m)) return;
    const own = state.uids.has(m.uid);
    if (own) {
      const i = state.pending.findIndex((p) => p.text === m.text);
      if (i >= 0) {
        state.pending[i].li.remove();
        state.pending.splice(i, 1);
      }
    }
    if (state.inHistory) {
      if (state.historyCount === 0) appendItem(state.historyMark, false);
      state.historyCount++;
    }
    const stick = nearBottom() || own;
    appendItem(renderMessage(m, own, state.inHistory), stick);
    if (!state.inHistory && !own) announce(`${m.nick}: ${m.text}`);
  }

  function onPresence(m) {
    if (!fresh(m)) return;
    if (typeof m.room === 'string' && m.room !== state.room) return;
    setOnline(m.online);
    const mine = state.uids.has(m.uid);
    if (m.type === 'nick' && mine) setNick(m.nick, true);
    // Our own comings and goings (every reconnect) are not news to us.
    if (mine && m.type !== 'nick') return;
    // A leave straight followed by a join of the same nick is a reconnect:
    // drop both rather than log the churn.
    const prev = lastRow();
    if (m.type === 'join' && prev && prev.classList.contains('presence-leave') &&
        prev.dataset.nick === m.nick && Number(m.ts) - Number(prev.dataset.ts) < 60000) {
      prev.remove();
      return;
    }
    let text;
    if (m.type === 'join') text = `${m.nick} joined`;
    else if (m.type === 'leave') text = `${m.nick} left`;
    else text = mine ? `You are now ${m.nick}` : `${m.old} is now ${m.nick}`;
    const li = el('li', `presence presence-${m.type}`);
    li.dataset.id = m.id;
    li.dataset.nick = m.nick;
    li.dataset.ts = String(m.ts);
    li.append(el('span', 'presence-text', text), timeEl(m.ts));
    appendItem(li, nearBottom());
  }

  // A large room sends its member count instead of a line per join/leave.
  function onCount(m) {
    if (typeof m.room === 'string' && m.room !== state.room) return;
    setOnline(m.online);
  }

  function onGap(m) {
    if (typeof m.to === 'number' && (state.lastId === null || m.to > state.lastId)) state.lastId = m.to;
    addNotice('Some earlier messages are no longer available.', 'notice-warn');
  }

  function onError(m) {
    const reason = typeof m.reason === 'string' ? m.reason : 'request refused';
    if (m.code === 'bad_nick') {
      openNickForm(`The server refused that nickname: ${reason}.`);
      return;
    }
    if (m.code === 'bad_since') return;     // harmless: we get the default history
    if (['too_long', 'empty', 'bad_request', 'bad_type'].includes(m.code)) {
      // The oldest message in flight is the one refused; give it back to edit.
      const i = state.pending.findIndex((p) => p.sent);
      if (i >= 0) {
        const p = state.pending.splice(i, 1)[0];
        p.li.remove();
        if (!ui.text.value) { ui.text.value = p.text; autosize(); }
      }
    }
    addNotice(`Not sent: ${reason}.`, 'notice-error');
  }

  // ---- timeline rendering --------------------------------------------------

  function lastRow() {
    return ui.list.lastElementChild;
  }

  function lastMessageRow() {
    for (let r = ui.list.lastElementChild; r; r = r.previousElementSibling) {
      if (r.classList.contains('msg')) return r;
      if (!r.classList.contains('presence')) return null;
    }
    return null;
  }

  function renderMessage(m, own, history) {
    const ts = typeof m.ts === 'number' ? m.ts : Date.now();
    const date = new Date(ts);
    if (state.lastDay !== date.toDateString()) {
      state.lastDay = date.toDateString();
      const day = el('li', 'divider day-divider');
      day.setAttribute('role', 'separator');
      day.append(el('span', '', dayLabel(date)));
      ui.list.append(day);
    }

    const li = el('li', 'msg');
    if (own) li.classList.add('own');
    if (history) li.classList.add('history');
    li.dataset.id = m.id;
    li.dataset.uid = m.uid || '';
    li.dataset.nick = m.nick || '';
    li.dataset.ts = String(ts);
    const prev = lastMessageRow();
    if (prev && prev === lastRow() && prev.dataset.nick === li.dataset.nick &&
        prev.classList.contains('own') === own &&
        prev.classList.contains('history') === history &&
        ts - Number(prev.dataset.ts) < GROUP_MS) {
      li.classList.add('cont');
    }

    const avatar = el('div', `avatar ${colourOf(m.nick)}`, initial(m.nick));
    avatar.setAttribute('aria-hidden', 'true');
    const body = el('div', 'bubble-wrap');
    const meta = el('div', 'meta');
    meta.append(el('span', 'nick', own ? `${m.nick} (you)` : m.nick), timeEl(ts));
    if (history) {
      const tag = el('span', 'tag', 'history');
      tag.title = 'Replayed from the room history';
      meta.append(tag);
    }
    const bubble = el('div', 'bubble');
    bubble.append(el('p', 'text', m.text));
    body.append(meta, bubble);
    li.append(avatar, body);
    return li;
  }

  function addNotice(text, cls) {
    const li = el('li', `notice ${cls}`);
    li.append(el('span', '', text));
    appendItem(li, nearBottom());
  }

  function nearBottom() {
    const s = ui.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 120;
  }

  function scrollToBottom() {
    ui.scroller.scrollTop = ui.scroller.scrollHeight;
    ui.jump.hidden = true;
  }

  function appendItem(li, stick) {
    ui.list.append(li);
    // Messages still waiting for their echo stay at the bottom, below replays.
    if (!li.classList.contains('pending')) for (const p of state.pending) ui.list.append(p.li);
    while (ui.list.childElementCount > MAX_ITEMS) ui.list.firstElementChild.remove();
    updateEmpty();
    if (stick) scrollToBottom();
    else if (li.classList.contains('msg')) ui.jump.hidden = false;
  }

  function updateEmpty() {
    ui.empty.hidden = ui.list.querySelector('.msg') !== null || state.pending.length > 0;
  }

  function announce(text) {
    ui.announcer.append(el('p', '', text));
    while (ui.announcer.childElementCount > 3) ui.announcer.firstElementChild.remove();
  }

  // ---- composing -----------------------------------------------------------

  function autosize() {
    ui.text.style.height = 'auto';
    ui.text.style.height = Math.min(ui.text.scrollHeight, 180) + 'px';
  }

  function submitText() {
    const text = ui.text.value;
    if (!text.trim()) return;
    const li = renderMessage({ id: '', uid: '', nick: state.nick || 'you', text, ts: Date.now() }, true, false);
    li.classList.add('pending');
    li.classList.remove('cont');
    li.querySelector('.meta').append(el('span', 'tag tag-pending', 'sending…'));
    const p = { text, li, sent: false };
    state.pending.push(p);
    appendItem(li, true);
    if (state.synced && send({ type: 'message', text })) p.sent = true;
    ui.text.value = '';
    autosize();
    ui.text.focus();
  }

  // ---- nickname ------------------------------------------------------------

  function setNick(nick, fromServer) {
    state.nick = nick;
    ui.nickDisplay.textContent = nick;
    ui.nickAvatar.textContent = initial(nick);
    ui.nickAvatar.className = `avatar avatar-sm ${colourOf(nick)}`;
    if (fromServer) saveNick(nick);
  }

  function openNickForm(error) {
    ui.nickForm.hidden = false;
    ui.nickButton.setAttribute('aria-expanded', 'true');
    ui.nickInput.value = state.nick;
    ui.nickHelp.textContent = error || '1–32 characters. Everyone in the room sees the change.';
    ui.nickHelp.classList.toggle('help-error', !!error);
    ui.nickInput.setAttribute('aria-invalid', error ? 'true' : 'false');
    ui.nickInput.focus();
    ui.nickInput.select();
  }

  function closeNickForm() {
    ui.nickForm.hidden = true;
    ui.nickButton.setAttribute('aria-expanded', 'false');
  }

  // ---- wiring --------------------------------------------------------------

  ui.text.addEventListener('keydown', (e) => {
    // isComposing / 229: Enter that confirms an IME candidate (Chinese,
    // Japanese...) must not send the half-typed message.
    if (e.key === 'Enter' && !e.shiftKey && !e.altKey && !e.ctrlKey && !e.metaKey &&
        !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      submitText();
    }
  });
  ui.text.addEventListener('input', autosize);
  ui.composer.addEventListener('submit', (e) => { e.preventDefault(); submitText(); });

  ui.roomForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const room = ui.roomInput.value.trim().replace(/^#/, '');
    if (room) switchRoom(room, true);
  });
  ui.roomInput.addEventListener('input', () => showRoomError(''));

  ui.nickButton.addEventListener('click', () => {
    if (ui.nickForm.hidden) openNickForm('');
    else closeNickForm();
  });
  ui.nickCancel.addEventListener('click', () => { closeNickForm(); ui.nickButton.focus(); });
  ui.nickForm.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') { closeNickForm(); ui.nickButton.focus(); }
  });
  // A click anywhere else dismisses the nickname form, as a popover should.
  document.addEventListener('click', (e) => {
    if (!ui.nickForm.hidden && !ui.nickForm.contains(e.target) && !ui.nickButton.contains(e.target)) {
      closeNickForm();
    }
  });
  ui.nickForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const nick = ui.nickInput.value.trim();
    const problem = nickProblem(nick);
    if (problem) { openNickForm(problem); return; }
    closeNickForm();
    if (nick === state.nick) return;
    // Connected: the server confirms with a "nick" event. Not connected:
    // the next connection carries it in ?nick=.
    if (!(state.synced && send({ type: 'nick', nick }))) setNick(nick, true);
    ui.text.focus();
  });

  ui.scroller.addEventListener('scroll', () => { if (nearBottom()) ui.jump.hidden = true; });
  ui.jump.addEventListener('click', () => { scrollToBottom(); ui.text.focus(); });

  window.addEventListener('popstate', () => switchRoom(roomFromUrl(), false));
  window.addEventListener('online', () => { if (!state.ws) { state.attempt = 0; connect(); } });
  window.addEventListener('offline', () => { if (state.ws) state.ws.close(4001, 'offline'); });
  // A tab coming back after a long sleep should not sit out a 30 s back-off.
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && !state.ws && state.retryAt - Date.now() > 2000) {
      state.attempt = 0;
      connect();
    }
  });
  ui.retry.addEventListener('click', () => { if (!state.ws) { state.attempt = 0; connect(); } });

  // ---- start ---------------------------------------------------------------

  if (state.nick && nickProblem(state.nick)) state.nick = '';
  if (state.nick) setNick(state.nick, false);
  const first = roomFromUrl();
  setUrlRoom(first, false);
  switchRoom(first, false);
  autosize();
})();
