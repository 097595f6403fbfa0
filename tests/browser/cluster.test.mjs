// The chat page in Chromium against a cluster: three ringcast nodes on one real
// redis-server, HAProxy in front running docs/cluster/haproxy.cfg unchanged.
//
//   node tests/browser/cluster.test.mjs /path/to/ringcast /path/to/static
//
// The page and a second client (a Node WebSocket, `ws`) both come in through HAProxy,
// on different nodes. The page's node is killed with SIGKILL while the other client
// keeps posting: the page must reconnect through HAProxy to another node and resume
// (`?since=`), so that the messages it shows, and the message events it received over
// all its sockets, are ids 1..N with no gap and no duplicate. Exits 77 (meson: skipped)
// when redis-server or haproxy is not installed; prints `N passed, M failed`.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { Fatal, SHOTS, STEP_TIMEOUT_MS, check, launchChromium, main, makeTmpDir, running, spawnProcess,
  startRingcast, stopProcess, waitFor } from './harness.mjs';

const WHOLE_TEST_TIMEOUT_MS = 150_000;
const REDIS_SERVER = process.env.RINGCAST_REDIS_SERVER || '/usr/bin/redis-server';
const HAPROXY = process.env.RINGCAST_HAPROXY || '/usr/sbin/haproxy';
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const HAPROXY_CFG = path.join(REPO, 'docs', 'cluster', 'haproxy.cfg');
const PER_PHASE = 10; // messages posted before, during and after the kill

let tmpDir = null;

/* ------------------------------------------------------------------ */
/* processes                                                           */
/* ------------------------------------------------------------------ */

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// Five seconds to exit on a signal, as the check on the survivors allows.
function stop(p, signal = 'SIGTERM') {
  return stopProcess(p, signal, 5000);
}

// One RESP command on a fresh connection; resolves the first reply line.
function redisLine(port, ...args) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('redis did not answer')); }, 1000);
    let buf = '';
    sock.on('connect', () => {
      sock.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
    });
    sock.on('data', (d) => {
      buf += d.toString();
      const i = buf.indexOf('\r\n');
      if (i >= 0) { clearTimeout(timer); sock.end(); resolve(buf.slice(0, i)); }
    });
    sock.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

async function startRedis() {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(tmpDir, 'redis-'));
  const p = spawnProcess('redis', REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir,
    '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', '', '--daemonize', 'no', '--logfile', '']);
  await waitFor('redis-server answering PING', async () => {
    if (p.exited) throw new Fatal(`redis-server exited: ${p.log}`);
    return (await redisLine(port, 'PING')) === '+PONG';
  });
  p.url = `redis://127.0.0.1:${port}`;
  return p;
}

async function startNode(bin, staticDir, redisUrl) {
  const p = await startRingcast(bin, ['--port', '0', '--static', staticDir, '--redis', redisUrl, '--threads', '1',
    '--rate-limit', '0'], { label: 'node', cwd: fs.mkdtempSync(path.join(tmpDir, 'node-')) });
  p.base = `http://${p.host}:${p.port}`;
  return p;
}

async function httpStatus(base, pathName) {
  const r = await fetch(base + pathName, { signal: AbortSignal.timeout(2000) });
  await r.arrayBuffer();
  return r.status;
}

