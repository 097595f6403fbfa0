// ringcast chat page: vanilla ES2020 module, no dependencies, CSP-clean
// (no inline scripts or styles, no eval, all text rendered via textContent).
//
// Layout of this file:
//   config + state      -> what the page knows (rooms, names, ids, the socket)
//   storage             -> localStorage: chosen name, joined rooms, current room, sign-in
//                          token (so a second tab is signed in too), guest token
//   connection          -> a RingcastClient (ringcast.js: connecting, reconnecting, resuming,
//                          SSE fallback, acknowledgements) and the page's view of its states
//   handleEvent(ev)     -> the single dispatcher for every server event, by `type`
//   on<Event> handlers  -> one small function per event type
//   rooms               -> per-room message lists (one DOM pane each), join / leave / switch
//   rendering helpers   -> message items, system lines, status, notices, scrolling
//   name dialog, composer, wiring
// Two helpers live in their own modules: people.js (the people and all-rooms lists) and
// outbox.js (refused messages kept for sending again, message size).

import { renderDirectory, renderPeople, replaceKeepingFocus } from './people.js';
import { createOutbox, formatBytes, outboxKeep, outboxTakeRefused } from './outbox.js';
import { RingcastClient, SIGN_IN_CLOSE_CODES } from './ringcast.js';

const NEAR_BOTTOM_PX = 80;         // "near the bottom" threshold for auto-scroll
const NEAR_TOP_PX = 48;            // scrolled this close to the top: load older messages
const MAX_MESSAGES = 1000;         // messages kept per room; older ones are paged back on demand
const MAX_ROOMS = 16;              // the server's per-connection limit
const PAGE_SIZE = 50;              // history page
const DEFAULT_MAX_MESSAGE = 65536; // server default --max-message (bytes per frame)
const NAME_MAX = 32;               // code points, after trimming
const NICK_ECHO_MS = 5000;         // the same rename arriving again this soon is one rename
const DIRECTORY_REFRESH_MS = 20000; // the all-rooms list is asked for again this often
const DIRECTORY_DEBOUNCE_MS = 200;  // joins that come together (a reconnect) ask once
const RESEND_COOLDOWN_MS = 1000;   // "Send again" waits this long after a refusal: the flood limit refills
const ROOM_RE = /^[A-Za-z0-9_.-]{1,64}$/;
// Refused by the server in a name: control characters, line/paragraph separators,
// bidi marks, embeddings, overrides and isolates. (Invisible-only names are left to it.)
const BAD_NAME_CHARS = /[\p{Cc}\u2028\u2029\u200E\u200F\u061C\u202A-\u202E\u2066-\u2069]/u;
const KEY = {
  name: 'ringcast.name', rooms: 'ringcast.rooms', room: 'ringcast.room', token: 'ringcast.token',
  guest: 'ringcast.guest', // {"id","token"}: brings our guest id and name back after a reload
};
// The server refuses a sign-in by closing at once with one of these (docs/protocol.md).
const SIGN_IN_CLOSE = {
  4001: 'This chat needs you to sign in: no sign-in token was given.',
  4002: 'Your sign-in has expired.',
  4003: 'Your sign-in token was not accepted.',
};

const $ = (id) => document.getElementById(id);
const ui = {
  app: $('app'),
  status: $('status'),
  statusText: $('status-text'),
  statusLive: $('status-live'),
  retry: $('retry'),
  me: $('me'),
  meName: $('me-name'),
  meIcon: document.querySelector('#me .me-icon'),
  roomsToggle: $('rooms-toggle'),
  roomsUnread: $('rooms-unread'),
  sidebar: $('sidebar'),
  sidebarClose: $('sidebar-close'),
  backdrop: $('backdrop'),
  roomList: $('room-list'),
  directory: $('directory'),
  directoryRefresh: $('directory-refresh'),
  people: $('people-list'),
  peopleTitle: $('people-title'),
  refused: $('refused'),
  refusedText: $('refused-text'),
  refusedList: $('refused-list'),
  refusedResend: $('refused-resend'),
  refusedDiscard: $('refused-discard'),
  tooLong: $('too-long'),
  joinForm: $('join-form'),
  joinInput: $('join-input'),
  joinError: $('join-error'),
  room: $('room'),
  copyLink: $('copy-link'),
  leave: $('leave'),
  announce: $('announce'),
  notice: $('notice'),
  noticeText: $('notice-text'),
  noticeClose: $('notice-close'),
  log: $('messages'),
  empty: $('empty'),
  jump: $('jump'),
  form: $('composer'),
  input: $('input'),
  send: $('send'),
  nameDialog: $('name-dialog'),
  nameForm: $('name-form'),
  nameInput: $('name-input'),
  nameError: $('name-error'),
  nameCancel: $('name-cancel'),
  nameSave: $('name-save'),
  signin: $('signin'),
  signinWhy: $('signin-why'),
  signinDo: $('signin-do'),
  signinLink: $('signin-link'),
  signinForm: $('signin-form'),
  signinToken: $('signin-token'),
};

const state = {
  client: null,             // the RingcastClient (ringcast.js): the connection
  connState: 'connecting',  // connecting | online | reconnecting | offline | signin
  transport: null,          // websocket | sse, of the live connection
  retryAt: 0,               // when the pending reconnect fires (ms epoch; 0: trying now)
  countdownTimer: 0,
  currentId: null,          // the id of the live connection
  signedIn: false,
  stableGuest: false,       // our guest id came back from our guest token: its messages are ours
  myName: '',
  savedName: '',            // the name the server last accepted from us (localStorage)
  wantedName: null,         // a name chosen while offline, sent on the next welcome
  nickPending: null,        // { name, source: 'user' | 'auto' } while a `nick` is unanswered
  rooms: new Map(),         // name -> room (see createRoom), in sidebar order
  current: null,            // the room shown and written to
  // Which messages are "You": guest ids are connection numbers, reused after a server
  // restart, so an id is ours only for the message ids it had in each room:
  // room -> [{ id, start, end }] meaning messages start < id <= end (end null: open).
  ranges: new Map(),
  recentNicks: new Map(),   // "id\nold\nname" -> when it was shown (the server repeats it per room)
  maxMessage: DEFAULT_MAX_MESSAGE,
  listed: new Map(),        // room -> count, from the last `rooms` answer (the all-rooms list)
  directoryTimer: 0,
  outbox: createOutbox(),   // the messages the server refused, kept for sending again
  refusedWhy: '',           // why the last ones were refused, for the notice
  resendTimer: 0,
  copyTimer: 0,
};

/* ------------------------------------------------------------------ */
/* storage                                                             */
/* ------------------------------------------------------------------ */

function load(key, store = 'localStorage') {
  try { return window[store].getItem(key); } catch { return null; }
}

function save(key, value, store = 'localStorage') {
  try {
    if (value == null || value === '') window[store].removeItem(key);
    else window[store].setItem(key, value);
  } catch { /* storage disabled or full: the page still works, it just forgets */ }
}

