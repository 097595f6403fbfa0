// Server-Sent Events: a proxy in front of the server refuses WebSocket upgrades (403) and
// passes everything else, as some corporate proxies do. The client falls back to SSE
// (/sse + POST /send), chats both ways, resumes after a restart, hears a refused sign-in,
// and returns to WebSocket once upgrades pass again, losing and doubling nothing.

import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import {
  idProblems, makeClient, nextState, rawSender, recordMessages, restartServer, startProxy,
  startServer, tmpDir, waitFor, within,
} from './helpers.mjs';

const dir = tmpDir();

test('upgrades refused: after 3 failed WebSocket attempts the client is on SSE, and chats both ways', async () => {
  const srv = await startServer({ db: path.join(dir, 'fallback.db') });
  const proxy = await startProxy(srv.port);
  proxy.blockUpgrades = true;
  const client = await makeClient(proxy.url, { room: 'sse1' });
  const rec = recordMessages(client);
  const other = await rawSender(srv.url, 'sse1');
  await other.join('sse2');
  try {
    const open = nextState(client, 'open', () => true, 20_000);
    client.connect();
    const ev = await open;
    assert.equal(ev.transport, 'sse');
    assert.equal(client.transport, 'sse');
    assert.equal(proxy.refused, 3, 'WebSocket attempts refused before the fallback');
    assert.ok(proxy.sse >= 1);
    // Theirs reaches us over the stream; ours goes by POST and is acknowledged on the stream.
    const theirs = await other.send('to the SSE client');
    await waitFor('the other member\'s message on the stream', () => rec.ids('sse1').includes(theirs.id));
    const ack = await within(client.send('from the SSE client'), 'the ack over SSE');
    assert.equal(ack.id, theirs.id + 1);
    assert.equal(typeof ack.cid, 'string');
    // A refusal answered at once by POST /send (400): the promise rejects with its code.
    await assert.rejects(within(client.send('bell \u0007'), 'the refusal'), (err) => err.code === 'bad_text');
    // Other rooms: joined by POST, their events on the same stream.
    client.join('sse2');
    await waitFor('sse2 live', () => client.isLive('sse2'));
    const there = await other.send('in the second room', 'sse2');
    await waitFor('the second room\'s message', () => rec.ids('sse2').includes(there.id));
    const ack2 = await within(client.send('mine in sse2', { room: 'sse2' }), 'the ack in sse2');
    assert.equal(ack2.room, 'sse2');
    assert.deepEqual(idProblems(rec.byRoom.get('sse1').filter((m) => !m.fromHistory).map((m) => m.id)), []);
  } finally {
    client.close();
    other.close();
    await proxy.close();
    await srv.stop();
  }
});

test('on SSE, the server is killed and restarted: the stream resumes from the last id, no gap, no duplicate', async () => {
  const db = path.join(dir, 'sserestart.db');
  let srv = await startServer({ db });
  const proxy = await startProxy(srv.port);
  proxy.blockUpgrades = true;
  const client = await makeClient(proxy.url, { room: 'ssr', fallbackAfter: 1 });
  const rec = recordMessages(client);
  try {
    let open = nextState(client, 'open', (s) => s.transport === 'sse', 20_000);
    client.connect();
    await open;
    const sender1 = await rawSender(srv.url, 'ssr');
    const before = [];
    for (let i = 0; i < 5; i += 1) before.push((await sender1.send(`before ${i}`)).id);
    await waitFor('the five before the restart', () => client.lastId('ssr') === before[4]);
    sender1.close();
    const port = srv.port;
    const reconnecting = nextState(client, 'reconnecting', (s) => s.code !== null);
    await srv.kill();
    await reconnecting;
    open = nextState(client, 'open', (s) => s.transport === 'sse', 30_000);
    srv = await restartServer({ db, port });
    // Sent before the client is back: it must come in the resume's replay.
    const sender2 = await rawSender(srv.url, 'ssr');
    const missed = (await sender2.send('while the client was away')).id;
    await open;
    const after = (await sender2.send('after the resume')).id;
    await waitFor('the message after the resume', () => client.lastId('ssr') === after);
    const live = rec.byRoom.get('ssr').filter((m) => !m.fromHistory).map((m) => m.id);
    assert.deepEqual(live, [...before, missed, after], 'each message once, in order');
    sender2.close();
  } finally {
    client.close();
    await proxy.close();
    await srv.stop();
  }
});

