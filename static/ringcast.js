// ringcast.js: the client side of the ringcast protocol (docs/protocol.md), for pages
// served by ringcast and for Node. An ES module with no dependencies and no build step,
// CSP-clean (no eval). It owns the connection; the application only renders events.
//
//   const client = new RingcastClient({ room: 'lobby' });
//   client.on('message', (m) => show(m));
//   client.connect();
//   await client.send('hi');             // resolves with the server's copy of it
//
// What it does for the application:
// * connects over WebSocket (/ws) and, when WebSocket cannot connect (an upgrade refused
//   by a proxy, say), over Server-Sent Events (/sse, with commands POSTed to /send); while
//   on SSE it tries WebSocket again in the background and moves back when one opens;
// * reconnects with jittered exponential backoff and resumes every room from the last
//   message id it saw (the first room with ?since=, the others with join+since), and drops
//   any message it has already delivered: the application sees no gap and no duplicate;
// * gives every message a client id (cid) and settles send()'s promise with the server's
//   acknowledgement (the sender's copy, which carries the cid) or its error;
// * queues messages written while disconnected and sends them after the resume.
//
// Delivery guarantee of send(), exactly: a message whose acknowledgement arrived was
// stored once. A message written while disconnected goes out once, after its room is
// resumed. A message that went out but whose acknowledgement was lost with the connection
// is looked for in the resumed room's replay (a message from the id it was sent under with
// the same text: history does not carry cids); found, its promise resolves with that copy;
// not found, it is sent again with the same cid. Two ways this can still go wrong: (1) the
// server was still storing the message when the new connection's replay was taken (the
// store takes milliseconds, a reconnect at least a backoff of ~350 ms), so it arrives live
// after the resend: it is then shown twice; (2) the same person (same id: another tab of
// the same guest or user) sent the same text in that room during the outage, so that copy
// is taken for this one: this one is then lost. A transport switch (SSE back to WebSocket)
// waits until no message is awaiting its acknowledgement, so it opens neither window.
// After a replay that the server marks incomplete ("complete":false) a message not found
// is sent again too.

const BACKOFF_BASE_MS = 500;       // first retry delay
const BACKOFF_MAX_MS = 15000;      // cap for the doubling
const BACKOFF_JITTER = 0.3;        // +/- 30 %
const STABLE_AFTER_MS = 10000;     // a connection open this long resets the backoff
const FALLBACK_AFTER = 3;          // WebSocket failures before open, in a row, before trying SSE
const PROBE_MS = 30000;            // on SSE: try a WebSocket again this often (+ up to 50 %)
const SWITCH_WAIT_MS = 5000;       // a WebSocket probe waits at most this long for acks in flight
const ROOM_RE = /^[A-Za-z0-9_.-]{1,64}$/;
// Errors that attach to the oldest unanswered `join` (they carry no room of their own).
const JOIN_ERRORS = new Set(['bad_room', 'too_many_rooms', 'already_joined']);

/**
 * Close codes with which the server refuses a sign-in (docs/protocol.md, "Sign-in"):
 * 4001 token missing, 4002 expired, 4003 invalid. The client does not reconnect after one
 * until it is given a token (`refresh`) or told to (`connect`).
 * @type {ReadonlySet<number>}
 */
export const SIGN_IN_CLOSE_CODES = new Set([4001, 4002, 4003]);

/**
 * Why a `send` (or another promise of the client) was refused.
 * `code` is the server's error code (`rate_limited`, `not_saved`, `bad_text`, `not_in_room`,
 * ...) or one of the client's own: `empty` (no text), `too_large` (over the server's
 * `max_message`), `not_in_room` (a room the client was not asked to join), `origin` (the
 * server refused this page's origin), `closed` (`close()` was called first).
 */
export class RingcastError extends Error {
  /**
   * @param {string} code the error code
   * @param {string} message what happened, for people
   * @param {object|null} [event] the server's `error` event, when there was one
   */
  constructor(code, message, event = null) {
    super(message || code);
    this.name = 'RingcastError';
    /** @type {string} */
    this.code = code;
    /** @type {object|null} */
    this.event = event;
  }
}

/**
 * The delay before reconnect attempt number `attempt` (0-based): 500 ms doubling up to
 * 15 s, each +/- 30 % at random so that clients dropped together do not return together.
 * @param {number} attempt
 * @param {() => number} [random] a source of numbers in [0, 1)
 * @returns {number} milliseconds
 */
export function backoffDelay(attempt, random = Math.random) {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
  return Math.round(base * (1 + (random() * 2 - 1) * BACKOFF_JITTER));
}

function parseEvent(data) {
  if (typeof data !== 'string') return null;
  try {
    const ev = JSON.parse(data);
    return ev && typeof ev === 'object' && typeof ev.type === 'string' ? ev : null;
  } catch {
    return null; // not JSON: not part of the protocol, ignored
  }
}

