// The page's fallback in Chromium: with WebSocket upgrades refused by a proxy in front of
// the server (403, as some corporate proxies do) the page falls back to Server-Sent Events
// and chats both ways (with a page on WebSocket straight to the server), and resumes over
// SSE after the server restarts. (Compressed WebSocket: deflate.test.mjs.)

import assert from 'node:assert/strict';
import path from 'node:path';
import { startProxy } from '../client/proxy.mjs';
import {
  STEP_TIMEOUT_MS, check, launchChromium, main, makeTmpDir, startRingcast, stopProcess, threadArgs, waitExit, waitFor,
} from './harness.mjs';

const WHOLE_TEST_TIMEOUT_MS = 150_000;

let browser;

async function openUser(url, label) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`${label}: ${e.message}`));
  await page.goto(url, { waitUntil: 'load' });
  return { context, page, label, problems };
}

async function waitOnline(u, transport, timeout = 20_000) {
  const now = () => u.page.evaluate(async () => {
    const { state } = await import('/app.js');
    return { status: document.querySelector('#status')?.dataset.state, send: !document.querySelector('#send').disabled,
      text: document.querySelector('#status')?.textContent.trim(), transport: state.client.transport };
  });
  let last = null;
  await waitFor(`${u.label} online over ${transport}`, async () => {
    last = await now();
    return last.status === 'online' && last.send && last.transport === transport;
  }, timeout, 100).catch((err) => { throw new Error(`${err.message}; it shows ${JSON.stringify(last)}`); });
}

async function typeAndEnter(page, text) {
  await page.locator('#input').fill(text);
  await page.locator('#input').press('Enter');
}

async function shownTexts(page) {
  return page.$$eval('#messages .msg .text', (els) => els.map((e) => e.textContent));
}

async function waitShown(u, text, timeout = STEP_TIMEOUT_MS) {
  try {
    await u.page.waitForFunction((t) => [...document.querySelectorAll('#messages .msg .text')]
      .some((e) => e.textContent === t), text, { timeout });
  } catch {
    throw new Error(`${u.label} did not show ${JSON.stringify(text)}; last shown: ${JSON.stringify((await shownTexts(u.page)).slice(-5))}`);
  }
}

async function whoSaid(page, text) {
  return page.$$eval('#messages .msg', (els, t) => els.filter((e) => e.querySelector('.text').textContent === t)
    .map((e) => e.querySelector('.who').textContent), text);
}

async function run(bin, staticDir) {
  const tmp = makeTmpDir('ringcast-transport-');
  const db = path.join(tmp, 'chat.db');
  const args = (port) => ['--port', String(port), '--static', staticDir, '--db', db, ...threadArgs()];
  let srv = await startRingcast(bin, args(0));
  const port = srv.port;
  const proxy = await startProxy(port);
  proxy.blockUpgrades = true;
  browser = await launchChromium();
  let A = null; // through the proxy: SSE
  let B = null; // straight to the server: WebSocket

  await check('WebSocket refused by a proxy: the page falls back to SSE and chats both ways', async () => {
    A = await openUser(`${proxy.url}?room=lobby`, 'A');
    B = await openUser(`${srv.url}?room=lobby`, 'B');
    await waitOnline(B, 'websocket');
    await waitOnline(A, 'sse');
    assert.ok(proxy.refused >= 3, `the proxy refused ${proxy.refused} upgrades`);
    const fromA = `over SSE ${Date.now()}`;
    await typeAndEnter(A.page, fromA);
    await waitShown(A, fromA);
    await waitShown(B, fromA);
    assert.deepEqual(await whoSaid(A.page, fromA), ['You']);
    assert.match((await whoSaid(B.page, fromA))[0], /^User \d+$/);
    const fromB = `to SSE ${Date.now()}`;
    await typeAndEnter(B.page, fromB);
    await waitShown(A, fromB);
    assert.match((await whoSaid(A.page, fromB))[0], /^User \d+$/);
    // Another room, joined over SSE.
    await A.page.locator('#join-input').fill('dev');
    await A.page.locator('#join-input').press('Enter');
    await waitOnline(A, 'sse');
    const inDev = `dev over SSE ${Date.now()}`;
    await typeAndEnter(A.page, inDev);
    await waitShown(A, inDev);
    assert.deepEqual(A.problems, []);
  });

  await check('over SSE, the server restarts: the page resumes, showing what it missed once', async () => {
    assert.ok(A && B, 'pages did not open');
    await A.page.locator('#room-list .room-item[data-room="lobby"]').click();
    await waitOnline(A, 'sse');
    srv.child.kill('SIGKILL');
    await waitExit(srv, 5000);
    await A.page.waitForFunction(() => document.querySelector('#status')?.dataset.state === 'reconnecting',
      null, { timeout: STEP_TIMEOUT_MS });
    srv = null;
    for (let i = 0; i < 40 && !srv; i += 1) {
      try {
        srv = await startRingcast(bin, args(port));
      } catch {
        await new Promise((r) => setTimeout(r, 100)); // the port is being freed
      }
    }
    assert.ok(srv, `could not restart the server on port ${port}`);
    await waitOnline(B, 'websocket', 30_000);
    const missed = `while A was away ${Date.now()}`;
    await typeAndEnter(B.page, missed);
    await waitShown(B, missed);
    await waitOnline(A, 'sse', 40_000);
    await waitShown(A, missed);
    const after = `A is back ${Date.now()}`;
    await typeAndEnter(A.page, after);
    await waitShown(B, after);
    await waitShown(A, after);
    const shown = await shownTexts(A.page);
    const counts = {};
    for (const t of shown) counts[t] = (counts[t] || 0) + 1;
    const doubled = Object.entries(counts).filter(([, n]) => n > 1);
    assert.deepEqual(doubled, [], 'messages shown twice on A after the resume');
    assert.ok(shown.indexOf(missed) < shown.indexOf(after), 'the missed message is not before the new one');
  });

  for (const u of [A, B]) if (u) await u.context.close();
  await proxy.close();
  await stopProcess(srv);
}

await main(WHOLE_TEST_TIMEOUT_MS, run);