async function metrics(node) {
  const r = await fetch(`${node.base}/metrics`, { signal: AbortSignal.timeout(2000) });
  const out = {};
  for (const line of (await r.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out[line.slice(0, i)] = Number(line.slice(i + 1));
  }
  return out;
}

async function wsOpened(nodes) {
  return Promise.all(nodes.map(async (n) => (n.exited ? null : (await metrics(n)).ringcast_websockets_opened_total)));
}

// Which node counted the one WebSocket `open()` opens (nothing else may open one meanwhile).
async function nodeOf(nodes, open) {
  const before = await wsOpened(nodes);
  const result = await open();
  const idx = await waitFor('exactly one node counting the new WebSocket', async () => {
    const now = await wsOpened(nodes);
    const grew = now.map((v, i) => (v !== null && v > before[i] ? i : -1)).filter((i) => i >= 0);
    return grew.length === 1 ? [grew[0]] : null;
  });
  return [idx[0], result];
}

async function startHaproxy(nodes) {
  const lbPort = await freePort();
  const statsPort = await freePort();
  const env = { ...process.env, RINGCAST_LB: `127.0.0.1:${lbPort}`, RINGCAST_STATS: `127.0.0.1:${statsPort}` };
  nodes.forEach((n, i) => { env[`RINGCAST_NODE${i + 1}`] = `${n.host}:${n.port}`; });
  const p = spawnProcess('haproxy', HAPROXY, ['-f', HAPROXY_CFG, '-db'], { env });
  p.port = lbPort;
  p.base = `http://127.0.0.1:${lbPort}`;
  p.stats = async () => {
    const r = await fetch(`http://127.0.0.1:${statsPort}/stats;csv`, { signal: AbortSignal.timeout(2000) });
    const rows = (await r.text()).trim().split('\n');
    const head = rows[0].replace(/^# /, '').split(',');
    const [px, sv, st] = ['pxname', 'svname', 'status'].map((k) => head.indexOf(k));
    const out = {};
    for (const row of rows.slice(1)) {
      const f = row.split(',');
      if (f[px] === 'ringcast' && f[sv] !== 'BACKEND') out[f[sv]] = f[st];
    }
    return out;
  };
  await waitFor('haproxy reporting n1, n2, n3 UP', async () => {
    if (p.exited) throw new Fatal(`haproxy exited (${p.exitCode}):\n${p.log}`);
    const s = await p.stats();
    return s.n1 === 'UP' && s.n2 === 'UP' && s.n3 === 'UP';
  });
  return p;
}

/* ------------------------------------------------------------------ */
/* the other client                                                    */
/* ------------------------------------------------------------------ */

// A plain WebSocket client (not a browser) that posts and waits for its own copy.
async function openPoster(WebSocket, url) {
  const ws = new WebSocket(url);
  const waiting = new Map(); // text -> { resolve, reject }
  const events = [];
  ws.on('message', (data) => {
    const ev = JSON.parse(data.toString());
    events.push(ev);
    if (ev.type === 'message' && waiting.has(ev.text)) {
      waiting.get(ev.text).resolve(ev);
      waiting.delete(ev.text);
    } else if (ev.type === 'error') {
      for (const w of waiting.values()) w.reject(new Error(`poster got ${JSON.stringify(ev)}`));
      waiting.clear();
    }
  });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  await waitFor('the poster\'s history event', () => events.some((e) => e.type === 'history'));
  return {
    ws,
    events,
    post(text) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no acknowledgement of ${JSON.stringify(text)}`)), STEP_TIMEOUT_MS);
        waiting.set(text, { resolve: (ev) => { clearTimeout(timer); resolve(ev); },
                            reject: (e) => { clearTimeout(timer); reject(e); } });
        ws.send(JSON.stringify({ type: 'message', text }));
      });
    },
    close() { ws.terminate(); },
  };
}

/* ------------------------------------------------------------------ */
/* the test                                                            */
/* ------------------------------------------------------------------ */

async function domMessages(page) {
  return page.$$eval('#messages .msg', (els) => els.map((e) => ({
    id: Number(e.dataset.id), text: e.querySelector('.text')?.textContent ?? null })));
}

async function waitText(page, text) {
  try {
    await page.waitForFunction((t) => [...document.querySelectorAll('#messages .msg .text')].some((e) => e.textContent === t),
      text, { timeout: STEP_TIMEOUT_MS });
  } catch {
    const shown = (await domMessages(page).catch(() => [])).slice(-5);
    throw new Error(`${JSON.stringify(text)} not shown within ${STEP_TIMEOUT_MS} ms; last shown ${JSON.stringify(shown)}`);
  }
}

async function waitLive(page, room, timeout = STEP_TIMEOUT_MS) {
  try {
    await page.waitForFunction((r) => document.querySelector('#room')?.textContent === `#${r}`
      && document.querySelector('#status')?.dataset.state === 'online'
      && !document.querySelector('#send').disabled, room, { timeout });
  } catch {
    const status = await page.locator('#status').textContent().catch(() => '?');
    throw new Error(`#${room} not live within ${timeout} ms (status "${status?.trim()}")`);
  }
}

async function runTest(bin, staticDir, WebSocket) {
  const redis = await startRedis();
  const nodes = [];
  for (let i = 0; i < 3; i += 1) nodes.push(await startNode(bin, staticDir, redis.url));
  for (const n of nodes) {
    await waitFor(`GET /readyz 200 on ${n.base}`, async () => (await httpStatus(n.base, '/readyz')) === 200);
  }
  const lb = await startHaproxy(nodes);
  console.log(`# redis ${redis.url}; nodes ${nodes.map((n) => n.port).join(', ')}; haproxy ${lb.base}`);

  const browser = await launchChromium();
  const room = `failover-${Date.now()}`;
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  const sockets = []; // every WebSocket the page opened: { url, events }
  page.on('websocket', (ws) => {
    const s = { url: ws.url(), events: [] };
    sockets.push(s);
    ws.on('framereceived', (f) => {
      try { s.events.push(JSON.parse(f.payload)); } catch { /* not JSON: not ours */ }
    });
  });

  let pageNode = null;
  let poster = null;
  const acks = [];

  await check('the page opens through HAProxy and a second client joins on another node', async () => {
    [pageNode] = await nodeOf(nodes, async () => {
      const r = await page.goto(`${lb.base}/?room=${room}`, { waitUntil: 'load' });
      assert.equal(r.status(), 200);
      await waitLive(page, room);
    });
    for (let i = 0; i < 6 && !poster; i += 1) {
      const [n, p] = await nodeOf(nodes, () => openPoster(WebSocket, `ws://127.0.0.1:${lb.port}/ws?room=${room}`));
      if (n !== pageNode) poster = p;
      else p.close();
    }
    assert.ok(poster, 'HAProxy kept putting the second client on the page\'s node');
    console.log(`# the page is on node ${pageNode + 1}`);
  });

  await check(`kill -9 of the page's node: it reconnects through HAProxy and shows ids 1..${3 * PER_PHASE} once each`, async () => {
    assert.ok(poster, 'no second client');
    for (let i = 0; i < PER_PHASE; i += 1) acks.push(await poster.post(`before ${i}`));
    await waitText(page, `before ${PER_PHASE - 1}`);
    const lastSeen = Math.max(...(await domMessages(page)).map((m) => m.id));
    assert.equal(lastSeen, PER_PHASE);

    const opened = await wsOpened(nodes);
    await stop(nodes[pageNode], 'SIGKILL');
    // posted while the page is without a connection (its first retry waits >= 350 ms)
    for (let i = 0; i < PER_PHASE; i += 1) acks.push(await poster.post(`during ${i}`));
    await waitFor('the page opening a second WebSocket', () => sockets.length >= 2, 15_000);
    await waitLive(page, room, 15_000);
    for (let i = 0; i < PER_PHASE; i += 1) acks.push(await poster.post(`after ${i}`));
    await waitText(page, `after ${PER_PHASE - 1}`);
    await sleep(500); // a duplicate would have arrived by now

    const total = 3 * PER_PHASE;
    assert.deepEqual(acks.map((m) => m.id), Array.from({ length: total }, (_, i) => i + 1), 'the poster\'s ids');
    const shown = await domMessages(page);
    assert.deepEqual(shown.map((m) => m.id), acks.map((m) => m.id), 'the ids shown (data-id), in order');
    assert.deepEqual(shown.map((m) => m.text), acks.map((m) => m.text), 'the texts shown');
    // what came over the wire: each id exactly once over all the page's sockets
    const received = sockets.flatMap((s) => s.events.flatMap((e) => {
      if (e.type === 'message' && e.room === room) return [e.id];
      if (e.type === 'history' && e.room === room) return e.messages.map((m) => m.id);
      return [];
    }));
    assert.deepEqual(received, acks.map((m) => m.id), 'message ids received over the page\'s sockets, in order');
    assert.match(sockets[1].url, new RegExp(`[?&]since=${lastSeen}(&|$)`), `the reconnect should resume from ${lastSeen}: ${sockets[1].url}`);
    assert.ok(sockets[1].events.some((e) => e.type === 'resumed' && e.room === room && e.since === lastSeen
      && e.complete === true), 'no resumed event (complete) on the new socket');
    // it came back on a live node
    const now = await wsOpened(nodes);
    const elsewhere = now.map((v, i) => (i === pageNode || v === null ? 0 : v - opened[i])).reduce((a, b) => a + b, 0);
    assert.ok(elsewhere >= 1, `no live node counted the page's new WebSocket: ${JSON.stringify({ opened, now })}`);
    fs.mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SHOTS, 'cluster-after-failover.png') });
  });

  await check('HAProxy has taken the killed node out; the survivors exit 0 on SIGTERM', async () => {
    const s = await lb.stats();
    assert.equal(s[`n${pageNode + 1}`], 'DOWN', `haproxy stats ${JSON.stringify(s)}`);
    assert.deepEqual(pageErrors, [], 'page errors');
    poster?.close();
    await context.close();
    for (const [i, n] of nodes.entries()) {
      if (i === pageNode) continue;
      assert.ok(await stop(n), `node ${i + 1} did not exit within 5 s of SIGTERM`);
      assert.equal(n.exitCode, 0, `node ${i + 1} exit ${n.exitCode} (${n.exitSignal}):\n${n.log}`);
    }
  });
}

// A failure in the cluster is usually explained by one of the five processes' logs.
function printLogs() {
  for (const p of running()) console.log(`# ---- ${p.label} ----\n${p.log.slice(-3000)}`);
}

if (![REDIS_SERVER, HAPROXY].every((f) => fs.existsSync(f))) {
  console.log(`# skipped: needs ${REDIS_SERVER} and ${HAPROXY}`);
  process.exitCode = 77;
} else {
  await main(WHOLE_TEST_TIMEOUT_MS, async (bin, staticDir) => {
    tmpDir = makeTmpDir('ringcast-cluster-browser-');
    let WebSocket;
    try {
      ({ WebSocket } = await import('ws'));
    } catch (err) {
      throw new Error(`ws is not installed (${err.code || err.message}). Run: npm ci --prefix tests/browser`);
    }
    await runTest(bin, staticDir, WebSocket);
  }, { onFatal: printLogs });
}
