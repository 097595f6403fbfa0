// Real-browser end-to-end test of the ringcast chat page.
//
//   node tests/browser/chat.test.mjs /path/to/ringcast /path/to/static
//
// Starts the real server (`--port 0 --static DIR`), drives Debian's Chromium through
// playwright-core, and prints `N passed, M failed` at the end (exit 1 if any failed).
// Screenshots go to /tmp/browser-shots/ (override with BROWSER_SHOTS_DIR).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const WHOLE_TEST_TIMEOUT_MS = 120_000;
const STEP_TIMEOUT_MS = 10_000;
const SHOTS = process.env.BROWSER_SHOTS_DIR || '/tmp/browser-shots';
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const CSP = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; " +
  "script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

let passed = 0;
let failed = 0;
const servers = new Set();
let browser = null;

function finish(code) {
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = code;
}

function fatal(msg) {
  console.error(`FATAL: ${msg}`);
  failed += 1;
}

/* ------------------------------------------------------------------ */
/* server process                                                      */
/* ------------------------------------------------------------------ */

function startServer(bin, staticDir, port = 0) {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, ['--port', String(port), '--static', staticDir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const srv = { child, log: '', exited: false, exitCode: null, exitSignal: null };
    servers.add(srv);
    const timer = setTimeout(() => {
      reject(new Error(`server did not print "listening on http://HOST:PORT/" within 10 s; output:\n${srv.log}`));
    }, 10_000);
    const onData = (chunk) => {
      srv.log = (srv.log + chunk.toString()).slice(-8000);
      const m = /listening on http:\/\/(\S+?):(\d+)\//.exec(srv.log);
      if (m && !srv.port) {
        clearTimeout(timer);
        srv.host = m[1];
        srv.port = Number(m[2]);
        srv.url = `http://${srv.host}:${srv.port}/`;
        resolve(srv);
      }
    };
    child.stderr.on('data', onData);
    child.stdout.on('data', (c) => { srv.log = (srv.log + c.toString()).slice(-8000); });
    child.on('error', (err) => { clearTimeout(timer); reject(err); });
    child.on('exit', (code, signal) => {
      srv.exited = true;
      srv.exitCode = code;
      srv.exitSignal = signal;
      servers.delete(srv);
      clearTimeout(timer);
      if (!srv.port) reject(new Error(`server exited (code ${code}, signal ${signal}) before listening; output:\n${srv.log}`));
    });
  });
}

function waitExit(srv, ms) {
  if (srv.exited) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    srv.child.once('exit', () => { clearTimeout(t); resolve(true); });
  });
}

async function stopServer(srv, signal = 'SIGTERM') {
  if (!srv || srv.exited) return true;
  srv.child.kill(signal);
  const ok = await waitExit(srv, 3000);
  if (!ok) {
    srv.child.kill('SIGKILL');
    await waitExit(srv, 2000);
  }
  return ok;
}

async function cleanup() {
  if (browser) {
    const b = browser;
    browser = null;
    await Promise.race([b.close().catch(() => {}), sleep(5000)]);
  }
  await Promise.all([...servers].map((s) => stopServer(s)));
}

process.on('exit', () => {
  for (const s of servers) { try { s.child.kill('SIGKILL'); } catch { /* gone */ } }
});

/* ------------------------------------------------------------------ */
/* checks                                                              */
/* ------------------------------------------------------------------ */

async function check(name, fn) {
  try {
    await fn();
    passed += 1;
    console.log(`ok - ${name}`);
  } catch (err) {
    failed += 1;
    const msg = (err && err.message ? err.message : String(err)).split('\n').slice(0, 12).join('\n    ');
    console.log(`FAIL - ${name}\n    ${msg}`);
  }
}

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
  const { viewport = { width: 1280, height: 800 }, colorScheme = 'light', label, deviceScaleFactor = 1 } = opts;
  const context = await browser.newContext({
    viewport, colorScheme, deviceScaleFactor,
    permissions: serverCsp ? [] : ['local-network-access'],
  });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  if (!serverCsp) await enforceCsp(context);
  const page = await context.newPage();
  const watch = watchPage(page, label);
  const response = await page.goto(url, { waitUntil: 'load' });
  return { context, page, watch, response, label };
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

/* ------------------------------------------------------------------ */
/* the test                                                            */
/* ------------------------------------------------------------------ */

