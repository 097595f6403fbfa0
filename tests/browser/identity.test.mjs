// Real-browser test of who you are on the chat page: sign-in people can get through, and a
// guest stays itself across a reload (docs/protocol.md "Sign-in" and "Guests").
//
//   node tests/browser/identity.test.mjs /path/to/ringcast /path/to/static
//
// The shared harness (harness.mjs): the real server (with --threads N when RINGCAST_THREADS is
// set) in a fresh temporary directory, Debian's Chromium through playwright-core; prints
// `N passed, M failed` (exit 1 if any failed).

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { STEP_TIMEOUT_MS, check, launchChromium, main, makeTmpDir, startRingcast, stopProcess,
  threadArgs } from './harness.mjs';

const WHOLE_TEST_TIMEOUT_MS = 240_000;

let browser = null;
let tmpDir = null;

// Each server gets its own database, so no check sees another's guests.
function startServer(bin, staticDir, extra = []) {
  const db = path.join(tmpDir, `${crypto.randomBytes(4).toString('hex')}.db`);
  return startRingcast(bin, ['--port', '0', '--static', staticDir, '--db', db, ...threadArgs(), ...extra]);
}

// A browser profile (its own localStorage); pages opened in it are its tabs.
async function newProfile() {
  const context = await browser.newContext({ permissions: ['local-network-access'] });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  return context;
}

async function openTab(context, url) {
  const page = await context.newPage();
  const tab = { page, sockets: [], errors: [] };
  page.on('websocket', (ws) => tab.sockets.push(ws.url()));
  page.on('pageerror', (e) => tab.errors.push(e.message));
  await page.goto(url, { waitUntil: 'load' });
  return tab;
}

async function waitStatus(page, state, timeout = STEP_TIMEOUT_MS) {
  try {
    await page.waitForFunction((s) => document.querySelector('#status')?.dataset.state === s, state, { timeout });
  } catch {
    const now = await page.locator('#status').textContent().catch(() => '?');
    throw new Error(`status did not become "${state}" within ${timeout} ms (it shows "${now?.trim()}")`);
  }
}

async function waitLive(page) {
  await page.waitForFunction(() => document.querySelector('#status')?.dataset.state === 'online'
    && !document.querySelector('#send').disabled, null, { timeout: STEP_TIMEOUT_MS });
}

async function say(page, text) {
  await page.locator('#input').fill(text);
  await page.locator('#input').press('Enter');
}

// The message shown with exactly this text: { who, own }.
async function message(page, text) {
  const handle = await page.waitForFunction((t) => [...document.querySelectorAll('#messages .msg')]
    .find((el) => el.querySelector('.text')?.textContent === t) || null, text, { timeout: STEP_TIMEOUT_MS });
  return handle.asElement().evaluate((e) => ({ who: e.querySelector('.who')?.textContent ?? null,
    own: e.classList.contains('own') }));
}

async function systemLines(page) {
  return page.$$eval('#messages .sys', (els) => els.map((e) => e.textContent));
}

async function myId(page) {
  return page.evaluate(async () => (await import('/app.js')).state.currentId);
}