function loadRoomNames() {
  try {
    const list = JSON.parse(load(KEY.rooms) || '[]');
    if (!Array.isArray(list)) return [];
    return [...new Set(list.filter((n) => typeof n === 'string' && ROOM_RE.test(n)))].slice(0, MAX_ROOMS);
  } catch {
    return [];
  }
}

function saveRooms() {
  save(KEY.rooms, JSON.stringify([...state.rooms.keys()]));
  save(KEY.room, state.current);
}

/* ------------------------------------------------------------------ */
/* connection                                                          */
/* ------------------------------------------------------------------ */

function readPageParams() {
  const params = new URLSearchParams(location.search);
  const token = params.get('token') || tokenFromHash();
  if (token) save(KEY.token, token); // kept out of the address bar and shared links
  const room = params.get('room');
  if (room === null || room === '') return null;
  if (!ROOM_RE.test(room)) {
    // The server would refuse the upgrade (400) forever; say so and use a valid room.
    queueMicrotask(() => showNotice(`“${room}” is not a valid room name (1–64 of A–Z a–z 0–9 _ . -).`));
    return null;
  }
  return room;
}

// A login page sends people back with #token=... (a fragment never reaches a server log).
function tokenFromHash() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!m) return null;
  history.replaceState(null, '', location.pathname + location.search);
  try { return decodeURIComponent(m[1]); } catch { return null; }
}

function savedGuest() {
  try {
    const g = JSON.parse(load(KEY.guest) || 'null');
    return g && typeof g.id === 'string' && typeof g.token === 'string' ? g : null;
  } catch {
    return null;
  }
}

// The connection (reconnects, resumes, transports, acknowledgements) is ringcast.js's;
// the page follows its states and renders its events.
function createClient(first) {
  const client = new RingcastClient({
    room: first,
    token: load(KEY.token),
    guest: savedGuest()?.token ?? null, // the server checks it; a bad one gets a new identity
  });
  client.on('*', handleEvent);
  client.on('state', onClientState);
  return client;
}

function onClientState(s) {
  clearInterval(state.countdownTimer);
  switch (s.state) {
    case 'connecting':
      setConnState('connecting');
      break;
    case 'open':
      state.transport = s.transport;
      break; // "online" comes with the welcome, handled first
    case 'reconnecting':
      // switching: the library moved from SSE back to WebSocket; nothing was lost.
      disconnected(s.switching ? null : closeReason(s.code));
      state.retryAt = s.retryAt;
      if (s.retryAt) state.countdownTimer = setInterval(renderStatus, 250);
      setConnState('reconnecting');
      break;
    case 'offline':
      disconnected('Disconnected: the network is offline.');
      setConnState('offline');
      break;
    case 'closed':
      if (SIGN_IN_CLOSE_CODES.has(s.code)) {
        // Retrying with the same token would be refused for ever: ask for a new one.
        disconnected('Disconnected: sign-in required.');
        signInRequired(s.code, s.reason);
      }
      break;
    default:
      break;
  }
}

function signInRequired(code, reason) {
  if (code === 4002 || code === 4003) {
    save(KEY.token, null);
    state.client.token = null;
  }
  ui.signinWhy.textContent = `${SIGN_IN_CLOSE[code]}${reason ? ` (${reason})` : ''}`;
  ui.signinDo.textContent = 'Sign in to get a token; this page connects as soon as it has one.';
  ui.signin.hidden = false;
  ui.empty.hidden = true;
  setConnState('signin');
  // Is there a login page (--login-url)? /login redirects there, or is 404.
  fetch('/login', { method: 'HEAD', redirect: 'manual', cache: 'no-store' })
    .then((r) => {
      const has = r.type === 'opaqueredirect' || (r.status >= 300 && r.status < 400);
      ui.signinLink.hidden = !has;
      if (!has) ui.signinDo.textContent = 'Ask the site that sent you here for a sign-in link, or paste a token below.';
    })
    .catch(() => { ui.signinLink.hidden = true; });
}

// A new token: from the paste box, a #token= link, or another tab signing in. A live
// session takes it with `refresh` (no reconnect); a page waiting for one connects.
function useToken(token) {
  if (!token) return;
  save(KEY.token, token);
  if (state.connState === 'signin') ui.signin.hidden = true;
  state.client.refresh(token);
}

// The connection is gone (closed by either side, or dropped): nothing is live any more.
// `reason` (null: say nothing) is shown in the rooms that were live.
function disconnected(reason) {
  const wasOnline = state.connState === 'online';
  if (state.nickPending && state.nickPending.source === 'user') {
    state.wantedName = state.nickPending.name; // send it again after the reconnect
    setNameBusy(false);
  }
  state.nickPending = null;
  for (const room of state.rooms.values()) {
    const wasLive = room.live;
    room.live = false;
    room.joinLine = null;
    room.pendingHistory = null;
    if (wasOnline && wasLive && reason) mutatePane(room, () => addSystemLine(room, reason, 'warn'));
    renderPaneTop(room);
  }
  renderRoomList();
}

function closeReason(code) {
  if (navigator.onLine === false) return 'Disconnected: the network is offline.';
  switch (code) {
    case 1001: return 'Disconnected: the server is going away.';
    case 1008: return 'Disconnected by the server (policy).';
    case 1009: return 'Disconnected: a message was too large.';
    default: return 'Disconnected.';
  }
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
    case 'resumed': onResumed(ev); break;
    case 'nick': onNick(ev); break;
    case 'error': onServerError(ev); break;
    case 'guest': keepGuest(ev.guest); break;
    case 'refreshed': break;
    case 'rooms': onRooms(ev); break;
    default: break; // unknown event types are ignored so the server can add new ones
  }
  if (PRESENCE_EVENTS.has(ev.type)) renderWhoAndWhere();
}

function keepGuest(token) {
  if (typeof token === 'string' && state.currentId !== null) {
    save(KEY.guest, JSON.stringify({ id: state.currentId, token }));
  }
}

// Events that change who is in a room or which rooms exist.
const PRESENCE_EVENTS = new Set(['presence', 'join', 'leave', 'nick', 'rooms']);

function onWelcome(ev) {
  state.currentId = ev.id != null ? String(ev.id) : null;
  state.signedIn = ev.signed_in === true;
  // Our guest token brought our id back: every message from it is ours (the server
  // signed the token, and refuses it after a restart, when ids start over).
  state.stableGuest = !state.signedIn && ev.resumed === true;
  if (typeof ev.guest === 'string') keepGuest(ev.guest);
  state.myName = typeof ev.name === 'string' ? ev.name : '';
  if (Number.isInteger(ev.max_message) && ev.max_message > 0) state.maxMessage = ev.max_message;
  state.nickPending = null;

  // The connection's first room is the one in the URL; the server may have picked another.
  // (The client joins the others again, each resumed where it left off.)
  const first = typeof ev.room === 'string' && ROOM_RE.test(ev.room) ? ev.room : state.current;
  if (first && !state.rooms.has(first)) {
    addRoom(first);
    saveRooms();
  }

  // Claim our name again (a new connection starts as "User N").
  if (!state.signedIn) {
    const name = state.wantedName ?? state.savedName;
    if (name && name !== state.myName) sendNick(name, state.wantedName != null ? 'user' : 'auto');
    state.wantedName = null;
  }
  renderMe();
  setConnState('online');
  renderRoomList();
}

