// ringcast chat page: vanilla ES2020 module, no dependencies, CSP-clean
// (no inline scripts or styles, no eval, all text rendered via textContent).
//
// Layout of this file:
//   config + state      -> what the page knows
//   connection          -> connect / reconnect with jittered exponential backoff
//   handleEvent(ev)     -> the single dispatcher for every server event, by `type`
//   on<Event> handlers  -> one small function per event type
//   rendering helpers   -> message items, system lines, status, notices, scrolling
//   composer            -> input handling and sending

const BACKOFF_BASE_MS = 500;      // first retry delay
const BACKOFF_MAX_MS = 15000;     // cap for the doubling
const BACKOFF_JITTER = 0.3;       // +/- 30 %
const STABLE_AFTER_MS = 10000;    // a connection open this long resets the backoff
const NEAR_BOTTOM_PX = 80;        // "near the bottom" threshold for auto-scroll
const MAX_ITEMS = 1000;           // keep the DOM bounded
const DEFAULT_MAX_MESSAGE = 65536; // server default --max-message (bytes per frame)
const ROOM_RE = /^[A-Za-z0-9_.-]{1,64}$/;

const $ = (id) => document.getElementById(id);
const ui = {
  status: $('status'),
  statusText: $('status-text'),
  statusLive: $('status-live'),
  retry: $('retry'),
  room: $('room'),
  notice: $('notice'),
  noticeText: $('notice-text'),
  noticeClose: $('notice-close'),
  log: $('messages'),
  empty: $('empty'),
  jump: $('jump'),
  form: $('composer'),
  input: $('input'),
  send: $('send'),
};

const state = {
  ws: null,
  connState: 'connecting',  // connecting | online | reconnecting | offline
  attempt: 0,               // consecutive failed/short connections
  retryAt: 0,               // when the pending reconnect fires (ms epoch)
  retryTimer: 0,
  countdownTimer: 0,
  stableTimer: 0,
  everConnected: false,
  myIds: new Set(),         // every connection id this tab was given (reconnects give new ids)
  currentId: null,          // the id of the live connection
  myName: '',
  room: requestedRoom(),
  count: null,
  maxMessage: DEFAULT_MAX_MESSAGE,
  seen: new Set(),          // keys of rendered messages (dedupe history/resume overlaps)
  lastMessageId: new Map(), // room -> last message id seen (for a future `resume`)
};

/* ------------------------------------------------------------------ */
/* connection                                                          */
/* ------------------------------------------------------------------ */

function requestedRoom() {
  const room = new URLSearchParams(location.search).get('room');
  if (room === null || room === '') return null;
  if (!ROOM_RE.test(room)) {
    // The server would refuse the upgrade (400) forever; say so and use the default room.
    queueMicrotask(() => showNotice(`“${room}” is not a valid room name (1–64 of A–Z a–z 0–9 _ . -); joined the lobby instead.`));
    return null;
  }
  return room;
}

function socketUrl() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const query = state.room ? `?room=${encodeURIComponent(state.room)}` : '';
  return `${scheme}//${location.host}/ws${query}`;
}

function connect() {
  clearTimeout(state.retryTimer);
  clearInterval(state.countdownTimer);
  state.retryTimer = 0;
  if (state.ws) return;
  if (navigator.onLine === false) {
    setConnState('offline');
    return;
  }
  setConnState(state.everConnected ? 'reconnecting' : 'connecting');
  let ws;
  try {
    ws = new WebSocket(socketUrl());
  } catch (err) {
    setConnState('offline');
    showNotice(`Cannot open a connection: ${err.message}`);
    return;
  }
  state.ws = ws;
  ws.addEventListener('open', () => onOpen(ws));
  ws.addEventListener('message', (e) => onFrame(ws, e));
  ws.addEventListener('close', (e) => onClose(ws, e));
  // 'error' is always followed by 'close'; the reconnect logic lives there.
}

function onOpen(ws) {
  if (ws !== state.ws) return;
  state.everConnected = true;
  clearTimeout(state.stableTimer);
  state.stableTimer = setTimeout(() => { state.attempt = 0; }, STABLE_AFTER_MS);
  // Stay "connecting" until the welcome arrives: that is when we know who we are.
}