/* ------------------------------------------------------------------ */
/* transports: one small object each, the same four members            */
/* ------------------------------------------------------------------ */
// kind: 'websocket' | 'sse'; send(command) -> bool; close(); and the callbacks it calls:
// onopen(), onevent(ev), onclose({ code, reason, opened }). Each calls onclose once.

class WebSocketTransport {
  constructor(Ctor, url, handlers) {
    this.kind = 'websocket';
    Object.assign(this, handlers);
    this.opened = false;
    this.ended = false;
    this.ws = new Ctor(url);
    this.ws.onopen = () => {
      this.opened = true;
      this.onopen();
    };
    this.ws.onmessage = (e) => {
      const ev = parseEvent(e.data);
      if (ev) this.onevent(ev);
    };
    // 'error' is always followed by 'close', where the reconnect is decided. (Node's `ws`
    // throws an 'error' that has no listener: this one must be there.)
    this.ws.onerror = () => {};
    this.ws.onclose = (e) => this.end(e.code, e.reason);
  }

  send(cmd) {
    if (this.ended || this.ws.readyState !== 1) return false;
    this.ws.send(typeof cmd === 'string' ? cmd : JSON.stringify(cmd));
    return true;
  }

  end(code, reason) {
    if (this.ended) return;
    this.ended = true;
    this.onclose({ code: code ?? 1006, reason: reason || '', opened: this.opened });
  }

  close(code = 1000, reason = '') {
    if (this.ended) return;
    try { this.ws.close(code, reason); } catch { /* already closing */ }
    this.end(code, reason);
  }
}

// Server-Sent Events for what the server says, POST /send?session=KEY for what we say.
// The EventSource's own reconnect is not used: on any error the stream is closed and the
// client reconnects as it does for WebSocket (same backoff, every room resumed; the server's
// Last-Event-ID support is for plain EventSource users).
class SseTransport {
  constructor(EventSourceCtor, fetchFn, url, sendUrl, handlers) {
    this.kind = 'sse';
    Object.assign(this, handlers);
    this.fetch = fetchFn;
    this.sendUrl = sendUrl;
    this.session = null;
    this.opened = false;
    this.ended = false;
    this.chain = Promise.resolve(); // POSTs one at a time: the server must see them in order
    this.es = new EventSourceCtor(url);
    this.es.onmessage = (e) => {
      if (this.ended) return;
      const ev = parseEvent(e.data);
      if (!ev) return;
      if (ev.type === 'session' && !this.opened) {
        this.session = String(ev.session);
        this.opened = true;
        this.onopen();
        return;
      }
      this.onevent(ev);
    };
    this.es.addEventListener('close', (e) => {
      const ev = parseEvent(e.data) || {};
      this.close(Number.isInteger(ev.code) ? ev.code : 1006, typeof ev.reason === 'string' ? ev.reason : '');
    });
    this.es.onerror = () => this.close(1006, '');
  }

  // Queued behind the POSTs before it; the answer to a refused command (400, 429) comes
  // back as an `error` event, exactly as the stream would have carried it.
  send(cmd, onUnsent = () => {}) {
    if (this.ended || !this.session) return false;
    const body = typeof cmd === 'string' ? cmd : JSON.stringify(cmd);
    const url = `${this.sendUrl}?session=${encodeURIComponent(this.session)}`;
    this.chain = this.chain.then(() => this.post(url, body, onUnsent));
    return true;
  }

  async post(url, body, onUnsent) {
    if (this.ended) {
      onUnsent(); // never left: it goes out again after the resume
      return;
    }
    let res;
    try {
      // text/plain keeps a cross-origin POST (--allow-origin) free of a CORS preflight.
      res = await this.fetch(url, {
        method: 'POST', body, cache: 'no-store', credentials: 'same-origin',
        headers: { 'Content-Type': 'text/plain;charset=UTF-8' },
      });
    } catch {
      // Whether it arrived is unknown: reconnect, and let the resume find out.
      this.close(1006, 'send failed');
      return;
    }
    if (res.status === 202) return;
    let answer = null;
    try { answer = await res.json(); } catch { /* no JSON body */ }
    if ((res.status === 400 || res.status === 429) && answer && answer.type === 'error') {
      this.onanswer(answer);
    } else if (res.status === 403 || res.status === 413) {
      const code = res.status === 403 ? 'origin' : 'too_large';
      let cid;
      try { cid = JSON.parse(body).cid; } catch { /* a plain-text frame */ }
      this.onanswer({ type: 'error', code, message: `the server answered ${res.status}`, ...(cid ? { cid } : {}) });
    } else {
      // 401 token_expired, 404 no_session, anything else: the session is gone and the
      // command was not taken. It goes again after the reconnect (the stream tells a
      // refused sign-in with its close event).
      onUnsent();
      this.close(1006, `send answered ${res.status}`);
    }
  }

