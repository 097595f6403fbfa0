// Real-browser test of the page's people and room lists and of the limits it knows.
//
//   node tests/browser/people.test.mjs /path/to/ringcast /path/to/static
//
// Who is online and which rooms exist, for three people in two rooms, kept live by
// join/leave/nick; keyboard focus staying in a list after switching rooms; a message over
// the server's --max-message refused before sending with its text kept; rate-limit
// refusals counted and kept for sending again. Real server processes (`--port 0`, a
// temporary --db, `--threads` from RINGCAST_THREADS) and Debian's Chromium through
// playwright-core; prints `N passed, M failed` (exit 1 if any failed).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { SHOTS, STEP_TIMEOUT_MS, check, launchChromium, main, makeTmpDir, startRingcast,
  threadArgs } from './harness.mjs';

const WHOLE_TEST_TIMEOUT_MS = 180_000;

const contexts = [];
let browser = null;
let tmpDir = null;

/* ------------------------------------------------------------------ */
/* servers and pages                                                   */
/* ------------------------------------------------------------------ */

function startServer(bin, staticDir, name, extra = []) {
  // --rejoin-grace 1: a closed page is "left" well within a step's deadline
  // (identity.test.mjs tests the grace itself)
  return startRingcast(bin, ['--port', '0', '--static', staticDir, '--db', path.join(tmpDir, `${name}.db`),
    '--rejoin-grace', '1', ...threadArgs(), ...extra]);
}

// A person: a browser context with one page on `url`; `frames` records every text frame
// the page sent, and `errors` every console error or page error.
async function openUser(url, label) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  contexts.push(context);
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  const page = await context.newPage();
  const user = { label, context, page, frames: [], sockets: 0, errors: [] };
  page.on('websocket', (ws) => {
    user.sockets += 1;
    ws.on('framesent', (f) => { if (typeof f.payload === 'string') user.frames.push(f.payload); });
  });
  page.on('console', (m) => { if (m.type() === 'error') user.errors.push(`[${label}] ${m.text()}`); });
  page.on('pageerror', (e) => user.errors.push(`[${label}] page error: ${e.message}`));
  await page.goto(url, { waitUntil: 'load' });
  return user;
}