function onFrame(ws, e) {
  if (ws !== state.ws || typeof e.data !== 'string') return;
  let ev;
  try {
    ev = JSON.parse(e.data);
  } catch {
    return; // not JSON: not part of the protocol for server -> client, ignore
  }
  if (ev && typeof ev === 'object' && typeof ev.type === 'string') handleEvent(ev);
}

function onClose(ws, e) {
  if (ws !== state.ws) return;
  state.ws = null;
  clearTimeout(state.stableTimer);
  const wasOnline = state.connState === 'online';
  if (wasOnline) addSystemLine(closeReason(e), 'warn');
  scheduleReconnect();
}

function closeReason(e) {
  if (navigator.onLine === false) return 'Disconnected: the network is offline.';
  switch (e.code) {
    case 1001: return 'Disconnected: the server is going away.';
    case 1008: return 'Disconnected by the server (policy).';
    case 1009: return 'Disconnected: a message was too large.';
    default: return 'Disconnected.';
  }
}

function backoffDelay(attempt) {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
  const jitter = 1 + (Math.random() * 2 - 1) * BACKOFF_JITTER;
  return Math.round(base * jitter);
}

function scheduleReconnect() {
  if (navigator.onLine === false) {
    setConnState('offline');
    return;
  }
  const delay = backoffDelay(state.attempt);
  state.attempt += 1;
  state.retryAt = Date.now() + delay;
  state.retryTimer = setTimeout(connect, delay);
  clearInterval(state.countdownTimer);
  state.countdownTimer = setInterval(renderStatus, 250);
  setConnState('reconnecting');
}

function reconnectNow() {
  if (state.ws) return;
  connect();
}

function goOffline() {
  // The browser lost the network: a dead TCP connection can take minutes to notice,
  // so close now, show "Offline" and wait for the `online` event to reconnect.
  clearTimeout(state.retryTimer);
  state.retryTimer = 0;
  if (state.ws) state.ws.close(1000, 'offline'); // onClose -> scheduleReconnect -> offline
  else setConnState('offline');
}

function sendFrame(text) {
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return false;
  state.ws.send(text);
  return true;
}

/* ------------------------------------------------------------------ */
/* events from the server                                              */
/* ------------------------------------------------------------------ */

function handleEvent(ev) {
  switch (ev.type) {
    case 'welcome': onWelcome(ev); break;
    case 'presence': onPresence(ev); break;
    case 'join': onJoin(ev); break;
    case 'leave': onLeave(ev); break;
    case 'message': onMessage(ev); break;
    case 'history': onHistory(ev); break;
    case 'nick': onNick(ev); break;
    case 'resumed': break; // nothing to show: the missed messages came as `message` events
    case 'error': onServerError(ev); break;
    default: break; // unknown event types are ignored so the server can add new ones
  }
}

function onWelcome(ev) {
  state.currentId = ev.id != null ? String(ev.id) : null;
  if (state.currentId !== null) state.myIds.add(state.currentId);
  state.myName = typeof ev.name === 'string' ? ev.name : '';
  if (typeof ev.room === 'string' && ev.room) state.room = ev.room; // reconnects go back to it
  if (Number.isInteger(ev.max_message) && ev.max_message > 0) state.maxMessage = ev.max_message;
  renderRoom(state.room || 'lobby');
  setConnState('online');
}

function isCurrentRoom(ev) {
  return typeof ev.room !== 'string' || ev.room === (state.room || 'lobby');
}

function onPresence(ev) {
  if (!isCurrentRoom(ev)) return;
  if (Array.isArray(ev.users)) ev.users.forEach(forgetIdIfTaken);
  setCount(ev.count);
}

// A restarted server hands out ids from the start again, so one of our old ids may now
// belong to someone else: once another live user has it, it is no longer ours.
function forgetIdIfTaken(user) {
  const id = user && user.id != null ? String(user.id) : null;
  if (id !== null && id !== state.currentId) state.myIds.delete(id);
}

function onJoin(ev) {
  if (!isCurrentRoom(ev)) return;
  setCount(ev.count);
  const user = ev.user || {};
  forgetIdIfTaken(user);
  if (isMine(user.id)) {
    addSystemLine(`You joined #${ev.room || 'lobby'} as ${user.name || state.myName}`);
  } else {
    addSystemLine(`${displayName(user)} joined`);
  }
}