  close(code = 1000, reason = '') {
    if (this.ended) return;
    this.ended = true;
    try { this.es.close(); } catch { /* closed */ }
    this.onclose({ code, reason, opened: this.opened });
  }
}

/* ------------------------------------------------------------------ */
/* the client                                                          */
/* ------------------------------------------------------------------ */

/**
 * A connection to a ringcast server that survives disconnections.
 *
 * Events (`on(type, fn)`): every server event by its `type` (`welcome`, `message`,
 * `history`, `resumed`, `presence`, `join`, `leave`, `nick`, `rooms`, `guest`,
 * `refreshed`, `error`, ...), `'*'` for all of them, and `'state'`, called with
 * `{ state, transport, code, reason, retryAt, switching }` (`transport`: the one in use, or
 * being tried while connecting) where `state` is one of
 * `connecting` (first attempt), `open` (welcome received), `reconnecting` (`retryAt`: when
 * the next attempt starts, 0 while one is under way; `code`/`reason`: why the last
 * connection ended), `offline` (the browser says the network is gone), `closed` (`close()`
 * was called, or a sign-in was refused: `code` 4001-4003).
 * A `message` already delivered (its id at or below the room's last id) is not delivered
 * again. An `error` that answers a join carries that join's `room` (added by the client).
 */
export class RingcastClient {
  /**
   * @param {object} [options]
   * @param {string} [options.url] the server, e.g. `http://localhost:4000/` (default: the page's origin)
   * @param {string} [options.room] the first room (default `lobby`)
   * @param {string|null} [options.token] a sign-in token (JWT), sent as `?token=`
   * @param {string|null} [options.guest] a guest token from an earlier `welcome`, sent as `?guest=`
   * @param {Array<'websocket'|'sse'>} [options.transports] which to use, in order of preference
   * @param {Function} [options.WebSocket] WebSocket constructor (default: the global one)
   * @param {Function} [options.EventSource] EventSource constructor (default: the global one)
   * @param {Function} [options.fetch] fetch function (default: the global one)
   * @param {number} [options.fallbackAfter] WebSocket failures before open, in a row, before SSE is tried (3)
   * @param {number} [options.probeMs] on SSE, how often to try WebSocket again (30000, + up to 50 %)
   * @param {boolean} [options.watchNetwork] follow the browser's online/offline events (default: when there is a window)
   */
  constructor(options = {}) {
    const g = globalThis;
    const base = options.url ?? (g.location ? g.location.href : undefined);
    if (!base) throw new TypeError('RingcastClient: no url given and no page location to default to');
    const http = new URL('/', base);
    if (http.protocol === 'ws:') http.protocol = 'http:';
    if (http.protocol === 'wss:') http.protocol = 'https:';
    this._httpBase = http.href.replace(/\/$/, '');
    this._wsBase = this._httpBase.replace(/^http/, 'ws');

    const room = options.room ?? 'lobby';
    if (!ROOM_RE.test(room)) throw new RangeError(`RingcastClient: invalid room name ${JSON.stringify(room)}`);
    /** The sign-in token sent with the next connection (null: none). @type {string|null} */
    this.token = options.token ?? null;
    /** The guest token sent with the next connection; kept up to date from `welcome` and `guest`. @type {string|null} */
    this.guest = options.guest ?? null;

    this._transports = (options.transports ?? ['websocket', 'sse']).filter((t) => t === 'websocket' || t === 'sse');
    if (this._transports.length === 0) throw new RangeError('RingcastClient: no usable transport');
    this._WebSocket = options.WebSocket ?? g.WebSocket;
    this._EventSource = options.EventSource ?? g.EventSource;
    this._fetch = options.fetch ?? ((...a) => g.fetch(...a));
    if (!this._WebSocket) this._transports = this._transports.filter((t) => t !== 'websocket');
    if (!this._EventSource) this._transports = this._transports.filter((t) => t !== 'sse');
    if (this._transports.length === 0) throw new TypeError('RingcastClient: no WebSocket or EventSource available');
    this._fallbackAfter = options.fallbackAfter ?? FALLBACK_AFTER;
    this._probeMs = options.probeMs ?? PROBE_MS;

    this._listeners = new Map();
    this._rooms = new Map([[room, { lastId: null, live: false }]]); // the rooms we want to be in
    this._room = room;
    this._state = 'idle';
    this._t = null;               // the current transport
    this._gen = 0;                // connections so far: a sent message remembers its own
    this._mode = this._transports[0];
    this._failures = { websocket: 0, sse: 0 }; // failures before open, in a row
    this._attempt = 0;
    this._retryAt = 0;
    this._retryTimer = 0;
    this._stableTimer = 0;
    this._probeTimer = 0;
    this._probe = null;           // { t, buffer, since } a WebSocket tried while on SSE
    this._everOpen = false;
    this._closedByUser = true;    // until connect()
    this._signInRefused = false;  // closed by a sign-in refusal: refresh() reconnects
    this._pendingJoins = [];      // rooms whose join is unanswered, oldest first
    this._pending = new Map();    // cid -> a message not yet acknowledged
    this._cidPrefix = Math.random().toString(36).slice(2, 8);
    this._cidNext = 1;
    this._id = null;
    this._signedIn = false;
    this._maxMessage = null;
    this._echoesCid = false;      // the server has echoed one of our cids

    this._watchNetwork = options.watchNetwork ?? (typeof g.addEventListener === 'function' && !!g.navigator);
    this._watching = false;
    this._onOffline = () => this._goOffline();
    this._onOnline = () => { if (this._state === 'offline') this.reconnectNow(); };
  }