async function run(bin, staticDir) {
  let playwright;
  try {
    playwright = await import('playwright-core');
  } catch (err) {
    fatal(`playwright-core is not installed (${err.code || err.message}). Run: npm ci --prefix tests/browser`);
    return;
  }
  if (!fs.existsSync(CHROMIUM)) {
    fatal(`Chromium not found at ${CHROMIUM} (apt-get install chromium)`);
    return;
  }
  fs.mkdirSync(SHOTS, { recursive: true });

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

  browser = await playwright.chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });

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

  await check('no console errors/warnings or page errors during normal use (both users)', async () => {
    assert.ok(A && B, 'pages did not open');
    assert.deepEqual(problems(A.watch, B.watch), []);
  });

  await check('second user leaves: A sees "User N left" and the count drops to 1', async () => {
    assert.ok(A && B, 'pages did not open');
    B.watch.quiet = true;
    await B.context.close();
    B = null;
    await waitSystemLine(A.page, /^User \S+ left$/, 'the second user leaving');
    await waitCount(A.page, 1);
  });

  await check('phone width 375x700: no horizontal scroll, input and Send visible, can send', async () => {
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
      for (const s of [sel.input, sel.send]) {
        assert.equal(await P.page.locator(s).isVisible(), true, `${s} is not visible`);
        const box = await P.page.locator(s).boundingBox();
        assert.ok(box && box.x >= 0 && box.y >= 0 && box.x + box.width <= 375 && box.y + box.height <= 700,
          `${s} is not inside the 375x700 viewport: ${JSON.stringify(box)}`);
      }
      console.log(`#   ${await shot(P.page, 'phone-375x700')}`);
      assert.deepEqual(problems(P.watch), [], 'console errors at phone width');
    } finally {
      P.watch.quiet = true;
      await P.context.close();
    }
  });

  await check('reconnect: server killed -> "reconnecting"; new server on the same port -> online again and can send', async () => {
    assert.ok(A, 'first page did not open');
    A.watch.quiet = true; // failed WebSocket attempts log console errors by design
    const port = srv.port;
    srv.child.kill('SIGKILL');
    await waitExit(srv, 5000);
    await waitStatus(A.page, 'reconnecting');
    assert.equal(await A.page.locator(sel.send).isDisabled(), true, 'Send should be disabled while reconnecting');
    await A.page.waitForFunction(() => /Reconnecting in \d+ s/.test(document.querySelector('#status').textContent),
      null, { timeout: 5000 }).catch(() => {});
    console.log(`#   ${await shot(A.page, 'desktop-reconnecting')}`);
    await sleep(1500); // let a couple of attempts fail against the closed port

    let lastErr;
    for (let i = 0; i < 20 && (!srv || srv.exited); i += 1) {
      try {
        srv = await startServer(bin, staticDir, port);
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
      await waitStatus(A.page, 'online', 20_000);
      await waitCount(A.page, 2);
      const again = `back again ${Date.now()}`;
      await typeAndEnter(A.page, again);
      const el = await describeMessage(await findMessage(A.page, again));
      assert.equal(el.who, 'You', `after reconnecting, own message should be "You", got ${JSON.stringify(el.who)}`);
      const fromC = `hello from C ${Date.now()}`;
      await typeAndEnter(C.page, fromC);
      const cOnA = await describeMessage(await findMessage(A.page, fromC));
      assert.match(cOnA.who, /^User \S+$/, `after a server restart, another user's message is labelled ${JSON.stringify(cOnA.who)} on A`);
      assert.equal(cOnA.own, false, 'another user\'s message looks like A\'s own after the restart');
      console.log(`#   ${await shot(A.page, 'desktop-after-reconnect')}`);
    } finally {
      C.watch.quiet = true;
      await C.context.close();
    }
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

/* ------------------------------------------------------------------ */

const [binArg, staticArg] = process.argv.slice(2);
if (!binArg || !staticArg) {
  console.error('usage: node tests/browser/chat.test.mjs /path/to/ringcast /path/to/static');
  failed += 1;
  finish(1);
} else {
  const bin = path.resolve(binArg);
  const staticDir = path.resolve(staticArg);
  const watchdog = setTimeout(async () => {
    fatal(`whole test timed out after ${WHOLE_TEST_TIMEOUT_MS / 1000} s`);
    await Promise.race([cleanup(), sleep(8000)]);
    finish(1);
    process.exit(1);
  }, WHOLE_TEST_TIMEOUT_MS);
  try {
    if (!fs.existsSync(bin)) fatal(`server binary not found: ${bin}`);
    else if (!fs.existsSync(path.join(staticDir, 'index.html'))) fatal(`no index.html in ${staticDir}`);
    else await run(bin, staticDir);
  } catch (err) {
    fatal(err && err.stack ? err.stack : String(err));
  } finally {
    await cleanup();
    clearTimeout(watchdog);
    finish(failed > 0 || passed === 0 ? 1 : 0);
  }
}