function onLeave(ev) {
  if (!isCurrentRoom(ev)) return;
  setCount(ev.count);
  addSystemLine(`${displayName(ev.user || {})} left`);
}

function onMessage(ev) {
  if (!isCurrentRoom(ev)) return;
  addMessage(ev);
}

function onHistory(ev) {
  if (!isCurrentRoom(ev) || !Array.isArray(ev.messages)) return;
  for (const m of ev.messages) addMessage(m, { history: true });
}

function onNick(ev) {
  const who = isMine(ev.id) ? 'You are' : `${ev.old || displayName(ev)} is`;
  if (isMine(ev.id) && typeof ev.name === 'string') state.myName = ev.name;
  addSystemLine(`${who} now known as ${ev.name}`);
}

function onServerError(ev) {
  const text = typeof ev.message === 'string' && ev.message ? ev.message : 'The server reported an error.';
  showNotice(ev.code ? `${text} (${ev.code})` : text);
}

/* ------------------------------------------------------------------ */
/* rendering                                                           */
/* ------------------------------------------------------------------ */

function isMine(id) {
  return id != null && state.myIds.has(String(id));
}

function displayName(user) {
  if (user && typeof user.name === 'string' && user.name) return user.name;
  if (user && user.id != null) return `User ${user.id}`;
  return 'Someone';
}

