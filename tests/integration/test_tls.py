"""TLS (README --tls-cert/--tls-key: HTTPS and WSS, TLS 1.2 and later) with a
throwaway EC certificate made by openssl in a temp dir: HTTPS GET verified by
Python's ssl, WSS chat end to end with python3-websockets, old protocol
versions refused, plain HTTP on the TLS port failing cleanly, close codes
passed through TLS."""

import asyncio
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import time

import pytest

from conftest import STATIC_DIR
from wsutil import run, connect, recv_type, messages, close_all
from rcutil import run_briefly


@pytest.fixture(scope="module")
def tls_files():
    d = tempfile.mkdtemp(prefix="ringcast-it-tls-")
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                        "-days", "2", "-keyout", key, "-out", cert],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, "openssl could not make a test certificate: %s" % p.stderr
    yield cert, key
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def tls_server(server_factory, tls_files, request):
    cert, key = tls_files
    args = []
    for m in request.node.iter_markers("server_args"):
        args += list(m.args)
    s = server_factory("--tls-cert", cert, "--tls-key", key, *args)
    assert s.scheme == "https", "the listening line does not say https"
    assert s.ws_url.startswith("wss://")
    return s


def client_ctx(cert, **kw):
    ctx = ssl.create_default_context(cafile=cert)
    for k, v in kw.items():
        setattr(ctx, k, v)
    return ctx


def https_get(server, cert, path="/", hostname="localhost", **ctxkw):
    ctx = client_ctx(cert, **ctxkw)
    raw = socket.create_connection((server.host, server.port), timeout=5)
    with ctx.wrap_socket(raw, server_hostname=hostname) as s:
        s.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n"
                   % (path, hostname, server.port)).encode())
        data = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ssl.SSLZeroReturnError:
                break
            if not chunk:
                break
            data += chunk
        version = s.version()
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), body, version


def test_https_get_verified(tls_server, tls_files):
    cert, _ = tls_files
    for hostname in ("localhost", "127.0.0.1"):
        head, body, version = https_get(tls_server, cert, "/", hostname=hostname)
        assert head.startswith("HTTP/1.1 200"), head
        assert "x-content-type-options: nosniff" in head.lower()
        with open(os.path.join(str(STATIC_DIR), "index.html"), "rb") as f:
            assert body == f.read()
        assert version in ("TLSv1.2", "TLSv1.3"), version
    head, body, _ = https_get(tls_server, cert, "/style.css")
    assert head.startswith("HTTP/1.1 200"), head
    head, _, _ = https_get(tls_server, cert, "/no-such-file")
    assert head.startswith("HTTP/1.1 404"), head


def test_tls12_and_tls13_both_accepted(tls_server, tls_files):
    cert, _ = tls_files
    for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        head, _, version = https_get(tls_server, cert, "/", minimum_version=v, maximum_version=v)
        assert head.startswith("HTTP/1.1 200") and version == v.name.replace("v1_", "v1."), (v, version)


def test_wrong_ca_is_not_trusted(tls_server, tmp_path):
    # sanity check of the verification itself: the system CAs do not know our cert
    ctx = ssl.create_default_context()
    raw = socket.create_connection((tls_server.host, tls_server.port), timeout=5)
    with pytest.raises(ssl.SSLCertVerificationError):
        ctx.wrap_socket(raw, server_hostname="localhost")
    raw.close()


@pytest.mark.server_args("--rate-limit", "0")
def test_wss_chat_end_to_end(tls_server, tls_files):
    cert, _ = tls_files
    ctx = client_ctx(cert)

    async def main():
        clients = []
        for _ in range(3):
            ws = await connect(tls_server, "/?room=tls", ssl=ctx, server_hostname="localhost")
            w = await recv_type(ws, "welcome")
            await recv_type(ws, "history")
            clients.append((ws, w))
        (a, wa), (b, _), (c, _) = clients
        await a.send("hello over tls")
        for ws in (a, b, c):
            m = await recv_type(ws, "message")
            assert (m["text"], m["from"], m["room"]) == ("hello over tls", wa["id"], "tls"), m
        texts = ["tls %03d" % i for i in range(500)]
        for t in texts:
            await a.send(t)
        for ws in (a, b, c):
            got = await messages(ws, 500, timeout=20)
            assert [m["text"] for m in got] == texts
            ids = [m["id"] for m in got]
            assert ids == list(range(2, 502)), ids[:5]
        # a large message crosses several TLS records
        big = "B" * 60000
        await b.send(json.dumps({"type": "message", "text": big}))
        for ws in (a, b, c):
            assert (await recv_type(ws, "message"))["text"] == big
        await close_all(a, b, c)
    run(main(), timeout=40)


@pytest.mark.server_args("--rate-limit", "0")
def test_wss_burst_larger_than_one_seal_arrives_whole(tls_server, tls_files):
    # 40 x 64 KiB of '"' (~128 KiB frames once escaped, ~5 MiB in one pass):
    # each send encrypts at most 256 KiB, the rest waits shared and is sealed
    # send by send; every reader gets every message, intact and in order,
    # and the sender all its acknowledgements.
    cert, _ = tls_files
    ctx = client_ctx(cert)

    async def main():
        clients = []
        for _ in range(3):
            ws = await connect(tls_server, "/?room=seal", ssl=ctx, server_hostname="localhost")
            await recv_type(ws, "history")
            clients.append(ws)
        texts = [('"' * 65535) + chr(ord("a") + i % 26) for i in range(40)]
        for t in texts:
            await clients[0].send(t)
        for ws in clients:
            got = await messages(ws, 40, timeout=30)
            assert [m["text"] for m in got] == texts
            assert [m["id"] for m in got] == list(range(got[0]["id"], got[0]["id"] + 40))
        await close_all(*clients)
    run(main(), timeout=40)


