// The page over a WebSocket compressed with permessage-deflate: Chromium offers it, the
// server accepts it (the 101's Sec-WebSocket-Extensions, read through the DevTools
// protocol), and long, very compressible messages go both ways intact.

import assert from 'node:assert/strict';
import {
  STEP_TIMEOUT_MS, check, launchChromium, main, startRingcast, stopProcess, threadArgs, waitFor,
} from './harness.mjs';

const WHOLE_TEST_TIMEOUT_MS = 90_000;

async function waitOnline(page, label) {
  await waitFor(`${label} online`, () => page.evaluate(() => document.querySelector('#status')?.dataset.state === 'online'
    && !document.querySelector('#send').disabled));
}

async function typeAndEnter(page, text) {
  await page.locator('#input').fill(text);
  await page.locator('#input').press('Enter');
}

async function waitShown(page, label, text) {
  try {
    await page.waitForFunction((t) => [...document.querySelectorAll('#messages .msg .text')]
      .some((e) => e.textContent === t), text, { timeout: STEP_TIMEOUT_MS });
  } catch {
    throw new Error(`${label} did not show the ${text.length}-character message`);
  }
}

// A page whose WebSocket handshakes (their 101 responses) are recorded.
async function openPage(browser, url) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  const handshakes = [];
  cdp.on('Network.webSocketHandshakeResponseReceived', (e) => handshakes.push(e.response));
  const problems = [];
  page.on('pageerror', (e) => problems.push(e.message));
  await page.goto(url, { waitUntil: 'load' });
  return { context, page, handshakes, problems };
}

function extensionsOf(response) {
  const h = Object.fromEntries(Object.entries(response.headers).map(([k, v]) => [k.toLowerCase(), v]));
  return h['sec-websocket-extensions'] || '';
}

async function run(bin, staticDir) {
  const srv = await startRingcast(bin, ['--port', '0', '--static', staticDir, '--no-persist', ...threadArgs()]);
  const browser = await launchChromium();

  await check('Chromium and the server agree on permessage-deflate; long messages go both ways intact', async () => {
    const C = await openPage(browser, `${srv.url}?room=deflate`);
    const D = await openPage(browser, `${srv.url}?room=deflate`);
    await waitOnline(C.page, 'C');
    await waitOnline(D.page, 'D');
    for (const [label, u] of [['C', C], ['D', D]]) {
      assert.equal(u.handshakes.length, 1, `${label}: ${u.handshakes.length} WebSocket handshakes`);
      assert.equal(u.handshakes[0].status, 101);
      assert.match(extensionsOf(u.handshakes[0]), /permessage-deflate/,
        `${label}: negotiated ${JSON.stringify(extensionsOf(u.handshakes[0]))}`);
    }
    const long = `${'compress me '.repeat(400)}${Date.now()}`;
    await typeAndEnter(C.page, long);
    await waitShown(C.page, 'C', long);
    await waitShown(D.page, 'D', long);
    const back = `${'and back ünïcödé '.repeat(300)}${Date.now()}`;
    await typeAndEnter(D.page, back);
    await waitShown(C.page, 'C', back);
    assert.deepEqual([...C.problems, ...D.problems], []);
    await C.context.close();
    await D.context.close();
  });

  await stopProcess(srv);
}

await main(WHOLE_TEST_TIMEOUT_MS, run);