function formatTime(ts) {
  const d = new Date(ts);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

function messageKey(m) {
  // ids restart when the server restarts, so the timestamp and sender take part in the key.
  return `${m.room || ''}|${m.id}|${m.ts}|${m.from}`;
}

function addMessage(m, { history = false } = {}) {
  if (typeof m.text !== 'string') return;
  if (m.id != null) {
    const key = messageKey(m);
    if (state.seen.has(key)) return;
    state.seen.add(key);
    if (Number.isFinite(m.id)) state.lastMessageId.set(m.room || 'lobby', m.id);
  }
  const mine = isMine(m.from);
  const ts = Number.isFinite(m.ts) ? m.ts : Date.now();

  const item = document.createElement('article');
  item.className = mine ? 'msg own' : `msg other hue-${hueFor(m.from)}`;
  if (m.id != null) item.dataset.id = String(m.id);

  const meta = document.createElement('div');
  meta.className = 'meta';
  const who = document.createElement('span');
  who.className = 'who';
  who.textContent = mine ? 'You' : displayName({ id: m.from, name: m.name });
  const time = document.createElement('time');
  time.className = 'time';
  time.dateTime = new Date(ts).toISOString();
  time.title = new Date(ts).toLocaleString();
  time.textContent = formatTime(ts);
  meta.append(who, time);

  const body = document.createElement('div');
  body.className = 'text';
  body.textContent = m.text;

  item.append(meta, body);
  appendItem(item, { forceScroll: mine && !history });
}

function addSystemLine(text, tone = '') {
  const line = document.createElement('p');
  line.className = tone ? `sys ${tone}` : 'sys';
  line.textContent = text;
  appendItem(line, { forceScroll: false });
}

function hueFor(id) {
  let h = 0;
  for (const ch of String(id ?? '')) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return h % 8;
}

function isNearBottom() {
  const el = ui.log;
  return el.scrollHeight - el.scrollTop - el.clientHeight <= NEAR_BOTTOM_PX;
}

function appendItem(node, { forceScroll }) {
  const stick = forceScroll || isNearBottom();
  ui.empty.hidden = true;
  ui.log.append(node);
  while (ui.log.childElementCount > MAX_ITEMS + 1) {
    const first = ui.log.firstElementChild === ui.empty ? ui.empty.nextElementSibling : ui.log.firstElementChild;
    first.remove();
  }
  if (stick) scrollToBottom();
  else ui.jump.hidden = false;
}

function scrollToBottom() {
  ui.log.scrollTop = ui.log.scrollHeight;
  ui.jump.hidden = true;
}

function renderRoom(room) {
  ui.room.textContent = `#${room}`;
  document.title = `#${room} · ringcast chat`;
}

function setCount(count) {
  if (Number.isInteger(count) && count >= 0) {
    state.count = count;
    renderStatus();
  }
}

function setConnState(s) {
  state.connState = s;
  if (s !== 'reconnecting') clearInterval(state.countdownTimer);
  renderStatus();
  renderComposer();
}

function renderStatus() {
  const s = state.connState;
  let text;
  switch (s) {
    case 'online':
      text = state.count == null ? 'Online'
        : `Online · ${state.count} ${state.count === 1 ? 'person' : 'people'}`;
      break;
    case 'reconnecting': {
      if (state.ws) { text = 'Reconnecting…'; break; }
      const secs = Math.max(1, Math.ceil((state.retryAt - Date.now()) / 1000));
      text = `Reconnecting in ${secs} s`;
      break;
    }
    case 'offline': text = 'Offline'; break;
    default: text = 'Connecting…';
  }
  ui.status.dataset.state = s;
  if (ui.statusText.textContent !== text) ui.statusText.textContent = text;
  // Screen readers hear state changes, not the per-second countdown.
  const spoken = s === 'reconnecting' ? 'Connection lost, reconnecting' : text.replace(' · ', ', ').replace('…', '');
  if (ui.statusLive.textContent !== spoken) ui.statusLive.textContent = spoken;
  ui.retry.hidden = !((s === 'reconnecting' && !state.ws) || s === 'offline');
}

function renderComposer() {
  ui.send.disabled = state.connState !== 'online';
}

function showNotice(text) {
  ui.noticeText.textContent = text;
  ui.notice.hidden = false;
}

function hideNotice() {
  ui.notice.hidden = true;
  ui.noticeText.textContent = '';
}

/* ------------------------------------------------------------------ */
/* composer                                                            */
/* ------------------------------------------------------------------ */

function tidy(text) {
  // Drop leading blank lines and trailing whitespace; keep indentation and inner newlines.
  return text.replace(/^(?:[ \t]*\r?\n)+/, '').replace(/\s+$/, '');
}

function submitMessage() {
  const text = tidy(ui.input.value);
  if (!text) return;
  if (state.connState !== 'online') return;
  const frame = JSON.stringify({ type: 'message', text });
  if (new TextEncoder().encode(frame).length > state.maxMessage) {
    showNotice(`That message is too long (limit ${Math.floor(state.maxMessage / 1024)} KiB).`);
    return;
  }
  if (!sendFrame(frame)) return;
  ui.input.value = '';
  autosize();
  ui.input.focus();
}

const canFieldSize = typeof CSS !== 'undefined' && CSS.supports && CSS.supports('field-sizing', 'content');

function autosize() {
  if (canFieldSize) return; // CSS grows the textarea by itself
  const lines = ui.input.value.split('\n').length;
  ui.input.rows = Math.min(6, Math.max(1, lines));
}

function onKeyDown(e) {
  if (e.key !== 'Enter' || e.shiftKey || e.isComposing || e.altKey || e.ctrlKey || e.metaKey) return;
  e.preventDefault();
  submitMessage();
}

/* ------------------------------------------------------------------ */
/* wiring                                                              */
/* ------------------------------------------------------------------ */

function init() {
  ui.form.addEventListener('submit', (e) => { e.preventDefault(); submitMessage(); });
  ui.input.addEventListener('keydown', onKeyDown);
  ui.input.addEventListener('input', autosize);
  ui.noticeClose.addEventListener('click', hideNotice);
  ui.retry.addEventListener('click', () => { state.attempt = 0; reconnectNow(); });
  ui.jump.addEventListener('click', scrollToBottom);
  ui.log.addEventListener('scroll', () => { if (isNearBottom()) ui.jump.hidden = true; }, { passive: true });
  window.addEventListener('online', () => { if (!state.ws) { state.attempt = 0; connect(); } });
  window.addEventListener('offline', goOffline);
  document.addEventListener('visibilitychange', () => {
    // Coming back to a tab that waits for a long backoff: try at once.
    if (document.visibilityState === 'visible' && !state.ws && state.retryTimer) reconnectNow();
  });
  renderRoom(state.room || 'lobby');
  renderStatus();
  renderComposer();
  connect();
  // Focus the input on desktop; on touch screens that would pop up the keyboard.
  if (window.matchMedia('(pointer: fine)').matches) ui.input.focus();
}

init();

// Exposed read-only for debugging and future features (history, resume, rooms).
export { handleEvent, state };
