"""A Server-Sent Events client over a plain socket (every read with a
deadline), and POST /send, for test_sse.py."""

import json
import time
import urllib.parse

from rawws import SockReader, HTTPConn, connect, parse_head, read_response, Closed


class SSE:
    """GET /sse?QUERY; .status and .headers are the response's; events are
    read with event()."""

    def __init__(self, server, query="room=lobby", headers=(), timeout=5.0, rcvbuf=None):
        self.sock = connect(server.host, server.port, timeout, rcvbuf=rcvbuf)
        lines = ["GET /sse?%s HTTP/1.1" % query, "Host: localhost"]
        lines += ["%s: %s" % (k, v) for k, v in headers]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.reader = SockReader(self.sock)
        head = self.reader.read_until(b"\r\n\r\n", timeout=timeout)
        _, self.status, _, self.headers = parse_head(head[:-4])
        self.key = None
        self.received = 0  # event blocks read, keep-alive comments included

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def raw_event(self, timeout=5.0, comments=False):
        """The next event block as {"id": str|None, "event": str|None,
        "data": parsed JSON|None, "raw": bytes}; comment-only blocks are
        skipped unless comments."""
        deadline = time.monotonic() + timeout
        while True:
            block = self.reader.read_until(b"\n\n", deadline=deadline)
            self.received += 1
            ev = {"id": None, "event": None, "data": None, "raw": block, "comment": False}
            for line in block[:-2].split(b"\n"):
                if line.startswith(b":"):
                    ev["comment"] = True
                elif line.startswith(b"id: "):
                    ev["id"] = line[4:].decode()
                elif line.startswith(b"event: "):
                    ev["event"] = line[7:].decode()
                elif line.startswith(b"data: "):
                    assert ev["data"] is None, "one data: line per event: %r" % block
                    ev["data"] = json.loads(line[6:])
                else:
                    raise AssertionError("unexpected line %r in %r" % (line, block))
            if ev["data"] is None and not comments:
                continue
            return ev

    def event(self, timeout=5.0):
        """The next event's JSON."""
        return self.raw_event(timeout)["data"]

    def until(self, pred, timeout=5.0):
        """Events (raw) up to and including the first whose data satisfies pred."""
        deadline = time.monotonic() + timeout
        out = []
        while True:
            ev = self.raw_event(max(0.01, deadline - time.monotonic()))
            out.append(ev)
            if pred(ev["data"]):
                return out

    def connect_seq(self, timeout=5.0):
        """session, then everything up to history or resumed; sets .key."""
        first = self.event(timeout)
        assert first["type"] == "session", first
        self.key = first["session"]
        return [first] + [e["data"] for e in self.until(
            lambda d: d["type"] in ("history", "resumed"), timeout)]

    def eof_within(self, timeout):
        try:
            data, _ = self.reader.read_to_eof(timeout)
            return data
        except TimeoutError:
            return None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def post_request(key, body, headers=(), length=True, target=None):
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    lines = ["POST %s HTTP/1.1" % (target or "/send?session=" + urllib.parse.quote(key or "")),
             "Host: localhost"]
    lines += ["%s: %s" % (k, v) for k, v in headers]
    if length:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def post(server, key, body, headers=(), conn=None, length=True, timeout=5.0):
    """POST /send (on conn, or a fresh connection); returns (Response, JSON body or None)."""
    own = conn is None
    c = conn or HTTPConn(server.host, server.port, timeout)
    try:
        c.send(post_request(key, body, headers, length))
        r = c.response(timeout=timeout)
    finally:
        if own:
            c.close()
    try:
        return r, json.loads(r.body) if r.body else None
    except ValueError:
        return r, None
