"""Helpers for chat tests that use the independent `websockets` library client."""

import asyncio
import json
import time

import websockets


def run(coro, timeout=30):
    """Run a coroutine with an overall deadline."""
    async def guarded():
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(guarded())


async def connect(server, path="", **kw):
    """Open a websockets client. Unbounded receive queue (so a test that reads
    later never turns the client into a slow consumer), no client pings."""
    opts = dict(max_queue=None, max_size=None, ping_interval=None, open_timeout=10, close_timeout=2)
    opts.update(kw)
    return await websockets.connect(server.ws_url + path, **opts)


async def recv_json(ws, timeout=5.0):
    raw = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(raw, str), "expected a text frame, got %r" % (raw[:100],)
    return json.loads(raw)


async def recv_type(ws, type_, timeout=5.0, pred=None, skipped=None):
    """Next message of the given type; others are skipped (and appended to
    `skipped` when given)."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise asyncio.TimeoutError("no %r message within %.1fs (skipped %r)"
                                       % (type_, timeout, (skipped or [])[-5:]))
        try:
            m = await recv_json(ws, remaining)
        except asyncio.TimeoutError:
            raise asyncio.TimeoutError("no %r message within %.1fs" % (type_, timeout))
        if m.get("type") == type_ and (pred is None or pred(m)):
            return m
        if skipped is not None:
            skipped.append(m)


async def join(server, path="", **kw):
    """Connect and consume the connect sequence (welcome, presence, own join).
    Returns (ws, welcome)."""
    ws = await connect(server, path, **kw)
    w = await recv_type(ws, "welcome")
    await recv_type(ws, "join", pred=lambda m: m.get("user", {}).get("id") == w["id"])
    return ws, w


async def messages(ws, n, timeout=10.0, pred=None, skipped=None):
    """Collect the next n chat `message` events (other types skipped, and
    appended to `skipped` when given)."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("got only %d of %d messages within %.1fs" % (len(out), n, timeout))
        m = await recv_type(ws, "message", remaining, skipped=skipped)
        if pred is None or pred(m):
            out.append(m)
    return out


async def barrier(ws, timeout=5.0):
    """Send a unique plain-text message and return every event received before
    its own copy comes back (the server orders everything in the room, so
    anything sent to us earlier has arrived by then)."""
    tag = "barrier-%f" % time.monotonic()
    await ws.send(tag)
    before = []
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("barrier message never came back")
        m = await recv_json(ws, remaining)
        if m.get("type") == "message" and m.get("text") == tag:
            return before
        before.append(m)


async def close_all(*wss):
    await asyncio.gather(*(w.close() for w in wss), return_exceptions=True)
