"""The chat page's files as browsers expect them (README "Static files"):
an ETag and 304 Not Modified for If-None-Match, and the gzip copy made at
load for a client whose Accept-Encoding takes it, identity otherwise. Each
case runs with one edge and with two; each edge serves its own copy of the
page, so every check is made on several fresh connections."""

import gzip

import pytest

from conftest import STATIC_DIR
from rawws import HTTPConn, request, simple_request

EDGES = pytest.mark.parametrize("threads", ["1", "2"])
# fresh connections per check: the kernel spreads them over the edges
SPREAD = 6


def static_bytes(name):
    p = STATIC_DIR / name
    if not p.is_file():
        pytest.fail("%s is missing from the static dir %s" % (name, STATIC_DIR), pytrace=False)
    return p.read_bytes()


def fetch(server, target, method="GET", **headers):
    extra = [(k.replace("_", "-"), v) for k, v in headers.items()]
    return request(server.host, server.port, simple_request(method, target, extra=extra),
                   head_request=(method == "HEAD"))


def fetch_many(server, target, method="GET", **headers):
    return [fetch(server, target, method, **headers) for _ in range(SPREAD)]


@EDGES
def test_etag_is_stable_and_if_none_match_gets_304(server_factory, threads):
    s = server_factory("--threads", threads)
    first = fetch(s, "/app.js")
    assert first.status == 200, first
    etag = first.header("ETag")
    assert etag and etag.startswith('"') and etag.endswith('"'), first
    assert first.header("Cache-Control") == "no-cache", first
    for r in fetch_many(s, "/app.js"):
        assert r.header("ETag") == etag, "the same bytes must keep the same ETag on every edge"
    for r in fetch_many(s, "/app.js", If_None_Match=etag):
        assert r.status == 304, r
        assert r.body == b""
        assert r.header("ETag") == etag, r
        assert r.header("Cache-Control") == "no-cache", r
    # weak comparison, a list, and *
    for inm in ("W/" + etag, '"nope", ' + etag, "*"):
        r = fetch(s, "/app.js", If_None_Match=inm)
        assert r.status == 304, (inm, r)
    assert fetch(s, "/app.js", method="HEAD", If_None_Match=etag).status == 304
    # another tag, or another file's tag: the whole file
    other = fetch(s, "/style.css").header("ETag")
    assert other and other != etag
    for inm in ('"nope"', other, etag[:-2] + '"'):
        r = fetch(s, "/app.js", If_None_Match=inm)
        assert r.status == 200, (inm, r)
        assert r.body == static_bytes("app.js")


@EDGES
def test_304_has_no_body_on_a_kept_alive_connection(server_factory, threads):
    s = server_factory("--threads", threads)
    etag = fetch(s, "/app.js").header("ETag")
    with HTTPConn(s.host, s.port) as c:
        # pipelined: a body after the 304 would be read as the next response
        c.send(simple_request("GET", "/app.js", extra=[("If-None-Match", etag)]) +
               simple_request("GET", "/index.html"))
        nm = c.response()
        assert nm.status == 304, nm
        nxt = c.response()
        assert nxt.status == 200, "the 304 carried bytes? next response: %r" % nxt
        assert nxt.body == static_bytes("index.html")


@EDGES
def test_gzip_when_accept_encoding_allows_it(server_factory, threads):
    s = server_factory("--threads", threads)
    plain = fetch(s, "/app.js")
    for accept in ("gzip", "gzip, deflate, br", "br;q=1.0, gzip;q=0.5", "*", "x-gzip"):
        for r in fetch_many(s, "/app.js", Accept_Encoding=accept):
            assert r.status == 200, (accept, r)
            assert r.header("Content-Encoding") == "gzip", (accept, r)
            assert r.header("Vary") == "Accept-Encoding", r
            assert int(r.header("Content-Length")) == len(r.body)
            assert len(r.body) < len(plain.body) // 2, "app.js hardly shrank: %d" % len(r.body)
            assert gzip.decompress(r.body) == static_bytes("app.js")
            assert r.header("ETag") not in (None, plain.header("ETag")), \
                "the gzip copy is another representation: another ETag"
            assert r.header("Content-Type") == plain.header("Content-Type")
    h = fetch(s, "/app.js", method="HEAD", Accept_Encoding="gzip")
    g = fetch(s, "/app.js", Accept_Encoding="gzip")
    assert h.status == 200 and h.body == b""
    for name in ("Content-Encoding", "Content-Length", "ETag", "Vary"):
        assert h.header(name) == g.header(name), name
    # and the gzip copy has its own 304
    r = fetch(s, "/app.js", Accept_Encoding="gzip", If_None_Match=g.header("ETag"))
    assert r.status == 304 and r.header("ETag") == g.header("ETag"), r
    assert r.header("Vary") == "Accept-Encoding", r


@EDGES
def test_identity_unless_gzip_is_acceptable(server_factory, threads):
    s = server_factory("--threads", threads)
    body = static_bytes("app.js")
    gz_etag = fetch(s, "/app.js", Accept_Encoding="gzip").header("ETag")
    cases = [{}, {"Accept_Encoding": "identity"}, {"Accept_Encoding": "gzip;q=0"},
             {"Accept_Encoding": "gzip;q=0, *"}, {"Accept_Encoding": "*;q=0"},
             {"Accept_Encoding": "deflate, br"}, {"Accept_Encoding": "gzip;q=0.000"},
             {"Accept_Encoding": ""}]
    for headers in cases:
        for r in fetch_many(s, "/app.js", **headers):
            assert r.status == 200, (headers, r)
            assert r.header("Content-Encoding") is None, (headers, r)
            assert r.header("Vary") == "Accept-Encoding", "a cache must not hand this to gzip clients"
            assert r.body == body, headers
    h = fetch(s, "/app.js", method="HEAD", Accept_Encoding="gzip;q=0")
    assert h.header("Content-Encoding") is None and int(h.header("Content-Length")) == len(body)
    # the gzip copy's tag does not validate the plain bytes this request gets
    r = fetch(s, "/app.js", If_None_Match=gz_etag)
    assert r.status == 200 and r.body == body, r
