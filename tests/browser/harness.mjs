// What every browser test needs and none of them tests: child processes (the ringcast
// server, and redis/haproxy for the cluster test) with their output kept for error messages,
// Debian's Chromium through playwright-core, one temporary directory, a tiny TAP-like runner
// (`ok - ...` / `FAIL - ...`, then `N passed, M failed`) and polling with deadlines.
//
// A test file keeps its own page helpers and checks, and ends with
//   await main(WHOLE_TEST_TIMEOUT_MS, (bin, staticDir) => run(bin, staticDir));
// which is what tests/meson.build runs as `node tests/browser/<file> <ringcast> <static dir>`.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

// One step's deadline: generous for a loaded CI machine, short enough to fail a hung step.
export const STEP_TIMEOUT_MS = 10_000;
// Debian's Chromium: playwright-core brings no browser of its own.
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
// Screenshots are kept after the run so a person can look at what the page showed.
export const SHOTS = process.env.BROWSER_SHOTS_DIR || '/tmp/browser-shots';
// Headless, and nothing of Chromium's own talking to the network behind the test's back.
export const QUIET_CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
  '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const LOG_KEEP = 8000; // characters of a child's output kept for error messages

const results = { passed: 0, failed: 0 };
const procs = new Set(); // every child still running: cleanup() and exit stop them
let browser = null;
let tmpDir = null;

process.on('exit', () => {
  for (const p of procs) { try { p.child.kill('SIGKILL'); } catch { /* gone */ } }
  if (tmpDir) { try { fs.rmSync(tmpDir, { recursive: true, force: true }); } catch { /* gone */ } }
});

/* ------------------------------------------------------------------ */
/* runner                                                              */
/* ------------------------------------------------------------------ */

// Runs one named check and reports it; it never throws, so one failure does not hide the rest.
export async function check(name, fn) {
  try {
    await fn();
    results.passed += 1;
    console.log(`ok - ${name}`);
  } catch (err) {
    results.failed += 1;
    const msg = (err && err.message ? err.message : String(err)).split('\n').slice(0, 14).join('\n    ');
    console.log(`FAIL - ${name}\n    ${msg}`);
  }
}

// A failure outside any check (set-up, timeout) must still fail the run.
export function fatal(msg) {
  console.error(`FATAL: ${msg}`);
  results.failed += 1;
}

// Thrown from a waitFor() condition to give up at once (a process died: waiting is pointless).
export class Fatal extends Error {}

// Polls fn() until it returns something truthy, for states nothing announces (a port, a log line).
export async function waitFor(what, fn, timeoutMs = STEP_TIMEOUT_MS, intervalMs = 50) {
  const deadline = Date.now() + timeoutMs;
  let lastErr = null;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      if (err instanceof Fatal) throw err;
      lastErr = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`${what}: not within ${timeoutMs} ms${lastErr ? ` (last error: ${lastErr.message})` : ''}`);
    }
    await sleep(intervalMs);
  }
}

// The children still running, so a failed run can print what each of them logged.
export function running() {
  return [...procs];
}

// Closes the browser, stops every child and removes the temporary directory; safe to call twice.
export async function cleanup() {
  if (browser) {
    const b = browser;
    browser = null;
    await Promise.race([b.close().catch(() => {}), sleep(5000)]);
  }
  await Promise.all([...procs].map((p) => stopProcess(p)));
  if (tmpDir) {
    fs.rmSync(tmpDir, { recursive: true, force: true });
    tmpDir = null;
  }
}

// Runs a test file under a whole-test watchdog and always ends with `N passed, M failed`;
// exit 1 if anything failed or nothing passed (meson reads only the exit code).
export async function main(wholeTestMs, run, { onFatal = () => {} } = {}) {
  const [binArg, staticArg] = process.argv.slice(2);
  const finish = (code) => {
    console.log(`${results.passed} passed, ${results.failed} failed`);
    process.exitCode = code;
  };
  if (!binArg || !staticArg) {
    console.error(`usage: node tests/browser/${path.basename(process.argv[1])} /path/to/ringcast /path/to/static`);
    results.failed += 1;
    finish(1);
    return;
  }
  const watchdog = setTimeout(async () => {
    fatal(`whole test timed out after ${wholeTestMs / 1000} s`);
    onFatal();
    await Promise.race([cleanup(), sleep(8000)]);
    finish(1);
    process.exit(1);
  }, wholeTestMs);
  try {
    await run(path.resolve(binArg), path.resolve(staticArg));
  } catch (err) {
    fatal(err && err.stack ? err.stack : String(err));
    onFatal();
  } finally {
    await cleanup();
    clearTimeout(watchdog);
    finish(results.failed > 0 || results.passed === 0 ? 1 : 0);
  }
}

