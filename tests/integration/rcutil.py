"""Small shared helpers for the protocol-feature tests (rooms, names, history,
resume, durability, sign-in, flood control, origin, TLS, exhaustion).

Everything here talks to the server through rawws (plain sockets, every read
with a deadline) or plain sockets; nothing can block forever.
"""

import base64
import errno
import hashlib
import hmac
import json
import os
import time

from rawws import RawWS, HTTPConn, simple_request


# ---------------------------------------------------------------- raw WebSocket helpers


def drain(ws, quiet=0.3, limit=100000):
    """Every JSON event until the connection has been quiet for `quiet` s."""
    out = []
    while len(out) < limit:
        try:
            out.append(ws.recv_json(quiet))
        except TimeoutError:
            return out
    return out


def connect_seq(ws, timeout=5.0):
    """Read a fresh connection's connect sequence: welcome, presence, (own join
    unless the room is big), then history or replay+resumed. Returns a dict
    welcome/presence/join/history/replay/resumed/events (all in order)."""
    deadline = time.monotonic() + timeout
    seq = {"welcome": None, "presence": None, "join": None, "history": None,
           "replay": [], "resumed": None, "events": []}
    while True:
        m = ws.recv_json(max(0.01, deadline - time.monotonic()))
        seq["events"].append(m)
        t = m.get("type")
        if t in ("welcome", "presence", "history", "resumed") and seq[t] is None:
            seq[t] = m
        elif t == "join" and seq["welcome"] and m.get("user", {}).get("id") == seq["welcome"]["id"]:
            seq["join"] = m
        elif t == "message":
            seq["replay"].append(m)
        if t in ("history", "resumed"):
            return seq


def join_seq(ws, room, timeout=5.0, **extra):
    """Send a `join` command and read presence, (own join), history/replay+resumed."""
    cmd = {"type": "join", "room": room}
    cmd.update(extra)
    ws.send_json(cmd)
    deadline = time.monotonic() + timeout
    seq = {"presence": None, "join": None, "history": None, "replay": [], "resumed": None,
           "events": []}
    while True:
        m = ws.recv_json(max(0.01, deadline - time.monotonic()))
        seq["events"].append(m)
        t = m.get("type")
        if t == "error":
            raise AssertionError("join %r answered with %r" % (cmd, m))
        if m.get("room") != room:
            continue
        if t in ("presence", "history", "resumed", "join") and seq[t] is None:
            seq[t] = m
        elif t == "message":
            seq["replay"].append(m)
        if t in ("history", "resumed"):
            return seq


def raw_barrier(ws, timeout=5.0, room=None):
    """Send a unique message (to `room`, default the current one) and return
    every event received before its own copy came back. The server orders
    everything for one connection, so anything meant for us earlier has
    arrived by then."""
    tag = "barrier-%s" % os.urandom(6).hex()
    if room is None:
        ws.send_text(tag)
    else:
        ws.send_json({"type": "message", "room": room, "text": tag})
    before = []
    deadline = time.monotonic() + timeout
    while True:
        m = ws.recv_json(max(0.01, deadline - time.monotonic()))
        if m.get("type") == "message" and m.get("text") == tag:
            return before
        before.append(m)


def recv_error(ws, timeout=5.0):
    return ws.recv_type("error", timeout)


def send_and_ack(ws, text, timeout=5.0, room=None):
    """Send a chat message and wait for our own copy (the acknowledgement)."""
    if room is None:
        ws.send_text(text)
    else:
        ws.send_json({"type": "message", "room": room, "text": text})
    return ws.recv_type(("message", "error"), timeout,
                        pred=lambda m: m["type"] == "error" or m.get("text") == text)


def fetch_history(ws, room, before=None, limit=None, timeout=5.0):
    cmd = {"type": "history", "room": room}
    if before is not None:
        cmd["before"] = before
    if limit is not None:
        cmd["limit"] = limit
    ws.send_json(cmd)
    m = ws.recv_type(("history", "error"), timeout,
                     pred=lambda m: m["type"] == "error" or m.get("room") == room)
    if m["type"] == "error":
        raise AssertionError("history %r answered with %r" % (cmd, m))
    return m


def page_all_history(ws, room, limit=200, timeout=5.0, max_pages=1000):
    """Page back with `history` until more=false; returns every message, oldest
    first, and the list of pages (newest first)."""
    pages = []
    before = None
    for _ in range(max_pages):
        h = fetch_history(ws, room, before=before, limit=limit, timeout=timeout)
        pages.append(h)
        if not h["messages"]:
            break
        before = h["messages"][0]["id"]
        if not h["more"]:
            break
    else:
        raise AssertionError("history paging did not end within %d pages" % max_pages)
    out = []
    for h in reversed(pages):
        out += h["messages"]
    return out, pages