  _watch(on) {
    if (!this._watchNetwork || this._watching === on) return;
    this._watching = on;
    const method = on ? 'addEventListener' : 'removeEventListener';
    globalThis[method]('offline', this._onOffline);
    globalThis[method]('online', this._onOnline);
  }

  /* ---------------- reading the client ---------------- */

  /** The connection state: `idle`, `connecting`, `open`, `reconnecting`, `offline` or `closed`. @type {string} */
  get state() { return this._state; }

  /** The transport of the current connection (`websocket`, `sse`), or null. @type {string|null} */
  get transport() { return this._t ? this._t.kind : null; }

  /** Our id on the current connection (from `welcome`), or null before the first. @type {string|null} */
  get id() { return this._id; }

  /** The server's largest accepted message, in bytes (from `welcome`), or null. @type {number|null} */
  get maxMessage() { return this._maxMessage; }

  /**
   * The room the next connection opens in (`?room=`, resumed with `?since=`); setting it to
   * a room not joined yet joins it. The page sets it to the room it shows.
   * @type {string}
   */
  get room() { return this._room; }

  set room(name) {
    if (!this._rooms.has(name)) this.join(name);
    this._room = name;
  }

  /** The rooms the client is in or joining, in the order they were joined. @returns {string[]} */
  rooms() { return [...this._rooms.keys()]; }

  /**
   * The newest message id delivered in `room` (where its resume starts), or null.
   * @param {string} room
   * @returns {number|null}
   */
  lastId(room) { return this._rooms.get(room)?.lastId ?? null; }

  /**
   * Whether `room` is live on the current connection: joined, and its history or replay
   * delivered (messages sent to it now go out at once instead of waiting).
   * @param {string} room
   * @returns {boolean}
   */
  isLive(room) { return this._rooms.get(room)?.live === true; }

  /* ---------------- events ---------------- */

  /**
   * Calls `fn(event)` for every event of `type` (a server event type, `'*'` for all server
   * events, or `'state'`).
   * @param {string} type
   * @param {(event: object) => void} fn
   * @returns {RingcastClient} this
   */
  on(type, fn) {
    if (!this._listeners.has(type)) this._listeners.set(type, new Set());
    this._listeners.get(type).add(fn);
    return this;
  }

  /**
   * Stops calling `fn` for `type`.
   * @param {string} type
   * @param {(event: object) => void} fn
   * @returns {RingcastClient} this
   */
  off(type, fn) {
    this._listeners.get(type)?.delete(fn);
    return this;
  }

  _emit(type, ev) {
    for (const fn of [...(this._listeners.get(type) || [])]) {
      try {
        fn(ev);
      } catch (err) {
        queueMicrotask(() => { throw err; }); // the application's bug: report it, keep going
      }
    }
  }

  _setState(state, extra = {}) {
    this._state = state;
    this._emit('state', {
      state, transport: this.transport, code: null, reason: '', retryAt: 0, switching: false, ...extra,
    });
  }

  /* ---------------- connecting ---------------- */

  /**
   * Opens the connection (again, after `close()` or a refused sign-in); reconnects by itself
   * from then on until `close()`.
   * @returns {RingcastClient} this
   */
  connect() {
    this._closedByUser = false;
    this._signInRefused = false;
    this._attempt = 0;
    this._watch(true);
    this._open();
    return this;
  }

  /**
   * Tries to reconnect now instead of waiting for the backoff (a "Retry" button, a tab
   * becoming visible, the network coming back). Does nothing while connected.
   */
  reconnectNow() {
    if (this._closedByUser || this._t) return;
    this._attempt = 0;
    this._open();
  }

