// Reconnecting: after a server restart, after a cut while others keep sending (every room
// resumed, no gap, no duplicate), messages written while disconnected, acknowledgements
// lost on the way, messages lost on the way, and a refused sign-in.

import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  idProblems, jwt, makeClient, nextState, rawSender, recordMessages, restartServer, startProxy,
  startServer, tmpDir, waitFor, within,
} from './helpers.mjs';

const dir = tmpDir();

// Every text `watcher` (a raw client in `room`) is shown, in order.
function watchTexts(watcher, room) {
  const texts = [];
  watcher.onEvent((ev) => { if (ev.type === 'message' && ev.room === room) texts.push(ev.text); });
  return texts;
}

test('the server is killed and restarted on the same port: the client comes back by itself and resumes', async () => {
  const db = path.join(dir, 'restart.db');
  let srv = await startServer({ db });
  const client = await makeClient(srv.url, { room: 'restart' });
  const rec = recordMessages(client);
  try {
    let open = nextState(client, 'open');
    client.connect();
    await open;
    const before = await within(client.send('before the restart'), 'the first ack');
    const port = srv.port;
    const reconnecting = nextState(client, 'reconnecting', (s) => s.code !== null);
    await srv.kill();
    const gone = await reconnecting;
    assert.equal(gone.code, 1006, 'a killed server leaves an abnormal close');
    assert.ok(gone.retryAt > Date.now() - 1000, 'the state tells when the next attempt starts');
    open = nextState(client, 'open', () => true, 30_000);
    srv = await restartServer({ db, port });
    await open;
    const sender = await rawSender(srv.url, 'restart');
    const theirs = await sender.send('after the restart, from another client');
    const mine = await within(client.send('after the restart, mine'), 'the ack after the restart');
    assert.ok(mine.id > theirs.id && theirs.id > before.id, `ids ${before.id}, ${theirs.id}, ${mine.id}`);
    await waitFor('the other client\'s message', () => rec.texts('restart').includes('after the restart, from another client'));
    const ids = rec.byRoom.get('restart').filter((m) => !m.fromHistory).map((m) => m.id);
    assert.deepEqual(idProblems(ids), [], `ids seen: ${ids}`);
    sender.close();
  } finally {
    client.close();
    await srv.stop();
  }
});

test('cut off while another client keeps sending in two rooms: both rooms resume, no gap, no duplicate', async () => {
  const srv = await startServer({ db: path.join(dir, 'gap.db'), args: ['--rate-limit', '0'] });
  const proxy = await startProxy(srv.port);
  const client = await makeClient(proxy.url, { room: 'g1' });
  const rec = recordMessages(client);
  const sender = await rawSender(srv.url, 'g1');
  await sender.join('g2');
  try {
    const open = nextState(client, 'open');
    client.join('g2');
    client.connect();
    await open;
    await waitFor('both rooms live', () => client.isLive('g1') && client.isLive('g2'));
    let sending = true;
    const acked = { g1: [], g2: [] };
    const loop = (async () => {
      for (let i = 0; sending; i += 1) {
        const room = i % 2 ? 'g2' : 'g1';
        acked[room].push((await sender.send(`n${i}`, room)).id);
      }
    })();
    await waitFor('a few messages before the cut', () => rec.all.length >= 10);
    proxy.hold = true;
    const reconnecting = nextState(client, 'reconnecting', (s) => s.code !== null);
    proxy.cutAll();
    await reconnecting;
    const atCut = acked.g1.length + acked.g2.length;
    await waitFor('20 messages sent while the client is away', () => acked.g1.length + acked.g2.length >= atCut + 20);
    const missed = rec.all.length;
    proxy.hold = false;
    await nextState(client, 'open', () => true, 20_000);
    await waitFor('10 more messages after the resume', () => rec.all.length >= missed + 10);
    sending = false;
    await loop;
    for (const room of ['g1', 'g2']) {
      const last = acked[room][acked[room].length - 1];
      await waitFor(`the last message of ${room}`, () => client.lastId(room) === last);
      const ids = rec.byRoom.get(room).filter((m) => !m.fromHistory || m.id >= acked[room][0]).map((m) => m.id);
      const from = ids.indexOf(acked[room][0]);
      const seen = ids.slice(from);
      assert.deepEqual(idProblems(seen), [], `${room}: ids seen ${seen}`);
      assert.deepEqual(seen, acked[room], `${room}: every acknowledged id, once, in order`);
    }
  } finally {
    client.close();
    sender.close();
    await proxy.close();
    await srv.stop();
  }
});