def connect_ws(server, path="/", **kw):
    return RawWS.connect(server.host, server.port, path, **kw)


# ---------------------------------------------------------------- HTTP helpers


def http_get(server, path, headers=None, timeout=5.0):
    with HTTPConn(server.host, server.port, timeout) as c:
        c.send(simple_request("GET", path, extra=headers or []))
        return c.response(timeout=timeout)


def metrics(server):
    """GET /metrics as {name_with_labels: float}."""
    r = http_get(server, "/metrics")
    assert r.status == 200, r
    out = {}
    for line in r.body.decode("utf-8", "replace").splitlines():
        if not line or line.startswith("#"):
            continue
        k, _, v = line.rpartition(" ")
        try:
            out[k] = float(v)
        except ValueError:
            pass
    return out


def poll_metrics(server, done, timeout=5.0):
    """GET /metrics until done(metrics) holds or the deadline passes; return
    the last metrics. Each edge publishes its counters every tick (100 ms),
    so a counter bumped on another edge shows up within a tick, not at once;
    a request turned away (503: the previous one's slot is still being
    released) is asked again."""
    deadline = time.monotonic() + timeout
    last = {}
    while True:
        try:
            last = metrics(server)
            if done(last):
                return last
        except AssertionError:
            pass
        if time.monotonic() > deadline:
            return last
        time.sleep(0.02)


def wait_metric_at_least(server, name, minimum, timeout=5.0):
    """Poll /metrics until name is at least minimum; return the last value."""
    return poll_metrics(server, lambda m: m.get(name, 0) >= minimum, timeout).get(name, 0)


def wait_metric(server, name, expected, timeout=5.0):
    """Poll /metrics until name equals expected; return the last value."""
    return poll_metrics(server, lambda m: m.get(name) == expected, timeout).get(name)


def fill(path):
    """Fill the filesystem holding `path` (conftest's tiny_fs) with a file;
    returns its name (and its name + "2" holds the small remainders)."""
    filler = os.path.join(path, "filler")
    chunk = b"\0" * 4096
    with open(filler, "wb", buffering=0) as f:
        while True:
            try:
                f.write(chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
                break
    # small remainders too
    with open(filler + "2", "wb", buffering=0) as f:
        while True:
            try:
                f.write(b"\0" * 512)
            except OSError:
                break
    return filler


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


# ---------------------------------------------------------------- JWT


def b64url(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def make_jwt(secret, claims, header=None, sign=True, signature=None):
    """HS256 JWT from dicts. `header` overrides the default header; `sign=False`
    leaves the signature empty; `signature` forces a given one."""
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    h = header if header is not None else {"alg": "HS256", "typ": "JWT"}
    signing_input = b64url(json.dumps(h, separators=(",", ":"))) + "." + \
        b64url(json.dumps(claims, separators=(",", ":")))
    if signature is not None:
        sig = signature
    elif sign:
        sig = b64url(hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest())
    else:
        sig = ""
    return signing_input + "." + sig


def upgrade(server, path="/", headers=None, timeout=5.0):
    """Send one upgrade request on a fresh connection; returns the Response
    (the connection is closed afterwards)."""
    from rawws import upgrade_request
    with HTTPConn(server.host, server.port, timeout) as c:
        c.send(upgrade_request(server.host, server.port, path, headers=headers))
        return c.response(timeout=timeout)


def send_burst(ws, texts, timeout=20.0, room=None):
    """Send every text back to back, then collect our own copies (the acks)
    in order. Errors fail the call."""
    for t in texts:
        if room is None:
            ws.send_text(t)
        else:
            ws.send_json({"type": "message", "room": room, "text": t})
    deadline = time.monotonic() + timeout
    want = set(texts)
    acks = []
    while len(acks) < len(texts):
        m = ws.recv_type(("message", "error"), max(0.01, deadline - time.monotonic()))
        if m["type"] == "error":
            raise AssertionError("error while sending a burst: %r" % m)
        if m.get("text") in want:
            acks.append(m)
    return acks


def run_briefly(*args, timeout=10):
    """Run the server binary with `args` in a temp dir, expecting it to exit by
    itself (a start-up refusal). Returns the CompletedProcess."""
    import shutil
    import subprocess
    import tempfile
    from conftest import STATIC_DIR
    d = tempfile.mkdtemp(prefix="ringcast-it-brief-")
    try:
        return subprocess.run([os.environ["RINGCAST_BIN"], "--port", "0", "--static", str(STATIC_DIR)]
                              + [str(a) for a in args], cwd=d, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    finally:
        shutil.rmtree(d, ignore_errors=True)