  /**
   * Closes the connection for good (until `connect()`): no reconnect; messages not yet
   * acknowledged are rejected with code `closed`.
   */
  close() {
    this._closedByUser = true;
    this._clearTimers();
    this._dropProbe();
    const t = this._t;
    this._t = null;
    if (t) t.close(1000, 'bye');
    this._connectionGone();
    for (const p of this._pending.values()) p.reject(new RingcastError('closed', 'the client was closed'));
    this._pending.clear();
    this._watch(false);
    this._setState('closed');
  }

  _clearTimers() {
    clearTimeout(this._retryTimer);
    clearTimeout(this._stableTimer);
    clearTimeout(this._probeTimer);
    this._retryTimer = 0;
    this._stableTimer = 0;
    this._probeTimer = 0;
  }

  _query() {
    const q = new URLSearchParams();
    q.set('room', this._room);
    const since = this._rooms.get(this._room)?.lastId;
    if (since != null) q.set('since', String(since)); // replay what we missed, not recent history
    if (this.token) q.set('token', this.token);
    else if (this.guest) q.set('guest', this.guest); // the server checks it; a bad one gets a new identity
    return q.toString();
  }

  _makeTransport(kind, handlers) {
    const q = this._query();
    if (kind === 'websocket') return new WebSocketTransport(this._WebSocket, `${this._wsBase}/ws?${q}`, handlers);
    return new SseTransport(this._EventSource, this._fetch, `${this._httpBase}/sse?${q}`,
      `${this._httpBase}/send`, handlers);
  }

  _open() {
    clearTimeout(this._retryTimer);
    this._retryTimer = 0;
    if (this._t) return;
    if (this._watching && globalThis.navigator.onLine === false) {
      this._setState('offline');
      return;
    }
    this._setState(this._everOpen ? 'reconnecting' : 'connecting', { transport: this._mode });
    let t;
    try {
      t = this._makeTransport(this._mode, this._handlersFor(() => t));
    } catch (err) {
      // A bad URL, or a constructor that throws: count it as a failure and back off.
      this._afterClose(this._mode, { code: 1006, reason: String(err && err.message), opened: false });
      return;
    }
    this._t = t;
  }

  _handlersFor(self) {
    return {
      onopen: () => { if (self() === this._t) this._onTransportOpen(self()); },
      onevent: (ev) => { if (self() === this._t) this._onEvent(ev); },
      onanswer: (ev) => this._onAnswer(self(), ev),
      onclose: (info) => {
        if (self() !== this._t) return;
        this._t = null;
        this._connectionGone();
        this._afterClose(self().kind, info);
      },
    };
  }

  _onTransportOpen(t) {
    this._gen += 1;
    this._failures[t.kind] = 0;
    // `open` is announced with the welcome: that is when we know who we are.
  }

  // Everything that was live on the connection that just went.
  _connectionGone() {
    clearTimeout(this._stableTimer);
    clearTimeout(this._probeTimer);
    this._dropProbe();
    this._pendingJoins = [];
    for (const r of this._rooms.values()) r.live = false;
  }

  _afterClose(kind, { code, reason, opened }) {
    if (this._closedByUser) return;
    if (SIGN_IN_CLOSE_CODES.has(code)) {
      // The same token would be refused for ever: wait for refresh() or connect().
      // Messages waiting stay waiting for that.
      this._closedByUser = true;
      this._signInRefused = true;
      this._clearTimers();
      this._setState('closed', { code, reason });
      return;
    }
    let switched = false;
    if (!opened) {
      this._failures[kind] += 1;
      const other = this._transports.find((k) => k !== kind);
      if (other && this._failures[kind] >= this._fallbackAfter) {
        this._failures[kind] = 0;
        this._mode = other;
        switched = true;
      }
    }
    if (this._state === 'offline') return;
    // The other transport is tried soon; the backoff still grows for the next failures.
    const delay = backoffDelay(switched ? 0 : this._attempt);
    this._attempt += 1;
    this._retryAt = Date.now() + delay;
    this._retryTimer = setTimeout(() => this._open(), delay);
    this._setState('reconnecting', { code, reason, retryAt: this._retryAt });
  }

  _goOffline() {
    // A dead TCP connection can take minutes to notice: drop it now and wait for `online`.
    if (this._closedByUser) return;
    this._clearTimers();
    const t = this._t;
    this._t = null;
    this._state = 'offline'; // before the close, so nothing schedules a retry
    if (t) t.close(1000, 'offline');
    this._connectionGone();
    this._setState('offline');
  }

  /* ---------------- back to WebSocket from SSE ---------------- */

  _scheduleProbe() {
    clearTimeout(this._probeTimer);
    if (!this._t || this._t.kind !== 'sse' || !this._transports.includes('websocket')) return;
    const delay = Math.round(this._probeMs * (1 + Math.random() * 0.5));
    this._probeTimer = setTimeout(() => this._startProbe(), delay);
  }