function onPresence(ev) {
  const room = state.rooms.get(ev.room);
  if (!room) return;
  room.members.clear();
  if (Array.isArray(ev.users)) {
    for (const u of ev.users) {
      if (!u || u.id == null) continue;
      const id = String(u.id);
      room.members.set(id, displayName(u));
      if (id !== state.currentId) forgetIdIfTaken(id);
    }
  }
  setCount(room, ev.count);
}

function onJoin(ev) {
  const room = state.rooms.get(ev.room);
  if (!room) return;
  setCount(room, ev.count);
  const user = ev.user || {};
  const id = user.id != null ? String(user.id) : null;
  if (id !== null) room.members.set(id, displayName(user));
  if (id !== null && id === state.currentId) {
    const again = room.joinedBefore;
    room.joinedBefore = true;
    requestDirectory();
    // History or replayed messages of this join go above this line.
    mutatePane(room, () => {
      room.joinLine = addSystemLine(room, again ? `Reconnected to #${room.name}` : `You joined #${room.name}`,
        again ? 'ok' : '');
    });
  } else {
    if (id !== null) forgetIdIfTaken(id);
    mutatePane(room, () => addSystemLine(room, `${displayName(user)} joined`));
  }
}

function onLeave(ev) {
  const user = ev.user || {};
  const id = user.id != null ? String(user.id) : null;
  if (id !== null && id === state.currentId) noteOwnLeave(ev);
  const room = state.rooms.get(ev.room);
  if (!room) return; // a room we already left
  if (id !== null && id === state.currentId) {
    removeRoom(room.name); // we asked to leave (normally already gone from the list)
    return;
  }
  setCount(room, ev.count);
  if (id !== null) room.members.delete(id);
  mutatePane(room, () => addSystemLine(room, `${displayName(user)} left`));
}

function onMessage(ev) {
  const room = state.rooms.get(typeof ev.room === 'string' ? ev.room : state.current);
  if (!room) return;
  const replay = !room.live; // `since` replay: before the join line, no forced scroll
  let el = null;
  mutatePane(room, () => { el = insertMessage(room, ev, { before: replay ? room.joinLine : null }); },
    { force: () => el !== null && el.classList.contains('own') && !replay });
  if (!el) return; // a duplicate or not a chat message
  if (room.name !== state.current && !el.classList.contains('own')) {
    room.unread += 1;
    renderRoomList();
  }
  trimIfBottom(room);
}

function onHistory(ev) {
  const room = state.rooms.get(ev.room);
  if (!room || !Array.isArray(ev.messages)) return;
  const msgs = ev.messages
    .filter((m) => m && Number.isInteger(m.id) && typeof m.text === 'string')
    .map((m) => ({ ...m, room: room.name }))
    .sort((a, b) => a.id - b.id);
  const pending = room.pendingHistory;
  room.pendingHistory = null;
  if (pending && pending.kind === 'older') {
    // Paging back: prepend, keeping what the reader looks at in place.
    mutatePane(room, () => {
      for (const m of msgs) insertMessage(room, m);
      room.more = ev.more === true;
      renderPaneTop(room);
    }, { keep: true });
  } else if (pending && pending.kind === 'reset') {
    mutatePane(room, () => {
      for (const m of msgs) insertMessage(room, m);
      room.more = ev.more === true;
      renderPaneTop(room);
    }, { force: true });
    if (!room.live) markLive(room, msgs.length ? msgs[msgs.length - 1].id : 0);
  } else {
    // The recent history that follows a join.
    const wasEmpty = room.byId.size === 0;
    mutatePane(room, () => {
      for (const m of msgs) insertMessage(room, m, { before: room.joinLine });
      if (wasEmpty || room.more === null) room.more = ev.more === true;
      renderPaneTop(room);
    }, { force: true });
    markLive(room, msgs.length ? msgs[msgs.length - 1].id : (room.lastId ?? 0));
  }
  fillViewport(room);
}

function onResumed(ev) {
  const room = state.rooms.get(ev.room);
  if (!room) return;
  const since = Number.isInteger(ev.since) ? ev.since : null;
  const last = Number.isInteger(ev.last) ? ev.last : null;
  if (since !== null && last !== null && last < since) {
    // The server no longer has what we saw (its database was replaced): start over.
    mutatePane(room, () => {
      clearMessages(room);
      addSystemLine(room, 'The server’s history was reset; showing its latest messages.', 'warn');
    });
    room.lastId = null;
    room.more = null;
    markLive(room, last);
    room.pendingHistory = { kind: 'reset' };
    if (!state.client.history({ room: room.name, limit: PAGE_SIZE })) room.pendingHistory = null;
    renderPaneTop(room);
    return;
  }
  if (ev.complete === false && since !== null) {
    // Only the newest were replayed: drop what we had from before the gap, so paging back
    // from the oldest shown message fills the gap (and then goes on into older history).
    mutatePane(room, () => {
      dropMessagesUpTo(room, since);
      room.more = true;
      renderPaneTop(room);
      addSystemLine(room, 'Some messages were skipped while you were away. Scroll up to load them.', 'warn');
    });
  }
  markLive(room, Math.max(last ?? 0, room.lastId ?? 0));
  fillViewport(room);
}

function onNick(ev) {
  const id = ev.id != null ? String(ev.id) : null;
  if (id === null || typeof ev.name !== 'string') return;
  const name = ev.name;
  const old = typeof ev.old === 'string' ? ev.old : null;
  const scoped = typeof ev.room === 'string';
  if (old === name) { // a rename to the same name changes nothing
    if (id === state.currentId) nickAccepted(name);
    return;
  }
  if (!scoped) {
    // The server sends one `nick` per room we share with the renamer, without saying which:
    // show the rename once.
    const key = `${id}\n${old}\n${name}`;
    const now = Date.now();
    if (state.recentNicks.get(key) > now - NICK_ECHO_MS) return;
    state.recentNicks.set(key, now);
    for (const [k, t] of state.recentNicks) if (t <= now - NICK_ECHO_MS) state.recentNicks.delete(k);
  }
  for (const room of state.rooms.values()) if (room.members.has(id)) room.members.set(id, name);

  if (id === state.currentId) {
    const p = state.nickPending;
    nickAccepted(name);
    if (!p || p.source === 'user') {
      const room = currentRoom();
      if (room) mutatePane(room, () => addSystemLine(room, `You are now ${name}`));
    }
    return;
  }
  const text = `${old || `User ${id}`} is now ${name}`;
  let targets = scoped ? [state.rooms.get(ev.room)].filter(Boolean)
    : [...state.rooms.values()].filter((r) => r.members.has(id));
  if (targets.length === 0 && !scoped && currentRoom()) targets = [currentRoom()];
  for (const room of targets) mutatePane(room, () => addSystemLine(room, text));
}

