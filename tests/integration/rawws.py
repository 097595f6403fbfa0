"""rawws: a deliberately low-level HTTP / WebSocket client over plain sockets.

The websockets library refuses to send malformed frames, so every
protocol-violation test goes through this module instead. It does the opening
handshake by hand (and checks Sec-WebSocket-Accept), can send any bytes
(frames masked or not, any opcode, RSV bits, fragmented, split into pieces
with small sleeps in between) and parses the server's frames, which must be
unmasked. Every read has a deadline: nothing here can block forever.
"""

import base64
import errno
import hashlib
import json
import os
import select
import socket
import struct
import time
import zlib

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

DEFAULT_TIMEOUT = 5.0


class Closed(Exception):
    """The peer closed the TCP connection (EOF, or reset when .reset)."""

    def __init__(self, msg, reset=False, data=b""):
        super().__init__(msg)
        self.reset = reset
        self.data = data


class ServerProtocolError(AssertionError):
    """The server sent something RFC 6455 forbids it to send."""


def accept_for(key):
    digest = hashlib.sha1((key + WS_GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def new_key():
    return base64.b64encode(os.urandom(16)).decode("ascii")


# --------------------------------------------------------------------------
# Byte stream reader with deadlines


class SockReader:
    def __init__(self, sock, initial=b""):
        self.sock = sock
        self.buf = bytearray(initial)
        self.eof = False
        self.reset = False

    def _fill(self, deadline, what="data"):
        """Read at least one more byte, or raise Closed / TimeoutError."""
        if self.eof:
            raise Closed("connection closed before %s" % what, reset=self.reset)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out waiting for %s (have %d buffered bytes: %r)"
                               % (what, len(self.buf), bytes(self.buf[:200])))
        r, _, _ = select.select([self.sock], [], [], remaining)
        if not r:
            raise TimeoutError("timed out waiting for %s (have %d buffered bytes: %r)"
                               % (what, len(self.buf), bytes(self.buf[:200])))
        try:
            chunk = self.sock.recv(262144)
        except ConnectionResetError:
            self.eof = True
            self.reset = True
            raise Closed("connection reset before %s" % what, reset=True)
        except OSError as e:
            if e.errno in (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED):
                self.eof = True
                self.reset = True
                raise Closed("connection reset before %s" % what, reset=True)
            raise
        if not chunk:
            self.eof = True
            raise Closed("connection closed (EOF) before %s" % what)
        self.buf += chunk

    def read_exact(self, n, timeout=DEFAULT_TIMEOUT, deadline=None, what=None):
        deadline = deadline if deadline is not None else time.monotonic() + timeout
        while len(self.buf) < n:
            self._fill(deadline, what or ("%d bytes" % n))
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_until(self, delim, timeout=DEFAULT_TIMEOUT, deadline=None, limit=1 << 20):
        deadline = deadline if deadline is not None else time.monotonic() + timeout
        while True:
            i = self.buf.find(delim)
            if i >= 0:
                out = bytes(self.buf[:i + len(delim)])
                del self.buf[:i + len(delim)]
                return out
            if len(self.buf) > limit:
                raise AssertionError("no %r within %d bytes" % (delim, limit))
            self._fill(deadline, "%r" % delim)

    def read_to_eof(self, timeout=DEFAULT_TIMEOUT):
        """Read everything until EOF/RST; returns (data, reset). Raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._fill(deadline, "EOF")
            except Closed as c:
                out = bytes(self.buf)
                self.buf.clear()
                return out, c.reset


# --------------------------------------------------------------------------
# HTTP


class Response:
    def __init__(self, version, status, reason, headers, body):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value) in order received
        self.body = body

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def __repr__(self):
        return "<Response %s %s %r headers=%r body=%r>" % (
            self.status, self.reason, self.version, self.headers, self.body[:200])


def parse_head(head):
    text = head.decode("latin-1")
    lines = text.split("\r\n")
    status_line = lines[0]
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise AssertionError("bad status line from server: %r" % status_line)
    version = parts[0]
    status = int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        if ":" not in line:
            raise AssertionError("bad header line from server: %r" % line)
        k, v = line.split(":", 1)
        headers.append((k.strip(), v.strip()))
    return version, status, reason, headers


def read_response(reader, head_request=False, timeout=DEFAULT_TIMEOUT):
    """Read one HTTP response. The body is Content-Length bytes (none for
    HEAD, 1xx, 204, 304); without Content-Length it is everything until EOF."""
    deadline = time.monotonic() + timeout
    head = reader.read_until(b"\r\n\r\n", deadline=deadline, limit=65536)
    version, status, reason, headers = parse_head(head[:-4])
    resp = Response(version, status, reason, headers, b"")
    if head_request or status < 200 or status in (204, 304) or status == 101:
        return resp
    cl = resp.header("Content-Length")
    if cl is not None:
        n = int(cl)
        resp.body = reader.read_exact(n, deadline=deadline, what="response body (%d bytes)" % n)
    else:
        data, _ = reader.read_to_eof(timeout=max(0.1, deadline - time.monotonic()))
        resp.body = data
    return resp


def connect(host, port, timeout=DEFAULT_TIMEOUT, rcvbuf=None):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect((host, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(timeout)  # sends block at most this long
    return s


class HTTPConn:
    """One raw TCP connection for HTTP exchanges."""

    def __init__(self, host, port, timeout=DEFAULT_TIMEOUT):
        self.sock = connect(host, port, timeout)
        self.reader = SockReader(self.sock)

    def send(self, data):
        self.sock.sendall(data)

    def response(self, head_request=False, timeout=DEFAULT_TIMEOUT):
        return read_response(self.reader, head_request=head_request, timeout=timeout)

    def closed_within(self, timeout):
        """True when the server closes the connection (EOF or RST) within timeout."""
        try:
            self.reader.read_to_eof(timeout)
            return True
        except TimeoutError:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def request(host, port, data, head_request=False, timeout=DEFAULT_TIMEOUT):
    """Send raw request bytes on a fresh connection, return one Response."""
    with HTTPConn(host, port, timeout) as c:
        c.send(data)
        return c.response(head_request=head_request, timeout=timeout)


def simple_request(method, target, host_header="localhost", extra=None, version="HTTP/1.1", body=b""):
    lines = ["%s %s %s" % (method, target, version), "Host: %s" % host_header]
    for k, v in (extra or []):
        lines.append("%s: %s" % (k, v))
    if body:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def upgrade_request(host, port, path="/", key=None, headers=None, method="GET"):
    """Build an upgrade request. headers: list of (name, value) that override
    (value None = omit) or add to the defaults."""
    key = key if key is not None else new_key()
    defaults = [
        ("Host", "%s:%d" % (host, port)),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13"),
    ]
    overrides = {k.lower(): (k, v) for k, v in (headers or [])}
    out = []
    for k, v in defaults:
        if k.lower() in overrides:
            k2, v2 = overrides.pop(k.lower())
            if v2 is not None:
                out.append((k2, v2))
        else:
            out.append((k, v))
    for k, v in (headers or []):
        if k.lower() in overrides and v is not None:
            out.append((k, v))
    text = "%s %s HTTP/1.1\r\n" % (method, path) + "".join("%s: %s\r\n" % kv for kv in out) + "\r\n"
    return text.encode("latin-1")


# --------------------------------------------------------------------------
# WebSocket frames


def mask_bytes(payload, key):
    if not payload:
        return b""
    n = len(payload)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def build_frame(opcode, payload=b"", fin=True, mask=True, rsv=0, mask_key=None, length=None,
                length_form=None):
    """Encode one client frame. length overrides the declared payload length;
    length_form forces 7 / 16 / 64 for the length encoding."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    n = len(payload) if length is None else length
    mbit = 0x80 if mask else 0
    form = length_form or (7 if n < 126 else 16 if n < 65536 else 64)
    if form == 7:
        hdr = bytes([b0, mbit | n])
    elif form == 16:
        hdr = bytes([b0, mbit | 126]) + struct.pack("!H", n)
    else:
        hdr = bytes([b0, mbit | 127]) + struct.pack("!Q", n)
    if mask:
        key = mask_key if mask_key is not None else os.urandom(4)
        return hdr + key + mask_bytes(payload, key)
    return hdr + payload


def deflate_message(data):
    """A message's payload as permessage-deflate sends it (RFC 7692 §7.2.1):
    raw deflate, sync-flushed, without the trailing 00 00 ff ff."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    c = zlib.compressobj(wbits=-15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def inflate_message(data):
    """The other way: put the trailer back and inflate (§7.2.2)."""
    return zlib.decompressobj(wbits=-15).decompress(data + b"\x00\x00\xff\xff")


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    return struct.pack("!H", code) + reason


class Frame:
    def __init__(self, fin, rsv, opcode, masked, payload):
        self.fin = fin
        self.rsv = rsv
        self.opcode = opcode
        self.masked = masked
        self.payload = payload

    @property
    def text(self):
        return self.payload.decode("utf-8")

    def json(self):
        return json.loads(self.payload.decode("utf-8"))

    @property
    def close_code(self):
        if self.opcode != OP_CLOSE:
            raise AssertionError("not a close frame: %r" % self)
        if len(self.payload) == 0:
            return None
        if len(self.payload) == 1:
            raise ServerProtocolError("server close frame with 1-byte payload")
        return struct.unpack("!H", self.payload[:2])[0]

    @property
    def close_reason(self):
        return self.payload[2:].decode("utf-8")

    def __repr__(self):
        return "<Frame op=%#x fin=%s rsv=%d len=%d %r>" % (
            self.opcode, self.fin, self.rsv, len(self.payload), self.payload[:120])


def split_data(data, pieces):
    """pieces: None (one piece), int (chunk size) or list of cut offsets."""
    if pieces is None:
        return [data]
    if isinstance(pieces, int):
        return [data[i:i + pieces] for i in range(0, len(data), pieces)] or [b""]
    cuts = [0] + sorted(pieces) + [len(data)]
    return [data[a:b] for a, b in zip(cuts, cuts[1:]) if b > a]


def parse_frames(data):
    """Parse a byte string of complete server frames (a trailing partial
    frame is ignored)."""
    import socket as _s
    out = []
    a, b = _s.socketpair()
    try:
        b.close()
        ws = RawWS(a, SockReader(a, data), None, None)
        while ws.reader.buf:
            try:
                out.append(ws.recv_frame(timeout=0.5))
            except (Closed, TimeoutError):
                break
    finally:
        a.close()
    return out


class RawWS:
    """A WebSocket client connection over a raw socket."""

    def __init__(self, sock, reader, response, key):
        self.sock = sock
        self.reader = reader
        self.response = response
        self.key = key
        # permessage-deflate accepted: a data message's first frame may
        # carry RSV1 (compressed), which recv_message inflates
        answer = response.header("Sec-WebSocket-Extensions") if response else None
        self.deflate = "permessage-deflate" in (answer or "")
        self.last_compressed = False

    # -- opening --------------------------------------------------------

    @classmethod
    def connect(cls, host, port, path="/", headers=None, timeout=DEFAULT_TIMEOUT, rcvbuf=None,
                key=None):
        key = key if key is not None else new_key()
        sock = connect(host, port, timeout, rcvbuf=rcvbuf)
        try:
            sock.sendall(upgrade_request(host, port, path, key=key, headers=headers))
            reader = SockReader(sock)
            resp = read_response(reader, timeout=timeout)
            if resp.status != 101:
                raise AssertionError("expected 101 for %s, got %r" % (path, resp))
            if resp.header("Upgrade", "").lower() != "websocket":
                raise AssertionError("101 without Upgrade: websocket: %r" % resp)
            conn_tokens = [t.strip().lower() for t in resp.header("Connection", "").split(",")]
            if "upgrade" not in conn_tokens:
                raise AssertionError("101 without Connection: Upgrade: %r" % resp)
            got = resp.header("Sec-WebSocket-Accept")
            if got != accept_for(key):
                raise AssertionError("Sec-WebSocket-Accept %r, expected %r" % (got, accept_for(key)))
        except BaseException:
            sock.close()
            raise
        return cls(sock, reader, resp, key)

    # -- sending --------------------------------------------------------

    send_error = None

    def send_raw(self, data, pieces=None, delay=0.0, strict=False):
        """Send bytes. A server that already closed the connection (it may
        close on the first bad byte) makes sending fail with EPIPE/ECONNRESET:
        that is recorded in .send_error and ignored unless strict, so that the
        test goes on to check what the server answered."""
        parts = split_data(data, pieces)
        for i, p in enumerate(parts):
            try:
                self.sock.sendall(p)
            except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError) as e:
                self.send_error = e
                if strict:
                    raise
                return
            if delay and i + 1 < len(parts):
                time.sleep(delay)

    def send_frame(self, opcode, payload=b"", fin=True, mask=True, rsv=0, mask_key=None,
                   pieces=None, delay=0.0, length=None, length_form=None):
        self.send_raw(build_frame(opcode, payload, fin=fin, mask=mask, rsv=rsv, mask_key=mask_key,
                                  length=length, length_form=length_form), pieces, delay)

    def send_text(self, text, **kw):
        self.send_frame(OP_TEXT, text.encode("utf-8") if isinstance(text, str) else text, **kw)

    def send_json(self, obj, **kw):
        self.send_text(json.dumps(obj), **kw)

    def send_close(self, code=None, reason=b"", payload=None, **kw):
        self.send_frame(OP_CLOSE, close_payload(code, reason) if payload is None else payload, **kw)

    # -- receiving ------------------------------------------------------

    def recv_frame(self, timeout=DEFAULT_TIMEOUT, deadline=None):
        """One server frame. Raises TimeoutError, Closed, or ServerProtocolError
        when the server frame itself breaks RFC 6455 (masked, RSV, bad control)."""
        deadline = deadline if deadline is not None else time.monotonic() + timeout
        h = self.reader.read_exact(2, deadline=deadline, what="frame header")
        fin = bool(h[0] & 0x80)
        rsv = (h[0] >> 4) & 7
        opcode = h[0] & 0xF
        masked = bool(h[1] & 0x80)
        n = h[1] & 0x7F
        if n == 126:
            n = struct.unpack("!H", self.reader.read_exact(2, deadline=deadline))[0]
            if n < 126:
                raise ServerProtocolError("non-minimal 16-bit length %d" % n)
        elif n == 127:
            n = struct.unpack("!Q", self.reader.read_exact(8, deadline=deadline))[0]
            if n < 65536 or n >> 63:
                raise ServerProtocolError("non-minimal or invalid 64-bit length %d" % n)
        key = self.reader.read_exact(4, deadline=deadline) if masked else None
        payload = self.reader.read_exact(n, deadline=deadline, what="frame payload (%d bytes)" % n)
        if masked:
            payload = mask_bytes(payload, key)
        f = Frame(fin, rsv, opcode, masked, payload)
        if masked:
            raise ServerProtocolError("server sent a masked frame: %r" % f)
        if rsv and not (self.deflate and rsv == 4 and opcode in (OP_TEXT, OP_BINARY)):
            raise ServerProtocolError("server sent RSV bits: %r" % f)
        if opcode in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF):
            raise ServerProtocolError("server sent reserved opcode: %r" % f)
        if opcode >= 8 and (n > 125 or not fin):
            raise ServerProtocolError("server sent bad control frame: %r" % f)
        return f

    def recv_message(self, timeout=DEFAULT_TIMEOUT, on_control=None):
        """Next complete data message as (opcode, payload). Control frames go
        to on_control(frame) (pongs and pings are otherwise ignored); a close
        frame raises AssertionError."""
        deadline = time.monotonic() + timeout
        opcode, parts, compressed = None, [], False
        while True:
            f = self.recv_frame(deadline=deadline)
            if f.opcode >= 8:
                if on_control:
                    on_control(f)
                if f.opcode == OP_CLOSE:
                    raise AssertionError("got close frame %r (code %s) while waiting for a message"
                                         % (f, f.close_code))
                continue
            if f.opcode == OP_CONT:
                if opcode is None:
                    raise ServerProtocolError("server continuation without start")
            else:
                if opcode is not None:
                    raise ServerProtocolError("server new data frame inside fragmented message")
                opcode = f.opcode
                compressed = bool(f.rsv & 4)
            parts.append(f.payload)
            if f.fin:
                self.last_compressed = compressed
                payload = b"".join(parts)
                if compressed:
                    payload = inflate_message(payload)
                return opcode, payload

    def recv_json(self, timeout=DEFAULT_TIMEOUT):
        op, payload = self.recv_message(timeout)
        if op != OP_TEXT:
            raise AssertionError("expected a text message, got opcode %#x" % op)
        return json.loads(payload.decode("utf-8"))

    def recv_type(self, type_, timeout=DEFAULT_TIMEOUT, pred=None):
        """Next JSON message with the given type, or one of a tuple of types
        (others skipped)."""
        types = (type_,) if isinstance(type_, str) else tuple(type_)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no %r message within %.1fs" % (type_, timeout))
            m = self.recv_json(remaining)
            if m.get("type") in types and (pred is None or pred(m)):
                return m

    def welcome(self, timeout=DEFAULT_TIMEOUT):
        """Consume the connect sequence up to our own join; returns welcome."""
        w = self.recv_type("welcome", timeout)
        self.recv_type("join", timeout, pred=lambda m: m.get("user", {}).get("id") == w["id"])
        return w

    def recv_close(self, timeout=DEFAULT_TIMEOUT):
        """Skip data/ping/pong frames until a close frame; return it.
        Raises Closed if TCP closes first."""
        deadline = time.monotonic() + timeout
        while True:
            f = self.recv_frame(deadline=deadline)
            if f.opcode == OP_CLOSE:
                return f

    def expect_close(self, code, timeout=DEFAULT_TIMEOUT, reply=True, eof_timeout=None):
        """Expect a close frame with `code` (None = empty payload), reply with a
        close frame (as a well-behaved client) and expect the TCP connection to
        be closed by the server. Returns the close frame."""
        try:
            f = self.recv_close(timeout)
        except Closed as c:
            raise AssertionError("expected close frame %s, but TCP was closed first (%s)" % (code, c))
        except TimeoutError as t:
            raise AssertionError("expected close frame %s within %.1fs: %s" % (code, timeout, t))
        got = f.close_code
        assert got == code, "expected close code %s, got %s (reason %r)" % (code, got, f.payload[2:])
        if len(f.payload) > 2:
            f.payload[2:].decode("utf-8")  # reason must be UTF-8
        if reply:
            try:
                self.send_close(code if code is not None else None)
            except OSError:
                pass
        self.expect_eof(eof_timeout if eof_timeout is not None else timeout)
        return f

    def expect_eof(self, timeout=DEFAULT_TIMEOUT):
        """The server must close TCP within timeout. Frames still arriving
        before EOF are discarded. Returns the discarded bytes."""
        try:
            data, _ = self.reader.read_to_eof(timeout)
        except TimeoutError:
            raise AssertionError("server did not close the TCP connection within %.1fs" % timeout)
        return data

    def is_open(self, timeout=0.2):
        """Ping with a unique payload and expect the matching pong."""
        tag = os.urandom(8)
        self.send_frame(OP_PING, tag)
        deadline = time.monotonic() + timeout
        while True:
            f = self.recv_frame(deadline=deadline)
            if f.opcode == OP_PONG and f.payload == tag:
                return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