test('messages written while disconnected wait and go out once, in order, after the resume', async () => {
  const srv = await startServer({ db: path.join(dir, 'queue.db') });
  const proxy = await startProxy(srv.port);
  const client = await makeClient(proxy.url, { room: 'queue' });
  const watcher = await rawSender(srv.url, 'queue');
  const seen = watchTexts(watcher, 'queue');
  try {
    const open = nextState(client, 'open');
    client.connect();
    await open;
    proxy.hold = true;
    const reconnecting = nextState(client, 'reconnecting', (s) => s.code !== null);
    proxy.cutAll();
    await reconnecting;
    const q = ['queued 1', 'queued 2', 'queued 3'].map((t) => client.send(t));
    proxy.hold = false;
    const acks = await within(Promise.all(q), 'the queued messages acknowledged', 20_000);
    assert.deepEqual(acks.map((a) => a.text), ['queued 1', 'queued 2', 'queued 3']);
    assert.deepEqual(idProblems(acks.map((a) => a.id)), []);
    // Anything sent twice would arrive before this marker.
    await within(client.send('marker'), 'the marker');
    await waitFor('the watcher seeing the marker', () => seen.includes('marker'));
    assert.deepEqual(seen, ['queued 1', 'queued 2', 'queued 3', 'marker']);
  } finally {
    client.close();
    watcher.close();
    await proxy.close();
    await srv.stop();
  }
});

test('an acknowledgement lost with the connection: the resume finds the message, it is not sent again', async () => {
  const srv = await startServer({ db: path.join(dir, 'lostack.db') });
  const proxy = await startProxy(srv.port);
  const client = await makeClient(proxy.url, { room: 'lostack' });
  const watcher = await rawSender(srv.url, 'lostack');
  const seen = watchTexts(watcher, 'lostack');
  try {
    const open = nextState(client, 'open');
    client.connect();
    await open;
    await waitFor('the room live (its history received)', () => client.isLive('lostack'));
    proxy.mute = true; // the server's answers no longer reach the client
    const pending = client.send('its ack is lost');
    pending.catch(() => {}); // a failure below is reported, not this promise's end in close()
    await waitFor('the message stored and shown to others', () => seen.includes('its ack is lost'));
    const reconnecting = nextState(client, 'reconnecting', (s) => s.code !== null);
    proxy.cutAll();
    await reconnecting;
    proxy.mute = false;
    const ack = await within(pending, 'the promise settled by the replay', 20_000);
    assert.equal(ack.text, 'its ack is lost');
    assert.equal(ack.cid, undefined, 'settled by the replayed copy (history carries no cid)');
    await within(client.send('marker'), 'the marker');
    await waitFor('the watcher seeing the marker', () => seen.includes('marker'));
    assert.deepEqual(seen, ['its ack is lost', 'marker'], 'sent once');
  } finally {
    client.close();
    watcher.close();
    await proxy.close();
    await srv.stop();
  }
});

test('a message lost on the way to the server: after the resume it goes again, with its cid, once', async () => {
  const srv = await startServer({ db: path.join(dir, 'lostmsg.db') });
  const proxy = await startProxy(srv.port);
  const client = await makeClient(proxy.url, { room: 'lostmsg' });
  const watcher = await rawSender(srv.url, 'lostmsg');
  const seen = watchTexts(watcher, 'lostmsg');
  try {
    const open = nextState(client, 'open');
    client.connect();
    await open;
    await waitFor('the room live (its history received)', () => client.isLive('lostmsg'));
    // What the client sends no longer reaches the server; a message sent after it through
    // another client shows the server is up and would have shown ours by then.
    proxy.deaf = true;
    const pending = client.send('lost on the way');
    pending.catch(() => {}); // a failure below is reported, not this promise's end in close()
    await watcher.send('the server is up');
    await waitFor('the watcher seeing its own message', () => seen.includes('the server is up'));
    assert.deepEqual(seen, ['the server is up']);
    const reconnecting = nextState(client, 'reconnecting', (s) => s.code !== null);
    proxy.cutAll();
    await reconnecting;
    proxy.deaf = false;
    const ack = await within(pending, 'the resent message acknowledged', 20_000);
    assert.equal(ack.text, 'lost on the way');
    assert.equal(typeof ack.cid, 'string', 'settled by its own acknowledgement');
    await within(client.send('marker'), 'the marker');
    await waitFor('the watcher seeing the marker', () => seen.includes('marker'));
    assert.deepEqual(seen, ['the server is up', 'lost on the way', 'marker']);
  } finally {
    client.close();
    watcher.close();
    await proxy.close();
    await srv.stop();
  }
});

test('a refused sign-in (4001) ends in state closed with no retry; a token from refresh() gets in', async () => {
  const secret = 'a-test-secret-that-is-at-least-32-bytes-long';
  const srv = await startServer({ args: ['--jwt-secret', secret] });
  const proxy = await startProxy(srv.port);
  const client = await makeClient(proxy.url, { room: 'signin' });
  try {
    const closed = nextState(client, 'closed');
    client.connect();
    const ev = await closed;
    assert.equal(ev.code, 4001);
    assert.equal(ev.reason, 'token missing');
    // The first retry would have come within 650 ms (500 ms + 30 %).
    await sleep(1500);
    assert.equal(proxy.upgrades, 1, 'the client tried again with the same (missing) token');
    assert.equal(client.state, 'closed');
    const open = nextState(client, 'open');
    client.refresh(jwt(secret, { sub: 'u42', name: 'Alice', exp: Math.floor(Date.now() / 1000) + 600 }));
    await open;
    assert.equal(client.id, 'u42');
    const ack = await within(client.send('signed in'), 'the ack');
    assert.equal(ack.name, 'Alice');
  } finally {
    client.close();
    await proxy.close();
    await srv.stop();
  }
});
