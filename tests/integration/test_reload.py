"""SIGHUP (README "Reloading"): the TLS certificate and the chat page are
loaded again without a restart. New connections get the new certificate,
open ones keep theirs and go on working; a certificate or page that cannot
be loaded is logged and the old one kept. Every case runs with one edge and
with two, checked on several fresh connections (the kernel spreads them over
the edges)."""

import asyncio
import gzip
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

from conftest import STATIC_DIR
from rawws import HTTPConn, request, simple_request
from wsutil import run, connect, recv_type, close_all

EDGES = pytest.mark.parametrize("threads", ["1", "2"])
SPREAD = 6
OLD_SERIAL, NEW_SERIAL = 0x1001, 0x2002


def wait_line(server, text, after=0, timeout=5.0):
    """Wait for a log line containing text among the lines after index `after`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with server._lock:
            lines = server.lines[after:]
        for line in lines:
            if text in line:
                return line
        time.sleep(0.02)
    raise AssertionError("no log line with %r within %.0fs:\n%s" % (text, timeout, server.output()))


def line_count(server):
    with server._lock:
        return len(server.lines)


def sighup(server):
    n = line_count(server)
    server.proc.send_signal(signal.SIGHUP)
    return n


# ---------------------------------------------------------------- TLS


def make_cert(d, name, serial):
    cert, key = os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                        "-set_serial", str(serial), "-days", "2", "-keyout", key, "-out", cert],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, "openssl could not make a test certificate: %s" % p.stderr
    return cert, key


@pytest.fixture
def certs(tmp_path):
    """The old and new certificates, and the paths the server is given,
    holding the old one."""
    d = str(tmp_path)
    old = make_cert(d, "old", OLD_SERIAL)
    new = make_cert(d, "new", NEW_SERIAL)
    live = (os.path.join(d, "live.pem"), os.path.join(d, "live.key"))
    shutil.copy(old[0], live[0])
    shutil.copy(old[1], live[1])
    return {"old": old, "new": new, "live": live}


def client_ctx(certs):
    ctx = ssl.create_default_context(cafile=certs["old"][0])
    ctx.load_verify_locations(cafile=certs["new"][0])
    return ctx


def install(src_cert, src_key, live):
    # write-then-rename, as certbot and friends do
    for src, dst in ((src_cert, live[0]), (src_key, live[1])):
        shutil.copy(src, dst + ".tmp")
        os.replace(dst + ".tmp", dst)


class TLSConn:
    """A kept-alive HTTPS connection."""

    def __init__(self, server, ctx):
        raw = socket.create_connection((server.host, server.port), timeout=5)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        self.server = server

    def serial(self):
        return int(self.sock.getpeercert()["serialNumber"], 16)

    def get(self, path):
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: localhost:%d\r\n\r\n"
                           % (path, self.server.port)).encode())
        data = b""
        deadline = time.monotonic() + 5
        while b"\r\n\r\n" not in data and time.monotonic() < deadline:
            chunk = self.sock.recv(65536)
            assert chunk, "the server closed the connection"
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int([l.split(b":")[1] for l in head.split(b"\r\n")
                      if l.lower().startswith(b"content-length:")][0])
        while len(body) < length and time.monotonic() < deadline:
            chunk = self.sock.recv(65536)
            assert chunk, "the server closed the connection"
            body += chunk
        return head.split(b"\r\n")[0].decode(), body

    def close(self):
        self.sock.close()


def serials(server, ctx, n=SPREAD):
    out = set()
    for _ in range(n):
        c = TLSConn(server, ctx)
        out.add(c.serial())
        status, body = c.get("/index.html")
        assert status == "HTTP/1.1 200 OK" and body == (STATIC_DIR / "index.html").read_bytes()
        c.close()
    return out


@EDGES
@pytest.mark.server_args("--rate-limit", "0")
def test_sighup_new_certificate_for_new_connections_open_ones_go_on(server_factory, certs, threads):
    live = certs["live"]
    s = server_factory("--tls-cert", live[0], "--tls-key", live[1], "--threads", threads)
    ctx = client_ctx(certs)
    assert serials(s, ctx) == {OLD_SERIAL}
    kept = TLSConn(s, ctx)
    assert kept.get("/style.css")[0] == "HTTP/1.1 200 OK"

    async def main():
        a = await connect(s, "/?room=reload", ssl=ctx, server_hostname="localhost")
        wa = await recv_type(a, "welcome")
        await recv_type(a, "history")

        install(*certs["new"], live)
        n = sighup(s)
        wait_line(s, "SIGHUP: reloaded the TLS certificate", after=n)
        assert serials(s, ctx) == {NEW_SERIAL}, "a connection after the reload got the old certificate"

        # the WSS connection from before is still open and working
        b = await connect(s, "/?room=reload", ssl=ctx, server_hostname="localhost")
        await recv_type(b, "history")
        await a.send("after the reload")
        for ws in (a, b):
            m = await recv_type(ws, "message")
            assert (m["text"], m["from"]) == ("after the reload", wa["id"]), m
        assert a.transport.get_extra_info("ssl_object").getpeercert()["serialNumber"] == "%X" % OLD_SERIAL
        await close_all(a, b)
    run(main(), timeout=30)

    # so is the kept-alive HTTPS connection, on its old certificate
    assert kept.serial() == OLD_SERIAL
    status, body = kept.get("/app.js")
    assert status == "HTTP/1.1 200 OK" and body == (STATIC_DIR / "app.js").read_bytes()
    kept.close()


@EDGES
def test_sighup_broken_certificate_is_logged_and_the_old_one_kept(server_factory, certs, threads):
    live = certs["live"]
    s = server_factory("--tls-cert", live[0], "--tls-key", live[1], "--threads", threads)
    ctx = client_ctx(certs)
    kept = TLSConn(s, ctx)

    # not a certificate at all
    with open(live[0], "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    n = sighup(s)
    line = wait_line(s, "SIGHUP: cannot load the TLS certificate", after=n)
    assert live[0] in line and "keeping the previous one" in line, line
    assert serials(s, ctx) == {OLD_SERIAL}

    # a good certificate with the wrong key: refused too
    shutil.copy(certs["new"][0], live[0])
    shutil.copy(certs["old"][1], live[1])
    n = sighup(s)
    wait_line(s, "SIGHUP: cannot load the TLS certificate", after=n)
    assert serials(s, ctx) == {OLD_SERIAL}
    assert s.alive()

    # and once the files are right, the next SIGHUP takes them
    install(*certs["new"], live)
    n = sighup(s)
    wait_line(s, "SIGHUP: reloaded the TLS certificate", after=n)
    assert serials(s, ctx) == {NEW_SERIAL}
    assert kept.get("/")[0] == "HTTP/1.1 200 OK"
    kept.close()


# ---------------------------------------------------------------- the chat page


@pytest.fixture
def site(tmp_path):
    d = tmp_path / "static"
    shutil.copytree(STATIC_DIR, d)
    return d


def fetch(server, target, **headers):
    extra = [(k.replace("_", "-"), v) for k, v in headers.items()]
    return request(server.host, server.port, simple_request("GET", target, extra=extra))


def wait_served(server, target, body, timeout=5.0, streak_needed=24, **headers):
    """Until streak_needed fresh connections in a row get body, within
    timeout; returns the last response. With two edges, 24 in a row from one
    edge alone while the other still served the old bytes would be a 1 in
    16 million chance: it means every edge has moved to the new load."""
    deadline = time.monotonic() + timeout
    streak, last = 0, None
    while time.monotonic() < deadline:
        last = fetch(server, target, **headers)
        streak = streak + 1 if last.status == 200 and last.body == body else 0
        if streak >= streak_needed:
            return last
    raise AssertionError("%s never served the new bytes on every edge: %r" % (target, last))


@EDGES
def test_sighup_reloads_changed_static_files(server_factory, site, threads):
    s = server_factory("--static", str(site), "--threads", threads)
    old = fetch(s, "/style.css")
    assert old.status == 200
    assert fetch(s, "/added.txt").status == 404
    with HTTPConn(s.host, s.port) as kept:
        kept.send(simple_request("GET", "/style.css"))
        assert kept.response().body == old.body

        new_css = old.body + b"\n/* reloaded */\n" + b".x { color: red }\n" * 50
        (site / "style.css").write_bytes(new_css)
        (site / "added.txt").write_bytes(b"a file added before the SIGHUP\n")
        n = sighup(s)
        wait_line(s, "SIGHUP: reloaded the chat page", after=n)

        new = wait_served(s, "/style.css", new_css)
        assert new.header("ETag") not in (None, old.header("ETag")), new
        wait_served(s, "/added.txt", b"a file added before the SIGHUP\n")
        # the browser's cached copy is stale now: the whole new file, not a 304
        r = fetch(s, "/style.css", If_None_Match=old.header("ETag"))
        assert r.status == 200 and r.body == new_css, r
        assert fetch(s, "/style.css", If_None_Match=new.header("ETag")).status == 304
        # the new gzip copy was made at the reload
        g = fetch(s, "/style.css", Accept_Encoding="gzip")
        assert g.header("Content-Encoding") == "gzip" and gzip.decompress(g.body) == new_css

        # a connection from before the reload gets the new bytes too
        kept.send(simple_request("GET", "/style.css"))
        assert kept.response().body == new_css


@EDGES
def test_sighup_static_dir_that_cannot_load_keeps_the_old_page(server_factory, site, threads):
    s = server_factory("--static", str(site), "--threads", threads)
    body = fetch(s, "/app.js").body
    assert body == (STATIC_DIR / "app.js").read_bytes()
    gone = site.with_name("static-moved")
    site.rename(gone)
    n = sighup(s)
    line = wait_line(s, "SIGHUP: cannot load the chat page", after=n)
    assert "still serving the previous one" in line, line
    # nothing was lost: every edge still serves the page it had
    for _ in range(SPREAD):
        r = fetch(s, "/app.js")
        assert r.status == 200 and r.body == body, r
    assert s.alive()
    gone.rename(site)
