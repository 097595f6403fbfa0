#!/usr/bin/python3
"""Bounded soak test for ringcast: runs the real server for --duration seconds
under a steady mix of healthy clients, churn, broadcasts and slow consumers,
and fails on crashes, lost/duplicated/reordered messages, RSS growth, fd
growth, or an unclean SIGTERM.

Written for Debian's /usr/bin/python3 (3.11) with python3-websockets 10.4 and
nothing else. See perf/SOAK.md for how to run it and what it checks.

Design notes (why it looks the way it does):
  * One asyncio loop. The thousands of long-lived clients use a minimal
    RFC 6455 client on asyncio.BufferedProtocol (one shared receive buffer, a
    precompiled regex per chat message, no per-message coroutine), because
    Python's CPU is the limit at 5,000 clients. The few senders use the
    websockets library, so two independent client implementations watch the
    same streams.
  * Every long-lived client verifies its stream online (per room: the next id
    must be last+1; a count and a checksum of (id, sender, seq)), so memory
    stays flat; the senders' own copies (acks) are the truth it is compared
    with at the end.
  * The driver measures its own CPU (getrusage) and event-loop lag; when it
    falls behind, symptoms it could have caused (late reads, timeouts, healthy
    clients dropped as slow consumers) are reported as "driver fell behind",
    not as server failures. Gaps, duplicates and reordering are never the
    driver's doing and always fail.
  * Catch-up storms run in a room of their own ("soak-storm") with its own,
    heavier sender, so that a gap of megabytes builds up in seconds without
    multiplying the fan-out to the 5,000 base clients. A catch-up client's
    stream state outlives its connections: after a reconnect with
    ?since=<last id> the same online check must see last+1 next, and
    `resumed` must name the last id of the replay.
"""

import argparse
import asyncio
import base64
import bisect
import ctypes
import fcntl
import gc
import hashlib
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

try:
    import websockets
except ImportError:  # pragma: no cover - reported at start
    websockets = None

REPO = Path(__file__).resolve().parents[1]
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
PRESENCE_EVENTS_MAX = 100      # rooms above this get no join/leave events (docs/protocol.md)
LISTEN_RE = re.compile(r"listening on http://(\[[^\]]+\]|[^:/\s]+):(\d+)/")
SANITIZER_PATTERNS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")
# The server's message envelope, as documented: fields in this order. Frames
# that do not match (other field order, escapes in the name) fall back to json.
MSG_RE = re.compile(rb'\{"type":"message","id":(\d+),"room":"([^"]*)","from":"[^"]*",'
                    rb'"name":"(?:[^"\\]|\\.)*","text":"S(\d+):(\d+):(\d+):')
TEXT_RE = re.compile(r"^S(\d+):(\d+):(\d+):")
MSG_PREFIX = b'{"type":"message"'
ERR_PREFIX = b'{"type":"error"'
K1 = 0x9E3779B97F4A7C15       # checksum weights: sum(id*K1 + sender*K2 + seq)
K2 = 0xC2B2AE3D27D4EB4F
MIB = 1024 * 1024
LAT_BUCKETS = 60001            # 1 ms buckets, the last one is ">= 60 s"

EPOCH = time.monotonic()
SHARED = bytearray(256 * 1024)  # one receive buffer for every BufferedProtocol client


def now_ms():
    return int((time.monotonic() - EPOCH) * 1000)


def mask_frame(opcode, payload=b""):
    """A client frame (FIN set, masked)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0xFE, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0xFF, n)
    key = os.urandom(4)
    if n:
        k = (key * (n // 4 + 1))[:n]
        payload = (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")
    return head + key + payload


def header_len(n):
    return 2 if n < 126 else (4 if n < 65536 else 10)


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def short(obj, n=160):
    s = obj if isinstance(obj, str) else repr(obj)
    return s if len(s) <= n else s[:n] + "..."


def pct(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    i = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * (len(sorted_vals) - 1)))))
    return sorted_vals[i]


def hist_pct(hist, p):
    total = sum(hist)
    if not total:
        return None
    want = p / 100.0 * total
    acc = 0
    for i, c in enumerate(hist):
        acc += c
        if acc >= want:
            return i
    return len(hist) - 1


def hist_max(hist):
    for i in range(len(hist) - 1, -1, -1):
        if hist[i]:
            return i
    return None


def ip_hex(ip, port):
    return "%08X:%04X" % (struct.unpack("<I", socket.inet_aton(ip))[0], port)


class Bad(Exception):
    """A protocol expectation the server broke."""


# ---------------------------------------------------------------------------
# Join sequence checker: welcome, presence, join (rooms of <= 100), history.

class JoinChecker:
    """With since (a resume: ?since= on the URL), the sequence ends after
    presence (and join) with no history: the replay follows as messages."""

    def __init__(self, room, welcome=True, my_id=None, since=None):
        self.room = room
        self.step = 0 if welcome else 1
        self.my_id = my_id
        self.count = None
        self.since = since

    def joined(self):
        if self.since is None:
            self.step = 3
            return None
        self.step = 4
        return self.since

    def feed(self, ev):
        """Returns None while more is expected, else the last history id
        (with since: since)."""
        t = ev.get("type") if isinstance(ev, dict) else None
        if self.step == 0:
            if t != "welcome" or ev.get("room") != self.room or not isinstance(ev.get("id"), str):
                raise Bad("expected welcome for room %s, got %s" % (self.room, short(ev)))
            self.my_id = ev["id"]
            self.step = 1
            return None
        if self.step == 1:
            if t != "presence" or ev.get("room") != self.room:
                raise Bad("expected presence for room %s, got %s" % (self.room, short(ev)))
            count, users = ev.get("count"), ev.get("users")
            if not isinstance(count, int) or count < 1 or not isinstance(users, list):
                raise Bad("bad presence: %s" % short(ev))
            if count <= PRESENCE_EVENTS_MAX and not any(
                    isinstance(u, dict) and u.get("id") == self.my_id for u in users):
                raise Bad("presence (count %d) does not list me (%s)" % (count, self.my_id))
            self.count = count
            if count <= PRESENCE_EVENTS_MAX:
                self.step = 2
                return None
            return self.joined()
        if self.step == 2:
            user = ev.get("user") if t == "join" else None
            if t != "join" or ev.get("room") != self.room or not isinstance(user, dict) \
                    or user.get("id") != self.my_id:
                raise Bad("expected my own join in room %s (count %d <= %d), got %s"
                          % (self.room, self.count, PRESENCE_EVENTS_MAX, short(ev)))
            return self.joined()
        if t != "history" or ev.get("room") != self.room or not isinstance(ev.get("messages"), list):
            raise Bad("expected history for room %s, got %s" % (self.room, short(ev)))
        last = 0
        for m in ev["messages"]:
            if not isinstance(m, dict) or m.get("type") != "message" or m.get("room") != self.room \
                    or not isinstance(m.get("id"), int) or m["id"] <= last:
                raise Bad("history for %s not in id order / malformed at %s" % (self.room, short(m)))
            last = m["id"]
        if len(ev["messages"]) > 50:
            raise Bad("history on join has %d messages (> 50)" % len(ev["messages"]))
        self.step = 4
        return last


# ---------------------------------------------------------------------------
# The lightweight WebSocket client used by base and churn clients.

S_HTTP, S_PRE, S_LIVE, S_CLOSING, S_DEAD = range(5)


class WSClient(asyncio.BufferedProtocol):
    def __init__(self, soak, kind, room, path):
        self.soak = soak
        self.kind = kind
        self.room = room
        self.path = path
        self.transport = None
        self.state = S_HTTP
        self.buf = b""
        self.key = base64.b64encode(os.urandom(16))
        self.ready = soak.loop.create_future()
        self.closed = soak.loop.create_future()
        self.rooms = {}
        self.anomalies = None
        self.n_anomalies = 0
        self.error = None
        self.close_code = None
        self.close_sent = False
        self.closing = False          # we expect the connection to end
        self.checker = JoinChecker(room)
        self.frag = None
        self.measure = kind == "base"
        self.lost_at = None
        self.lost_exc = None

    # -- asyncio --------------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport
        transport.write(b"GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
                        % (self.path.encode(), self.soak.hostport.encode(), self.key))

    def get_buffer(self, sizehint):
        return SHARED

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        self.state = S_DEAD
        self.lost_at = time.monotonic()
        self.lost_exc = exc
        if not self.ready.done():
            if self.error is None:
                self.error = "connection closed before ready (%s, close code %s)" % (
                    exc or "EOF", self.close_code)
            self.ready.set_result(False)
        if not self.closed.done():
            self.closed.set_result(exc)
        if not self.closing:
            self.soak.on_unexpected_close(self)

    def fail(self, reason):
        if self.error is None:
            self.error = reason
        self.state = S_DEAD
        self.closing = True
        if not self.ready.done():
            self.ready.set_result(False)
        if self.transport is not None:
            self.transport.abort()

    # -- receiving ----------------------------------------------------------------
    def buffer_updated(self, n):
        if self.buf:
            data = self.buf + SHARED[:n]
            self.buf = b""
            n = len(data)
        else:
            data = SHARED
        pos = 0
        if self.state == S_HTTP:
            data = bytes(data[:n])
            i = data.find(b"\r\n\r\n")
            if i < 0:
                if n > 16384:
                    self.fail("HTTP response head too long")
                else:
                    self.buf = data
                return
            if not self.handshake_ok(data[:i]):
                return
            self.state = S_PRE
            pos = i + 4
        state = self.state
        cnt = 0
        tnow = None
        lat = self.soak.lat_hist if self.measure else None
        while n - pos >= 2:
            ln = data[pos + 1]
            if ln > 125:
                if ln > 127:
                    self.fail("server sent a masked frame")
                    return
                if ln == 126:
                    if n - pos < 4:
                        break
                    ln = (data[pos + 2] << 8) | data[pos + 3]
                    start = pos + 4
                else:
                    if n - pos < 10:
                        break
                    ln = int.from_bytes(data[pos + 2:pos + 10], "big")
                    start = pos + 10
            else:
                start = pos + 2
            end = start + ln
            if end > n:
                break
            b0 = data[pos]
            pos = end
            if b0 == 0x81 and state == S_LIVE:
                m = MSG_RE.match(data, start, end)
                if m is not None:
                    i, room, s, seq, t = m.groups()
                    if not self.count(room, int(i), int(s), int(seq)):
                        continue
                    cnt += 1
                    if lat is not None:
                        if tnow is None:
                            tnow = now_ms()
                        d = tnow - int(t)
                        lat[d if d < LAT_BUCKETS - 1 else LAT_BUCKETS - 1] += 1
                    continue
            self.frame(b0, bytes(data[start:end]))
            state = self.state
            if state >= S_CLOSING:
                break
        if cnt:
            self.soak.deliveries += cnt
        if pos < n and self.state < S_CLOSING:
            self.buf = bytes(data[pos:n])

    def handshake_ok(self, head):
        lines = head.split(b"\r\n")
        if not lines[0].startswith(b"HTTP/1.1 101"):
            self.fail("handshake refused: %s" % lines[0].decode("latin-1"))
            return False
        want = accept_for(self.key)
        for ln in lines[1:]:
            k, _, v = ln.partition(b":")
            if k.strip().lower() == b"sec-websocket-accept":
                if v.strip() != want:
                    self.fail("bad Sec-WebSocket-Accept")
                    return False
                return True
        self.fail("no Sec-WebSocket-Accept")
        return False

    def frame(self, b0, payload):
        op = b0 & 0x0F
        fin = b0 & 0x80
        if b0 & 0x70:
            self.fail("RSV bits set by the server")
        elif op == 0x9:
            if not self.close_sent:
                self.transport.write(mask_frame(0xA, payload))
        elif op == 0xA:
            pass
        elif op == 0x8:
            self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            if not self.close_sent:
                self.close_sent = True
                self.transport.write(mask_frame(0x8, payload[:2]))
            self.state = S_CLOSING
        elif op == 0x1 or op == 0x0:
            if op == 0x1 and fin and self.frag is None:
                self.text(payload)
            elif op == 0x1 and self.frag is None:
                self.frag = [payload]
            elif op == 0x0 and self.frag is not None:
                self.frag.append(payload)
                if fin:
                    whole = b"".join(self.frag)
                    self.frag = None
                    self.text(whole)
            else:
                self.fail("bad fragmentation from the server (opcode %d)" % op)
        else:
            self.fail("unexpected opcode %d from the server" % op)

    def text(self, payload):
        if self.state == S_LIVE:
            if payload.startswith(MSG_PREFIX):
                self.soak.json_fallbacks += 1
                try:
                    ev = json.loads(payload)
                    room = ev["room"].encode()
                    mt = TEXT_RE.match(ev["text"])
                    i = ev["id"]
                except (ValueError, KeyError, TypeError, AttributeError):
                    self.anomaly(None, None, None, "unparsable message " + short(payload))
                    return
                if mt is None:
                    self.anomaly(room, None, i, "foreign message text " + short(ev.get("text")))
                    return
                self.record(room, i, int(mt.group(1)), int(mt.group(2)), int(mt.group(3)))
            elif payload.startswith(ERR_PREFIX):
                self.anomaly(None, None, None, "error event " + short(payload))
            return
        if self.state != S_PRE:
            return
        try:
            ev = json.loads(payload)
        except ValueError:
            self.fail("invalid JSON from the server: " + short(payload))
            return
        try:
            last = self.checker.feed(ev)
        except Bad as e:
            self.fail(str(e))
            return
        if last is not None:
            self.went_live(last)

    def went_live(self, last):
        self.rooms[self.room.encode()] = [last, 0, 0, last]
        self.state = S_LIVE
        if not self.ready.done():
            self.ready.set_result(True)

    def count(self, room, i, s, seq):
        """Check message id i against the room's last one and add it to the
        room's count and checksum; False if this client is not in the room."""
        st = self.rooms.get(room)
        if st is None:
            self.anomaly(room, None, i, "message for a room I am not in")
            return False
        last = st[0]
        if i != last + 1:
            self.anomaly(room, last, i)
        if i > last:
            st[0] = i
        st[1] += 1
        st[2] += i * K1 + s * K2 + seq
        return True

    def record(self, room, i, s, seq, t):
        if not self.count(room, i, s, seq):
            return
        self.soak.deliveries += 1
        if self.measure:
            d = now_ms() - t
            self.soak.lat_hist[d if d < LAT_BUCKETS - 1 else LAT_BUCKETS - 1] += 1

    def anomaly(self, room, last, got, what=None):
        self.n_anomalies += 1
        if self.anomalies is None:
            self.anomalies = []
        if len(self.anomalies) < 10:
            if what is None:
                what = ("duplicate" if got == last else "reordered" if got < last
                        else "gap (missing %d..%d)" % (last + 1, got - 1))
            self.anomalies.append("%s room %s: after id %s got id %s: %s" % (
                self.kind, room.decode() if isinstance(room, bytes) else room, last, got, what))
        self.soak.anomaly_total += 1

    # -- closing --------------------------------------------------------------------
    def close_clean(self, code=1000):
        self.closing = True
        if self.state == S_DEAD or self.transport is None:
            return
        if not self.close_sent:
            self.close_sent = True
            self.transport.write(mask_frame(0x8, struct.pack("!H", code)))

    def close_abrupt(self):
        """RST: SO_LINGER 0, then close."""
        self.closing = True
        if self.transport is None or self.state == S_DEAD:
            return
        sock = self.transport.get_extra_info("socket")
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.transport.abort()

    def close_fin(self):
        """FIN without a WebSocket close frame."""
        self.closing = True
        if self.transport is not None and self.state != S_DEAD:
            self.transport.close()

    def unread_bytes(self):
        if self.transport is None or self.state == S_DEAD:
            return 0
        try:
            fd = self.transport.get_extra_info("socket").fileno()
            return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
        except OSError:
            return 0


