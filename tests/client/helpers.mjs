// What the client library's tests need and do not test: the real server as a child process
// (started, killed, restarted on the same port), a small TCP proxy in front of it that can
// refuse WebSocket upgrades, cut every connection, hold new ones back or swallow what the
// server says, and waiting for things with a deadline.
//
// The server binary and the page's directory come from RINGCAST_BIN and RINGCAST_STATIC
// (tests/meson.build sets them), else build/ringcast and static/ of this source tree.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
export const BIN = process.env.RINGCAST_BIN || path.join(root, 'build', 'ringcast');
export const STATIC = process.env.RINGCAST_STATIC || path.join(root, 'static');
export const STEP_MS = 10_000; // one step's deadline: generous for a loaded 2-core machine

// The library under test, the very file the server serves.
export const { RingcastClient, RingcastError, backoffDelay } = await import(path.join(STATIC, 'ringcast.js'));

/** A fresh temporary directory, removed at exit. */
export function tmpDir(prefix = 'ringcast-client-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * Starts ringcast and resolves once it prints its "listening on" line (port 0: a free one).
 * The returned object's `stop()` sends SIGTERM (then SIGKILL), `kill()` SIGKILL.
 */
export async function startServer({ port = 0, db = null, args = [] } = {}) {
  const threads = process.env.RINGCAST_THREADS ? ['--threads', process.env.RINGCAST_THREADS] : [];
  const full = ['--host', '127.0.0.1', '--port', String(port), '--static', STATIC, ...threads,
    ...(db ? ['--db', db] : ['--no-persist']), ...args];
  const child = spawn(BIN, full, { stdio: ['ignore', 'pipe', 'pipe'] });
  const srv = { child, log: '', port: 0, exited: false };
  srv.exit = new Promise((resolve) => child.on('exit', () => { srv.exited = true; resolve(); }));
  const keep = (c) => { srv.log = (srv.log + c).slice(-8000); };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  process.on('exit', () => { try { child.kill('SIGKILL'); } catch { /* gone */ } });
  await waitFor('the server listening', () => {
    if (srv.exited) throw new Error(`server exited before listening:\n${srv.log}`);
    const m = /listening on http:\/\/[^\s:]+:(\d+)\//.exec(srv.log);
    return m && Number(m[1]);
  }).then((p) => { srv.port = p; });
  srv.url = `http://127.0.0.1:${srv.port}/`;
  srv.kill = async () => { if (!srv.exited) child.kill('SIGKILL'); await srv.exit; };
  srv.stop = async () => {
    if (srv.exited) return;
    child.kill('SIGTERM');
    const done = await Promise.race([srv.exit.then(() => true), sleep(3000).then(() => false)]);
    if (!done) await srv.kill();
  };
  return srv;
}

/** An HS256 token as an application would issue it (docs/protocol.md, Sign-in). */
export function jwt(secret, claims) {
  const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');
  const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${input}.${crypto.createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/** A server restarted on a port just freed may find it briefly taken: try a few times. */
export async function restartServer(opts) {
  let last;
  for (let i = 0; i < 40; i += 1) {
    try {
      return await startServer(opts);
    } catch (err) {
      last = err;
      await sleep(100);
    }
  }
  throw last;
}

/** Polls fn() until it returns something truthy; fails after `ms`. */
export async function waitFor(what, fn, ms = STEP_MS) {
  const deadline = Date.now() + ms;
  let lastErr = null;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      if (/exited/.test(err.message)) throw err;
      lastErr = err;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms${lastErr ? ` (${lastErr.message})` : ''}`);
    await sleep(20);
  }
}

/** Resolves with the client's next `state` event whose state is `state` (and matches `pred`). */
export function nextState(client, state, pred = () => true, ms = STEP_MS) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('state', fn);
      reject(new Error(`state "${state}" not reached within ${ms} ms (now ${client.state}, ${client.transport})`));
    }, ms);
    function fn(ev) {
      if (ev.state !== state || !pred(ev)) return;
      clearTimeout(timer);
      client.off('state', fn);
      resolve(ev);
    }
    client.on('state', fn);
  });
}

/** Rejects after `ms` with `what`: for promises that must settle. */
export function within(promise, what, ms = STEP_MS) {
  let timer;
  return Promise.race([promise, new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  })]).finally(() => clearTimeout(timer));
}

/**
 * Records every message event a client is given, per room, so a test can check the ids
 * it saw are contiguous and unique.
 */
export function recordMessages(client) {
  const rec = { byRoom: new Map(), all: [] };
  client.on('message', (m) => {
    if (!rec.byRoom.has(m.room)) rec.byRoom.set(m.room, []);
    rec.byRoom.get(m.room).push(m);
    rec.all.push(m);
  });
  // History after a join counts as seen too (the room's starting point).
  client.on('history', (h) => {
    if (!rec.byRoom.has(h.room)) rec.byRoom.set(h.room, []);
    for (const m of h.messages || []) rec.byRoom.get(h.room).push({ ...m, room: h.room, fromHistory: true });
  });
  rec.ids = (room) => (rec.byRoom.get(room) || []).map((m) => m.id);
  rec.texts = (room) => (rec.byRoom.get(room) || []).map((m) => m.text);
  return rec;
}

/** Ids that break "each one more than the one before" (a gap or a duplicate), as text. */
export function idProblems(ids) {
  const bad = [];
  for (let i = 1; i < ids.length; i += 1) if (ids[i] !== ids[i - 1] + 1) bad.push(`${ids[i - 1]}->${ids[i]}`);
  return bad;
}

/** A client with the Node constructors (ws, eventsource) and fast test-friendly timing. */
export async function makeClient(url, options = {}) {
  const { WebSocket } = await import('ws');
  const { EventSource } = await import('eventsource');
  return new RingcastClient({ url, WebSocket, EventSource, fetch: globalThis.fetch, ...options });
}

export { startProxy } from './proxy.mjs';

/**
 * A plain sender (no library): a raw ws connection to `room` that posts texts and waits
 * for each one's own copy. Returns { send(text) -> message event, close() }.
 */
export async function rawSender(url, room) {
  const { WebSocket } = await import('ws');
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}ws?room=${room}`);
  const waiting = new Map();
  let n = 0;
  ws.on('message', (data) => {
    const ev = JSON.parse(data.toString());
    if (ev.type === 'message' && ev.cid && waiting.has(ev.cid)) {
      waiting.get(ev.cid)(ev);
      waiting.delete(ev.cid);
    }
  });
  await within(new Promise((resolve, reject) => {
    ws.on('message', function first(data) {
      if (JSON.parse(data.toString()).type === 'history') { ws.off('message', first); resolve(); }
    });
    ws.on('error', reject);
  }), `raw sender joining ${room}`);
  return {
    send(text, r = room) {
      const cid = `raw${(n += 1)}`;
      const p = new Promise((resolve) => waiting.set(cid, resolve));
      ws.send(JSON.stringify({ type: 'message', room: r, text, cid }));
      return within(p, `the raw sender's "${text}" acknowledged`);
    },
    join(r) {
      const joined = new Promise((resolve) => {
        ws.on('message', function fn(data) {
          const ev = JSON.parse(data.toString());
          if (ev.type === 'history' && ev.room === r) { ws.off('message', fn); resolve(); }
        });
      });
      ws.send(JSON.stringify({ type: 'join', room: r }));
      return within(joined, `the raw sender joining ${r}`);
    },
    /** Every event it receives, for a test that watches a room. */
    onEvent(fn) { ws.on('message', (data) => fn(JSON.parse(data.toString()))); },
    close() { ws.close(); },
  };
}