async function shot(user, name) {
  await user.page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

// Wait for fn(page state) to hold, or fail saying what the page showed.
async function waitFor(page, what, fn, arg, show) {
  try {
    await page.waitForFunction(fn, arg, { timeout: STEP_TIMEOUT_MS });
  } catch {
    throw new Error(`${what} within ${STEP_TIMEOUT_MS} ms; the page shows ${JSON.stringify(await page.evaluate(show))}`);
  }
}

async function waitRoom(user, room) {
  await waitFor(user.page, `#${room} did not become the live current room`,
    (r) => document.querySelector('#room')?.textContent === `#${r}`
      && document.querySelector('#status')?.dataset.state === 'online'
      && !document.querySelector('#send').disabled,
    room, () => document.querySelector('#room')?.textContent);
}

async function rename(user, name) {
  await user.page.locator('#me').click();
  await user.page.locator('#name-input').fill(name);
  await user.page.locator('#name-input').press('Enter');
  await waitFor(user.page, `the name did not become ${name}`,
    (n) => document.querySelector('#me-name')?.textContent === n && !document.querySelector('#name-dialog').open,
    name, () => document.querySelector('#me-name')?.textContent);
}

async function joinViaUi(user, room) {
  await user.page.locator('#join-input').fill(room);
  await user.page.locator('#join-input').press('Enter');
  await waitRoom(user, room);
}

// The people list as shown: names with " (you)" after one's own, in order, and its title.
function peopleShown() {
  return {
    title: document.querySelector('#people-title')?.textContent,
    people: [...document.querySelectorAll('#people-list .person')].map((li) => li.textContent),
  };
}

// The all-rooms list as shown: "name count" per item, in order.
function directoryShown() {
  return [...document.querySelectorAll('#directory .dir-item')].map((b) =>
    `${b.dataset.room} ${b.querySelector('.room-count')?.textContent ?? '?'}`);
}

async function waitPeople(user, title, people) {
  await waitFor(user.page, `${user.label}'s people list did not become ${title}: ${people.join(', ')}`,
    ([t, p]) => {
      const shown = [...document.querySelectorAll('#people-list .person')].map((li) => li.textContent);
      return document.querySelector('#people-title')?.textContent === t && JSON.stringify(shown) === JSON.stringify(p);
    }, [title, people], peopleShown);
}

async function waitDirectory(user, rooms) {
  await waitFor(user.page, `${user.label}'s all-rooms list did not become ${rooms.join(', ')}`,
    (want) => {
      const shown = [...document.querySelectorAll('#directory .dir-item')].map((b) =>
        `${b.dataset.room} ${b.querySelector('.room-count')?.textContent ?? '?'}`);
      return JSON.stringify(shown) === JSON.stringify(want);
    }, rooms, directoryShown);
}

// The element with keyboard focus: which list it is in and which room it names.
function focusShown() {
  const el = document.activeElement;
  return { list: el?.closest('ul')?.id ?? null, room: el?.dataset?.room ?? null, tag: el?.tagName };
}

async function messageShown(user, text) {
  await waitFor(user.page, `${user.label} did not show the message ${JSON.stringify(text.slice(0, 40))}`,
    (t) => [...document.querySelectorAll('#messages .msg .text')].some((e) => e.textContent === t),
    text, () => [...document.querySelectorAll('#messages .msg .text')].slice(-3).map((e) => e.textContent));
}

/* ------------------------------------------------------------------ */
/* the checks                                                          */
/* ------------------------------------------------------------------ */

async function peopleAndRooms(url) {
  let A; let B; let C;

  await check('three people in two rooms: each sees who is in its room and every room with its count', async () => {
    A = await openUser(`${url}?room=lobby`, 'A');
    await waitRoom(A, 'lobby');
    await rename(A, 'Alice');
    await joinViaUi(A, 'dev'); // Alice: lobby and dev
    B = await openUser(`${url}?room=lobby`, 'B');
    await waitRoom(B, 'lobby');
    await rename(B, 'Bob');
    C = await openUser(`${url}?room=dev`, 'C'); // came by a #dev link
    await waitRoom(C, 'dev');
    await rename(C, 'Carol');

    await waitPeople(C, 'People in #dev · 2', ['Carol (you)', 'Alice']);
    await waitDirectory(C, ['dev 2', 'lobby 2']); // Carol can find #lobby
    await waitPeople(A, 'People in #dev · 2', ['Alice (you)', 'Carol']);
    await waitPeople(B, 'People in #lobby · 2', ['Bob (you)', 'Alice']);
    // Bob is not in #dev, so no event tells him Carol came: the refresh button asks.
    await B.page.locator('#directory-refresh').click();
    await waitDirectory(B, ['dev 2', 'lobby 2']);
    const labels = await C.page.evaluate(() => ({
      people: document.querySelector('#people-list').getAttribute('aria-labelledby'),
      rooms: document.querySelector('#directory').getAttribute('aria-labelledby'),
      items: [...document.querySelectorAll('#directory .dir-item')].map((b) => [b.tagName, b.textContent]),
    }));
    assert.equal(labels.people, 'people-title');
    assert.equal(labels.rooms, 'directory-title');
    assert.deepEqual(labels.items, [['BUTTON', '#dev2 (2 people, joined)'], ['BUTTON', '#lobby2 (2 people)']]);
    await shot(C, 'people-dev-C');
  });

  await check('joining from the all-rooms list by keyboard: the list updates live everywhere, focus stays on the room', async () => {
    await C.page.locator('#directory .dir-item[data-room="lobby"]').focus();
    await C.page.keyboard.press('Enter');
    await waitRoom(C, 'lobby');
    const focus = await C.page.evaluate(focusShown);
    assert.deepEqual(focus, { list: 'directory', room: 'lobby', tag: 'BUTTON' }, 'focus left the all-rooms list');
    await waitPeople(C, 'People in #lobby · 3', ['Carol (you)', 'Alice', 'Bob']);
    await waitPeople(B, 'People in #lobby · 3', ['Bob (you)', 'Alice', 'Carol']); // Carol's join, live
    await waitDirectory(C, ['dev 2', 'lobby 3']);
    await waitDirectory(B, ['dev 2', 'lobby 3']);
  });

  await check('switching rooms by keyboard in "Your rooms" keeps focus in that list', async () => {
    const mine = C.page.locator('#room-list .room-item[data-room="dev"]');
    await mine.focus();
    await C.page.keyboard.press('Enter');
    await waitRoom(C, 'dev');
    assert.deepEqual(await C.page.evaluate(focusShown), { list: 'room-list', room: 'dev', tag: 'BUTTON' });
    await waitPeople(C, 'People in #dev · 2', ['Carol (you)', 'Alice']);
    // On to the next room with Tab, Enter: focus stays there too.
    await C.page.keyboard.press('Tab');
    assert.deepEqual(await C.page.evaluate(focusShown), { list: 'room-list', room: 'lobby', tag: 'BUTTON' });
    await C.page.keyboard.press('Enter');
    await waitRoom(C, 'lobby');
    assert.deepEqual(await C.page.evaluate(focusShown), { list: 'room-list', room: 'lobby', tag: 'BUTTON' });
  });

  await check('a rename updates every list it is in, live', async () => {
    await rename(B, 'Bobby');
    await waitPeople(C, 'People in #lobby · 3', ['Carol (you)', 'Alice', 'Bobby']);
    await A.page.locator('#room-list .room-item[data-room="lobby"]').click();
    await waitRoom(A, 'lobby');
    await waitPeople(A, 'People in #lobby · 3', ['Alice (you)', 'Bobby', 'Carol']);
  });

  await check('a leave (closing the page) takes the person out of the lists and the count, live', async () => {
    await B.context.close();
    await waitPeople(C, 'People in #lobby · 2', ['Carol (you)', 'Alice']);
    await waitPeople(A, 'People in #lobby · 2', ['Alice (you)', 'Carol']);
    await waitDirectory(C, ['dev 2', 'lobby 2']);
    // Carol leaves #dev: Alice's #dev list and count follow.
    await C.page.locator('#room-list .room-item[data-room="dev"]').click();
    await waitRoom(C, 'dev');
    await C.page.locator('#leave').click();
    await waitRoom(C, 'lobby');
    await A.page.locator('#room-list .room-item[data-room="dev"]').click();
    await waitRoom(A, 'dev');
    await waitPeople(A, 'People in #dev · 1', ['Alice (you)']);
    await waitDirectory(C, ['dev 1', 'lobby 2']);
    assert.deepEqual([...A.errors, ...C.errors], [], 'console or page errors');
  });
}

async function limits(url) {
  let U;

  await check('a message over the server\'s --max-message is refused before sending, its text kept', async () => {
    U = await openUser(`${url}?room=limits`, 'U');
    await waitRoom(U, 'limits');
    const maxMessage = await U.page.evaluate(async () => (await import('/app.js')).state.maxMessage);
    assert.equal(maxMessage, 2000, 'the page did not learn --max-message from welcome');
    const long = 'ü'.repeat(1000); // 2,000 bytes of text: the JSON frame around it is over
    await U.page.locator('#input').fill(long);
    await U.page.locator('#input').press('Enter');
    await waitFor(U.page, 'no "too long" error', () => !document.querySelector('#too-long').hidden,
      null, () => document.querySelector('#too-long').textContent);
    const shown = await U.page.evaluate(() => ({
      error: document.querySelector('#too-long').textContent,
      invalid: document.querySelector('#input').getAttribute('aria-invalid'),
      kept: document.querySelector('#input').value,
    }));
    assert.match(shown.error, /^Too long to send: 2,0\d\d bytes, the limit is 2,000 bytes\./);
    assert.equal(shown.invalid, 'true');
    assert.equal(shown.kept, long, 'the text was not kept in the composer');
    await shot(U, 'people-too-long');
    // A message that fits still goes out on the same connection; only then is it certain
    // that the long one never went.
    const fits = 'ü'.repeat(900);
    await U.page.locator('#input').fill(fits);
    await U.page.locator('#input').press('Enter');
    await messageShown(U, fits);
    assert.equal(U.frames.filter((f) => f.includes(long)).length, 0, 'the long message was sent');
    assert.equal(U.sockets, 1, 'the page reconnected (was it closed with 1009?)');
    assert.equal(await U.page.evaluate(() => document.querySelector('#too-long').hidden), true,
      'the error stayed after editing');
  });

  await check('rate-limit refusals are counted and kept; "Send again" sends them', async () => {
    // One `rooms` request follows the join (debounced); let it settle first. Nine at once
    // against a burst of 5: some refused, and not more in a row than the burst (that closes).
    await waitFor(U.page, 'the all-rooms list did not arrive', () => !!document.querySelector('#directory .dir-item'),
      null, () => document.querySelector('#directory').innerHTML);
    const texts = Array.from({ length: 9 }, (_, i) => `burst ${i + 1}`);
    await U.page.evaluate(async (list) => {
      const input = document.querySelector('#input');
      for (const t of list) {
        input.value = t;
        document.querySelector('#composer').requestSubmit();
      }
    }, texts);
    // Settled: every text is either shown as sent or kept as refused, and some were refused.
    await waitFor(U.page, 'the refusals were not all accounted for', (list) => {
      const sent = new Set([...document.querySelectorAll('#messages .msg .text')].map((e) => e.textContent));
      const kept = [...document.querySelectorAll('#refused-list .refused-item')].map((e) => e.textContent);
      return kept.length > 0 && list.every((t) => sent.has(t) !== kept.includes(t));
    }, texts, () => ({
      notice: document.querySelector('#refused-text').textContent,
      kept: [...document.querySelectorAll('#refused-list li')].map((e) => e.textContent),
    }));
    const state = await U.page.evaluate(() => ({
      notice: document.querySelector('#refused-text').textContent,
      kept: [...document.querySelectorAll('#refused-list .refused-item')].map((e) => e.textContent),
      sent: [...document.querySelectorAll('#messages .msg .text')].map((e) => e.textContent),
    }));
    await shot(U, 'people-refused');
    const refused = texts.filter((t) => !state.sent.includes(t));
    assert.deepEqual(state.kept, refused, 'the kept texts are not exactly the refused ones, in order');
    assert.ok(refused.length >= 2 && refused.length <= 5, `refused ${refused.length} of 9 with a burst of 5`);
    assert.equal(state.notice,
      `${refused.length} messages were not sent (you were sending too fast). They are kept here to send again.`);
    // Send again (enabled once the limit had a moment to refill) until none is left.
    const deadline = Date.now() + 20_000;
    while (await U.page.locator('#refused').isVisible()) {
      assert.ok(Date.now() < deadline, 'refused messages still kept after 20 s of sending again');
      await U.page.locator('#refused-resend:not([disabled])').click();
      await waitFor(U.page, 'sending again did not settle', () => {
        const box = document.querySelector('#refused');
        return box.hidden || !document.querySelector('#refused-resend').disabled;
      }, null, () => document.querySelector('#refused-text').textContent);
    }
    for (const t of refused) await messageShown(U, t);
    assert.equal(U.sockets, 1, 'the connection was closed on the way');
    assert.deepEqual(U.errors, [], 'console or page errors');
  });
}

async function run(bin, staticDir) {
  fs.mkdirSync(SHOTS, { recursive: true });
  tmpDir = makeTmpDir('ringcast-people-');
  browser = await launchChromium(['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
    '--disable-background-networking']);
  const plain = await startServer(bin, staticDir, 'people');
  await peopleAndRooms(plain.url);
  const tight = await startServer(bin, staticDir, 'limits', ['--max-message', '2000', '--rate-limit', '5:5']);
  await limits(tight.url);
}

await main(WHOLE_TEST_TIMEOUT_MS, run);