function nickAccepted(name) {
  const p = state.nickPending;
  state.nickPending = null;
  state.myName = name;
  if (!state.signedIn) {
    state.savedName = name;
    save(KEY.name, name);
  }
  renderMe();
  if (p && p.source === 'user') closeNameDialog();
}

function onServerError(ev) {
  // An error that answers one of our messages (it carries the message's cid) rejected that
  // send's promise: onSendRefused keeps the message.
  if (ev.cid != null) return;
  const code = typeof ev.code === 'string' ? ev.code : '';
  const text = typeof ev.message === 'string' && ev.message ? ev.message : 'The server reported an error.';
  switch (code) {
    case 'bad_token':
      showNotice(`The new sign-in token was not accepted (${text}); this session goes on until its token expires.`);
      break;
    case 'bad_name':
    case 'name_locked':
      onNickError(code, text);
      break;
    case 'bad_room':
    case 'too_many_rooms':
    case 'already_joined':
      onJoinError(code, text, ev.room);
      break;
    case 'history_failed': {
      const room = [...state.rooms.values()].find((r) => r.pendingHistory);
      if (room) {
        room.pendingHistory = null;
        renderPaneTop(room);
      }
      showNotice(`Could not load older messages: ${text}`);
      break;
    }
    case 'rate_limited':
      break; // a command (a rooms list, a page of history) dropped: it is asked again later
    case 'not_in_room':
      for (const r of state.rooms.values()) {
        if (r.pendingHistory) {
          r.pendingHistory = null;
          renderPaneTop(r);
        }
      }
      showNotice(`${text} (${code})`);
      break;
    default:
      showNotice(code ? `${text} (${code})` : text);
  }
}

// What the refused-messages notice says for each refusal.
const REFUSED_WHY = {
  rate_limited: 'you were sending too fast',
  not_saved: 'the server could not save them',
  unavailable: 'the server was unavailable',
  bad_text: 'one held a control character',
};

function onNickError(code, text) {
  const p = state.nickPending;
  state.nickPending = null;
  if (code === 'name_locked') {
    state.signedIn = true;
    state.wantedName = null;
    renderMe();
  }
  const why = code === 'name_locked' ? 'you are signed in, so your name comes from your account' : text;
  if (p && p.source === 'auto') {
    // The saved name is no longer accepted: forget it.
    state.savedName = '';
    save(KEY.name, null);
    showNotice(`Your saved name “${p.name}” was refused (${why}); you are ${state.myName || 'a guest'}.`);
    return;
  }
  setNameBusy(false);
  if (ui.nameDialog.open) showNameError(`The server refused that name: ${why}.`);
  else showNotice(`Could not change your name: ${why} (${code}).`);
}

// `name`: the join's room (ringcast.js tells which join an error answers).
function onJoinError(code, text, name) {
  const room = name ? state.rooms.get(name) : null;
  if (!room) {
    showNotice(`${text} (${code})`);
    return;
  }
  if (code === 'already_joined') {
    // We are in it already as far as the server knows: fetch its recent messages instead.
    room.pendingHistory = { kind: 'reset' };
    if (!state.client.history({ room: room.name, limit: PAGE_SIZE })) room.pendingHistory = null;
    return;
  }
  removeRoom(room.name);
  showNotice(`Could not join #${room.name}: ${text}.`);
}

/* ------------------------------------------------------------------ */
/* who is "You"                                                        */
/* ------------------------------------------------------------------ */

function markLive(room, boundary) {
  room.live = true;
  room.joinLine = null;
  if (state.currentId !== null && !state.signedIn) {
    if (!state.ranges.has(room.name)) state.ranges.set(room.name, []);
    const list = state.ranges.get(room.name);
    if (!list.some((r) => r.id === state.currentId && r.end === null)) {
      list.push({ id: state.currentId, start: boundary, end: null });
    }
  }
  renderPaneTop(room);
  renderComposer();
  renderRoomList();
}

// Another live user has one of our old ids (the server restarted and reuses them): from
// now on that id's messages are theirs.
function forgetIdIfTaken(id) {
  for (const [name, list] of state.ranges) {
    const room = state.rooms.get(name);
    for (const r of list) {
      if (r.id === id && r.end === null) r.end = Math.max(r.start, room?.lastId ?? r.start);
    }
  }
}

function isMine(roomName, m) {
  if (m.from == null) return false;
  const from = String(m.from);
  if ((state.signedIn || state.stableGuest) && from === state.currentId) return true; // a stable id
  const list = state.ranges.get(roomName);
  if (!list || !Number.isInteger(m.id)) return false;
  return list.some((r) => r.id === from && m.id > r.start && (r.end === null || m.id <= r.end));
}

/* ------------------------------------------------------------------ */
/* rooms                                                               */
/* ------------------------------------------------------------------ */

function createRoom(name) {
  const pane = document.createElement('div');
  pane.className = 'pane';
  pane.dataset.room = name;
  const top = document.createElement('div');
  top.className = 'pane-top';
  pane.append(top);
  return {
    name,
    pane,
    top,
    byId: new Map(),       // message id -> element (the room's message list, deduplicated)
    minId: null,
    maxId: null,
    lastId: null,          // newest id seen: where a resume starts
    more: null,            // older history exists (null: not known yet)
    live: false,           // joined on the current connection, history/replay received
    joinedBefore: false,
    joinLine: null,
    pendingHistory: null,  // { kind: 'older' | 'reset' } while a `history` is unanswered
    unread: 0,
    count: null,
    members: new Map(),    // id -> name (from presence/join/leave/nick)
    scroll: null,          // distance of the view's top from the content's bottom; null: at the bottom
  };
}

function addRoom(name) {
  const room = createRoom(name);
  state.rooms.set(name, room);
  renderPaneTop(room);
  return room;
}

function currentRoom() {
  return state.current ? state.rooms.get(state.current) || null : null;
}

// Joined now, or on the next connection (the client keeps it, and resumes it from its last id).
function sendJoin(room) {
  if (state.client) state.client.join(room.name);
  renderPaneTop(room);
}