# ---------------------------------------------------------------------------
# Slow consumers: upgrade with a small SO_RCVBUF, join every room, never read.

class SlowClient(asyncio.Protocol):
    def __init__(self, soak, path, joins):
        self.soak = soak
        self.path = path
        self.joins = joins
        self.key = base64.b64encode(os.urandom(16))
        self.transport = None
        self.head = b""
        self.state = S_HTTP
        self.chunks = []
        self.pre_read = 0
        self.ready = soak.loop.create_future()
        self.closed = soak.loop.create_future()
        self.error = None
        self.key_hex = None
        self.t_open = None
        self.b0 = 0
        self.over_since = None
        self.dropped_at = None
        self.drained = 0

    def connection_made(self, transport):
        self.transport = transport
        transport.write(b"GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
                        % (self.path.encode(), self.soak.hostport.encode(), self.key))

    def data_received(self, data):
        if self.state == S_HTTP:
            self.head += data
            i = self.head.find(b"\r\n\r\n")
            if i < 0:
                return
            head, rest = self.head[:i], self.head[i + 4:]
            self.head = b""
            if not head.startswith(b"HTTP/1.1 101") or accept_for(self.key) not in head:
                self.error = "slow client handshake refused: %s" % head.split(b"\r\n")[0].decode("latin-1")
                self.ready.set_result(False)
                self.transport.abort()
                return
            self.transport.pause_reading()          # from here on: never read
            self.state = S_PRE
            self.chunks.append(rest)
            self.pre_read = len(rest)
            for j in self.joins:
                self.transport.write(mask_frame(0x1, json.dumps(j).encode()))
            self.ready.set_result(True)
        else:
            self.chunks.append(data)
            self.drained += len(data)

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        self.state = S_DEAD
        if not self.ready.done():
            self.error = self.error or "slow client closed before the handshake (%s)" % exc
            self.ready.set_result(False)
        if not self.closed.done():
            self.closed.set_result(exc)

    def validate(self, since):
        """The bytes it got must be a contiguous prefix of each room's stream
        (ending, perhaps mid-frame, where the server cut it off)."""
        data = b"".join(self.chunks)
        n, pos = len(data), 0
        last = {}
        problems = []
        close_code = None
        truncated = False
        while pos < n:
            if n - pos < 2:
                truncated = True
                break
            b0, ln = data[pos], data[pos + 1] & 0x7F
            start = pos + 2
            if ln == 126:
                ln = int.from_bytes(data[pos + 2:pos + 4], "big")
                start = pos + 4
            elif ln == 127:
                ln = int.from_bytes(data[pos + 2:pos + 10], "big")
                start = pos + 10
            end = start + ln
            if end > n:
                truncated = True
                break
            pos = end
            op = b0 & 0x0F
            if op == 0x8:
                close_code = int.from_bytes(data[start:start + 2], "big") if ln >= 2 else 1005
                if pos != n:
                    problems.append("%d bytes after the close frame" % (n - pos))
                break
            if op != 0x1 or not data.startswith(MSG_PREFIX, start):
                continue
            m = MSG_RE.match(data, start, end)
            if m is None:
                try:
                    ev = json.loads(data[start:end])
                    room, i = ev["room"], ev["id"]
                except (ValueError, KeyError, TypeError):
                    problems.append("unparsable message frame")
                    continue
            else:
                room, i = m.group(2).decode(), int(m.group(1))
            prev = last.get(room)
            if prev is None:
                if room in since and i != since[room] + 1:
                    problems.append("room %s: first message after since=%d is id %d"
                                    % (room, since[room], i))
            elif i != prev + 1:
                problems.append("room %s: id %d after %d" % (room, i, prev))
            last[room] = i
        return problems, close_code, truncated


# ---------------------------------------------------------------------------
# Catch-up clients: live in the storm room, away while it moves on by a large
# gap, back with ?since=<last id seen>, all of a group within a second.

RESUMED_PREFIX = b'{"type":"resumed"'
HISTORY_PREFIX = b'{"type":"history"'


class CatchupClient:
    """One catch-up client across its connections: the room's stream state
    ([last id, count, checksum, id it started after]) lives here, so the ids
    must run on without a gap or a duplicate from one connection to the next."""
    kind = "catchup"

    def __init__(self, soak, idx, group, room):
        self.soak = soak
        self.idx = idx
        self.group = group
        self.room = room
        self.rooms = {}
        self.conn = None
        self.anomalies = None
        self.n_anomalies = 0

    anomaly = WSClient.anomaly

    def last(self):
        st = self.rooms.get(self.room.encode())
        return st[0] if st else None


class CatchupConn(WSClient):
    """One connection of a CatchupClient. With since: welcome, presence,
    (join), then the replay as messages, then `resumed`, then live; the
    id check (count) runs through all of it unchanged."""

    def __init__(self, soak, ident, since):
        path = "/?room=%s" % ident.room + ("" if since is None else "&since=%d" % since)
        super().__init__(soak, "catchup", ident.room, path)
        self.ident = ident
        self.since = since
        self.rooms = ident.rooms            # shared: the stream goes on across connections
        self.measure = False                # replays would swamp the live latency histogram
        self.checker = JoinChecker(ident.room, since=since)
        self.resumed = soak.loop.create_future()
        self.resumed_ev = None
        self.count0 = 0
        self.replayed = 0

    def went_live(self, last):
        rk = self.room.encode()
        st = self.rooms.get(rk)
        if st is None:                      # first connection: joined with history
            self.rooms[rk] = [last, 0, 0, last]
        self.count0 = self.rooms[rk][1]
        self.state = S_LIVE
        if not self.ready.done():
            self.ready.set_result(True)

    def text(self, payload):
        if self.state == S_LIVE:
            if payload.startswith(RESUMED_PREFIX):
                self.on_resumed(payload)
                return
            if payload.startswith(HISTORY_PREFIX):
                self.anomaly(None, None, None, "history event on a %s connection: %s"
                             % ("resume" if self.since is not None else "live", short(payload)))
                return
        WSClient.text(self, payload)

    def on_resumed(self, payload):
        rk = self.room.encode()
        st = self.rooms[rk]
        try:
            ev = json.loads(payload)
        except ValueError:
            ev = {}
        problems = []
        if self.since is None:
            problems.append("resumed on a connection that did not resume")
        if self.resumed_ev is not None:
            problems.append("a second resumed")
        if ev.get("room") != self.room or ev.get("since") != self.since:
            problems.append("room/since %s/%s, asked %s/%s" % (ev.get("room"), ev.get("since"), self.room, self.since))
        if ev.get("complete") is not True:
            problems.append("complete:%s" % json.dumps(ev.get("complete")))
        if ev.get("last") != st[0]:
            problems.append("last %s, but the replay ended at id %d" % (ev.get("last"), st[0]))
        self.replayed = st[1] - self.count0
        if self.since is not None and self.replayed != st[0] - self.since:
            problems.append("%d messages replayed for ids %d..%d" % (self.replayed, self.since + 1, st[0]))
        for p in problems:
            self.anomaly(rk, st[0], ev.get("last"), "resumed %s: %s" % (short(payload, 120), p))
        if self.resumed_ev is None:
            self.resumed_ev = ev
        if not self.resumed.done():
            self.resumed.set_result(time.monotonic())

    def anomaly(self, room, last, got, what=None):
        self.ident.anomaly(room, last, got, what)

    def connection_lost(self, exc):
        self.phase = "live" if self.resumed.done() else "replay"
        WSClient.connection_lost(self, exc)
        if not self.resumed.done():
            self.resumed.set_result(None)

    def fail(self, reason):
        WSClient.fail(self, reason)
        if not self.resumed.done():
            self.resumed.set_result(None)