function jwt(secret, claims) {
  const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');
  const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${head}.${crypto.createHmac('sha256', secret).update(head).digest('base64url')}`;
}

const nowS = () => Math.floor(Date.now() / 1000);

async function run(bin, staticDir) {
  tmpDir = makeTmpDir('ringcast-identity-');
  browser = await launchChromium(['--no-sandbox']);
  const secret = crypto.randomBytes(24).toString('hex');

  await check('sign-in: no token shows "Sign-in required" with the way to sign in, not an endless reconnect; a token gets in, and a second tab is signed in too', async () => {
    const srv = await startServer(bin, staticDir, ['--jwt-secret', secret, '--login-url', 'https://login.example.com/sso']);
    const profile = await newProfile();
    try {
      const tab = await openTab(profile, srv.url);
      await waitStatus(tab.page, 'signin');
      assert.equal((await tab.page.locator('#status-text').textContent()).trim(), 'Sign-in required');
      assert.match(await tab.page.locator('#signin-why').textContent(), /no sign-in token was given.*token missing/);
      await tab.page.locator('#signin-link').waitFor({ state: 'visible' });
      assert.equal(await tab.page.locator('#signin-link').getAttribute('href'), '/login');
      assert.equal(await tab.page.locator('#empty').isVisible(), false, '"No messages yet" under a sign-in prompt');
      // The first reconnect would come after 0.5 s (± 30 %): wait well past it.
      const opened = tab.sockets.length;
      await sleep(2500);
      assert.equal(tab.sockets.length, opened, `the page kept reconnecting: ${tab.sockets.length} sockets`);
      assert.equal(await tab.page.locator('#status').getAttribute('data-state'), 'signin');
      // The login page sends people back with #token=...
      const token = jwt(secret, { sub: 'u1', name: 'Dana', exp: nowS() + 3600 });
      await tab.page.goto(`${srv.url}#token=${token}`, { waitUntil: 'load' });
      await waitLive(tab.page);
      assert.equal((await tab.page.locator('#me-name').textContent()).trim(), 'Dana');
      assert.ok(!tab.page.url().includes('token='), `the token stays in the address bar: ${tab.page.url()}`);
      const second = await openTab(profile, srv.url);
      await waitLive(second.page);
      assert.equal((await second.page.locator('#me-name').textContent()).trim(), 'Dana', 'the second tab is not signed in');
      assert.deepEqual([...tab.errors, ...second.errors], []);
    } finally {
      await profile.close();
      await stopProcess(srv);
    }
  });

  await check('sign-in: an expired token says so; a refresh keeps the session past the old token\'s expiry', async () => {
    const srv = await startServer(bin, staticDir, ['--jwt-secret', secret, '--jwt-leeway', '0']);
    const profile = await newProfile();
    try {
      const stale = jwt(secret, { sub: 'u2', name: 'Eve', exp: nowS() - 60 });
      const tab = await openTab(profile, `${srv.url}?token=${stale}`);
      await waitStatus(tab.page, 'signin');
      assert.match(await tab.page.locator('#signin-why').textContent(), /expired/);
      // Paste a short-lived token: the page connects.
      const exp = nowS() + 3;
      await tab.page.locator('#signin-token').fill(jwt(secret, { sub: 'u2', name: 'Eve', exp }));
      await tab.page.locator('#signin-token').press('Enter');
      await waitLive(tab.page);
      const sockets = tab.sockets.length;
      // The application hands the page a new token (#token=): a refresh, no reconnect.
      const fresh = jwt(secret, { sub: 'u2', name: 'Eve', exp: nowS() + 3600 });
      await tab.page.evaluate((t) => { location.hash = `token=${t}`; }, fresh);
      await tab.page.waitForFunction(() => location.hash === '', null, { timeout: STEP_TIMEOUT_MS });
      while (nowS() <= exp + 1) await sleep(250); // until the first token has run out
      const text = `after the old expiry ${Date.now()}`;
      await say(tab.page, text);
      assert.equal((await message(tab.page, text)).who, 'You');
      assert.equal(await tab.page.locator('#status').getAttribute('data-state'), 'online');
      assert.equal(tab.sockets.length, sockets, 'the refresh reconnected');
      assert.deepEqual(tab.errors, []);
    } finally {
      await profile.close();
      await stopProcess(srv);
    }
  });

  await check('guest: "You" and the id survive a reload, and the others see no leave or join', async () => {
    const srv = await startServer(bin, staticDir);
    const watcherProfile = await newProfile();
    const guestProfile = await newProfile();
    try {
      const watcher = await openTab(watcherProfile, srv.url);
      await waitLive(watcher.page);
      const guest = await openTab(guestProfile, srv.url);
      await waitLive(guest.page);
      const id = await myId(guest.page);
      const name = `Guest ${crypto.randomBytes(2).toString('hex')}`;
      await guest.page.locator('#me').click();
      await guest.page.locator('#name-input').fill(name);
      await guest.page.locator('#name-input').press('Enter');
      await guest.page.waitForFunction((n) => document.querySelector('#me-name')?.textContent.trim() === n, name);
      const before = `before the reload ${Date.now()}`;
      await say(guest.page, before);
      assert.equal((await message(watcher.page, before)).who, name);
      const linesBefore = (await systemLines(watcher.page)).length;

      await guest.page.reload({ waitUntil: 'load' });
      await waitLive(guest.page);
      assert.equal(await myId(guest.page), id, 'the id changed over the reload');
      assert.equal((await guest.page.locator('#me-name').textContent()).trim(), name);
      assert.deepEqual(await message(guest.page, before), { who: 'You', own: true });
      const after = `after the reload ${Date.now()}`;
      await say(guest.page, after);
      // Positive signal: the watcher has the message sent after the reload ...
      assert.equal((await message(watcher.page, after)).who, name);
      // ... and no line about the guest leaving, joining or renaming came with it.
      const noise = (await systemLines(watcher.page)).slice(linesBefore);
      assert.deepEqual(noise, [], `the watcher saw: ${JSON.stringify(noise)}`);
      assert.deepEqual([...watcher.errors, ...guest.errors], []);
    } finally {
      await guestProfile.close();
      await watcherProfile.close();
      await stopProcess(srv);
    }
  });
}

await main(WHOLE_TEST_TIMEOUT_MS, run);
