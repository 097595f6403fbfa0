"""HTTP/1.1 on the chat port: static files, errors, limits, keep-alive, pipelining."""

import re
import time

import pytest

from conftest import STATIC_DIR
from rawws import HTTPConn, request, simple_request
from rcutil import metrics, wait_metric


def static_bytes(name):
    p = STATIC_DIR / name
    if not p.is_file():
        pytest.fail("%s is missing from the static dir %s" % (name, STATIC_DIR), pytrace=False)
    return p.read_bytes()


def get(server, target, **kw):
    return request(server.host, server.port, simple_request("GET", target, **kw))


def assert_no_secret(resp):
    for marker in (b"root:", b"#include", b"/bin/", b"[core]", b"\x7fELF"):
        assert marker not in resp.body, "response leaks file contents: %r" % resp


# ---------------------------------------------------------------- static files


def test_get_index(server):
    r = get(server, "/")
    assert r.status == 200, r
    assert r.version == "HTTP/1.1"
    assert r.header("Content-Type", "").split(";")[0].strip().lower() == "text/html", r
    assert r.header("Content-Length") is not None, r
    assert int(r.header("Content-Length")) == len(r.body)
    assert r.body == static_bytes("index.html")


def test_get_index_html_by_name(server):
    r = get(server, "/index.html")
    assert r.status == 200, r
    assert r.body == static_bytes("index.html")


def test_head_index_same_headers_no_body(server):
    g = get(server, "/")
    with HTTPConn(server.host, server.port) as c:
        # HEAD then GET pipelined: if HEAD carried a body, the second response
        # would not start right after the first head.
        c.send(simple_request("HEAD", "/") + simple_request("GET", "/app.js"))
        h = c.response(head_request=True)
        assert h.status == 200, h
        assert h.header("Content-Type") == g.header("Content-Type")
        assert h.header("Content-Length") == g.header("Content-Length")
        nxt = c.response()
        assert nxt.status == 200, "HEAD response carried a body? next response: %r" % nxt
        assert nxt.body == static_bytes("app.js")


@pytest.mark.parametrize("name,ctype", [
    ("app.js", ("text/javascript", "application/javascript")),
    ("style.css", ("text/css",)),
    ("favicon.svg", ("image/svg+xml",)),
])
def test_asset_content_types(server, name, ctype):
    r = get(server, "/" + name)
    assert r.status == 200, r
    assert r.header("Content-Type", "").split(";")[0].strip().lower() in ctype, r
    assert int(r.header("Content-Length")) == len(r.body)
    assert r.body == static_bytes(name)


def test_404_unknown(server):
    r = get(server, "/no-such-file.html")
    assert r.status == 404, r
    assert int(r.header("Content-Length", "-1")) == len(r.body)


def test_query_string_ignored_for_static(server):
    r = get(server, "/app.js?v=123")
    assert r.status == 200, r
    assert r.body == static_bytes("app.js")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_other_methods_405_with_allow(server, method):
    body = b"x=1" if method in ("POST", "PUT", "PATCH") else b""
    r = request(server.host, server.port, simple_request(method, "/", body=body))
    assert r.status == 405, r
    allow = r.header("Allow")
    assert allow is not None, "405 without Allow: %r" % r
    methods = {m.strip() for m in allow.split(",")}
    assert {"GET", "HEAD"} <= methods, allow


def test_security_headers(server):
    for target in ("/", "/app.js", "/nope"):
        r = get(server, target)
        assert r.header("X-Content-Type-Options", "").lower() == "nosniff", (target, r)
        assert r.header("Content-Security-Policy"), (target, r)
        assert r.header("Referrer-Policy", "").lower() == "no-referrer", (target, r)


