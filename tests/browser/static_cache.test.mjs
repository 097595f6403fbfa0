// The chat page in a real browser across reloads (README "Static files and caching",
// "Reloading (SIGHUP)"): the first load gets app.js gzipped, a reload revalidates it and
// gets 304 instead of downloading it again, and after a SIGHUP the changed stylesheet is
// downloaded and applied while the unchanged script is still a 304.
//
//   node tests/browser/static_cache.test.mjs /path/to/ringcast /path/to/static
//
// Serves a temporary copy of the static dir (it edits style.css), with `--threads N` when
// RINGCAST_THREADS is set. Prints `N passed, M failed`; exit 1 if any failed.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { STEP_TIMEOUT_MS, check, launchChromium, main, makeTmpDir, startRingcast,
  threadArgs } from './harness.mjs';

const WHOLE_TEST_TIMEOUT_MS = 120_000;

// A log line containing text, printed after the log had `from` characters.
async function waitLog(srv, text, from) {
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (srv.log.indexOf(text, from) >= 0) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no log line "${text}" within ${STEP_TIMEOUT_MS} ms:\n${srv.log.slice(-2000)}`);
}

// Load (or reload) the page until it is online; returns the responses by path.
async function load(page, how) {
  const seen = new Map();
  const onResponse = (r) => seen.set(new URL(r.url()).pathname, r);
  page.on('response', onResponse);
  try {
    await how();
    await page.waitForFunction(() => document.querySelector('#status')?.dataset.state === 'online',
      null, { timeout: STEP_TIMEOUT_MS });
  } finally {
    page.off('response', onResponse);
  }
  return seen;
}

function must(seen, p) {
  const r = seen.get(p);
  assert.ok(r, `the page did not request ${p} (requested: ${[...seen.keys()].join(', ')})`);
  return r;
}

async function run(bin, staticSrc) {
  const tmp = makeTmpDir('ringcast-static-cache-');
  const staticDir = path.join(tmp, 'static');
  fs.cpSync(staticSrc, staticDir, { recursive: true });
  // all of the log, not its tail: waitLog finds a line by its offset
  const srv = await startRingcast(bin, ['--port', '0', '--static', staticDir, '--no-persist', ...threadArgs()],
    { logKeep: Infinity });
  const browser = await launchChromium();
  try {
    const context = await browser.newContext();
    context.setDefaultTimeout(STEP_TIMEOUT_MS);
    const page = await context.newPage();
    const appJs = fs.readFileSync(path.join(staticSrc, 'app.js'));

    await check('first load: app.js arrives gzipped, whole, and runs', async () => {
      const seen = await load(page, () => page.goto(srv.url, { waitUntil: 'load' }));
      const r = must(seen, '/app.js');
      assert.equal(r.status(), 200);
      const h = await r.allHeaders();
      assert.equal(h['content-encoding'], 'gzip');
      assert.equal(h.vary, 'Accept-Encoding');
      assert.ok(Number(h['content-length']) < appJs.length / 2,
        `gzip copy of ${h['content-length']} bytes for ${appJs.length}`);
      assert.ok(h.etag, 'no ETag');
      assert.deepEqual(await r.body(), appJs, 'the browser decoded other bytes than app.js');
    });

    await check('reload: app.js and style.css revalidate with 304, not downloaded again', async () => {
      const seen = await load(page, () => page.reload({ waitUntil: 'load' }));
      // (the document itself Chromium fetches again without asking: its choice, not ours)
      for (const p of ['/app.js', '/style.css']) {
        const r = must(seen, p);
        // the server answers 304 only to an If-None-Match with the current ETag
        assert.equal(r.status(), 304, p);
      }
    });

    await check('SIGHUP with a changed style.css: downloaded and applied on the next reload, app.js still 304', async () => {
      fs.appendFileSync(path.join(staticDir, 'style.css'), '\nbody { outline: 3px solid rgb(1, 2, 3); }\n');
      const from = srv.log.length;
      srv.child.kill('SIGHUP');
      await waitLog(srv, 'SIGHUP: reloaded the chat page', from);
      // every edge takes the new page within a tick (100 ms); the browser's connection
      // may sit on either edge, so reload until the stylesheet comes back new
      const deadline = Date.now() + STEP_TIMEOUT_MS;
      let seen;
      for (;;) {
        seen = await load(page, () => page.reload({ waitUntil: 'load' }));
        if (must(seen, '/style.css').status() === 200 || Date.now() > deadline) break;
      }
      assert.equal(must(seen, '/style.css').status(), 200, 'the changed style.css was never downloaded');
      assert.equal(must(seen, '/app.js').status(), 304);
      const outline = await page.evaluate(() => getComputedStyle(document.body).outlineColor);
      assert.equal(outline, 'rgb(1, 2, 3)');
      assert.equal(srv.exited, false, 'the server exited on SIGHUP');
    });
  } finally {
    await browser.close();
    srv.child.kill('SIGTERM');
    await srv.exit;
    await check('server exits 0 on SIGTERM', async () => assert.equal(srv.exitCode, 0, srv.log.slice(-2000)));
  }
}

await main(WHOLE_TEST_TIMEOUT_MS, run);