function joinRoom(raw) {
  const name = raw.trim().replace(/^#/, '');
  if (!ROOM_RE.test(name)) {
    showJoinError(name ? 'Room names are 1–64 of A–Z a–z 0–9 _ . - (no spaces).' : 'Type a room name.');
    return false;
  }
  hideJoinError();
  if (state.rooms.has(name)) {
    switchTo(name);
    return true;
  }
  if (state.rooms.size >= MAX_ROOMS) {
    showJoinError(`You can be in at most ${MAX_ROOMS} rooms. Leave one first.`);
    return false;
  }
  const room = addRoom(name);
  switchTo(name);
  saveRooms();
  sendJoin(room);
  return true;
}

function leaveRoom(name) {
  const room = state.rooms.get(name);
  if (!room || state.rooms.size <= 1) return;
  removeRoom(name);
  announce(`Left #${name}`);
}

function removeRoom(name) {
  const room = state.rooms.get(name);
  if (!room) return;
  // Our id can post nothing more in that room: close its range.
  for (const r of state.ranges.get(name) || []) if (r.end === null) r.end = Math.max(r.start, room.lastId ?? r.start);
  if (state.client) state.client.leave(name); // also what a refused join and our own leave end in
  const names = [...state.rooms.keys()];
  const at = names.indexOf(name);
  state.rooms.delete(name);
  if (state.current === name) {
    const next = names[at + 1] || names[at - 1] || 'lobby';
    state.current = null;
    if (!state.rooms.has(next)) sendJoin(addRoom(next));
    switchTo(next);
  }
  saveRooms();
  renderRoomList();
  renderWhoAndWhere();
}

function switchTo(name) {
  const room = state.rooms.get(name);
  if (!room) return;
  const prev = currentRoom();
  if (prev && prev !== room) prev.scroll = isNearBottom() ? null : ui.log.scrollHeight - ui.log.scrollTop;
  state.current = name;
  room.unread = 0;
  if (!room.pane.isConnected || prev !== room) {
    ui.log.setAttribute('aria-busy', 'true'); // do not read out a whole room on switching
    ui.log.replaceChildren(room.pane, ui.empty);
    requestAnimationFrame(() => ui.log.removeAttribute('aria-busy'));
  }
  updateEmpty();
  if (room.scroll === null) scrollToBottom();
  else {
    ui.log.scrollTop = ui.log.scrollHeight - room.scroll;
    ui.jump.hidden = true;
  }
  ui.room.textContent = `#${name}`;
  // (field-sizing grows the textarea to fit its placeholder: keep it to one line)
  ui.input.placeholder = `Message #${name.length > 14 ? `${name.slice(0, 13)}…` : name}`;
  const url = new URL(location.href);
  url.search = '';
  url.searchParams.set('room', name); // the address bar is a shareable link to this room
  if (url.href !== location.href) history.replaceState(null, '', url.href);
  save(KEY.room, name);
  if (state.client) state.client.room = name; // a reconnect opens in the room shown
  renderStatus();
  renderComposer();
  renderRoomList();
  renderWhoAndWhere();
  renderRefused(); // names the room of kept messages that are not this one's
  closeDrawer(false);
  fillViewport(room);
}

function shareLink(name) {
  const url = new URL(location.href);
  url.search = '';
  url.hash = '';
  url.searchParams.set('room', name);
  return url.href;
}

async function copyLink() {
  const room = currentRoom();
  if (!room) return;
  const link = shareLink(room.name);
  let ok = false;
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(link);
      ok = true;
    }
  } catch { /* not allowed: show the link instead */ }
  if (ok) {
    ui.copyLink.textContent = 'Copied!';
    ui.copyLink.dataset.copied = 'true';
    announce(`Link to #${room.name} copied`);
    clearTimeout(state.copyTimer);
    state.copyTimer = setTimeout(() => {
      ui.copyLink.textContent = 'Copy link';
      delete ui.copyLink.dataset.copied;
    }, 2000);
  } else {
    showNotice(`Link to #${room.name}: ${link}`);
  }
}

function requestOlder(room) {
  if (!room || !room.live || room.pendingHistory || room.more !== true || room.minId === null) return;
  if (!state.client.history({ room: room.name, before: room.minId, limit: PAGE_SIZE })) return;
  room.pendingHistory = { kind: 'older' };
  mutatePane(room, () => renderPaneTop(room), { keep: true });
}

// A short room with older history cannot be scrolled up: load until it can.
function fillViewport(room) {
  if (room.name !== state.current) return;
  if (ui.log.scrollHeight <= ui.log.clientHeight + NEAR_TOP_PX) requestOlder(room);
}

/* ------------------------------------------------------------------ */
/* rendering                                                           */
/* ------------------------------------------------------------------ */

function displayName(user) {
  if (user && typeof user.name === 'string' && user.name) return user.name;
  if (user && user.id != null) return `User ${user.id}`;
  return 'Someone';
}

