// Real-browser end-to-end test of the ringcast chat page.
//
//   node tests/browser/chat.test.mjs /path/to/ringcast /path/to/static
//
// Starts the real server (`--port 0 --static DIR --db <tmp>/chat.db`, plus `--threads N` when
// RINGCAST_THREADS is set, in a fresh temporary
// directory removed at the end, so the repository's data/ is never touched), drives Debian's
// Chromium through playwright-core, and prints `N passed, M failed` at the end (exit 1 if
// any failed). Screenshots go to /tmp/browser-shots/ (override with BROWSER_SHOTS_DIR).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { SHOTS, STEP_TIMEOUT_MS, check, fatal, launchChromium, main, makeTmpDir, startRingcast,
  stopProcess, threadArgs, waitExit, waitFor } from './harness.mjs';

const WHOLE_TEST_TIMEOUT_MS = 300_000;
const CSP = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; " +
  "script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

let browser = null;
let tmpDir = null; // every server's --db lives here

/* ------------------------------------------------------------------ */
/* server process                                                      */
/* ------------------------------------------------------------------ */

// Every start passes --db (default: the shared <tmp>/chat.db, so a restart keeps history).
// `extra` adds flags such as --rate-limit 0 for the one check that sends a burst.
function startServer(bin, staticDir, { port = 0, db = path.join(tmpDir, 'chat.db'), extra = [] } = {}) {
  // --rejoin-grace 2: a closed tab is "left" within a step's timeout (identity.test.mjs tests the grace)
  return startRingcast(bin, ['--port', String(port), '--static', staticDir, '--db', db, '--rejoin-grace', '2',
    ...threadArgs(), ...extra]);
}

/* ------------------------------------------------------------------ */
/* pages                                                               */
/* ------------------------------------------------------------------ */