# ---------------------------------------------------------------------------
# Senders: the websockets library, joined to every room (the storm
# room's own sender: to that room only).

class Sender:
    def __init__(self, soak, idx, rooms=None):
        self.soak = soak
        self.idx = idx
        self.join_rooms = rooms or soak.rooms
        self.ws = None
        self.my_id = None
        self.next_seq = 0
        self.rooms = {}
        self.anomalies = None
        self.n_anomalies = 0
        self.kind = "sender"
        self.close_code = None
        self.task = None
        self.lost = None
        self.closing = False

    async def connect(self):
        soak = self.soak
        rooms = self.join_rooms
        self.ws = await websockets.connect(
            "ws://%s/?room=%s" % (soak.hostport, rooms[0]), compression=None, max_size=None,
            ping_interval=None, close_timeout=5, open_timeout=15, max_queue=4096)
        chk = JoinChecker(rooms[0])
        last = None
        while last is None:
            last = chk.feed(json.loads(await asyncio.wait_for(self.ws.recv(), 15)))
        self.my_id = chk.my_id
        self.rooms[rooms[0]] = [last, 0, 0, last]
        for r in rooms[1:]:
            await self.ws.send(json.dumps({"type": "join", "room": r}))
            chk = JoinChecker(r, welcome=False, my_id=self.my_id)
            last = None
            while last is None:
                ev = json.loads(await asyncio.wait_for(self.ws.recv(), 15))
                if ev.get("type") in ("join", "leave") and (ev.get("room") != r or (
                        ev.get("user") or {}).get("id") != self.my_id):
                    continue  # someone else arriving in a room I am already in
                last = chk.feed(ev)
            self.rooms[r] = [last, 0, 0, last]
        self.task = asyncio.ensure_future(self.reader())

    async def reader(self):
        soak = self.soak
        try:
            async for raw in self.ws:
                if not raw.startswith('{"type":"message"'):
                    if raw.startswith('{"type":"error"'):
                        self.anomaly(None, None, None, "error event " + short(raw))
                    continue
                ev = json.loads(raw)
                mt = TEXT_RE.match(ev.get("text", ""))
                room, i = ev.get("room"), ev.get("id")
                if mt is None or not isinstance(i, int):
                    self.anomaly(room, None, i, "foreign message " + short(raw))
                    continue
                s, seq, t = int(mt.group(1)), int(mt.group(2)), int(mt.group(3))
                st = self.rooms.get(room)
                if st is None:
                    self.anomaly(room, None, i, "message for a room I am not in")
                    continue
                if i != st[0] + 1:
                    self.anomaly(room, st[0], i)
                if i > st[0]:
                    st[0] = i
                st[1] += 1
                st[2] += i * K1 + s * K2 + seq
                soak.deliveries += 1
                d = now_ms() - t
                soak.lat_hist[d if d < LAT_BUCKETS - 1 else LAT_BUCKETS - 1] += 1
                if ev.get("from") == self.my_id:
                    if s != self.idx:
                        self.anomaly(room, None, i, "my id on sender %d's message" % s)
                    soak.on_ack(room, i, s, seq, len(raw) + header_len(len(raw)))
        except websockets.ConnectionClosed:
            pass
        except Exception as e:  # noqa: BLE001 - reported, not hidden
            soak.fatal("sender %d reader crashed: %r" % (self.idx, e))
        self.close_code = self.ws.close_code
        if not self.closing:
            soak.on_unexpected_close(self)

    anomaly = WSClient.anomaly


# ---------------------------------------------------------------------------