function formatTime(ts) {
  const d = new Date(ts);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

function renderMessage(room, m) {
  const mine = isMine(room.name, m);
  const ts = Number.isFinite(m.ts) ? m.ts : Date.now();

  const item = document.createElement('article');
  // Colour by name, so a person keeps a colour across reconnects (new connection ids).
  item.className = mine ? 'msg own' : `msg other hue-${hueFor(m.name || m.from)}`;
  item.dataset.id = String(m.id);

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
  return item;
}

// Puts a message into the room's list in id order; returns its element, or null for a
// duplicate (same room and id) or something that is not a chat message.
function insertMessage(room, m, { before = null } = {}) {
  if (typeof m.text !== 'string' || !Number.isInteger(m.id)) return null;
  if (room.byId.has(m.id)) return null;
  const el = renderMessage(room, m);
  if (room.maxId === null || m.id > room.maxId) {
    if (before && before.isConnected && before.parentNode === room.pane) room.pane.insertBefore(el, before);
    else room.pane.append(el);
  } else {
    let next = null;
    for (const other of room.pane.querySelectorAll('.msg')) {
      if (Number(other.dataset.id) > m.id) { next = other; break; }
    }
    room.pane.insertBefore(el, next);
  }
  room.byId.set(m.id, el);
  if (room.maxId === null || m.id > room.maxId) room.maxId = m.id;
  if (room.minId === null || m.id < room.minId) room.minId = m.id;
  if (room.lastId === null || m.id > room.lastId) room.lastId = m.id;
  return el;
}

function clearMessages(room) {
  for (const el of room.byId.values()) el.remove();
  room.byId.clear();
  room.minId = null;
  room.maxId = null;
}

function dropMessagesUpTo(room, id) {
  for (const [mid, el] of room.byId) {
    if (mid <= id) {
      el.remove();
      room.byId.delete(mid);
    }
  }
  // Lines that sat among the dropped messages go too.
  const first = room.pane.querySelector('.msg');
  while (first && room.top.nextElementSibling && room.top.nextElementSibling !== first) {
    room.top.nextElementSibling.remove();
  }
  recomputeBounds(room);
}

function recomputeBounds(room) {
  const ids = [...room.byId.keys()];
  room.minId = ids.length ? Math.min(...ids) : null;
  room.maxId = ids.length ? Math.max(...ids) : null;
}

// Keep the DOM bounded while the reader follows the bottom: drop the oldest messages,
// which can be paged back in.
function trimIfBottom(room) {
  if (room.byId.size <= MAX_MESSAGES) return;
  const atBottom = room.name === state.current ? isNearBottom() : room.scroll === null;
  if (!atBottom) return;
  mutatePane(room, () => {
    const msgs = room.pane.querySelectorAll('.msg');
    const excess = room.byId.size - MAX_MESSAGES;
    for (let i = 0; i < excess; i += 1) {
      room.byId.delete(Number(msgs[i].dataset.id));
      msgs[i].remove();
    }
    const first = room.pane.querySelector('.msg');
    while (first && room.top.nextElementSibling && room.top.nextElementSibling !== first) {
      room.top.nextElementSibling.remove();
    }
    recomputeBounds(room);
    room.more = true;
    renderPaneTop(room);
  });
}

function renderPaneTop(room) {
  const top = room.top;
  let want;
  if (room.pendingHistory && room.pendingHistory.kind === 'older') want = 'loading';
  else if (room.more === true) want = 'more';
  else if (room.more === false) want = 'begin';
  else if (!room.live && state.connState === 'online') want = 'joining';
  else want = 'none';
  if (top.dataset.kind === want) return;
  top.dataset.kind = want;
  top.replaceChildren();
  if (want === 'more') {
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.className = 'load-older';
    btn.textContent = 'Load older messages';
    top.append(btn);
  } else if (want !== 'none') {
    const p = document.createElement('p');
    p.className = want === 'begin' ? 'beginning' : 'top-note';
    p.textContent = want === 'begin' ? `Beginning of #${room.name}`
      : want === 'loading' ? 'Loading older messages…' : `Joining #${room.name}…`;
    top.append(p);
  }
}

function addSystemLine(room, text, tone = '') {
  const line = document.createElement('p');
  line.className = tone ? `sys ${tone}` : 'sys';
  line.textContent = text;
  room.pane.append(line);
  return line;
}

// Change a room's pane; if it is on screen, keep the scroll sensible:
// keep: hold the content in view in place (prepending older messages);
// otherwise stick to the bottom if we were there (or `force`), else offer "New messages".
function mutatePane(room, fn, { force = false, keep = false } = {}) {
  if (room.name !== state.current) {
    fn();
    return;
  }
  const el = ui.log;
  const wasNearBottom = isNearBottom();
  const fromBottom = el.scrollHeight - el.scrollTop;
  const heightBefore = el.scrollHeight;
  fn();
  updateEmpty();
  if (keep) {
    el.scrollTop = el.scrollHeight - fromBottom;
    return;
  }
  const forced = typeof force === 'function' ? force() : force;
  if (forced || wasNearBottom) scrollToBottom();
  else if (el.scrollHeight > heightBefore) ui.jump.hidden = false;
}

function updateEmpty() {
  const room = currentRoom();
  // "Say hello!" under a sign-in prompt would invite what cannot be done yet
  ui.empty.hidden = state.connState === 'signin' || !room || room.pane.childElementCount > 1 || room.more === true;
}

function hueFor(key) {
  let h = 0;
  for (const ch of String(key ?? '')) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return h % 8;
}

function isNearBottom() {
  const el = ui.log;
  return el.scrollHeight - el.scrollTop - el.clientHeight <= NEAR_BOTTOM_PX;
}

function scrollToBottom() {
  ui.log.scrollTop = ui.log.scrollHeight;
  ui.jump.hidden = true;
}

function renderRoomList() {
  const frag = document.createDocumentFragment();
  let total = 0;
  for (const room of state.rooms.values()) {
    total += room.unread;
    const li = document.createElement('li');
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.className = 'room-item';
    btn.dataset.room = room.name;
    btn.dataset.key = room.name;
    if (room.name === state.current) btn.setAttribute('aria-current', 'true');
    if (!room.live) btn.classList.add('pending');
    const hash = document.createElement('span');
    hash.className = 'room-hash';
    hash.setAttribute('aria-hidden', 'true');
    hash.textContent = '#';
    const label = document.createElement('span');
    label.className = 'room-name';
    label.textContent = room.name;
    btn.append(hash, label);
    if (room.unread > 0) {
      const badge = document.createElement('span');
      badge.className = 'badge';
      badge.textContent = room.unread > 99 ? '99+' : String(room.unread);
      const sr = document.createElement('span');
      sr.className = 'visually-hidden';
      sr.textContent = ` (${room.unread} unread)`;
      btn.append(badge, sr);
    }
    li.append(btn);
    frag.append(li);
  }
  replaceKeepingFocus(ui.roomList, [frag]);
  ui.roomsUnread.hidden = total === 0;
  ui.roomsUnread.textContent = total > 99 ? '99+' : String(total);
  ui.roomsToggle.setAttribute('aria-label', total ? `Rooms (${total} unread)` : 'Rooms');
  ui.leave.disabled = state.rooms.size <= 1;
  ui.leave.title = state.rooms.size <= 1 ? 'You need to be in at least one room' : 'Leave this room';
  const room = state.current ? `#${state.current}` : 'ringcast';
  document.title = `${total ? `(${total}) ` : ''}${room} · ringcast chat`;
}

function renderMe() {
  const name = state.myName || state.wantedName || state.savedName || '…';
  ui.meName.textContent = name;
  ui.me.disabled = state.signedIn;
  ui.me.classList.toggle('signed-in', state.signedIn);
  ui.meIcon.textContent = state.signedIn ? '✓' : '✎';
  ui.me.title = state.signedIn ? `Signed in as ${name}` : 'Change your display name';
  ui.me.setAttribute('aria-label', state.signedIn ? `Signed in as ${name}` : `Your name: ${name}. Change it`);
}

function setCount(room, count) {
  if (Number.isInteger(count) && count >= 0) {
    room.count = count;
    if (room.name === state.current) renderStatus();
  }
}

function setConnState(s) {
  state.connState = s;
  if (s !== 'reconnecting') clearInterval(state.countdownTimer);
  if (s !== 'online') state.transport = null;
  renderStatus();
  renderComposer();
  for (const room of state.rooms.values()) renderPaneTop(room);
}

function renderStatus() {
  const s = state.connState;
  const count = currentRoom()?.count ?? null;
  let text;
  switch (s) {
    case 'online':
      text = count == null ? 'Online' : `Online · ${count} ${count === 1 ? 'person' : 'people'}`;
      break;
    case 'reconnecting': {
      if (!state.retryAt) { text = 'Reconnecting…'; break; }
      const secs = Math.max(1, Math.ceil((state.retryAt - Date.now()) / 1000));
      text = `Reconnecting in ${secs} s`;
      break;
    }
    case 'offline': text = 'Offline'; break;
    case 'signin': text = 'Sign-in required'; break;
    default: text = 'Connecting…';
  }
  ui.status.dataset.state = s;
  if (ui.statusText.textContent !== text) ui.statusText.textContent = text;
  // Screen readers hear state changes, not the per-second countdown.
  const spoken = s === 'reconnecting' ? 'Connection lost, reconnecting' : text.replace(' · ', ', ').replace('…', '');
  if (ui.statusLive.textContent !== spoken) ui.statusLive.textContent = spoken;
  ui.retry.hidden = !((s === 'reconnecting' && state.retryAt) || s === 'offline');
}

function renderComposer() {
  const room = currentRoom();
  ui.send.disabled = state.connState !== 'online' || !room || !room.live;
}

function showNotice(text) {
  ui.noticeText.textContent = text;
  ui.notice.hidden = false;
}

function hideNotice() {
  ui.notice.hidden = true;
  ui.noticeText.textContent = '';
}

function announce(text) {
  ui.announce.textContent = '';
  requestAnimationFrame(() => { ui.announce.textContent = text; });
}

function showJoinError(text) {
  ui.joinError.textContent = text;
  ui.joinError.hidden = false;
  ui.joinInput.setAttribute('aria-invalid', 'true');
}

function hideJoinError() {
  ui.joinError.hidden = true;
  ui.joinError.textContent = '';
  ui.joinInput.removeAttribute('aria-invalid');
}

/* ------------------------------------------------------------------ */
/* who is here, which rooms exist, messages not sent                  */
/* ------------------------------------------------------------------ */

// The server took our leave: its count is the room's, now without us (a `rooms` answer
// sent before it may still have counted us), and the all-rooms list is asked for again.
function noteOwnLeave(ev) {
  if (typeof ev.room !== 'string' || !Number.isInteger(ev.count)) return;
  if (ev.count > 0) state.listed.set(ev.room, ev.count);
  else state.listed.delete(ev.room);
  requestDirectory();
}

function onRooms(ev) {
  if (!Array.isArray(ev.rooms)) return;
  state.listed = new Map(ev.rooms
    .filter((r) => r && typeof r.room === 'string' && ROOM_RE.test(r.room) && Number.isInteger(r.count))
    .map((r) => [r.room, r.count]));
}

// Ask for the all-rooms list; several asks in a moment (a reconnect rejoining) send one.
function requestDirectory() {
  clearTimeout(state.directoryTimer);
  state.directoryTimer = setTimeout(() => state.client.listRooms(), DIRECTORY_DEBOUNCE_MS);
}

function renderWhoAndWhere() {
  renderPeople({ list: ui.people, title: ui.peopleTitle, room: currentRoom(), myId: state.currentId });
  renderDirectory({ list: ui.directory, listed: state.listed, joined: state.rooms, current: state.current });
}

// Posts a message; if the server (or the client) refuses it, it is kept for sending again.
function sendMessage(room, text) {
  state.client.send(text, { room }).catch((err) => onSendRefused(room, text, err));
}

function onSendRefused(room, text, err) {
  if (err.code === 'closed') return;
  outboxKeep(state.outbox, room, text);
  state.refusedWhy = REFUSED_WHY[err.code] || err.message;
  if (err.code === 'not_saved') {
    showNotice('The server could not save a message, so it was not sent. It is kept below for sending again.');
  } else if (err.code !== 'rate_limited') {
    showNotice(`${err.message} (${err.code})`);
  }
  // Sending them again at once would only be refused again (and too many refusals in a
  // row get the connection closed): give the flood limit a moment to refill.
  ui.refusedResend.disabled = true;
  clearTimeout(state.resendTimer);
  state.resendTimer = setTimeout(() => { ui.refusedResend.disabled = false; }, RESEND_COOLDOWN_MS);
  renderRefused();
}

function renderRefused() {
  const list = state.outbox.refused;
  ui.refused.hidden = list.length === 0;
  if (list.length === 0) {
    ui.refusedText.textContent = '';
    ui.refusedList.replaceChildren();
    return;
  }
  const n = list.length;
  ui.refusedText.textContent = `${n} ${n === 1 ? 'message was' : 'messages were'} not sent`
    + `${state.refusedWhy ? ` (${state.refusedWhy})` : ''}. They are kept here to send again.`;
  ui.refusedList.replaceChildren(...list.map((m) => {
    const li = document.createElement('li');
    li.className = 'refused-item';
    if (m.room !== state.current) {
      const where = document.createElement('span');
      where.className = 'refused-room';
      where.textContent = `#${m.room} `;
      li.append(where);
    }
    li.append(m.text);
    return li;
  }));
}

// Send the kept messages again, in their order; those whose room is not live stay kept.
function resendRefused() {
  const canSend = (m) => state.connState === 'online' && state.rooms.get(m.room)?.live === true;
  for (const m of outboxTakeRefused(state.outbox, canSend)) sendMessage(m.room, m.text);
  renderRefused();
}

// A message over the server's --max-message (told in welcome) would get the connection
// closed with 1009 and the text lost: refuse it here and keep it in the composer.
function showTooLong(bytes) {
  if (bytes <= state.maxMessage) {
    clearTooLong();
    return false;
  }
  ui.tooLong.textContent = `Too long to send: ${formatBytes(bytes)}, the limit is ${formatBytes(state.maxMessage)}.`
    + ' Your text is kept; shorten it or split it.';
  ui.tooLong.hidden = false;
  ui.input.setAttribute('aria-invalid', 'true');
  return true;
}

function clearTooLong() {
  if (ui.tooLong.hidden) return;
  ui.tooLong.hidden = true;
  ui.tooLong.textContent = '';
  ui.input.removeAttribute('aria-invalid');
}

/* ------------------------------------------------------------------ */
/* phone drawer                                                        */
/* ------------------------------------------------------------------ */

const drawerQuery = window.matchMedia('(max-width: 719px)');

function openDrawer() {
  ui.app.classList.add('drawer-open');
  ui.roomsToggle.setAttribute('aria-expanded', 'true');
  ui.backdrop.hidden = false;
  const target = ui.roomList.querySelector('[aria-current="true"]') || ui.joinInput;
  target.focus();
}

function closeDrawer(restoreFocus = true) {
  if (!ui.app.classList.contains('drawer-open')) return;
  ui.app.classList.remove('drawer-open');
  ui.roomsToggle.setAttribute('aria-expanded', 'false');
  ui.backdrop.hidden = true;
  if (restoreFocus && drawerQuery.matches) ui.roomsToggle.focus();
}

/* ------------------------------------------------------------------ */
/* name dialog                                                         */
/* ------------------------------------------------------------------ */

function nameProblem(name) {
  if (!name) return 'Type a name.';
  if ([...name].length > NAME_MAX) return `A name is at most ${NAME_MAX} characters.`;
  if (BAD_NAME_CHARS.test(name)) return 'That name contains characters that are not allowed.';
  return '';
}

function sendNick(name, source) {
  if (!state.client.nick(name)) return false;
  state.nickPending = { name, source };
  return true;
}

function openNameDialog() {
  if (state.signedIn) return;
  ui.nameInput.value = state.wantedName ?? (state.myName || state.savedName);
  showNameError('');
  setNameBusy(false);
  if (typeof ui.nameDialog.showModal === 'function') ui.nameDialog.showModal();
  else ui.nameDialog.setAttribute('open', '');
  ui.nameInput.focus();
  ui.nameInput.select();
}

function closeNameDialog() {
  setNameBusy(false);
  if (!ui.nameDialog.open) return;
  if (typeof ui.nameDialog.close === 'function') ui.nameDialog.close();
  else ui.nameDialog.removeAttribute('open');
}

function showNameError(text) {
  ui.nameError.textContent = text;
  ui.nameError.hidden = !text;
  if (text) ui.nameInput.setAttribute('aria-invalid', 'true');
  else ui.nameInput.removeAttribute('aria-invalid');
}

function setNameBusy(busy) {
  ui.nameSave.disabled = busy;
  ui.nameSave.textContent = busy ? 'Saving…' : 'Save';
}

function submitName() {
  const name = ui.nameInput.value.trim();
  const problem = nameProblem(name);
  if (problem) {
    showNameError(problem);
    ui.nameInput.focus();
    return;
  }
  showNameError('');
  if (state.connState !== 'online') {
    // Claimed on the next welcome.
    state.wantedName = name;
    renderMe();
    closeNameDialog();
    showNotice(`You will be “${name}” as soon as you are back online.`);
    return;
  }
  if (name === state.myName) {
    closeNameDialog();
    return;
  }
  if (sendNick(name, 'user')) setNameBusy(true); // closes on our `nick` event, or shows the error
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
  const room = currentRoom();
  if (state.connState !== 'online' || !room || !room.live) return;
  if (showTooLong(state.client.messageBytes(text, { room: room.name }))) return; // the text stays in the composer
  sendMessage(room.name, text);
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

function initRooms() {
  const fromUrl = readPageParams();
  const names = loadRoomNames();
  const stored = load(KEY.room);
  const current = fromUrl || (stored && names.includes(stored) ? stored : null) || names[0] || 'lobby';
  if (!names.includes(current)) {
    if (names.length >= MAX_ROOMS) names.pop();
    names.push(current);
  }
  for (const n of names) addRoom(n);
  state.client = createClient(current);
  for (const n of names) state.client.join(n); // joined on connecting, each resumed from then on
  switchTo(current); // also puts ?room=<current> in the address bar (and drops any ?token=)
  saveRooms();
}

function init() {
  state.savedName = load(KEY.name) || '';
  ui.form.addEventListener('submit', (e) => { e.preventDefault(); submitMessage(); });
  ui.input.addEventListener('keydown', onKeyDown);
  ui.input.addEventListener('input', autosize);
  ui.input.addEventListener('input', clearTooLong);
  ui.refusedResend.addEventListener('click', resendRefused);
  ui.refusedDiscard.addEventListener('click', () => { outboxTakeRefused(state.outbox); renderRefused(); });
  ui.directoryRefresh.addEventListener('click', requestDirectory);
  ui.directory.addEventListener('focusin', (e) => {
    // Rooms we are not in send no events: entering the list is a good moment to ask.
    if (!(e.relatedTarget instanceof Node && ui.directory.contains(e.relatedTarget))) requestDirectory();
  });
  ui.directory.addEventListener('click', (e) => {
    const btn = e.target instanceof Element ? e.target.closest('.dir-item') : null;
    if (btn) joinRoom(btn.dataset.room); // switches to it when already joined
  });
  setInterval(() => {
    if (state.connState === 'online' && document.visibilityState === 'visible') requestDirectory();
  }, DIRECTORY_REFRESH_MS);
  ui.noticeClose.addEventListener('click', hideNotice);
  ui.retry.addEventListener('click', () => state.client.reconnectNow());
  ui.jump.addEventListener('click', scrollToBottom);
  ui.log.addEventListener('scroll', () => {
    if (isNearBottom()) ui.jump.hidden = true;
    if (ui.log.scrollTop <= NEAR_TOP_PX) requestOlder(currentRoom());
  }, { passive: true });
  ui.log.addEventListener('click', (e) => {
    if (e.target instanceof Element && e.target.closest('.load-older')) requestOlder(currentRoom());
  });

  ui.roomList.addEventListener('click', (e) => {
    const btn = e.target instanceof Element ? e.target.closest('.room-item') : null;
    if (btn) switchTo(btn.dataset.room);
  });
  ui.joinForm.addEventListener('submit', (e) => {
    e.preventDefault();
    if (joinRoom(ui.joinInput.value)) ui.joinInput.value = '';
  });
  ui.joinInput.addEventListener('input', () => {
    const v = ui.joinInput.value.trim().replace(/^#/, '');
    if (v === '' || ROOM_RE.test(v)) hideJoinError();
  });
  ui.copyLink.addEventListener('click', copyLink);
  ui.leave.addEventListener('click', () => { if (state.current) leaveRoom(state.current); });

  ui.roomsToggle.addEventListener('click', () => {
    if (ui.app.classList.contains('drawer-open')) closeDrawer();
    else openDrawer();
  });
  ui.sidebarClose.addEventListener('click', () => closeDrawer());
  ui.backdrop.addEventListener('click', () => closeDrawer());
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && ui.app.classList.contains('drawer-open')) closeDrawer();
  });
  drawerQuery.addEventListener('change', () => closeDrawer(false));

  ui.me.addEventListener('click', openNameDialog);
  ui.nameForm.addEventListener('submit', (e) => { e.preventDefault(); submitName(); });
  ui.nameCancel.addEventListener('click', closeNameDialog);
  ui.nameDialog.addEventListener('close', () => setNameBusy(false));

  ui.signinForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const t = ui.signinToken.value.trim();
    ui.signinToken.value = '';
    useToken(t);
  });
  window.addEventListener('hashchange', () => useToken(tokenFromHash()));
  // Another tab signed in (or again): localStorage is shared, sessionStorage is not.
  window.addEventListener('storage', (e) => {
    if (e.key === KEY.token && e.newValue) useToken(e.newValue);
  });
  document.addEventListener('visibilitychange', () => {
    // Coming back to a tab that waits for a long backoff: try at once.
    if (document.visibilityState === 'visible' && state.connState === 'reconnecting' && state.retryAt) {
      state.client.reconnectNow();
    }
  });

  initRooms();
  renderMe();
  renderStatus();
  renderComposer();
  state.client.connect();
  // Focus the input on desktop; on touch screens that would pop up the keyboard.
  if (window.matchMedia('(pointer: fine)').matches) ui.input.focus();
}

init();

// Exposed read-only for debugging and the browser test.
export { handleEvent, state };