def test_metrics_prometheus_text(server):
    r = get(server, "/metrics")
    assert r.status == 200, r
    assert r.header("Content-Type", "").startswith("text/plain"), r
    text = r.body.decode("utf-8")
    samples = [l for l in text.splitlines() if l and not l.startswith("#")]
    assert samples, text
    for l in samples:
        assert re.match(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [-+0-9.eEinfNa]+( \d+)?$", l), l


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("raw", [
    b"GARBAGE\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost localhost\r\n\r\n",
    b"GET noslash HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost : localhost\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",
    b"GET http://localhost/ HTTP/1.1\r\nHost: localhost\r\n\r\n",
], ids=["garbage", "no-target", "header-no-colon", "target-no-slash", "space-before-colon",
        "http11-without-host", "absolute-form"])
def test_malformed_400(server, raw):
    with HTTPConn(server.host, server.port) as c:
        c.send(raw)
        r = c.response()
        assert r.status == 400, r
        assert c.closed_within(2), "connection left open after 400"


def test_head_over_8k_431(server):
    raw = simple_request("GET", "/", extra=[("X-Big", "a" * 9000)])
    r = request(server.host, server.port, raw)
    assert r.status == 431, r


def test_head_over_8k_without_end_431_early(server):
    # 9 KiB of head with no blank line yet: the server must answer 431 as soon
    # as the limit is passed, without waiting for the end of the head.
    with HTTPConn(server.host, server.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n" + b"X-A: " + b"a" * 9000 + b"\r\n")
        r = c.response(timeout=3)
        assert r.status == 431, r


def test_too_many_headers_431(server):
    raw = simple_request("GET", "/", extra=[("X-H%d" % i, "v") for i in range(100)])
    r = request(server.host, server.port, raw)
    assert r.status == 431, r


def test_target_over_2k_414(server):
    r = get(server, "/" + "a" * 2100)
    assert r.status == 414, r


def test_target_just_under_limit_not_414(server):
    r = get(server, "/" + "a" * 2000)
    assert r.status == 404, r


@pytest.mark.parametrize("version", ["HTTP/2.0", "HTTP/1.2", "HTTP/3.0", "HTTP/0.9"])
def test_bad_version_505(server, version):
    r = request(server.host, server.port, simple_request("GET", "/", version=version))
    assert r.status == 505, r


def test_http10_served_and_closed(server):
    with HTTPConn(server.host, server.port) as c:
        c.send(b"GET / HTTP/1.0\r\n\r\n")
        r = c.response()
        assert r.status == 200, r
        assert r.body == static_bytes("index.html")
        assert c.closed_within(2), "HTTP/1.0 without keep-alive must be closed after the response"


def test_connection_close_honoured(server):
    with HTTPConn(server.host, server.port) as c:
        c.send(simple_request("GET", "/", extra=[("Connection", "close")]))
        r = c.response()
        assert r.status == 200, r
        assert c.closed_within(2)


def test_get_ws_without_upgrade_426(server):
    r = get(server, "/ws")
    assert r.status == 426, r


def test_transfer_encoding_rejected(server):
    raw = (b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n0\r\n\r\n")
    r = request(server.host, server.port, raw)
    assert r.status in (400, 405, 501), r


# ---------------------------------------------------------------- traversal


@pytest.mark.parametrize("target", [
    "/../etc/passwd",
    "/../../../../../../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/%2E%2E/%2E%2E/%2E%2E/etc/passwd",
    "/static/..%2fmain.c",
    "/..%2f..%2fsrc%2fbuf.c",
    "/..%5c..%5csrc%5cbuf.c",
    "/..\\..\\src\\buf.c",
    "/./../src/buf.c",
    "/./index.html",
    "/%2e/index.html",
    "/%00",
    "/index.html%00.js",
    "//etc/passwd",
    "/%2fetc%2fpasswd",
    "/.git/config",
    "/%2e%2e%2f%2e%2e%2f.git/config",
    "/%zz",
    "/%",
])
def test_traversal_never_leaks(server, target):
    r = get(server, target)
    assert r.status in (400, 404), r
    assert_no_secret(r)


# ---------------------------------------------------------------- connection reuse


def test_keep_alive_two_requests(server):
    with HTTPConn(server.host, server.port) as c:
        c.send(simple_request("GET", "/"))
        a = c.response()
        assert a.status == 200, a
        c.send(simple_request("GET", "/style.css"))
        b = c.response()
        assert b.status == 200, b
        assert b.body == static_bytes("style.css")


def test_405_keeps_alive_and_skips_body(server):
    with HTTPConn(server.host, server.port) as c:
        c.send(simple_request("POST", "/", body=b"GET /evil HTTP/1.1\r\n\r\n"))
        r = c.response()
        assert r.status == 405, r
        # the announced body is read and ignored, not parsed as a request
        c.send(simple_request("GET", "/style.css"))
        r = c.response()
        assert r.status == 200, r
        assert r.body == static_bytes("style.css")


def test_keep_alive_after_404(server):
    with HTTPConn(server.host, server.port) as c:
        c.send(simple_request("GET", "/missing"))
        assert c.response().status == 404
        c.send(simple_request("GET", "/"))
        assert c.response().status == 200


def test_pipelining_in_order(server):
    with HTTPConn(server.host, server.port) as c:
        c.send(simple_request("GET", "/app.js") + simple_request("GET", "/missing")
               + simple_request("GET", "/style.css"))
        r1, r2, r3 = c.response(), c.response(), c.response()
        assert (r1.status, r2.status, r3.status) == (200, 404, 200), (r1, r2, r3)
        assert r1.body == static_bytes("app.js")
        assert r3.body == static_bytes("style.css")


def test_pipelining_split_mid_request(server):
    data = simple_request("GET", "/") + simple_request("HEAD", "/style.css") + simple_request("GET", "/app.js")
    with HTTPConn(server.host, server.port) as c:
        for i in range(0, len(data), 7):
            c.send(data[i:i + 7])
            time.sleep(0.001)
        r1 = c.response()
        r2 = c.response(head_request=True)
        r3 = c.response()
        assert (r1.status, r2.status, r3.status) == (200, 200, 200)
        assert r1.body == static_bytes("index.html")
        assert r3.body == static_bytes("app.js")


# ---------------------------------------------------------------- more request parsing


def test_get_with_body_is_skipped(server):
    with HTTPConn(server.host, server.port) as c:
        c.send(simple_request("GET", "/app.js", body=b"GET /evil HTTP/1.1\r\n\r\n")
               + simple_request("GET", "/style.css"))
        a, b = c.response(), c.response()
        assert (a.status, b.status) == (200, 200), (a, b)
        assert a.body == static_bytes("app.js") and b.body == static_bytes("style.css")


@pytest.mark.parametrize("headers", [
    [("Content-Length", "abc")],
    [("Content-Length", "-1")],
    [("Content-Length", "5"), ("Content-Length", "6")],
    [("Content-Length", "1 2")],
], ids=["alpha", "negative", "conflicting", "two-numbers"])
def test_bad_content_length_400(server, headers):
    r = request(server.host, server.port, simple_request("GET", "/", extra=headers) + b"123456")
    assert r.status == 400, r


def test_percent_encoded_real_file(server):
    r = get(server, "/app%2Ejs")
    assert r.status == 200, r
    assert r.body == static_bytes("app.js")


@pytest.mark.parametrize("target", ["/style.css/", "/static/style.css", "/STYLE.CSS", "/index"])
def test_near_miss_paths_404(server, target):
    assert get(server, target).status == 404


def test_head_404_has_no_body(server):
    with HTTPConn(server.host, server.port) as c:
        c.send(simple_request("HEAD", "/missing") + simple_request("GET", "/style.css"))
        h = c.response(head_request=True)
        assert h.status == 404, h
        nxt = c.response()
        assert nxt.status == 200, "HEAD 404 carried a body? next: %r" % nxt


@pytest.mark.parametrize("raw", [
    b"get / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Bad: a\x00b\r\n\r\n",
    b"GET / http/1.1\r\nHost: localhost\r\n\r\n",
], ids=["lowercase-method", "nul-in-header", "lowercase-version"])
def test_odd_requests_rejected(server, raw):
    r = request(server.host, server.port, raw)
    assert r.status in (400, 405, 501, 505), r


def test_many_requests_on_one_connection(server):
    # 100 pipelined requests (4.4 KB) in one write, responses read as they
    # come: ~1.8 MB of answers, more than the default --max-queue, so the
    # server has to stop reading requests while the client catches up rather
    # than queue every response at once.
    with HTTPConn(server.host, server.port) as c:
        c.send(b"".join(simple_request("GET", "/style.css") for _ in range(100)))
        for i in range(100):
            try:
                r = c.response()
            except Exception as e:
                pytest.fail("pipelined request %d of 100 got no response: %s: %s"
                            % (i + 1, type(e).__name__, e))
            assert r.status == 200, (i, r)
            assert r.body == static_bytes("style.css")


# ---------------------------------------------------------------- exact limits and buffer edges


def padded_request(total_len, target="/style.css"):
    """A GET whose head is exactly total_len bytes (blank line included)."""
    base = ("GET %s HTTP/1.1\r\nHost: localhost\r\nX-Pad: " % target).encode()
    pad = total_len - len(base) - 4
    assert pad > 0
    return base + b"p" * pad + b"\r\n\r\n"


@pytest.mark.parametrize("size", [4094, 4095, 4096, 4097, 4098, 8191, 8192])
def test_head_sizes_up_to_limit_accepted(server, size):
    raw = padded_request(size)
    assert len(raw) == size
    with HTTPConn(server.host, server.port) as c:
        c.send(raw + simple_request("GET", "/app.js"))
        r1, r2 = c.response(), c.response()
        assert r1.status == 200, (size, r1)
        assert r1.body == static_bytes("style.css")
        assert r2.status == 200 and r2.body == static_bytes("app.js")


def test_head_one_over_limit_431(server):
    r = request(server.host, server.port, padded_request(8193))
    assert r.status == 431, r


def test_target_exactly_2048_not_414(server):
    target = "/?" + "q" * 2046
    assert len(target) == 2048
    r = get(server, target)
    assert r.status == 200, r


def test_target_2049_414(server):
    r = get(server, "/?" + "q" * 2047)
    assert r.status == 414, r


# ---------------------------------------------------------------- Host on a loopback listener (DNS rebinding)


def upgrade_with_host(server, host, addr=None):
    from rawws import upgrade_request
    raw = upgrade_request(server.host, server.port, "/")
    raw = raw.replace(b"Host: %s:%d\r\n" % (server.host.encode(), server.port),
                      b"Host: %s\r\n" % host.encode(), 1)
    assert (b"Host: %s\r\n" % host.encode()) in raw
    return request(addr or server.host, server.port, raw)


@pytest.mark.parametrize("host", ["evil.example", "evil.example:%(port)d", "localhost.evil.example",
                                  "127.0.0.1.evil.example:%(port)d", "x", "10.0.0.1:%(port)d"])
def test_foreign_host_421_on_loopback(server, host):
    # a hostile name re-pointed at 127.0.0.1 must not get the page or a socket
    host = host % {"port": server.port}
    for target in ("/", "/metrics", "/app.js", "/missing"):
        with HTTPConn(server.host, server.port) as c:
            c.send(simple_request("GET", target, host_header=host))
            r = c.response()
            assert r.status == 421, (host, target, r)
            assert b"<html" not in r.body.lower() and b"ringcast_" not in r.body
            assert c.closed_within(2), "connection left open after 421"
    r = upgrade_with_host(server, host)
    assert r.status == 421, (host, r)
    assert wait_metric(server, "ringcast_host_refused_total", 5) == 5


@pytest.mark.parametrize("host", ["localhost", "localhost:%(port)d", "LocalHost:%(port)d", "127.0.0.1",
                                  "127.0.0.1:%(port)d", "127.1.2.3:%(port)d", "[::1]:%(port)d"])
def test_loopback_hosts_served(server, host):
    host = host % {"port": server.port}
    r = get(server, "/", host_header=host)
    assert r.status == 200, (host, r)
    assert r.body == static_bytes("index.html")
    assert upgrade_with_host(server, host).status == 101, host


@pytest.mark.server_args("--allow-host", "evil.example", "--allow-host", "Chat.Example.com")
def test_allow_host_served(server):
    for host in ("evil.example", "evil.example:%d" % server.port, "EVIL.example",
                 "chat.example.com:443", "localhost:%d" % server.port):
        r = get(server, "/", host_header=host)
        assert r.status == 200, (host, r)
        assert upgrade_with_host(server, host).status == 101, host
    for host in ("other.example", "sub.evil.example", "evil.example.other"):
        assert get(server, "/", host_header=host).status == 421, host
        assert upgrade_with_host(server, host).status == 421, host


@pytest.mark.server_args("--host", "0.0.0.0")
def test_any_host_served_on_a_public_listener(server):
    # not on loopback: names are the operator's business (reverse proxies,
    # real DNS), so any Host is served as before
    for host in ("evil.example", "evil.example:%d" % server.port, "x", "localhost"):
        r = request("127.0.0.1", server.port, simple_request("GET", "/", host_header=host))
        assert r.status == 200, (host, r)
        assert upgrade_with_host(server, host, addr="127.0.0.1").status == 101, host


def test_http10_without_host_served_on_loopback(server):
    # browsers always send Host; a request without one is not a rebinding
    r = request(server.host, server.port, b"GET / HTTP/1.0\r\n\r\n")
    assert r.status == 200, r


def test_malformed_request_with_foreign_host_is_still_400(server):
    r = request(server.host, server.port, b"GET noslash HTTP/1.1\r\nHost: evil.example\r\n\r\n")
    assert r.status == 400, r


def ipv6_loopback_available():
    import socket
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback here")
@pytest.mark.server_args("--host", "::1")
def test_ipv6_loopback_listener_checks_host(server):
    assert server.host == "::1"
    assert get(server, "/", host_header="[::1]:%d" % server.port).status == 200
    assert get(server, "/", host_header="localhost:%d" % server.port).status == 200
    assert get(server, "/", host_header="evil.example:%d" % server.port).status == 421