class Soak:
    def __init__(self, args):
        self.args = args
        self.loop = None
        self.failures = []
        self.notes = []
        self.proc = None
        self.workdir = None
        self.stderr_path = None
        self.hostport = None
        self.port = None
        self.t0 = None
        self.t_end = None
        self.t_meas = None
        self.stop_event = None
        self.stopping = False
        self.deliveries = 0
        self.json_fallbacks = 0
        self.anomaly_total = 0
        self.lat_hist = [0] * LAT_BUCKETS
        self.ack_hist = [0] * LAT_BUCKETS
        self.rooms = ["soak-%d" % i for i in range(args.rooms)] + (
            ["soak-small"] if args.small_room > 0 else [])
        self.big_rooms = self.rooms[:args.rooms]
        # The storm room: catch-up clients, --storm-base base clients and a
        # sender of its own at --storm-rate. Not in self.rooms: the senders
        # and the slow clients of the other rooms stay out of it.
        self.storm_room = "soak-storm" if args.catchup_clients > 0 else None
        all_rooms = self.rooms + ([self.storm_room] if self.storm_room else [])
        self.truth = {r: {} for r in all_rooms}
        self.truth_last = {r: 0 for r in all_rooms}
        self.storm_size = {}          # storm room id -> frame bytes (from the ack)
        self.storm_acked_bytes = 0
        self.storm_sender = None
        self.catchup_clients = []
        self.catchup = {"reconnects": 0, "resumed": 0, "complete": 0, "close_bad": 0}
        self.catchup_lost = []        # (t, close code, phase, exc)
        self.catchup_timeouts = []
        self.catchup_errors = []      # wrong join sequences, connect errors
        self.catchup_s = []           # reconnect -> resumed, seconds
        self.replays = []             # (since, last, messages replayed)
        self.storms = []              # (group, reconnects, seconds from first to last)
        self.pending = {}
        self.sent = 0
        self.acked = 0
        self.bcast_bytes = 0
        self.send_behind_max = 0.0
        self.base = []
        self.senders = []
        self.base_lost = []
        self.churn_live = set()
        self.churn = {"started": 0, "ok": 0, "skipped": 0, "clean": 0, "abrupt": 0, "fin": 0,
                      "clean_bad": 0, "early_close": 0}
        self.churn_errors = {}
        self.churn_proto_errors = []
        self.churn_timeouts = 0
        self.churn_ready_ms = []
        self.churn_inflight = 0
        self.slow_live = []
        self.slow = {"started": 0, "dropped": 0, "failed_start": 0, "with_1008": 0, "truncated": 0}
        self.slow_drop_s = []
        self.slow_absorbed = []
        self.slow_problems = []
        self.samples = []
        self.lags = []
        self.lag_max = 0.0
        self.metrics0 = {}
        self.metrics_end = {}
        self.extra0 = None
        self.fds0 = None
        self.src_next = 0
        self.tasks = []
        self.exit_status = None
        self.shutdown_s = None
        self.cpu_meas = None

    # -- helpers ----------------------------------------------------------------
    def t(self):
        return time.monotonic() - self.t0

    def log(self, msg):
        print("[%5.1fs] %s" % (self.t() if self.t0 else 0.0, msg), flush=True)

    def fail(self, reason):
        if reason not in self.failures:
            self.failures.append(reason)
            self.log("FAIL: " + reason)

    def fail_unless_excused(self, reason, excused):
        """A symptom the driver may have caused itself when it fell behind
        (excused): a note then, a failure otherwise."""
        if excused:
            self.notes.append("driver fell behind: " + reason)
        else:
            self.fail(reason)

    def fatal(self, reason):
        self.fail(reason)
        self.stop_event.set()

    def src_addr(self):
        self.src_next += 1
        return "127.0.0.%d" % (1 + self.src_next % self.args.src_addrs)

    def on_unexpected_close(self, c):
        if self.stopping:
            return
        if c.kind in ("base", "sender"):
            self.base_lost.append((self.t(), c.kind, c.close_code,
                                   repr(getattr(c, "lost_exc", None))))
        elif c.kind == "catchup":
            st = c.rooms.get(c.room.encode())
            self.catchup_lost.append((self.t(), c.close_code, getattr(c, "phase", "?"),
                                      st[1] - c.count0 if st else 0))

    def on_ack(self, room, i, s, seq, nbytes):
        p = self.pending.pop((s, seq), None)
        if p is None:
            self.fail("sender %d got its message %d acknowledged twice (room %s id %d)" % (s, seq, room, i))
            return
        if p[0] != room:
            self.fail("message S%d:%d sent to %s came back in %s" % (s, seq, p[0], room))
        tr = self.truth[room]
        if i in tr:
            self.fail("room %s: id %d given to two messages (%s and S%d:%d)" % (room, i, tr[i], s, seq))
        tr[i] = (s, seq)
        if i > self.truth_last[room]:
            self.truth_last[room] = i
        self.acked += 1
        if room == self.storm_room:
            self.storm_size[i] = nbytes
            self.storm_acked_bytes += nbytes
        else:
            self.bcast_bytes += nbytes    # what each slow client (in every other room) is sent
        d = int((time.monotonic() - p[1]) * 1000)
        self.ack_hist[d if d < LAT_BUCKETS - 1 else LAT_BUCKETS - 1] += 1

    # -- the server --------------------------------------------------------------
    def start_server(self):
        a = self.args
        self.workdir = tempfile.mkdtemp(prefix="ringcast-soak-")
        self.stderr_path = os.path.join(self.workdir, "server.stderr")
        cmd = [a.server, "--port", "0", "--static", a.static, "--db", os.path.join(self.workdir, "soak.db"),
               "--rate-limit", "0", "--max-queue", str(a.max_queue)]
        if a.send_timeout is not None:
            cmd += ["--send-timeout", str(a.send_timeout)]
        env = dict(os.environ)
        if a.asan and "ASAN_OPTIONS" not in env:
            env["ASAN_OPTIONS"] = "detect_leaks=1:halt_on_error=1"
        if a.asan and "UBSAN_OPTIONS" not in env:
            env["UBSAN_OPTIONS"] = "print_stacktrace=1"
        libc = ctypes.CDLL(None, use_errno=True)

        def child_setup():
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: never outlive the driver

        self.log("starting %s" % " ".join(cmd))
        with open(self.stderr_path, "wb") as err, open(os.path.join(self.workdir, "server.stdout"), "wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err, env=env, preexec_fn=child_setup)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            m = LISTEN_RE.search(self.server_stderr())
            if m:
                self.port = int(m.group(2))
                self.hostport = "127.0.0.1:%d" % self.port
                return True
            if self.proc.poll() is not None:
                self.fail("server exited with status %s before listening" % self.proc.returncode)
                return False
            time.sleep(0.05)
        self.fail("server printed no 'listening on http://HOST:PORT/' line within 20 s")
        return False

    def server_stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def kill_server(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def cleanup(self):
        self.kill_server()
        if self.workdir and not self.args.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- sampling -------------------------------------------------------------------
    async def metrics(self):
        r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), 5)
        try:
            w.write(b"GET /metrics HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % self.hostport.encode())
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
            m = re.search(rb"(?i)content-length:\s*(\d+)", head)
            if not head.startswith(b"HTTP/1.1 200") or not m:
                raise RuntimeError("bad /metrics response: %r" % head[:80])
            body = await asyncio.wait_for(r.readexactly(int(m.group(1))), 5)
        finally:
            w.close()
        out = {}
        for line in body.decode().splitlines():
            if line.startswith("ringcast_"):
                k, _, v = line.rpartition(" ")
                out[k[len("ringcast_"):]] = float(v)
        return out

    def proc_stats(self):
        pid = self.proc.pid
        rss = None
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        fds = len(os.listdir("/proc/%d/fd" % pid))
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return rss, fds, cpu

    async def sample(self):
        # The fd listing and /metrics cannot be read atomically; with churn the
        # count moves in between. fds are listed before and after the scrape and
        # the smaller is used: fds-connections is then a lower bound, so churn
        # can never make a healthy server look like it leaks.
        fds_before = len(os.listdir("/proc/%d/fd" % self.proc.pid))
        m = await self.metrics()
        rss, fds, cpu = self.proc_stats()
        ru = resource.getrusage(resource.RUSAGE_SELF)
        conns = int(m.get("connections", -1))
        s = {"t": self.t(), "rss": rss, "fds": fds, "conns": conns,
             "extra": min(fds, fds_before) - conns, "scpu": cpu, "dcpu": ru.ru_utime + ru.ru_stime,
             "m": m, "deliv": self.deliveries, "wall": time.monotonic()}
        return s

    async def sampler(self):
        a = self.args
        prev = self.samples[-1] if self.samples else None
        next_t = time.monotonic() + a.sample
        while not self.stop_event.is_set():
            await asyncio.sleep(max(0.0, next_t - time.monotonic()))
            next_t += a.sample
            if self.stop_event.is_set():
                break
            try:
                s = await self.sample()
            except (OSError, RuntimeError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
                if self.proc.poll() is None:
                    self.fail("sampling /metrics or /proc failed: %r" % e)
                break
            dt = s["wall"] - prev["wall"]
            s["dcpu_pct"] = 100.0 * (s["dcpu"] - prev["dcpu"]) / dt
            s["scpu_pct"] = 100.0 * (s["scpu"] - prev["scpu"]) / dt
            s["rate"] = (s["deliv"] - prev["deliv"]) / dt
            s["lagmax"] = max([x for (tt, x) in self.lags if tt > prev["wall"]], default=0.0)
            self.samples.append(s)
            prev = s
            m = s["m"]
            self.log("rss %6.1f MiB  fds %5d  conns %5d (fds-conns %d)  slow closes %d  "
                     "deliveries %6.0f/s  driver cpu %3.0f%% lag %.2fs  server cpu %3.0f%%  churn ok %d"
                     % (s["rss"] / 1024, s["fds"], s["conns"], s["extra"],
                        m.get("slow_consumer_closes_total", 0) - self.metrics0.get("slow_consumer_closes_total", 0),
                        s["rate"], s["dcpu_pct"], s["lagmax"], s["scpu_pct"], self.churn["ok"]))
            if s["extra"] > self.extra0 + a.fd_slack:
                self.fail("fd growth: %d fds open for %d connections (fds-connections %d > %d at start + %d)"
                          % (s["fds"], s["conns"], s["extra"], self.extra0, a.fd_slack))

    async def lag_monitor(self):
        while not self.stop_event.is_set():
            t = time.monotonic()
            await asyncio.sleep(0.1)
            now = time.monotonic()
            lag = now - t - 0.1
            self.lags.append((now, lag))
            if lag > self.lag_max:
                self.lag_max = lag

    async def server_watch(self):
        while True:
            rc = self.proc.poll()
            if rc is not None:
                if not self.stopping:
                    self.fatal("server exited during the soak with %s" % (
                        "signal %d" % -rc if rc < 0 else "status %d" % rc))
                return
            await asyncio.sleep(0.25)

    # -- clients ------------------------------------------------------------------------
    async def open_socket(self, rcvbuf=None, mss=None):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            if rcvbuf:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            if mss:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
            sock.bind((self.src_addr(), 0))
            sock.setblocking(False)
            await self.loop.sock_connect(sock, ("127.0.0.1", self.port))
        except BaseException:
            sock.close()
            raise
        return sock

    async def open_client(self, kind, room, timeout=15):
        sock = await asyncio.wait_for(self.open_socket(), timeout)
        c = WSClient(self, kind, room, "/?room=" + room)
        await self.loop.create_connection(lambda: c, sock=sock)
        try:
            ok = await asyncio.wait_for(asyncio.shield(c.ready), timeout)
        except asyncio.TimeoutError:
            c.fail("timeout waiting for welcome/presence/join/history")
            raise
        return c, ok

    async def connect_base(self):
        a = self.args
        sem = asyncio.Semaphore(256)
        small = min(a.small_room, a.clients)
        storm = min(a.storm_base, a.clients - small) if self.storm_room else 0
        errors = []

        async def one(i):
            room = "soak-small" if i < small else (
                self.storm_room if i < small + storm else self.big_rooms[i % a.rooms])
            async with sem:
                try:
                    c, ok = await self.open_client("base", room)
                except (OSError, asyncio.TimeoutError) as e:
                    errors.append("base client %d: %r" % (i, e))
                    return
                if not ok:
                    errors.append("base client %d: %s" % (i, c.error))
                    c.closing = True
                    return
                self.base.append(c)

        t = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(a.clients)))
        self.log("%d base clients connected in %.1f s (%d failed)" % (len(self.base), time.monotonic() - t,
                                                                      len(errors)))
        if errors:
            self.fail("%d of %d base clients failed to connect, e.g. %s" % (len(errors), a.clients, errors[0]))

    async def churn_one(self, mode, room, life):
        self.churn_inflight += 1
        c = None
        try:
            t = time.monotonic()
            try:
                c, ok = await self.open_client("churn", room, timeout=10)
            except asyncio.TimeoutError:
                self.churn_timeouts += 1
                return
            except OSError as e:
                k = "connect: %s" % (e.strerror or e)
                self.churn_errors[k] = self.churn_errors.get(k, 0) + 1
                return
            if not ok:
                if len(self.churn_proto_errors) < 10:
                    self.churn_proto_errors.append("room %s: %s" % (room, c.error))
                self.churn["proto_bad"] = self.churn.get("proto_bad", 0) + 1
                return
            self.churn["ok"] += 1
            self.churn_ready_ms.append(int((time.monotonic() - t) * 1000))
            self.churn_live.add(c)
            await asyncio.sleep(life)
            if self.stopping:
                return
            if c.state == S_DEAD:
                self.churn["early_close"] += 1
                return
            if mode == "clean":
                c.close_clean()
                try:
                    await asyncio.wait_for(asyncio.shield(c.closed), 10)
                except asyncio.TimeoutError:
                    self.churn["clean_bad"] += 1
                    c.close_abrupt()
                    return
                if c.close_code != 1000:
                    self.churn["clean_bad"] += 1
                self.churn["clean"] += 1
            elif mode == "abrupt":
                c.close_abrupt()
                self.churn["abrupt"] += 1
            else:
                c.close_fin()
                self.churn["fin"] += 1
        finally:
            self.churn_inflight -= 1
            if c is not None:
                self.churn_live.discard(c)
                if c.n_anomalies:
                    self.fail("churn client in %s: %s" % (room, "; ".join(c.anomalies)))
                if c.state != S_DEAD and self.stopping:
                    c.close_abrupt()

    async def churn_loop(self):
        a = self.args
        if a.churn <= 0:
            return
        t0 = time.monotonic()
        started = 0
        modes = ("clean", "abrupt", "fin")
        while not self.stopping:
            await asyncio.sleep(0.02)
            due = int((time.monotonic() - t0) * a.churn) - started
            for _ in range(due):
                started += 1
                if self.churn_inflight >= a.churn_inflight:
                    self.churn["skipped"] += 1
                    continue
                self.churn["started"] += 1
                room = "soak-small" if (a.small_room > 0 and random.random() < 0.1) else random.choice(self.big_rooms)
                life = random.uniform(0.2, 2 * a.churn_life - 0.2)
                asyncio.ensure_future(self.churn_one(random.choice(modes), room, life))

    async def slow_one(self):
        a = self.args
        since = dict(self.truth_last)
        first = self.rooms[0]
        joins = [{"type": "join", "room": r, "since": since[r]} for r in self.rooms[1:]]
        c = SlowClient(self, "/?room=%s&since=%d" % (first, since[first]), joins)
        self.slow["started"] += 1
        try:
            sock = await asyncio.wait_for(self.open_socket(rcvbuf=a.slow_rcvbuf, mss=a.slow_mss), 10)
            await self.loop.create_connection(lambda: c, sock=sock)
            ok = await asyncio.wait_for(asyncio.shield(c.ready), 10)
        except (OSError, asyncio.TimeoutError) as e:
            c.error = "slow client connect: %r" % e
            ok = False
        if not ok:
            self.slow["failed_start"] += 1
            self.fail("a slow client could not connect: %s" % c.error)
            if c.transport:
                c.transport.abort()
            return
        name = c.transport.get_extra_info("sockname")
        c.key_hex = ip_hex(name[0], name[1])
        c.t_open = time.monotonic()
        c.b0 = self.bcast_bytes
        c.since = since
        self.slow_live.append(c)

    async def slow_drain(self, c):
        """The server let go of it: read what the kernel still holds, check it."""
        c.state = S_CLOSING
        c.transport.resume_reading()
        try:
            await asyncio.wait_for(asyncio.shield(c.closed), 10)
        except asyncio.TimeoutError:
            self.fail("slow client: server closed its socket but the stream did not end within 10 s")
        problems, code, truncated = c.validate(c.since)
        if problems:
            self.slow_problems.append("; ".join(problems[:3]))
            self.fail("slow client stream was not a contiguous prefix: %s" % "; ".join(problems[:3]))
        if code == 1008:
            self.slow["with_1008"] += 1
        if truncated:
            self.slow["truncated"] += 1
        if c.transport is not None:
            c.transport.abort()
        if not self.stopping and self.t_end - time.monotonic() > self.args.slow_min_left:
            await self.slow_one()

    async def slow_loop(self):
        """Start the slow clients over ~10 s; check every 2 s whether the
        server has let go of each (its side of the TCP connection no longer
        owned by a file descriptor), and that it never holds more than
        --max-queue in user space for one (bytes broadcast to it since it
        stopped reading, minus what the kernel buffers hold)."""
        a = self.args
        if a.slow <= 0:
            return
        for i in range(a.slow):
            if self.stopping:
                return
            await self.slow_one()
            await asyncio.sleep(10.0 / a.slow)
        srv = ip_hex("127.0.0.1", self.port)
        while not self.stopping:
            await asyncio.sleep(2)
            live = [c for c in self.slow_live if c.dropped_at is None]
            if not live:
                continue
            server_side, client_rx = await asyncio.to_thread(read_tcp_table, srv)
            now = time.monotonic()
            for c in live:
                e = server_side.get(c.key_hex)
                if e is None or e[2] == "0":
                    c.dropped_at = now
                    self.slow["dropped"] += 1
                    self.slow_drop_s.append(now - c.t_open)
                    self.slow_absorbed.append(self.bcast_bytes - c.b0)
                    self.slow_live.remove(c)
                    asyncio.ensure_future(self.slow_drain(c))
                    continue
                userq = (self.bcast_bytes - c.b0) - e[1] - client_rx.get(c.key_hex, 0) - c.pre_read
                if userq > a.max_queue + 64 * 1024:
                    if c.over_since is None:
                        c.over_since = now
                    elif now - c.over_since > a.close_timeout + 10:
                        self.fail("slow consumer not dropped: at least %d bytes (> --max-queue %d) waited in "
                                  "user space for it for %.0f s" % (userq, a.max_queue, now - c.over_since))
                        c.over_since = float("inf")
                else:
                    c.over_since = None

    # -- catch-up storms -----------------------------------------------------------------
    async def open_catchup(self, ident, since, timeout=15):
        c = CatchupConn(self, ident, since)
        ident.conn = c
        sock = await asyncio.wait_for(self.open_socket(), timeout)
        await self.loop.create_connection(lambda: c, sock=sock)
        try:
            ok = await asyncio.wait_for(asyncio.shield(c.ready), timeout)
        except asyncio.TimeoutError:
            c.fail("timeout waiting for welcome/presence/join%s" % ("" if since is not None else "/history"))
            raise
        return c, ok

    async def connect_catchup(self):
        """Every catch-up client's first connection: a plain join (history)."""
        a = self.args
        sem = asyncio.Semaphore(64)
        errors = []

        async def one(i):
            ident = CatchupClient(self, i, i % a.catchup_groups, self.storm_room)
            async with sem:
                try:
                    c, ok = await self.open_catchup(ident, None)
                except (OSError, asyncio.TimeoutError) as e:
                    errors.append("catch-up client %d: %r" % (i, e))
                    return
            if not ok:
                errors.append("catch-up client %d: %s" % (i, c.error))
                return
            self.catchup_clients.append(ident)

        await asyncio.gather(*(one(i) for i in range(a.catchup_clients)))
        if errors:
            self.fail("%d of %d catch-up clients failed to connect, e.g. %s"
                      % (len(errors), a.catchup_clients, errors[0]))

    def storm_frame_bytes(self):
        n = len(self.storm_size)
        return self.storm_acked_bytes / n if n else self.args.storm_bytes + 120

    async def catchup_leave(self, ident, at, mode):
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        c = ident.conn
        if c is None or c.state == S_DEAD or self.stopping:
            return
        if mode == "clean":
            c.close_clean()
            try:
                await asyncio.wait_for(asyncio.shield(c.closed), 10)
            except asyncio.TimeoutError:
                c.close_abrupt()
            if c.close_code != 1000:
                self.catchup["close_bad"] += 1
                if c.close_code not in (None, 1000) and len(self.catchup_errors) < 20:
                    self.catchup_errors.append("catch-up client %d: closing cleanly it got close code %s"
                                               % (ident.idx, c.close_code))
        else:
            c.close_abrupt()

    async def catchup_back(self, ident, at, starts, results):
        """Reconnect with since=<last id seen>; the replay, `resumed` and the
        live ids after it are checked as they arrive (CatchupConn)."""
        a = self.args
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        if self.stopping:
            return
        since = ident.last()
        t = time.monotonic()
        starts.append(t)
        self.catchup["reconnects"] += 1
        try:
            c, ok = await self.open_catchup(ident, since, timeout=a.catchup_timeout)
            tr = None
            if ok:
                tr = await asyncio.wait_for(asyncio.shield(c.resumed),
                                            max(1.0, a.catchup_timeout - (time.monotonic() - t)))
        except asyncio.TimeoutError:
            c = ident.conn
            got = c.rooms[c.room.encode()][1] - c.count0 if c is not None and c.count0 is not None else 0
            self.catchup_timeouts.append("catch-up client %d (since %d): no resumed within %.0f s "
                                         "(%d messages replayed by then)" % (ident.idx, since, a.catchup_timeout, got))
            if c is not None:
                c.fail("catch-up timed out")
            ident.conn = None
            return
        except OSError as e:
            self.catchup_errors.append("catch-up client %d: connect: %s" % (ident.idx, e.strerror or e))
            ident.conn = None
            return
        if not ok or tr is None:
            if c.closing and c.error and len(self.catchup_errors) < 20:
                self.catchup_errors.append("catch-up client %d (since %d): %s" % (ident.idx, since, c.error))
            ident.conn = None        # a close by the server is in catchup_lost
            return
        self.catchup["resumed"] += 1
        if c.resumed_ev.get("complete") is True:
            self.catchup["complete"] += 1
        self.catchup_s.append(tr - t)
        self.replays.append((since, c.resumed_ev.get("last", since), c.replayed))
        results.append((c.replayed, tr - t))

    async def storm_group(self, g, delay):
        """One group's cycle: every member leaves at its own moment so that,
        at the storm's instant, the room has moved on by its gap (a random
        size in --catchup-gap); all come back within --storm-spread seconds;
        once all have resumed they stay live --catchup-live seconds."""
        a = self.args
        await asyncio.sleep(delay)
        idents = [c for c in self.catchup_clients if c.group == g]
        n = 0
        while not self.stopping and idents:
            rate = a.storm_rate * self.storm_frame_bytes()       # bytes/s the room moves on by
            gaps = [random.uniform(a.gap_min, a.gap_max) for _ in idents]
            away = [gp / rate for gp in gaps]
            now = time.monotonic()
            if now + max(away) + a.storm_spread + a.catchup_live + 12 > self.t_end:
                break
            t_storm = now + max(away)
            starts, results = [], []
            modes = ("clean", "clean", "abrupt")
            await asyncio.gather(*(self.catchup_leave(c, t_storm - aw, modes[(n + i) % 3])
                                   for i, (c, aw) in enumerate(zip(idents, away))))
            if self.stopping:
                break
            await asyncio.gather(*(self.catchup_back(c, t_storm + random.uniform(0, a.storm_spread), starts,
                                                     results) for c in idents))
            if starts:
                self.storms.append((g, len(starts), max(starts) - min(starts)))
                self.log("storm %d (group %d): %d reconnects within %.2f s, %d resumed; replays up to %d messages, "
                         "caught up in at most %s s" % (len(self.storms), g, len(starts), max(starts) - min(starts),
                                                       len(results), max((n for n, _ in results), default=0),
                                                       "%.2f" % max(t for _, t in results) if results else "-"))
            n += 1
            await asyncio.sleep(a.catchup_live)

    async def storm_loop(self):
        a = self.args
        if not self.catchup_clients:
            return
        # groups take turns: while one is away or catching up, the others are live
        period = a.gap_max / (a.storm_rate * self.storm_frame_bytes()) + a.catchup_live + 2
        await asyncio.gather(*(self.storm_group(g, g * period / a.catchup_groups)
                               for g in range(a.catchup_groups)))

    def catchup_live(self):
        return [c.conn for c in self.catchup_clients if c.conn is not None and c.conn.state == S_LIVE]

    # -- sending ---------------------------------------------------------------------------
    async def send_loop(self, senders, rooms, rate, msg_bytes):
        S = len(senders)
        k = 0
        t0 = time.monotonic()
        pad = "x" * max(0, msg_bytes - 24)
        while not self.stopping:
            due = t0 + k / rate
            d = due - time.monotonic()
            if d > 0:
                await asyncio.sleep(d)
            elif -d > self.send_behind_max:
                self.send_behind_max = -d
            if self.stopping:
                break
            snd = senders[k % S]
            room = rooms[k % len(rooms)]
            seq = snd.next_seq
            snd.next_seq += 1
            text = "S%d:%d:%d:" % (snd.idx, seq, now_ms())
            text += pad[:max(0, msg_bytes - len(text))]
            self.pending[(snd.idx, seq)] = (room, time.monotonic())
            self.sent += 1
            try:
                await snd.ws.send(json.dumps({"type": "message", "room": room, "text": text}))
            except websockets.ConnectionClosed:
                await asyncio.sleep(0.5)   # a crash is reported as a crash, not as its symptom
                if self.proc.poll() is None:
                    self.fatal("sender %d's connection closed (code %s)" % (snd.idx, snd.ws.close_code))
                return
            k += 1

    # -- the run ------------------------------------------------------------------------------
    async def run(self):
        a = self.args
        self.loop = asyncio.get_running_loop()
        self.stop_event = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.loop.add_signal_handler(sig, lambda: self.fatal("interrupted"))
        watch = asyncio.ensure_future(self.server_watch())
        s0 = await self.sample()
        self.metrics0 = s0["m"]
        self.extra0 = s0["extra"]
        self.fds0 = s0["fds"]
        s0.update(dcpu_pct=0.0, scpu_pct=0.0, rate=0.0, lagmax=0.0)
        self.samples.append(s0)
        self.log("server pid %d on %s: %d fds, %d connections (fds-connections %d), RSS %.1f MiB"
                 % (self.proc.pid, self.hostport, s0["fds"], s0["conns"], s0["extra"], s0["rss"] / 1024))
        bg = [asyncio.ensure_future(self.lag_monitor()), asyncio.ensure_future(self.sampler())]

        await self.connect_base()
        gc.collect()
        gc.freeze()   # the long-lived clients need not be traversed by every collection
        if not self.stop_event.is_set():
            for i in range(a.senders):
                snd = Sender(self, i)
                try:
                    await snd.connect()
                except (OSError, asyncio.TimeoutError, Bad, websockets.WebSocketException) as e:
                    self.fatal("sender %d failed to connect/join: %r" % (i, e))
                    break
                self.senders.append(snd)
        if self.storm_room and not self.stop_event.is_set():
            # the storm room's own sender goes last in self.senders: it is
            # healthy like the others, but only send_loop's storm instance uses it
            snd = Sender(self, a.senders, rooms=[self.storm_room])
            try:
                await snd.connect()
            except (OSError, asyncio.TimeoutError, Bad, websockets.WebSocketException) as e:
                self.fatal("the storm room's sender failed to connect: %r" % e)
            else:
                self.senders.append(snd)
                self.storm_sender = snd
                await self.connect_catchup()
        ru = resource.getrusage(resource.RUSAGE_SELF)
        self.t_meas = time.monotonic()
        cpu_at_meas = ru.ru_utime + ru.ru_stime
        if not self.stop_event.is_set():
            self.log("measurement starts: %d base clients, %d senders, rooms %s; churn %s/s, %d slow, %s msg/s"
                     % (len(self.base), len(self.senders), ",".join(self.rooms), a.churn, a.slow, a.rate))
            work = [asyncio.ensure_future(self.send_loop(self.senders[:a.senders], self.rooms, a.rate, a.msg_bytes)),
                    asyncio.ensure_future(self.churn_loop()), asyncio.ensure_future(self.slow_loop())]
            if self.storm_sender is not None:
                self.log("catch-up: %d clients in %d groups in %s with %d base clients, %s msg/s of %d bytes there, "
                         "gaps %.1f-%.1f MiB" % (len(self.catchup_clients), a.catchup_groups, self.storm_room,
                                                 a.storm_base, a.storm_rate, a.storm_bytes, a.gap_min / MIB,
                                                 a.gap_max / MIB))
                work += [asyncio.ensure_future(self.send_loop([self.storm_sender], [self.storm_room],
                                                              a.storm_rate, a.storm_bytes)),
                         asyncio.ensure_future(self.storm_loop())]
            try:
                await asyncio.wait_for(self.stop_event.wait(), max(0.0, self.t_end - time.monotonic()))
            except asyncio.TimeoutError:
                pass
        else:
            work = []
        crashed = self.proc.poll() is not None
        # ---- wind down --------------------------------------------------------------
        self.stopping = True
        ru = resource.getrusage(resource.RUSAGE_SELF)
        meas_wall = time.monotonic() - self.t_meas
        self.cpu_meas = 100.0 * (ru.ru_utime + ru.ru_stime - cpu_at_meas) / max(meas_wall, 1e-9)
        self.meas_wall = meas_wall
        for w in work:
            w.cancel()
        self.stop_event.set()
        for b in bg:
            b.cancel()
        if not crashed:
            await self.finish()
        watch.cancel()

    async def finish(self):
        self.log("stopping load; waiting for acknowledgements and for every client to catch up")
        t = time.monotonic()
        while self.pending and time.monotonic() - t < 8 and self.proc.poll() is None:
            await asyncio.sleep(0.1)
        if self.pending:
            ex = sorted(self.pending.items())[:5]
            self.fail("%d messages sent were never acknowledged to their sender, e.g. %s"
                      % (len(self.pending), ", ".join("S%d:%d -> %s" % (k[0], k[1], v[0]) for k, v in ex)))
        # churn and slow clients go (RST), so that only the healthy ones remain
        for c in list(self.churn_live):
            c.close_abrupt()
        for c in self.slow_live:
            if c.transport is not None:
                c.transport.abort()
        healthy = [c for c in self.base if c.state != S_DEAD] + [s for s in self.senders if s.ws.open]
        t = time.monotonic()
        while time.monotonic() - t < 15 and self.proc.poll() is None:
            behind = [c for c in healthy + self.catchup_live()
                      if any(st[0] < self.truth_last[_r(r)] for r, st in c.rooms.items())]
            if not behind:
                break
            await asyncio.sleep(0.2)
        self.drain_s = time.monotonic() - t
        self.verify(healthy)
        self.verify_catchup()
        await self.close_catchup()
        try:
            s = await self.sample()
            self.metrics_end = s["m"]
            self.end_sample = s
        except (OSError, RuntimeError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
            self.fail("final /metrics failed: %r" % e)
            return
        await self.quiesce()
        await self.sigterm()

    def truth_index(self):
        """Per room: the acknowledged ids in order, and prefix sums of their
        checksum terms."""
        if getattr(self, "_truth_index", None) is None:
            ids, pref = {}, {}
            for r, tr in self.truth.items():
                ks = sorted(tr)
                ids[r] = ks
                acc, p = 0, [0]
                for i in ks:
                    s, seq = tr[i]
                    acc += i * K1 + s * K2 + seq
                    p.append(acc)
                pref[r] = p
            self._truth_index = (ids, pref)
        return self._truth_index

    def verify_catchup(self):
        """Each catch-up client, over all its connections, must have seen
        exactly the acknowledged messages after the id it first joined at, up
        to the last it saw, once each and in order; one still connected must
        have seen all of them."""
        if not self.storm_room:
            return
        ids, pref = self.truth_index()
        r = self.storm_room
        ks, p = ids[r], pref[r]
        bad, unread = [], []
        n = 0
        for ident in self.catchup_clients:
            if ident.n_anomalies:
                bad.append("; ".join(ident.anomalies))
                continue
            st = ident.rooms.get(r.encode())
            if st is None:
                continue
            j0, j1 = bisect.bisect_right(ks, st[3]), bisect.bisect_right(ks, st[0])
            n += st[1]
            if st[1] != j1 - j0 or st[2] != p[j1] - p[j0]:
                bad.append("catchup client %d: got %d messages in (%d, %d], the senders' acks say %d%s"
                           % (ident.idx, st[1], st[3], st[0], j1 - j0,
                              " (content checksum differs)" if st[1] == j1 - j0 else ""))
                continue
            c = ident.conn
            if c is not None and c.state == S_LIVE and ks and st[0] < ks[-1]:
                what = "catchup client %d: live at the end but only up to id %d of %d" % (ident.idx, st[0], ks[-1])
                u = c.unread_bytes()
                if u:
                    unread.append(what + " (%d bytes still unread in the kernel)" % u)
                else:
                    bad.append(what)
        self.catchup_msgs = n
        if bad:
            self.fail("catch-up: loss/duplicate/reorder or a wrong `resumed` for %d catch-up client(s): %s"
                      % (len(bad), " | ".join(bad[:5])))
        self.catchup_unread = unread

    async def close_catchup(self):
        """Catch-up clients leave cleanly before the fd check at rest."""
        live = self.catchup_live()
        for c in live:
            c.close_clean()
        if live:
            await asyncio.wait([c.closed for c in live], timeout=8)
        bad = sum(1 for c in live if not c.closed.done() or c.close_code != 1000)
        if bad:
            self.fail("%d of %d catch-up clients closing at the end got no 1000 echo and TCP close within 8 s"
                      % (bad, len(live)))
        for c in self.catchup_clients:
            if c.conn is not None and c.conn.state != S_DEAD:
                c.conn.close_abrupt()

    def verify(self, healthy):
        """Every healthy client that stayed connected must have seen exactly
        the acknowledged messages of its rooms after the point it joined, in
        id order, once each."""
        ids, pref = self.truth_index()
        for r in self.truth:
            ks = ids[r]
            if ks and ks != list(range(ks[0], ks[0] + len(ks))):
                missing = sorted(set(range(ks[0], ks[-1] + 1)) - set(ks))
                stores = self.metrics_end.get("store_failures_total", 0)
                self.fail("room %s: acknowledged ids are not contiguous (missing %s%s)"
                          % (r, missing[:10], "; store failures %d" % stores if stores else ""))
        bad, pending_unread, checked, msgs = [], [], 0, 0
        for c in healthy:
            checked += 1
            if c.n_anomalies:
                bad.append("; ".join(c.anomalies))
                continue
            for rk, st in c.rooms.items():
                r = _r(rk)
                ks, p = ids[r], pref[r]
                j = bisect.bisect_right(ks, st[3])
                want_n, want_sum, want_last = len(ks) - j, p[-1] - p[j], (ks[-1] if ks else st[3])
                msgs += st[1]
                if st[1] == want_n and st[2] == want_sum and st[0] == want_last:
                    continue
                unread = c.unread_bytes() if isinstance(c, WSClient) else 0
                what = "%s in %s: got %d messages up to id %d, expected %d up to id %d%s" % (
                    c.kind, r, st[1], st[0], want_n, want_last,
                    "" if st[1] != want_n or st[0] != want_last else " (content checksum differs)")
                if unread and st[0] < want_last and st[1] < want_n and st[2] == p[j + st[1]] - p[j]:
                    pending_unread.append(what + " (%d bytes still unread in the kernel)" % unread)
                else:
                    bad.append(what)
        self.healthy_checked = checked
        self.healthy_msgs = msgs
        if bad:
            self.fail("loss/duplicate/reorder for %d healthy client(s) that stayed connected: %s"
                      % (len(bad), " | ".join(bad[:5])))
        self.pending_unread = pending_unread

    async def quiesce(self):
        """Close half of the healthy clients cleanly; then the server's fds must
        come back to exactly its connections + the constant it started with."""
        live = [c for c in self.base if c.state not in (S_DEAD,)]
        half = live[: len(live) // 2]
        self.keep_for_sigterm = live[len(live) // 2:]
        for c in half:
            c.close_clean()
        t = time.monotonic()
        if half:
            await asyncio.wait([c.closed for c in half], timeout=8)
        self.clean_bad = sum(1 for c in half if not c.closed.done() or c.close_code != 1000)
        if self.clean_bad:
            self.fail("%d of %d clean closes did not get a 1000 echo and TCP close within 8 s"
                      % (self.clean_bad, len(half)))
        expect = len(self.keep_for_sigterm) + sum(1 for s in self.senders if s.ws.open) + 1
        last = None
        while time.monotonic() - t < 18:
            s = await self.sample()
            last = s
            if s["conns"] <= expect and s["extra"] <= self.extra0 + 2:
                break
            await asyncio.sleep(0.25)
        self.quiet_sample = last
        self.log("after closing %d clients: %d connections (expected %d), %d fds, fds-connections %d (start %d)"
                 % (len(half), last["conns"], expect, last["fds"], last["extra"], self.extra0))
        if last["conns"] > expect:
            self.fail("server still counts %d connections, %d expected after every other client closed"
                      % (last["conns"], expect))
        if last["extra"] > self.extra0 + 2:
            self.fail("fd leak: at rest the server holds %d fds for %d connections (fds-connections %d, "
                      "was %d at start)" % (last["fds"], last["conns"], last["extra"], self.extra0))

    async def sigterm(self):
        keep = self.keep_for_sigterm
        self.log("SIGTERM with %d clients connected" % (len(keep) + len(self.senders)))
        for s in self.senders:
            s.closing = True
        for c in keep:
            c.closing = True          # the server's 1001 is expected now
        t = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        while self.proc.poll() is None and time.monotonic() - t < 3:
            await asyncio.sleep(0.02)
        self.shutdown_s = time.monotonic() - t
        if self.proc.poll() is None:
            self.fail("server did not exit within 3 s of SIGTERM")
            self.kill_server()
            return
        rc = self.proc.returncode
        self.exit_status = rc
        if rc != 0:
            self.fail("server exited with %s after SIGTERM (expected 0)"
                      % ("signal %d" % -rc if rc < 0 else "status %d" % rc))
        if keep:
            await asyncio.wait([c.closed for c in keep], timeout=3)
        self.got_1001 = sum(1 for c in keep if c.close_code == 1001)
        for s in self.senders:
            try:
                await asyncio.wait_for(s.ws.wait_closed(), 3)
            except asyncio.TimeoutError:
                pass
            if s.ws.close_code == 1001:
                self.got_1001 += 1
        self.n_1001 = len(keep) + len(self.senders)
        if self.got_1001 != self.n_1001:
            self.fail("only %d of %d connected clients got close code 1001 on SIGTERM"
                      % (self.got_1001, self.n_1001))

    # -- verdict -------------------------------------------------------------------------------
    def driver_behind(self):
        lags = sorted(x for _, x in self.lags)
        p99 = pct(lags, 99) if lags else 0.0
        cpu_max = max((s.get("dcpu_pct", 0) for s in self.samples[1:]), default=0.0)
        reasons = []
        if p99 > 0.25:
            reasons.append("event-loop lag p99 %.2f s" % p99)
        if self.lag_max > 2.0:
            reasons.append("max lag %.1f s" % self.lag_max)
        if self.cpu_meas is not None and self.cpu_meas > 90:
            reasons.append("mean CPU %.0f%% of a core" % self.cpu_meas)
        if self.send_behind_max > 1.0:
            reasons.append("senders up to %.1f s behind schedule" % self.send_behind_max)
        return reasons, p99, cpu_max

    def judge(self):
        a = self.args
        behind, lag_p99, cpu_max = self.driver_behind()
        # healthy clients the server disconnected
        crashed = self.proc.poll() is not None and self.exit_status is None
        if self.base_lost and crashed:
            self.notes.append("%d healthy clients lost their connection when the server died" % len(self.base_lost))
        elif self.base_lost:
            codes = {}
            for _, kind, code, _ in self.base_lost:
                codes[code] = codes.get(code, 0) + 1
            desc = "%d healthy clients disconnected by the server during the run (close codes %s), first at %.0f s" % (
                len(self.base_lost), codes, self.base_lost[0][0])
            self.fail_unless_excused(desc, behind and set(codes) <= {1008})
        if getattr(self, "pending_unread", None):
            desc = "%d healthy clients had not caught up after %.0f s of drain, with bytes still unread: %s" % (
                len(self.pending_unread), self.drain_s, self.pending_unread[0])
            self.fail_unless_excused(desc, behind)
        if self.churn_proto_errors:
            self.fail("%d churn clients got a wrong join sequence, e.g. %s"
                      % (self.churn.get("proto_bad", 0), self.churn_proto_errors[0]))
        errs = sum(self.churn_errors.values()) + self.churn_timeouts + self.churn["early_close"]
        if errs:
            desc = "churn: %d connects failed or timed out (%s, timeouts %d, closed early %d)" % (
                errs, self.churn_errors, self.churn_timeouts, self.churn["early_close"])
            self.fail_unless_excused(desc, behind and not self.churn_errors)
        if self.churn["clean_bad"]:
            self.fail("churn: %d clean closes got no 1000 echo / TCP close" % self.churn["clean_bad"])
        if self.churn["skipped"]:
            self.notes.append("churn: %d connects skipped (more than %d in flight: driver or server slow)"
                              % (self.churn["skipped"], a.churn_inflight))
        # catch-up clients: dropped, stuck, or given a wrong join sequence
        if self.storm_room:
            self.judge_catchup(behind)
        # slow consumers
        m0, m1 = self.metrics0, self.metrics_end
        slow_metric = m1.get("slow_consumer_closes_total", 0) - m0.get("slow_consumer_closes_total", 0)
        if a.slow > 0 and m1:
            if self.slow["dropped"] == 0 and getattr(self, "meas_wall", 0) >= 40:
                self.fail("no slow client was dropped by the server during the run")
            elif self.slow["dropped"] == 0:
                self.notes.append("slow: measurement too short (< 40 s) for a slow client to be dropped "
                                  "(it takes ~20 s: --max-queue + kernel buffers, then --close-timeout)")
            if slow_metric < self.slow["dropped"]:
                self.fail("ringcast_slow_consumer_closes_total grew by %d, but %d slow clients were dropped"
                          % (slow_metric, self.slow["dropped"]))
        # RSS
        self.rss_verdict = self.judge_rss()
        # sanitizers and the server's own log
        err = self.server_stderr()
        for pat in SANITIZER_PATTERNS:
            if pat in err:
                line = next(ln for ln in err.splitlines() if pat in ln)
                self.fail("server stderr contains %r: %s" % (pat, short(line, 200)))
        self.behind = behind
        self.lag_p99 = lag_p99
        self.cpu_max = cpu_max

    def judge_catchup(self, behind):
        """Gaps, duplicates, reordering and a wrong `resumed` failed in
        verify_catchup already. A catch-up client closed by the server, or
        one that did not get `resumed` in time, fails the run unless the
        driver fell behind (then only 1008 closes and timeouts are excused:
        a driver that cannot read looks like a slow consumer)."""
        a = self.args
        crashed = self.proc.poll() is not None and self.exit_status is None
        if self.catchup_lost and not crashed:
            codes = {}
            for _, code, _, _ in self.catchup_lost:
                codes[code] = codes.get(code, 0) + 1
            phases = {}
            for _, _, ph, _ in self.catchup_lost:
                phases[ph] = phases.get(ph, 0) + 1
            got = sorted(n for _, _, ph, n in self.catchup_lost if ph == "replay")
            desc = ("%d catch-up clients closed by the server during the run (close codes %s; while catching up "
                    "%d, live %d), first at %.0f s%s" % (
                        len(self.catchup_lost), codes, phases.get("replay", 0), phases.get("live", 0),
                        self.catchup_lost[0][0], "; messages of the replay they had got: min %d, p50 %d, max %d"
                        % (got[0], pct(got, 50), got[-1]) if got else ""))
            self.fail_unless_excused(desc, behind and set(codes) <= {1008})
        if self.catchup_timeouts:
            desc = "%d catch-up reconnects got no `resumed` within %.0f s, e.g. %s" % (
                len(self.catchup_timeouts), a.catchup_timeout, self.catchup_timeouts[0])
            self.fail_unless_excused(desc, behind)
        if self.catchup_errors:
            self.fail("catch-up: %d errors (wrong join sequence, connect or close failures), e.g. %s"
                      % (len(self.catchup_errors), self.catchup_errors[0]))
        elif self.catchup["close_bad"]:
            self.fail("catch-up: %d clean closes got no 1000 echo / TCP close" % self.catchup["close_bad"])
        if getattr(self, "catchup_unread", None):
            desc = "%d catch-up clients had not caught up at the end, with bytes still unread: %s" % (
                len(self.catchup_unread), self.catchup_unread[0])
            self.fail_unless_excused(desc, behind)
        if not self.storms and not crashed and getattr(self, "meas_wall", 0) >= 40:
            self.fail("catch-up: no storm ran (--catchup-gap too large for the run's length and --storm-rate?)")

    def judge_rss(self):
        a = self.args
        ss = [s for s in self.samples if s["t"] <= a.duration + 1]
        warm = max(0.2 * a.duration, (self.t_meas - self.t0) + a.sample if self.t_meas else 0)
        base = [s["rss"] for s in ss if warm <= s["t"] < warm + 0.2 * a.duration]
        last = [s["rss"] for s in ss if s["t"] >= 0.8 * a.duration]
        rss_slope = slope([(s["t"], s["rss"] / 1024) for s in ss if s["t"] >= warm])
        if not base or not last:
            self.notes.append("RSS: too few samples after warm-up for a trend check")
            return None
        b, l = sum(base) / len(base) / 1024, sum(last) / len(last) / 1024
        grow_pct = 100.0 * (l - b) / b
        v = {"base": b, "last": l, "pct": grow_pct, "mib": l - b, "slope": rss_slope, "nb": len(base),
             "nl": len(last), "warm": warm}
        if l > b * (1 + a.rss_pct / 100.0) and l - b > a.rss_mib:
            msg = ("RSS growth: mean of the last 20%% of samples %.1f MiB vs %.1f MiB after warm-up "
                   "(+%.1f%%, +%.1f MiB > +%d%% and +%d MiB)" % (l, b, grow_pct, l - b, a.rss_pct, a.rss_mib))
            if a.asan:
                self.notes.append("(ASan build: RSS not judged) " + msg)
            else:
                self.fail(msg)
        return v

    def summary_catchup(self):
        a = self.args
        r = catchup_report(self)
        ps, g, ts = r["per_storm"], r["gaps"], r["times"]
        print("catch-up %d clients in %d groups in %s (%s msg/s of %d bytes there, %d base clients live in it), gaps "
              "%.1f-%.1f MiB asked: storms %d (reconnects in each p50 %s, all within %.2f s), reconnects %d, "
              "resumed %d (complete:true %d); messages replayed %d, largest replay %d messages / %.2f MiB, gap p50 %.2f MiB; "
              "time to catch up p50 %s s, max %s s; closed by the server %d, no resumed in time %d, errors %d, "
              "anomalies %d; %d messages to them verified"
              % (len(self.catchup_clients), a.catchup_groups, self.storm_room, a.storm_rate, a.storm_bytes,
                 a.storm_base, a.gap_min / MIB, a.gap_max / MIB, len(self.storms), pct(ps, 50) if ps else "-",
                 r["spread"], self.catchup["reconnects"], self.catchup["resumed"], self.catchup["complete"],
                 r["replayed"], r["max_msgs"],
                 r["max_bytes"] / MIB, (pct(g, 50) if g else 0) / MIB, "%.2f" % pct(ts, 50) if ts else "-",
                 "%.2f" % ts[-1] if ts else "-", len(self.catchup_lost), len(self.catchup_timeouts),
                 len(self.catchup_errors), sum(c.n_anomalies for c in self.catchup_clients),
                 getattr(self, "catchup_msgs", 0)))

    def summary(self):
        a = self.args
        print("\n==== ringcast soak summary ====")
        print("server   %s (pid %s), duration %d s (measurement %.0f s), clients %d, churn %s/s, rate %s msg/s, "
              "slow %d, rooms %d+%d, message text %d bytes"
              % (a.server, self.proc.pid if self.proc else "-", a.duration, getattr(self, "meas_wall", 0),
                 a.clients, a.churn, a.rate, a.slow, a.rooms, 1 if a.small_room else 0, a.msg_bytes))
        ah = self.ack_hist
        print("messages sent %d, acknowledged %d (ack latency p50 %s ms, p99 %s ms, max %s ms)"
              % (self.sent, self.acked, hist_pct(ah, 50), hist_pct(ah, 99), hist_max(ah)))
        lh = self.lat_hist
        print("healthy  %s clients checked (base + senders), %s deliveries to them verified; driver-side "
              "deliveries in all %d; anomalies (gap/dup/reorder) %d; json fallbacks %d"
              % (getattr(self, "healthy_checked", "-"), getattr(self, "healthy_msgs", "-"), self.deliveries,
                 self.anomaly_total, self.json_fallbacks))
        print("         delivery latency send->healthy client: p50 %s ms, p99 %s ms, p99.9 %s ms, max %s ms"
              % (hist_pct(lh, 50), hist_pct(lh, 99), hist_pct(lh, 99.9), hist_max(lh)))
        print("         %d healthy clients lost during the run" % len(self.base_lost))
        c = self.churn
        rm = sorted(self.churn_ready_ms)
        mw = max(getattr(self, "meas_wall", 1), 1e-9)
        print("churn    started %d, ready %d (%.0f/s; connect->history p50 %s ms, p99 %s ms), disconnects: "
              "clean %d, abrupt (RST) %d, FIN without close frame %d; bad join sequences %d, errors %s, "
              "timeouts %d, skipped %d"
              % (c["started"], c["ok"], c["ok"] / mw, pct(rm, 50) if rm else "-", pct(rm, 99) if rm else "-",
                 c["clean"], c["abrupt"], c["fin"], c.get("proto_bad", 0), self.churn_errors or "none",
                 self.churn_timeouts, c["skipped"]))
        if self.storm_room:
            self.summary_catchup()
        m0, m1 = self.metrics0, self.metrics_end or (self.samples[-1]["m"] if self.samples else {})
        d = lambda k: int(m1.get(k, 0) - m0.get(k, 0))  # noqa: E731
        ds = sorted(self.slow_drop_s)
        ab = sorted(self.slow_absorbed)
        print("slow     started %d, dropped by the server %d (time to drop p50 %s s, max %s s; bytes broadcast to "
              "each before drop p50 %s KiB, max %s KiB), ended with close 1008 visible %d, stream cut mid-frame %d; "
              "metrics: slow_consumer_closes_total +%d, closes_total{code=\"1008\"} +%d"
              % (self.slow["started"], self.slow["dropped"], "%.1f" % pct(ds, 50) if ds else "-",
                 "%.1f" % ds[-1] if ds else "-", ab and int(pct(ab, 50) / 1024) or "-",
                 ab and int(ab[-1] / 1024) or "-", self.slow["with_1008"], self.slow["truncated"],
                 d("slow_consumer_closes_total"), d('closes_total{code="1008"}')))
        print("server   metrics: connections_total +%d, deliveries_total +%d, chat_messages_total +%d, "
              "store_failures +%d, accept_errors +%d, refused +%d, recv_enobufs +%d, pings_sent +%d"
              % (d("connections_total"), d("deliveries_total"), d("chat_messages_total"), d("store_failures_total"),
                 d("accept_errors_total"), d("connections_refused_total"), d("recv_enobufs_total"),
                 d("pings_sent_total")))
        ss = [s for s in self.samples]
        if ss:
            rss = [s["rss"] / 1024 for s in ss]
            fds = [s["fds"] for s in ss]
            ex = [s["extra"] for s in ss]
            print("RSS      min %.1f MiB, max %.1f MiB (%d samples every %g s)" % (min(rss), max(rss), len(ss), a.sample))
            v = getattr(self, "rss_verdict", None)
            if v:
                print("         after warm-up (%.0f s): %.1f MiB (mean of %d), last 20%%: %.1f MiB (mean of %d): "
                      "%+.1f%%, %+.1f MiB; trend %s MiB/min; fails above +%d%% and +%d MiB"
                      % (v["warm"], v["base"], v["nb"], v["last"], v["nl"], v["pct"], v["mib"],
                         "%+.2f" % v["slope"] if v["slope"] is not None else "-", a.rss_pct, a.rss_mib))
            v = getattr(self, "rss_verdict", None)
            warm = v["warm"] if v else 0.2 * a.duration
            ext = slope([(s["t"], s["extra"]) for s in ss if s["t"] >= warm and s["t"] <= a.duration + 1])
            print("fds      min %d, max %d; fds - connections: start %d, min %d, max %d (limit start + %d), "
                  "trend %s/min%s"
                  % (min(fds), max(fds), self.extra0, min(ex), max(ex), a.fd_slack,
                     "%+.2f" % ext if ext is not None else "-",
                     "; at rest after closing: %d fds, %d connections" % (self.quiet_sample["fds"],
                                                                         self.quiet_sample["conns"])
                     if getattr(self, "quiet_sample", None) else ""))
            scpu = [s.get("scpu_pct", 0) for s in ss[1:]]
            if scpu:
                print("cpu      server mean %.0f%% of a core (max %.0f%% in a %g s window)"
                      % (sum(scpu) / len(scpu), max(scpu), a.sample))
        behind = getattr(self, "behind", [])
        print("driver   CPU %.0f%% of a core over the measurement (max %.0f%% in a %g s window), loop lag p99 %.0f ms, "
              "max %.0f ms, senders at most %.2f s behind schedule: %s"
              % (self.cpu_meas or 0, getattr(self, "cpu_max", 0), a.sample, 1000 * getattr(self, "lag_p99", 0),
                 1000 * self.lag_max, self.send_behind_max,
                 "FELL BEHIND (" + "; ".join(behind) + ")" if behind else "kept up"))
        if self.shutdown_s is not None:
            print("shutdown SIGTERM -> exit status %s after %.2f s; %s of %s connected clients got close 1001"
                  % (self.exit_status, self.shutdown_s, getattr(self, "got_1001", "-"), getattr(self, "n_1001", "-")))
        for n in self.notes:
            print("note     " + n)
        if self.failures:
            print("RESULT   FAIL")
            for f in sorted(self.failures, key=lambda f: "exited" not in f):
                print("  - " + f)
            tail = self.server_stderr().splitlines()[-25:]
            if tail:
                print("---- last lines of the server's stderr ----")
                for ln in tail:
                    print("  " + ln)
        else:
            print("RESULT   PASS")


def catchup_report(soak):
    """Storm and replay figures: (storms, per storm, spread max, replayed,
    largest (messages, bytes), gap bytes sorted, catch-up seconds sorted)."""
    ks = sorted(soak.storm_size)
    pre = [0]
    for i in ks:
        pre.append(pre[-1] + soak.storm_size[i])

    def nbytes(since, last):
        return pre[bisect.bisect_right(ks, last)] - pre[bisect.bisect_right(ks, since)]

    sizes = [(n, nbytes(since, last)) for since, last, n in soak.replays]
    return {"per_storm": sorted(n for _, n, _ in soak.storms),
            "spread": max((sp for _, _, sp in soak.storms), default=0.0),
            "replayed": sum(n for n, _ in sizes),
            "max_msgs": max((n for n, _ in sizes), default=0),
            "max_bytes": max((b for _, b in sizes), default=0),
            "gaps": sorted(b for _, b in sizes),
            "times": sorted(soak.catchup_s)}


def slope(points):
    """Least-squares slope per minute of (seconds, value) points."""
    if len(points) < 3:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return 60 * sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def _r(k):
    return k.decode() if isinstance(k, bytes) else k


def read_tcp_table(server_local):
    """From /proc/net/tcp: for connections to the server, its side's
    (state, tx_queue, inode) keyed by the client's address, and the client
    side's rx_queue keyed by the same."""
    server_side, client_rx = {}, {}
    with open("/proc/net/tcp") as f:
        f.readline()
        for line in f:
            p = line.split()
            if p[1] == server_local:
                server_side[p[2]] = (p[3], int(p[4].split(":")[0], 16), p[9])
            elif p[2] == server_local:
                client_rx[p[1]] = int(p[4].split(":")[1], 16)
    return server_side, client_rx


def parse_size(text):
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    mult = {"K": 1024, "M": MIB}.get(text[-1:], 1)
    return int(float(text[:-1] if mult > 1 else text) * mult)


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Bounded soak test for ringcast: starts the server, runs healthy clients, churn, broadcasts, "
                    "slow consumers and catch-up storms for --duration seconds, and fails on crashes, message loss/duplication/"
                    "reordering, RSS or fd growth, or an unclean SIGTERM. Ends with '1 passed, 0 failed' or "
                    "'0 passed, 1 failed'.",
        epilog="ASan: '--asan' runs against build-asan/ringcast with --clients 500 --churn 20 unless given, and "
               "(as always) fails if the server's stderr contains 'ERROR: AddressSanitizer', 'runtime error:' or "
               "'LeakSanitizer'; RSS is reported but not judged there (shadow memory, quarantine). "
               "CI: --duration 60. See perf/SOAK.md.")
    p.add_argument("--server", help="server binary (default build/ringcast, or build-asan/ringcast with --asan)")
    p.add_argument("--static", default=str(REPO / "static"), help="the chat page directory (default: repo static/)")
    p.add_argument("--duration", type=float, default=600, help="seconds from server start to wind-down (600)")
    p.add_argument("--clients", type=int, help="long-lived healthy clients (5000; 500 with --asan)")
    p.add_argument("--churn", type=float, help="connects (and disconnects) per second (100; 20 with --asan)")
    p.add_argument("--churn-life", type=float, default=3.0, help="mean churn client lifetime, s (3)")
    p.add_argument("--churn-inflight", type=int, default=400, help="most churn clients opening at once (400)")
    p.add_argument("--rate", type=float, default=20, help="broadcast messages per second, all senders (20)")
    p.add_argument("--senders", type=int, default=4, help="sender connections (4), each in every room")
    p.add_argument("--rooms", type=int, default=4, help="big rooms for the base clients (4)")
    p.add_argument("--small-room", type=int, default=40,
                   help="base clients in a small room (<= 100 members: join/leave events) (40; 0: none)")
    p.add_argument("--msg-bytes", type=int, default=1000, help="message text length (1000)")
    p.add_argument("--slow", type=int, default=50, help="slow (never reading) clients kept alive (50)")
    p.add_argument("--slow-rcvbuf", type=int, default=4096, help="SO_RCVBUF of slow clients (4096)")
    p.add_argument("--slow-mss", type=int, default=1460,
                   help="TCP_MAXSEG of slow clients (1460, as across a real network; 0: loopback's 64 KiB MSS, "
                        "with which the kernel lets the server's send buffer grow to tcp_wmem max, 4 MiB, "
                        "before --max-queue starts counting)")
    p.add_argument("--slow-min-left", type=float, default=30,
                   help="replace a dropped slow client only with this many seconds left (30)")
    p.add_argument("--max-queue", type=int, default=262144, help="server --max-queue (262144)")
    p.add_argument("--close-timeout", type=float, default=5, help="the server's --close-timeout (its default, 5)")
    p.add_argument("--send-timeout", type=int,
                   help="the server's --send-timeout, passed only when given (default: the server's own, 10)")
    p.add_argument("--catchup-clients", type=int,
                   help="catch-up clients (40; 10 with --asan; 0: none): live in the storm room, away while it moves "
                        "on by a --catchup-gap, then back with ?since=<last id>, a group at a time within "
                        "--storm-spread seconds; every replay must be whole, in order, then resumed complete:true")
    p.add_argument("--catchup-groups", type=int, default=2,
                   help="groups the catch-up clients storm in, taking turns (2)")
    p.add_argument("--catchup-gap", default="1M:3M",
                   help="how far the storm room moves on while a catch-up client is away, bytes of message frames, "
                        "MIN[:MAX] with K/M suffixes, each time a random size in between (1M:3M: ~950-2,800 "
                        "messages at the default sizes, beyond the server's 1,000 in memory)")
    p.add_argument("--catchup-live", type=float, default=3, help="seconds live between a group's storms (3)")
    p.add_argument("--catchup-timeout", type=float, default=30,
                   help="seconds from a reconnect to its `resumed` before it counts as stuck (30)")
    p.add_argument("--storm-rate", type=float, default=200,
                   help="messages per second to the storm room, from its own sender (200)")
    p.add_argument("--storm-bytes", type=int, help="message text length in the storm room (--msg-bytes)")
    p.add_argument("--storm-base", type=int,
                   help="of --clients, base clients that live in the storm room (10; 4 with --asan)")
    p.add_argument("--storm-spread", type=float, default=1.0,
                   help="a storm's reconnects are spread over this many seconds (1)")
    p.add_argument("--src-addrs", type=int, default=20, help="spread clients over 127.0.0.1..127.0.0.N (20)")
    p.add_argument("--sample", type=float, default=5, help="sampling period, s (5)")
    p.add_argument("--rss-pct", type=int, default=20, help="RSS growth threshold, percent (20)")
    p.add_argument("--rss-mib", type=int, default=32, help="RSS growth threshold, MiB (32); both must be exceeded")
    p.add_argument("--fd-slack", type=int, default=16, help="fds allowed over connections + start constant (16)")
    p.add_argument("--asan", action="store_true", help="ASan build: build-asan/ringcast, --clients 500 --churn 20")
    p.add_argument("--keep", action="store_true", help="keep the temporary working dir (server log, database)")
    p.add_argument("--seed", type=int, help="random seed")
    a = p.parse_args(argv)
    if a.server is None:
        a.server = str(REPO / ("build-asan/ringcast" if a.asan else "build/ringcast"))
    a.server = os.path.abspath(a.server)
    a.static = os.path.abspath(a.static)
    if a.clients is None:
        a.clients = 500 if a.asan else 5000
    if a.churn is None:
        a.churn = 20 if a.asan else 100
    if a.catchup_clients is None:
        a.catchup_clients = 10 if a.asan else 40
    if a.storm_base is None:
        a.storm_base = 4 if a.asan else 10
    if a.storm_bytes is None:
        a.storm_bytes = a.msg_bytes
    try:
        lo, _, hi = a.catchup_gap.partition(":")
        a.gap_min = parse_size(lo)
        a.gap_max = parse_size(hi) if hi else a.gap_min
    except ValueError:
        p.error("--catchup-gap: MIN[:MAX] in bytes, with an optional K or M suffix")
    if a.catchup_clients < 0 or a.catchup_groups < 1 or a.storm_rate <= 0 or a.storm_spread < 0 \
            or not 0 < a.gap_min <= a.gap_max or a.storm_bytes < 24:
        p.error("need --catchup-clients >= 0, --catchup-groups >= 1, --storm-rate > 0, --storm-spread >= 0, "
                "0 < --catchup-gap MIN <= MAX, --storm-bytes >= 24")
    if a.clients < 1 or a.rate <= 0 or a.senders < 1 or a.rooms < 1 or a.duration < 20:
        p.error("need --clients >= 1, --rate > 0, --senders >= 1, --rooms >= 1, --duration >= 20")
    if a.rooms + (1 if a.small_room else 0) > 16:
        p.error("at most 16 rooms in all (a connection may join 16)")
    sockets = a.clients + a.slow + a.senders + 1 + 2 * a.catchup_clients + int(a.churn_inflight + a.churn * (2 * a.churn_life + 10)) + 64
    if sockets > 18000:
        p.error("about %d sockets needed; the open-file limit is 20,000 per process: use fewer clients/churn" % sockets)
    if a.churn_life < 0.5:
        p.error("--churn-life must be >= 0.5")
    return a


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    if a.seed is not None:
        random.seed(a.seed)
    soak = Soak(a)

    def result(ok):
        print("1 passed, 0 failed" if ok else "0 passed, 1 failed", flush=True)

    if websockets is None:
        print("soak: python3-websockets is not installed")
        result(False)
        return 1
    if not (os.path.isfile(a.server) and os.access(a.server, os.X_OK)):
        print("soak: server binary %s not found or not executable (build it, or pass --server)" % a.server)
        result(False)
        return 1

    hard = a.duration + 60
    done = threading.Event()

    def watchdog():
        if done.wait(hard):
            return
        print("\nsoak: hard deadline (%d s) reached: killing the server and exiting" % hard, flush=True)
        soak.failures.append("hard deadline reached")
        try:
            soak.cleanup()
        finally:
            result(False)
            os._exit(1)

    threading.Thread(target=watchdog, daemon=True).start()
    try:
        soak.t0 = time.monotonic()
        soak.t_end = soak.t0 + a.duration
        if soak.start_server():
            try:
                asyncio.run(soak.run())
            except Exception as e:  # noqa: BLE001
                import traceback
                traceback.print_exc()
                soak.fail("soak driver error: %r" % e)
            if soak.proc.poll() is not None and soak.exit_status is None:
                rc = soak.proc.returncode
                if rc != 0 and not any("exited" in f for f in soak.failures):
                    soak.fail("server exited with %s" % ("signal %d" % -rc if rc < 0 else "status %d" % rc))
            soak.judge()
        soak.summary()
    finally:
        soak.cleanup()
        done.set()
    ok = not soak.failures
    result(ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