  // A WebSocket opened beside the SSE stream. It is a whole new connection (its URL resumes
  // the first room): if it opens, its events are held until every message in flight on
  // the stream has its answer, and then it takes over; what the two overlap in is dropped
  // by id like any replay.
  _startProbe() {
    if (!this._t || this._t.kind !== 'sse' || this._probe) return;
    const probe = { t: null, buffer: [], openedAt: 0, waitTimer: 0 };
    probe.t = this._makeTransport('websocket', {
      onopen: () => {
        if (this._probe !== probe) return;
        probe.openedAt = Date.now();
        probe.waitTimer = setTimeout(() => this._adoptProbe(), SWITCH_WAIT_MS);
        this._adoptProbeWhenQuiet();
      },
      onevent: (ev) => {
        if (this._t === probe.t) this._onEvent(ev);
        else if (this._probe === probe) probe.buffer.push(ev);
      },
      onanswer: () => {},
      onclose: (info) => {
        if (this._t === probe.t) {
          this._t = null;
          this._connectionGone();
          this._afterClose('websocket', info);
          return;
        }
        if (this._probe !== probe) return;
        clearTimeout(probe.waitTimer);
        this._probe = null;
        this._scheduleProbe(); // still refused: try again later
      },
    });
    this._probe = probe;
  }

  _adoptProbeWhenQuiet() {
    const probe = this._probe;
    if (!probe || !probe.openedAt) return;
    for (const p of this._pending.values()) if (p.state === 'sent') return; // an ack is on its way
    this._adoptProbe();
  }

  _adoptProbe() {
    const probe = this._probe;
    if (!probe || !probe.openedAt) return;
    clearTimeout(probe.waitTimer);
    this._probe = null;
    const old = this._t;
    this._t = probe.t;
    if (old) old.close(1000, 'moving to WebSocket'); // its onclose sees it is no longer current
    this._connectionGone();
    this._gen += 1;
    this._failures.websocket = 0;
    this._mode = 'websocket';
    this._setState('reconnecting', { switching: true });
    for (const ev of probe.buffer) {
      if (this._t !== probe.t) return;
      this._onEvent(ev);
    }
  }

  _dropProbe() {
    const probe = this._probe;
    if (!probe) return;
    this._probe = null;
    clearTimeout(probe.waitTimer);
    probe.t.close(1000, 'not needed');
  }

  /* ---------------- commands ---------------- */

  /**
   * Sends a raw command (an object, or a string to send as it is) on the current
   * connection. Nothing is queued or retried: for what the other methods do not cover.
   * @param {object|string} cmd
   * @returns {boolean} whether it went out (false while disconnected)
   */
  command(cmd) {
    return this._t ? this._t.send(cmd) : false;
  }

  /**
   * Posts `text` to a room (default: `room`, the connection's first room). Resolves with
   * the server's copy of the message (its `message` event, with `id` and `ts`) once it is
   * stored; rejects with a {@link RingcastError} (`code`: the server's error code, or
   * `empty`, `too_large`, `not_in_room`, `origin`, `closed`). While disconnected, or
   * before the room is live, the message waits and goes out after the resume (see the
   * delivery guarantee at the top of this file).
   * @param {string} text
   * @param {{ room?: string }} [options]
   * @returns {Promise<object>} the acknowledged `message` event
   */
  send(text, { room = this._room } = {}) {
    if (typeof text !== 'string' || text === '') {
      return Promise.reject(new RingcastError('empty', 'a message needs text'));
    }
    if (!this._rooms.has(room)) {
      return Promise.reject(new RingcastError('not_in_room', `not in room ${room}`));
    }
    const bytes = this.messageBytes(text, { room });
    const cid = `${this._cidPrefix}.${this._cidNext++}`;
    if (this._maxMessage != null) {
      if (bytes > this._maxMessage) {
        return Promise.reject(new RingcastError('too_large',
          `${bytes} bytes, over the server's limit of ${this._maxMessage}`));
      }
    }
    return new Promise((resolve, reject) => {
      const p = { cid, room, text, state: 'queued', gen: 0, fromId: null, resolve, reject };
      this._pending.set(cid, p);
      if (this._t && this.isLive(room)) this._transmit(p);
    });
  }

  /**
   * The size in bytes of the frame `send(text, { room })` would send now, as the server
   * counts it against `maxMessage` (a longer one is refused with `too_large`).
   * @param {string} text
   * @param {{ room?: string }} [options]
   * @returns {number}
   */
  messageBytes(text, { room = this._room } = {}) {
    const cid = `${this._cidPrefix}.${this._cidNext}`;
    return new TextEncoder().encode(JSON.stringify({ type: 'message', room, text, cid })).length;
  }

