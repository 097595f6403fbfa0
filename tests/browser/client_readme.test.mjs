// The README's "Client library" example, exactly as the README has it, in a page served by
// ringcast under its Content-Security-Policy: it connects, its message is stored (the
// promise resolves with the id another client sees), and it shows what arrives.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  check, launchChromium, main, makeTmpDir, startRingcast, threadArgs, waitFor,
} from './harness.mjs';

const WHOLE_TEST_TIMEOUT_MS = 90_000;
const README = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'README.md');

// The first ```js block of the README's "## Client library" section.
function readmeExample() {
  const text = fs.readFileSync(README, 'utf8');
  const section = /\n## Client library\n([\s\S]*?)\n## /.exec(text);
  assert.ok(section, 'README.md has no "## Client library" section');
  const block = /```js\n([\s\S]*?)```/.exec(section[1]);
  assert.ok(block, 'the "Client library" section has no ```js block');
  return block[1];
}

async function run(bin, staticDir) {
  const tmp = makeTmpDir('ringcast-readme-');
  const example = readmeExample();
  // The page's own files, and the example beside them as the README says.
  const served = path.join(tmp, 'static');
  fs.cpSync(staticDir, served, { recursive: true });
  fs.writeFileSync(path.join(served, 'hello.js'), example);
  fs.writeFileSync(path.join(served, 'hello.html'),
    '<!doctype html>\n<meta charset="utf-8">\n<title>hello</title>\n<script type="module" src="/hello.js"></script>\n');
  const srv = await startRingcast(bin, ['--port', '0', '--static', served, '--no-persist', ...threadArgs()]);
  const { WebSocket } = await import('ws');
  const browser = await launchChromium();

  await check('the README example connects, sends, and logs the stored id and the message', async () => {
    const lines = example.trim().split('\n');
    assert.ok(lines.length <= 12, `the example is ${lines.length} lines`);
    // Another member of the room sees the message the example sends.
    const other = new WebSocket(`ws://127.0.0.1:${srv.port}/ws?room=lobby`);
    const seen = [];
    other.on('message', (d) => {
      const ev = JSON.parse(d.toString());
      if (ev.type === 'message') seen.push(ev);
    });
    await waitFor('the other member connected', () => other.readyState === WebSocket.OPEN);
    const context = await browser.newContext();
    const page = await context.newPage();
    const consoleLines = [];
    const problems = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(m.text());
      else consoleLines.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(e.message));
    const res = await page.goto(`${srv.url}hello.html`);
    assert.ok(res.headers()['content-security-policy'], 'the page was served without its CSP');
    const theirs = await waitFor('the other member seeing the example\'s message',
      () => seen.find((m) => m.text === 'hello from ringcast.js'));
    await waitFor(`"stored as message ${theirs.id}" on the console`,
      () => consoleLines.includes(`stored as message ${theirs.id}`));
    assert.ok(consoleLines.includes('connection: open (websocket)'), JSON.stringify(consoleLines));
    assert.ok(consoleLines.includes(`#lobby ${theirs.name}: hello from ringcast.js`), JSON.stringify(consoleLines));
    assert.deepEqual(problems, []);
    other.close();
    await context.close();
  });
}

await main(WHOLE_TEST_TIMEOUT_MS, run);
