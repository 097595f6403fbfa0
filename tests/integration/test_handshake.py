"""WebSocket opening handshake (RFC 6455 section 4) on / and /ws."""

import pytest

from rawws import RawWS, HTTPConn, accept_for, upgrade_request, request
from wsutil import run, join, close_all, recv_type


def upgrade(server, path="/", headers=None, key=None, method="GET"):
    raw = upgrade_request(server.host, server.port, path, key=key, headers=headers, method=method)
    return request(server.host, server.port, raw)


def test_rfc_example_key_exact_accept(server):
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    assert accept_for(key) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    r = upgrade(server, "/", key=key)
    assert r.status == 101, r
    assert r.header("Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", r
    assert r.header("Upgrade", "").lower() == "websocket", r
    assert "upgrade" in [t.strip().lower() for t in r.header("Connection", "").split(",")], r


@pytest.mark.parametrize("path", ["/", "/ws", "/?room=lobby", "/ws?room=dev"])
def test_raw_handshake_paths(server, path):
    with RawWS.connect(server.host, server.port, path) as ws:
        w = ws.recv_type("welcome")
        assert w["room"] == ("dev" if "dev" in path else "lobby")
        assert ws.is_open(2)


def test_101_selects_no_extension_or_subprotocol(server):
    hdrs = [("Sec-WebSocket-Extensions", "x-webkit-deflate-frame, x-unknown; a=1"),
            ("Sec-WebSocket-Protocol", "chat, superchat")]
    with RawWS.connect(server.host, server.port, "/", headers=hdrs) as ws:
        # the server implements no extension but permessage-deflate
        # (test_deflate.py): it must not accept another
        assert ws.response.header("Sec-WebSocket-Extensions") is None, ws.response
        assert ws.response.header("Sec-WebSocket-Protocol") is None, ws.response


def test_library_client_root_and_ws(server):
    async def main():
        a, wa = await join(server, "")          # ws://host:port
        b, wb = await join(server, "/ws")
        assert wa["id"] != wb["id"]
        await a.send("from-a")
        ma = await recv_type(a, "message")
        mb = await recv_type(b, "message")
        assert ma["text"] == mb["text"] == "from-a"
        await close_all(a, b)
    run(main())


def test_handshake_split_in_pieces(server):
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    raw = upgrade_request(server.host, server.port, "/ws", key=key)
    with HTTPConn(server.host, server.port) as c:
        import time
        for i in range(0, len(raw), 5):
            c.send(raw[i:i + 5])
            time.sleep(0.002)
        r = c.response()
        assert r.status == 101, r
        assert r.header("Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_missing_key_400(server):
    r = upgrade(server, headers=[("Sec-WebSocket-Key", None)])
    assert r.status == 400, r


@pytest.mark.parametrize("key", [
    "dGhlIHNhbXBsZQ==",               # base64 of 10 bytes
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAA",   # 21 bytes
    "not base64 at all!!!!!!!",
    "",
    "dGhlIHNhbXBsZSBub25jZQ",         # missing padding
])
def test_bad_key_400(server, key):
    r = upgrade(server, key=key)
    assert r.status == 400, r


@pytest.mark.parametrize("version", ["8", "12", "14", "abc"])
def test_wrong_version_426(server, version):
    r = upgrade(server, headers=[("Sec-WebSocket-Version", version)])
    assert r.status == 426, r
    assert r.header("Sec-WebSocket-Version") == "13", r


def test_no_connection_upgrade_400(server):
    r = upgrade(server, headers=[("Connection", None)])
    assert r.status == 400, r


def test_connection_keep_alive_only_400(server):
    r = upgrade(server, headers=[("Connection", "keep-alive")])
    assert r.status == 400, r


@pytest.mark.parametrize("headers", [
    [("Connection", "keep-alive, Upgrade")],
    [("Connection", "keep-alive,upgrade")],
    [("Upgrade", "WebSocket")],
    [("Connection", "UPGRADE"), ("Upgrade", "WEBSOCKET")],
], ids=["list", "list-nospace-lower", "Upgrade-WebSocket", "uppercase"])
def test_tokens_case_insensitive_101(server, headers):
    with RawWS.connect(server.host, server.port, "/", headers=headers) as ws:
        assert ws.recv_type("welcome")["type"] == "welcome"


def test_header_names_case_insensitive_101(server):
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    raw = ("GET /ws HTTP/1.1\r\nhost: localhost\r\nupgrade: websocket\r\nCONNECTION: Upgrade\r\n"
           "sec-websocket-key: %s\r\nSEC-WEBSOCKET-VERSION: 13\r\n\r\n" % key).encode()
    r = request(server.host, server.port, raw)
    assert r.status == 101, r
    assert r.header("Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_post_upgrade_405(server):
    r = upgrade(server, method="POST")
    assert r.status == 405, r
    assert "GET" in [m.strip() for m in r.header("Allow", "").split(",")], r


def test_http10_upgrade_400(server):
    raw = upgrade_request(server.host, server.port, "/ws").replace(b"HTTP/1.1\r\n", b"HTTP/1.0\r\n", 1)
    r = request(server.host, server.port, raw)
    assert r.status == 400, r


@pytest.mark.parametrize("query", [
    "room=bad+name%21",
    "room=bad%20name!",
    "room=",
    "room=" + "a" * 65,
    "room=%2e%2e%2f",
    "room=caf%C3%A9",
])
def test_bad_room_400(server, query):
    r = upgrade(server, "/?" + query)
    assert r.status == 400, r


@pytest.mark.parametrize("query,room", [
    ("foo=1&room=dev", "dev"),
    ("room=dev%2D1", "dev-1"),
    ("room=a.b_c-D9", "a.b_c-D9"),
])
def test_room_query_forms(server, query, room):
    with RawWS.connect(server.host, server.port, "/ws?" + query) as ws:
        assert ws.recv_type("welcome")["room"] == room


def test_room_name_64_chars_ok(server):
    name = "A-z_0.9" * 9 + "x"  # 64 chars of the allowed set
    assert len(name) == 64
    with RawWS.connect(server.host, server.port, "/ws?room=" + name) as ws:
        assert ws.recv_type("welcome")["room"] == name


def test_unknown_path_upgrade_404(server):
    r = upgrade(server, "/chat")
    assert r.status == 404, r


def test_frame_in_same_write_as_handshake(server):
    from rawws import build_frame, OP_TEXT, SockReader, read_response, RawWS as R, connect as tcp
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    sock = tcp(server.host, server.port)
    sock.sendall(upgrade_request(server.host, server.port, "/ws", key=key)
                 + build_frame(OP_TEXT, b"early bird"))
    reader = SockReader(sock)
    resp = read_response(reader)
    assert resp.status == 101, resp
    with R(sock, reader, resp, key) as ws:
        assert ws.recv_type("message")["text"] == "early bird"


def test_head_of_http_then_upgrade_on_same_connection(server):
    # a keep-alive connection that first fetches the page, then upgrades
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    from rawws import simple_request, RawWS as R
    c = HTTPConn(server.host, server.port)
    c.send(simple_request("GET", "/style.css"))
    assert c.response().status == 200
    c.send(upgrade_request(server.host, server.port, "/ws", key=key))
    r = c.response()
    assert r.status == 101, r
    with R(c.sock, c.reader, r, key) as ws:
        ws.welcome()
        ws.send_text("after keep-alive")
        assert ws.recv_type("message")["text"] == "after keep-alive"


# ---------------------------------------------------------------- no body, each header once


def with_extra_lines(raw, *lines):
    """An upgrade request with header lines added before its blank line."""
    assert raw.endswith(b"\r\n\r\n")
    return raw[:-2] + b"".join(l.encode("latin-1") + b"\r\n" for l in lines) + b"\r\n"


def refused_and_closed(server, raw, status):
    with HTTPConn(server.host, server.port) as c:
        c.send(raw)
        r = c.response()
        assert r.status == status, r
        assert c.closed_within(2), "connection left open after %d" % status


def test_upgrade_with_content_length_body_400_and_nothing_broadcast(server):
    # Once a 101 is out, the bytes of a body would be read as frames: a chat
    # message smuggled past anything that only looked at the head.
    from rawws import build_frame, OP_TEXT
    from rcutil import connect_seq, raw_barrier
    with RawWS.connect(server.host, server.port, "/") as watcher:
        connect_seq(watcher)
        frame = build_frame(OP_TEXT, b"smuggled in a body")
        raw = with_extra_lines(upgrade_request(server.host, server.port, "/"),
                               "Content-Length: %d" % len(frame)) + frame
        refused_and_closed(server, raw, 400)
        seen = raw_barrier(watcher)
        assert not [m for m in seen if m.get("text") == "smuggled in a body"], seen


def test_upgrade_with_chunked_body_refused_and_nothing_broadcast(server):
    # Transfer-Encoding is refused by the parser (501) before any upgrade logic.
    from rawws import build_frame, OP_TEXT
    from rcutil import connect_seq, raw_barrier
    with RawWS.connect(server.host, server.port, "/") as watcher:
        connect_seq(watcher)
        frame = build_frame(OP_TEXT, b"smuggled in chunks")
        raw = with_extra_lines(upgrade_request(server.host, server.port, "/"),
                               "Transfer-Encoding: chunked")
        raw += b"%x\r\n" % len(frame) + frame + b"\r\n0\r\n\r\n"
        with HTTPConn(server.host, server.port) as c:
            c.send(raw)
            r = c.response()
            assert r.status in (400, 501), r
            assert c.closed_within(2)
        seen = raw_barrier(watcher)
        assert not [m for m in seen if m.get("text") == "smuggled in chunks"], seen


def test_upgrade_with_content_length_0_101(server):
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    raw = with_extra_lines(upgrade_request(server.host, server.port, "/", key=key), "Content-Length: 0")
    r = request(server.host, server.port, raw)
    assert r.status == 101, r
    assert r.header("Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", r


@pytest.mark.parametrize("second", ["dGhlIHNhbXBsZSBub25jZQ==", "AQIDBAUGBwgJCgsMDQ4PEA=="],
                         ids=["same-key-twice", "two-keys"])
def test_duplicate_key_400(server, second):
    # RFC 6455 section 11.3.1: at most once; which one would the accept answer?
    raw = with_extra_lines(upgrade_request(server.host, server.port, "/", key="dGhlIHNhbXBsZSBub25jZQ=="),
                           "Sec-WebSocket-Key: " + second)
    refused_and_closed(server, raw, 400)


def test_duplicate_version_400(server):
    raw = with_extra_lines(upgrade_request(server.host, server.port, "/"), "Sec-WebSocket-Version: 13")
    refused_and_closed(server, raw, 400)