  _transmit(p) {
    p.state = 'sent';
    p.gen = this._gen;
    p.fromId = this._id;
    const sent = this._t.send({ type: 'message', room: p.room, text: p.text, cid: p.cid }, () => {
      if (p.state === 'sent') p.state = 'queued';
    });
    if (!sent) p.state = 'queued';
  }

  /**
   * Joins a room (it becomes the server's current room for plain-text messages). Kept across
   * reconnects: each new connection joins it again, resuming from its last id.
   * @param {string} room
   * @returns {boolean} whether the join went out now (false: it will on the next connection)
   */
  join(room) {
    if (!ROOM_RE.test(room)) throw new RangeError(`invalid room name ${JSON.stringify(room)}`);
    if (!this._rooms.has(room)) this._rooms.set(room, { lastId: null, live: false });
    if (this._state !== 'open') return false;
    if (this._pendingJoins.includes(room) || this.isLive(room)) return true;
    return this._sendJoin(room);
  }

  _sendJoin(room) {
    const cmd = { type: 'join', room };
    const since = this._rooms.get(room)?.lastId;
    if (since != null) cmd.since = since;
    if (!this.command(cmd)) return false;
    this._pendingJoins.push(room);
    return true;
  }

  /**
   * Leaves a room; its waiting messages are rejected (`not_in_room`). Leaving the first
   * room makes the next one joined the first.
   * @param {string} room
   * @returns {boolean} whether the leave went out now
   */
  leave(room) {
    if (!this._rooms.has(room)) return false;
    const wasLive = this.isLive(room) || this._pendingJoins.includes(room);
    this._rooms.delete(room);
    this._pendingJoins = this._pendingJoins.filter((r) => r !== room);
    for (const [cid, p] of this._pending) {
      if (p.room === room && p.state === 'queued') {
        this._pending.delete(cid);
        p.reject(new RingcastError('not_in_room', `left room ${room}`));
      }
    }
    if (this._room === room) this._room = this._rooms.keys().next().value ?? room;
    return wasLive ? this.command({ type: 'leave', room }) : false;
  }

  /**
   * Asks for a new display name; the answer is a `nick` event (or an `error`).
   * @param {string} name
   * @returns {boolean} whether it went out
   */
  nick(name) { return this.command({ type: 'nick', name }); }

  /**
   * Asks for a page of older messages; the answer is a `history` event.
   * @param {{ room?: string, before?: number, limit?: number }} [options]
   * @returns {boolean} whether it went out
   */
  history({ room = this._room, before, limit } = {}) {
    const cmd = { type: 'history', room };
    if (before != null) cmd.before = before;
    if (limit != null) cmd.limit = limit;
    return this.command(cmd);
  }

  /**
   * Asks for the rooms list (`rooms` event: ours and every room with people in it).
   * @returns {boolean} whether it went out
   */
  listRooms() { return this.command({ type: 'rooms' }); }

  /**
   * Hands the client a new sign-in token: a live signed-in session takes it with `refresh`
   * (answered `refreshed` or `error` `bad_token`); a client whose sign-in was refused
   * connects with it.
   * @param {string} token
   * @returns {boolean} whether anything went out or started
   */
  refresh(token) {
    if (!token) return false;
    this.token = token;
    if (this._state === 'closed' && this._signInRefused) {
      this.connect();
      return true;
    }
    if (this._state === 'open' && this._signedIn) return this.command({ type: 'refresh', token });
    return false;
  }

  /* ---------------- events from the server ---------------- */

  // A refused POST /send: handled as the stream would have carried it, also when the
  // stream has been replaced meanwhile (it refers to a cid, not to the connection).
  _onAnswer(t, ev) {
    if (t === this._t) this._onEvent(ev);
    else if (ev.cid && this._pending.has(ev.cid)) this._onError(ev);
  }

  _onEvent(ev) {
    let deliver = true;
    switch (ev.type) {
      case 'welcome': this._onWelcome(ev); break;
      case 'message': deliver = this._onMessage(ev); break;
      case 'history': this._onHistory(ev); break;
      case 'resumed': this._onResumed(ev); break;
      case 'presence': this._pendingJoins = this._pendingJoins.filter((r) => r !== ev.room); break;
      case 'guest': if (typeof ev.guest === 'string') this.guest = ev.guest; break;
      case 'error': ev = this._onError(ev); break;
      default: break;
    }
    if (!deliver) return;
    this._emit(ev.type, ev);
    this._emit('*', ev);
    if (ev.type === 'welcome') {
      this._setState('open');
      this._scheduleProbe();
    }
    if (ev.type === 'history' || ev.type === 'resumed') this._flush(ev.room);
  }

