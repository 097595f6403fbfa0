"""Origin checks on the WebSocket upgrade (README --allow-origin): a browser's
Origin must match the Host it connected to (403 otherwise); clients without
Origin are allowed; --allow-origin adds other allowed origins (repeatable, `*`
for any). On the default loopback listener a Host other than a loopback name
is 421 unless named with --allow-host (test_http.py), so tests that send
other names list them."""

import pytest

from rawws import RawWS
from rcutil import upgrade, http_get, connect_seq, send_and_ack


def status(server, origin=None, host=None, path="/"):
    headers = []
    if host is not None:
        headers.append(("Host", host))
    if origin is not None:
        headers.append(("Origin", origin))
    return upgrade(server, path, headers).status


def hostport(server):
    return "%s:%d" % (server.host, server.port)


def test_foreign_origin_403(server):
    for origin in ("http://evil.example", "https://evil.example", "null",
                   "http://%s.evil.example" % server.host, "http://127.0.0.1.evil.example:%d" % server.port,
                   "http://%s:%d" % (server.host, server.port + 1)):
        r = upgrade(server, "/", [("Origin", origin)])
        assert r.status == 403, (origin, r)
    assert status(server, "http://evil.example", path="/ws") == 403


@pytest.mark.server_args("--allow-host", "chat.local")
def test_origin_matching_host_101(server):
    assert status(server, "http://" + hostport(server)) == 101
    assert status(server, "http://" + hostport(server), path="/ws?room=dev") == 101
    # the Host header is what counts, whatever name the browser used
    assert status(server, "http://localhost:%d" % server.port, host="localhost:%d" % server.port) == 101
    assert status(server, "http://chat.local:%d" % server.port, host="chat.local:%d" % server.port) == 101
    # host names are case-insensitive
    assert status(server, "http://LOCALHOST:%d" % server.port, host="localhost:%d" % server.port) == 101


@pytest.mark.server_args("--allow-host", "other.example")
def test_origin_with_other_host_header_403(server):
    # an Origin equal to the address the client reached is not enough: it must match Host
    assert status(server, "http://" + hostport(server), host="other.example:%d" % server.port) == 403


def test_no_origin_101_and_chat_works(server):
    assert status(server) == 101
    with RawWS.connect(server.host, server.port, "/") as ws:
        connect_seq(ws)
        assert send_and_ack(ws, "no origin")["text"] == "no origin"


def test_refused_origin_does_not_disturb_others(server):
    with RawWS.connect(server.host, server.port, "/",
                       headers=[("Origin", "http://" + hostport(server))]) as ok:
        connect_seq(ok)
        for _ in range(5):
            assert status(server, "http://evil.example") == 403
        assert send_and_ack(ok, "still here")["type"] == "message"


def test_static_files_not_subject_to_origin(server):
    r = http_get(server, "/", headers=[("Origin", "http://evil.example")])
    assert r.status == 200, r


@pytest.mark.server_args("--allow-origin", "https://chat.example.com")
def test_allow_origin_exact_match_only(server):
    assert status(server, "https://chat.example.com") == 101
    with RawWS.connect(server.host, server.port, "/",
                       headers=[("Origin", "https://chat.example.com")]) as ws:
        assert connect_seq(ws)["welcome"]["room"] == "lobby"
    for origin in ("http://chat.example.com",           # other scheme
                   "https://chat.example.com.evil",     # suffix
                   "https://evil.chat.example.com",     # subdomain
                   "https://chat.example.co",           # prefix
                   "https://chat.example.com:8443",     # other port
                   "http://evil.example", "null"):
        assert status(server, origin) == 403, origin
    assert status(server) == 101  # no Origin: not a browser


@pytest.mark.server_args("--allow-origin", "https://a.example", "--allow-origin", "http://b.example:8080")
def test_allow_origin_repeatable(server):
    assert status(server, "https://a.example") == 101
    assert status(server, "http://b.example:8080") == 101
    assert status(server, "http://b.example") == 403
    assert status(server, "https://c.example") == 403
    assert status(server, "http://" + hostport(server)) == 101  # the page served here


@pytest.mark.server_args("--allow-origin", "*")
def test_allow_origin_star(server):
    for origin in ("http://evil.example", "https://chat.example.com", "null",
                   "http://" + hostport(server), "moz-extension://1234"):
        assert status(server, origin) == 101, origin
    assert status(server) == 101


@pytest.mark.server_args("--allow-origin", "https://other.example")
def test_allow_origin_adds_to_same_host(server):
    # --allow-origin must not lock out the page this server serves itself
    own = "http://" + hostport(server)
    assert status(server, own) == 101
    assert status(server, own, path="/ws?room=dev") == 101
    assert status(server, "http://localhost:%d" % server.port, host="localhost:%d" % server.port) == 101
    assert status(server, "https://other.example") == 101
    with RawWS.connect(server.host, server.port, "/", headers=[("Origin", own)]) as ws:
        connect_seq(ws)
        assert send_and_ack(ws, "own page")["text"] == "own page"
    for origin in ("https://third.example", "http://other.example", "http://%s:%d" % (server.host, server.port + 1)):
        assert status(server, origin) == 403, origin