def test_graceful_close_code_echoed_over_tls(tls_server, tls_files):
    cert, _ = tls_files

    async def main():
        for code in (1000, 3001, 4999):
            ws = await connect(tls_server, "/", ssl=client_ctx(cert), server_hostname="localhost")
            await recv_type(ws, "welcome")
            await ws.close(code=code, reason="bye")
            assert ws.close_code == code, "sent close %d, server's close frame had %s" % (
                code, ws.close_code)
    run(main())


def test_sigterm_wss_clients_get_1001(tls_server, tls_files):
    cert, _ = tls_files

    async def main():
        clients = []
        for _ in range(3):
            ws = await connect(tls_server, "/", ssl=client_ctx(cert), server_hostname="localhost")
            await recv_type(ws, "welcome")
            clients.append(ws)
        tls_server.terminate()
        for ws in clients:
            await asyncio.wait_for(ws.wait_closed(), 5)
            assert ws.close_code == 1001, "close code %s after SIGTERM (1006: no close frame)" % ws.close_code
    run(main())
    tls_server.expect_exit = True
    problems = tls_server.stop()
    assert not problems, problems


# ---------------------------------------------------------------- refused clients


def client_hello(version, host=b"localhost"):
    """A minimal ClientHello record with legacy_version `version` and no
    supported_versions extension (so it offers exactly that version)."""
    ciphers = [0xc02b, 0xc02f, 0xc009, 0xc013, 0x002f, 0x0035]
    body = struct.pack("!H", version) + os.urandom(32) + b"\x00"
    body += struct.pack("!H", 2 * len(ciphers)) + b"".join(struct.pack("!H", c) for c in ciphers)
    body += b"\x01\x00"
    sn = b"\x00" + struct.pack("!H", len(host)) + host
    exts = struct.pack("!HH", 0, len(sn) + 2) + struct.pack("!H", len(sn)) + sn
    groups = struct.pack("!HH", 0x0017, 0x001d)
    exts += struct.pack("!HH", 10, len(groups) + 2) + struct.pack("!H", len(groups)) + groups
    exts += struct.pack("!HH", 11, 2) + b"\x01\x00"
    if version >= 0x0303:
        algs = struct.pack("!HHH", 0x0403, 0x0804, 0x0401)
        exts += struct.pack("!HH", 13, len(algs) + 2) + struct.pack("!H", len(algs)) + algs
    body += struct.pack("!H", len(exts)) + exts
    hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def first_bytes(server, data, n=6, timeout=5):
    s = socket.create_connection((server.host, server.port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def test_tls_1_1_and_1_0_refused(tls_server, tls_files):
    cert, _ = tls_files
    # control: the same hand-made hello offering TLS 1.2 gets a ServerHello
    hello12 = first_bytes(tls_server, client_hello(0x0303))
    assert hello12[:1] == b"\x16" and hello12[5:6] == b"\x02", hello12.hex()
    for v in (0x0302, 0x0301):
        reply = first_bytes(tls_server, client_hello(v))
        assert not (reply[:1] == b"\x16" and reply[5:6] == b"\x02"), \
            "server answered a TLS %#06x hello with a ServerHello: %s" % (v, reply.hex())
        assert reply == b"" or reply[:1] == b"\x15", "expected an alert or a close: %s" % reply.hex()
    # and Python's own TLS 1.1 client (allowed to try at security level 0)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cert)
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    raw = socket.create_connection((tls_server.host, tls_server.port), timeout=5)
    with pytest.raises(ssl.SSLError) as e:
        ctx.wrap_socket(raw, server_hostname="localhost")
    raw.close()
    assert "PROTOCOL_VERSION" in str(e.value).upper() or "UNSUPPORTED" in str(e.value).upper(), e.value
    # the server still serves others
    head, _, _ = https_get(tls_server, cert)
    assert head.startswith("HTTP/1.1 200")


def test_plain_http_to_tls_port_fails_cleanly(tls_server, tls_files):
    cert, _ = tls_files
    for req in (b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
                b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                b"\x00" * 100):
        s = socket.create_connection((tls_server.host, tls_server.port), timeout=5)
        s.sendall(req)
        data, t0 = b"", time.monotonic()
        try:
            while time.monotonic() - t0 < 5:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
        except socket.timeout:
            pytest.fail("the server kept a plain-HTTP connection to its TLS port open for 5 s")
        finally:
            s.close()
        assert b"HTTP/1.1 200" not in data and b"<html" not in data.lower(), data[:100]
        assert data == b"" or data[:1] == b"\x15", "not an alert or a close: %r" % data[:40]
    head, _, _ = https_get(tls_server, cert)
    assert head.startswith("HTTP/1.1 200")
    assert tls_server.alive()


def test_cert_without_key_refused_at_start(tls_files):
    cert, key = tls_files
    for args in (("--tls-cert", cert), ("--tls-key", key)):
        p = run_briefly(*args)
        assert p.returncode != 0 and "listening" not in p.stderr, p.stderr
        assert "tls" in p.stderr.lower(), p.stderr
    p = run_briefly("--tls-cert", cert + ".missing", "--tls-key", key)
    assert p.returncode != 0 and "listening" not in p.stderr, p.stderr