  _onWelcome(ev) {
    this._id = ev.id != null ? String(ev.id) : null;
    this._signedIn = ev.signed_in === true;
    if (typeof ev.guest === 'string') this.guest = ev.guest;
    if (Number.isInteger(ev.max_message) && ev.max_message > 0) this._maxMessage = ev.max_message;
    this._everOpen = true;
    clearTimeout(this._stableTimer);
    this._stableTimer = setTimeout(() => { this._attempt = 0; }, STABLE_AFTER_MS);
    const first = typeof ev.room === 'string' && ROOM_RE.test(ev.room) ? ev.room : this._room;
    if (!this._rooms.has(first)) this._rooms.set(first, { lastId: null, live: false });
    this._pendingJoins = [first];
    this._state = 'open'; // so that join() below sends; announced after the welcome itself
    for (const room of this._rooms.keys()) if (room !== first) this._sendJoin(room);
  }

  // Returns false for a message already delivered.
  _onMessage(ev) {
    const room = typeof ev.room === 'string' ? this._rooms.get(ev.room) : null;
    if (room && Number.isInteger(ev.id)) {
      if (room.lastId != null && ev.id <= room.lastId) return false;
      room.lastId = ev.id;
    }
    let own = null;
    if (ev.cid != null) {
      own = this._pending.get(ev.cid);
      if (own) this._echoesCid = true;
    } else {
      own = this._matchOwn(ev, room);
    }
    if (own) this._settle(own, ev);
    return true;
  }

  // The server's copy of one of our messages that carries no cid: in a replay (the ack
  // was lost with its connection), the oldest message of ours sent on an earlier
  // connection with the same room, author id and text; live, only from a server that has
  // never echoed a cid (an older one), the oldest sent on this connection.
  _matchOwn(ev, room) {
    if (!room || ev.from == null || typeof ev.text !== 'string') return null;
    if (room.live && this._echoesCid) return null; // another tab of ours, or a raw command()
    const from = String(ev.from);
    for (const p of this._pending.values()) {
      if (p.state !== 'sent' || p.room !== ev.room || p.text !== ev.text || p.fromId !== from) continue;
      if (room.live ? p.gen === this._gen : p.gen < this._gen) return p;
    }
    return null;
  }

  _settle(p, ev) {
    this._pending.delete(p.cid);
    p.resolve(ev);
    if (this._probe) this._adoptProbeWhenQuiet();
  }

  _onHistory(ev) {
    const room = this._rooms.get(ev.room);
    if (!room || !Array.isArray(ev.messages)) return;
    for (const m of ev.messages) {
      if (m && Number.isInteger(m.id) && (room.lastId == null || m.id > room.lastId)) room.lastId = m.id;
    }
    if (!room.live && room.lastId == null) room.lastId = 0; // an empty room: resume from its start
  }

  _onResumed(ev) {
    const room = this._rooms.get(ev.room);
    if (!room || !Number.isInteger(ev.last)) return;
    if (Number.isInteger(ev.since) && ev.last < ev.since) room.lastId = ev.last; // the server's history was reset
    else if (room.lastId == null || ev.last > room.lastId) room.lastId = ev.last;
  }

  // The room's history or replay has been delivered: it is live. Messages of ours that
  // went out on an earlier connection and were not found in the replay go again (same
  // cid), then the ones written meanwhile, in the order they were written.
  _flush(name) {
    const room = this._rooms.get(name);
    if (!room || room.live || !this._t) return;
    room.live = true;
    this._pendingJoins = this._pendingJoins.filter((r) => r !== name);
    for (const p of this._pending.values()) {
      if (p.room !== name) continue;
      if (p.state === 'queued' || (p.state === 'sent' && p.gen < this._gen)) this._transmit(p);
    }
  }

  // Returns the event to deliver: a join's error gets the join's room.
  _onError(ev) {
    const p = ev.cid != null ? this._pending.get(ev.cid) : null;
    if (p) {
      this._pending.delete(p.cid);
      p.reject(new RingcastError(typeof ev.code === 'string' ? ev.code : 'error',
        typeof ev.message === 'string' ? ev.message : '', ev));
      if (this._probe) this._adoptProbeWhenQuiet();
      return ev;
    }
    if (JOIN_ERRORS.has(ev.code) && ev.room == null && this._pendingJoins.length > 0) {
      const room = this._pendingJoins.shift();
      if (ev.code !== 'already_joined') {
        this._rooms.delete(room);
        if (this._room === room) this._room = this._rooms.keys().next().value ?? room;
        for (const [cid, q] of this._pending) {
          if (q.room !== room) continue;
          this._pending.delete(cid);
          q.reject(new RingcastError('not_in_room', `could not join ${room}: ${ev.code}`));
        }
      }
      return { ...ev, room };
    }
    return ev;
  }
}