test('on SSE, a refused sign-in arrives as a close event (4001): state closed, no retry', async () => {
  const srv = await startServer({ args: ['--jwt-secret', 'a-test-secret-that-is-at-least-32-bytes-long'] });
  const proxy = await startProxy(srv.port);
  proxy.blockUpgrades = true;
  const client = await makeClient(proxy.url, { room: 'ssesignin', fallbackAfter: 1 });
  try {
    const closed = nextState(client, 'closed', () => true, 20_000);
    client.connect();
    const ev = await closed;
    assert.equal(ev.code, 4001);
    assert.equal(ev.reason, 'token missing');
    assert.equal(proxy.sse, 1);
    assert.equal(client.state, 'closed');
  } finally {
    client.close();
    await proxy.close();
    await srv.stop();
  }
});

test('upgrades pass again: the client moves back to WebSocket while messages flow both ways, none lost or doubled', async () => {
  const srv = await startServer({ db: path.join(dir, 'back.db'), args: ['--rate-limit', '0'] });
  const proxy = await startProxy(srv.port);
  proxy.blockUpgrades = true;
  const client = await makeClient(proxy.url, { room: 'back', fallbackAfter: 1, probeMs: 300 });
  const rec = recordMessages(client);
  const other = await rawSender(srv.url, 'back');
  const theirs = [];
  other.onEvent((ev) => { if (ev.type === 'message' && ev.room === 'back') theirs.push(ev); });
  try {
    const onSse = nextState(client, 'open', (s) => s.transport === 'sse', 20_000);
    client.connect();
    await onSse;
    // The probe keeps being refused while upgrades are blocked.
    await waitFor('a refused probe', () => proxy.refused >= 2);
    assert.equal(client.transport, 'sse');
    let sending = true;
    const acked = [];
    const mine = [];
    const loop = (async () => {
      for (let i = 0; sending; i += 1) {
        acked.push((await other.send(`flow ${i}`)).id);
        if (i % 3 === 0) mine.push(client.send(`mine ${i}`));
      }
    })();
    await waitFor('messages flowing over SSE', () => rec.all.length >= 10);
    const onWs = nextState(client, 'open', (s) => s.transport === 'websocket', 20_000);
    proxy.blockUpgrades = false;
    await onWs;
    const at = rec.all.length;
    await waitFor('messages flowing over WebSocket', () => rec.all.length >= at + 10);
    sending = false;
    await loop;
    const acks = await within(Promise.all(mine), 'every message of ours acknowledged');
    const last = Math.max(acked[acked.length - 1], ...acks.map((a) => a.id));
    await waitFor('the last message', () => client.lastId('back') === last);
    const ids = rec.byRoom.get('back').filter((m) => !m.fromHistory).map((m) => m.id);
    assert.deepEqual(idProblems(ids), [], `ids seen: ${ids}`);
    for (const id of [...acked, ...acks.map((a) => a.id)]) assert.ok(ids.includes(id), `id ${id} never delivered`);
    // Each of ours stored once: the other member saw each text exactly once.
    await within(client.send('marker'), 'the marker');
    await waitFor('the marker', () => theirs.some((m) => m.text === 'marker'));
    for (const a of acks) {
      assert.equal(theirs.filter((m) => m.text === a.text).length, 1, `"${a.text}" stored more than once`);
    }
    assert.equal(client.transport, 'websocket');
  } finally {
    client.close();
    other.close();
    await proxy.close();
    await srv.stop();
  }
});
