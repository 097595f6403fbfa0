"""Load-balancer probes (docs/protocol.md "Health and readiness"): GET /healthz
is 200 `ok` while the loops run; GET /readyz is 200 `ready`, or 503 with one
line of reason while a part of the node fails (here: the history store on a
full disk, for real). Both take HEAD, refuse other methods like every path,
are never cached, and do not depend on the page's files."""

import os
import tempfile
import shutil
import time

import pytest

from rawws import HTTPConn, request, simple_request
from rcutil import connect_ws, connect_seq, fill, http_get, metrics, send_and_ack, wait_metric_at_least

PROBES = [("/healthz", b"ok\n"), ("/readyz", b"ready\n")]


def get(server, target, method="GET"):
    return request(server.host, server.port, simple_request(method, target),
                   head_request=method == "HEAD")


def assert_probe_headers(r):
    assert r.header("Content-Type", "").split(";")[0].strip().lower() == "text/plain", r
    assert r.header("Cache-Control", "").lower() == "no-store", r


@pytest.mark.parametrize("path,body", PROBES)
def test_probe_answers_200_plain_text_not_cached(server, path, body):
    r = get(server, path)
    assert r.status == 200, r
    assert r.body == body, r
    assert int(r.header("Content-Length")) == len(body)
    assert_probe_headers(r)


@pytest.mark.parametrize("path,body", PROBES)
def test_probe_head_has_the_get_headers_and_no_body(server, path, body):
    with HTTPConn(server.host, server.port) as c:
        # HEAD then GET pipelined: a body after the HEAD's head would be
        # read as the second response's status line.
        c.send(simple_request("HEAD", path) + simple_request("GET", path))
        h = c.response(head_request=True)
        assert h.status == 200, h
        assert int(h.header("Content-Length")) == len(body), h
        assert_probe_headers(h)
        g = c.response()
        assert g.status == 200 and g.body == body, "HEAD carried a body? next response: %r" % g


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
def test_probe_other_methods_405_with_allow(server, path, method):
    body = b"x=1" if method in ("POST", "PUT") else b""
    r = request(server.host, server.port, simple_request(method, path, body=body))
    assert r.status == 405, r
    assert {m.strip() for m in r.header("Allow", "").split(",")} == {"GET", "HEAD"}, r


def test_probes_answer_without_the_page_and_are_not_shadowed_by_files(server_factory):
    """A --static dir without the page (and with files named like the
    probes): the probes still answer, from the server, not the files."""
    d = tempfile.mkdtemp(prefix="ringcast-it-nopage-")
    try:
        for name in ("healthz", "readyz"):
            with open(os.path.join(d, name), "w") as f:
                f.write("a file, not the probe\n")
        server = server_factory("--static", d)  # the last --static wins
        assert get(server, "/").status == 404, "the page is absent"
        for path, body in PROBES:
            r = get(server, path)
            assert r.status == 200 and r.body == body, r
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_metrics_text_is_whole(server):
    """Every module's counters, the last one rendered included: a text cut
    short by the renderer's buffer reads as metrics gone missing."""
    body = http_get(server, "/metrics").body.decode()
    assert body.endswith("\n"), body[-200:]
    last = body.rstrip("\n").splitlines()[-1]
    assert last.startswith("ringcast_http_errors_total "), last


def test_probes_count_as_requests_and_nothing_else(server):
    before = metrics(server)
    for _ in range(5):
        for path, _ in PROBES:
            assert get(server, path).status == 200
    # the probes and the /metrics requests, from every edge within a tick
    after = wait_metric_at_least(server, "ringcast_http_requests_total",
                                 before["ringcast_http_requests_total"] + 11)
    assert after >= before["ringcast_http_requests_total"] + 11
    now = metrics(server)
    assert now["ringcast_http_errors_total"] == before["ringcast_http_errors_total"], now
    assert now["ringcast_websockets_opened_total"] == before["ringcast_websockets_opened_total"]


BIG = 20000  # bytes of text per message: every commit needs new pages in the WAL


@pytest.mark.timeout_s(40)
def test_readyz_503_while_the_store_fails_and_200_again_after(tiny_fs, server_factory):
    server = server_factory("--rate-limit", "0", "--db", os.path.join(tiny_fs, "chat.db"))
    with connect_ws(server) as ws:
        connect_seq(ws)
        assert send_and_ack(ws, "stored")["type"] == "message"
        assert get(server, "/readyz").status == 200
        time.sleep(0.3)  # let a timed checkpoint run
        filler = fill(tiny_fs)
        text = "on a full disk " + "y" * BIG
        ws.send_text(text)
        r = ws.recv_type(("message", "error"), 10,
                         pred=lambda m: m["type"] == "error" or m["text"] == text)
        assert r["type"] == "error" and r["code"] == "not_saved", r.get("code", r["type"])

        # readiness is set on the store's thread before the sender hears
        # not_saved, so it shows at once, on whichever edge answers
        with HTTPConn(server.host, server.port) as c:
            c.send(simple_request("GET", "/readyz"))
            r = c.response()
            assert r.status == 503, r
            assert r.body == b"not ready: history store failing: disk full\n", r
            assert_probe_headers(r)
            # the 503 keeps the connection: a load balancer probes again on it
            c.send(simple_request("HEAD", "/readyz") + simple_request("GET", "/healthz"))
            h = c.response(head_request=True)
            assert h.status == 503 and int(h.header("Content-Length")) == len(r.body), h
            g = c.response()
            assert g.status == 200 and g.body == b"ok\n", "the loops still run: %r" % g

        # space again: the next commit that succeeds makes the node ready
        os.unlink(filler)
        os.unlink(filler + "2")
        assert send_and_ack(ws, "stored again")["type"] == "message"
        r = get(server, "/readyz")
        assert r.status == 200 and r.body == b"ready\n", r
    assert "not ready: history store failing: disk full" in server.output()