/* ------------------------------------------------------------------ */
/* processes and files                                                 */
/* ------------------------------------------------------------------ */

// A fresh temporary directory (databases, copies of static/), removed by cleanup() and at exit.
export function makeTmpDir(prefix) {
  tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return tmpDir;
}

// --threads N from RINGCAST_THREADS: meson sets 2 so the page is tried across edges and the sequencer.
export function threadArgs() {
  return process.env.RINGCAST_THREADS ? ['--threads', process.env.RINGCAST_THREADS] : [];
}

// Spawns a child whose output (stdout and stderr) is kept in p.log for error messages;
// `logKeep` is how much of it (static_cache.test.mjs needs all of it, to find lines by offset).
export function spawnProcess(label, cmd, args, { logKeep = LOG_KEEP, ...opts } = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  const p = { label, child, log: '', exited: false, exitCode: null, exitSignal: null };
  const keep = (c) => { p.log = (p.log + c.toString()).slice(-logKeep); };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  procs.add(p);
  p.exit = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      Object.assign(p, { exited: true, exitCode: code, exitSignal: signal });
      procs.delete(p);
      resolve();
    });
  });
  child.on('error', (err) => { keep(`spawn failed: ${err.message}\n`); });
  return p;
}

// Resolves true once p has exited, false after ms: the caller decides whether that is a failure.
export async function waitExit(p, ms) {
  return Promise.race([p.exit.then(() => true), sleep(ms).then(() => false)]);
}

// Sends `signal`, then SIGKILL after graceMs; true if `signal` alone stopped it.
export async function stopProcess(p, signal = 'SIGTERM', graceMs = 3000) {
  if (!p || p.exited) return true;
  p.child.kill(signal);
  const ok = await waitExit(p, graceMs);
  if (!ok) {
    p.child.kill('SIGKILL');
    await waitExit(p, 2000);
  }
  return ok;
}

// Starts ringcast and resolves once it prints "listening on URL": with --port 0 that line
// is the only way to learn the port. Rejects if it exits first or is silent for 10 s.
export function startRingcast(bin, args, { label = 'ringcast', ...opts } = {}) {
  const srv = spawnProcess(label, bin, args, opts);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`server did not print "listening on http://HOST:PORT/" within 10 s; output:\n${srv.log}`));
    }, 10_000);
    const onData = () => {
      const m = /listening on (https?):\/\/(\S+?):(\d+)\//.exec(srv.log);
      if (m && !srv.port) {
        clearTimeout(timer);
        srv.host = m[2];
        srv.port = Number(m[3]);
        srv.url = `${m[1]}://${srv.host}:${srv.port}/`;
        resolve(srv);
      }
    };
    srv.child.stdout.on('data', onData);
    srv.child.stderr.on('data', onData);
    srv.child.on('error', (err) => { clearTimeout(timer); reject(err); });
    srv.exit.then(() => {
      clearTimeout(timer);
      if (!srv.port) {
        reject(new Error(`server exited (code ${srv.exitCode}, signal ${srv.exitSignal}) before listening; output:\n${srv.log}`));
      }
    });
  });
}

// Launches Chromium once per test file; cleanup() closes it. Missing pieces are named with the fix.
export async function launchChromium(args = QUIET_CHROMIUM_ARGS) {
  let playwright;
  try {
    playwright = await import('playwright-core');
  } catch (err) {
    throw new Error(`playwright-core is not installed (${err.code || err.message}). Run: npm ci --prefix tests/browser`);
  }
  if (!fs.existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM} (apt-get install chromium)`);
  browser = await playwright.chromium.launch({ executablePath: CHROMIUM, args });
  return browser;
}