function watchPage(page, label) {
  const w = { label, console: [], errors: [], dialogs: [], quiet: false };
  page.on('console', (m) => {
    if (w.quiet) return;
    if (m.type() === 'error' || m.type() === 'warning') w.console.push(`[${label}] console.${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => { if (!w.quiet) w.errors.push(`[${label}] page error: ${e.message}`); });
  page.on('dialog', async (d) => {
    w.dialogs.push(`[${label}] ${d.type()} dialog: ${d.message()}`);
    await d.dismiss().catch(() => {});
  });
  return w;
}

function problems(...watchers) {
  return watchers.flatMap((w) => [...w.console, ...w.errors]);
}

// The page must work under the production CSP. When the server sends its own CSP header
// the pages load untouched; when it does not, the test adds the production CSP to every
// document so an inline script/style or eval shows up as a console error. A fulfilled
// (intercepted) document counts as "public" for Chromium's Local Network Access checks,
// which would then block its WebSocket to 127.0.0.1, so such contexts get that permission.
let serverCsp = null;

async function enforceCsp(context) {
  await context.route('**/*', async (route) => {
    const req = route.request();
    if (req.resourceType() !== 'document') return route.continue();
    const resp = await route.fetch();
    await route.fulfill({ response: resp, headers: { ...resp.headers(), 'content-security-policy': CSP } });
  });
}

async function openUser(url, opts = {}) {
  const { viewport = { width: 1280, height: 800 }, colorScheme = 'light', label, deviceScaleFactor = 1,
          ignoreHTTPSErrors = false } = opts;
  const context = await browser.newContext({
    viewport, colorScheme, deviceScaleFactor, ignoreHTTPSErrors,
    permissions: [...(serverCsp ? [] : ['local-network-access']), 'clipboard-read', 'clipboard-write'],
  });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  if (!serverCsp) await enforceCsp(context);
  const page = await context.newPage();
  const watch = watchPage(page, label);
  const sockets = []; // URLs of every WebSocket the page opened, in order
  page.on('websocket', (ws) => sockets.push(ws.url()));
  const response = await page.goto(url, { waitUntil: 'load' });
  return { context, page, watch, response, label, sockets };
}

const sel = {
  status: '#status',
  input: '#input',
  send: '#send',
  log: '#messages',
};

async function statusState(page) {
  return page.locator(sel.status).getAttribute('data-state');
}

async function waitStatus(page, state, timeout = STEP_TIMEOUT_MS) {
  try {
    await page.waitForFunction(
      (s) => document.querySelector('#status')?.dataset.state === s, state, { timeout });
  } catch {
    const now = await page.locator(sel.status).textContent().catch(() => '?');
    throw new Error(`status did not become "${state}" within ${timeout} ms (it shows "${now?.trim()}", state ${await statusState(page).catch(() => '?')})`);
  }
}

async function waitCount(page, n) {
  try {
    await page.waitForFunction((k) => {
      const s = document.querySelector('#status');
      return s?.dataset.state === 'online' && new RegExp(`\\b${k} (person|people)\\b`).test(s.textContent);
    }, n, { timeout: STEP_TIMEOUT_MS });
  } catch {
    const now = await page.locator(sel.status).textContent().catch(() => '?');
    throw new Error(`online count did not become ${n} (status shows "${now?.trim()}")`);
  }
}

// The rendered message (article.msg) whose text is exactly `text`.
async function findMessage(page, text, timeout = STEP_TIMEOUT_MS) {
  try {
    const handle = await page.waitForFunction((t) => {
      const items = [...document.querySelectorAll('#messages .msg')];
      return items.reverse().find((el) => el.querySelector('.text')?.textContent === t) || null;
    }, text, { timeout });
    return handle.asElement();
  } catch {
    const shown = await page.$$eval('#messages .msg .text', (els) => els.slice(-5).map((e) => e.textContent)).catch(() => []);
    throw new Error(`message ${JSON.stringify(text)} did not appear within ${timeout} ms; last shown: ${JSON.stringify(shown)}`);
  }
}

async function describeMessage(el) {
  return el.evaluate((e) => ({
    who: e.querySelector('.who')?.textContent ?? null,
    time: e.querySelector('time')?.textContent ?? null,
    own: e.classList.contains('own'),
    text: e.querySelector('.text')?.textContent ?? null,
    whiteSpace: getComputedStyle(e.querySelector('.text')).whiteSpace,
  }));
}

async function waitSystemLine(page, re, what) {
  try {
    await page.waitForFunction((src) => {
      const r = new RegExp(src);
      return [...document.querySelectorAll('#messages .sys')].some((e) => r.test(e.textContent));
    }, re.source, { timeout: STEP_TIMEOUT_MS });
  } catch {
    const lines = await page.$$eval('#messages .sys', (els) => els.map((e) => e.textContent)).catch(() => []);
    throw new Error(`no system line for ${what} matching ${re}; system lines: ${JSON.stringify(lines)}`);
  }
}

async function typeAndEnter(page, text) {
  await page.locator(sel.input).fill(text);
  await page.locator(sel.input).press('Enter');
}

async function shot(page, name) {
  const file = path.join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  return file;
}

// Texts of the messages shown (the current room's list), oldest first.
async function shownTexts(page) {
  return page.$$eval('#messages .msg .text', (els) => els.map((e) => e.textContent));
}

async function systemLines(page) {
  return page.$$eval('#messages .sys', (els) => els.map((e) => e.textContent));
}

// The sidebar: [{ room, current, badge }] in order.
async function roomItems(page) {
  return page.$$eval('#room-list .room-item', (els) => els.map((e) => ({
    room: e.dataset.room,
    current: e.getAttribute('aria-current') === 'true',
    badge: e.querySelector('.badge')?.textContent ?? null,
  })));
}

async function currentRoomTitle(page) {
  return (await page.locator('#room').textContent())?.trim();
}

// Wait until `room` is the room shown and it is live (history received, Send enabled).
async function waitRoom(page, room, timeout = STEP_TIMEOUT_MS) {
  try {
    await page.waitForFunction((r) => document.querySelector('#room')?.textContent === `#${r}`
      && document.querySelector('#status')?.dataset.state === 'online'
      && !document.querySelector('#send').disabled, room, { timeout });
  } catch {
    throw new Error(`room #${room} did not become the live current room within ${timeout} ms (title ${JSON.stringify(await currentRoomTitle(page).catch(() => '?'))}, status ${await statusState(page).catch(() => '?')})`);
  }
}

async function switchRoom(page, room) {
  await page.locator(`#room-list .room-item[data-room="${room}"]`).click();
  await waitRoom(page, room);
}

async function joinViaUi(page, room) {
  await page.locator('#join-input').fill(room);
  await page.locator('#join-input').press('Enter');
  await waitRoom(page, room);
}

// Send through the page's own connection (the module the page loaded), bypassing the UI
// and the client library's acknowledgements.
async function sendRaw(page, frames) {
  await page.evaluate(async (list) => {
    const { state } = await import('/app.js');
    for (const f of list) state.client.command(f);
  }, frames);
}

async function renameViaUi(page, name) {
  await page.locator('#me').click();
  await page.locator('#name-dialog').waitFor({ state: 'visible' });
  await page.locator('#name-input').fill(name);
  await page.locator('#name-input').press('Enter');
}

async function meName(page) {
  return (await page.locator('#me-name').textContent())?.trim();
}

// An HS256 token as an application would issue it (docs/protocol.md, Sign-in).
function jwt(secret, claims) {
  const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');
  const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${head}.${crypto.createHmac('sha256', secret).update(head).digest('base64url')}`;
}

// Index of each text in `texts` within `shown`, or -1.
function positions(shown, texts) {
  return texts.map((t) => shown.indexOf(t));
}

/* ------------------------------------------------------------------ */
/* the test                                                            */
/* ------------------------------------------------------------------ */

async function run(bin, staticDir) {
  if (!fs.existsSync(bin)) {
    fatal(`server binary not found: ${bin}`);
    return;
  }
  if (!fs.existsSync(path.join(staticDir, 'index.html'))) {
    fatal(`no index.html in ${staticDir}`);
    return;
  }
  fs.mkdirSync(SHOTS, { recursive: true });
  tmpDir = makeTmpDir('ringcast-browser-');
  console.log(`# databases in ${tmpDir} (removed at the end)`);

  let srv;
  try {
    srv = await startServer(bin, staticDir);
  } catch (err) {
    fatal(`could not start the server: ${err.message}`);
    return;
  }
  console.log(`# server ${bin} listening at ${srv.url}`);
  const url = srv.url;
  try {
    const probe = await fetch(url);
    serverCsp = probe.headers.get('content-security-policy');
    await probe.arrayBuffer();
  } catch (err) {
    console.log(`# GET ${url} failed: ${err.message}`);
  }
  console.log(serverCsp
    ? `# server sends Content-Security-Policy: ${serverCsp}`
    : '# server sends no Content-Security-Policy: the test applies the production CSP itself');

  browser = await launchChromium();

  let A = null;
  let B = null;

  await check('page loads: title, status online with count 1, no console/page errors', async () => {
    A = await openUser(url, { label: 'A' });
    assert.equal(A.response?.status(), 200, `GET / answered ${A.response?.status()}`);
    assert.match(await A.page.title(), /ringcast/i, 'document title should mention ringcast');
    await waitStatus(A.page, 'online');
    await waitCount(A.page, 1);
    assert.equal(await A.page.locator(sel.send).isEnabled(), true, 'Send button should be enabled when online');
    const favicon = await A.page.$eval('link[rel~="icon"][href$=".svg"]', (l) => l.href).catch(() => null);
    assert.ok(favicon, 'the head should link favicon.svg');
    const icon = await A.context.request.get(favicon);
    assert.equal(icon.status(), 200, `GET ${favicon} answered ${icon.status()}`);
    const ico = await A.context.request.get(new URL('favicon.ico', url).href);
    assert.equal(ico.status(), 200, `GET /favicon.ico answered ${ico.status()}`);
    await sleep(300); // let late console messages arrive
    assert.deepEqual(problems(A.watch), [], 'console errors/warnings or page errors on load');
  });

  await check('second user joins: A sees "User N joined" and both show 2 people', async () => {
    assert.ok(A, 'first page did not open');
    B = await openUser(url, { label: 'B', colorScheme: 'dark' });
    await waitStatus(B.page, 'online');
    await waitCount(B.page, 2);
    await waitCount(A.page, 2);
    await waitSystemLine(A.page, /^User \S+ joined$/, 'the second user joining');
    await waitSystemLine(B.page, /^You joined/, 'B itself joining');
  });

  await check('A sends, B sees it as "User N"; A sees its own copy as "You"; B replies, A sees it', async () => {
    assert.ok(A && B, 'pages did not open');
    const hello = `hello from A ${Date.now()}`;
    await typeAndEnter(A.page, hello);
    const onB = await describeMessage(await findMessage(B.page, hello));
    assert.match(onB.who, /^User \S+$/, `B should label A's message "User N", got ${JSON.stringify(onB.who)}`);
    assert.equal(onB.own, false, 'A\'s message must not look like B\'s own on B');
    assert.match(onB.time, /^\d\d:\d\d$/, `time should be HH:MM, got ${JSON.stringify(onB.time)}`);
    const onA = await describeMessage(await findMessage(A.page, hello));
    assert.equal(onA.who, 'You', `A should label its own message "You", got ${JSON.stringify(onA.who)}`);
    assert.equal(onA.own, true, 'own message should carry the .own style');
    assert.equal(await A.page.locator(sel.input).inputValue(), '', 'input should be cleared after sending');

    const reply = `reply from B ${Date.now()}`;
    await B.page.locator(sel.input).fill(reply);
    await B.page.locator(sel.send).click();
    const replyOnA = await describeMessage(await findMessage(A.page, reply));
    assert.match(replyOnA.who, /^User \S+$/, `A should label B's reply "User N", got ${JSON.stringify(replyOnA.who)}`);
    assert.notEqual(replyOnA.who, onB.who, 'A and B should have different names');
    const replyOnB = await describeMessage(await findMessage(B.page, reply));
    assert.equal(replyOnB.who, 'You', 'B should label its own reply "You"');
    assert.equal(await B.page.evaluate(() => document.activeElement?.id), 'input', 'focus should stay in the input after clicking Send');
  });

  await check('XSS payload is shown as literal text; no dialog, no <img> in the message list', async () => {
    assert.ok(A && B, 'pages did not open');
    const payload = '<img src=x onerror=alert(1)>';
    await typeAndEnter(A.page, payload);
    const onB = await describeMessage(await findMessage(B.page, payload));
    assert.equal(onB.text, payload, 'B should show the payload verbatim');
    await findMessage(A.page, payload);
    const script = `<script>alert(2)</script><b>bold</b>`;
    await typeAndEnter(B.page, script);
    await findMessage(A.page, script);
    await sleep(500); // give any injected handler the chance to fire
    for (const u of [A, B]) {
      const imgs = await u.page.locator('#messages img').count();
      assert.equal(imgs, 0, `${u.label}: ${imgs} <img> element(s) created in the message list`);
      const tags = await u.page.locator('#messages script, #messages b').count();
      assert.equal(tags, 0, `${u.label}: markup from a message became elements`);
      assert.deepEqual(u.watch.dialogs, [], `${u.label}: a dialog fired`);
    }
  });

  await check('Unicode and a 40 KB message round-trip unchanged', async () => {
    assert.ok(A && B, 'pages did not open');
    const uni = `héllo 👋 你好 مرحبا \u{1F600} \u00e9\u0301 ${Date.now()}`;
    await typeAndEnter(A.page, uni);
    assert.equal((await describeMessage(await findMessage(B.page, uni))).text, uni);
    const big = `big ${Date.now()} ${'0123456789abcdef'.repeat(2500)}`;
    await A.page.locator(sel.input).fill(big);
    await A.page.locator(sel.send).click();
    const onB = await describeMessage(await findMessage(B.page, big));
    assert.equal(onB.text.length, big.length, 'the long message arrived truncated');
  });

  await check('permessage-deflate: Chromium negotiated it, and the 40 KB message went compressed both ways', async () => {
    // each edge publishes its counters every 100 ms tick: wait for them
    const want = { ws_deflate_connections_total: 2, ws_messages_inflated_total: 1, ws_deflate_sends_total: 2 };
    let got = {};
    await waitFor('deflate counters', async () => {
      const text = await (await fetch(new URL('/metrics', url))).text();
      for (const name of Object.keys(want)) {
        got[name] = Number((text.match(new RegExp(`^ringcast_${name} (\\S+)$`, 'm')) || [])[1] || 0);
      }
      return Object.keys(want).every((name) => got[name] >= want[name]);
    }).catch(() => {});
    assert.ok(got.ws_deflate_connections_total >= 2, 'the pages did not negotiate permessage-deflate');
    assert.ok(got.ws_messages_inflated_total >= 1, 'no compressed message came from the browser');
    assert.ok(got.ws_deflate_sends_total >= 2, 'no compressed frame went to the browsers');
  });

  await check('Enter sends, Shift+Enter makes a newline; whitespace-only text is not sent', async () => {
    assert.ok(A && B, 'pages did not open');
    const input = A.page.locator(sel.input);
    const first = `line one ${Date.now()}`;
    await input.fill('');
    await input.focus();
    await A.page.keyboard.type(first);
    await A.page.keyboard.press('Shift+Enter');
    await A.page.keyboard.type('line two');
    assert.equal(await input.inputValue(), `${first}\nline two`, 'Shift+Enter should insert a newline, not send');
    await A.page.keyboard.press('Enter');
    const text = `${first}\nline two`;
    const onB = await describeMessage(await findMessage(B.page, text));
    assert.equal(onB.text, text, 'the newline should survive the round trip');
    assert.equal(onB.whiteSpace, 'pre-wrap', `message text should use white-space: pre-wrap, got ${onB.whiteSpace}`);
    assert.equal(await input.inputValue(), '', 'input should be empty after Enter');
    assert.equal(await A.page.evaluate(() => document.activeElement?.id), 'input', 'focus should stay in the input');

    const before = await B.page.locator('#messages .msg').count();
    await input.fill('   \n  ');
    await input.press('Enter');
    await A.page.locator(sel.send).click();
    await sleep(600);
    const after = await B.page.locator('#messages .msg').count();
    assert.equal(after, before, 'whitespace-only text must not be sent');
  });

  await check('desktop screenshots (1280x800, light and dark)', async () => {
    assert.ok(A && B, 'pages did not open');
    // a long line and a long word, to see wrapping
    await typeAndEnter(B.page, 'A longer message to see how wrapping looks in a bubble when the text goes on for a while and then some more. '.repeat(2).trim());
    await typeAndEnter(A.page, `averyveryverylongwordwithoutanyspaces${'x'.repeat(120)}`);
    await findMessage(B.page, `averyveryverylongwordwithoutanyspaces${'x'.repeat(120)}`);
    await sleep(200);
    console.log(`#   ${await shot(A.page, 'desktop-light-A')}`);
    console.log(`#   ${await shot(B.page, 'desktop-dark-B')}`);
    for (const u of [A, B]) {
      const overflow = await u.page.evaluate(() => document.scrollingElement.scrollWidth);
      assert.ok(overflow <= 1280, `${u.label}: page is ${overflow}px wide at 1280px`);
    }
  });

  /* ---------------- names ---------------- */

  let aliceOld = null; // A's "User N" before the rename
  await check('rename: A sets "Alice"; B sees "User N is now Alice"; A\'s next message is "Alice" on B and "You" on A', async () => {
    assert.ok(A && B, 'pages did not open');
    aliceOld = await meName(A.page);
    assert.match(aliceOld, /^User \S+$/, `the name button should show "User N" before renaming, got ${JSON.stringify(aliceOld)}`);
    await renameViaUi(A.page, '  Alice  '); // trimmed like the server does
    await A.page.locator('#name-dialog').waitFor({ state: 'hidden' });
    assert.equal(await meName(A.page), 'Alice', 'the name button should show the new name');
    await waitSystemLine(B.page, new RegExp(`^${aliceOld} is now Alice$`), 'A\'s rename on B');
    await waitSystemLine(A.page, /^You are now Alice$/, 'A\'s own rename on A');
    const hi = `named hello ${Date.now()}`;
    await typeAndEnter(A.page, hi);
    const onB = await describeMessage(await findMessage(B.page, hi));
    assert.equal(onB.who, 'Alice', `B should label A's message "Alice", got ${JSON.stringify(onB.who)}`);
    assert.equal(onB.own, false);
    const onA = await describeMessage(await findMessage(A.page, hi));
    assert.equal(onA.who, 'You', `A should still label its own message "You", got ${JSON.stringify(onA.who)}`);
    assert.equal(await A.page.evaluate(() => localStorage.getItem('ringcast.name')), 'Alice', 'the name is remembered in localStorage');
    const lines = (await systemLines(B.page)).filter((t) => /is now Alice$/.test(t));
    assert.equal(lines.length, 1, `B should show the rename once, shows ${JSON.stringify(lines)}`);
  });

  await check('rename errors are shown: too long (client side) and invisible-only (server bad_name) keep the old name', async () => {
    assert.ok(A && B, 'pages did not open');
    await renameViaUi(A.page, 'x'.repeat(33));
    await A.page.locator('#name-error').waitFor({ state: 'visible' });
    assert.match(await A.page.locator('#name-error').textContent(), /at most 32/);
    await A.page.locator('#name-input').fill('\u200b\u200b');
    await A.page.locator('#name-input').press('Enter');
    await A.page.waitForFunction(() => /refused/.test(document.querySelector('#name-error')?.textContent || ''), null, { timeout: STEP_TIMEOUT_MS })
      .catch(async () => { throw new Error(`no server refusal shown; error line: ${JSON.stringify(await A.page.locator('#name-error').textContent())}`); });
    assert.equal(await A.page.locator('#name-dialog').isVisible(), true, 'the dialog should stay open on a refused name');
    console.log(`#   ${await shot(A.page, 'desktop-name-refused')}`);
    await A.page.locator('#name-cancel').click();
    await A.page.locator('#name-dialog').waitFor({ state: 'hidden' });
    assert.equal(await meName(A.page), 'Alice');
    assert.equal(await A.page.evaluate(() => localStorage.getItem('ringcast.name')), 'Alice', 'a refused name must not replace the saved one');
  });

  await check('rename survives a reload: A comes back as "Alice" (its guest token), B sees no leave, join or rename', async () => {
    assert.ok(A && B, 'pages did not open');
    const linesBefore = (await systemLines(B.page)).length;
    await A.page.reload({ waitUntil: 'load' });
    await waitStatus(A.page, 'online');
    await A.page.waitForFunction(() => document.querySelector('#me-name')?.textContent === 'Alice', null, { timeout: STEP_TIMEOUT_MS })
      .catch(async () => { throw new Error(`A's name after reload is ${JSON.stringify(await meName(A.page))}`); });
    const hi = `hello again from Alice ${Date.now()}`;
    await typeAndEnter(A.page, hi);
    assert.equal((await describeMessage(await findMessage(B.page, hi))).who, 'Alice');
    const noise = (await systemLines(B.page)).slice(linesBefore);
    assert.deepEqual(noise, [], `B saw A's reload: ${JSON.stringify(noise)}`);
    assert.equal((await describeMessage(await findMessage(A.page, hi))).who, 'You');
    assert.deepEqual(await systemLines(A.page).then((l) => l.filter((t) => /^You are now/.test(t))), [],
      'restoring the saved name should not announce "You are now …" again');
  });

  /* ---------------- rooms ---------------- */

  let devMsg = null;
  await check('switch rooms: A joins "dev" in the UI and sends there; B (lobby only) does not get it; B joins dev and sees it in dev\'s history', async () => {
    assert.ok(A && B, 'pages did not open');
    // client-side validation first
    await A.page.locator('#join-input').fill('bad room!');
    await A.page.locator('#join-input').press('Enter');
    await A.page.locator('#join-error').waitFor({ state: 'visible' });
    assert.deepEqual((await roomItems(A.page)).map((r) => r.room), ['lobby'], 'an invalid room must not be added');

    await joinViaUi(A.page, 'dev');
    assert.deepEqual((await roomItems(A.page)).map((r) => [r.room, r.current]), [['lobby', false], ['dev', true]]);
    assert.equal(new URL(A.page.url()).searchParams.get('room'), 'dev', 'the address bar should be the room\'s link');
    assert.equal(await A.page.locator(sel.input).getAttribute('placeholder'), 'Message #dev');
    assert.equal((await shownTexts(A.page)).length, 0, 'dev is a new room: no lobby messages in it');
    devMsg = `only in dev ${Date.now()}`;
    await typeAndEnter(A.page, devMsg);
    assert.equal((await describeMessage(await findMessage(A.page, devMsg))).who, 'You');

    // B gets nothing from dev
    const lobbyMsg = `lobby while A is in dev ${Date.now()}`;
    await typeAndEnter(B.page, lobbyMsg);
    await sleep(500);
    assert.equal((await shownTexts(B.page)).includes(devMsg), false, 'B, who is not in dev, shows the dev message');
    assert.equal(await B.page.evaluate(async (t) => {
      const { state } = await import('/app.js');
      return [...state.rooms.values()].some((r) => [...r.byId.values()].some((el) => el.querySelector('.text').textContent === t));
    }, devMsg), false, 'B holds the dev message in some room list');

    // A: unread badge on lobby, the message is not in dev's list; switching shows it
    await A.page.waitForFunction(() => document.querySelector('#room-list .room-item[data-room="lobby"] .badge')?.textContent === '1',
      null, { timeout: STEP_TIMEOUT_MS });
    assert.equal((await shownTexts(A.page)).includes(lobbyMsg), false, 'a lobby message shows in dev');
    console.log(`#   ${await shot(A.page, 'desktop-rooms-unread-A')}`);
    await switchRoom(A.page, 'lobby');
    await findMessage(A.page, lobbyMsg);
    assert.equal((await roomItems(A.page)).find((r) => r.room === 'lobby').badge, null, 'the badge should clear on opening the room');
    assert.equal((await shownTexts(A.page)).includes(devMsg), false, 'the dev message shows in the lobby');
    await switchRoom(A.page, 'dev');
    await findMessage(A.page, devMsg);

    // B joins dev and finds the message in the history
    await joinViaUi(B.page, 'dev');
    const onB = await describeMessage(await findMessage(B.page, devMsg));
    assert.equal(onB.who, 'Alice', `dev history on B should label A's message "Alice", got ${JSON.stringify(onB.who)}`);
    await waitCount(B.page, 2);
    await waitSystemLine(A.page, /^User \S+ joined$/, 'B joining dev');
    console.log(`#   ${await shot(B.page, 'desktop-dark-rooms-B')}`);
  });

  await check('shareable link: "Copy link" copies ?room=dev; opening it goes straight into dev with its history', async () => {
    assert.ok(A && devMsg, 'previous check did not run');
    await A.page.locator('#copy-link').click();
    await A.page.waitForFunction(() => document.querySelector('#copy-link').textContent === 'Copied!', null, { timeout: 3000 });
    const link = await A.page.evaluate(() => navigator.clipboard.readText());
    assert.equal(link, `${url}?room=dev`, 'the copied link');
    const D = await openUser(link, { label: 'D' });
    try {
      await waitRoom(D.page, 'dev');
      assert.match(D.sockets[0] || '', /\/ws\?room=dev$/, `the first WebSocket should open in dev: ${D.sockets[0]}`);
      await findMessage(D.page, devMsg);
      assert.deepEqual((await roomItems(D.page)).map((r) => r.room), ['dev'], 'a new visitor via the link is only in dev');
      await waitCount(D.page, 3);
      assert.deepEqual(problems(D.watch), []);
    } finally {
      D.watch.quiet = true;
      await D.context.close();
    }
  });

  await check('history after reload: 3 messages sent, page reloaded -> shown again from history, rooms remembered', async () => {
    assert.ok(A, 'first page did not open');
    const stamp = Date.now();
    const three = [1, 2, 3].map((i) => `history ${i} ${stamp}`);
    for (const t of three) {
      await typeAndEnter(A.page, t);
      await findMessage(A.page, t);
    }
    await A.page.reload({ waitUntil: 'load' });
    await waitRoom(A.page, 'dev');
    await findMessage(A.page, three[2]);
    const shown = await shownTexts(A.page);
    const at = positions(shown, three);
    assert.ok(at.every((i, k) => i >= 0 && (k === 0 || i > at[k - 1])), `the 3 messages should be shown in order: positions ${at}`);
    for (const t of three) assert.equal(shown.filter((x) => x === t).length, 1, `"${t}" shown more than once`);
    assert.ok(shown.includes(devMsg), 'older dev messages come back too');
    assert.deepEqual((await roomItems(A.page)).map((r) => [r.room, r.current]), [['lobby', false], ['dev', true]],
      'joined rooms and the current room are remembered');
    assert.match(A.sockets.at(-1), /\/ws\?room=dev(&guest=[\w.-]+)?$/, `after a reload (nothing known yet) no since: ${A.sockets.at(-1)}`);
    await switchRoom(A.page, 'lobby'); // lobby history is back as well
    await A.page.waitForFunction(() => document.querySelectorAll('#messages .msg').length >= 5, null, { timeout: STEP_TIMEOUT_MS });
  });

  await check('leave: the Leave button leaves the room; the other member sees "Alice left"; it is forgotten', async () => {
    assert.ok(A && B, 'pages did not open');
    await joinViaUi(A.page, 'scratch');
    await joinViaUi(B.page, 'scratch');
    await waitCount(A.page, 2);
    await A.page.locator('#leave').click();
    await waitRoom(A.page, 'dev'); // its neighbour in the list
    assert.deepEqual((await roomItems(A.page)).map((r) => r.room), ['lobby', 'dev']);
    assert.deepEqual(await A.page.evaluate(() => JSON.parse(localStorage.getItem('ringcast.rooms'))), ['lobby', 'dev']);
    await waitSystemLine(B.page, /^Alice left$/, 'A leaving scratch');
    await waitCount(B.page, 1);
    await B.page.locator('#leave').click();
    await waitRoom(B.page, 'dev');
    assert.deepEqual((await roomItems(B.page)).map((r) => r.room), ['lobby', 'dev']);
    await switchRoom(A.page, 'lobby');
    await switchRoom(B.page, 'lobby');
  });

  await check('phone width 375x700: no horizontal scroll, input and Send visible, can send; rooms in a drawer', async () => {
    assert.ok(A, 'first page did not open');
    const P = await openUser(url, { label: 'phone', viewport: { width: 375, height: 700 }, deviceScaleFactor: 2 });
    try {
      await waitStatus(P.page, 'online');
      await typeAndEnter(A.page, `${'supercalifragilistic'.repeat(12)}`);
      await findMessage(P.page, `${'supercalifragilistic'.repeat(12)}`);
      const mine = `hello from a phone ${Date.now()}`;
      await typeAndEnter(P.page, mine);
      const own = await describeMessage(await findMessage(P.page, mine));
      assert.equal(own.who, 'You');
      await sleep(200);
      const width = await P.page.evaluate(() => document.scrollingElement.scrollWidth);
      assert.ok(width <= 375, `page scrolls horizontally: scrollWidth ${width} > 375`);
      const logWidth = await P.page.$eval('#messages', (e) => e.scrollWidth - e.clientWidth);
      assert.ok(logWidth <= 0, `message list scrolls horizontally by ${logWidth}px`);
      for (const s of [sel.input, sel.send, '#me', '#status', '#rooms-toggle', '#copy-link', '#leave']) {
        assert.equal(await P.page.locator(s).isVisible(), true, `${s} is not visible`);
        const box = await P.page.locator(s).boundingBox();
        assert.ok(box && box.x >= 0 && box.y >= 0 && box.x + box.width <= 375 && box.y + box.height <= 700,
          `${s} is not inside the 375x700 viewport: ${JSON.stringify(box)}`);
      }
      assert.equal(await P.page.locator('#sidebar').isVisible(), false, 'the room list should be a closed drawer on a phone');
      assert.equal(await P.page.locator('#leave').isDisabled(), true, 'with a single room, Leave is disabled (a connection is always in a room)');
      console.log(`#   ${await shot(P.page, 'phone-375x700')}`);
      await P.page.locator('#rooms-toggle').click();
      await P.page.locator('#join-input').waitFor({ state: 'visible' });
      await sleep(300); // the slide-in
      const box = await P.page.locator('#sidebar').boundingBox();
      assert.ok(box && box.x >= 0 && box.x + box.width <= 375, `the open drawer is not inside the viewport: ${JSON.stringify(box)}`);
      console.log(`#   ${await shot(P.page, 'phone-375x700-drawer')}`);
      await P.page.locator('#join-input').fill('phone-room');
      await P.page.locator('#join-input').press('Enter');
      await waitRoom(P.page, 'phone-room');
      await P.page.locator('#sidebar').waitFor({ state: 'hidden', timeout: 2000 }).catch(() => {
        throw new Error('the drawer should close after choosing a room');
      });
      const width2 = await P.page.evaluate(() => document.scrollingElement.scrollWidth);
      assert.ok(width2 <= 375, `page scrolls horizontally with two rooms: scrollWidth ${width2} > 375`);
      assert.deepEqual(problems(P.watch), [], 'console errors at phone width');
    } finally {
      P.watch.quiet = true;
      await P.context.close();
    }
    // a dark phone in dev, to look at
    const Q = await openUser(`${url}?room=dev`, { label: 'phone-dark', viewport: { width: 375, height: 700 }, colorScheme: 'dark', deviceScaleFactor: 2 });
    try {
      await waitRoom(Q.page, 'dev');
      await findMessage(Q.page, devMsg);
      await sleep(200);
      const width = await Q.page.evaluate(() => document.scrollingElement.scrollWidth);
      assert.ok(width <= 375, `dark phone page scrolls horizontally: ${width}`);
      console.log(`#   ${await shot(Q.page, 'phone-375x700-dark-dev')}`);
      await Q.page.locator('#me').click();
      await Q.page.locator('#name-dialog').waitFor({ state: 'visible' });
      console.log(`#   ${await shot(Q.page, 'phone-375x700-dark-name-dialog')}`);
      assert.deepEqual(problems(Q.watch), [], 'console errors on the dark phone');
    } finally {
      Q.watch.quiet = true;
      await Q.context.close();
    }
  });

  let gap = null;
  await check('reconnect without gaps: B goes offline, A sends 5 (+1 in dev), B comes back -> resumes with since, shows all 5 once, in order', async () => {
    assert.ok(A && B, 'pages did not open');
    await switchRoom(B.page, 'lobby');
    const lastId = await B.page.evaluate(async () => (await import('/app.js')).state.rooms.get('lobby').lastId);
    assert.ok(Number.isInteger(lastId) && lastId > 0, `B should know the last lobby id, has ${lastId}`);
    const opened = B.sockets.length;
    await B.context.setOffline(true);
    await waitStatus(B.page, 'offline');
    const stamp = Date.now();
    gap = [1, 2, 3, 4, 5].map((i) => `missed ${i} ${stamp}`);
    for (const t of gap) {
      await typeAndEnter(A.page, t);
      await findMessage(A.page, t);
    }
    await switchRoom(A.page, 'dev');
    const gapDev = `missed in dev ${stamp}`;
    await typeAndEnter(A.page, gapDev);
    await findMessage(A.page, gapDev);
    await switchRoom(A.page, 'lobby');
    assert.equal((await shownTexts(B.page)).some((t) => gap.includes(t)), false, 'B received messages while offline');
    console.log(`#   ${await shot(B.page, 'desktop-dark-offline-B')}`);

    await B.context.setOffline(false);
    await waitRoom(B.page, 'lobby', 15_000);
    const wsUrl = B.sockets[opened] || '';
    assert.match(wsUrl, new RegExp(`/ws\\?room=lobby&since=${lastId}(&guest=[\\w.-]+)?$`), `B should reopen with ?room=lobby&since=${lastId}: ${wsUrl}`);
    await findMessage(B.page, gap[4]);
    await sleep(500); // anything duplicated would have arrived by now
    const shown = await shownTexts(B.page);
    for (const t of gap) assert.equal(shown.filter((x) => x === t).length, 1, `"${t}" shown ${shown.filter((x) => x === t).length} times on B`);
    const at = positions(shown, gap);
    assert.ok(at.every((i, k) => k === 0 || i === at[k - 1] + 1), `the 5 missed messages should be in order and together: positions ${at}`);
    // dev was resumed too (join with since): one unread, shown once
    await B.page.waitForFunction(() => document.querySelector('#room-list .room-item[data-room="dev"] .badge')?.textContent === '1',
      null, { timeout: STEP_TIMEOUT_MS }).catch(async () => {
      throw new Error(`B's dev badge should be 1: ${JSON.stringify(await roomItems(B.page))}`);
    });
    console.log(`#   ${await shot(B.page, 'desktop-dark-resumed-B')}`);
    await switchRoom(B.page, 'dev');
    assert.equal((await shownTexts(B.page)).filter((x) => x === gapDev).length, 1, 'the dev message missed offline, once');
    await switchRoom(B.page, 'lobby');
  });

  await check('load older: 60 messages in a room, the page shows the last 50; scrolling to the top loads 10 more and "Beginning of #bulk"', async () => {
    // A separate server with flood control off: this check sends a burst of 60.
    const srv2 = await startServer(bin, staticDir, { db: path.join(tmpDir, 'bulk.db'), extra: ['--rate-limit', '0'] });
    let E = null;
    try {
      E = await openUser(`${srv2.url}?room=bulk`, { label: 'E' });
      await waitRoom(E.page, 'bulk');
      const texts = Array.from({ length: 60 }, (_, i) => `bulk ${String(i + 1).padStart(2, '0')}`);
      await sendRaw(E.page, texts.map((text) => ({ type: 'message', room: 'bulk', text })));
      await findMessage(E.page, texts[59]);
      await E.page.reload({ waitUntil: 'load' });
      await waitRoom(E.page, 'bulk');
      await findMessage(E.page, texts[59]);
      assert.deepEqual(await shownTexts(E.page), texts.slice(10), 'after a reload the last 50 are shown, oldest first');
      assert.equal(await E.page.locator('#messages .load-older').isVisible(), true, 'a "Load older messages" button should be at the top');
      assert.equal(await E.page.locator('#messages .beginning').count(), 0, '"Beginning" shown although more exist');
      const atBottom = await E.page.$eval('#messages', (e) => e.scrollHeight - e.scrollTop - e.clientHeight);
      assert.ok(atBottom <= 2, `the list should start scrolled to the bottom (${atBottom}px above it)`);

      const anchorBefore = await E.page.evaluate(() => {
        document.querySelector('#messages').scrollTop = 0;
        return document.querySelector('#messages .msg').getBoundingClientRect().top;
      });
      await E.page.waitForFunction(() => document.querySelectorAll('#messages .msg').length === 60, null, { timeout: STEP_TIMEOUT_MS })
        .catch(async () => { throw new Error(`after scrolling up ${(await shownTexts(E.page)).length} messages are shown, not 60`); });
      await E.page.locator('#messages .beginning').waitFor({ state: 'visible' });
      assert.equal((await E.page.locator('#messages .beginning').textContent()).trim(), 'Beginning of #bulk');
      assert.deepEqual(await shownTexts(E.page), texts, 'all 60, oldest first');
      const anchorAfter = await E.page.evaluate(() => [...document.querySelectorAll('#messages .msg')]
        .find((e) => e.querySelector('.text').textContent === 'bulk 11').getBoundingClientRect().top);
      assert.ok(Math.abs(anchorAfter - anchorBefore) <= 2,
        `the view jumped: "bulk 11" moved from y=${anchorBefore} to y=${anchorAfter}`);
      console.log(`#   ${await shot(E.page, 'desktop-load-older')}`);
      await E.page.evaluate(() => { document.querySelector('#messages').scrollTop = 0; });
      console.log(`#   ${await shot(E.page, 'desktop-beginning')}`);
      await sleep(300);
      assert.equal((await shownTexts(E.page)).length, 60, 'nothing more to load at the beginning');

      // A resume that could not replay everything (`complete:false`, over 5,000 missed): the
      // page drops what it had before the gap, says so, and paging back fills the gap.
      await E.page.evaluate(async () => {
        const { handleEvent } = await import('/app.js');
        handleEvent({ type: 'resumed', room: 'bulk', since: 55, last: 60, complete: false });
      });
      await waitSystemLine(E.page, /^Some messages were skipped while you were away\. Scroll up to load them\.$/, 'the incomplete resume');
      await E.page.waitForFunction(() => document.querySelectorAll('#messages .msg').length === 55, null, { timeout: STEP_TIMEOUT_MS })
        .catch(async () => { throw new Error(`after the gap, a short list should page back 50 by itself; shows ${(await shownTexts(E.page)).length}`); });
      assert.deepEqual(await shownTexts(E.page), texts.slice(5), 'the gap is filled in order');
      console.log(`#   ${await shot(E.page, 'desktop-incomplete-resume')}`);
      await E.page.evaluate(() => { document.querySelector('#messages').scrollTop = 0; });
      await E.page.waitForFunction(() => document.querySelectorAll('#messages .msg').length === 60, null, { timeout: STEP_TIMEOUT_MS });
      await E.page.locator('#messages .beginning').waitFor({ state: 'visible' });
      assert.deepEqual(await shownTexts(E.page), texts);
      assert.deepEqual(problems(E.watch), []);
    } finally {
      if (E) {
        E.watch.quiet = true;
        await E.context.close();
      }
      await stopProcess(srv2);
    }
  });

  await check('sign-in: ?token= gives the token\'s name, rename is locked, the token leaves the address bar, own history stays "You"', async () => {
    const secret = crypto.randomBytes(16).toString('hex');
    const srv3 = await startServer(bin, staticDir, { db: path.join(tmpDir, 'signin.db'), extra: ['--jwt-secret', secret] });
    let S = null;
    try {
      const token = jwt(secret, { sub: '42', name: 'Carol', exp: Math.floor(Date.now() / 1000) + 3600 });
      S = await openUser(`${srv3.url}?room=team&token=${token}`, { label: 'S' });
      await waitRoom(S.page, 'team');
      assert.equal(await meName(S.page), 'Carol', 'the name comes from the token');
      assert.equal(await S.page.locator('#me').isDisabled(), true, 'a signed-in user cannot rename');
      assert.equal(new URL(S.page.url()).search, '?room=team', `the token should leave the address bar: ${S.page.url()}`);
      assert.ok(S.sockets[0].includes(`token=${token}`), 'the WebSocket carries the token');
      const mine = `signed hello ${Date.now()}`;
      await typeAndEnter(S.page, mine);
      assert.equal((await describeMessage(await findMessage(S.page, mine))).who, 'You');
      await S.page.reload({ waitUntil: 'load' });
      await waitRoom(S.page, 'team');
      const again = await describeMessage(await findMessage(S.page, mine));
      assert.equal(again.who, 'You', `a signed-in user's own message from before the reload should be "You", got ${JSON.stringify(again.who)}`);
      console.log(`#   ${await shot(S.page, 'desktop-signed-in')}`);
      assert.deepEqual(problems(S.watch), []);
    } finally {
      if (S) {
        S.watch.quiet = true;
        await S.context.close();
      }
      await stopProcess(srv3);
    }
  });

  await check('TLS: the page over https and chat over wss, with a certificate made by openssl req', async () => {
    const dir = fs.mkdtempSync(path.join(tmpDir, 'tls-'));
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
      '-nodes', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-days', '1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
    const srv4 = await startServer(bin, staticDir, { db: path.join(dir, 'tls.db'), extra: ['--tls-cert', cert, '--tls-key', key] });
    let T1 = null, T2 = null;
    try {
      assert.ok(srv4.url.startsWith('https://'), `a TLS server should announce https, got ${srv4.url}`);
      T1 = await openUser(srv4.url, { label: 'T1', ignoreHTTPSErrors: true });
      T2 = await openUser(srv4.url, { label: 'T2', ignoreHTTPSErrors: true });
      assert.equal(T1.response.status(), 200);
      await waitStatus(T1.page, 'online');
      await waitStatus(T2.page, 'online');
      assert.ok(T1.sockets[0].startsWith('wss://'), `the page should use wss on an https page, got ${T1.sockets[0]}`);
      const text = `over tls ${Date.now()}`;
      await typeAndEnter(T1.page, text);
      assert.equal((await describeMessage(await findMessage(T1.page, text))).who, 'You');
      assert.match((await describeMessage(await findMessage(T2.page, text))).who, /^User \d+$/);
      assert.deepEqual(problems(T1.watch, T2.watch), []);
    } finally {
      for (const u of [T1, T2]) {
        if (u) {
          u.watch.quiet = true;
          await u.context.close();
        }
      }
      await stopProcess(srv4);
    }
  });

  await check('no console errors/warnings or page errors during normal use (both users)', async () => {
    assert.ok(A && B, 'pages did not open');
    assert.deepEqual(problems(A.watch, B.watch), []);
  });

  await check('reconnect: server killed -> "reconnecting"; new server on the same port and --db -> both online, history kept, can send', async () => {
    assert.ok(A && B, 'pages did not open');
    A.watch.quiet = true; // failed WebSocket attempts log console errors by design
    B.watch.quiet = true;
    const port = srv.port;
    srv.child.kill('SIGKILL');
    await waitExit(srv, 5000);
    await waitStatus(A.page, 'reconnecting');
    await waitStatus(B.page, 'reconnecting');
    assert.equal(await A.page.locator(sel.send).isDisabled(), true, 'Send should be disabled while reconnecting');
    await A.page.waitForFunction(() => /Reconnecting in \d+ s/.test(document.querySelector('#status').textContent),
      null, { timeout: 5000 }).catch(() => {});
    console.log(`#   ${await shot(A.page, 'desktop-reconnecting')}`);
    await sleep(1500); // let a couple of attempts fail against the closed port

    let lastErr;
    for (let i = 0; i < 20 && (!srv || srv.exited); i += 1) {
      try {
        srv = await startServer(bin, staticDir, { port });
      } catch (err) {
        lastErr = err;
        await sleep(250);
      }
    }
    assert.ok(srv && !srv.exited, `could not restart the server on port ${port}: ${lastErr?.message}`);
    // A new user connects while A is still backing off: a restarted server may give it
    // the id A had before, and A must not show its messages as "You".
    const C = await openUser(url, { label: 'C' });
    try {
      await waitStatus(C.page, 'online');
      if (gap) await findMessage(C.page, gap[4]); // stored before the kill -9, in C's join history
      await waitRoom(A.page, 'lobby', 20_000);
      await waitRoom(B.page, 'lobby', 20_000);
      await waitCount(A.page, 3);
      const again = `back again ${Date.now()}`;
      await typeAndEnter(A.page, again);
      const el = await describeMessage(await findMessage(A.page, again));
      assert.equal(el.who, 'You', `after reconnecting, own message should be "You", got ${JSON.stringify(el.who)}`);
      assert.equal((await describeMessage(await findMessage(B.page, again))).who, 'Alice', 'B labels A\'s message after the restart');
      const fromC = `hello from C ${Date.now()}`;
      await typeAndEnter(C.page, fromC);
      const cOnA = await describeMessage(await findMessage(A.page, fromC));
      assert.match(cOnA.who, /^User \S+$/, `after a server restart, another user's message is labelled ${JSON.stringify(cOnA.who)} on A`);
      assert.equal(cOnA.own, false, 'another user\'s message looks like A\'s own after the restart');
      const cHistory = await C.page.$$eval('#messages .msg.own', (els) => els.map((e) => e.querySelector('.text').textContent));
      assert.deepEqual(cHistory, [fromC], `C shows older messages (from a reused id) as its own: ${JSON.stringify(cHistory)}`);
      if (gap) {
        const shown = await shownTexts(B.page);
        for (const t of gap) assert.equal(shown.filter((x) => x === t).length, 1, `"${t}" duplicated on B after the restart`);
      }
      console.log(`#   ${await shot(A.page, 'desktop-after-reconnect')}`);
    } finally {
      C.watch.quiet = true;
      await C.context.close();
    }
  });

  await check('second user leaves: A sees "User N left" and the count drops to 1', async () => {
    assert.ok(A && B, 'pages did not open');
    const bName = await meName(B.page);
    await B.context.close();
    B = null;
    await waitSystemLine(A.page, new RegExp(`^${bName} left$`), 'the second user leaving');
    await waitCount(A.page, 1);
  });

  await check('server exits 0 within 2 s of SIGTERM, closing the page\'s socket', async () => {
    assert.ok(srv && !srv.exited, 'no server running');
    const s = srv;
    s.child.kill('SIGTERM');
    const exited = await waitExit(s, 2500);
    assert.ok(exited, 'server still running 2.5 s after SIGTERM');
    assert.equal(s.exitCode, 0, `server exit code ${s.exitCode}, signal ${s.exitSignal}`);
    if (A) await waitStatus(A.page, 'reconnecting', 5000);
  });
}

await main(WHOLE_TEST_TIMEOUT_MS, run);
