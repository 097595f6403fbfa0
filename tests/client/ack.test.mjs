// send()'s promise: settled by the server's acknowledgement (the own copy with our cid)
// or by its error; the library's own refusals; events and states as documented.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  RingcastError, backoffDelay, makeClient, nextState, rawSender, startServer, within,
} from './helpers.mjs';

let srv;
before(async () => { srv = await startServer({ args: ['--rate-limit', '5:5'] }); });
after(async () => { await srv?.stop(); });

test('backoff: 500 ms doubling to 15 s, each within +/- 30 %', () => {
  assert.equal(backoffDelay(0, () => 0.5), 500);
  assert.equal(backoffDelay(3, () => 0.5), 4000);
  assert.equal(backoffDelay(10, () => 0.5), 15000);
  assert.equal(backoffDelay(0, () => 0), 350);
  assert.equal(backoffDelay(0, () => 0.999999), 650);
});

test('send resolves with the server copy: its id, our cid; another client sees it without the cid', async () => {
  const other = await rawSender(srv.url, 'acks');
  const seen = [];
  const client = await makeClient(srv.url, { room: 'acks' });
  const states = [];
  client.on('state', (s) => states.push(`${s.state}/${s.transport}`));
  try {
    const open = nextState(client, 'open');
    client.connect();
    await open;
    assert.deepEqual(states, ['connecting/websocket', 'open/websocket']);
    assert.equal(client.transport, 'websocket');
    assert.match(client.id, /^\d+$/);
    client.on('message', (m) => seen.push(m));
    const text = `hello ${Date.now()}`;
    const ack = await within(client.send(text), 'the acknowledgement');
    assert.equal(ack.type, 'message');
    assert.equal(ack.text, text);
    assert.equal(ack.room, 'acks');
    assert.equal(ack.from, client.id);
    assert.ok(Number.isInteger(ack.id) && ack.id > 0, `id ${ack.id}`);
    assert.equal(typeof ack.cid, 'string');
    assert.equal(client.lastId('acks'), ack.id);
    assert.deepEqual(seen.map((m) => m.id), [ack.id], 'the message event was delivered once too');
    // The other member's copy has no cid (and the raw sender's own ack proves it is live).
    const theirs = await other.send('from the other one');
    assert.equal(theirs.cid, 'raw1');
    const mine = await within(new Promise((resolve) => {
      const fn = (m) => { if (m.text === 'from the other one') { client.off('message', fn); resolve(m); } };
      if (seen.some((m) => m.text === 'from the other one')) resolve(seen.find((m) => m.text === 'from the other one'));
      else client.on('message', fn);
    }), 'the other member\'s message');
    assert.equal(mine.cid, undefined, 'a cid leaked to another member');
  } finally {
    client.close();
    other.close();
  }
});

test('a refused send rejects with the server\'s code; the library refuses empty, too large, unknown rooms', async () => {
  const client = await makeClient(srv.url, { room: 'refusals' });
  try {
    const open = nextState(client, 'open');
    client.connect();
    await open;
    await assert.rejects(within(client.send('bell \u0007 in text'), 'the refusal'),
      (err) => err instanceof RingcastError && err.code === 'bad_text' && err.event?.type === 'error'
        && typeof err.event.cid === 'string');
    await assert.rejects(client.send(''), (err) => err.code === 'empty');
    await assert.rejects(client.send('x', { room: 'elsewhere' }), (err) => err.code === 'not_in_room');
    assert.equal(client.maxMessage, 65536);
    await assert.rejects(client.send('x'.repeat(70000)), (err) => err.code === 'too_large');
    // Still usable afterwards.
    const ack = await within(client.send('after the refusals'), 'a later acknowledgement');
    assert.equal(ack.text, 'after the refusals');
  } finally {
    client.close();
  }
});

test('a burst over the flood limit: each send settles exactly, the refused ones with rate_limited', async () => {
  const client = await makeClient(srv.url, { room: 'burst' });
  try {
    const open = nextState(client, 'open');
    client.connect();
    await open;
    const texts = Array.from({ length: 9 }, (_, i) => `burst ${i}`);
    const results = await within(Promise.allSettled(texts.map((t) => client.send(t))), 'every send settling');
    const refused = results.filter((r) => r.status === 'rejected');
    const taken = results.filter((r) => r.status === 'fulfilled');
    assert.ok(refused.length >= 1, 'a burst of 9 against 5:5 refused none');
    assert.ok(refused.every((r) => r.reason.code === 'rate_limited'), JSON.stringify(refused.map((r) => r.reason.code)));
    results.forEach((r, i) => { if (r.status === 'fulfilled') assert.equal(r.value.text, texts[i]); });
    const ids = taken.map((r) => r.value.id);
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b), 'acks in sending order');
  } finally {
    client.close();
  }
});

test('close() rejects what waits with code closed, and ends in state closed', async () => {
  const client = await makeClient(srv.url, { room: 'closing' });
  const waiting = client.send('never connected'); // queued: the client has not connected
  const closed = nextState(client, 'closed');
  client.close();
  await closed;
  await assert.rejects(waiting, (err) => err.code === 'closed');
});
